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
This module holds the interface; the backends are reader_snapshot and reader_postgres; `readers.open_reader`
picks one for a URL.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

log = logging.getLogger(__name__)


def api_tables() -> tuple[str, ...]:
    """The marts the API serves: the registry's `serve=True` entries (customer marts may not exist yet:
    their endpoints answer 503 until they do)."""
    from analytics_pipelines.registry import default_registry

    return tuple(t.name for t in default_registry().servable())


def api_orders() -> dict[str, str]:
    """The served marts the embedded copy keeps in a column's order (the registry's `serve_order`)."""
    from analytics_pipelines.registry import default_registry

    return {t.name: t.serve_order for t in default_registry().servable() if t.serve_order}


class TableMissing(LookupError):
    """A mart the request needs is not materialized (yet)."""

    def __init__(self, table: str):
        super().__init__(f"{table} is not materialized yet")
        self.table = table


class QueryTimeout(TimeoutError):
    """The query ran past its statement timeout and was cancelled (PostgreSQL statement_timeout, DuckDB
    interrupt)."""

    def __init__(self, seconds: float):
        super().__init__(f"the query ran longer than its {seconds:g} s statement timeout and was cancelled")
        self.seconds = seconds


@dataclass
class Result:
    columns: list[str]
    rows: list[tuple]


class _Entry:
    """A cached result, the marts its query read, its statement timeout, when a request last used it and
    when it was computed (by that request, or by a refresh)."""

    __slots__ = ("result", "reads", "timeout", "used", "computed", "stale")

    def __init__(
        self, result: Result, reads: frozenset[str], timeout: float | None, used: float, computed: float
    ):
        self.result, self.reads, self.timeout = result, reads, timeout
        self.used, self.computed = used, computed
        #: its marts changed and a refresh is recomputing it: still served, except to `fresh` queries
        self.stale = False


class Reader(ABC):
    """What the API needs from a warehouse: tenant-scoped queries, the catalog, health.

    Results of identical queries (same tenant, SQL and parameters) are cached until the data changes: a
    subclass calls `_changed(tables)` when it sees tables change (the embedded copy on refresh, PostgreSQL
    when the warehouse's write counters move), which forgets the results that read one of them. A result
    computed while one of its tables changed is not cached, so the cache never outlives the data it was
    read from by more than one refresh.

    Refresh-ahead: when marts change, the results requests used in the last `warm_window` seconds (and since
    they were last computed) are recomputed against the new data by the thread that noticed the change
    (most recently used first, at most `warm_budget` seconds of work), each replacing its stale entry once
    computed; the others are dropped at once. A refresh therefore does not send every dashboard's next
    request to the database at the same moment (100 venues' first requests after a change queued behind
    each other: p99 160-660 ms at 200 req/s on medium). Until its turn a hot entry still answers with the previous data, so a result
    may be as old as one refresh plus the warm budget; `refresh()` returns after the warming."""

    kind: str
    #: results used within this many seconds before a change are recomputed instead of dropped
    warm_window: float = 900.0
    #: seconds of recomputation per change at most (the rest is dropped, recomputed on demand)
    warm_budget: float = 10.0

    def __init__(self, cache_size: int = 4096, cache_rows: int = 2_000_000, workers: int = 2):
        #: where the API's event loop sends cache misses: a few threads, not one per request -- 32
        #: concurrent requests each running DuckDB in its own thread convoyed on the GIL (p99 in the
        #: hundreds of ms while the median stayed at 3 ms)
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"tt-api-{self.kind}")
        self._generation = 0
        #: key -> (result, the marts its query reads): a change of one mart forgets only the results
        #: that read it (hourly KPI snapshots landing do not empty the venue dashboards' answers)
        self._cache: OrderedDict[tuple, _Entry] = OrderedDict()
        self._table_generation: dict[str, int] = {}
        self._cache_lock = threading.Lock()
        self._cache_size = cache_size
        self._cache_rows = cache_rows
        self._cached_rows = 0
        self.cache_hits = 0
        self.cache_misses = 0
        self.cache_warmed = 0
        self._warming = threading.Lock()  # one warm at a time (a change noticed while warming drops)
        #: the marts whose stale results are being recomputed (None: every mart); see `recomputing`
        self._recomputing: frozenset[str] | None = frozenset()
        #: called with the changed marts (None: any may have) after the cache forgot them (api/realtime.py)
        self._listeners: list = []

    def add_listener(self, fn) -> None:
        """`fn(tables)` after every change the reader notices (from its refresh thread): the API's realtime
        hub learns of a new materialization from the reader's own refresh, without polling the warehouse."""
        self._listeners.append(fn)

    #: the served marts (set by each backend from its `tables` argument or the registry)
    served: tuple[str, ...] = ()

    def reads(self, sql: str, tables: Sequence[str]) -> frozenset[str]:
        """The marts a query reads: those it names (`tables`) and every served mart its SQL mentions."""
        words = set(re.findall(r"[a-z_][a-z0-9_]*", sql.lower()))
        return frozenset(tables) | frozenset(t for t in self.served if t in words)

    def _generations(self, reads: frozenset[str]) -> tuple:
        return (self._generation, *(self._table_generation.get(t, 0) for t in sorted(reads)))

    def query(
        self,
        tenant_id: str,
        sql: str,
        params: Sequence = (),
        tables: Sequence[str] = (),
        timeout: float | None = None,
        fresh: bool = False,
    ) -> Result:
        """Run `sql` for `tenant_id` (RLS on PostgreSQL); `tables` are the marts it reads (a missing one
        raises TableMissing instead of a database error). `timeout` (seconds): cancel the statement after
        it and raise QueryTimeout (a cache hit is not timed). `fresh`: never the previous data of a result
        a refresh is still recomputing (what a change listener asks right after the change)."""
        self._require(tables)
        key = (tenant_id, sql, tuple(params))
        hit = self._cache.get(key) if self._caching() else None
        if hit is not None and not (fresh and hit.stale):
            self.cache_hits += 1
            hit.used = time.monotonic()
            return hit.result
        self.cache_misses += 1
        reads = self.reads(sql, tables)
        generations = self._generations(reads)
        if timeout is None:
            res = self._execute(tenant_id, sql, params, tables)
        else:
            res = self._execute(tenant_id, sql, params, tables, timeout=timeout)
        if self._caching() and len(res.rows) <= self._cache_rows // 8:
            with self._cache_lock:
                if generations == self._generations(reads):  # none of its marts changed meanwhile
                    now = time.monotonic()
                    self._store(key, _Entry(res, reads, timeout, now, now))
        return res

    def _store(self, key: tuple, entry: _Entry) -> None:
        """Put `entry` under `key` (replacing any), evicting the least recently stored beyond the bounds;
        the caller holds the cache lock."""
        old = self._cache.pop(key, None)
        if old is not None:
            self._cached_rows -= len(old.result.rows)
        self._cache[key] = entry
        self._cached_rows += len(entry.result.rows)
        while len(self._cache) > self._cache_size or self._cached_rows > self._cache_rows:
            self._cached_rows -= len(self._cache.popitem(last=False)[1].result.rows)

    def hot_keys(self, limit: int) -> list[tuple[str, str, tuple, list[str], float | None]]:
        """The `limit` most recently used cached queries: (tenant, sql, params, marts read, timeout), what
        api/warm_start.py keeps across a restart."""
        with self._cache_lock:
            entries = sorted(self._cache.items(), key=lambda ke: -ke[1].used)[:limit]
        return [(t, sql, params, sorted(e.reads), e.timeout) for (t, sql, params), e in entries]

    def versions(self, tables: Sequence[str]) -> dict[str, tuple[int, int]] | None:
        """Each mart's data version as the cache knows it (it moves when the reader sees the mart change);
        None when nothing is cached (nothing would tell a cache built on these that the data moved)."""
        if not self._caching():
            return None
        return {t: (self._generation, self._table_generation.get(t, 0)) for t in tables}

    def cached(
        self, tenant_id: str, sql: str, params: Sequence = (), tables: Sequence[str] = ()
    ) -> Result | None:
        """The cached result of `query(...)` or None. Touches no database, so the event loop calls it and
        only a miss goes to `executor`."""
        if not self._caching() or not self._known(tables):
            return None
        hit = self._cache.get((tenant_id, sql, tuple(params)))
        if hit is None:
            return None
        self.cache_hits += 1
        hit.used = time.monotonic()
        return hit.result

    def _changed(self, tables: Sequence[str] | None = None) -> None:
        """These marts changed (None: any may have): forget every cached result that read one of them, tell
        the listeners (who ask with `fresh`), then recompute the results used lately (refresh-ahead)."""
        hot = self._forget(tables)
        for fn in list(self._listeners):
            try:
                fn(None if tables is None else list(tables))
            except Exception:  # noqa: BLE001 - a listener never breaks the refresh
                log.exception("reader change listener failed")
        if hot is not None:
            try:
                self._recompute(hot)
            finally:
                self._recomputing = frozenset()
                self._warming.release()

    def recomputing(self, tables: Sequence[str]) -> bool:
        """Whether a refresh is recomputing results over any of `tables`: until it is done a cache hit on
        them may be the previous data, so nothing built from hits (api/memo.py) should be kept."""
        busy = self._recomputing
        return busy is None or bool(busy & set(tables))

    def _forget(self, tables: Sequence[str] | None) -> list[tuple[tuple, _Entry]] | None:
        """Forget the results that read `tables` (None: every result), except those used lately, which
        are marked stale and returned for recomputing, with the warming lock held (None: another change is
        being warmed; then everything affected is dropped)."""
        now = time.monotonic()
        with self._cache_lock:
            if tables is None:
                self._generation += 1
                affected = list(self._cache.items())
            else:
                changed = set(tables)
                for t in changed:
                    self._table_generation[t] = self._table_generation.get(t, 0) + 1
                affected = [(k, e) for k, e in self._cache.items() if e.reads & changed]
            # used lately, and since it was last computed: a result the refresh recomputed and nobody asked
            # for again is not recomputed on every later change (a long run changes marts every few seconds)
            hot = sorted(
                ((k, e) for k, e in affected if now - e.used <= self.warm_window and e.used >= e.computed),
                key=lambda ke: -ke[1].used,
            )
            warm = self._warming.acquire(blocking=False)  # a change noticed while warming: drop it all
            keep = {k for k, _ in hot} if warm else set()
            if keep:  # before any entry is marked stale: api/memo.py never keeps a body built from one
                self._recomputing = None if tables is None else frozenset(tables)
            for k, e in affected:
                if k in keep:
                    e.stale = True
                else:
                    self._drop(k, e)
        return hot if warm else None

    def _drop(self, key: tuple, entry: _Entry) -> None:
        """Remove `key` if it still holds `entry`; the caller holds the cache lock."""
        if self._cache.get(key) is entry:
            del self._cache[key]
            self._cached_rows -= len(entry.result.rows)

    def _recompute(self, hot: list[tuple[tuple, _Entry]]) -> None:
        """Recompute `hot` (stale entries still cached) against the current data, each swapped in when
        done; what the budget does not reach, or what fails, is dropped."""
        deadline = time.monotonic() + self.warm_budget
        for key, entry in hot:
            res = None
            generations = self._generations(entry.reads)
            if time.monotonic() < deadline:
                tenant_id, sql, params = key
                tables = tuple(sorted(entry.reads))
                try:
                    if entry.timeout is None:
                        res = self._execute(tenant_id, sql, params, tables)
                    else:
                        res = self._execute(tenant_id, sql, params, tables, timeout=entry.timeout)
                except Exception:  # noqa: BLE001 - dropped: the next request computes it (and reports)
                    res = None
            with self._cache_lock:
                fresh = res is not None and generations == self._generations(entry.reads)
                if fresh and self._cache.get(key) is entry and len(res.rows) <= self._cache_rows // 8:
                    self._store(key, _Entry(res, entry.reads, entry.timeout, entry.used, time.monotonic()))
                    self.cache_warmed += 1
                else:
                    self._drop(key, entry)

    def _caching(self) -> bool:
        return self._cache_size > 0

    def cache_stats(self) -> dict:
        return {
            "entries": len(self._cache),
            "rows": self._cached_rows,
            "hits": self.cache_hits,
            "misses": self.cache_misses,
            "warmed": self.cache_warmed,
            "generation": self._generation + sum(self._table_generation.values()),
        }

    @abstractmethod
    def _known(self, tables: Sequence[str]) -> bool:
        """Whether every one of `tables` was present at the last look (no I/O)."""

    @abstractmethod
    def _require(self, tables: Sequence[str]) -> None:
        """Raise TableMissing for the first of `tables` that is not materialized."""

    @abstractmethod
    def _execute(
        self, tenant_id: str, sql: str, params: Sequence, tables: Sequence[str], timeout: float | None = None
    ) -> Result:
        """Run the query against the backend (no cache), cancelled after `timeout` seconds (QueryTimeout)."""

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
