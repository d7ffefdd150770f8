"""Benchmark: source -> raw -> staging for every partition, timed per phase (not a test).

    python benchmarks/bench_ingest.py --scale medium --source postgres --warehouse duckdb
    python benchmarks/bench_ingest.py --source-url postgresql://.../tt_large --first 2024-11-01

Generates the source first unless --source-url is given (then it must already hold data). Prints wall
time per phase, rows/s and peak RSS; with --record appends a line to benchmarks/results/ingest.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import psycopg

from analytics_pipelines.source import contract
from analytics_pipelines.source.db import SourceDB
from analytics_pipelines.staging import audit as ingestion_audit
from analytics_pipelines.staging import ingestion
from analytics_pipelines.warehouse import open_warehouse

# generated data (synthetic people) lands with the development pseudonym key unless TT_ENV or
# TT_LANDING_PSEUDONYM_KEY says otherwise (docs/privacy.md)
os.environ.setdefault("TT_ENV", "development")

PG = "postgresql://postgres@127.0.0.1:5432"
RESULTS = Path(__file__).resolve().parent / "results" / "ingest.md"


def _pg_database(name: str) -> str:
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{PG}/{name}"


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--scale", default="medium")
    p.add_argument("--record", action="store_true", help="append the figures to benchmarks/results/ingest.md")
    p.add_argument("--source", choices=["postgres", "duckdb"], default="postgres")
    p.add_argument("--warehouse", choices=["postgres", "duckdb"], default="duckdb")
    p.add_argument("--source-url", help="reuse an existing source instead of generating one")
    p.add_argument("--first", default="2024-11-01")
    p.add_argument("--last", default=date.today().isoformat())
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        help="tables extracted/staged at a time (a main job launched from the "
        "UI or a schedule runs two steps at a time on this machine; `analytics-pipelines run`, one)",
    )
    args = p.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    if args.source_url:
        src_url = args.source_url
    else:
        from analytics_pipelines.generator.run import generate

        src_url = (
            _pg_database(f"bench_src_{args.scale}")
            if args.source == "postgres"
            else f"duckdb:///{tmp / 'source.duckdb'}"
        )
        t = time.perf_counter()
        generate(src_url, scale=args.scale, progress=True)
        print(f"generate {args.scale}: {time.perf_counter() - t:.1f} s")
    wh_url = _pg_database("bench_wh") if args.warehouse == "postgres" else f"duckdb:///{tmp / 'warehouse'}"
    src, wh = SourceDB(src_url), open_warehouse(wh_url)
    days = ingestion.day_range(args.first, args.last)
    source_rows = sum(src.count(t) for t in contract.tables())
    phases: dict[str, float] = {}

    def log(step):
        return lambda table, rows, secs: print(f"  {step} {table}: {rows:,} rows in {secs:.1f} s", flush=True)

    t = time.perf_counter()
    ingestion.ingest_raw_all(src, wh, args.first, args.last, workers=args.workers, log=log("raw"))
    phases["source -> raw"] = time.perf_counter() - t

    t = time.perf_counter()
    ingestion.stage_all(wh, args.first, args.last, workers=args.workers, log=log("stg"))
    phases["raw -> staging"] = time.perf_counter() - t

    t = time.perf_counter()
    audit = ingestion_audit.audit(src, wh)
    phases["audit"] = time.perf_counter() - t
    total = sum(phases.values())
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    print(audit)
    for k, v in phases.items():
        print(f"{k:16s} {v:8.1f} s   {source_rows / v:,.0f} rows/s")
    print(
        f"total {total:.1f} s for {source_rows:,} source rows over {len(days)} days; peak RSS {rss_gb:.2f} GB;"
        f" balanced={bool(audit['balanced'].all())}"
    )
    if not args.record:
        return 0
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as fh:
        fh.write(
            f"| {date.today()} | {platform.node()} | {args.scale if not args.source_url else 'given'} | "
            f"{args.source} | {args.warehouse} | {source_rows:,} | {len(days)} | "
            + " | ".join(f"{v:.1f}" for v in phases.values())
            + f" | {total:.1f} | {rss_gb:.2f} | {bool(audit['balanced'].all())} |\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
