"""Widgets over the API (issue 21; the seed's widget.routes): list by dashboard, create, read, replace,
delete, move, duplicate, data and export. A widget's query is a query-layer request, validated by compiling
it when it is written (422 naming the member) and compiled again, for the CALLER's token, whenever its data
is asked for (api/dashboard_ops.widget_answer: the same compile and reader cache as POST /v1/query). A widget
whose members left the registry answers 409 with why. Access: its dashboard's (dashboards/access.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from analytics_pipelines.api import dashboard_ops as ops
from analytics_pipelines.api.auth import EXPORT, require
from analytics_pipelines.api.common import Auth, LimitQ, OffsetQ, json_response
from analytics_pipelines.api.dashboards import DashboardId
from analytics_pipelines.api.problems import ProblemError, problem_responses
from analytics_pipelines.api.query import today
from analytics_pipelines.api.writes import (
    audit,
    check_if_match,
    list_response,
    object_response,
    ops_engine_of,
    paginate,
)
from analytics_pipelines.dashboards.export import widget_report
from analytics_pipelines.dashboards.model import (
    DuplicateBody,
    LayoutError,
    MoveBody,
    WidgetBody,
    moved,
    stored_widget,
)
from analytics_pipelines.ops.dashboards import widgets
from analytics_pipelines.reports.model import slug
from analytics_pipelines.reports.writers import csv_bytes, xlsx_bytes

router = APIRouter(prefix="/v1", tags=["dashboards"])
WidgetId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The widget's id")]
ENTITY = "widget"


def _fetch(conn, widget_id: int) -> dict:
    return ops.widget_obj(conn.execute(sa.select(widgets).where(widgets.c.id == widget_id)).first())


def _write(request: Request, p, dashboard_id: int, body: WidgetBody) -> dict:
    """Checked body of a widget for the dashboard (edit access; the query compiles for its venue)."""
    with ops_engine_of(request).connect() as conn:
        d, _ = ops.dashboard_for(conn, p, dashboard_id, "edit")
    ops.check_query(request, p, d.venue_id, body.query)
    return stored_widget(body)


@router.get("/dashboards/{dashboard_id}/widgets", responses=problem_responses(401, 403, 404, 422))
def list_widgets(
    request: Request, p: Auth, dashboard_id: DashboardId, limit: LimitQ = 100, offset: OffsetQ = 0
):
    """The dashboard's widgets, top to bottom, left to right."""
    t = widgets
    with ops_engine_of(request).connect() as conn:
        ops.dashboard_for(conn, p, dashboard_id)
        q = sa.select(t).where(t.c.dashboard_id == dashboard_id).order_by(t.c.y, t.c.x, t.c.id)
        rows, total = paginate(conn, q, limit, offset)
    return list_response(request, rows, limit, offset, total)


@router.post(
    "/dashboards/{dashboard_id}/widgets",
    status_code=201,
    responses=problem_responses(401, 403, 404, 413, 422),
)
def create_widget(request: Request, p: Auth, dashboard_id: DashboardId, body: WidgetBody):
    """Add a widget (edit access on the dashboard; 422 naming the query's member the layer refuses)."""
    fields = _write(request, p, dashboard_id, body)
    with ops_engine_of(request).begin() as conn:
        d, _ = ops.dashboard_for(conn, p, dashboard_id, "edit", lock=True)
        new_id = ops.insert_widget(conn, d, fields, p.user_id)
        ops.touch(conn, dashboard_id)
        after = _fetch(conn, new_id)
        audit(conn, p, ENTITY, "create", None, after)
    return object_response(request, after, 201, location=f"/v1/widgets/{new_id}")


@router.get("/widgets/{widget_id}", responses=problem_responses(401, 403, 404))
def get_widget(request: Request, p: Auth, widget_id: WidgetId):
    with ops_engine_of(request).connect() as conn:
        w, _, _ = ops.widget_for(conn, p, widget_id)
    return object_response(request, ops.widget_obj(w))


@router.put("/widgets/{widget_id}", responses=problem_responses(401, 403, 404, 412, 413, 422))
def replace_widget(request: Request, p: Auth, widget_id: WidgetId, body: WidgetBody):
    """Replace the widget's definition (title, type, query, position, size, options)."""
    with ops_engine_of(request).connect() as conn:
        w, _, _ = ops.widget_for(conn, p, widget_id, "edit")
    fields = _write(request, p, w.dashboard_id, body)
    with ops_engine_of(request).begin() as conn:
        w, d, _ = ops.widget_for(conn, p, widget_id, "edit", lock=True)
        before = ops.widget_obj(w)
        check_if_match(request, before)
        conn.execute(
            widgets.update().where(widgets.c.id == widget_id).values(**fields, updated_at=datetime.now(UTC))
        )
        ops.touch(conn, d.id)
        after = _fetch(conn, widget_id)
        audit(conn, p, ENTITY, "update", before, after)
    return object_response(request, after)


@router.delete(
    "/widgets/{widget_id}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(401, 403, 404, 412),
)
def delete_widget(request: Request, p: Auth, widget_id: WidgetId):
    with ops_engine_of(request).begin() as conn:
        w, d, _ = ops.widget_for(conn, p, widget_id, "edit", lock=True)
        before = ops.widget_obj(w)
        check_if_match(request, before)
        conn.execute(widgets.delete().where(widgets.c.id == widget_id))
        ops.touch(conn, d.id)
        audit(conn, p, ENTITY, "delete", before, None)
    return Response(status_code=204)


@router.post("/widgets/{widget_id}/move", responses=problem_responses(401, 403, 404, 412, 422))
def move_widget(request: Request, p: Auth, widget_id: WidgetId, body: MoveBody):
    """Move and/or resize: x 0-11, y >= 0, width and height 1-12, x + width <= 12 (422 naming the field)."""
    with ops_engine_of(request).begin() as conn:
        w, d, _ = ops.widget_for(conn, p, widget_id, "edit", lock=True)
        before = ops.widget_obj(w)
        check_if_match(request, before)
        try:
            place = moved(before, body)
        except LayoutError as exc:
            raise ProblemError(
                422, f"{exc.field}: {exc}", errors=[{"field": exc.field, "in": "body", "msg": str(exc)}]
            ) from None
        conn.execute(
            widgets.update().where(widgets.c.id == widget_id).values(**place, updated_at=datetime.now(UTC))
        )
        ops.touch(conn, d.id)
        after = _fetch(conn, widget_id)
        audit(conn, p, ENTITY, "move", before, after)
    return object_response(request, after)


@router.post(
    "/widgets/{widget_id}/duplicate", status_code=201, responses=problem_responses(401, 403, 404, 422)
)
def duplicate_widget(request: Request, p: Auth, widget_id: WidgetId, body: DuplicateBody | None = None):
    """A copy of the widget (title + ' (copy)'), below the dashboard's lowest widget, on the same dashboard or
    on another one of the same venue the caller may edit."""
    with ops_engine_of(request).begin() as conn:
        w, d, _ = ops.widget_for(conn, p, widget_id)
        target_id = body.dashboard_id if body and body.dashboard_id else d.id
        target, _ = ops.dashboard_for(conn, p, target_id, "edit", lock=True)
        if target.venue_id != d.venue_id:
            raise ProblemError(
                422,
                "dashboard_id: a widget is copied only onto a dashboard of the same venue",
                errors=[{"field": "dashboard_id", "in": "body", "msg": "another venue's dashboard"}],
            )
        below = conn.execute(
            sa.select(sa.func.max(widgets.c.y + widgets.c.height)).where(widgets.c.dashboard_id == target.id)
        ).scalar()
        fields = dict(w._mapping) | {"title": (w.title + " (copy)")[:200], "y": min(int(below or 0), 10_000)}
        new_id = ops.insert_widget(conn, target, fields, p.user_id)
        ops.touch(conn, target.id)
        after = _fetch(conn, new_id)
        audit(conn, p, ENTITY, "duplicate", {"id": widget_id, "venue_id": w.venue_id}, after)
    return object_response(request, after, 201, location=f"/v1/widgets/{new_id}")


def _readable(request: Request, p, widget_id: int) -> dict:
    with ops_engine_of(request).connect() as conn:
        w, _, _ = ops.widget_for(conn, p, widget_id)
    return ops.widget_obj(w)


@router.get("/widgets/{widget_id}/data", responses=problem_responses(401, 403, 404, 409, 503, 504))
async def widget_data(request: Request, p: Auth, widget_id: WidgetId):
    """The widget's rows through the query layer, for the caller's token (its tenant; the widget's venue,
    which the token must reach): the query layer's answer plus the widget's id, title and type."""
    w = await run_in_threadpool(_readable, request, p, widget_id)
    out = await ops.widget_answer(request, p, w)
    out["widget"] = {k: w[k] for k in ("id", "dashboard_id", "title", "type", "options")}
    return json_response(request, out, cache=False)


MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@router.get("/widgets/{widget_id}/export", responses=problem_responses(401, 403, 404, 409, 503, 504))
async def export_widget(
    request: Request,
    p: Auth,
    widget_id: WidgetId,
    format: Annotated[Literal["csv", "xlsx"], Query(description="csv or xlsx")] = "csv",  # noqa: A002
):
    """The widget's rows as a file, through the platform's report writers (CSV: money as integer cents
    under `<member>_cents`; XLSX: currency amounts). Needs analytics.export, as every export does."""
    require(p, EXPORT)
    w = await run_in_threadpool(_readable, request, p, widget_id)
    answer = await ops.widget_answer(request, p, w)
    report = widget_report(w["title"], answer, datetime.now(UTC), today())
    if format == "csv":
        data, _ = await run_in_threadpool(csv_bytes, report)
    else:
        data = await run_in_threadpool(xlsx_bytes, report)
    name = f"widget-{w['id']}-{slug(w['title'])[:60] or 'data'}.{format}"
    return Response(
        data,
        media_type=MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )
