"""Benchmark: the whole project through the real Dagster jobs, exactly as `make run` runs them (not a test).

    python benchmarks/bench_full.py --scale large --data-dir /work/large            # generate if absent, run all
    python benchmarks/bench_full.py --scale medium --record                           # append to results/

Phases, each a real job run on a persistent local Dagster instance under <data-dir>/.dagster (the UI can be
pointed at it):
  1. generation (when the data dir has no source yet; timed apart: the goals exclude it);
  2. full refresh: main_job over every partition, then every other job of `make run`
     (analytics_pipelines.runner.everything_else: KPIs, anomalies, behavior, velocity, models, customers,
     reports, publication, fraud);
  3. one new daily partition: main_job for the last sales day again (the daily schedule's work);
  4. a 30-day backfill: main_job over the last 30 days (one single-run backfill);
  5. the customer analytics again for one day (customers_job).
Per asset step: seconds (STEP_START..STEP_SUCCESS from the instance's event log) and the process's peak RSS
while the step ran (a 50 ms /proc sampler; steps run in this process, one at a time). Prints the table; with
--record writes benchmarks/results/full-<scale>.md (overwritten) and the step seconds as JSON next to it, which
bench_scaling.py reads to compute the small/medium/large ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


class RssSampler(threading.Thread):
    """The process's resident set and CPU seconds (user + system, all threads) every `every` seconds, with
    wall-clock timestamps: a step's CPU seconds do not depend on what else the machine runs."""

    def __init__(self, every: float = 0.05):
        super().__init__(daemon=True)
        self.every, self.samples, self._halt = every, [], threading.Event()

    def run(self) -> None:
        with open("/proc/self/statm") as fh, open("/proc/self/stat") as st:
            while not self._halt.is_set():
                fh.seek(0)
                st.seek(0)
                fields = st.read().rsplit(")", 1)[1].split()
                cpu = (int(fields[11]) + int(fields[12])) / TICK  # utime, stime
                self.samples.append((time.time(), int(fh.read().split()[1]) * PAGE, cpu))
                time.sleep(self.every)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def peak_between(self, start: float, end: float) -> int:
        inside = [rss for t, rss, _ in self.samples if start <= t <= end]
        # a step shorter than one sample interval: the sample just before it
        return max(inside) if inside else max((rss for t, rss, _ in self.samples if t <= end), default=0)

    def cpu_between(self, start: float, end: float) -> float:
        before = [cpu for t, _, cpu in self.samples if t <= start]
        after = [cpu for t, _, cpu in self.samples if t >= end]
        if not before or not after:
            return float("nan")
        return after[0] - before[-1]


def steps_of(instance, run_id: str, sampler: RssSampler) -> list[dict]:
    """One row per step of the run: seconds, peak RSS, success."""
    starts: dict[str, float] = {}
    rows = []
    for rec in instance.all_logs(run_id):
        ev = rec.dagster_event
        if ev is None or ev.step_key is None:
            continue
        if ev.event_type_value == "STEP_START":
            starts[ev.step_key] = rec.timestamp
        elif ev.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and ev.step_key in starts:
            start = starts[ev.step_key]
            rows.append(
                {
                    "step": ev.step_key,
                    "seconds": round(rec.timestamp - start, 2),
                    "cpu_seconds": round(sampler.cpu_between(start, rec.timestamp), 2),
                    "peak_rss_gb": round(sampler.peak_between(start, rec.timestamp) / 2**30, 2),
                    "ok": ev.event_type_value == "STEP_SUCCESS",
                }
            )
    return rows


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--scale", default="small", choices=["tiny", "small", "medium", "large"])
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--data-dir", help="where the source, warehouse and Dagster storage live (default: a temp dir)"
    )
    p.add_argument("--record", action="store_true", help="write benchmarks/results/full-<scale>.{md,json}")
    p.add_argument("--skip-incremental", action="store_true", help="only generation and the full refresh")
    p.add_argument(
        "--jobs",
        nargs="+",
        metavar="JOB[:FIRST[:LAST]]",
        help="instead of the phases: run just these jobs, in order, on the data dir as it is (after a full "
        "refresh; `last` as FIRST or LAST means the last sales day), e.g. `fraud_job:last predictions_job`; "
        "--record then writes full-<scale>-<first job>.{md,json}",
    )
    p.add_argument(
        "--no-behavior",
        action="store_true",
        help="generate without the behavioral documents (at `large` they do not fit in memory yet)",
    )
    args = p.parse_args()

    import tempfile

    data = Path(args.data_dir or tempfile.mkdtemp(prefix=f"bench_full_{args.scale}_")).resolve()
    data.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TT_ENV", "development")  # synthetic people: the development pseudonym key
    os.environ["TT_DATA_DIR"] = str(data)
    os.environ["TT_DAGSTER_STORAGE"] = str(data / ".dagster")
    for k in ("TT_SOURCE_URL", "TT_WAREHOUSE_URL", "TT_OPS_URL"):
        os.environ.pop(k, None)  # the embedded default, as `make run`
    from analytics_pipelines.generator.reference import SCALES
    from analytics_pipelines.generator.run import DEFAULT_AS_OF

    # partitions from the generated history's first day (the default start, 2025-11-01, covers `small`'s
    # 365 days but only the last ~400 of medium's and large's 730)
    launch = DEFAULT_AS_OF - timedelta(days=SCALES[args.scale].history_days)
    os.environ.setdefault("TT_PARTITION_START", launch.replace(day=1).isoformat())

    from analytics_pipelines.cli import _setup_dagster_home

    _setup_dagster_home()
    import dagster as dg

    from analytics_pipelines.customers.build import last_sales_day
    from analytics_pipelines.generator.run import generate
    from analytics_pipelines.resources import default_source_url, default_warehouse_url
    from analytics_pipelines.runner import everything_else, key_for, never_materialized, run_job
    from analytics_pipelines.warehouse import open_warehouse

    sampler = RssSampler()
    sampler.start()
    phases: dict[str, float] = {}
    cpu: dict[str, float] = {}
    source_url = default_source_url()
    if not Path(source_url.removeprefix("duckdb:///")).exists():
        t = time.perf_counter()
        generate(
            source_url,
            scale=args.scale,
            seed=args.seed,
            progress=True,
            truth_path=data / "truth.json",
            behavior_dir=None if args.no_behavior else data / "mongo",
        )
        phases["generation (excluded from the goals)"] = time.perf_counter() - t
    instance = dg.DagsterInstance.get()
    runs: list[tuple[str, str, object]] = []

    def timed(phase: str, job: str, first=None, last=None):
        t = time.perf_counter()
        cpu0 = time.process_time()
        result = run_job(job, first=first, last=last, instance=instance, log_level="WARNING")
        runs.append((phase, job, result))
        phases[phase] = phases.get(phase, 0.0) + time.perf_counter() - t
        cpu[phase] = cpu.get(phase, 0.0) + time.process_time() - cpu0
        print(
            f"{phase}: {job} {first or ''}..{last or ''} {time.perf_counter() - t:.1f} s ok={result.success}"
        )
        return result

    if args.jobs:
        for spec in args.jobs:
            job, first, last = (spec.split(":") + [None, None])[:3]
            if "last" in (first, last):  # after the jobs before it (main_job builds fct_orders)
                day = last_sales_day(open_warehouse(default_warehouse_url())).isoformat()
                first, last = (day if v == "last" else v for v in (first, last))
            timed(job, job, first, last or first)
    else:
        timed("full refresh", "main_job")
        t, cpu0 = time.perf_counter(), time.process_time()
        for job, result in everything_else(default_warehouse_url(), log=lambda *_: None):
            runs.append(("full refresh", job, result))
        phases["full refresh"] += time.perf_counter() - t
        cpu["full refresh"] += time.process_time() - cpu0
        print(f"full refresh (every job of make run): {phases['full refresh']:.1f} s")
    through = None if args.jobs else last_sales_day(open_warehouse(default_warehouse_url()))
    if not args.jobs and not args.skip_incremental and through is not None:
        timed("one new day", "main_job", through.isoformat(), through.isoformat())
        timed("30-day backfill", "main_job", (through - timedelta(days=29)).isoformat(), through.isoformat())
        c = key_for("customers_job", through)
        timed("customers (one day)", "customers_job", c, c)
    sampler.stop()
    missing = [] if args.jobs else never_materialized(instance)

    wh = open_warehouse(default_warehouse_url())
    inputs = {t: wh.count(t) for t in ("fct_orders", "fct_tickets", "dim_customers") if t in wh.tables()}
    rows = []
    for phase, job, result in runs:
        for s in steps_of(instance, result.run_id, sampler):
            rows.append({"phase": phase, "job": job, **s})
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    failed = sorted({f"{r['job']}:{r['step']}" for r in rows if not r["ok"]})
    lines = [
        f"# Full pipeline through the real jobs: `{args.scale}` (seed {args.seed})",
        "",
        f"{date.today()} · {platform.node()} · {os.cpu_count()} cores · load average at the end "
        f"{os.getloadavg()[0]:.1f} · inputs: " + ", ".join(f"{k} {v:,}" for k, v in inputs.items()),
        "",
        "| phase | seconds | CPU seconds |",
        "|---|---|---|",
        *[f"| {k} | {v:.1f} | {cpu.get(k, float('nan')):.1f} |" for k, v in phases.items()],
        f"| process peak RSS | {peak:.2f} GB |",
        "",
        f"Failed steps: {', '.join(failed) or 'none'} · never materialized: {', '.join(missing) or 'none'}",
        "",
        "| phase | job | asset step | seconds | CPU seconds | peak RSS GB |",
        "|---|---|---|---|---|---|",
        *[
            f"| {r['phase']} | {r['job']} | {r['step']}{'' if r['ok'] else ' (FAILED)'} | {r['seconds']:.2f} | "
            f"{r['cpu_seconds']:.1f} | {r['peak_rss_gb']:.2f} |"
            for r in sorted(rows, key=lambda r: (r["phase"] != "full refresh", -r["seconds"]))
        ],
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.record:
        name = f"full-{args.scale}" + (f"-{args.jobs[0].split(':')[0]}" if args.jobs else "")
        (RESULTS / f"{name}.md").write_text(text)
        (RESULTS / f"{name}.json").write_text(
            json.dumps(
                {"scale": args.scale, "inputs": inputs, "phases": phases, "cpu": cpu, "steps": rows}, indent=1
            )
            + "\n"
        )
    return 0 if not failed and not missing else 1


if __name__ == "__main__":
    sys.exit(main())
