"""Benchmark: the real Dagster marts_job (facts, daily marts, whole-table marts) -- full rebuild of every
partition and one new day -- plus kpi_job for 24 hours (not a test).

    python benchmarks/bench_marts.py --scale medium                 # generate + ingest (ingest_job), then marts
    python benchmarks/bench_marts.py --warehouse-url duckdb:///tmp/wh --first 2024-11-01 --last 2026-10-31

With --warehouse-url the warehouse must already hold staging for first..last. Runs on an ephemeral Dagster
instance, prints seconds per asset step (from the run's step events, checks included), whether every check
passed, and with --record appends a line to benchmarks/results/marts.md.
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

# generated data (synthetic people) lands with the development pseudonym key unless TT_ENV or
# TT_LANDING_PSEUDONYM_KEY says otherwise (docs/privacy.md)
os.environ.setdefault("TT_ENV", "development")

RESULTS = Path(__file__).resolve().parent / "results" / "marts.md"
HEADER = (
    "| date | host | scale | warehouse | fct_orders rows | days | full rebuild s | slowest assets (full) | "
    "one new day s | checks passed | peak RSS GB |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--scale", default="medium")
    p.add_argument("--warehouse-url")
    p.add_argument("--first", default="2024-11-01")
    p.add_argument("--last", default="2026-10-31")
    p.add_argument("--record", action="store_true", help="append the figures to benchmarks/results/marts.md")
    args = p.parse_args()
    os.environ.setdefault("TT_ENV", "development")
    os.environ["TT_PARTITION_START"] = args.first
    now = (datetime.fromisoformat(args.last) + timedelta(days=1)).isoformat() + "+00:00"
    tmp = Path(tempfile.mkdtemp(prefix="bench_marts_"))
    os.environ.setdefault("TT_DATA_DIR", str(tmp))
    instance = dg.DagsterInstance.ephemeral()
    if args.warehouse_url:
        os.environ["TT_WAREHOUSE_URL"] = args.warehouse_url
    else:
        from analytics_pipelines.generator.run import generate

        src = f"duckdb:///{tmp / 'source.duckdb'}"
        os.environ["TT_SOURCE_URL"] = src
        os.environ["TT_WAREHOUSE_URL"] = f"duckdb:///{tmp / 'warehouse'}"
        t = time.perf_counter()
        generate(src, scale=args.scale, progress=True)
        print(f"generate {args.scale}: {time.perf_counter() - t:.1f} s", flush=True)
        result, seconds, _ = timed_run("ingest_job", args.first, args.last, instance, now)
        print(f"ingest_job: {seconds:.1f} s, success={result.success}", flush=True)
    from analytics_pipelines.warehouse import open_warehouse

    wh = open_warehouse(os.environ["TT_WAREHOUSE_URL"])
    full_result, full, steps = timed_run("marts_job", args.first, args.last, instance, now)
    for k, v in sorted(steps.items(), key=lambda kv: -kv[1]):
        print(f"  full {k:30s} {v:7.2f} s", flush=True)
    failed = failed_checks(full_result)
    print(f"marts_job full rebuild: {full:.1f} s; failed checks: {failed or 'none'}", flush=True)
    day_result, one, steps1 = timed_run("marts_job", args.last, args.last, instance, now)
    for k, v in sorted(steps1.items(), key=lambda kv: -kv[1])[:8]:
        print(f"  day  {k:30s} {v:7.2f} s", flush=True)
    failed += failed_checks(day_result)
    print(f"marts_job one new day: {one:.1f} s; failed checks: {failed or 'none'}", flush=True)
    rss = peak_rss_gb()
    if args.record:
        slow = ", ".join(f"{k} {v:.1f}" for k, v in sorted(steps.items(), key=lambda kv: -kv[1])[:3])
        if not RESULTS.exists():
            RESULTS.write_text("# Marts benchmark\n\n" + HEADER)
        days = (date.fromisoformat(args.last) - date.fromisoformat(args.first)).days + 1
        with RESULTS.open("a") as fh:
            fh.write(
                f"| {date.today()} | {platform.node()} | {args.scale if not args.warehouse_url else 'given'} | "
                f"{wh.kind} | {wh.count('fct_orders'):,} | {days} | {full:.1f} (marts_job) | {slow} | "
                f"{one:.1f} | {not failed} | {rss:.2f} |\n"
            )
    print(f"peak RSS {rss:.2f} GB")
    return 0 if full_result.success and day_result.success and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
