"""Venue insights (issue 21, docs/insights.md): the `venue_insights` mart's findings with what people did
with them (ops store `insight_states`), dismissal and action (ETag / If-Match, audit row), counts, a
customer's own findings, and refresh requests that insights_refresh_sensor turns into insights_job runs
(nothing is computed in a request). Thin: the logic is analytics_pipelines.insights."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Annotated, Literal
from uuid import UUID

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from analytics_pipelines.api.auth import WRITE, Principal, require
from analytics_pipelines.api.common import (
    Auth,
    LimitQ,
    OffsetQ,
    Reading,
    VenueQ,
    jsonable,
    rows_json,
    run,
    scoped,
)
from analytics_pipelines.api.problems import problem_responses
from analytics_pipelines.api.writes import (
    check_if_match,
    check_owner,
    list_response,
    object_response,
    ops_engine_of,
)
from analytics_pipelines.customers.lookup import CustomerScope
from analytics_pipelines.insights import listing
from analytics_pipelines.insights.customer import customer_findings
from analytics_pipelines.insights.findings import SEVERITIES, TYPES
from analytics_pipelines.ops.audit import record_audit
from analytics_pipelines.ops.db import as_utc
from analytics_pipelines.ops.insights import insight_refresh_requests, insight_states, states

router = APIRouter(prefix="/v1", tags=["insights"])
TABLE = ["venue_insights"]
COLS = "insight_id, as_of, tenant_id, venue_id, type, severity, subject_id, evidence_key, score, sentence, evidence, query"
IdP = Annotated[str, Path(pattern=r"^[0-9a-f]{24}$", description="The insight's id")]
R = problem_responses(403, 404, 503)
RW = problem_responses(403, 404, 412, 422, 503)


class DismissBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(None, max_length=1000, description="Why (optional)")


class ActionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9 _.,:/()-]+$")
    note: str | None = Field(None, max_length=1000)


class RefreshBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    as_of: date | None = Field(None, description="The day to compute as of (default: yesterday, UTC)")
    venue_id: UUID | None = Field(None, description="Default: the token's venue")


async def _findings(
    request: Request, p: Principal, venue_id, as_of: date | None
) -> tuple[list[dict], date | None]:
    venues = scoped(p, venue_id)
    cond, params = "tenant_id = %s", [p.tenant_id]
    if venues:
        cond, params = cond + " AND venue_id = %s", [*params, venues[0]]
    if as_of is None:
        res = await run(request, p, f"SELECT max(as_of) AS d FROM venue_insights WHERE {cond}", params, TABLE)
        as_of = res.rows[0][0] if res.rows else None
        if as_of is None:
            return [], None
    res = await run(
        request, p, f"SELECT {COLS} FROM venue_insights WHERE {cond} AND as_of = %s", [*params, as_of], TABLE
    )
    rows = rows_json(res)
    with ops_engine_of(request).connect() as conn:
        st = states(conn, p.tenant_id, [r["insight_id"] for r in rows]) if rows else {}
    return listing.with_status(rows, _json_states(st)), as_of


def _json_states(st: dict[str, dict]) -> dict[str, dict]:
    return {
        k: {c: jsonable(as_utc(v) if isinstance(v, datetime) else v) for c, v in s.items()}
        for k, s in st.items()
    }


@router.get("/insights", responses=R)
async def list_insights(
    request: Request,
    p: Reading,
    venue_id: VenueQ = None,
    type: Annotated[Literal[TYPES] | None, Query(description="Finding type")] = None,  # noqa: A002
    severity: Annotated[Literal[SEVERITIES] | None, Query()] = None,
    status: Annotated[Literal["open", "dismissed", "actioned", "all"], Query()] = "open",
    as_of: Annotated[date | None, Query(description="Findings as of this day (default: the latest)")] = None,
    limit: LimitQ = 100,
    offset: OffsetQ = 0,
):
    """The findings in scope as of the latest day computed (or `as_of`), most severe first. By default the
    open ones: a dismissed or actioned insight keeps its id while its evidence is the same, so it stays out."""
    rows, _ = await _findings(request, p, venue_id, as_of)
    got = listing.select(rows, type, severity, None if status == "all" else status)
    return list_response(request, got[offset : offset + limit], limit, offset, len(got))


@router.get("/insights/stats", responses=R)
async def insight_stats(request: Request, p: Reading, venue_id: VenueQ = None, as_of: date | None = None):
    """Counts of the day's findings in scope by type, severity and status."""
    rows, day = await _findings(request, p, venue_id, as_of)
    return object_response(request, {"as_of": day.isoformat() if day else None, **listing.stats(rows)})


async def _one(request: Request, p: Principal, insight: str) -> dict:
    res = await run(
        request,
        p,
        f"SELECT {COLS} FROM venue_insights WHERE tenant_id = %s AND insight_id = %s ORDER BY as_of DESC LIMIT 1",
        [p.tenant_id, insight],
        TABLE,
    )
    rows = rows_json(res)
    row = rows[0] if rows else None
    check_owner(p, SimpleNamespace(**row) if row else None, "insight")
    with ops_engine_of(request).connect() as conn:
        st = states(conn, p.tenant_id, [insight])
    return listing.with_status([row], _json_states(st))[0]


@router.get("/insights/{insight_id}", responses=R)
async def get_insight(request: Request, p: Reading, insight_id: IdP):
    """One finding (its latest day), with evidence, the query that reproduces it and its status."""
    return object_response(request, await _one(request, p, insight_id))


async def _decide(
    request: Request, p: Principal, insight: str, status: str, action: str | None, note: str | None
):
    require(p, WRITE)
    current = await _one(request, p, insight)
    check_if_match(request, current)
    t = insight_states
    values = dict(status=status, action=action, note=note, updated_by=p.user_id, updated_at=datetime.now(UTC))
    with ops_engine_of(request).begin() as conn:
        before = conn.execute(sa.select(t).where(t.c.insight_id == insight)).first()
        update = t.update().where(t.c.insight_id == insight).values(**values)
        if before is None:
            try:  # a concurrent first decision on the same insight: the later one wins, no 500
                with conn.begin_nested():
                    conn.execute(
                        t.insert().values(
                            insight_id=insight, tenant_id=p.tenant_id, venue_id=current["venue_id"], **values
                        )
                    )
            except sa.exc.IntegrityError:
                conn.execute(update)
        else:
            conn.execute(update)
        record_audit(
            conn,
            tenant_id=p.tenant_id,
            venue_id=current["venue_id"],
            actor=p.user_id,
            entity="insight",
            entity_id=insight,
            action=status,
            before={"status": before.status if before else "open"},
            after={"status": status, "action": action, "note": note},
        )
    return object_response(request, await _one(request, p, insight))


@router.post("/insights/{insight_id}/dismiss", responses=RW)
async def dismiss_insight(request: Request, p: Auth, insight_id: IdP, body: DismissBody | None = None):
    """Dismiss (analytics.write): kept with the user and time; not listed as open again for the same evidence."""
    return await _decide(request, p, insight_id, "dismissed", None, body.note if body else None)


@router.post("/insights/{insight_id}/action", responses=RW)
async def action_insight(request: Request, p: Auth, insight_id: IdP, body: ActionBody):
    """Record the action taken on the finding (analytics.write), with the user and time."""
    return await _decide(request, p, insight_id, "actioned", body.action, body.note)


@router.post("/insights/refresh", status_code=202, responses=problem_responses(403, 422))
async def refresh_insights(request: Request, p: Auth, body: RefreshBody | None = None):
    """Request a recomputation (analytics.write): a request row for insights_refresh_sensor, which starts
    insights_job for the day. Nothing is computed here; 202 with the request."""
    require(p, WRITE)
    body = body or RefreshBody()
    today = datetime.now(UTC).date()
    as_of = body.as_of or today - timedelta(days=1)
    if as_of > today:
        raise HTTPException(422, "as_of: must not be in the future")
    venues = scoped(p, body.venue_id)
    venue = venues[0] if venues else None
    row = dict(
        tenant_id=p.tenant_id,
        venue_id=venue,
        as_of=as_of,
        requested_by=p.user_id,
        requested_at=datetime.now(UTC),
    )
    t = insight_refresh_requests
    with ops_engine_of(request).begin() as conn:
        rid = conn.execute(t.insert().values(**row).returning(t.c.id)).scalar_one()
        record_audit(
            conn,
            tenant_id=p.tenant_id,
            venue_id=venue,
            actor=p.user_id,
            entity="insight_refresh",
            entity_id=rid,
            action="create",
            before=None,
            after={"as_of": as_of.isoformat()},
        )
    obj = {
        "id": rid,
        **row,
        "as_of": as_of.isoformat(),
        "requested_at": row["requested_at"].isoformat(),
        "status": "requested",
    }
    return object_response(request, obj, status=202)


@router.get("/customers/{user_id}/insights", tags=["customers"], responses=R)
async def customer_insights(
    request: Request,
    p: Reading,
    user_id: UUID,
    venue_id: VenueQ = None,
    limit: LimitQ = 100,
    offset: OffsetQ = 0,
):
    """The customer's own findings in scope: segment changes and moves into at-risk segments (RFM history),
    a high churn probability (the churn model). 404 when the customer has no RFM row in scope."""
    venues = scoped(p, venue_id)
    scope = CustomerScope(p.tenant_id, venues[0] if venues else None)
    cond, params = scope.rfm()
    res = await run(
        request,
        p,
        f"SELECT as_of, venue_id, segment, recency_days FROM customer_rfm_scores WHERE {cond} AND user_id = %s "
        "AND as_of >= (SELECT max(as_of) FROM customer_rfm_scores) - 35 ORDER BY as_of",
        [*params, str(user_id)],
        ["customer_rfm_scores"],
    )
    if not res.rows:
        raise HTTPException(404, f"customer {user_id} has no RFM score in your scope")
    rfm = [dict(zip(res.columns, r, strict=True)) for r in res.rows]
    churn_res = await run(
        request,
        p,
        "SELECT as_of, churn_probability FROM customer_churn_scores WHERE tenant_id = %s AND user_id = %s",
        [p.tenant_id, str(user_id)],
        ["customer_churn_scores"],
    )
    churn = dict(zip(churn_res.columns, churn_res.rows[0], strict=True)) if churn_res.rows else None
    found = customer_findings(str(user_id), rfm, churn)
    return list_response(
        request, [jsonable(f) for f in found[offset : offset + limit]], limit, offset, len(found)
    )
