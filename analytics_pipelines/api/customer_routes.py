"""One customer's journey, RFM and CLV; customer search and list; one segment's analysis (docs/customers.md,
"API: one customer, search, list, segment analysis"). Thin: the logic is analytics_pipelines.customers.lookup.

Included BEFORE `customers.router` (app.py): its fixed paths (/customers/search, /customers/list,
/customers/segments/{segment}/analysis) must match before `/customers/{user_id}`. Every query filters on the
token's tenant (and venue): another tenant's customer is 404, exactly like a customer who does not exist."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field

from analytics_pipelines.api.common import (
    LimitQ,
    OffsetQ,
    Reading,
    VenueQ,
    json_response,
    page,
    rows_json,
    run,
    scoped,
)
from analytics_pipelines.api.customers import CLV_COLS, RFM_COLS
from analytics_pipelines.api.marts import R
from analytics_pipelines.api.problems import problem_responses
from analytics_pipelines.customers import lookup as L
from analytics_pipelines.customers.rfm import SEGMENTS
from analytics_pipelines.privacy import PseudonymKeyError
from analytics_pipelines.warehouse.reader import Result

router = APIRouter(prefix="/v1")
R404 = {**R, **problem_responses(404)}
MAX_CENTS = 10**15  # a CLV bound past BIGINT would be a database error, not a 422
UserP = Annotated[UUID, Path(description="The customer's id (user id)")]


def _scope(p, venue_id) -> L.CustomerScope:
    venues = scoped(p, venue_id)
    return L.CustomerScope(p.tenant_id, venues[0] if venues else None)


def _meta(scope: L.CustomerScope) -> dict:
    return {"scope": scope.rfm_scope, "venue_id": scope.venue_id}


# -- search ----------------------------------------------------------------------------------------------------
SEARCH_COLS_360 = """user_id, orders, spend_cents, last_purchase_at, segment, clv_12m_cents, p_alive,
    churn_probability"""
SEARCH_COLS_VENUE = """c.user_id, c.orders, c.historic_value_cents AS spend_cents, c.last_purchase_at,
    r.segment, c.clv_12m_cents, c.p_alive, c.churn_probability"""
Q = Annotated[
    str,
    Query(
        min_length=L.MIN_QUERY,
        max_length=L.MAX_QUERY,
        description="A customer id (or a prefix of at least 8 hex digits) or an e-mail address. Prefer POST "
        "for e-mails: a body is never in an access log (this route's query string is redacted from "
        "uvicorn's access log all the same).",
    ),
]


class SearchBody(BaseModel):
    q: str = Field(min_length=L.MIN_QUERY, max_length=L.MAX_QUERY)
    venue_id: UUID | None = None
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=10_000_000)


async def _search(request: Request, p, q: str, venue_id, limit: int, offset: int):
    scope = _scope(p, venue_id)
    try:
        s = L.classify(q, request.app.state.landing_key)
    except L.QueryError as exc:
        raise HTTPException(422, str(exc)) from None
    except PseudonymKeyError:
        raise HTTPException(503, "search by e-mail is not configured (TT_LANDING_PSEUDONYM_KEY)") from None
    if s.kind == "email":
        match, mp, tables = (
            "user_id IN (SELECT user_id FROM customer_email_keys WHERE tenant_id = %s AND email_pseudonym = %s)",
            [p.tenant_id, s.value],
            ["customer_email_keys"],
        )
    else:
        match, mp, tables = "user_id LIKE %s", [s.value + "%"], []
    if scope.venue_id:
        where, params = f"{scope.facts('c')[0]} AND c.{match}", [*scope.facts("c")[1], *mp]
        base = f"""FROM customer_lifetime_value c
            LEFT JOIN customer_rfm_scores r ON r.scope = 'venue' AND r.tenant_id = c.tenant_id
                 AND r.venue_id = c.venue_id AND r.user_id = c.user_id
                 AND r.as_of = (SELECT max(as_of) FROM customer_rfm_scores WHERE scope = 'venue' AND tenant_id = %s)
            WHERE {where}"""
        params = [p.tenant_id, *params]
        cols, tables = SEARCH_COLS_VENUE, [*tables, "customer_lifetime_value", "customer_rfm_scores"]
    else:
        base = f"FROM customer_360 c WHERE c.tenant_id = %s AND c.{match}"
        params, cols, tables = [p.tenant_id, *mp], SEARCH_COLS_360, [*tables, "customer_360"]
    total = await run(request, p, f"SELECT count(*) AS n {base}", params, tables)
    res = await run(
        request,
        p,
        f"SELECT {cols} {base} ORDER BY c.user_id LIMIT %s OFFSET %s",
        [*params, limit, offset],
        tables,
    )
    # the query is never echoed back (an e-mail would be): only how it matched; not cached by the client (a
    # GET's URL may hold the address: no-store keeps the answer out of browser and proxy caches)
    data = rows_json(res)
    meta = {"limit": limit, "offset": offset, "returned": len(data), "total": int(total.rows[0][0])}
    body = {"data": data, "meta": {**meta, "matched_by": s.kind, **_meta(scope)}}
    response = json_response(request, body, cache=False)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/customers/search", tags=["customers"], responses={**R, **problem_responses(422)})
async def customer_search(
    request: Request, p: Reading, q: Q, venue_id: VenueQ = None, limit: LimitQ = 100, offset: OffsetQ = 0
):
    """Customers by id (exact or a prefix of at least 8 hex digits) or by e-mail address: the server keys the
    address with the landing pseudonym key and looks the pseudonym up in `customer_email_keys`; no address is
    stored, logged or returned. Venue tokens find the venue's customers only."""
    return await _search(request, p, q, venue_id, limit, offset)


@router.post("/customers/search", tags=["customers"], responses={**R, **problem_responses(422)})
async def customer_search_post(request: Request, p: Reading, body: SearchBody):
    """The same search with the query in the body (`{"q": ...}`): nothing of it reaches a URL or a log."""
    return await _search(request, p, body.q, body.venue_id, body.limit, body.offset)


# -- list --------------------------------------------------------------------------------------------------------
SegmentName = Literal[SEGMENTS]  # type: ignore[valid-type]


@router.get("/customers/list", tags=["customers"], responses=R)
async def customer_list(
    request: Request,
    p: Reading,
    venue_id: VenueQ = None,
    segment: Annotated[SegmentName | None, Query(description="RFM segment (latest as-of)")] = None,
    churn_risk: Annotated[
        Literal["low", "medium", "high"] | None,
        Query(description="churn probability < 0.3, 0.3-0.7, >= 0.7 (the seed flagged above 70)"),
    ] = None,
    min_clv_cents: Annotated[int | None, Query(ge=0, le=MAX_CENTS)] = None,
    max_clv_cents: Annotated[int | None, Query(ge=0, le=MAX_CENTS)] = None,
    last_purchase_from: Annotated[
        date | None, Query(description="last purchase on or after (UTC day)")
    ] = None,
    last_purchase_to: Annotated[
        date | None, Query(description="last purchase on or before (UTC day)")
    ] = None,
    sort: Literal["clv", "recency", "churn", "spend"] = "clv",
    limit: LimitQ = 100,
    offset: OffsetQ = 0,
):
    """Customers in scope with their segment, spend, CLV, P(alive) and churn probability, filtered; `total` is
    the filtered count. Venue tokens: the venue's customers (customer_lifetime_value, the venue's RFM segment);
    tenant-wide admins: the tenant's (customer_360, the tenant's segment)."""
    if min_clv_cents is not None and max_clv_cents is not None and min_clv_cents > max_clv_cents:
        raise HTTPException(422, "min_clv_cents must be at most max_clv_cents")
    if last_purchase_from and last_purchase_to and last_purchase_from > last_purchase_to:
        raise HTTPException(422, "last_purchase_from must be on or before last_purchase_to")
    scope = _scope(p, venue_id)
    if scope.venue_id:
        f, fp = scope.facts("v")
        inner = f"""SELECT v.user_id, v.orders, v.historic_value_cents AS spend_cents, v.first_purchase_at,
                v.last_purchase_at, r.segment, r.rfm_code, v.clv_12m_cents, v.p_alive, v.churn_probability
            FROM customer_lifetime_value v
            LEFT JOIN customer_rfm_scores r ON r.scope = 'venue' AND r.tenant_id = v.tenant_id
                 AND r.venue_id = v.venue_id AND r.user_id = v.user_id
                 AND r.as_of = (SELECT max(as_of) FROM customer_rfm_scores WHERE scope = 'venue' AND tenant_id = %s)
            WHERE {f}"""
        ip, tables = [p.tenant_id, *fp], ["customer_lifetime_value", "customer_rfm_scores"]
    else:
        inner = """SELECT user_id, orders, spend_cents, first_purchase_at, last_purchase_at, segment, rfm_code,
                clv_12m_cents, p_alive, churn_probability
            FROM customer_360 WHERE tenant_id = %s AND orders > 0"""
        ip, tables = [p.tenant_id], ["customer_360"]
    cond, cp = L.list_conditions(
        segment, churn_risk, min_clv_cents, max_clv_cents, last_purchase_from, last_purchase_to
    )
    where = " AND ".join(cond) or "TRUE"
    order = {
        "clv": "c.clv_12m_cents DESC NULLS LAST",
        "recency": "c.last_purchase_at DESC",
        "churn": "c.churn_probability DESC NULLS LAST",
        "spend": "c.spend_cents DESC",
    }[sort]
    base = f"FROM ({inner}) c WHERE {where}"
    total = await run(request, p, f"SELECT count(*) AS n {base}", [*ip, *cp], tables)
    res = await run(
        request,
        p,
        f"SELECT c.* {base} ORDER BY {order}, c.user_id LIMIT %s OFFSET %s",
        [*ip, *cp, limit, offset],
        tables,
    )
    return page(request, res, limit, offset, total=int(total.rows[0][0]), sort=sort, **_meta(scope))


# -- one segment -------------------------------------------------------------------------------------------------
@router.get(
    "/customers/segments/{segment}/analysis", tags=["customers"], responses={**R, **problem_responses(404)}
)
async def segment_analysis(
    request: Request,
    p: Reading,
    segment: Annotated[str, Path(min_length=1, max_length=40, description="An RFM segment, e.g. Champions")],
    venue_id: VenueQ = None,
):
    """One RFM segment at the latest as-of date: size, revenue and orders (customer_segments), average CLV,
    churn risk of its customers (the churn model's probability and BG/NBD's dropout probability), and the
    customers who moved in and out of it since the previous Sunday (customer_segment_transitions)."""
    if segment not in SEGMENTS:
        raise HTTPException(404, f"unknown segment {segment!r}; segments: {', '.join(SEGMENTS)}")
    scope = _scope(p, venue_id)
    cond, params = scope.rfm()
    seg = await run(
        request,
        p,
        f"""SELECT as_of, segment, customers, customers_pct, revenue_cents, revenue_pct, orders,
                   avg_order_value_cents, avg_purchase_frequency, avg_clv_12m_cents, customers_with_clv
            FROM customer_segments WHERE {cond} AND segment = %s""",
        [*params, segment],
        ["customer_segments"],
    )
    if scope.venue_id:
        f, fp = scope.facts("v")
        risk_from = f"customer_lifetime_value v WHERE {f} AND v.user_id IN"
        risk_params, risk_tables = fp, ["customer_lifetime_value"]
    else:
        risk_from = "customer_360 v WHERE v.tenant_id = %s AND v.user_id IN"
        risk_params, risk_tables = [p.tenant_id], ["customer_360"]
    hi = L.CHURN_BANDS["high"][0]
    risk = await run(
        request,
        p,
        f"""SELECT count(*) AS customers, count(v.churn_probability) AS customers_with_churn_score,
                   avg(v.churn_probability) AS avg_churn_probability,
                   avg(1 - v.p_alive) AS avg_dropout_probability,
                   sum(CASE WHEN v.churn_probability >= {hi} THEN 1 ELSE 0 END) AS high_churn_risk_customers
            FROM {risk_from} (SELECT user_id FROM customer_rfm_scores WHERE {cond} AND segment = %s
                 AND as_of = (SELECT max(as_of) FROM customer_rfm_scores WHERE {cond}))""",
        [*risk_params, *params, segment, *params],
        [*risk_tables, "customer_rfm_scores"],
    )
    moves = await run(
        request,
        p,
        f"""SELECT from_as_of, to_as_of, from_segment, to_segment, customers, revenue_between_cents
            FROM customer_segment_transitions
            WHERE {cond} AND (from_segment = %s OR to_segment = %s)
              AND to_as_of = (SELECT max(to_as_of) FROM customer_segment_transitions WHERE {cond})
            ORDER BY customers DESC, from_segment, to_segment""",
        [*params, segment, segment, *params],
        ["customer_segment_transitions"],
    )
    size = rows_json(seg)
    if not size:
        raise HTTPException(404, f"no {segment} row in your scope's customer_segments")
    moved = rows_json(moves)
    into = [m for m in moved if m["to_segment"] == segment and m["from_segment"] != segment]
    out = [m for m in moved if m["from_segment"] == segment and m["to_segment"] != segment]
    stayed = sum(m["customers"] for m in moved if m["from_segment"] == m["to_segment"] == segment)
    body = {
        **size[0],
        "churn_risk": rows_json(risk)[0],
        "transitions": {
            "in": into,
            "out": out,
            "customers_in": sum(m["customers"] for m in into),
            "customers_out": sum(m["customers"] for m in out),
            "customers_stayed": stayed,
        },
    }
    return json_response(request, {"data": [body], "meta": _meta(scope)})


# -- one customer ------------------------------------------------------------------------------------------------
@router.get("/customers/{user_id}/journey", tags=["customers"], responses=R404)
async def customer_journey(
    request: Request,
    p: Reading,
    user_id: UserP,
    venue_id: VenueQ = None,
    order: Literal["asc", "desc"] = "asc",
    limit: LimitQ = 100,
    offset: OffsetQ = 0,
):
    """One timeline of the customer's orders, refunds, resales (bought and sold) and RFM segment changes in
    scope, ordered by time (`order=desc`: newest first), each event typed with its amounts in cents; 404 when
    the customer has no event in scope (another tenant's customer included)."""
    scope = _scope(p, venue_id)
    sql, params, count_sql, count_params = L.journey_sql(scope, str(user_id), order == "desc", limit, offset)
    got = await run(request, p, sql, params, L.JOURNEY_TABLES)
    if got.rows:
        total = int(got.rows[0][-1])
    elif offset:  # a page past the end: the length from the count
        total = int((await run(request, p, count_sql, count_params, L.JOURNEY_TABLES)).rows[0][0])
    else:
        total = 0
    if total == 0:
        raise HTTPException(404, f"customer {user_id} has no activity in your scope")
    res = Result(got.columns[:-1], [r[:-1] for r in got.rows])
    return page(request, res, limit, offset, total=total, order=order, **_meta(scope))


@router.get("/customers/{user_id}/rfm", tags=["customers"], responses=R404)
async def customer_rfm_history(
    request: Request,
    p: Reading,
    user_id: UserP,
    venue_id: VenueQ = None,
    limit: LimitQ = 100,
    offset: OffsetQ = 0,
):
    """The customer's RFM rows in scope (the venue's, or the tenant's for a tenant-wide admin), newest as-of
    date first: recency, frequency, monetary, scores, code and segment per as-of date."""
    scope = _scope(p, venue_id)
    cond, params = scope.rfm()
    res = await run(
        request,
        p,
        f"SELECT {RFM_COLS} FROM customer_rfm_scores WHERE user_id = %s AND {cond} "
        "ORDER BY as_of DESC LIMIT %s OFFSET %s",
        [str(user_id), *params, limit, offset],
        ["customer_rfm_scores"],
    )
    if not res.rows and offset == 0:
        raise HTTPException(404, f"customer {user_id} has no RFM score in your scope")
    return page(request, res, limit, offset, **_meta(scope))


@router.get("/customers/{user_id}/clv", tags=["customers"], responses=R404)
async def customer_clv(request: Request, p: Reading, user_id: UserP, venue_id: VenueQ = None):
    """The customer's CLV per venue in scope (P(alive), expected purchases in 90 days and 12 months, expected
    value per purchase, 12/24-month CLV, churn probability, the fit used) and their sum over those venues
    (`summary`: predictions summed, the highest P(alive) and churn probability)."""
    scope = _scope(p, venue_id)
    f, fp = scope.facts()
    res = await run(
        request,
        p,
        f"SELECT {CLV_COLS}, fit_id FROM customer_lifetime_value WHERE user_id = %s AND {f} ORDER BY venue_id",
        [str(user_id), *fp],
        ["customer_lifetime_value"],
    )
    if not res.rows:
        raise HTTPException(404, f"customer {user_id} has no purchase in your scope")
    rows = rows_json(res)
    return json_response(request, {"data": rows, "summary": L.clv_summary(rows), "meta": _meta(scope)})
