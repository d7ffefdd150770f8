"""The API's reader of the PostgreSQL warehouse: read-only transactions as the RLS role (see warehouse.reader)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from contextlib import contextmanager

import psycopg
from psycopg import sql as psql

from analytics_pipelines.source.db import normalize_pg_url
from analytics_pipelines.warehouse.base import check_identifier
from analytics_pipelines.warehouse.postgres import SCHEMA, VERSIONS
from analytics_pipelines.warehouse.reader import (
    QueryTimeout,
    Reader,
    Result,
    TableMissing,
    _Poller,
    api_tables,
)


# -- PostgreSQL ---------------------------------------------------------------------------------------
class PostgresReader(Reader):
    kind = "postgres"

    def __init__(
        self,
        url: str,
        schema: str = SCHEMA,
        role: str = "tt_api_reader",
        pool_size: int = 8,
        setup_rls: bool = True,
        catalog_seconds: float = 5.0,
        refresh_seconds: float = 1.0,
        background: bool = True,
        cache_size: int = 4096,
        tables: Sequence[str] | None = None,
    ):
        super().__init__(cache_size, workers=pool_size)
        self.served = tuple(api_tables() if tables is None else tables)
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
            versions = (
                dict(
                    conn.execute(
                        psql.SQL("SELECT table_name, version FROM {}").format(
                            psql.Identifier(self.schema, VERSIONS)
                        )
                    ).fetchall()
                )
                if exists
                else None
            )
        changed = versions != self._versions
        if changed:
            old = self._versions
            self._changed(
                None
                if versions is None or old is None
                else [t for t in set(versions) | set(old) if versions.get(t) != old.get(t)]
            )
            self._versions = versions
        self.last_refresh = time.time()
        return changed

    def _caching(self) -> bool:
        return self._versions is not None and self._cache_size > 0

    def _protect(self) -> None:
        from analytics_pipelines.registry import default_registry
        from analytics_pipelines.warehouse.rls import enable_tenant_rls

        names = {t.name: t for t in default_registry().tables}
        shared = tuple(t for t in self.served if t in names and names[t].tenant_column is None)
        self._protected = set(enable_tenant_rls(self.url, schema=self.schema, role=self.role, shared=shared))

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
                    "ORDER BY table_name, ordinal_position",
                    (self.schema,),
                ).fetchall()
            cat: dict[str, list[str]] = {}
            for t, c in rows:
                cat.setdefault(t, []).append(c)
            self._catalog = cat
            self._catalog_at = time.monotonic()
            if self._setup_rls and any(t in cat and t not in self._protected for t in self.served):
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

    def _execute(self, tenant_id, sql, params, tables, timeout=None):
        setup = (
            "SELECT set_config('role', %s, true), set_config('search_path', %s, true), "
            "set_config('app.tenant_id', %s, true), set_config('TimeZone', 'UTC', true)"
        )
        args = [self.role, f'"{self.schema}", public', tenant_id]
        if timeout is not None:  # SET LOCAL statement_timeout, at least 1 ms (0 would switch it off)
            setup += ", set_config('statement_timeout', %s, true)"
            args.append(str(max(1, round(timeout * 1000))))
        with self._conn() as conn, conn.transaction():
            # one round trip: set_config(..., true) is SET LOCAL (role included: = SET LOCAL ROLE)
            conn.execute(setup, args)
            try:
                cur = conn.execute(sql, params)
            except psycopg.errors.UndefinedTable as exc:
                raise TableMissing(next(iter(tables), "a mart")) from exc
            except psycopg.errors.QueryCanceled as exc:
                raise QueryTimeout(timeout or 0) from exc
            return Result([d.name for d in cur.description], cur.fetchall())

    def latest(self, table, column):
        with self._conn() as conn, conn.transaction():
            return conn.execute(
                psql.SQL("SELECT max({}) FROM {}").format(
                    psql.Identifier(column), psql.Identifier(self.schema, table)
                )
            ).fetchone()[0]

    def status(self) -> dict:
        try:
            with self._conn() as conn, conn.transaction():
                conn.execute("SELECT 1")
            return {
                "backend": "postgres",
                "reachable": True,
                "tables": sorted(self._refresh_catalog(True)),
                "rls_tables": sorted(self._protected),
                "versions_age_seconds": round(time.time() - self.last_refresh, 3)
                if self.last_refresh
                else None,
                "refresh_error": self._poller.error if self._poller else None,
                "cache": self.cache_stats() if self._caching() else "off (no write counters)",
            }
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
