"""Run a mart's SQL file over polars frames in an in-memory DuckDB (no warehouse, no Dagster)."""

from __future__ import annotations

import os
import threading
from datetime import date, datetime
from functools import cache

import duckdb
import polars as pl

from analytics_pipelines.paths import read_sql


@cache
def _sql(name: str) -> str:
    """`name` is a file of sql/marts/, or a path under sql/ such as `checks/orders_by_day`."""
    return read_sql(f"{name}.sql" if "/" in name else f"marts/{name}.sql")


def run(
    name: str, frames: dict[str, pl.DataFrame], **params: date | datetime | str | int | float
) -> pl.DataFrame:
    """Execute sql/marts/<name>.sql (or sql/<name>.sql) with `frames` visible as tables and `params` bound as $name."""
    return run_sql_text(_sql(name), frames, **params)


def run_sql_text(
    sql: str, frames: dict[str, pl.DataFrame], **params: date | datetime | str | int | float
) -> pl.DataFrame:
    """Execute `sql` with `frames` visible as tables and the `params` it uses bound as $name."""
    big = sum(getattr(f, "height", SHARED_ROWS + 1) for f in frames.values()) > SHARED_ROWS
    conn = duckdb.connect(":memory:", config={"threads": _threads()}) if big else _cursor()
    try:
        conn.execute("SET TimeZone='UTC'")
        conn.execute("SET enable_progress_bar=false")
        for table, frame in frames.items():
            conn.register(table, frame)
        used = {k: v for k, v in params.items() if f"${k}" in sql}
        return conn.execute(sql, used).pl()
    finally:
        conn.close()


#: SQL over at most this many input rows runs on a cursor of the process's in-memory DuckDB (~1.5 ms, where a
#: new in-memory database costs ~10: 23 SQL runs in a day's main_job); bigger inputs get a database of their
#: own, as before: over the 10.5M tickets and 8.7M scans of `large` (customer_attendance's check) the shared
#: one peaked ~0.7 GB higher
SHARED_ROWS = 1_000_000
_LOCK = threading.Lock()
#: (pid, the process's in-memory DuckDB); a cursor's registered frames and settings are its own, closed with it
_DB: list = []
#: a forked child's copy of its parent's database: never used or closed there
_ORPHANS: list = []


def _cursor() -> duckdb.DuckDBPyConnection:
    with _LOCK:
        if not _DB or _DB[0] != os.getpid():
            _ORPHANS.extend(_DB[1:])
            _DB[:] = [os.getpid(), duckdb.connect(":memory:", config={"threads": _threads()})]
        return _DB[1].cursor()


def _threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))
