"""How the API reads the marts: one interface, two backends.

- embedded warehouse (Parquet files): `SnapshotReader` keeps a private DuckDB database (a temporary file
  owned by this process, so nobody else can lock it) holding a copy of each mart the API serves. A
  background thread compares every table's partition files (size, mtime) once per `refresh_seconds`; the
  rows of each changed file are replaced in one DuckDB transaction (a whole table is rebuilt under a
  temporary name and swapped in when most of it changed), so a request sees a partition wholly old or
  wholly new. Writers rename whole files into place and each file is read through one descriptor, so the
  copy never holds half a partition; a request never touches the Parquet files and never fails because a
  run is writing. Results of identical queries are cached until the copy changes. Measured (medium, a year
  of venue_analytics): reading the files per request costs 150-330 ms, the copy answers in 1-4 ms.
- PostgreSQL warehouse: `PostgresReader` queries the tables directly in a read-only transaction that
  switches to the NOLOGIN role `tt_api_reader` and sets `app.tenant_id`; row-level security (`rls.py`)
  then hides every other tenant's rows even if a query forgot its tenant filter.

Queries are written once in the SQL both dialects share, with %s placeholders (parameters only).
"""

from __future__ import annotations

import logging
import os
import queue
import re
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
import psycopg
from psycopg import sql as psql

from analytics_pipelines.source.db import normalize_pg_url
from analytics_pipelines.warehouse.base import check_identifier
from analytics_pipelines.warehouse.embedded import DATA_FILE, VERSION_FILE
from analytics_pipelines.warehouse.postgres import SCHEMA, VERSIONS

log = logging.getLogger(__name__)

#: the marts the API serves (customer marts may not exist yet: their endpoints answer 503 until they do)
API_TABLES = ("venue_analytics", "venue_analytics_hourly", "event_analytics", "revenue_by_channel",
              "revenue_by_category", "sales_metrics", "event_performance", "venue_seasonality",
              "revenue_projections", "price_history", "resale_activity", "no_shows", "kpi_snapshots",
              "customer_rfm_scores", "customer_segments", "customer_segment_transitions",
              "customer_lifetime_value", "customer_cohorts", "customer_360", "model_performance")


class TableMissing(LookupError):
    """A mart the request needs is not materialized (yet)."""

    def __init__(self, table: str):
        super().__init__(f"{table} is not materialized yet")
        self.table = table


@dataclass
class Result:
    columns: list[str]
    rows: list[tuple]


class Reader(ABC):
    """What the API needs from a warehouse: tenant-scoped queries, the catalog, health.

    Results of identical queries (same tenant, SQL and parameters) are cached until the data changes: a
    subclass calls `_changed(tables)` when it sees tables change (the embedded copy on refresh, PostgreSQL
    when the warehouse's write counters move), which forgets the results that read one of them. A result
    computed while one of its tables changed is not cached, so the cache never outlives the data it was
    read from by more than one refresh."""

    kind: str

    def __init__(self, cache_size: int = 4096, cache_rows: int = 2_000_000, workers: int = 2):
        #: where the API's event loop sends cache misses: a few threads, not one per request -- 32
        #: concurrent requests each running DuckDB in its own thread convoyed on the GIL (p99 in the
        #: hundreds of ms while the median stayed at 3 ms)
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"tt-api-{self.kind}")
        self._generation = 0
        #: key -> (result, the marts its query reads): a change of one mart forgets only the results
        #: that read it (hourly KPI snapshots landing do not empty the venue dashboards' answers)
        self._cache: OrderedDict[tuple, tuple[Result, frozenset[str]]] = OrderedDict()
        self._table_generation: dict[str, int] = {}
        self._cache_lock = threading.Lock()
        self._cache_size = cache_size
        self._cache_rows = cache_rows
        self._cached_rows = 0
        self.cache_hits = 0
        self.cache_misses = 0

    @staticmethod
    def reads(sql: str, tables: Sequence[str]) -> frozenset[str]:
        """The marts a query reads: those it names (`tables`) and every served mart its SQL mentions."""
        words = set(re.findall(r"[a-z_][a-z0-9_]*", sql.lower()))
        return frozenset(tables) | frozenset(t for t in API_TABLES if t in words)

    def _generations(self, reads: frozenset[str]) -> tuple:
        return (self._generation, *(self._table_generation.get(t, 0) for t in sorted(reads)))

    def query(self, tenant_id: str, sql: str, params: Sequence = (), tables: Sequence[str] = ()) -> Result:
        """Run `sql` for `tenant_id` (RLS on PostgreSQL); `tables` are the marts it reads (a missing one
        raises TableMissing instead of a database error)."""
        self._require(tables)
        key = (tenant_id, sql, tuple(params))
        hit = self._cache.get(key) if self._caching() else None
        if hit is not None:
            self.cache_hits += 1
            return hit[0]
        self.cache_misses += 1
        reads = self.reads(sql, tables)
        generations = self._generations(reads)
        res = self._execute(tenant_id, sql, params, tables)
        if self._caching() and len(res.rows) <= self._cache_rows // 8:
            with self._cache_lock:
                if generations == self._generations(reads):  # none of its marts changed meanwhile
                    self._cache[key] = (res, reads)
                    self._cached_rows += len(res.rows)
                    while len(self._cache) > self._cache_size or self._cached_rows > self._cache_rows:
                        self._cached_rows -= len(self._cache.popitem(last=False)[1][0].rows)
        return res

    def cached(self, tenant_id: str, sql: str, params: Sequence = (), tables: Sequence[str] = ()) -> Result | None:
        """The cached result of `query(...)` or None. Touches no database, so the event loop calls it and
        only a miss goes to `executor`."""
        if not self._caching() or not self._known(tables):
            return None
        hit = self._cache.get((tenant_id, sql, tuple(params)))
        if hit is None:
            return None
        self.cache_hits += 1
        return hit[0]

    def _changed(self, tables: Sequence[str] | None = None) -> None:
        """These marts changed (None: any may have): forget every cached result that read one of them."""
        with self._cache_lock:
            if tables is None:
                self._generation += 1
                self._cache.clear()
                self._cached_rows = 0
                return
            changed = set(tables)
            for t in changed:
                self._table_generation[t] = self._table_generation.get(t, 0) + 1
            for key in [k for k, (_, reads) in self._cache.items() if reads & changed]:
                self._cached_rows -= len(self._cache.pop(key)[0].rows)

    def _caching(self) -> bool:
        return self._cache_size > 0

    def cache_stats(self) -> dict:
        return {"entries": len(self._cache), "rows": self._cached_rows, "hits": self.cache_hits,
                "misses": self.cache_misses, "generation": self._generation + sum(self._table_generation.values())}

    @abstractmethod
    def _known(self, tables: Sequence[str]) -> bool:
        """Whether every one of `tables` was present at the last look (no I/O)."""

    @abstractmethod
    def _require(self, tables: Sequence[str]) -> None:
        """Raise TableMissing for the first of `tables` that is not materialized."""

    @abstractmethod
    def _execute(self, tenant_id: str, sql: str, params: Sequence, tables: Sequence[str]) -> Result:
        """Run the query against the backend (no cache)."""

    @abstractmethod
    def tables(self) -> set[str]:
        """The marts present."""

    @abstractmethod
    def columns(self, table: str) -> list[str]:
        """A mart's columns."""

    @abstractmethod
    def status(self) -> dict:
        """Reachability and freshness, for /health/ready."""

    @abstractmethod
    def latest(self, table: str, column: str):
        """max(column) over the whole table (every tenant): freshness for /health/ready."""

    def close(self) -> None:
        """Release what the reader holds (subclasses release their connections too)."""
        self.executor.shutdown(wait=False, cancel_futures=True)


class _Poller:
    """A daemon thread calling `fn` every `seconds` until stopped; errors are kept for /health/ready."""

    def __init__(self, fn, seconds: float, name: str):
        self.fn, self.seconds = fn, seconds
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.seconds):
            try:
                self.fn()
                self.error = None
            except Exception as exc:  # noqa: BLE001 - keep serving what we have, report it
                self.error = f"{type(exc).__name__}: {exc}"
                log.exception("reader refresh failed; serving the previous data")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# -- embedded -----------------------------------------------------------------------------------------
def table_files(root: Path, table: str) -> dict[str, tuple[int, int]]:
    """The table's Parquet files -> (size, mtime_ns): any write changes it (writers rename new files in).

    Runs every few seconds while requests are served, so it stays cheap: one stat per partition for the
    warehouse's `<table>/<col>=<value>/data.parquet` layout (about 2 ms for 730 partitions), a directory
    walk only for other layouts."""
    out: dict[str, tuple[int, int]] = {}
    stack = [str(root / table)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for e in entries:
            if e.name.startswith("."):
                continue  # a writer's temporary file
            if e.is_dir(follow_symlinks=False):
                data = os.path.join(e.path, DATA_FILE)
                try:
                    st = os.stat(data)  # a partition directory holds exactly this one file
                    out[data] = (st.st_size, st.st_mtime_ns)
                except FileNotFoundError:
                    stack.append(e.path)  # nested partition columns (or not written yet): look inside
            elif e.name.endswith(".parquet"):
                try:
                    st = e.stat()
                except FileNotFoundError:
                    continue
                out[e.path] = (st.st_size, st.st_mtime_ns)
    return out


FILE_COL = "__tt_file"  # which partition file a row of the copy came from (never served)


def read_files(paths: list[str]):
    """The rows of these Parquet files (tagged with their path) as one Arrow table, or None.

    Each file is opened once and read through that one descriptor: a writer may rename a new version
    over the path meanwhile, and the descriptor keeps the old, whole file. (DuckDB's read_parquet may open
    a path more than once per query -- once per thread -- and so mix two versions of a partition, or fail
    with "Invalid data"; the reads-during-rewrites test caught both.)"""
    frames = []
    for path in paths:
        try:
            with open(path, "rb") as fh:
                df = pl.read_parquet(fh)
        except FileNotFoundError:
            continue  # gone since listed: the next refresh sees the directory as it is
        frames.append(df.with_columns(pl.lit(path).alias(FILE_COL)))
    if not frames:
        return None
    return pl.concat(frames, how="diagonal_relaxed").to_arrow()


class SnapshotReader(Reader):
    kind = "duckdb"

    def __init__(self, root: str | os.PathLike, tables: Sequence[str] = API_TABLES,
                 refresh_seconds: float = 2.0, memory_limit: str = "1GB", threads: int = 2,
                 background: bool = True, cache_size: int = 4096):
        super().__init__(cache_size, workers=threads)
        self.root = Path(root).resolve()
        self.wanted = tuple(check_identifier(t) for t in tables)
        self.refresh_seconds = refresh_seconds
        self._dir = tempfile.TemporaryDirectory(prefix="tt-api-snapshot-")
        self.db = duckdb.connect(os.path.join(self._dir.name, "snapshot.duckdb"))
        self.db.execute("SET TimeZone='UTC'")
        self.db.execute(f"SET memory_limit='{memory_limit}'")
        self.db.execute(f"SET threads={int(threads)}")
        self._files: dict[str, dict[str, tuple[int, int]]] = {}
        self._markers: dict[str, tuple[int, int] | None] = {}
        self._loaded_at: dict[str, float] = {}
        self._columns: dict[str, list[str]] = {}
        self._local = threading.local()
        self._lock = threading.Lock()      # one refresh at a time
        self._reloads = 0
        self.last_refresh = 0.0
        self.refresh()
        self._poller = _Poller(self.refresh, refresh_seconds, "tt-api-snapshot") if background else None

    @property
    def last_error(self) -> str | None:
        return self._poller.error if self._poller else None

    # refreshing ---------------------------------------------------------------------------------

    def _marker(self, table: str) -> tuple[int, int] | None:
        try:
            st = os.stat(self.root / table / VERSION_FILE)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns

    def refresh(self) -> list[str]:
        """Bring every table up to date with its files; returns the tables that changed.

        A table whose version marker (replaced by the warehouse after each write) is unchanged is not
        listed again: one stat per table instead of one per partition file, so the poll every few seconds
        costs microseconds, not the ~20 ms of GIL-holding directory walks that showed up as p99 spikes.
        Without a marker (a table written by other tools) the files are listed every time."""
        changed = []
        with self._lock:
            for t in self.wanted:
                marker = self._marker(t)  # before listing: a write landing meanwhile moves it again
                if marker is not None and marker == self._markers.get(t) and t in self._files:
                    continue
                files = table_files(self.root, t)
                if files != self._files.get(t, {}):
                    self._sync(t, files)
                    self._files[t] = files
                    self._loaded_at[t] = time.time()
                    changed.append(t)
                self._markers[t] = marker  # only once the copy is in step with the files
            if changed:
                self._changed(changed)
            self.last_refresh = time.time()
        return changed

    def _sync(self, table: str, files: dict[str, tuple[int, int]]) -> None:
        """Apply the changed partition files to the copy. Each file is whole (writers rename it into
        place); its rows are swapped in one DuckDB transaction, so a request never sees half of one."""
        old = self._files.get(table, {})
        conn = self.db.cursor()
        try:
            if not files:
                conn.execute(f"DROP TABLE IF EXISTS {table}")
                self._columns.pop(table, None)
                return
            stale = [f for f in old if files.get(f) != old[f]]
            fresh = [f for f in files if files[f] != old.get(f)]
            if table not in self._columns or len(fresh) > len(files) // 2:
                self._reload(conn, table, list(files))
                return
            new_rows = read_files(fresh)
            if new_rows is not None and set(new_rows.column_names) - {FILE_COL} - set(self._columns[table]):
                self._reload(conn, table, list(files))  # a new column (schema growth): rebuild the table
                return
            conn.execute("BEGIN")
            if stale:
                conn.execute(f"DELETE FROM {table} WHERE {FILE_COL} IN (SELECT unnest(?))", [stale])
            if new_rows is not None:
                conn.register("__tt_new_rows", new_rows)
                conn.execute(f"INSERT INTO {table} BY NAME SELECT * FROM __tt_new_rows")
                conn.unregister("__tt_new_rows")
            conn.execute("COMMIT")
        finally:
            conn.close()

    def _reload(self, conn: duckdb.DuckDBPyConnection, table: str, files: list[str]) -> None:
        self._reloads += 1
        tmp = f"__new_{table}_{self._reloads}"
        rows = read_files(files)
        conn.register("__tt_new_rows", rows)
        conn.execute(f"CREATE TABLE {tmp} AS SELECT * FROM __tt_new_rows")
        conn.unregister("__tt_new_rows")
        conn.execute("BEGIN")
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(f"ALTER TABLE {tmp} RENAME TO {table}")
        conn.execute("COMMIT")
        self._columns[table] = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? AND column_name <> ? "
            "ORDER BY ordinal_position", [table, FILE_COL]).fetchall()]

    # reading ------------------------------------------------------------------------------------
    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cur = getattr(self._local, "cur", None)
        if cur is None:
            cur = self._local.cur = self.db.cursor()
        return cur

    def tables(self) -> set[str]:
        return set(self._columns)

    def columns(self, table: str) -> list[str]:
        if table not in self._columns:
            raise TableMissing(table)
        return self._columns[table]

    def _known(self, tables):
        return all(t in self._columns for t in tables)

    def _require(self, tables):
        for t in tables:
            if t not in self._columns:
                raise TableMissing(t)

    def _execute(self, tenant_id, sql, params, tables) -> Result:
        cur = self._cursor()
        try:
            cur.execute(sql.replace("%s", "?"), list(params))
        except duckdb.CatalogException as exc:  # dropped between the check and the query
            missing = next((t for t in tables if t not in self._columns), None)
            if missing:
                raise TableMissing(missing) from exc
            raise
        return Result([d[0] for d in cur.description], cur.fetchall())

    def latest(self, table, column):
        if table not in self._columns:
            raise TableMissing(table)
        return self._cursor().execute(
            f"SELECT max({check_identifier(column)}) FROM {check_identifier(table)}").fetchone()[0]

    def status(self) -> dict:
        return {"backend": "duckdb", "reachable": self.root.is_dir(), "location": str(self.root),
                "tables": sorted(self._columns),
                "snapshot_age_seconds": round(time.time() - self.last_refresh, 3) if self.last_refresh else None,
                "loaded_at": {t: _iso(ts) for t, ts in sorted(self._loaded_at.items())},
                "refresh_error": self.last_error, "cache": self.cache_stats()}

    def close(self) -> None:
        super().close()
        if self._poller:
            self._poller.stop()
        self.db.close()
        self._dir.cleanup()


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


# -- PostgreSQL ---------------------------------------------------------------------------------------
class PostgresReader(Reader):
    kind = "postgres"

    def __init__(self, url: str, schema: str = SCHEMA, role: str = "tt_api_reader", pool_size: int = 8,
                 setup_rls: bool = True, catalog_seconds: float = 5.0, refresh_seconds: float = 1.0,
                 background: bool = True, cache_size: int = 4096):
        super().__init__(cache_size, workers=pool_size)
        self.url = normalize_pg_url(url)
        self.schema = check_identifier(schema)
        self.role = check_identifier(role)
        self._pool: queue.LifoQueue[psycopg.Connection] = queue.LifoQueue()
        self._size = pool_size
        self._made = 0
        self._made_lock = threading.Lock()
        self._catalog: dict[str, list[str]] = {}
        self._catalog_at = 0.0
        self._catalog_seconds = catalog_seconds
        self._setup_rls = setup_rls
        self._protected: set[str] = set()
        if setup_rls:
            self._protect()
        #: the warehouse's write counters (None: the table is absent, e.g. a warehouse written by an older
        #: version -- then nothing is cached, since nothing would tell the cache that the data changed)
        self._versions: dict[str, int] | None = None
        self.last_refresh = 0.0
        self._warm(min(pool_size, 4))
        self.refresh()
        self._poller = _Poller(self.refresh, refresh_seconds, "tt-api-versions") if background else None

    def _warm(self, n: int) -> None:
        """Open `n` pooled connections now (each costs ~10 ms to set up): the first requests after start
        do not queue behind connection setup."""
        held = []
        try:
            for _ in range(n):
                cm = self._conn()
                cm.__enter__()
                held.append(cm)
        finally:
            for cm in held:
                cm.__exit__(None, None, None)

    def refresh(self) -> bool:
        """Read the write counters; a change empties the result cache. Returns whether anything changed."""
        with self._conn() as conn, conn.transaction():
            exists = conn.execute("SELECT to_regclass(%s)", (f'"{self.schema}".{VERSIONS}',)).fetchone()[0]
            versions = dict(conn.execute(psql.SQL("SELECT table_name, version FROM {}").format(
                psql.Identifier(self.schema, VERSIONS))).fetchall()) if exists else None
        changed = versions != self._versions
        if changed:
            old = self._versions
            self._changed(None if versions is None or old is None else
                          [t for t in set(versions) | set(old) if versions.get(t) != old.get(t)])
            self._versions = versions
        self.last_refresh = time.time()
        return changed

    def _caching(self) -> bool:
        return self._versions is not None and self._cache_size > 0

    def _protect(self) -> None:
        from analytics_pipelines.api.rls import enable_tenant_rls

        self._protected = set(enable_tenant_rls(self.url, schema=self.schema, role=self.role))

    @contextmanager
    def _conn(self):
        try:
            conn = self._pool.get_nowait()
        except queue.Empty:
            with self._made_lock:
                grow = self._made < self._size
                if grow:
                    self._made += 1
            if grow:
                try:
                    conn = psycopg.connect(self.url, connect_timeout=5)
                except Exception:
                    with self._made_lock:
                        self._made -= 1
                    raise
                conn.read_only = True
            else:
                conn = self._pool.get(timeout=30)
        ok = False
        try:
            yield conn
            ok = True
        finally:
            if ok and not conn.closed:
                self._pool.put(conn)
            else:
                conn.close()
                with self._made_lock:
                    self._made -= 1

    def _refresh_catalog(self, force: bool = False) -> dict[str, list[str]]:
        if force or time.monotonic() - self._catalog_at > self._catalog_seconds:
            with self._conn() as conn, conn.transaction():
                rows = conn.execute(
                    "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = %s "
                    "ORDER BY table_name, ordinal_position", (self.schema,)).fetchall()
            cat: dict[str, list[str]] = {}
            for t, c in rows:
                cat.setdefault(t, []).append(c)
            self._catalog = cat
            self._catalog_at = time.monotonic()
            if self._setup_rls and any(t in cat and t not in self._protected for t in API_TABLES):
                self._protect()  # a mart appeared since start: protect it before serving it
        return self._catalog

    def tables(self) -> set[str]:
        return set(self._refresh_catalog())

    def columns(self, table: str) -> list[str]:
        cat = self._refresh_catalog()
        if table not in cat:
            raise TableMissing(table)
        return cat[table]

    def _known(self, tables):
        return all(t in self._catalog for t in tables)

    def _require(self, tables):
        cat = self._refresh_catalog()
        for t in tables:
            if t not in cat:
                cat = self._refresh_catalog(force=True)
                if t not in cat:
                    raise TableMissing(t)

    def _execute(self, tenant_id, sql, params, tables):
        with self._conn() as conn, conn.transaction():
            # one round trip: set_config(..., true) is SET LOCAL (role included: = SET LOCAL ROLE)
            conn.execute("SELECT set_config('role', %s, true), set_config('search_path', %s, true), "
                         "set_config('app.tenant_id', %s, true), set_config('TimeZone', 'UTC', true)",
                         (self.role, f'"{self.schema}", public', tenant_id))
            try:
                cur = conn.execute(sql, params)
            except psycopg.errors.UndefinedTable as exc:
                raise TableMissing(next(iter(tables), "a mart")) from exc
            return Result([d.name for d in cur.description], cur.fetchall())

    def latest(self, table, column):
        with self._conn() as conn, conn.transaction():
            return conn.execute(psql.SQL("SELECT max({}) FROM {}").format(
                psql.Identifier(column), psql.Identifier(self.schema, table))).fetchone()[0]

    def status(self) -> dict:
        try:
            with self._conn() as conn, conn.transaction():
                conn.execute("SELECT 1")
            return {"backend": "postgres", "reachable": True, "tables": sorted(self._refresh_catalog(True)),
                    "rls_tables": sorted(self._protected),
                    "versions_age_seconds": round(time.time() - self.last_refresh, 3) if self.last_refresh else None,
                    "refresh_error": self._poller.error if self._poller else None,
                    "cache": self.cache_stats() if self._caching() else "off (no write counters)"}
        except Exception as exc:  # noqa: BLE001 - readiness reports, never raises
            return {"backend": "postgres", "reachable": False, "error": f"{type(exc).__name__}: {exc}"}

    def close(self) -> None:
        super().close()
        if self._poller:
            self._poller.stop()
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                break


def open_reader(warehouse_url: str, **kwargs) -> Reader:
    if warehouse_url.startswith("duckdb:///"):
        return SnapshotReader(warehouse_url.removeprefix("duckdb:///"), **kwargs)
    return PostgresReader(warehouse_url, **kwargs)
