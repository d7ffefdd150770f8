"""GET /v1/monitoring/anomalies: the KPI anomalies (kpi_anomalies, docs/anomalies.md) of the token's venue
(or, for a tenant-wide admin, the tenant's venues), newest first."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from analytics_pipelines.api.common import LimitQ, OffsetQ, Ranged, page, run

router = APIRouter(prefix="/v1")
R = {304: {"description": "Not modified (If-None-Match)"}, 503: {"description": "Not materialized yet"}}
SEVERITIES = ("low", "medium", "high", "critical")


@router.get("/monitoring/anomalies", tags=["monitoring"], responses=R)
async def monitoring_anomalies(
    request: Request,
    s: Ranged,
    metric: Annotated[Literal["hourly_orders", "hourly_refunds"] | None, Query()] = None,
    min_severity: Annotated[Literal["low", "medium", "high", "critical"], Query()] = "low",
    limit: LimitQ = 100,
    offset: OffsetQ = 0,
):
    """Anomalous hours between start_date and end_date (UTC days): value, baseline, scale (MAD-based),
    score, severity (at least `min_severity`), direction, the window that scored it and whether it alerts."""
    lo = datetime.combine(s.start, time(0), UTC)
    hi = datetime.combine(s.end, time(0), UTC) + timedelta(days=1)
    allowed = list(SEVERITIES[SEVERITIES.index(min_severity) :])
    cond = f"{s.where} AND hour >= %s AND hour < %s AND severity IN ({', '.join(['%s'] * len(allowed))})"
    params = [*s.params, lo, hi, *allowed]
    if metric:
        cond += " AND metric = %s"
        params.append(metric)
    res = await run(
        request,
        s.p,
        f"""
        SELECT tenant_id, venue_id, metric, hour, value, baseline, scale, score, severity, direction,
               window_hours, alerting, detector_version
        FROM kpi_anomalies WHERE {cond} ORDER BY hour DESC, venue_id, metric LIMIT %s OFFSET %s""",
        [*params, limit, offset],
        ["kpi_anomalies"],
    )
    return page(request, res, limit, offset, start_date=s.start, end_date=s.end)
