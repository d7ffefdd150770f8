"""Monitoring reads (docs/monitoring.md): sales velocity and sell-out ETA from the materialized
`sales_velocity` and `sellout_forecast` tables, tenant- and venue-scoped like every read. An event of the
token's tenant at another venue than the token's: 403; an event the tenant does not have in the table: 404;
a malformed id: 422. The Grafana simple-JSON series `velocity.<field>[.<event_id>]` are built here too."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, HTTPException, Path, Query, Request

from analytics_pipelines.api.common import (
    LimitQ,
    OffsetQ,
    Reading,
    VenueQ,
    json_response,
    page,
    run,
    scope_sql,
    scoped,
)

router = APIRouter(prefix="/v1/monitoring", tags=["monitoring"])
R = {
    304: {"description": "Not modified (If-None-Match)"},
    403: {"description": "The event is at a venue this token may not read"},
    404: {"description": "Unknown event (or none of its rows in the table)"},
    503: {"description": "Not materialized yet"},
}
VELOCITY_COLS = """venue_id, event_id, bucket_start, tickets, per_minute_5m, per_minute_15m, per_minute_60m,
    acceleration, tickets_sold, capacity, remaining, trend, high_velocity, sellout_imminent, sold_out,
    oversold, eta_linear_minutes, capacity_reason"""
FORECAST_COLS = """venue_id, event_id, as_of, tickets_sold, capacity, fraction_sold, elapsed_minutes,
    eta_minutes_p10, eta_minutes_p50, eta_minutes_p90, sellout_at_p10, sellout_at_p50, sellout_at_p90,
    starts_at, expected_before_event, sellout_imminent, eta_linear_minutes, neighbours, interval_method, reason,
    model_version, trained_at"""
#: Grafana fields of sales_velocity (summed over the events in scope per bucket, or one event's)
GRAFANA_FIELDS = ("tickets", "per_minute_5m", "per_minute_15m", "per_minute_60m", "remaining", "tickets_sold")


async def _event_venue(request: Request, p, table: str, event_id: str, venues: list[str] | None) -> str:
    """The event's venue in `table` within the token's tenant; 404 when absent, 403 when not readable."""
    res = await run(
        request,
        p,
        f"SELECT DISTINCT venue_id FROM {table} WHERE tenant_id = %s AND event_id = %s",
        [p.tenant_id, event_id],
        [table],
    )
    if not res.rows:
        raise HTTPException(404, f"event {event_id}: no {table} rows in your tenant")
    venue = str(res.rows[0][0])
    if venues and venue not in venues:
        raise HTTPException(403, f"Forbidden: event {event_id} is not at venue {venues[0]}")
    return venue


@router.get("/velocity", responses=R)
async def velocity(
    request: Request,
    p: Reading,
    event_id: Annotated[UUID | None, Query(description="One event's buckets (default: every event)")] = None,
    venue_id: VenueQ = None,
    hours: Annotated[int, Query(ge=1, le=24 * 31, description="Buckets of the last N hours")] = 24,
    limit: LimitQ = 1000,
    offset: OffsetQ = 0,
):
    """`sales_velocity` 5-minute buckets of the last `hours` hours before the newest bucket (of the event,
    or of the scope), newest first. Without event_id: every event in scope."""
    venues = scoped(p, venue_id)
    where, params = scope_sql(p, venues)
    if event_id is not None:
        eid = str(event_id)
        await _event_venue(request, p, "sales_velocity", eid, venues)
        where, params = f"{where} AND event_id = %s", [*params, eid]
    latest = await run(
        request, p, f"SELECT max(bucket_start) FROM sales_velocity WHERE {where}", params, ["sales_velocity"]
    )
    newest = latest.rows[0][0] if latest.rows else None
    if newest is None:
        return json_response(request, {"data": [], "meta": {"newest_bucket": None, "hours": hours}})
    since = newest - timedelta(hours=hours)
    res = await run(
        request,
        p,
        f"""SELECT {VELOCITY_COLS} FROM sales_velocity WHERE {where} AND bucket_start > %s
        ORDER BY bucket_start DESC, event_id LIMIT %s OFFSET %s""",
        [*params, since, limit, offset],
        ["sales_velocity"],
    )
    return page(request, res, limit, offset, newest_bucket=newest, hours=hours)


@router.get("/sellout/{event_id}", responses=R)
async def sellout(request: Request, p: Reading, event_id: Annotated[UUID, Path()], venue_id: VenueQ = None):
    """The event's sell-out ETA (p10/p50/p90 minutes and times) from `sellout_forecast`, or the reason why
    there is none (cancelled, sold out, capacity unknown, too early, stalled, too few past sell-outs)."""
    venues = scoped(p, venue_id)
    eid = str(event_id)
    await _event_venue(request, p, "sellout_forecast", eid, venues)
    where, params = scope_sql(p, venues)
    res = await run(
        request,
        p,
        f"SELECT {FORECAST_COLS} FROM sellout_forecast WHERE {where} AND event_id = %s",
        [*params, eid],
        ["sellout_forecast"],
    )
    return page(request, res)


def grafana_velocity(
    run_blocking, request: Request, p, parts: list[str], start: datetime, end: datetime, cap: int
):
    """`velocity.<field>` (summed over the events in scope per bucket) or `velocity.<field>.<event_id>`."""
    if len(parts) not in (2, 3) or parts[1] not in GRAFANA_FIELDS:
        raise HTTPException(
            400, f"unknown velocity target: use velocity.<{'|'.join(GRAFANA_FIELDS)}>[.<event>]"
        )
    if p.venue_id and not p.is_admin:
        cond, params = "tenant_id = %s AND venue_id = %s", [p.tenant_id, p.venue_id]
    else:
        cond, params = "tenant_id = %s", [p.tenant_id]
    if len(parts) == 3:
        try:
            cond, params = f"{cond} AND event_id = %s", [*params, str(UUID(parts[2]))]
        except ValueError:
            raise HTTPException(400, f"velocity target: {parts[2]!r} is not an event id") from None
    res = run_blocking(
        request,
        p,
        f"""SELECT sum({parts[1]}) AS v, bucket_start FROM sales_velocity
        WHERE {cond} AND bucket_start >= %s AND bucket_start <= %s
        GROUP BY bucket_start ORDER BY bucket_start LIMIT %s""",
        [*params, start, end, cap],
        ["sales_velocity"],
    )
    return res
