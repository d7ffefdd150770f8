"""Read endpoints over the customer marts (docs/customers.md; 503 until the customer marts exist). Every
query is parameterized and filtered by the token's tenant (and venue unless an admin asks tenant-wide).

Included in the app right after `marts.router` (same "/v1" prefix): `/v1/customers/{user_id}` is registered
after the fixed `/v1/customers/...` paths so that they match first."""

from __future__ import annotations

from datetime import date
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
    rows_json,
    run,
    scope_sql,
    scoped,
)
from analytics_pipelines.api.marts import R

router = APIRouter(prefix="/v1")


# -- customers (docs/customers.md; 503 until the customer marts exist) -------------------------------
# A venue-scoped read sees the venue's scope of each customer mart (scope = 'venue'); a tenant-wide admin
# read sees the tenant's scope. The platform scope spans tenants and is never served.
def _customer_scope(p: Reading, venue_id) -> tuple[str, list, str | None]:
    """(condition on scope/scope_id/tenant_id, its parameters, the venue or None)."""
    venues = scoped(p, venue_id)
    if venues:
        return "scope = 'venue' AND tenant_id = %s AND venue_id = %s", [p.tenant_id, venues[0]], venues[0]
    return "scope = 'tenant' AND tenant_id = %s AND scope_id = %s", [p.tenant_id, p.tenant_id], None


AsOfQ = Annotated[date | None, Query(description="As-of date (a Sunday). Default: the latest.")]
SegmentQ = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=40,
        pattern=r"^[A-Za-z' ]+$",
        description="Only this RFM segment (e.g. Champions)",
    ),
]
RFM_COLS = """as_of, scope, tenant_id, venue_id, user_id, first_purchase_at, last_purchase_at, recency_days,
    frequency, monetary_cents, tickets, currency, r_score, f_score, m_score, rfm_code, rfm_total, segment"""
CLV_COLS = """as_of, tenant_id, venue_id, user_id, first_purchase_at, last_purchase_at, orders, frequency,
    recency_weeks, t_weeks, monetary_cents, historic_value_cents, historic_aov_cents, historic_segment, p_alive,
    expected_purchases_90d, expected_purchases_12m, expected_value_per_purchase_cents, clv_12m_cents,
    clv_24m_cents, churn_probability, fit_scope"""


@router.get("/customers/segments", tags=["customers"], responses=R)
async def customer_segments(request: Request, p: Reading, venue_id: VenueQ = None):
    """Per RFM segment at the latest as-of date: customers, revenue, orders, average order value, purchase
    frequency and CLV (all 11 segments, zero where empty)."""
    cond, params, venue = _customer_scope(p, venue_id)
    res = await run(
        request,
        p,
        f"""
        SELECT as_of, scope, tenant_id, venue_id, segment, customers, customers_pct, revenue_cents, revenue_pct,
               orders, avg_order_value_cents, avg_purchase_frequency, avg_clv_12m_cents, customers_with_clv
        FROM customer_segments WHERE {cond} ORDER BY customers DESC, segment""",
        params,
        ["customer_segments"],
    )
    return page(request, res, venue_id=venue)


@router.get("/customers/segment-transitions", tags=["customers"], responses=R)
async def customer_segment_transitions(request: Request, p: Reading, venue_id: VenueQ = None):
    """Customers moving between segments from the previous as-of date to the latest ('(new)': first
    purchase in between)."""
    cond, params, venue = _customer_scope(p, venue_id)
    res = await run(
        request,
        p,
        f"""
        SELECT from_as_of, to_as_of, from_segment, to_segment, customers, revenue_between_cents
        FROM customer_segment_transitions
        WHERE {cond} AND to_as_of = (SELECT max(to_as_of) FROM customer_segment_transitions WHERE {cond})
        ORDER BY customers DESC, from_segment, to_segment""",
        [*params, *params],
        ["customer_segment_transitions"],
    )
    return page(request, res, venue_id=venue)


@router.get("/customers/rfm", tags=["customers"], responses=R)
async def customer_rfm(
    request: Request,
    p: Reading,
    venue_id: VenueQ = None,
    as_of: AsOfQ = None,
    segment: SegmentQ = None,
    limit: LimitQ = 100,
    offset: OffsetQ = 0,
):
    """RFM scores per customer (best first) at an as-of date."""
    cond, params, venue = _customer_scope(p, venue_id)
    if as_of is None:
        day_cond, day_params = f"as_of = (SELECT max(as_of) FROM customer_rfm_scores WHERE {cond})", params
    else:
        day_cond, day_params = "as_of = %s", [as_of]
    seg_cond, seg_params = (" AND segment = %s", [segment]) if segment else ("", [])
    res = await run(
        request,
        p,
        f"""
        SELECT {RFM_COLS} FROM customer_rfm_scores WHERE {cond} AND {day_cond}{seg_cond}
        ORDER BY rfm_total DESC, monetary_cents DESC, user_id LIMIT %s OFFSET %s""",
        [*params, *day_params, *seg_params, limit, offset],
        ["customer_rfm_scores"],
    )
    return page(request, res, limit, offset, venue_id=venue, as_of=as_of, segment=segment)


@router.get("/customers/lifetime-value", tags=["customers"], responses=R)
async def customer_clv(
    request: Request, p: Reading, venue_id: VenueQ = None, limit: LimitQ = 100, offset: OffsetQ = 0
):
    """Predicted CLV per customer and venue (highest first; customers without a fit last), with the old
    service's historic value beside it."""
    venues = scoped(p, venue_id)
    where, params = scope_sql(p, venues)
    res = await run(
        request,
        p,
        f"""
        SELECT {CLV_COLS} FROM customer_lifetime_value WHERE {where}
        ORDER BY clv_12m_cents DESC NULLS LAST, historic_value_cents DESC, user_id, venue_id LIMIT %s OFFSET %s""",
        [*params, limit, offset],
        ["customer_lifetime_value"],
    )
    return page(request, res, limit, offset, venue_id=venues[0] if venues else None)


@router.get("/customers/churn-risk", tags=["customers"], responses=R)
async def customer_churn(
    request: Request, p: Reading, venue_id: VenueQ = None, limit: LimitQ = 100, offset: OffsetQ = 0
):
    """Customers most likely to churn (the churn model's probability, then the BG/NBD dropout probability):
    the venue's customers, or the tenant's for a tenant-wide admin read (its customer_360 rows; the model's
    platform-wide probability is on the customer's home-tenant row only)."""
    venues = scoped(p, venue_id)
    if venues:
        where, params = scope_sql(p, venues)
        res = await run(
            request,
            p,
            f"""
            SELECT user_id, venue_id, churn_probability, 1 - p_alive AS bgnbd_dropout_probability, p_alive,
                   last_purchase_at, orders, historic_value_cents, clv_12m_cents
            FROM customer_lifetime_value WHERE {where}
            ORDER BY churn_probability DESC NULLS LAST, p_alive NULLS LAST, user_id LIMIT %s OFFSET %s""",
            [*params, limit, offset],
            ["customer_lifetime_value"],
        )
    else:
        res = await run(
            request,
            p,
            """
            SELECT user_id, NULL AS venue_id, churn_probability, 1 - p_alive AS bgnbd_dropout_probability, p_alive,
                   last_purchase_at, orders, spend_cents AS historic_value_cents, clv_12m_cents
            FROM customer_360 WHERE tenant_id = %s AND orders > 0
            ORDER BY churn_probability DESC NULLS LAST, p_alive NULLS LAST, user_id LIMIT %s OFFSET %s""",
            [p.tenant_id, limit, offset],
            ["customer_360"],
        )
    return page(request, res, limit, offset, venue_id=venues[0] if venues else None)


@router.get("/customers/cohorts", tags=["customers"], responses=R)
async def customer_cohorts(
    request: Request, p: Reading, venue_id: VenueQ = None, limit: LimitQ = 1000, offset: OffsetQ = 0
):
    """Monthly acquisition cohorts x months since first purchase: retention and revenue."""
    cond, params, venue = _customer_scope(p, venue_id)
    res = await run(
        request,
        p,
        f"""
        SELECT cohort_month, months_since_first, activity_month, cohort_customers, active_customers,
               retention_pct, revenue_cents, cumulative_revenue_cents, cumulative_revenue_per_customer_cents
        FROM customer_cohorts WHERE {cond} ORDER BY cohort_month, months_since_first LIMIT %s OFFSET %s""",
        [*params, limit, offset],
        ["customer_cohorts"],
    )
    return page(request, res, limit, offset, venue_id=venue)


PROFILE_360 = """user_id, tenant_id, account_status, signed_up_at, first_purchase_at, last_purchase_at, tenure_days,
    days_since_last_purchase, orders, tickets, spend_cents, refunds_cents, net_spend_cents, avg_order_value_cents,
    venues, events, refunds, resales_bought, resales_sold, favourite_category_id, favourite_category,
    tickets_ended, no_shows, no_show_rate_pct, segment, rfm_code, segment_as_of, clv_12m_cents, clv_24m_cents,
    p_alive, expected_purchases_12m, churn_probability, churn_flag, as_of"""


@router.get("/customers/{user_id}", tags=["customers"], responses={**R, 404: {"description": "unknown"}})
async def customer_profile(
    request: Request, p: Reading, user_id: Annotated[UUID, Path()], venue_id: VenueQ = None
):
    """One customer. Venue-scoped: the customer's relationship with that venue only (orders, spend, CLV,
    churn, latest venue RFM segment) -- 404 unless they bought there, and nothing about other venues. A
    tenant-wide admin read: the tenant's `customer_360` row (one row per tenant and customer: that tenant's
    activity only, never another tenant's) plus one entry per venue; 404 when the tenant has no row."""
    uid = str(user_id)
    venues = scoped(p, venue_id)
    clv_where, clv_params = scope_sql(p, venues, "c")
    venue_rows = await run(
        request,
        p,
        f"""
        SELECT {", ".join("c." + c.strip() for c in CLV_COLS.split(","))}, r.segment, r.rfm_code, r.r_score,
               r.f_score, r.m_score, r.as_of AS segment_as_of
        FROM customer_lifetime_value c
        LEFT JOIN customer_rfm_scores r ON r.scope = 'venue' AND r.tenant_id = c.tenant_id
             AND r.venue_id = c.venue_id AND r.user_id = c.user_id
             AND r.as_of = (SELECT max(as_of) FROM customer_rfm_scores WHERE scope = 'venue' AND tenant_id = %s)
        WHERE {clv_where} AND c.user_id = %s ORDER BY c.venue_id""",
        [p.tenant_id, *clv_params, uid],
        ["customer_lifetime_value", "customer_rfm_scores"],
    )
    if venues:
        if not venue_rows.rows:
            raise HTTPException(404, f"customer {uid} has no purchases at venue {venues[0]}")
        return page(request, venue_rows, scope="venue", venue_id=venues[0])
    profile = await run(
        request,
        p,
        f"SELECT {PROFILE_360} FROM customer_360 WHERE tenant_id = %s AND user_id = %s",
        [p.tenant_id, uid],
        ["customer_360"],
    )
    if not profile.rows:
        raise HTTPException(404, f"customer {uid} not found in your tenant")
    row = rows_json(profile)[0]
    row["venues_detail"] = rows_json(venue_rows)
    return json_response(request, {"data": [row], "meta": {"scope": "tenant"}})
