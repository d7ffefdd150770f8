"""behavior_job through the real Dagster job (benchmarks/jobrun.py) for ONE daily partition, and the
data-driven model's channel ranking it materializes (attribution_channel_effects) against the planted order.
Prints; with --record writes benchmarks/results/behavior_<scale>.md.

    .venv/bin/python benchmarks/bench_behavior_job.py --scale medium --data-dir /tmp/bench-behavior-medium/data

Setup (untimed; each phase skipped when its output is already there, so an existing data directory is
reused): (1) without <data-dir>/source.duckdb, generate the scale (seed 42, every planting) into an embedded
DuckDB source with the behavioral collections as Extended JSON files (<data-dir>/mongo; with an existing
source, the files must be there: `analytics-pipelines generate --behavior-dir`); (2) without fct_orders in
the warehouse, main_job over the attribution's window (stg_venues, fct_orders); (3) behavior_job over the
210 days before the day that raw_campaign_touchpoints does not hold yet (what the daily schedule would have
ingested: the data-driven model trains on the 180 days before the run's last day, paths over a 30-day
lookback). Timed: behavior_job for the day alone (the daily schedule's run): seconds of the ingestion step
(every collection, read + parse + normalize + place + quarantine) and of the attribution step (five models,
the Shapley game refitted per tenant), from the run's STEP_SUCCESS events.
Goals (issue 18, at `large`): ingestion of one day <= 20 s, attribution of one day <= 30 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from analytics_pipelines.generator.reference import DEFAULT_AS_OF, SCALES

TRAINING_AND_LOOKBACK = 210


def _shift(day: str, days: int) -> str:
    return (date.fromisoformat(day) + timedelta(days=days)).isoformat()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="small", choices=list(SCALES))
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument(
        "--data-dir", required=True, help="source.duckdb, mongo/ and warehouse/ (created if absent)"
    )
    ap.add_argument("--day", default=(DEFAULT_AS_OF - timedelta(days=30)).isoformat())
    ap.add_argument("--chunk-days", type=int, default=70, help="the setup backfill's days per run")
    ap.add_argument(
        "--skip-backfill",
        action="store_true",
        help="no behavior_job over the 210 days before: the ingestion figure only (attribution then trains "
        "on whatever touchpoints the warehouse holds, so its seconds and ranking are not the daily run's)",
    )
    ap.add_argument(
        "--touchpoints-setup",
        action="store_true",
        help="setup: instead of behavior_job over the 210 days before, ingest only their touchpoints "
        "(raw_campaign_touchpoints, by the ingestion function, untimed): all the attribution reads of them, "
        "at a fraction of the cost (`large`); the funnel and campaign_roi then see the day's data only",
    )
    ap.add_argument("--record", action="store_true", help="write benchmarks/results/behavior_<scale>.md")
    args = ap.parse_args(argv)
    data = Path(args.data_dir).resolve()
    day = args.day
    first = _shift(day, -TRAINING_AND_LOOKBACK)
    start = (DEFAULT_AS_OF - timedelta(days=SCALES[args.scale].history_days)).isoformat()
    os.environ.update(
        {
            "TT_DATA_DIR": str(data),
            "TT_SOURCE_URL": f"duckdb:///{data / 'source.duckdb'}",
            "TT_WAREHOUSE_URL": f"duckdb:///{data / 'warehouse'}",
            "TT_OPS_URL": f"sqlite:///{data / 'ops.sqlite'}",
            "TT_BEHAVIOR_DIR": str(data / "mongo"),
            "TT_PARTITION_START": min(start, "2025-11-01"),
            "TT_ENV": os.environ.get("TT_ENV", "development"),
        }
    )
    import dagster as dg
    import polars as pl
    from jobrun import failed_checks, peak_rss_gb, timed_run

    from analytics_pipelines.definitions import build_definitions
    from analytics_pipelines.generator.behavior import planted_truth_values
    from analytics_pipelines.generator.run import generate
    from analytics_pipelines.registry import default_registry
    from analytics_pipelines.settings import Settings
    from analytics_pipelines.warehouse import open_warehouse

    defs = build_definitions(default_registry(), Settings.from_env())
    instance = dg.DagsterInstance.ephemeral()
    now = datetime.combine(DEFAULT_AS_OF, datetime.min.time(), UTC).isoformat()
    setup: list[str] = []
    data.mkdir(parents=True, exist_ok=True)
    if not (data / "source.duckdb").exists():
        t = time.perf_counter()
        counts = generate(
            os.environ["TT_SOURCE_URL"],
            scale=args.scale,
            seed=args.seed,
            progress=False,
            truth_path=data / "truth.json",
            behavior_dir=data / "mongo",
        )
        setup.append(f"generate (relational rows + documents): {time.perf_counter() - t:.0f} s, {counts}")
        print(setup[-1], flush=True)
    wh = open_warehouse(os.environ["TT_WAREHOUSE_URL"])
    if "fct_orders" not in wh.tables():
        result, seconds, _ = timed_run("main_job", first, day, instance, now=now, defs=defs)
        setup.append(f"main_job {first}..{day}: {seconds:.0f} s, failed checks {failed_checks(result)}")
        print(setup[-1], flush=True)
        if not {"fct_orders", "stg_venues"} <= set(wh.tables()):  # what behavior_job reads
            raise SystemExit("main_job did not build fct_orders and stg_venues")
    lo = first
    if "behavior_ledger" in wh.tables():  # resume after the last day already ingested
        done = wh.read_partitions("behavior_ledger", "day", first, _shift(day, -1), columns=["day"])
        if done.height:
            lo = max(lo, _shift(str(done["day"].max()), 1))
    if args.touchpoints_setup and not args.skip_backfill:
        from analytics_pipelines.behavior.ingest import ingest
        from analytics_pipelines.behavior.source import FileSource

        venues = wh.read_table("stg_venues").select(
            pl.col("id").cast(pl.String), pl.col("tenant_id").cast(pl.String)
        )
        have = set()
        if "raw_campaign_touchpoints" in wh.tables():
            got = wh.read_partitions(
                "raw_campaign_touchpoints", "day", first, _shift(day, -1), columns=["day"]
            )
            have = set(got["day"].cast(pl.String).unique().to_list())
        lo = first
        while lo < day:
            hi = min(_shift(lo, args.chunk_days - 1), _shift(day, -1))
            keys = [_shift(lo, i) for i in range((date.fromisoformat(hi) - date.fromisoformat(lo)).days + 1)]
            if not set(keys) <= have:
                t, c = time.perf_counter(), time.process_time()
                lag = Settings.from_env().mongo_safety_lag_minutes
                out = ingest(FileSource(data / "mongo"), lo, hi, venues, lag, kinds=("touchpoints",))
                tp = out["raw_campaign_touchpoints"]
                wh.write_partitions("raw_campaign_touchpoints", tp, ["day"], [(k,) for k in keys])
                setup.append(
                    f"touchpoints {lo}..{hi}: {tp.height:,} rows, {time.perf_counter() - t:.0f} s "
                    f"({time.process_time() - c:.0f} CPU-s)"
                )
                print(setup[-1], flush=True)
            lo = _shift(hi, 1)
    while lo < day and not args.skip_backfill and not args.touchpoints_setup:
        hi = min(_shift(lo, args.chunk_days - 1), _shift(day, -1))
        result, seconds, _ = timed_run("behavior_job", lo, hi, instance, now=now, defs=defs)
        setup.append(f"behavior_job {lo}..{hi}: {seconds:.0f} s, failed checks {failed_checks(result)}")
        print(setup[-1], flush=True)
        lo = _shift(hi, 1)
    result, seconds, steps = timed_run("behavior_job", day, day, instance, now=now, defs=defs)
    rss = peak_rss_gb()
    ledger = wh.read_partitions("behavior_ledger", "day", day, day)
    eff = wh.read_partitions("attribution_channel_effects", "day", day, day)
    orders = wh.read_partitions("campaign_attribution", "day", day, day)["order_id"].n_unique()
    truth_file = data / "truth.json"  # written by generate; the behavioral truth is the generator's constants
    truth = json.loads(truth_file.read_text())["behavior"] if truth_file.exists() else planted_truth_values()
    planted = truth["planted_order"]
    ingest_s = next((s for k, s in steps.items() if k.startswith("raw_behavior_events")), float("nan"))
    attr_s = next((s for k, s in steps.items() if k.startswith("campaign_attribution")), float("nan"))
    load = os.getloadavg()
    lines = [
        f"# behavior_job, `{args.scale}` (seed 42, every planting), one daily partition ({day})",
        "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, 2 cores shared with other jobs; "
        f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min) right after the timed run. "
        "Wall seconds of a step depend on that load.",
        "",
        "Timed: `behavior_job` for the one partition, the real Dagster job in process "
        "(benchmarks/bench_behavior_job.py); step seconds from the run's STEP_SUCCESS events.",
        "",
        "| step | wall s | volume |",
        "|---|---|---|",
        f"| **ingest one day** (`raw_behavior_events` step: every collection) | **{ingest_s:.1f}** | "
        f"{int(ledger['docs'].sum()):,} documents placed in the day |",
        f"| **attribute one day** (`campaign_attribution` step: 5 models, Shapley game fitted per tenant on "
        f"180 days) | **{attr_s:.1f}** | {orders:,} orders attributed |",
        f"| whole run ({len(steps)} steps, checks included) | {seconds:.1f} | success {result.success}, "
        f"failed checks {failed_checks(result) or 'none'}, peak RSS {rss:.1f} GB |",
        "",
        "Steps: " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(steps.items())),
        "",
        *(["Setup (untimed): " + "; ".join(setup), ""] if setup else []),
        *(
            ["**--skip-backfill**: the attribution step and the ranking below are NOT the daily run's.", ""]
            if args.skip_backfill
            else []
        ),
        *(
            [
                "**--touchpoints-setup**: the 210 days before were set up with their touchpoints only (all "
                "the attribution step reads of them); the funnel and campaign_roi saw only the day's rows.",
                "",
            ]
            if args.touchpoints_setup
            else []
        ),
        f"Planted order of true incremental effect: {', '.join(planted)}",
        "",
        "| tenant | data-driven ranking (estimated effect; planted in brackets) | = planted | seed fixed-weight "
        "ranking | = planted |",
        "|---|---|---|---|---|",
    ]
    ok = result.success
    for (tenant,), rows in eff.group_by("tenant_id", maintain_order=True):
        dd = rows.sort("effect_rank")
        sd = rows.sort("seed_rank")["channel"].to_list()
        ranking = ", ".join(
            f"{c} {e:.3f} ({truth['incremental_effect'][c]:.2f})"
            for c, e in zip(dd["channel"], dd["incremental_effect"], strict=True)
        )
        match = dd["channel"].to_list() == planted
        ok = ok and match and sd != planted
        lines.append(f"| {tenant[:8]} | {ranking} | {match} | {', '.join(sd)} | {sd == planted} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.record:
        (Path(__file__).parent / "results" / f"behavior_{args.scale}.md").write_text(text)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
