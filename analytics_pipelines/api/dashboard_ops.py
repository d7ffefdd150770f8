"""The ops-store side of the dashboard and widget routes: loading a dashboard with the caller's access,
locking it for a write, the objects as shown (and hashed for ETags), audit rows, and a widget's data through
the query layer (api/query.py: the same compile and reader cache as POST /v1/query) with the CALLER's token.

Every statement is SQLAlchemy Core with bound parameters: names, titles, descriptions and share subjects are
values, never SQL text (the old dashboards-for-user query spliced the user id into SQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from fastapi import HTTPException, Request
from pydantic import ValidationError

from analytics_pipelines.api.auth import READ, WRITE, Principal, require
from analytics_pipelines.api.problems import ProblemError
from analytics_pipelines.api.query import answer_compiled, compile_request, execute, invalid_query
from analytics_pipelines.api.writes import audit, check_owner, row_dict
from analytics_pipelines.dashboards.access import NONE, SYSTEM_OWNER, Access, access_of
from analytics_pipelines.dashboards.template import default_dashboard
from analytics_pipelines.ops.dashboards import dashboard_shares, dashboards, widgets
from analytics_pipelines.query.compile import QueryError
from analytics_pipelines.query.model import QueryRequest, TimeDimension


# -- access ---------------------------------------------------------------------------------------------
def can_write(p: Principal) -> bool:
    return p.is_admin or p.has(WRITE)


def access(conn: sa.Connection, p: Principal, row) -> Access:
    share = conn.execute(
        sa.select(dashboard_shares.c.access).where(
            dashboard_shares.c.dashboard_id == row.id, dashboard_shares.c.subject == p.user_id
        )
    ).scalar_one_or_none()
    return access_of(
        user=p.user_id,
        is_admin=p.is_admin,
        can_write=can_write(p),
        created_by=row.created_by,
        is_default=bool(row.is_default),
        share=share,
    )


def visible_to(p: Principal):
    """The SQL condition of the dashboards a non-admin caller sees (its own, shared, the default)."""
    shared = sa.select(dashboard_shares.c.dashboard_id).where(dashboard_shares.c.subject == p.user_id)
    return sa.or_(
        dashboards.c.created_by == p.user_id, dashboards.c.is_default.is_(True), dashboards.c.id.in_(shared)
    )


def dashboard_for(conn: sa.Connection, p: Principal, dashboard_id: int, need: str = "view", lock=False):
    """The dashboard row and the caller's access: 404 other tenant or not visible, 403 other venue or
    lacking `need` (view | edit | delete | share)."""
    require(p, READ)
    if lock:  # a no-op UPDATE takes PostgreSQL's row lock and SQLite's write lock before the read
        conn.execute(
            dashboards.update()
            .where(dashboards.c.id == dashboard_id)
            .values(updated_at=dashboards.c.updated_at)
        )
    row = conn.execute(sa.select(dashboards).where(dashboards.c.id == dashboard_id)).first()
    check_owner(p, row, "dashboard")
    acc = access(conn, p, row)
    if acc is NONE or not acc.view:
        raise HTTPException(404, "dashboard not found")
    if need != "view" and not getattr(acc, need):
        if not can_write(p):
            raise HTTPException(403, f"Insufficient permissions: {WRITE} required")
        raise HTTPException(403, f"Forbidden: you may not {need} this dashboard ({acc.via} access)")
    return row, acc


def widget_for(conn: sa.Connection, p: Principal, widget_id: int, need: str = "view", lock=False):
    """The widget, its dashboard and the caller's access to it (the dashboard's rules)."""
    require(p, READ)
    w = conn.execute(sa.select(widgets).where(widgets.c.id == widget_id)).first()
    check_owner(p, w, "widget")
    try:
        d, acc = dashboard_for(conn, p, w.dashboard_id, need, lock)
    except HTTPException as exc:
        if exc.status_code == 404:
            raise HTTPException(404, "widget not found") from None
        raise
    if lock:
        w = conn.execute(sa.select(widgets).where(widgets.c.id == widget_id)).first()
    return w, d, acc


# -- objects as shown -----------------------------------------------------------------------------------
def widget_obj(row) -> dict:
    return row_dict(row)


def widget_rows(conn: sa.Connection, dashboard_id: int) -> list:
    return list(
        conn.execute(
            sa.select(widgets)
            .where(widgets.c.dashboard_id == dashboard_id)
            .order_by(widgets.c.y, widgets.c.x, widgets.c.id)
        )
    )


def dashboard_obj(conn: sa.Connection, dashboard_id: int) -> dict:
    """The dashboard with its widgets (any widget change changes the dashboard's ETag too)."""
    row = conn.execute(sa.select(dashboards).where(dashboards.c.id == dashboard_id)).first()
    return row_dict(row) | {"widgets": [widget_obj(w) for w in widget_rows(conn, dashboard_id)]}


def shares_of(conn: sa.Connection, dashboard_id: int) -> list[dict]:
    q = (
        sa.select(
            dashboard_shares.c.subject,
            dashboard_shares.c.access,
            dashboard_shares.c.granted_by,
            dashboard_shares.c.granted_at,
        )
        .where(dashboard_shares.c.dashboard_id == dashboard_id)
        .order_by(dashboard_shares.c.subject)
    )
    return [row_dict(r) for r in conn.execute(q)]


# -- writes ---------------------------------------------------------------------------------------------
def insert_dashboard(
    conn, *, tenant: str, venue: str, fields: dict, created_by: str, is_default=False
) -> int:
    now = datetime.now(UTC)
    return conn.execute(
        dashboards.insert()
        .values(
            tenant_id=tenant,
            venue_id=venue,
            name=fields["name"],
            description=fields.get("description"),
            layout=fields.get("layout") or {},
            is_default=is_default,
            created_by=created_by,
            created_at=now,
            updated_at=now,
        )
        .returning(dashboards.c.id)
    ).scalar_one()


def insert_widget(conn, dashboard, fields: dict, created_by: str) -> int:
    now = datetime.now(UTC)
    keep = ("title", "type", "query", "x", "y", "width", "height", "options")
    return conn.execute(
        widgets.insert()
        .values(
            dashboard_id=dashboard.id,
            tenant_id=dashboard.tenant_id,
            venue_id=dashboard.venue_id,
            created_by=created_by,
            created_at=now,
            updated_at=now,
            **{k: fields[k] for k in keep if k in fields},
        )
        .returning(widgets.c.id)
    ).scalar_one()


def touch(conn, dashboard_id: int) -> None:
    conn.execute(
        dashboards.update().where(dashboards.c.id == dashboard_id).values(updated_at=datetime.now(UTC))
    )


def default_row(engine: sa.Engine, p: Principal, venue: str):
    """The venue's default dashboard, built from the template (with its audit row) if it has none. Two
    first requests racing: the partial unique index lets one insert; the other reads it."""
    q = sa.select(dashboards).where(
        dashboards.c.tenant_id == p.tenant_id,
        dashboards.c.venue_id == venue,
        dashboards.c.is_default.is_(True),
    )
    with engine.connect() as conn:
        row = conn.execute(q).first()
    if row is not None:
        return row
    fields, specs = default_dashboard()
    try:
        with engine.begin() as conn:
            new_id = insert_dashboard(
                conn, tenant=p.tenant_id, venue=venue, fields=fields, created_by=SYSTEM_OWNER, is_default=True
            )
            d = conn.execute(sa.select(dashboards).where(dashboards.c.id == new_id)).first()
            for spec in specs:
                insert_widget(conn, d, spec, SYSTEM_OWNER)
            audit(conn, p, "dashboard", "create", None, dashboard_obj(conn, new_id))
    except sa.exc.IntegrityError:
        pass
    with engine.connect() as conn:
        return conn.execute(q).first()


# -- a widget's query -----------------------------------------------------------------------------------
def check_query(request: Request, p: Principal, venue: str, query: QueryRequest) -> None:
    """A widget's query compiles for this venue (422 naming the member at fault, under `query.`)."""
    try:
        compile_request(request, p, query, venue)
    except QueryError as exc:
        raise invalid_query(exc, "query.") from None


def stale(widget: dict, why: list[dict]) -> ProblemError:
    first = why[0]
    return ProblemError(
        409,
        f"widget {widget['id']} ({widget['title']!r}) can no longer run: {first['field']}: {first['msg']}; "
        "edit its query (PUT /v1/widgets/{id}) or delete it",
        type="widget-query-stale",
        widget_id=widget["id"],
        errors=why,
    )


def _explicit_range(body: QueryRequest) -> bool:
    return body.time_dimension is not None and body.time_dimension.date_range is not None


async def _anchored(request: Request, p: Principal, body: QueryRequest, q) -> QueryRequest | None:
    """The query with its date range ending at the latest data of its mart in the caller's scope instead of
    today (a widget with `options.anchor == "latest"` and no range of its own; the default dashboard's): the
    last `max_range_days` days of data. None when the mart has no time or no rows."""
    root = (body.measures or [body.time_dimension.dimension if body.time_dimension else ""])[0].split(".")[0]
    cube = request.app.state.registry.cubes().get(root)
    found = next(((sql, params) for mart, sql, params in q.as_of if mart == root), None)
    if cube is None or not cube.time or found is None:
        return None
    res = await execute(request, p, found[0], found[1], [root])
    last = res.rows[0][0] if res.rows else None
    if last is None:
        return None
    last = last.date() if isinstance(last, datetime) else last
    days = request.app.state.settings.max_range_days
    span = (last - timedelta(days=days - 1), last)
    if body.time_dimension is None:
        td = TimeDimension(dimension=f"{root}.{cube.time}", date_range=span)
    else:
        td = body.time_dimension.model_copy(update={"date_range": span})
    return body.model_copy(update={"time_dimension": td})


async def widget_answer(request: Request, p: Principal, widget: dict) -> dict:
    """The widget's stored query through the query layer, for the caller's tenant and the widget's venue
    (which the caller's token was checked to reach): 409 when the registry no longer has what it names."""
    try:
        body = QueryRequest.model_validate(widget["query"])
    except ValidationError as exc:
        why = [{"field": "query." + ".".join(map(str, e["loc"])), "msg": e["msg"]} for e in exc.errors()]
        raise stale(widget, why) from None
    try:
        q = compile_request(request, p, body, widget["venue_id"])
        if (widget.get("options") or {}).get("anchor") == "latest" and not _explicit_range(body):
            moved = await _anchored(request, p, body, q)
            if moved is not None:
                q = compile_request(request, p, moved, widget["venue_id"])
    except QueryError as exc:
        raise stale(widget, [{**e, "field": "query." + e["field"]} for e in exc.errors]) from None
    return await answer_compiled(request, p, q)
