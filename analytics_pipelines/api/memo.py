"""Finished response bodies of the routes that do real work after their queries (the series of
/v1/metrics/*: gaps filled per period, moving averages, comparisons), kept while the marts they read are
unchanged.

The reader caches query results, but a 365-day trend still cost ~5.6 ms of Python per request on top of its
cached rows (period list, gap filling, moving average, JSON): at 200 req/s that is a whole core, and the
route's p50 was 180 ms under the benchmark's load. A memo entry is the encoded body under the request's
principal scope (tenant, venue, role, admin) and its path and query string, with the data version of every
mart its queries read taken *before* the first query ran; it answers while every one of those versions is
unchanged (warehouse/reader.py `versions`), and, like the reader's own results, while a refresh is still
recomputing the results over a mart that changed (refresh-ahead: the previous data until the new is ready;
without it every scope rebuilt its body at once mid-refresh, p99 4.2 s). Nothing is kept when the reader
keeps no versions (a PostgreSQL warehouse without write counters), nor while a refresh is recomputing
results over one of its marts (a cache hit may then still be the previous data)."""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence

from fastapi import Request, Response

from analytics_pipelines.api.auth import Principal
from analytics_pipelines.api.common import body_response, reader_of


class ResponseMemo:
    def __init__(self, size: int = 2048):
        self.size = size
        self._entries: OrderedDict[tuple, tuple[dict[str, tuple[int, int]], bytes]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(request: Request, p: Principal) -> tuple:
        q = sorted(request.query_params.multi_items())
        return (p.tenant_id, p.venue_id, p.role, p.is_admin, request.url.path, tuple(q))

    async def respond(
        self, request: Request, p: Principal, build: Callable[[], Awaitable[Response]]
    ) -> Response:
        """The memoized body of this request, or `build()`'s response (kept when it is a 200 whose queries
        pinned their marts through `pin`, see `ask`, and the reader keeps versions)."""
        reader = reader_of(request)
        key = self.key(request, p)
        got = self._entries.get(key)
        if got is not None and self._current(reader, got[0]):
            self.hits += 1
            return body_response(request, got[1])
        self.misses += 1
        pinned: dict[str, tuple[int, int]] = {}
        keep = [True]

        def pin(tables: Sequence[str]) -> None:
            now = reader.versions([t for t in tables if t not in pinned])
            if now is None or reader.recomputing(tables):  # a hit may be the previous data: keep nothing
                keep[0] = False
            else:
                pinned.update(now)

        request.state.memo_pin = pin
        response = await build()
        if reader.recomputing(list(pinned)):
            keep[0] = False
        if keep[0] and pinned and response.status_code == 200 and self.size > 0:
            with self._lock:
                self._entries[key] = (pinned, bytes(response.body))
                self._entries.move_to_end(key)
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
        return response

    @staticmethod
    def _current(reader, pinned: dict[str, tuple[int, int]]) -> bool:
        """Whether a body pinned at these versions may answer: none of its marts changed, or every one that
        did is still having its results recomputed by the refresh (the reader itself answers with the
        previous data until then: the same staleness, and no burst of rebuilds while it recomputes)."""
        now = reader.versions(list(pinned))
        if now is None:
            return False
        return all(now[t] == v or reader.recomputing([t]) for t, v in pinned.items())

    def stats(self) -> dict:
        return {"entries": len(self._entries), "hits": self.hits, "misses": self.misses}


def pin(request: Request, tables: Sequence[str]) -> None:
    """Tell the request's memo (if its route is memoized) the marts a query is about to read."""
    fn = getattr(request.state, "memo_pin", None)
    if fn is not None:
        fn(tables)


def memoized(route: Callable[..., Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
    """A route (with `request` and `p` parameters) answered from the app's memo while its marts are
    unchanged."""

    @functools.wraps(route)
    async def wrapper(*args, **kwargs) -> Response:
        request, p = kwargs["request"], kwargs["p"]
        return await request.app.state.memo.respond(request, p, lambda: route(*args, **kwargs))

    return wrapper
