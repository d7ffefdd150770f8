"""Time the synthetic platform generator into the embedded DuckDB source or a scratch PostgreSQL database.

    python benchmarks/bench_generate.py --scale medium --target duckdb
    python benchmarks/bench_generate.py --scale large --target postgres --record benchmarks/results/generate.md

Prints wall time, rows loaded, rows/s and this process's peak RSS (resource.getrusage; the PostgreSQL server's
own memory is not included). `--target none` times generation alone (frames built and dropped). PostgreSQL
runs go into a scratch database created on the server of TT_BENCH_PG_URL (default: the local postgres
database) and dropped afterwards; clean PostgreSQL runs include applying add_constraints.sql.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytics_pipelines.generator.run import generate  # noqa: E402
from analytics_pipelines.generator.synth import generate_frames  # noqa: E402

PG_ADMIN_URL = os.environ.get("TT_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TABLE_HEADER = (
    "| date | scale | target | mode | rows | wall s | rows/s | peak RSS GB | machine |\n"
    "|---|---|---|---|---:|---:|---:|---:|---|\n"
)


@contextmanager
def scratch_postgres() -> Iterator[str]:
    name = f"tt_bench_gen_{os.getpid()}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def scratch_duckdb() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="tt_bench_gen_") as tmp:
        yield f"duckdb:///{Path(tmp) / 'source.duckdb'}"


def run(scale: str, target: str, seed: int, dirty: bool, progress: bool) -> int:
    """Generate once; return the rows produced."""
    if target == "none":
        return sum(frame.height for _, frame in generate_frames(scale, seed))
    scratch = scratch_postgres if target == "postgres" else scratch_duckdb
    with scratch() as url:
        counts = generate(url, scale=scale, seed=seed, dirty=dirty, progress=progress)
    return sum(counts.values())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", default="medium", choices=["tiny", "small", "medium", "large"])
    p.add_argument("--target", default="duckdb", choices=["duckdb", "postgres", "none"])
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--dirty", action="store_true", help="landing source with injected bad rows (up to medium)"
    )
    p.add_argument("--progress", action="store_true", help="show the progress bar")
    p.add_argument("--record", type=Path, help="append the result as a row of this markdown table")
    args = p.parse_args()

    start = time.perf_counter()
    rows = run(args.scale, args.target, args.seed, args.dirty, args.progress)
    wall = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux reports KiB
    mode = "dirty" if args.dirty else "clean"
    print(
        f"scale={args.scale} target={args.target} mode={mode} rows={rows:,} wall={wall:.1f}s "
        f"rows/s={rows / wall:,.0f} peak_rss={peak_gb:.2f} GB"
    )
    if args.record:
        machine = f"{os.cpu_count()} cores, {platform.machine()}"
        row = (
            f"| {date.today()} | {args.scale} | {args.target} | {mode} | {rows:,} | {wall:.1f} | "
            f"{rows / wall:,.0f} | {peak_gb:.2f} | {machine} |\n"
        )
        args.record.parent.mkdir(parents=True, exist_ok=True)
        if not args.record.exists() or TABLE_HEADER.splitlines()[0] not in args.record.read_text():
            with args.record.open("a") as f:
                f.write(TABLE_HEADER)
        with args.record.open("a") as f:
            f.write(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
