"""The compacted months of the embedded warehouse as DuckDB tables in its catalog, and the embedded reader's
shared in-process DuckDB.

Why: a query over Parquet files pays per file and per query (footers, decoding) what a DuckDB table pays once;
after monthly compaction a 365-day all-venue query over 13-26 month files still took 3-6x the same query on one
DuckDB table, and `analytics-pipelines sql` (a fresh in-memory DuckDB per query: ~11 ms CPU just to start one)
8.8x. So:

- `data/warehouse.duckdb` (the analysts' catalog, rebuilt under a temporary name and renamed into place, never
  written in place) holds, for each compacted table of at most `max_rows(table)` compacted rows, a table
  `tt_compacted."<table>"` with the rows of every month its manifest names (sorted by the partition column:
  DuckDB's zone maps skip what a date range leaves out), and a row per month in `tt_compacted.months` with the
  identity (inode, mtime, size) of the month file it was loaded from. The view `<table>` is that table
  `UNION ALL BY NAME` the daily files of the months not compacted (a glob, so new days appear without a
  rebuild; `<table>/.tt_schema/data.parquet`, zero rows with the table's columns, keeps the glob from matching
  nothing once every month is compacted). When the partition column is a DATE the view reads it from the
  daily files' directory names (hive partitioning; the schema file has a copy under
  `.tt_schema/<column>=0001-01-01/`), so DuckDB skips unopened the daily files a query's date range leaves
  out. Bigger tables keep their view over the month files.
- The month files stay the data (the API's copy and polars readers read them; a rebuild reloads from them).
  A write that rewrites a month file (a re-run of a day in a closed month, retention) refreshes the catalog
  afterwards; if that refresh never happens (the writer killed), the recorded identity no longer matches the
  file: the embedded reader then reads the file instead, and the next compaction run rebuilds the table.
- The embedded reader (`EmbeddedWarehouse.connect`, hence `read` and `analytics-pipelines sql`) uses one
  in-memory DuckDB per process and a cursor (its own connection, its own temporary views) per query; it
  attaches the catalog read-only through a hard link removed once attached (DuckDB keeps the file open: a
  renamed-in new catalog is attached next to the old one, which is detached once no query uses it) and uses a table's compacted rows only when every month the
  catalog holds is still in the manifest with the same file identity; everything else is read from the
  hard-link snapshot of the files, as before.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from analytics_pipelines.warehouse.files import DATA_FILE

SCHEMA = "tt_compacted"
META = f"{SCHEMA}.months"
#: a hidden directory (listing readers skip those) holding a zero-row file with the table's columns
ANCHOR_DIR = ".tt_schema"
#: the partition value of the schema file's copy for the views over day-partitioned files (a date no
#: partition has: the file has zero rows anyway)
ANCHOR_DAY = "0001-01-01"
#: compacted tables above this many rows keep their view over the month files: the catalog is copied on each
#: incremental rebuild (a month compacted, a day re-run in a closed month), so it should stay small next to the
#: warehouse. Measured at medium with every table under the limit (5.25M rows, 28 tables): a 412 MB catalog
#: and 0.8-2.1 s per day re-run in a closed month. The row-level tables (ROW_LEVEL_PREFIXES: raw, staging and
#: facts, one row per source row) get DEFAULT_MAX_ROWS: at medium and large their big ones (tickets, scans,
#: orders, order items) stay month files. The other tables (the marts analysts and the API query:
#: venue_analytics 375k rows at large, over the first limit) get AGGREGATE_MAX_ROWS.
#: TT_WAREHOUSE_CATALOG_MAX_ROWS sets one limit for every table.
DEFAULT_MAX_ROWS = 250_000
AGGREGATE_MAX_ROWS = 2_000_000
ROW_LEVEL_PREFIXES = ("raw_", "stg_", "fct_")
#: attached catalogs kept while idle (one per warehouse in practice; tests make many)
KEEP_IDLE = 4

Ident = tuple[int, int, int]


def anchors(base: Path, column: str | None) -> list[Path]:
    """A table's zero-row schema files: `<table>/.tt_schema/data.parquet` (its presence also says the table
    is in the catalog) and, given the `column` of a view that reads the partition value from the directory
    names, the same file under `<table>/.tt_schema/<column>=0001-01-01/`."""
    out = [base / ANCHOR_DIR / DATA_FILE]
    if column:
        out.append(base / ANCHOR_DIR / f"{column}={ANCHOR_DAY}" / DATA_FILE)
    return out


_ORPHANS: list = []


def max_rows(table: str) -> int:
    """The most compacted rows `table` may have to be held in the catalog (above: its view reads the month
    files)."""
    if os.environ.get("TT_WAREHOUSE_CATALOG_MAX_ROWS"):
        return int(os.environ["TT_WAREHOUSE_CATALOG_MAX_ROWS"])
    return DEFAULT_MAX_ROWS if table.startswith(ROW_LEVEL_PREFIXES) else AGGREGATE_MAX_ROWS


def ident(path: str | os.PathLike) -> Ident:
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns, st.st_size


def ensure_schema(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {META} (table_name VARCHAR, month VARCHAR, ino UBIGINT, "
        "mtime_ns BIGINT, size BIGINT)"
    )


def native_months(conn: duckdb.DuckDBPyConnection, db: str | None = None) -> dict[str, dict[str, Ident]]:
    """table -> {month: identity of the month file its rows were loaded from}, from a catalog (empty for a
    catalog without compacted tables)."""
    prefix = f"{db}." if db else ""
    try:
        rows = conn.execute(f"SELECT table_name, month, ino, mtime_ns, size FROM {prefix}{META}").fetchall()
    except duckdb.CatalogException:
        return {}
    out: dict[str, dict[str, Ident]] = {}
    for table, month, ino, mtime_ns, size in rows:
        out.setdefault(table, {})[month] = (int(ino), int(mtime_ns), int(size))
    return out


def stale(catalog: Path, root: Path) -> list[str]:
    """Tables whose compacted rows in the catalog no longer match the month files or the manifest (a month
    rewrite whose catalog refresh never ran); the compaction run rebuilds them."""
    from analytics_pipelines.warehouse import months

    if not catalog.exists():
        return []
    with duckdb.connect(str(catalog), read_only=True) as conn:
        native = native_months(conn)
    out = []
    for table, held in native.items():
        base = root / table
        if base.is_dir() and not current(base, months.load(base), held):
            out.append(table)
    return sorted(out)


def current(base: Path, state, held: dict[str, Ident]) -> bool:
    """Whether the catalog's rows of `held` months are what the table's files say now: every month still
    compacted under `state` (the manifest) and its file the one the rows were loaded from."""
    from analytics_pipelines.warehouse import months

    if not held or not set(held) <= state.compacted:
        return False
    try:
        return all(ident(months.month_file(base, m)) == i for m, i in held.items())
    except FileNotFoundError:
        return False


@dataclass
class _Attached:
    alias: str
    native: dict[str, dict[str, Ident]]
    users: int = 0
    used: int = 0


@dataclass
class _Instance:
    """One in-memory DuckDB per process for the embedded reader (starting one costs ~11 ms CPU; a cursor,
    with its own temporary views, costs nothing)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    pid: int | None = None
    db: duckdb.DuckDBPyConnection | None = None
    attached: dict[tuple[str, Ident], _Attached] = field(default_factory=dict)
    latest: dict[str, tuple[str, Ident]] = field(default_factory=dict)
    tick: int = 0

    def _fresh(self) -> None:
        if self.pid != os.getpid() or self.db is None:
            if self.db is not None:  # a forked child: the parent's DuckDB has no threads here, never close it
                _ORPHANS.append(self.db)
            self.db = duckdb.connect(":memory:")
            self.db.execute("SET GLOBAL TimeZone='UTC'")  # (every cursor's)
            self.pid, self.attached, self.latest = os.getpid(), {}, {}

    def _attach(self, catalog: Path, links: Path) -> _Attached | None:
        try:
            key = (str(catalog), ident(catalog)[:2])
        except FileNotFoundError:
            return None
        got = self.attached.get(key)
        if got is not None:
            return got
        links.mkdir(parents=True, exist_ok=True)
        link = links / f"catalog.{uuid.uuid4().hex}.duckdb"
        try:
            os.link(catalog, link)  # pins the version attached (a new catalog is renamed over the name)
        except OSError:
            return None  # gone meanwhile, or another file system: read the files
        key = (str(catalog), ident(link)[:2])
        alias = f"tt_catalog_{uuid.uuid4().hex[:12]}"
        try:
            self.db.execute(f"ATTACH '{str(link).replace(chr(39), chr(39) * 2)}' AS {alias} (READ_ONLY)")
        except duckdb.Error:
            return None
        finally:
            link.unlink(missing_ok=True)  # DuckDB holds the file open: nothing is left behind
        got = self.attached[key] = _Attached(alias, native_months(self.db, alias))
        self.latest[str(catalog)] = key
        return got

    def _collect(self) -> None:
        """Detach catalogs no query uses that were replaced by a newer one, and the least recently used
        beyond KEEP_IDLE."""
        idle = sorted(
            (a.used, k) for k, a in self.attached.items() if a.users == 0 and self.latest.get(k[0]) != k
        )
        keep = sorted((a.used, k) for k, a in self.attached.items() if a.users == 0)[:-KEEP_IDLE]
        for _, key in dict.fromkeys([*idle, *keep]):
            a = self.attached.pop(key)
            if self.latest.get(key[0]) == key:
                del self.latest[key[0]]
            try:
                self.db.execute(f"DETACH {a.alias}")
            except duckdb.Error:
                pass

    @contextmanager
    def session(
        self, catalog: Path, links: Path
    ) -> Iterator[tuple[duckdb.DuckDBPyConnection, str | None, dict[str, dict[str, Ident]]]]:
        """(a cursor, the attached catalog's alias or None, its compacted tables' months)."""
        with self.lock:
            self._fresh()
            cur = self.db.cursor()
            got = self._attach(catalog, links)
            if got is not None:
                self.tick += 1
                got.users += 1
                got.used = self.tick
        try:
            yield cur, (got.alias if got else None), (got.native if got else {})
        finally:
            cur.close()
            with self.lock:
                if got is not None:
                    got.users -= 1
                if self.pid == os.getpid():
                    self._collect()


READER = _Instance()
