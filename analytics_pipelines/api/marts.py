"""Read endpoints over the marts (docs/marts.md). Every query is parameterized and filtered by the token's
tenant (and venue unless an admin asks tenant-wide); on PostgreSQL RLS enforces the tenant as well."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Path, Query, Request

from analytics_pipelines.api.common import (
    LimitQ,
    OffsetQ,
    Ranged,
    Reading,
    Scoped,
    VenueQ,
    page,
    run,
    scope_sql,
    scoped,
)

router = APIRouter(prefix="/v1")
MART = {"description": "Not materialized yet (the mart does not exist in the warehouse)"}
R = {304: {"description": "Not modified (If-None-Match)"}, 503: MART}


def sums(*cols: str) -> str:
    """`coalesce(sum(c), 0) AS c, ...`: totals that are 0, not null, over no rows."""
    return ", ".join(f"coalesce(sum({c}), 0) AS {c}" for c in cols)


# -- revenue ------------------------------------------------------------------------------------------
@router.get("/revenue/summary", tags=["revenue"], responses=R)
async def revenue_summary(request: Request, s: Ranged):
    """Totals over a date range from `venue_analytics` (money in cents)."""
    res = await run(
        request,
        s.p,
        f"""
        SELECT count(DISTINCT venue_id) AS venues, count(DISTINCT day) AS days,
               {
            sums(
                "tickets_sold",
                "orders",
                "gross_revenue_cents",
                "ticket_revenue_cents",
                "refunds_cents",
                "fees_cents",
                "tax_cents",
                "net_revenue_cents",
                "resale_volume_cents",
            )
        }
        FROM venue_analytics WHERE {s.where} AND day BETWEEN %s AND %s""",
        [*s.params, s.start, s.end],
        ["venue_analytics"],
    )
    return page(request, res, start_date=s.start, end_date=s.end)


@router.get("/revenue/by-channel", tags=["revenue"], responses=R)
async def revenue_by_channel(request: Request, s: Ranged):
    """Revenue per line (`primary:<channel>`, `resale:<payment_method>`) over a date range."""
    res = await run(
        request,
        s.p,
        f"""
        SELECT revenue_line, source, channel,
               {
            sums(
                "tickets",
                "transactions",
                "gross_revenue_cents",
                "refunds_cents",
                "fees_cents",
                "net_revenue_cents",
            )
        }
        FROM revenue_by_channel WHERE {s.where} AND day BETWEEN %s AND %s
        GROUP BY revenue_line, source, channel ORDER BY gross_revenue_cents DESC, revenue_line""",
        [*s.params, s.start, s.end],
        ["revenue_by_channel"],
    )
    return page(request, res, start_date=s.start, end_date=s.end)


@router.get("/revenue/by-category", tags=["revenue"], responses=R)
async def revenue_by_category(request: Request, s: Ranged):
    """Revenue per event category over a date range."""
    res = await run(
        request,
        s.p,
        f"""
        SELECT category_id, category_name,
               {sums("tickets", "orders", "gross_revenue_cents", "refunds_cents", "net_revenue_cents")}
        FROM revenue_by_category WHERE {s.where} AND day BETWEEN %s AND %s
        GROUP BY category_id, category_name ORDER BY gross_revenue_cents DESC, category_id""",
        [*s.params, s.start, s.end],
        ["revenue_by_category"],
    )
    return page(request, res, start_date=s.start, end_date=s.end)


@router.get("/revenue/projections", tags=["revenue"], responses=R)
async def revenue_projections(
    request: Request, p: Reading, venue_id: VenueQ = None, limit: LimitQ = 100, offset: OffsetQ = 0
):
    """The latest projection run (`as_of`) per venue: projected net revenue per day with bounds."""
    where, params = scope_sql(p, scoped(p, venue_id))
    where_p, params_p = scope_sql(p, scoped(p, venue_id), "p")
    res = await run(
        request,
        p,
        f"""
        SELECT p.venue_id, p.as_of, p.day, p.horizon_day, p.projected_net_revenue_cents, p.lower_cents,
               p.upper_cents, p.model
        FROM revenue_projections p
        WHERE {where_p} AND p.as_of = (SELECT max(as_of) FROM revenue_projections WHERE {where})
        ORDER BY p.venue_id, p.day LIMIT %s OFFSET %s""",
        [*params_p, *params, limit, offset],
        ["revenue_projections"],
    )
    return page(request, res, limit, offset)


# -- sales --------------------------------------------------------------------------------------------
Granularity = Literal["hour", "day", "week", "month"]


@router.get("/sales/metrics", tags=["sales"], responses=R)
async def sales_metrics(
    request: Request,
    s: Ranged,
    granularity: Annotated[Granularity, Query(description="hour, day, week or month")] = "day",
    limit: LimitQ = 100,
    offset: OffsetQ = 0,
):
    """Sales per period from `sales_metrics`: every period that overlaps the range (a week or month that
    began before start_date is included whole)."""
    start = s.start
    first = {"week": start - timedelta(days=start.weekday()), "month": start.replace(day=1)}.get(
        granularity, start
    )
    res = await run(
        request,
        s.p,
        f"""
        SELECT venue_id, granularity, period_start, tickets_sold, orders, gross_revenue_cents,
               unique_customers, avg_ticket_price_cents, tickets_growth_pct, revenue_growth_pct
        FROM sales_metrics
        WHERE {s.where} AND granularity = %s AND period_start >= %s AND period_start < %s
        ORDER BY venue_id, period_start LIMIT %s OFFSET %s""",
        [*s.params, granularity, first, s.end + timedelta(days=1), limit, offset],
        ["sales_metrics"],
    )
    return page(request, res, limit, offset, granularity=granularity, start_date=s.start, end_date=s.end)


@router.get("/sales/trends", tags=["sales"], responses=R)
async def sales_trends(request: Request, s: Ranged):
    """Daily tickets and revenue over the range (all venues in scope summed) with 7-day moving averages."""
    res = await run(
        request,
        s.p,
        f"""
        SELECT day, tickets_sold, orders, gross_revenue_cents, net_revenue_cents,
               avg(tickets_sold) OVER w AS tickets_sold_7d_avg,
               avg(gross_revenue_cents) OVER w AS gross_revenue_7d_avg_cents
        FROM (SELECT day, {sums("tickets_sold", "orders", "gross_revenue_cents", "net_revenue_cents")}
              FROM venue_analytics WHERE {s.where} AND day BETWEEN %s AND %s GROUP BY day) d
        WINDOW w AS (ORDER BY day ROWS BETWEEN 6 PRECEDING AND CURRENT ROW)
        ORDER BY day""",
        [*s.params, s.start, s.end],
        ["venue_analytics"],
    )
    return page(request, res, start_date=s.start, end_date=s.end)


@router.get("/sales/seasonality", tags=["sales"], responses=R)
async def sales_seasonality(request: Request, s: Scoped):
    """Per venue and calendar month: averages, volatility and the Peak/Normal/Off Season label."""
    where, params, p = s.where, s.params, s.p
    res = await run(
        request,
        p,
        f"""
        SELECT venue_id, month, avg_tickets, avg_revenue_cents, avg_event_days, stddev_tickets,
               volatility_pct, seasonality_ratio, season
        FROM venue_seasonality WHERE {where} ORDER BY venue_id, month""",
        params,
        ["venue_seasonality"],
    )
    return page(request, res)


# -- events -------------------------------------------------------------------------------------------
EVENT_SORT = {
    "revenue": "gross_revenue_cents DESC",
    "tickets": "tickets_sold DESC",
    "utilization": "capacity_utilization_pct DESC",
    "starts_at": "starts_at",
}
EVENT_COLS = """venue_id, event_id, event_name, category_name, starts_at, status, tickets_sold,
    gross_revenue_cents, net_revenue_cents, capacity, capacity_utilization_pct, revenue_rank, is_top_10"""


@router.get("/events/performance", tags=["events"], responses=R)
async def events_performance(
    request: Request,
    s: Scoped,
    sort: Annotated[
        Literal["revenue", "tickets", "utilization", "starts_at"], Query(description="Order of the rows")
    ] = "revenue",
    limit: LimitQ = 100,
    offset: OffsetQ = 0,
):
    """Per event: tickets, revenue, capacity utilization and revenue rank within its venue."""
    where, params, p = s.where, s.params, s.p
    res = await run(
        request,
        p,
        f"""SELECT {EVENT_COLS} FROM event_performance WHERE {where}
        ORDER BY {EVENT_SORT[sort]}, event_id LIMIT %s OFFSET %s""",
        [*params, limit, offset],
        ["event_performance"],
    )
    return page(request, res, limit, offset, sort=sort)


@router.get("/events/top", tags=["events"], responses=R)
async def events_top(
    request: Request,
    s: Scoped,
    limit: Annotated[int, Query(ge=1, le=100, description="How many, 1-100")] = 10,
):
    """The highest-grossing events in scope."""
    where, params, p = s.where, s.params, s.p
    res = await run(
        request,
        p,
        f"""SELECT {EVENT_COLS} FROM event_performance WHERE {where}
        ORDER BY gross_revenue_cents DESC, event_id LIMIT %s""",
        [*params, limit],
        ["event_performance"],
    )
    return page(request, res, limit, 0)


@router.get("/events/no-shows", tags=["events"], responses=R)
async def events_no_shows(request: Request, s: Scoped, limit: LimitQ = 100, offset: OffsetQ = 0):
    """Ended events: tickets sold, scanned and the no-show rate, most recent first."""
    res = await run(
        request,
        s.p,
        f"""
        SELECT venue_id, event_id, ended_at, tickets_sold, tickets_scanned, no_shows, no_show_pct
        FROM no_shows WHERE {s.where} ORDER BY ended_at DESC, event_id LIMIT %s OFFSET %s""",
        [*s.params, limit, offset],
        ["no_shows"],
    )
    return page(request, res, limit, offset)


@router.get("/events/{event_id}/price-history", tags=["events"], responses=R)
async def price_history(request: Request, s: Scoped, event_id: Annotated[UUID, Path()]):
    """Every price of the event's ticket types with its validity interval (valid_to null = current)."""
    where, params, p = s.where, s.params, s.p
    res = await run(
        request,
        p,
        f"""
        SELECT venue_id, event_id, ticket_type_id, ticket_type_name, price_cents, valid_from, valid_to, source
        FROM price_history WHERE {where} AND event_id = %s ORDER BY ticket_type_id, valid_from""",
        [*params, str(event_id)],
        ["price_history"],
    )
    return page(request, res)


# -- venues and KPIs ----------------------------------------------------------------------------------
@router.get("/venues/daily", tags=["venues"], responses=R)
async def venue_daily(request: Request, s: Ranged, limit: LimitQ = 100, offset: OffsetQ = 0):
    """`venue_analytics` rows (one per venue and day)."""
    res = await run(
        request,
        s.p,
        f"""
        SELECT venue_id, day, tickets_sold, orders, gross_revenue_cents, ticket_revenue_cents, refunds_cents,
               fees_cents, tax_cents, net_revenue_cents, unique_customers, events_active, capacity_sold_pct,
               avg_ticket_price_cents, resale_sales, resale_volume_cents
        FROM venue_analytics WHERE {s.where} AND day BETWEEN %s AND %s
        ORDER BY day, venue_id LIMIT %s OFFSET %s""",
        [*s.params, s.start, s.end, limit, offset],
        ["venue_analytics"],
    )
    return page(request, res, limit, offset, start_date=s.start, end_date=s.end)


@router.get("/venues/hourly", tags=["venues"], responses=R)
async def venue_hourly(request: Request, s: Ranged, limit: LimitQ = 1000, offset: OffsetQ = 0):
    """`venue_analytics_hourly`: sales per venue and UTC hour, with the venue-local hour (intraday use)."""
    res = await run(
        request,
        s.p,
        f"""
        SELECT venue_id, day, hour_utc, local_hour, tickets_sold, orders, gross_revenue_cents, unique_customers
        FROM venue_analytics_hourly WHERE {s.where} AND day BETWEEN %s AND %s
        ORDER BY hour_utc, venue_id LIMIT %s OFFSET %s""",
        [*s.params, s.start, s.end, limit, offset],
        ["venue_analytics_hourly"],
    )
    return page(request, res, limit, offset, start_date=s.start, end_date=s.end)


@router.get("/events/{event_id}/daily", tags=["events"], responses=R)
async def event_daily(
    request: Request, s: Ranged, event_id: Annotated[UUID, Path()], limit: LimitQ = 1000, offset: OffsetQ = 0
):
    """`event_analytics`: one event's sales per day, cumulative sold, sell-through % and days to the event."""
    res = await run(
        request,
        s.p,
        f"""
        SELECT venue_id, event_id, day, tickets_sold, orders, gross_revenue_cents, refunds_cents,
               net_revenue_cents, capacity, cumulative_tickets_sold, sell_through_pct, days_to_event
        FROM event_analytics WHERE {s.where} AND event_id = %s AND day BETWEEN %s AND %s
        ORDER BY day LIMIT %s OFFSET %s""",
        [*s.params, str(event_id), s.start, s.end, limit, offset],
        ["event_analytics"],
    )
    return page(request, res, limit, offset, start_date=s.start, end_date=s.end)


@router.get("/resale/activity", tags=["resale"], responses=R)
async def resale_activity(request: Request, s: Ranged, limit: LimitQ = 100, offset: OffsetQ = 0):
    """Resale per event over the range: listings created, resales, volume, fees, and the markup of the
    range's resales over their face value (100 x (volume - face value) / face value, NULL without resales)."""
    res = await run(
        request,
        s.p,
        f"""
        SELECT venue_id, event_id, {
            sums(
                "listings_created",
                "resales",
                "resale_volume_cents",
                "face_value_cents",
                "platform_fees_cents",
                "venue_fees_cents",
            )
        },
               CASE WHEN sum(face_value_cents) > 0
                    THEN round(100.0 * (sum(resale_volume_cents) - sum(face_value_cents)) / sum(face_value_cents), 2)
               END AS markup_pct
        FROM resale_activity WHERE {s.where} AND day BETWEEN %s AND %s
        GROUP BY venue_id, event_id ORDER BY resale_volume_cents DESC, event_id LIMIT %s OFFSET %s""",
        [*s.params, s.start, s.end, limit, offset],
        ["resale_activity"],
    )
    return page(request, res, limit, offset, start_date=s.start, end_date=s.end)


@router.get("/kpis", tags=["kpis"], responses=R)
async def kpis(request: Request, p: Reading, venue_id: VenueQ = None):
    """The latest KPI snapshot: the venue's, or the tenant-wide one (venue_id null) for a tenant-wide
    admin request."""
    venues = scoped(p, venue_id)
    if venues:
        cond, params = "tenant_id = %s AND venue_id = %s", [p.tenant_id, venues[0]]
    else:
        cond, params = "tenant_id = %s AND venue_id IS NULL", [p.tenant_id]
    res = await run(
        request,
        p,
        f"""
        SELECT metric, value, snapshot_hour FROM kpi_snapshots
        WHERE {cond} AND snapshot_hour = (SELECT max(snapshot_hour) FROM kpi_snapshots WHERE {cond})
        ORDER BY metric""",
        [*params, *params],
        ["kpi_snapshots"],
    )
    return page(request, res, venue_id=venues[0] if venues else None)
