"""Dashboards over the API (issue 21; the seed's dashboard.routes and `GET /dashboard`): list, create, read,
replace, delete, clone, share and permissions, and the venue's default dashboard with every widget's data.

Venue-scoped, kept in the ops store (ops/dashboards.py); who may do what: dashboards/access.py (private to
the creator until shared; the default dashboard is the venue's). Writes need analytics.write (or an admin),
honour If-Match (412) and write their audit row in the same transaction. Widgets: api/widgets.py."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Path, Request, Response
from starlette.concurrency import run_in_threadpool

from analytics_pipelines.api import dashboard_ops as ops
from analytics_pipelines.api.auth import READ, WRITE, Principal, require
from analytics_pipelines.api.common import Auth, LimitQ, OffsetQ, VenueQ, json_response, scoped
from analytics_pipelines.api.problems import ProblemError, problem_responses
from analytics_pipelines.api.writes import (
    audit,
    check_if_match,
    list_response,
    object_response,
    ops_engine_of,
    paginate,
)
from analytics_pipelines.dashboards.model import CloneBody, DashboardBody, ShareBody, copy_name
from analytics_pipelines.ops.dashboards import dashboard_shares, dashboards, widgets

router = APIRouter(prefix="/v1", tags=["dashboards"])
DashboardId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The dashboard's id")]
ENTITY = "dashboard"


def _venue_for_new(p: Principal, venue_id: str | None) -> str:
    """The venue a new dashboard belongs to: the token's; an admin's choice (or its token's venue)."""
    if not ops.can_write(p):
        require(p, WRITE)
    venue = scoped(p, venue_id)
    if not venue:
        raise ProblemError(
            422,
            "venue_id: an admin token without a venue must name the dashboard's venue",
            errors=[{"field": "venue_id", "in": "body", "msg": "required for a token without a venue"}],
        )
    return venue[0]


@router.get("/dashboards", responses=problem_responses(401, 403, 422))
def list_dashboards(
    request: Request, p: Auth, venue_id: VenueQ = None, limit: LimitQ = 100, offset: OffsetQ = 0
):
    """The dashboards the caller sees: its own, those shared with it and its venue's default (admins: every
    dashboard of the tenant, or of one venue), default first, then by name."""
    require(p, READ)
    venues = scoped(p, venue_id)
    q = sa.select(dashboards).where(dashboards.c.tenant_id == p.tenant_id)
    if venues:
        q = q.where(dashboards.c.venue_id == venues[0])
    if not p.is_admin:
        q = q.where(ops.visible_to(p))
    q = q.order_by(dashboards.c.is_default.desc(), dashboards.c.name, dashboards.c.id)
    with ops_engine_of(request).connect() as conn:
        rows, total = paginate(conn, q, limit, offset)
    return list_response(request, rows, limit, offset, total)


@router.post("/dashboards", status_code=201, responses=problem_responses(401, 403, 413, 422))
def create_dashboard(request: Request, p: Auth, body: DashboardBody):
    """Create an empty dashboard owned by the caller (201, ETag, Location); add widgets with
    POST /v1/dashboards/{id}/widgets."""
    venue = _venue_for_new(p, body.venue_id)
    with ops_engine_of(request).begin() as conn:
        new_id = ops.insert_dashboard(
            conn, tenant=p.tenant_id, venue=venue, fields=body.model_dump(), created_by=p.user_id
        )
        after = ops.dashboard_obj(conn, new_id)
        audit(conn, p, ENTITY, "create", None, after)
    return object_response(request, after, 201, location=f"/v1/dashboards/{new_id}")


@router.get("/dashboards/{dashboard_id}", responses=problem_responses(401, 403, 404))
def get_dashboard(request: Request, p: Auth, dashboard_id: DashboardId):
    """The dashboard with its widgets (their definitions; data at /v1/widgets/{id}/data) and ETag."""
    with ops_engine_of(request).connect() as conn:
        ops.dashboard_for(conn, p, dashboard_id)
        obj = ops.dashboard_obj(conn, dashboard_id)
    return object_response(request, obj)


@router.put("/dashboards/{dashboard_id}", responses=problem_responses(401, 403, 404, 412, 413, 422))
def replace_dashboard(request: Request, p: Auth, dashboard_id: DashboardId, body: DashboardBody):
    """Replace name, description and layout (edit access; the venue does not change)."""
    with ops_engine_of(request).begin() as conn:
        row, _ = ops.dashboard_for(conn, p, dashboard_id, "edit", lock=True)
        if body.venue_id and str(body.venue_id) != row.venue_id:
            raise ProblemError(
                422,
                "venue_id: a dashboard does not move between venues (clone it instead)",
                errors=[{"field": "venue_id", "in": "body", "msg": "differs from the dashboard's venue"}],
            )
        before = ops.dashboard_obj(conn, dashboard_id)
        check_if_match(request, before)
        conn.execute(
            dashboards.update()
            .where(dashboards.c.id == dashboard_id)
            .values(name=body.name, description=body.description, layout=body.layout)
        )
        ops.touch(conn, dashboard_id)
        after = ops.dashboard_obj(conn, dashboard_id)
        audit(conn, p, ENTITY, "update", before, after)
    return object_response(request, after)


@router.delete(
    "/dashboards/{dashboard_id}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(401, 403, 404, 412),
)
def delete_dashboard(request: Request, p: Auth, dashboard_id: DashboardId):
    """Delete the dashboard with its widgets and shares (creator or admin; the audit row keeps them)."""
    with ops_engine_of(request).begin() as conn:
        ops.dashboard_for(conn, p, dashboard_id, "delete", lock=True)
        before = ops.dashboard_obj(conn, dashboard_id)
        check_if_match(request, before)
        before["shares"] = ops.shares_of(conn, dashboard_id)
        conn.execute(widgets.delete().where(widgets.c.dashboard_id == dashboard_id))
        conn.execute(dashboard_shares.delete().where(dashboard_shares.c.dashboard_id == dashboard_id))
        conn.execute(dashboards.delete().where(dashboards.c.id == dashboard_id))
        audit(conn, p, ENTITY, "delete", before, None)
    return Response(status_code=204)


@router.post(
    "/dashboards/{dashboard_id}/clone", status_code=201, responses=problem_responses(401, 403, 404, 422)
)
def clone_dashboard(request: Request, p: Auth, dashboard_id: DashboardId, body: CloneBody | None = None):
    """A copy of the dashboard and its widgets, owned by the caller, on the same venue, shared with no one
    and never the default (view access and analytics.write)."""
    if not ops.can_write(p):
        require(p, WRITE)
    with ops_engine_of(request).begin() as conn:
        src, _ = ops.dashboard_for(conn, p, dashboard_id)
        fields = {
            "name": body.name if body and body.name else copy_name(src.name),
            "description": src.description,
            "layout": src.layout,
        }
        new_id = ops.insert_dashboard(
            conn, tenant=src.tenant_id, venue=src.venue_id, fields=fields, created_by=p.user_id
        )
        new = conn.execute(sa.select(dashboards).where(dashboards.c.id == new_id)).first()
        for w in ops.widget_rows(conn, dashboard_id):
            ops.insert_widget(conn, new, dict(w._mapping), p.user_id)
        after = ops.dashboard_obj(conn, new_id)
        audit(conn, p, ENTITY, "clone", {"id": dashboard_id, "venue_id": src.venue_id}, after)
    return object_response(request, after, 201, location=f"/v1/dashboards/{new_id}")


def _permissions(conn, p: Principal, row, acc) -> dict:
    return {
        "dashboard_id": row.id,
        "owner": row.created_by,
        "is_default": bool(row.is_default),
        "shares": ops.shares_of(conn, row.id),
        "you": acc.as_dict(),
    }


@router.post("/dashboards/{dashboard_id}/share", responses=problem_responses(401, 403, 404, 412, 422))
def share_dashboard(request: Request, p: Auth, dashboard_id: DashboardId, body: ShareBody):
    """Share with users for view or edit, or revoke (`access: none`). Needs edit access; a share for the
    creator is refused (the creator has every right already). Answers the new permissions."""
    from datetime import UTC, datetime

    with ops_engine_of(request).begin() as conn:
        row, acc = ops.dashboard_for(conn, p, dashboard_id, "share", lock=True)
        before = _permissions(conn, p, row, acc)
        check_if_match(request, before)
        t = dashboard_shares
        for i, s in enumerate(body.shares):
            if s.user == row.created_by:
                raise ProblemError(
                    422,
                    f"shares.{i}.user: {s.user!r} created the dashboard",
                    errors=[{"field": f"shares.{i}.user", "in": "body", "msg": "the dashboard's creator"}],
                )
            where = sa.and_(t.c.dashboard_id == dashboard_id, t.c.subject == s.user)
            conn.execute(t.delete().where(where))
            if s.access != "none":
                conn.execute(
                    t.insert().values(
                        dashboard_id=dashboard_id,
                        subject=s.user,
                        access=s.access,
                        granted_by=p.user_id,
                        granted_at=datetime.now(UTC),
                    )
                )
        after = _permissions(conn, p, row, acc)
        audit(
            conn,
            p,
            ENTITY,
            "share",
            {"id": dashboard_id, "venue_id": row.venue_id, "shares": before["shares"]},
            {"id": dashboard_id, "venue_id": row.venue_id, "shares": after["shares"]},
        )
    return object_response(request, after)


@router.get("/dashboards/{dashboard_id}/permissions", responses=problem_responses(401, 403, 404))
def dashboard_permissions(request: Request, p: Auth, dashboard_id: DashboardId):
    """Who may view and edit: the creator, the users it is shared with (view | edit) and the caller's own
    rights (`you`: view, edit, delete, share and why). Admins of the tenant may do everything."""
    with ops_engine_of(request).connect() as conn:
        row, acc = ops.dashboard_for(conn, p, dashboard_id)
        obj = _permissions(conn, p, row, acc)
    return object_response(request, obj)


@router.get("/dashboard", responses=problem_responses(401, 403, 409, 422, 503, 504))
async def default_dashboard(request: Request, p: Auth, venue_id: VenueQ = None):
    """The venue's default dashboard (built from the template on the first request) with every widget's
    data through the query layer. A widget that can no longer run carries its 409 problem under `error`
    instead of `data` (the others still answer)."""
    require(p, READ)
    venues = scoped(p, venue_id)
    if not venues:
        raise HTTPException(422, "venue_id: an admin token without a venue must name the venue")
    engine = ops_engine_of(request)
    row = await run_in_threadpool(ops.default_row, engine, p, venues[0])

    def _load():
        with engine.connect() as conn:
            return ops.dashboard_obj(conn, row.id)

    obj = await run_in_threadpool(_load)
    for w in obj["widgets"]:
        try:
            w["data"] = await ops.widget_answer(request, p, w)
        except ProblemError as exc:
            if exc.status != 409:
                raise
            w["error"] = {"status": 409, "type": exc.type, "detail": exc.detail, **exc.extensions}
    return json_response(request, {"data": obj}, cache=False)
