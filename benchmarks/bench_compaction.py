"""Benchmark: analyst queries and the API's refresh over the embedded warehouse, with daily partition files
(before), after monthly compaction (warehouse/compaction.py), and on one DuckDB table / one Parquet file
(the floor). Not a test.

    python benchmarks/bench_compaction.py --warehouse /tmp/compact15-medium/data/warehouse [--record]

The warehouse is one a run built (e.g. `analytics-pipelines run --main-only` on `medium`). It is never
modified: the benchmark works on a hard-link copy (compaction renames new files in and removes the copy's
links, the original files stay). Figures printed; --record appends them to benchmarks/results/compaction.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb

from analytics_pipelines.warehouse import open_warehouse
from analytics_pipelines.warehouse.compaction import compact
from analytics_pipelines.warehouse.reader_snapshot import SnapshotReader

RESULTS = Path(__file__).resolve().parent / "results" / "compaction.md"
TABLE = "venue_analytics"
#: an analyst's 365-day venue query: one venue's daily revenue over a year
VENUE_YEAR = (
    "SELECT day, sum(gross_revenue_cents) AS revenue, sum(tickets_sold) AS tickets FROM venue_analytics "
    "WHERE venue_id = ? AND day BETWEEN ? AND ? GROUP BY day ORDER BY day"
)
#: and every venue's year totals (what a dashboard's venue ranking asks)
VENUES_YEAR = (
    "SELECT venue_id, sum(gross_revenue_cents) AS revenue, sum(orders) AS orders FROM venue_analytics "
    "WHERE day BETWEEN ? AND ? GROUP BY venue_id ORDER BY revenue DESC, venue_id"
)


def timed(fn, runs: int) -> dict:
    fn()  # warm (file cache, DuckDB's metadata cache)
    xs = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        xs.append((time.perf_counter() - t) * 1000)
    xs.sort()
    return {"median": statistics.median(xs), "min": xs[0], "max": xs[-1]}


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def measure(catalog: Path, root: Path, venue: str, first: str, last: str, runs: int) -> dict:
    out = {}
    conn = duckdb.connect(str(catalog), read_only=True)
    try:
        out["venue_year_catalog"] = timed(
            lambda: conn.execute(VENUE_YEAR, [venue, first, last]).fetchall(), runs
        )
        out["venues_year_catalog"] = timed(lambda: conn.execute(VENUES_YEAR, [first, last]).fetchall(), runs)
        out["files_opened"] = _files_read(conn, first, last)
        out["answer"] = conn.execute(VENUES_YEAR, [first, last]).fetchall()
    finally:
        conn.close()
    wh = open_warehouse(f"duckdb:///{root}")
    out["venue_year_sql_cli"] = timed(
        lambda: wh.read(VENUE_YEAR.replace("?", "%s"), [venue, first, last]), runs
    )
    out["api_refresh"] = timed(lambda: SnapshotReader(root, tables=[TABLE], background=False).close(), 3)
    return out


def _files_read(conn, first: str, last: str) -> int:
    plan = conn.execute(
        "EXPLAIN ANALYZE SELECT count(*) FROM venue_analytics WHERE day BETWEEN ? AND ?", [first, last]
    ).fetchall()[0][1]
    for line in plan.splitlines():
        if "Total Files Read:" in line:
            return int(line.split(":")[1].strip(" │"))
    return -1


def floor(root: Path, tmp: Path, venue: str, first: str, last: str, runs: int) -> dict:
    """The same queries on one DuckDB table (in a database file), and the API's load from one file."""
    rows = open_warehouse(f"duckdb:///{root}").read_table(TABLE)
    db = duckdb.connect(str(tmp / "floor.duckdb"))
    try:
        db.register("rows", rows.to_arrow())
        db.execute(f"CREATE TABLE {TABLE} AS SELECT * FROM rows ORDER BY day")
        db.execute("CHECKPOINT")
        out = {
            "venue_year_catalog": timed(
                lambda: db.execute(VENUE_YEAR, [venue, first, last]).fetchall(), runs
            ),
            "venues_year_catalog": timed(lambda: db.execute(VENUES_YEAR, [first, last]).fetchall(), runs),
            "answer": db.execute(VENUES_YEAR, [first, last]).fetchall(),
        }
    finally:
        db.close()
    one = tmp / "one" / TABLE
    one.mkdir(parents=True)
    rows.sort("day").write_parquet(one / "data.parquet", compression="zstd", compression_level=1)
    out["api_refresh"] = timed(
        lambda: SnapshotReader(tmp / "one", tables=[TABLE], background=False).close(), 3
    )
    out["files_opened"] = 1
    return out


def rerun_day(root: Path, day: str) -> dict:
    """One day re-run (same rows) and the API copy's incremental refresh that follows it."""
    wh = open_warehouse(f"duckdb:///{root}")
    rows = wh.read_partitions(TABLE, "day", day, day)
    reader = SnapshotReader(root, tables=[TABLE], background=False)
    try:
        t = time.perf_counter()
        wh.write_partitions(TABLE, rows, ["day"], [(day,)])
        write_ms = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        reader.refresh()
        refresh_ms = (time.perf_counter() - t) * 1000
    finally:
        reader.close()
    return {"write_ms": write_ms, "refresh_ms": refresh_ms}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--warehouse", required=True, help="a built embedded warehouse directory (not modified)")
    p.add_argument("--last", default="2026-10-31", help="last day of the 365-day window")
    p.add_argument("--now", default=None, help="compaction's 'now' (default: the wall clock)")
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--label", default="medium (main_job, seed 42)")
    p.add_argument("--tables", help="comma list of tables to compact (default: every table, as the job does)")
    p.add_argument(
        "--record", action="store_true", help="append the figures to benchmarks/results/compaction.md"
    )
    args = p.parse_args()
    last = date.fromisoformat(args.last)
    first = (last - timedelta(days=364)).isoformat()
    tmp = Path(tempfile.mkdtemp(prefix="bench_compaction_"))
    try:
        root = tmp / "warehouse"
        subprocess.run(["cp", "-al", str(Path(args.warehouse).resolve()), str(root)], check=True)
        wh = open_warehouse(f"duckdb:///{root}")
        wh.refresh_catalog()  # the copy's own catalog (views over the copy's files)
        venue = wh.read(
            "SELECT venue_id, sum(gross_revenue_cents) AS r FROM venue_analytics GROUP BY venue_id ORDER BY r DESC"
        )["venue_id"][0]
        n_rows = wh.count(TABLE)
        print(
            f"{TABLE}: {n_rows:,} rows in {len(wh._files(TABLE))} files; venue {venue}; {first}..{args.last}"
        )
        load_before = load()
        print(f"load before: {load_before}")
        before = measure(wh.catalog_path, root, venue, first, args.last, args.runs)
        day_rerun_before = rerun_day(root, (last - timedelta(days=200)).isoformat())
        now = datetime.fromisoformat(args.now) if args.now else datetime.now(UTC)
        t = time.perf_counter()
        report = compact(wh, now, grace_seconds=0, tables=args.tables.split(",") if args.tables else None)
        compact_s = time.perf_counter() - t
        report.pop("changed")
        print(f"compaction of {args.tables or 'every table'}: {compact_s:.1f} s {report}")
        after = measure(wh.catalog_path, root, venue, first, args.last, args.runs)
        day_rerun_after = rerun_day(root, (last - timedelta(days=200)).isoformat())
        base = floor(root, tmp, venue, first, args.last, args.runs)
        print(f"load after: {load()}")
        if not (before["answer"] == after["answer"] == base["answer"]):
            raise SystemExit("the answers differ between daily files, compacted files and the single table")
        lines = []
        for key, what in [
            ("venue_year_catalog", "365-day venue query (catalog warehouse.duckdb)"),
            ("venues_year_catalog", "365-day all-venues totals (catalog)"),
            ("venue_year_sql_cli", "365-day venue query (`analytics-pipelines sql`: hard-link snapshot)"),
            ("api_refresh", "API refresh: full load of venue_analytics into the copy"),
        ]:
            b, a = before[key], after[key]
            f = base.get(key, base["venue_year_catalog"] if key == "venue_year_sql_cli" else None)
            lines.append(
                f"| {what} | {b['median']:.1f} ({b['min']:.1f}) | {a['median']:.1f} ({a['min']:.1f}) | "
                f"{f['median']:.1f} ({f['min']:.1f}) | {b['median'] / f['median']:.1f}x | "
                f"{a['median'] / f['median']:.1f}x ({a['min'] / f['min']:.1f}x) |"
            )
            print(
                f"{what:70s} before {b['median']:8.1f} ({b['min']:.1f}) ms  after {a['median']:8.1f} "
                f"({a['min']:.1f}) ms  floor {f['median']:8.1f} ({f['min']:.1f}) ms  "
                f"after/floor {a['median'] / f['median']:.2f}x (min {a['min'] / f['min']:.2f}x)"
            )
        print(
            f"files opened by the 365-day scan: before {before['files_opened']}, after {after['files_opened']}"
        )
        print(f"one day re-run + API refresh, daily files: {day_rerun_before}")
        print(f"one day re-run + API refresh, compacted month: {day_rerun_after}")
        if args.record:
            new = not RESULTS.exists()
            with RESULTS.open("a") as fh:
                if new:
                    fh.write(
                        "# Compaction benchmark\n\n`benchmarks/bench_compaction.py`: medians of repeated "
                        "queries (ms), before compaction (one file per daily partition), after "
                        "(`warehouse_compaction_job`'s code: one file per closed month), and the floor (the "
                        "same rows as one DuckDB table in a database file; for the API's refresh, one "
                        "Parquet file). Ratios are to the floor.\n"
                    )
                fh.write(
                    f"\n## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node() or 'vm'}, {args.label}\n\n"
                    f"{TABLE}: {n_rows:,} rows; window {first}..{args.last}; compaction of "
                    f"{'every table' if not args.tables else args.tables} "
                    f"{compact_s:.1f} s ({report['months_compacted']} months of {report['tables_compacted']} "
                    f"tables, {report['rows_compacted']:,} rows); files opened by the 365-day scan: "
                    f"{before['files_opened']} before, {after['files_opened']} after. "
                    f"Load average (1/5/15 min) before: {load_before}; after: {load()}.\n\n"
                    "| query | before ms, median (min) | after ms | floor ms | before/floor | after/floor "
                    "(min/min) |\n"
                    "|---|---|---|---|---|---|\n" + "\n".join(lines) + "\n\n"
                    f"One day re-run (same rows) then the API copy's refresh: daily files "
                    f"{day_rerun_before['write_ms']:.0f} + {day_rerun_before['refresh_ms']:.0f} ms; inside a "
                    f"compacted month (the month's file rewritten) {day_rerun_after['write_ms']:.0f} + "
                    f"{day_rerun_after['refresh_ms']:.0f} ms.\n"
                )
            print(f"recorded in {RESULTS}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
