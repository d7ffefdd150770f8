"""Building `data/warehouse.duckdb`, the analysts' catalog of the embedded warehouse: views over the Parquet
files and the compacted months of small enough tables as DuckDB tables (the design: warehouse/catalog.py).

`wh` is always the embedded warehouse (`EmbeddedWarehouse.refresh_catalog` calls `rebuild`): its root, catalog
path, `scan_sql` and atomic file write."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import threading
import uuid
from pathlib import Path

import duckdb
import polars as pl

from analytics_pipelines.warehouse import catalog, months
from analytics_pipelines.warehouse.base import Warehouse, check_identifier
from analytics_pipelines.warehouse.files import DATA_FILE, FILE_COLUMN, link_current, sql_list, sql_strings

_catalog_lock = threading.Lock()


def rebuild(wh: Warehouse, new_tables: list[str] | None = None) -> Path:
    """(Re)build warehouse.duckdb: views over the Parquet files, for analysts' DuckDB tools, and the
    compacted months of small enough tables as DuckDB tables behind their views (catalog.py).

    With `new_tables`, the existing catalog is copied and only those tables are rebuilt; otherwise every
    one is. Either way the new catalog is built under a temporary name and renamed into place (a reader
    holding the old file keeps reading and never meets a lock), under an exclusive file lock so that
    concurrent runs rebuilding different tables do not lose each other's."""
    wh.catalog_path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = wh.catalog_path.with_name(".warehouse.catalog.lock")
    with _catalog_lock, open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        tmp = wh.catalog_path.with_name(f".warehouse.{uuid.uuid4().hex}.duckdb")
        links = wh.root / ".snapshots" / uuid.uuid4().hex
        incremental = new_tables is not None and wh.catalog_path.exists()
        try:
            if incremental:
                shutil.copyfile(wh.catalog_path, tmp)
            conn = duckdb.connect(str(tmp))
            try:
                conn.execute("SET TimeZone='UTC'")
                catalog.ensure_schema(conn)
                for t in new_tables if incremental else wh.tables():
                    conn.execute(f"CREATE OR REPLACE VIEW {t} AS {_catalog_view(wh, conn, t, links)}")
                conn.execute("CHECKPOINT")
            finally:
                conn.close()
            os.replace(tmp, wh.catalog_path)
        finally:
            tmp.unlink(missing_ok=True)
            Path(str(tmp) + ".wal").unlink(missing_ok=True)
            shutil.rmtree(links, ignore_errors=True)
    return wh.catalog_path


def _catalog_view(wh: Warehouse, conn: duckdb.DuckDBPyConnection, table: str, links: Path) -> str:
    """The catalog's view of `table`, after loading its compacted months into `tt_compacted."<table>"`
    when the table is compacted and small enough (else: the view over its files, `scan_sql`)."""
    base = wh.root / check_identifier(table)
    state = months.load(base)
    loaded = _load_months(wh, conn, base, state, links) if state.months and state.column else None
    if loaded is None:
        conn.execute(f"DELETE FROM {catalog.META} WHERE table_name = ?", [table])
        conn.execute(f'DROP TABLE IF EXISTS {catalog.SCHEMA}."{table}"')
        for anchor in catalog.anchors(base, state.column):  # (not in the catalog)
            anchor.unlink(missing_ok=True)
        return wh.scan_sql(table)
    col = re.escape(state.column)
    alt = "|".join(re.escape(m) for m in sorted(loaded))
    # the daily files of months not loaded (those of loaded months stay for the grace period); a
    # compaction's trash (.drop.*) is never read
    keep = f"NOT regexp_matches({FILE_COLUMN}, '/{col}=({alt})-') AND NOT contains({FILE_COLUMN}, '/.drop.')"
    if _day_keyed(conn, table, state.column):
        # the day in each daily file's directory name: DuckDB skips, without opening them, the files a
        # query's date range leaves out (the open days outside a 365-day window: 1-2 ms a query at `large`);
        # the schema file sits in a directory with a day of its own so that every file has the same key
        glob = str(base / "**" / f"{state.column}=*" / DATA_FILE).replace("'", "''")
        hive = f"hive_partitioning=true, hive_types={{'{state.column}': 'DATE'}}"
    else:
        glob, hive = str(base / "*" / DATA_FILE).replace("'", "''"), "hive_partitioning=false"
    return (
        f'SELECT * FROM {catalog.SCHEMA}."{table}" UNION ALL BY NAME '
        f"SELECT * EXCLUDE ({FILE_COLUMN}) FROM read_parquet('{glob}', union_by_name=true, "
        f"{hive}, filename='{FILE_COLUMN}') WHERE {keep}"
    )


def _day_keyed(conn: duckdb.DuckDBPyConnection, table: str, column: str) -> bool:
    """Whether the catalog table's partition column is a DATE: its view then reads the day from the daily
    files' directory names."""
    got = conn.execute(
        "SELECT data_type FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? AND column_name = ?",
        [catalog.SCHEMA, table, column],
    ).fetchone()
    return bool(got) and got[0] == "DATE"


def _load_months(wh: Warehouse, conn, base: Path, state: months.Months, links: Path) -> list[str] | None:
    """Load the table's compacted months into its catalog table, through hard links (the identity
    recorded is the one read): the months whose file changed since the catalog loaded them (a month
    rewrite) or that are new, every month when the table is not there yet; months no longer compacted
    (retention) are deleted. None when the table is over catalog.max_rows(table) (or a month file went
    missing meanwhile: retention)."""
    table = base.name
    target = f'{catalog.SCHEMA}."{table}"'
    got: dict[str, str] = {}
    (links / table).mkdir(parents=True, exist_ok=True)
    for month in sorted(state.months):
        link = links / table / f"{month}.parquet"
        if not link_current(months.month_file(base, month), link):
            return None
        got[month] = str(link)
    rows = conn.execute(f"SELECT sum(num_rows) FROM parquet_file_metadata({sql_list(got.values())})")
    if int(rows.fetchone()[0] or 0) > catalog.max_rows(table):
        return None
    exists = conn.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
        [catalog.SCHEMA, table],
    ).fetchone()[0]
    held = catalog.native_months(conn).get(table, {}) if exists else {}
    idents = {m: catalog.ident(link) for m, link in got.items()}
    redo = sorted(m for m in got if held.get(m) != idents[m])
    gone = sorted(set(held) - set(got))
    scan = "read_parquet({}, union_by_name=true, hive_partitioning=false) ORDER BY " + f'"{state.column}"'
    if held and (redo or gone):
        # a month's rows stay contiguous (loaded together, sorted): DuckDB's zone maps keep skipping
        try:
            conn.execute(
                f'DELETE FROM {target} WHERE left(CAST("{state.column}" AS VARCHAR), 7) IN '
                f"({sql_strings([*redo, *gone])})"
            )
            if redo:
                files = sql_list(got[m] for m in redo)
                conn.execute(f"INSERT INTO {target} BY NAME SELECT * FROM {scan.format(files)}")
        except duckdb.BinderException:  # a column the table does not have (schema growth): reload
            held = {}
    if not held:
        conn.execute(
            f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM {scan.format(sql_list(got.values()))}"
        )
    conn.execute(f"DELETE FROM {catalog.META} WHERE table_name = ?", [table])
    values = ", ".join(f"('{table}', '{m}', {i[0]}, {i[1]}, {i[2]})" for m, i in idents.items())
    conn.execute(f"INSERT INTO {catalog.META} VALUES {values}")
    # the copy under a day directory only where the view reads the day from the directory names
    anchors = catalog.anchors(base, state.column if _day_keyed(conn, table, state.column) else None)
    if not held or max(got) not in held or not all(a.exists() for a in anchors):
        # the view's glob over the daily files must match a file even when every month is compacted
        schema = pl.read_parquet_schema(got[max(got)])
        for anchor in anchors:
            wh._atomic_write(pl.DataFrame(schema=schema), anchor)
    return list(got)
