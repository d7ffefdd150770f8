"""`GET /v1/predictions/no-show/{event_id}`: an upcoming event's no-show forecast and the distribution of its
tickets' risks, read from the tables the no-show model writes (docs/no-show.md); no model is fitted here.

Scoping: the event is looked up in the token's tenant (RLS on PostgreSQL); an event of another venue than
the token's is 403, an event the tenant does not have (or never forecast) 404, a malformed id 422."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, HTTPException, Path, Query, Request

from analytics_pipelines.api.common import Reading, VenueQ, json_response, rows_json, run, scoped
from analytics_pipelines.api.marts import R

router = APIRouter(prefix="/v1")

FC = "event_no_show_forecast"
PRED = "no_show_predictions"
REASONS = "no_show_forecast_reasons"
#: width of the risk histogram's bins (probability)
BIN = 0.05
TopQ = Annotated[int, Query(ge=0, le=500, description="How many of the riskiest tickets to list (0-500).")]


async def _one(request: Request, p, sql: str, params: list, table: str) -> dict | None:
    res = await run(request, p, sql, params, [table])
    rows = rows_json(res)
    return rows[0] if rows else None


@router.get(
    "/predictions/no-show/{event_id}",
    tags=["predictions"],
    responses={**R, 403: {"description": "another venue's event"}, 404: {"description": "unknown event"}},
)
async def no_show_forecast(
    request: Request, p: Reading, event_id: Annotated[UUID, Path()], venue_id: VenueQ = None, top: TopQ = 20
):
    """The event's expected no-shows with their 80 % interval, the seed rule's figure beside it, the
    tickets' risk distribution (risk bands and a histogram in 0.05-wide bins) and its `top` riskiest
    tickets; or, for an event that has not ended but has no forecast, the reason."""
    allowed = scoped(p, venue_id)
    eid = str(event_id)
    event = await _one(
        request,
        p,
        f"""SELECT tenant_id, venue_id, event_id, starts_at, tickets, expected_no_shows, expected_no_show_pct,
               no_shows_sd, no_shows_p10, no_shows_p90, interval_level, expected_attendance,
               seed_expected_no_shows, high_risk_tickets, model_version, validation, predicted_at
            FROM {FC} WHERE tenant_id = %s AND event_id = %s""",
        [p.tenant_id, eid],
        FC,
    )
    reason = None
    if event is None:
        reason = await _one(
            request,
            p,
            f"""SELECT tenant_id, venue_id, event_id, starts_at, phase, tickets, reason, detail, recorded_at
                FROM {REASONS} WHERE tenant_id = %s AND event_id = %s""",
            [p.tenant_id, eid],
            REASONS,
        )
    found = event or reason
    if found is None:
        raise HTTPException(404, f"event {eid} has no no-show forecast in your tenant (unknown or ended)")
    if allowed and found["venue_id"] not in allowed:
        raise HTTPException(403, f"Forbidden: event {eid} belongs to another venue")
    if event is None:
        return json_response(request, {"data": {"status": "not_forecast", **reason}, "meta": {}})
    bands = await run(
        request,
        p,
        f"""SELECT risk_band, count(*) AS tickets, avg(no_show_probability) AS mean_probability
            FROM {PRED} WHERE tenant_id = %s AND event_id = %s GROUP BY risk_band ORDER BY risk_band""",
        [p.tenant_id, eid],
        [PRED],
    )
    hist = await run(
        request,
        p,
        f"""SELECT CAST(least(floor(no_show_probability / {BIN}), {int(1 / BIN) - 1}) AS INTEGER) AS bin,
                   count(*) AS tickets
            FROM {PRED} WHERE tenant_id = %s AND event_id = %s GROUP BY 1 ORDER BY 1""",
        [p.tenant_id, eid],
        [PRED],
    )
    summary = await _one(
        request,
        p,
        f"""SELECT count(*) AS tickets, avg(no_show_probability) AS mean, min(no_show_probability) AS min,
                   max(no_show_probability) AS max, avg(seed_probability) AS seed_mean
            FROM {PRED} WHERE tenant_id = %s AND event_id = %s""",
        [p.tenant_id, eid],
        PRED,
    )
    riskiest = await run(
        request,
        p,
        f"""SELECT ticket_id, ticket_type_id, user_id, no_show_probability, risk_band, seed_probability,
                   lead_days, price_cents, prior_tickets, prior_no_shows, resold
            FROM {PRED} WHERE tenant_id = %s AND event_id = %s
            ORDER BY no_show_probability DESC, ticket_id LIMIT %s""",
        [p.tenant_id, eid, top],
        [PRED],
    )
    histogram = [
        {"from": round(r["bin"] * BIN, 2), "to": round((r["bin"] + 1) * BIN, 2), "tickets": r["tickets"]}
        for r in rows_json(hist)
    ]
    return json_response(
        request,
        {
            "data": {
                "status": "forecast",
                **event,
                "distribution": {**(summary or {}), "bands": rows_json(bands), "histogram": histogram},
                "riskiest_tickets": rows_json(riskiest),
            },
            "meta": {"top": top},
        },
    )
