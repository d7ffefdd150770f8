"""Benchmark: every mart (facts, daily marts, whole-table marts) -- full rebuild and one new day (not a test).

    python benchmarks/bench_marts.py --scale medium                 # generate + ingest, then the marts
    python benchmarks/bench_marts.py --warehouse-url duckdb:///tmp/wh --first 2024-11-01 --last 2026-10-31

With --warehouse-url the warehouse must already hold staging for first..last. Prints seconds per mart for
the full rebuild and for the incremental run of the last day, whether every reconciliation passed, and
appends a line to benchmarks/results/marts.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from analytics_pipelines import ingestion
from analytics_pipelines.marts.pipeline import build_everything
from analytics_pipelines.source.db import SourceDB
from analytics_pipelines.warehouse import open_warehouse

# generated data (synthetic people) lands with the development pseudonym key unless TT_ENV or
# TT_LANDING_PSEUDONYM_KEY says otherwise (docs/privacy.md)
os.environ.setdefault("TT_ENV", "development")

RESULTS = Path(__file__).resolve().parent / "results" / "marts.md"
HEADER = ("| date | host | scale | warehouse | fct_orders rows | days | full rebuild s | slowest marts (full) | "
          "one new day s | reconciled | peak RSS GB |\n|---|---|---|---|---|---|---|---|---|---|---|\n")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--scale", default="medium")
    p.add_argument("--warehouse-url")
    p.add_argument("--first", default="2024-11-01")
    p.add_argument("--last", default="2026-10-31")
    args = p.parse_args()
    now = datetime.combine(date.fromisoformat(args.last), datetime.min.time(), UTC)
    if args.warehouse_url:
        wh = open_warehouse(args.warehouse_url)
    else:
        from analytics_pipelines.generator.run import generate

        tmp = Path(tempfile.mkdtemp(prefix="bench_marts_"))
        src = f"duckdb:///{tmp / 'source.duckdb'}"
        t = time.perf_counter()
        generate(src, scale=args.scale, progress=True)
        print(f"generate {args.scale}: {time.perf_counter() - t:.1f} s", flush=True)
        wh = open_warehouse(f"duckdb:///{tmp / 'warehouse'}")
        t = time.perf_counter()
        ingestion.ingest_everything(SourceDB(src), wh, args.first, args.last, now=now)
        print(f"ingest: {time.perf_counter() - t:.1f} s ({wh.location()})", flush=True)

    t = time.perf_counter()
    outcomes, seconds = build_everything(wh, args.first, args.last, now, kpi_hours=24)
    full = time.perf_counter() - t
    for k, v in seconds.items():
        print(f"  full {k:26s} {v:7.2f} s", flush=True)
    failed = [k for k, o in outcomes.items() if not o.passed]
    print(f"full rebuild: {full:.1f} s (incl. reconciliation); failed checks: {failed or 'none'}")

    t = time.perf_counter()
    outcomes1, seconds1 = build_everything(wh, args.last, args.last, now, kpi_hours=1, incremental=True)
    one = time.perf_counter() - t
    for k, v in seconds1.items():
        print(f"  day  {k:26s} {v:7.2f} s", flush=True)
    failed += [k for k, o in outcomes1.items() if not o.passed]
    print(f"one new day: {one:.1f} s (incl. reconciliation); failed checks: {failed or 'none'}")
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    slow = ", ".join(f"{k} {v:.1f}" for k, v in sorted(seconds.items(), key=lambda kv: -kv[1])[:3])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    if not RESULTS.exists():
        RESULTS.write_text("# Marts benchmark\n\nFull rebuild = every daily partition of every mart plus the whole-"
                           "table marts and 24 hourly KPI snapshots, each with its reconciliation query.\n\n" + HEADER)
    with RESULTS.open("a") as fh:
        fh.write(f"| {date.today()} | {platform.node()} | {args.scale if not args.warehouse_url else 'given'} | "
                 f"{wh.kind} | {wh.count('fct_orders'):,} | {(date.fromisoformat(args.last) - date.fromisoformat(args.first)).days + 1} | "
                 f"{full:.1f} | {slow} | {one:.1f} | {not failed} | {rss_gb:.2f} |\n")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
