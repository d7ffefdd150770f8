"""Read endpoints over the behavioral marts (docs/behavior.md): the conversion funnel and the campaign
tables, tenant- and venue-scoped like every read (the seed served campaign performance without a venue
filter: these never do). Nothing is computed per request beyond sums over the materialized tables."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from analytics_pipelines.api.common import Ranged, Scoped, page, run
from analytics_pipelines.api.marts import R, sums

router = APIRouter(prefix="/v1")

ModelQ = Annotated[
    Literal["first_touch", "last_touch", "linear", "time_decay", "data_driven"],
    Query(description="Attribution model (default: data_driven, the Shapley model)."),
]


@router.get("/conversions/funnel", tags=["behavior"], responses=R)
async def conversion_funnel(request: Request, s: Ranged):
    """Sessions -> event page views -> cart -> checkout -> purchase per channel and device over a date
    range, with step conversion and drop-off (NULL when a step has no sessions), and the purchases
    reconciled to recognized online orders."""
    steps = ("sessions", "event_page_views", "carts", "checkouts", "purchases")
    rates = ", ".join(
        f"CASE WHEN sum({a}) > 0 THEN sum({b}) * 1.0 / sum({a}) END AS {b}_rate, "
        f"coalesce(sum({a}) - sum({b}), 0) AS {b}_dropoff"
        for a, b in zip(steps, steps[1:], strict=False)
    )
    res = await run(
        request,
        s.p,
        f"""
        SELECT channel, device, {sums(*steps)}, {rates}
        FROM conversion_funnel WHERE {s.where} AND day BETWEEN %s AND %s
        GROUP BY channel, device ORDER BY sessions DESC, channel, device""",
        [*s.params, s.start, s.end],
        ["conversion_funnel"],
    )
    rec = await run(
        request,
        s.p,
        f"""
        SELECT {
            sums(
                "tracked_purchases",
                "paid_online_orders",
                "matched",
                "untracked_orders",
                "unmatched_purchase_events",
            )
        }
        FROM funnel_order_reconciliation WHERE {s.where} AND day BETWEEN %s AND %s""",
        [*s.params, s.start, s.end],
        ["funnel_order_reconciliation"],
    )
    reconciliation = dict(zip(rec.columns, rec.rows[0], strict=True)) if rec.rows else {}
    return page(request, res, start_date=s.start, end_date=s.end, orders_reconciliation=reconciliation)


@router.get("/campaigns/performance", tags=["behavior"], responses=R)
async def campaign_performance(request: Request, s: Ranged):
    """Per campaign over a date range: the platforms' reported impressions, clicks, conversions, revenue
    and the real spend (cents)."""
    res = await run(
        request,
        s.p,
        f"""
        SELECT campaign_id, venue_id,
               {sums("impressions", "clicks", "platform_conversions", "spend_cents", "platform_revenue_cents")}
        FROM raw_campaign_performance WHERE {s.where} AND day BETWEEN %s AND %s
        GROUP BY campaign_id, venue_id ORDER BY spend_cents DESC, campaign_id""",
        [*s.params, s.start, s.end],
        ["raw_campaign_performance"],
    )
    return page(request, res, start_date=s.start, end_date=s.end)


@router.get("/campaigns/attribution", tags=["behavior"], responses=R)
async def campaign_attribution(request: Request, s: Ranged, model: ModelQ = "data_driven"):
    """Attributed orders and revenue per channel under one model over a date range (orders' days)."""
    res = await run(
        request,
        s.p,
        f"""
        SELECT channel, coalesce(sum(credit), 0) AS conversions,
               {sums("attributed_revenue_cents")}, count(DISTINCT order_id) AS orders
        FROM campaign_attribution WHERE {s.where} AND model = %s AND day BETWEEN %s AND %s
        GROUP BY channel ORDER BY attributed_revenue_cents DESC, channel""",
        [*s.params, model, s.start, s.end],
        ["campaign_attribution"],
    )
    return page(request, res, model=model, start_date=s.start, end_date=s.end)


@router.get("/campaigns/channels", tags=["behavior"], responses=R)
async def campaign_channels(request: Request, s: Scoped, model: ModelQ = "data_driven"):
    """Per channel (whole history): attributed conversions and revenue, spend, ROI, CPA, ROAS."""
    res = await run(
        request,
        s.p,
        f"""
        SELECT channel, {sums("conversions", "attributed_revenue_cents", "spend_cents")},
               CASE WHEN sum(spend_cents) > 0
                    THEN (sum(attributed_revenue_cents) - sum(spend_cents)) * 100.0 / sum(spend_cents) END AS roi_pct,
               CASE WHEN sum(spend_cents) > 0 AND sum(conversions) > 0
                    THEN sum(spend_cents) * 1.0 / sum(conversions) END AS cpa_cents,
               CASE WHEN sum(spend_cents) > 0 THEN sum(attributed_revenue_cents) * 1.0 / sum(spend_cents) END AS roas
        FROM campaign_channels WHERE {s.where} AND model = %s
        GROUP BY channel ORDER BY attributed_revenue_cents DESC, channel""",
        [*s.params, model],
        ["campaign_channels"],
    )
    return page(request, res, model=model)


@router.get("/campaigns/roi", tags=["behavior"], responses=R)
async def campaign_roi(request: Request, s: Scoped, model: ModelQ = "data_driven"):
    """Per campaign: type, status, budget, spend, attributed conversions and revenue, ROI, CPA, ROAS (NULL
    on zero spend or zero conversions)."""
    res = await run(
        request,
        s.p,
        f"""
        SELECT campaign_id, venue_id, name, campaign_type, status, budget_cents, spend_cents, impressions, clicks,
               platform_conversions, attributed_conversions, attributed_revenue_cents, roi_pct, cpa_cents, roas
        FROM campaign_roi WHERE {s.where} AND model = %s
        ORDER BY spend_cents DESC, campaign_id""",
        [*s.params, model],
        ["campaign_roi"],
    )
    return page(request, res, model=model)
