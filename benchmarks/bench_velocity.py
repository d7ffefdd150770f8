"""Benchmark: the 5-minute velocity refresh -- the real monitoring_job for today's partition (sales_velocity's
buckets of the day + the sell-out forecast from the stored curve library) -- after the daily model refresh
(sellout_model_job: curve library, backtest, interval calibration; timed on its own), the hourly
velocity_anomaly_job for the day, and the ETA backtest figures (not a test).

    python benchmarks/bench_velocity.py --scale small --record
    python benchmarks/bench_velocity.py --warehouse-url duckdb:///tmp/wh --day 2026-10-31   # staging present

Setup (not timed): generate `scale`, ingest the whole history (ingest_job). Then monitoring_job runs for the
last sales day with the clock pinned at 23:55 of that day (a full day of buckets: the heaviest refresh of the
day), `--repeat` times, after one sellout_model_job and one velocity_anomaly_job run (timed separately); prints seconds per step (from the run's step events, checks included), the backtest's
median absolute ETA errors at 25/50/75 % sold against the seed's linear rule, and with --record appends a
line to benchmarks/results/velocity.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import dagster as dg
from jobrun import failed_checks, peak_rss_gb, timed_run

os.environ.setdefault("TT_ENV", "development")

RESULTS = Path(__file__).resolve().parent / "results" / "velocity.md"
HEADER = (
    "# Velocity refresh benchmark\n\nmonitoring_job for one day (today's 5-minute buckets + sell-out forecast "
    "and backtest), clock at 23:55; through the real job (benchmarks/bench_velocity.py).\n\n"
    "| date | host | scale | stg_tickets rows | velocity rows | job s (best) | sales_velocity s | "
    "sellout_forecast s | ETA MAE min 25/50/75 % model | linear | backtest n (50 %) | checks failed | "
    "peak RSS GB | sellout_model_job s | calibrated 80 % coverage (holdout) | velocity_anomaly_job s | "
    "load |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--scale", default="small")
    p.add_argument("--warehouse-url")
    p.add_argument("--day", default=None, help="today's partition (default: the generator's last sales day)")
    p.add_argument("--first", default=None, help="first daily partition (default: from the scale)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--record", action="store_true")
    args = p.parse_args()
    from analytics_pipelines.generator.reference import DEFAULT_AS_OF, SCALES

    last = date.fromisoformat(args.day) if args.day else DEFAULT_AS_OF - timedelta(days=1)
    first = args.first or (DEFAULT_AS_OF - timedelta(days=SCALES[args.scale].history_days + 1)).isoformat()
    os.environ["TT_PARTITION_START"] = min(first, "2025-11-01")
    tmp = Path(tempfile.mkdtemp(prefix="bench_velocity_"))
    os.environ.setdefault("TT_DATA_DIR", str(tmp))
    instance = dg.DagsterInstance.ephemeral()
    from analytics_pipelines.definitions import build_definitions
    from analytics_pipelines.registry import default_registry
    from analytics_pipelines.settings import Settings

    if args.warehouse_url:
        os.environ["TT_WAREHOUSE_URL"] = args.warehouse_url
        defs = build_definitions(default_registry(), Settings.from_env())
    else:
        from analytics_pipelines.generator.run import generate

        src = f"duckdb:///{tmp / 'source.duckdb'}"
        os.environ["TT_SOURCE_URL"] = src
        os.environ["TT_WAREHOUSE_URL"] = f"duckdb:///{tmp / 'warehouse'}"
        t = time.perf_counter()
        generate(src, scale=args.scale, progress=False)
        print(f"generate {args.scale}: {time.perf_counter() - t:.1f} s", flush=True)
        defs = build_definitions(default_registry(), Settings.from_env())
        keys = defs.resolve_job_def("ingest_job").partitions_def.get_partition_keys()
        t = time.perf_counter()
        res, _, _ = timed_run("ingest_job", keys[0], last.isoformat(), instance, defs=defs)
        print(
            f"ingest_job {keys[0]}..{last}: {time.perf_counter() - t:.1f} s, success {res.success}",
            flush=True,
        )
        if not res.success:
            return 1
    now = datetime.combine(last, datetime.min.time()).replace(hour=23, minute=55).isoformat() + "+00:00"
    res, model_secs, _ = timed_run("sellout_model_job", None, None, instance, now, defs)
    print(f"sellout_model_job (daily): {model_secs:.2f} s, success {res.success}", flush=True)
    model_ok = res.success
    res, anomaly_secs, _ = timed_run(
        "velocity_anomaly_job", last.isoformat(), last.isoformat(), instance, now, defs
    )
    print(f"velocity_anomaly_job {last}: {anomaly_secs:.2f} s, success {res.success}", flush=True)
    model_ok &= res.success
    runs = []
    for _ in range(args.repeat):
        res, secs, steps = timed_run(
            "monitoring_job", last.isoformat(), last.isoformat(), instance, now, defs
        )
        runs.append((secs, steps, res))
        print(f"monitoring_job {last}: {secs:.2f} s, steps {steps}, success {res.success}", flush=True)
    best = min(runs, key=lambda r: r[0])
    from analytics_pipelines.warehouse import open_warehouse

    wh = open_warehouse(os.environ["TT_WAREHOUSE_URL"])
    tickets = wh.count("stg_tickets")
    rows = wh.count("sales_velocity", "day = %s", [last])
    perf = wh.read_table("sellout_model_performance")
    mae = {
        (r["model"], r["bucket"]): r["value"]
        for r in perf.iter_rows(named=True)
        if r["metric"] == "eta_median_abs_error_minutes" and r["bucket"]
    }
    n50 = perf.filter(perf["bucket"] == "50%_sold")["n"].max()
    cov = perf.filter((perf["metric"] == "interval_coverage_80_calibrated") & perf["bucket"].is_null())
    coverage = (
        f"{cov['value'][0]:.3f} (n {cov['n'][0]})" if cov.height and cov["value"][0] is not None else "—"
    )

    def fmt(model: str) -> str:
        vals = [mae.get((model, f"{b}%_sold")) for b in (25, 50, 75)]
        return " / ".join("—" if v is None else f"{v:.0f}" for v in vals)

    failed = sorted({c for _, _, r in runs for c in failed_checks(r)})
    line = (
        f"| {date.today()} | {platform.node()[:12] or 'host'} | {args.scale if not args.warehouse_url else 'given'}"
        f" | {tickets:,} | {rows:,} | {best[0]:.2f} | {best[1].get('sales_velocity', float('nan')):.2f} | "
        f"{best[1].get('sellout_forecast', float('nan')):.2f} | {fmt('curve_knn')} | {fmt('seed_linear')} | "
        f"{n50} | {', '.join(failed) or 'none'} | {peak_rss_gb():.2f} | {model_secs:.2f} | {coverage} | "
        f"{anomaly_secs:.2f} | {os.getloadavg()[0]:.1f} |"
    )
    print(line)
    if args.record:
        if not RESULTS.exists():
            RESULTS.write_text(HEADER)
        elif "sellout_model_job s" not in RESULTS.read_text():  # the columns since the daily model job
            with RESULTS.open("a") as f:
                f.write("\nSince the daily model job (the 5-minute job only reads the library):\n\n")
                f.write(HEADER.split("\n\n", 2)[2])
        with RESULTS.open("a") as f:
            f.write(line + "\n")
    return 0 if model_ok and all(r.success for _, _, r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
