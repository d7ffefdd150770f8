"""Pricing routes (docs/pricing.md): the approval workflow of pending_price_changes (ops store) and the
event's pricing prediction from the materialized tables (price_elasticity, pricing_recommendations). No model
is fitted per request."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from analytics_pipelines.api.auth import ADMIN, READ, require
from analytics_pipelines.api.common import (
    Auth,
    LimitQ,
    OffsetQ,
    Reading,
    VenueQ,
    json_response,
    jsonable,
    rows_json,
    run,
    scoped,
)
from analytics_pipelines.api.ops_routes import _check_owner, _engine, _row
from analytics_pipelines.ops import pricing as ops
from analytics_pipelines.pricing import webhook

router = APIRouter(prefix="/v1")
T = ops.pending_price_changes
StatusQ = Annotated[
    Literal.__getitem__(ops.STATUSES) | None,  # type: ignore[valid-type]
    Query(description="Only changes in this status"),
]


@router.get("/pricing/changes", tags=["pricing"])
def list_changes(
    request: Request,
    p: Auth,
    venue_id: VenueQ = None,
    status: StatusQ = None,
    event_id: Annotated[UUID | None, Query(description="Only this event's changes")] = None,
    limit: LimitQ = 100,
    offset: OffsetQ = 0,
):
    """Pricing recommendations and their lifecycle (pending, approved, rejected, expired, superseded) with
    who and when, newest first; the token's venue (admins: the tenant, or one venue). An approved change's
    webhook delivery: webhook_status (pending, sent, retrying, failed: gave up, not_configured),
    webhook_attempts, webhook_error and webhook_next_attempt_at (when the sweeper retries it)."""
    require(p, READ)
    venues = scoped(p, venue_id)
    q = sa.select(T).where(T.c.tenant_id == p.tenant_id)
    if venues:
        q = q.where(T.c.venue_id == venues[0])
    if status:
        q = q.where(T.c.status == status)
    if event_id:
        q = q.where(T.c.event_id == str(event_id))
    q = q.order_by(T.c.created_at.desc(), T.c.id.desc()).limit(limit).offset(offset)
    engine = _engine(request)
    ops.expire_due(engine)
    with engine.connect() as conn:
        rows = [_row(r) for r in conn.execute(q)]
    retry_at = ops.webhook_next_attempts(engine, [r["id"] for r in rows if r["status"] == "approved"])
    for r in rows:  # a failed webhook's next retry (delivery_sweep_job), null when none is scheduled
        r["webhook_next_attempt_at"] = jsonable(retry_at.get(r["id"]))
    return json_response(
        request,
        {"data": rows, "meta": {"limit": limit, "offset": offset, "returned": len(rows)}},
        cache=False,
    )


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(None, max_length=2000, description="Why (kept in the audit trail)")


def _decide(request: Request, p, change_id: int, decision: str, body: Decision | None):
    require(p, ADMIN)
    engine = _engine(request)
    _check_owner(p, ops.get(engine, change_id), "price change")
    try:
        row = ops.decide(engine, change_id, decision, p.user_id, body.note if body else None)
    except ops.TransitionError as exc:
        raise HTTPException(409, f"{exc}; only a pending change can be {decision}") from None
    if decision == "approved":  # hand it to the platform (the analytics never write its tables)
        from analytics_pipelines.outbox import Transport

        # one quick try in the request (a failure is kept and retried by delivery_sweep_job, not here)
        row = webhook.deliver(
            engine,
            row,
            request.app.state.settings.pricing_webhook_url,
            Transport(webhook_retries=2, backoff_s=0.2, webhook_timeout_s=5.0),
        )
    return json_response(request, {"data": _row(row)}, cache=False)


DECIDE = {
    404: {"description": "no such change in your tenant"},
    403: {"description": "analytics.admin required, or another venue's change"},
    409: {"description": "not pending (approved, rejected, superseded or expired)"},
}


@router.post("/pricing/changes/{change_id}/approve", tags=["pricing"], responses=DECIDE)
def approve(
    request: Request, p: Auth, change_id: Annotated[int, Path(ge=1, le=2**62)], body: Decision | None = None
):
    """Approve a pending change (analytics.admin): recorded with who and when, POSTed to the platform's
    webhook (TT_PRICING_WEBHOOK_URL; the outcome is on the row, a failed POST is retried with backoff by
    delivery_sweep_job), and listed in price_history (source
    'recommendation') from the next build. An expired change cannot be approved (409)."""
    return _decide(request, p, change_id, "approved", body)


@router.post("/pricing/changes/{change_id}/reject", tags=["pricing"], responses=DECIDE)
def reject(
    request: Request, p: Auth, change_id: Annotated[int, Path(ge=1, le=2**62)], body: Decision | None = None
):
    """Reject a pending change (analytics.admin), with who, when and an optional note."""
    return _decide(request, p, change_id, "rejected", body)


@router.get(
    "/predictions/pricing/{event_id}",
    tags=["predictions"],
    responses={404: {"description": "unknown event"}, 403: {"description": "another venue's event"}},
)
async def event_pricing(request: Request, p: Reading, event_id: Annotated[UUID, Path()]):
    """The event's price elasticity (its category, and its category at its venue), its ticket types'
    current recommendations (or why none) and their approval status, from the materialized tables."""
    eid = str(event_id)
    ev = await run(
        request,
        p,
        "SELECT tenant_id, venue_id, category_name FROM event_performance WHERE tenant_id = %s AND event_id = %s",
        [p.tenant_id, eid],
        ["event_performance"],
    )
    if not ev.rows:
        raise HTTPException(404, f"event {eid} not found")
    _, venue, category_name = ev.rows[0]
    if not p.is_admin and venue != p.venue_id:
        raise HTTPException(403, f"Forbidden: event {eid} belongs to another venue")
    recs = await run(
        request,
        p,
        "SELECT * FROM pricing_recommendations WHERE tenant_id = %s AND event_id = %s ORDER BY ticket_type_id",
        [p.tenant_id, eid],
        ["pricing_recommendations"],
    )
    recommendations = rows_json(recs)
    categories = sorted({r["category"] for r in recommendations if r.get("category")})
    cond, params = "category_name = %s", [category_name]
    if categories:
        cond, params = "category = %s", [categories[0]]
    el = await run(
        request,
        p,
        f"""SELECT scope, category, category_name, venue_id, elasticity, std_error, ci_low, ci_high,
        n_price_changes, n_observations, status, reason, model_version, trained_at FROM price_elasticity
        WHERE tenant_id = %s AND {cond} AND (venue_id IS NULL OR venue_id = %s) ORDER BY scope""",
        [p.tenant_id, *params, venue],
        ["price_elasticity"],
    )
    engine = _engine(request)
    with engine.connect() as conn:
        changes = [
            _row(r)
            for r in conn.execute(
                sa.select(
                    T.c.id, T.c.ticket_type_id, T.c.status, T.c.created_at, T.c.decided_by, T.c.decided_at
                )
                .where(T.c.tenant_id == p.tenant_id, T.c.event_id == eid)
                .order_by(T.c.id.desc())
            )
        ]
    latest: dict[str, dict] = {}
    for c in changes:
        latest.setdefault(c["ticket_type_id"], c)
    for r in recommendations:
        r["approval"] = latest.get(r["ticket_type_id"])
    return json_response(
        request,
        {
            "data": {
                "event_id": eid,
                "venue_id": venue,
                "elasticity": rows_json(el),
                "recommendations": recommendations,
            }
        },
        cache=False,
    )
