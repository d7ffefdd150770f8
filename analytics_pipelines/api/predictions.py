"""Prediction endpoints (docs/predictions.md): the stored demand forecast of an event, the models'
performance (analytics.admin) and what-if scenarios computed from the stored forecast and price elasticities.
Nothing here fits a model. An event is found in demand_forecast or demand_forecast_reasons (every ticket type
of every event is in one of them): unknown in the token's tenant -> 404, another venue's -> 403."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

import polars as pl
from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from analytics_pipelines.api.auth import ADMIN, Principal, require, venue_scope
from analytics_pipelines.api.common import Reading, json_response, jsonable, page, rows_json, run
from analytics_pipelines.api.marts import R
from analytics_pipelines.predictions import whatif as W

router = APIRouter(prefix="/v1/predictions")
EventP = Annotated[UUID, Path(description="The event (UUID)")]
FORECAST_COLS = """ticket_type_id, day, horizon_day, tickets_p10, tickets_p50, tickets_p90, price_cents, currency,
    remaining_tickets, capacity, category_id, venue_id, model_version, trained_at, as_of"""
R404 = {**R, 403: {"description": "another venue's event"}, 404: {"description": "unknown event"}}


async def event_venue(request: Request, p: Principal, event_id: UUID) -> str:
    """The event's venue, if the token may read it (404 unknown in its tenant, 403 another venue's)."""
    res = await run(
        request,
        p,
        """SELECT venue_id FROM demand_forecast WHERE tenant_id = %s AND event_id = %s
           UNION ALL
           SELECT venue_id FROM demand_forecast_reasons WHERE tenant_id = %s AND event_id = %s""",
        [p.tenant_id, str(event_id), p.tenant_id, str(event_id)],
        ["demand_forecast", "demand_forecast_reasons"],
    )
    if not res.rows:
        raise HTTPException(404, f"event {event_id} not found in your tenant's predictions")
    venue = str(res.rows[0][0])
    venue_scope(p, venue)  # 403 unless the token's venue or an admin's
    return venue


@router.get("/demand/{event_id}", tags=["predictions"], responses=R404)
async def demand(
    request: Request,
    p: Reading,
    event_id: EventP,
    days_ahead: Annotated[int, Query(ge=1, le=365, description="Forecast days to return (1-365)")] = 30,
):
    """Daily tickets (p10/p50/p90) per ticket type for the next `days_ahead` days of the stored forecast,
    totals per ticket type, and the reasons for the ticket types without a forecast."""
    venue = await event_venue(request, p, event_id)
    params = [p.tenant_id, venue, str(event_id)]
    fc = await run(
        request,
        p,
        f"""SELECT {FORECAST_COLS} FROM demand_forecast
            WHERE tenant_id = %s AND venue_id = %s AND event_id = %s AND horizon_day <= %s
            ORDER BY ticket_type_id, day""",
        [*params, days_ahead],
        ["demand_forecast"],
    )
    reasons = await run(
        request,
        p,
        """SELECT ticket_type_id, reason, detail, as_of FROM demand_forecast_reasons
           WHERE tenant_id = %s AND venue_id = %s AND event_id = %s ORDER BY ticket_type_id""",
        params,
        ["demand_forecast_reasons"],
    )
    rows = rows_json(fc)
    per_type: dict[str, dict] = {}
    for r in rows:
        t = per_type.setdefault(
            r["ticket_type_id"], {"ticket_type_id": r["ticket_type_id"], "p10": 0, "p50": 0, "p90": 0}
        )
        for q in ("p10", "p50", "p90"):
            t[q] += r[f"tickets_{q}"] or 0
    first = rows[0] if rows else {}
    return json_response(
        request,
        {
            "data": {
                "event_id": str(event_id),
                "venue_id": venue,
                "as_of": first.get("as_of"),
                "model_version": first.get("model_version"),
                "trained_at": first.get("trained_at"),
                "totals": list(per_type.values()),
                "forecast": rows,
                "reasons": rows_json(reasons),
            },
            "meta": {"days_ahead": days_ahead, "returned": len(rows)},
        },
    )


@router.get("/model-performance", tags=["predictions"], responses=R)
async def model_performance(
    request: Request,
    p: Reading,
    family: Annotated[
        str | None, Query(pattern=r"^[a-z_]{1,40}$", description="Only this model family")
    ] = None,
    headline: Annotated[bool, Query(description="Only the pooled rows (bucket NULL)")] = True,
):
    """Every model family's validation metrics (model_performance): analytics.admin only."""
    require(p, ADMIN)
    where, params = ["TRUE"], []
    if family:
        where.append("model_family = %s")
        params.append(family)
    if headline:
        where.append("bucket IS NULL")
    res = await run(
        request,
        p,
        f"""SELECT * FROM model_performance WHERE {" AND ".join(where)}
            ORDER BY model_family, model, evaluation, metric, bucket""",
        params,
        ["model_performance"],
    )
    return page(request, res)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PriceChange(_Body):
    ticket_type_id: UUID
    price_change_pct: float = Field(ge=-90, le=200, description="Price change in percent (-90 to +200)")


class PricingScenario(_Body):
    type: Literal["pricing"]
    price_changes: list[PriceChange] = Field(min_length=1, max_length=100)


class CapacityScenario(_Body):
    type: Literal["capacity"]
    capacity_change: int = Field(ge=-1_000_000, le=1_000_000, description="Tickets added (negative: removed)")
    ticket_type_id: UUID | None = Field(None, description="One ticket type (default: the whole event)")


class MarketingScenario(_Body):
    type: Literal["marketing"]
    spend_change_pct: dict[str, Annotated[float, Field(ge=-100, le=500)]] = Field(
        min_length=1, max_length=20, description="Spend change per channel in percent (-100 to +500)"
    )
    period_days: int = Field(30, ge=1, le=365, description="Days the changed spend runs")


class WhatIf(_Body):
    event_id: UUID
    scenario: PricingScenario | CapacityScenario | MarketingScenario = Field(discriminator="type")


def _frame(result) -> pl.DataFrame:
    return pl.DataFrame(rows_json(result), infer_schema_length=None) if result.rows else pl.DataFrame()


@router.post(
    "/what-if",
    tags=["predictions"],
    responses={**R404, 422: {"description": "invalid scenario, or one that cannot be answered (why)"}},
)
async def what_if(request: Request, p: Reading, body: WhatIf):
    """Pricing (price change % per ticket type -> tickets and revenue with intervals, from the stored
    forecast and price_elasticity) or capacity (tickets added/removed -> sell-out probability and revenue).
    Marketing: spend change % per channel -> expected conversions and revenue, from the tenant's data-driven
    attribution model (attribution_channel_effects, issue 18) and the venue's attributed order value.
    Deterministic: the same stored tables give the same answer."""
    s = body.scenario
    if isinstance(s, MarketingScenario):
        return await _marketing(request, p, body.event_id, s)
    venue = await event_venue(request, p, body.event_id)
    fc = await run(
        request,
        p,
        f"SELECT {FORECAST_COLS} FROM demand_forecast WHERE tenant_id = %s AND venue_id = %s AND event_id = %s",
        [p.tenant_id, venue, str(body.event_id)],
        ["demand_forecast"],
    )
    if not fc.rows:
        raise HTTPException(
            422,
            f"event {body.event_id} has no demand forecast (see GET /v1/predictions/demand/{body.event_id})",
        )
    forecast = _frame(fc).with_columns(pl.col("day").str.to_date())
    try:
        if isinstance(s, PricingScenario):
            if "price_elasticity" not in request.app.state.reader.tables():
                raise HTTPException(
                    503,
                    "price_elasticity is not materialized yet (or not served): pricing scenarios need the price elasticities",
                    headers={"Retry-After": "300"},
                )
            el = await run(
                request,
                p,
                """SELECT scope, category, venue_id, elasticity, std_error, ci_low, ci_high, n_price_changes,
                          n_observations, status, reason, model_version
                   FROM price_elasticity WHERE tenant_id = %s""",
                [p.tenant_id],
                ["price_elasticity"],
            )
            changes = {str(c.ticket_type_id): c.price_change_pct for c in s.price_changes}
            if len(changes) != len(s.price_changes):
                raise HTTPException(422, "a ticket type is named twice in price_changes")
            result = W.pricing(forecast, _frame(el), changes)
        else:
            tt = str(s.ticket_type_id) if s.ticket_type_id else None
            result = W.capacity(forecast, s.capacity_change, tt)
    except W.WhatIfUnavailable as exc:
        raise HTTPException(422, str(exc)) from None
    return json_response(
        request,
        {"data": jsonable({"event_id": str(body.event_id), "venue_id": venue, "type": s.type, **result})},
        cache=False,
    )


async def _marketing(request: Request, p: Principal, event_id: UUID, s: MarketingScenario):
    """The marketing what-if (behavior.whatif.marketing_whatif) for the event's venue: the tenant's latest
    channel effects, the venue's mean attributed order revenue."""
    from analytics_pipelines.behavior.whatif import marketing_whatif

    venue = await event_venue(request, p, event_id)
    missing = {"attribution_channel_effects", "campaign_attribution"} - set(request.app.state.reader.tables())
    if missing:
        raise HTTPException(
            503,
            f"{', '.join(sorted(missing))} not materialized yet (or not served): marketing scenarios need the "
            "data-driven attribution model",
            headers={"Retry-After": "300"},
        )
    eff = _frame(
        await run(
            request,
            p,
            """SELECT tenant_id, channel, incremental_effect, exposed_paths, training_first, training_last, day
               FROM attribution_channel_effects WHERE tenant_id = %s""",
            [p.tenant_id],
            ["attribution_channel_effects"],
        )
    )
    if eff.is_empty():
        raise HTTPException(422, "no data-driven attribution model has been fitted for your tenant yet")
    dates = [c for c in ("training_first", "training_last", "day") if eff.schema[c] == pl.String]
    eff = eff.with_columns(pl.col(c).str.to_date() for c in dates)
    eff = eff.filter(pl.col("day") == pl.col("day").max())
    aov = await run(
        request,
        p,
        """SELECT avg(revenue_cents) FROM (SELECT order_id, max(revenue_cents) AS revenue_cents
               FROM campaign_attribution WHERE tenant_id = %s AND venue_id = %s GROUP BY order_id) o""",
        [p.tenant_id, venue],
        ["campaign_attribution"],
    )
    if not aov.rows or aov.rows[0][0] is None:
        raise HTTPException(
            422, f"no attributed orders at venue {venue}: no order value to scale conversions by"
        )
    changes = {ch: pct / 100 for ch, pct in s.spend_change_pct.items()}
    try:
        result = marketing_whatif(eff, changes, round(float(aov.rows[0][0])), period_days=s.period_days)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return json_response(
        request,
        {
            "data": jsonable(
                {
                    "event_id": str(event_id),
                    "venue_id": venue,
                    "type": "marketing",
                    "period_days": s.period_days,
                    "model_day": eff["day"][0],
                    "avg_order_revenue_cents": round(float(aov.rows[0][0])),
                    "channels": result.to_dicts(),
                }
            )
        },
        cache=False,
    )
