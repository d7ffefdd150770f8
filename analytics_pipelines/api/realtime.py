"""Realtime reads (issue 21; the seed's realtime.routes and `GET /realtime/summary`), served from the freshest
materialized tables with their as-of times -- never from per-request SQL over raw data, never from counters.

- `kpi_snapshots` (hourly KPIs, the kpi schedule): the latest hour's metrics of the scope;
- `sales_velocity` (5-minute buckets, the velocity schedule): the newest bucket of the scope, summed over its
  events selling (tickets in the bucket, tickets/minute over 5 and 60 minutes, events at high velocity or
  about to sell out);
- `conversion_funnel` (behavioral data, daily): the latest day's sessions and purchases. This replaces the
  seed's Redis counters (`metrics:traffic:*`, expiring after 24 h): the behavioral pipeline's sessions are
  counted once per day from the landed events, so "active sessions" is the latest complete day's, with its
  date, not a live gauge (there is no live session stream to read).

`/v1/realtime/subscribe` is Server-Sent Events: one hub per API process listens to the warehouse reader's own
change notifications (the reader polls the warehouse once per refresh interval for every purpose; the hub adds
no polling), recomputes the snapshot once per subscribed scope when one of the tables above changed, and pushes
it to that scope's subscribers. Event ids are the snapshot's content hash: a client reconnecting with
`Last-Event-ID` gets the current snapshot at once only if it differs from the one it has (this holds across
restarts and API workers). Heartbeat comments keep proxies from closing idle streams; the number of clients
per process is bounded (503 with Retry-After beyond it)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from analytics_pipelines.api.common import Reading, VenueQ, json_response, jsonable, scoped
from analytics_pipelines.api.problems import ProblemError, problem_responses
from analytics_pipelines.warehouse.reader import Reader, TableMissing

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/realtime", tags=["realtime"])

REALTIME_TABLES = ("kpi_snapshots", "sales_velocity", "conversion_funnel")
Scope = tuple[str, str | None]  # (tenant, venue or None: the tenant)


def _kpis(reader: Reader, tenant: str, venue: str | None) -> tuple[dict | None, object]:
    if venue:
        cond, params = "tenant_id = %s AND venue_id = %s", [tenant, venue]
    else:
        cond, params = "tenant_id = %s AND venue_id IS NULL", [tenant]
    res = reader.query(
        tenant,
        f"""SELECT metric, value, snapshot_hour FROM kpi_snapshots WHERE {cond}
        AND snapshot_hour = (SELECT max(snapshot_hour) FROM kpi_snapshots WHERE {cond}) ORDER BY metric""",
        [*params, *params],
        ["kpi_snapshots"],
        fresh=True,  # notified of a change: never the previous snapshot
    )
    if not res.rows:
        return None, None
    return {r[0]: r[1] for r in res.rows}, res.rows[0][2]


def _velocity(reader: Reader, tenant: str, venue: str | None) -> tuple[dict | None, object]:
    cond, params = (
        ("tenant_id = %s AND venue_id = %s", [tenant, venue]) if venue else ("tenant_id = %s", [tenant])
    )
    res = reader.query(
        tenant,
        f"""SELECT bucket_start, count(*) AS events_selling, sum(tickets) AS tickets_5m,
            sum(per_minute_5m) AS tickets_per_minute_5m, sum(per_minute_60m) AS tickets_per_minute_60m,
            sum(CASE WHEN high_velocity THEN 1 ELSE 0 END) AS high_velocity_events,
            sum(CASE WHEN sellout_imminent THEN 1 ELSE 0 END) AS sellout_imminent_events
        FROM sales_velocity WHERE {cond}
          AND bucket_start = (SELECT max(bucket_start) FROM sales_velocity WHERE {cond})
        GROUP BY bucket_start""",
        [*params, *params],
        ["sales_velocity"],
        fresh=True,  # notified of a change: never the previous snapshot
    )
    if not res.rows:
        return None, None
    row = dict(zip(res.columns, res.rows[0], strict=True))
    return {k: v for k, v in row.items() if k != "bucket_start"}, row["bucket_start"]


def _sessions(reader: Reader, tenant: str, venue: str | None) -> tuple[dict | None, object]:
    cond, params = (
        ("tenant_id = %s AND venue_id = %s", [tenant, venue]) if venue else ("tenant_id = %s", [tenant])
    )
    res = reader.query(
        tenant,
        f"""SELECT day, sum(sessions) AS sessions, sum(purchases) AS purchases FROM conversion_funnel
        WHERE {cond} AND day = (SELECT max(day) FROM conversion_funnel WHERE {cond}) GROUP BY day""",
        [*params, *params],
        ["conversion_funnel"],
        fresh=True,  # notified of a change: never the previous snapshot
    )
    if not res.rows:
        return None, None
    day, sessions, purchases = res.rows[0]
    return {"sessions": sessions, "purchases": purchases}, day


PARTS = (("kpis", _kpis), ("velocity", _velocity), ("sessions", _sessions))


def compute_snapshot(reader: Reader, tenant: str, venue: str | None) -> dict:
    """The scope's realtime snapshot (blocking: reader queries, each cached until its mart changes). A table
    not materialized yet leaves its part null and is named in `missing`."""
    out: dict = {"tenant_id": tenant, "venue_id": venue, "as_of": {}, "missing": []}
    for name, fn in PARTS:
        try:
            values, as_of = fn(reader, tenant, venue)
        except TableMissing as exc:
            values, as_of = None, None
            out["missing"].append(exc.table)
        out[name] = values
        out["as_of"][name] = as_of
    return jsonable(out)


def metric_rows(snap: dict) -> list[dict]:
    """The snapshot as one row per metric: name, value, its source table, grain and as-of time."""
    rows = []
    for part, table, grain in (
        ("velocity", "sales_velocity", "5 minutes"),
        ("kpis", "kpi_snapshots", "hour"),
        ("sessions", "conversion_funnel", "day"),
    ):
        for metric, value in sorted((snap.get(part) or {}).items()):
            rows.append(
                {
                    "metric": metric,
                    "value": value,
                    "source": table,
                    "grain": grain,
                    "as_of": snap["as_of"][part],
                }
            )
    return rows


@dataclass(frozen=True)
class Event:
    id: str
    data: str

    def encode(self) -> bytes:
        return f"id: {self.id}\nevent: snapshot\ndata: {self.data}\n\n".encode()


def event_of(snap: dict) -> Event:
    data = json.dumps(snap, separators=(",", ":"), sort_keys=True)
    return Event(hashlib.blake2b(data.encode(), digest_size=12).hexdigest(), data)


class Hub:
    """One per API process: the subscribers of each scope and the snapshot they last got."""

    def __init__(self, reader: Reader, max_clients: int):
        self.reader, self.max_clients = reader, max_clients
        self.subs: dict[Scope, set[asyncio.Queue]] = {}
        self.latest: dict[Scope, Event] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.wake = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.pushes = 0

    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.reader.add_listener(self._on_change)
        self.task = self.loop.create_task(self._run(), name="tt-realtime-hub")

    def stop(self) -> None:
        if self.task:
            self.task.cancel()
        if self._on_change in self.reader._listeners:
            self.reader._listeners.remove(self._on_change)

    def clients(self) -> int:
        return sum(len(s) for s in self.subs.values())

    def _on_change(self, tables) -> None:  # the reader's refresh thread
        if (tables is None or set(tables) & set(REALTIME_TABLES)) and self.loop and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.wake.set)

    async def snapshot(self, scope: Scope) -> Event:
        snap = await asyncio.get_running_loop().run_in_executor(
            self.reader.executor, compute_snapshot, self.reader, *scope
        )
        return event_of(snap)

    async def _run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            for scope in [s for s, q in self.subs.items() if q]:
                try:
                    ev = await self.snapshot(scope)
                except Exception:  # noqa: BLE001 - the next change tries again; the stream stays open
                    log.exception("realtime snapshot of %s failed", scope)
                    continue
                if self.latest.get(scope) == ev:
                    continue
                self.latest[scope] = ev
                for q in list(self.subs.get(scope, ())):
                    if q.full():  # a slow client gets the newest snapshot, not a backlog
                        q.get_nowait()
                    q.put_nowait(ev)
                    self.pushes += 1

    def subscribe(self, scope: Scope) -> asyncio.Queue:
        if self.clients() >= self.max_clients:
            raise ProblemError(
                503,
                f"too many realtime subscribers on this server ({self.max_clients}); try again later",
                headers={"Retry-After": "30"},
            )
        q: asyncio.Queue = asyncio.Queue(maxsize=1)
        self.subs.setdefault(scope, set()).add(q)
        return q

    def unsubscribe(self, scope: Scope, q: asyncio.Queue) -> None:
        subs = self.subs.get(scope)
        if subs is not None:
            subs.discard(q)
            if not subs:
                del self.subs[scope]
                self.latest.pop(scope, None)


def hub_of(request: Request) -> Hub:
    state = request.app.state
    if getattr(state, "realtime_hub", None) is None:
        state.realtime_hub = Hub(state.reader, state.settings.sse_max_clients)
        state.realtime_hub.start()
    return state.realtime_hub


async def _scope(p, venue_id) -> Scope:
    venues = scoped(p, venue_id)
    return (p.tenant_id, venues[0] if venues else None)


@router.get("/summary", responses=problem_responses(401, 403, 422))
async def summary(request: Request, p: Reading, venue_id: VenueQ = None):
    """The latest realtime snapshot of the venue (or the tenant, for a tenant-wide admin request): the
    newest 5-minute sales velocity, the latest hour's KPIs and the latest day's sessions, each with its
    as-of time; a part whose table is not materialized yet is null and named in `missing`."""
    scope = await _scope(p, venue_id)
    snap = await hub_of(request).snapshot(scope)
    return json_response(request, {"data": json.loads(snap.data)}, cache=False)


@router.get("/metrics", responses=problem_responses(401, 403, 422))
async def metrics(request: Request, p: Reading, venue_id: VenueQ = None):
    """The same snapshot as one row per metric, with its source table, grain (5 minutes, hour, day) and
    as-of time."""
    scope = await _scope(p, venue_id)
    snap = json.loads((await hub_of(request).snapshot(scope)).data)
    rows = metric_rows(snap)
    return json_response(
        request, {"data": rows, "meta": {"returned": len(rows), "missing": snap["missing"]}}, cache=False
    )


@router.get(
    "/subscribe",
    responses={
        200: {"description": "text/event-stream of `snapshot` events", "content": {"text/event-stream": {}}},
        **problem_responses(401, 403, 422, 503),
    },
)
async def subscribe(
    request: Request,
    p: Reading,
    venue_id: VenueQ = None,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
):
    """Server-Sent Events: the scope's snapshot now (unless `Last-Event-ID` names it already), then each new
    one as soon as a materialization changes it, with a heartbeat comment every few seconds."""
    scope = await _scope(p, venue_id)
    hub = hub_of(request)
    q = hub.subscribe(scope)
    heartbeat = request.app.state.settings.sse_heartbeat_seconds

    async def stream() -> AsyncIterator[bytes]:
        try:
            yield f"retry: {int(heartbeat * 1000)}\n\n".encode()
            current = hub.latest.get(scope) or await hub.snapshot(scope)
            hub.latest.setdefault(scope, current)
            if current.id != last_event_id:
                yield current.encode()
            sent = current.id
            while True:
                try:
                    ev = await asyncio.wait_for(q.get(), heartbeat)
                except TimeoutError:
                    yield b": heartbeat\n\n"
                    continue
                if ev.id != sent:
                    yield ev.encode()
                    sent = ev.id
        finally:
            hub.unsubscribe(scope, q)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
