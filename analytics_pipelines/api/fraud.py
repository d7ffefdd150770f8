"""GET /v1/monitoring/fraud: the fraud events (docs/fraud.md), analytics.admin only, scoped to the token's
tenant and the requested venue; and the fraud_% annotations the Grafana datasource adds (fraud_pct > 5)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from analytics_pipelines.api.auth import ADMIN, require
from analytics_pipelines.api.common import (
    LimitQ,
    OffsetQ,
    Reading,
    VenueQ,
    page,
    run,
    run_blocking,
    scope_sql,
    scoped,
)
from analytics_pipelines.api.marts import R
from analytics_pipelines.warehouse.reader import TableMissing

router = APIRouter(prefix="/v1")
EVENT_COLS = """event_id, tenant_id, venue_id, user_id, pattern, risk_score, risk_level, reasons, behaviour_start,
    behaviour_end, first_flagged_day, last_flagged_day, flagged_days, scored_at, evidence, model_version"""
#: annotations: hours whose fraud_pct is above this (the seed's Grafana rule: fraud_% value > 5)
ANNOTATION_PCT = 5.0


@router.get("/monitoring/fraud", tags=["monitoring"], responses=R)
async def monitoring_fraud(
    request: Request,
    p: Reading,
    venue_id: VenueQ = None,
    pattern: Annotated[
        Literal["bot_burst", "scalper", "refund_abuse", "card_testing", "anomaly"] | None, Query()
    ] = None,
    risk_level: Annotated[Literal["high", "critical"] | None, Query()] = None,
    since: Annotated[date | None, Query(description="Only behaviour that ended on or after this day")] = None,
    limit: LimitQ = 100,
    offset: OffsetQ = 0,
):
    """Fraud events, highest risk first: user, pattern, risk score and level, reasons, the behaviour's
    window, when it was first flagged (scored_at) and the evidence (JSON text). analytics.admin only."""
    require(p, ADMIN)
    where, params = scope_sql(p, scoped(p, venue_id))
    for cond, value in (("pattern = %s", pattern), ("risk_level = %s", risk_level)):
        if value is not None:
            where, params = f"{where} AND {cond}", [*params, value]
    if since is not None:
        where, params = (f"{where} AND behaviour_end >= %s", [*params, datetime.combine(since, time(0), UTC)])
    res = await run(
        request,
        p,
        f"""SELECT {EVENT_COLS} FROM fraud_events WHERE {where}
        ORDER BY risk_score DESC, scored_at DESC, event_id LIMIT %s OFFSET %s""",
        [*params, limit, offset],
        ["fraud_events"],
    )
    return page(request, res, limit, offset, venue_id=venue_id)


def fraud_annotations(request: Request, p, start: datetime, end: datetime, name: str) -> list[dict]:
    """fraud_% hours above ANNOTATION_PCT in [start, end] as Grafana annotations (the seed's shape)."""
    if p.venue_id and not p.is_admin:
        cond, params = "tenant_id = %s AND venue_id = %s", [p.tenant_id, p.venue_id]
    else:
        cond, params = "tenant_id = %s", [p.tenant_id]
    try:
        res = run_blocking(
            request,
            p,
            f"""SELECT hour, venue_id, fraud_pct, flagged_orders, orders FROM fraud_metrics_hourly
            WHERE {cond} AND fraud_pct > %s AND hour >= %s AND hour <= %s ORDER BY hour, venue_id LIMIT 1000""",
            [*params, ANNOTATION_PCT, start, end],
            ["fraud_metrics_hourly"],
        )
    except TableMissing:
        return []
    return [
        {
            "annotation": name,
            "time": int((hour if hour.tzinfo else hour.replace(tzinfo=UTC)).timestamp() * 1000),
            "title": f"fraud_%: {pct:.1f} % of orders flagged",
            "text": f"Value: {pct} ({flagged} of {orders} orders, venue {venue})",
            "tags": ["fraud", "alert"],
        }
        for hour, venue, pct, flagged, orders in res.rows
    ]


#: Grafana targets `fraud.<field>` (the hourly series of fraud_metrics_hourly over the token's scope)
FRAUD_FIELDS = ("fraud_pct", "flagged_orders", "orders")


def fraud_series(request: Request, p, field: str, start: datetime, end: datetime, cap: int):
    """Hourly `field` summed over the scope's venues (fraud_pct recomputed from the sums)."""
    if p.venue_id and not p.is_admin:
        cond, params = "tenant_id = %s AND venue_id = %s", [p.tenant_id, p.venue_id]
    else:
        cond, params = "tenant_id = %s", [p.tenant_id]
    value = (
        "round(100.0 * sum(flagged_orders) / nullif(sum(orders), 0), 2)"
        if field == "fraud_pct"
        else f"sum({field})"
    )
    return run_blocking(
        request,
        p,
        f"""SELECT {value} AS v, hour FROM fraud_metrics_hourly
        WHERE {cond} AND hour >= %s AND hour <= %s GROUP BY hour ORDER BY hour LIMIT %s""",
        [*params, start, end, cap],
        ["fraud_metrics_hourly"],
    )
