"""Alert instances and their acknowledgement (the export routes: api/export_routes.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from analytics_pipelines.alerting.engine import acknowledge as ack_instance
from analytics_pipelines.api.auth import READ, require
from analytics_pipelines.api.common import Auth, LimitQ, OffsetQ, VenueQ, json_response, scoped
from analytics_pipelines.api.writes import check_owner, ops_engine_of, row_dict
from analytics_pipelines.ops.alerts import alert_instances
from analytics_pipelines.ops.db import as_utc

router = APIRouter(prefix="/v1")


_engine = ops_engine_of
_row = row_dict
_check_owner = check_owner


def _utc(v):
    return as_utc(v) if isinstance(v, datetime) else v  # SQLite returns naive UTC


# -- alerts -------------------------------------------------------------------------------------------
@router.get("/alerts/instances", tags=["alerts"])
def list_alert_instances(
    request: Request,
    p: Auth,
    venue_id: VenueQ = None,
    status: Annotated[
        Literal["active", "acknowledged", "resolved"] | None,
        Query(description="Only instances in this status"),
    ] = None,
    limit: LimitQ = 100,
    offset: OffsetQ = 0,
):
    """Alert instances of the token's venue (admins: of the tenant, or of one venue), newest first."""
    require(p, READ)
    venues = scoped(p, venue_id)
    t = alert_instances
    q = sa.select(t).where(t.c.tenant_id == p.tenant_id)
    if venues:
        q = q.where(t.c.venue_id == venues[0])
    if status:
        q = q.where(t.c.status == status)
    q = q.order_by(t.c.triggered_at.desc(), t.c.id.desc()).limit(limit).offset(offset)
    with _engine(request).connect() as conn:
        rows = [_row(r) for r in conn.execute(q)]
    return json_response(
        request,
        {"data": rows, "meta": {"limit": limit, "offset": offset, "returned": len(rows)}},
        cache=False,
    )


class Acknowledge(BaseModel):
    model_config = ConfigDict(extra="forbid")
    notes: str | None = Field(None, max_length=2000, description="Free text kept with the instance")


@router.post(
    "/alerts/instances/{instance_id}/acknowledge",
    tags=["alerts"],
    responses={
        404: {"description": "no such instance in your tenant"},
        409: {"description": "resolved: nothing to acknowledge"},
    },
)
def acknowledge(
    request: Request,
    p: Auth,
    instance_id: Annotated[int, Path(ge=1, le=2**31 - 1)],  # ops ids are 32-bit integers (PostgreSQL)
    body: Acknowledge | None = None,
):
    """Acknowledge an active alert instance (venue users: their venue's; admins: any of the tenant).
    Idempotent on an acknowledged instance (the first acknowledgement is kept); 409 once resolved."""
    require(p, READ)
    engine = _engine(request)
    with engine.connect() as conn:
        row = conn.execute(sa.select(alert_instances).where(alert_instances.c.id == instance_id)).first()
    _check_owner(p, row, "alert instance")
    try:  # the alert engine's own transition: UPDATE ... WHERE status = 'active'
        ack_instance(engine, instance_id, p.user_id, body.notes if body else None)
    except ValueError as exc:
        raise HTTPException(409, f"{exc}; nothing to acknowledge") from None
    with engine.connect() as conn:
        row = conn.execute(sa.select(alert_instances).where(alert_instances.c.id == instance_id)).first()
    return json_response(request, {"data": _row(row)}, cache=False)
