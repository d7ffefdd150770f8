"""Report templates, on-demand generation and report schedules (seed reports.routes).

- GET /v1/reports/templates: the report types and formats the project renders, with their filters, read
  from the code's own declarations (reports/export_types.EXPORT_SPECS, exports/subscriptions.REPORTS,
  reports/filters.Filters, reports/model.FORMATS, exports/schedules.FREQUENCIES).
- POST /v1/reports/generate: an export request (the export lifecycle; followed at /v1/exports/{id}).
- /v1/reports/schedules: report_subscriptions behind the API. The API only stores them; the Dagster
  `report_delivery_sensor` (delivery.due_deliveries) sends them when due. Every response shows the next run.
Writes honour If-Match (412) and leave an api_audit row (entity `report_schedule`) in their transaction."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from typing import Annotated, Literal
from uuid import UUID

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from analytics_pipelines.api.auth import EXPORT, READ, Principal, require
from analytics_pipelines.api.common import Auth, LimitQ, OffsetQ, VenueQ, scoped
from analytics_pipelines.api.export_routes import ExportCreate, ExportFilters, ExportOptions, create_export
from analytics_pipelines.api.problems import ProblemError, problem_responses
from analytics_pipelines.api.writes import (
    check_if_match,
    check_owner,
    list_response,
    object_response,
    ops_engine_of,
)
from analytics_pipelines.exports.schedules import FREQUENCIES, WEEKDAYS, Schedule, ScheduleError
from analytics_pipelines.exports.subscriptions import (
    REPORT_TITLES,
    REPORTS,
    check_subscription,
    frequencies,
    view,
)
from analytics_pipelines.ops.audit import record_audit
from analytics_pipelines.ops.exports import EXPORT_FORMATS, EXPORT_TYPES, report_subscriptions
from analytics_pipelines.reports.builders import DAILY_TABLES, EXECUTIVE_TABLES
from analytics_pipelines.reports.export_types import EXPORT_SPECS
from analytics_pipelines.reports.filters import Filters
from analytics_pipelines.reports.model import FORMATS

router = APIRouter(prefix="/v1/reports", tags=["reports"])
ScheduleId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The schedule's id")]  # an INTEGER key
ENTITY = "report_schedule"


# -- templates --------------------------------------------------------------------------------------------
def _filter_docs() -> dict[str, str]:
    """Each export filter and its JSON type, from the Filters dataclass."""
    out = {}
    for f in dataclasses.fields(Filters):
        if f.name != "tenant_id":
            out[f.name] = (
                "date" if "date" in str(f.type) and "tuple" not in str(f.type) else "array of strings"
            )
    return out


def templates() -> list[dict]:
    """Every report type the project renders: the export types (generate or schedule) and the venue reports
    (schedule only), with formats, filters, options, frequencies and the marts they read."""
    types = _filter_docs()
    out = [
        {
            "report_type": name,
            "kind": "export",
            "title": spec.title,
            "description": spec.description,
            "formats": list(FORMATS),
            "filters": [{"name": f, "type": types[f]} for f in spec.filters],
            "options": list(spec.options),
            "frequencies": list(frequencies(name)),
            "generate": True,
            "reads": list(spec.tables),
        }
        for name, spec in EXPORT_SPECS.items()
    ]
    tables = {"daily_venue": DAILY_TABLES, "weekly_executive": EXECUTIVE_TABLES}
    out += [
        {
            "report_type": name,
            "kind": "venue_report",
            "title": REPORT_TITLES[name][0],
            "description": REPORT_TITLES[name][1],
            "formats": list(FORMATS),
            "filters": [],
            "options": [],
            "frequencies": list(freqs),
            "generate": False,
            "reads": list(tables[name]),
        }
        for name, freqs in REPORTS.items()
    ]
    return out


@router.get("/templates", responses=problem_responses(401, 403))
def list_templates(request: Request, p: Auth, limit: LimitQ = 100, offset: OffsetQ = 0):
    """The report types and formats the project renders, with their filters and schedule frequencies."""
    require(p, READ)
    rows = templates()
    return list_response(request, rows[offset : offset + limit], limit, offset, len(rows))


# -- generate ---------------------------------------------------------------------------------------------
class Generate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    report_type: Literal.__getitem__(EXPORT_TYPES)  # type: ignore[valid-type]
    format: Literal.__getitem__(EXPORT_FORMATS)  # type: ignore[valid-type]
    filters: ExportFilters = Field(default_factory=ExportFilters)
    options: ExportOptions = Field(default_factory=ExportOptions)


@router.post(
    "/generate",
    status_code=202,
    responses={202: {"description": "Accepted: a pending export request"}, **problem_responses(400, 403)},
)
def generate(request: Request, p: Auth, body: Generate):
    """Generate a report now: an export request (pending) with the export lifecycle; follow it at the
    Location (/v1/exports/{id}) and download it when completed."""
    export = ExportCreate(
        export_type=body.report_type, format=body.format, filters=body.filters, options=body.options
    )
    return create_export(request, p, export)


# -- schedules --------------------------------------------------------------------------------------------
class ScheduleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    report: Literal.__getitem__((*REPORTS, *EXPORT_TYPES))  # type: ignore[valid-type]
    format: Literal.__getitem__(EXPORT_FORMATS) = "pdf"  # type: ignore[valid-type]
    recipients: list[Annotated[str, Field(max_length=254)]] = Field(min_length=1, max_length=50)
    frequency: Literal.__getitem__(FREQUENCIES)  # type: ignore[valid-type]
    local_time: str = Field("07:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="HH:MM, 00:00-23:59")
    timezone: str = Field("UTC", min_length=1, max_length=64, description="IANA name, e.g. Europe/Berlin")
    run_date: date | None = Field(None, description="once: the local date")
    day_of_week: Literal.__getitem__(WEEKDAYS) | None = Field(None, description="weekly (default monday)")  # type: ignore[valid-type]
    day_of_month: int | None = Field(
        None, ge=1, le=31, description="monthly (default 1); past a month's end: its last day"
    )
    end_date: date | None = Field(None, description="recurring: the last local date with a delivery")
    venue_id: UUID | None = Field(None, description="default: the token's venue; admins any of the tenant")
    filters: ExportFilters = Field(default_factory=ExportFilters)
    options: ExportOptions = Field(default_factory=ExportOptions)


def _invalid(exc: ScheduleError) -> ProblemError:
    return ProblemError(
        422, f"invalid {exc.field}: {exc}", errors=[{"field": exc.field, "in": "body", "msg": str(exc)}]
    )


def _values(p: Principal, body: ScheduleBody, now: datetime) -> dict:
    """The row values of a schedule body for this token (scoping: 403 for another venue)."""
    venue = str(body.venue_id) if body.venue_id else None
    asked = {str(v) for v in body.filters.venue_ids}
    if not p.is_admin:
        if not p.venue_id:
            raise HTTPException(403, "Forbidden: the token names no venue and is not an admin's")
        if (venue and venue != p.venue_id) or asked - {p.venue_id}:
            raise HTTPException(403, "Forbidden: a venue-scoped token may schedule only its own venue")
        venue = p.venue_id
    elif venue is None and len(asked) == 1:
        venue = asked.pop()
    schedule = Schedule(
        frequency=body.frequency,
        local_time=body.local_time,
        timezone=body.timezone,
        run_date=body.run_date,
        day_of_week=WEEKDAYS.index(body.day_of_week) if body.day_of_week else None,
        day_of_month=body.day_of_month,
        end_date=body.end_date,
    )
    try:
        return check_subscription(
            tenant_id=p.tenant_id,
            venue_id=venue,
            report=body.report,
            fmt=body.format,
            recipients=body.recipients,
            schedule=schedule,
            filters=body.filters.model_dump(mode="json", exclude_defaults=True),
            options=body.options.model_dump(mode="json", exclude_none=True),
            now=now,
        )
    except ScheduleError as exc:
        raise _invalid(exc) from None


def _row(conn: sa.Connection, p: Principal, schedule_id: int):
    t = report_subscriptions
    row = conn.execute(sa.select(t).where(t.c.id == schedule_id)).first()
    check_owner(p, row, "report schedule")
    return row


def _audit(conn, p: Principal, row_id, venue_id, action: str, before, after) -> None:
    record_audit(
        conn,
        tenant_id=p.tenant_id,
        venue_id=venue_id,
        actor=p.user_id,
        entity=ENTITY,
        entity_id=row_id,
        action=action,
        before=before,
        after=after,
    )


def _now() -> datetime:
    return datetime.now(UTC)


@router.post(
    "/schedules", status_code=201, responses={201: {"description": "Created"}, **problem_responses(403, 422)}
)
def create_schedule(request: Request, p: Auth, body: ScheduleBody):
    """Schedule a report: once, daily, weekly or monthly at a local time in a time zone, to recipients.
    The Dagster report_delivery_sensor sends it; occurrences before its creation are never sent."""
    require(p, EXPORT)
    now = _now()
    values = _values(p, body, now)
    t = report_subscriptions
    with ops_engine_of(request).begin() as conn:
        new_id = conn.execute(
            t.insert().values(
                **values, created_by=p.user_id, created_at=now, updated_at=now, active_from=now, enabled=True
            )
        ).inserted_primary_key[0]
        obj = view(conn.execute(sa.select(t).where(t.c.id == new_id)).mappings().one(), now)
        _audit(conn, p, new_id, values["venue_id"], "create", None, obj)
    return object_response(request, obj, 201, f"/v1/reports/schedules/{new_id}")


@router.get("/schedules", responses=problem_responses(403, 422))
def list_schedules(
    request: Request,
    p: Auth,
    venue_id: VenueQ = None,
    report: Annotated[str | None, Query(max_length=40, description="Only this report type")] = None,
    paused: Annotated[
        bool | None, Query(description="Only paused (true) or running (false) schedules")
    ] = None,
    limit: LimitQ = 100,
    offset: OffsetQ = 0,
):
    """The report schedules of the token's venue (admins: the tenant's, or one venue's), oldest first,
    each with its next run time."""
    require(p, EXPORT)
    venues = scoped(p, venue_id)
    t = report_subscriptions
    q = sa.select(t).where(t.c.tenant_id == p.tenant_id)
    if venues:
        q = q.where(t.c.venue_id == venues[0])
    if report:
        q = q.where(t.c.report == report)
    if paused is not None:
        q = q.where(t.c.enabled.is_(not paused))
    now = _now()
    with ops_engine_of(request).connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(q.subquery())).scalar_one()
        rows = conn.execute(q.order_by(t.c.id).limit(limit).offset(offset)).mappings().all()
    return list_response(request, [view(r, now) for r in rows], limit, offset, int(total))


@router.get("/schedules/{schedule_id}", responses=problem_responses(403, 404))
def get_schedule(request: Request, p: Auth, schedule_id: ScheduleId):
    """One schedule with its next run time (ETag for If-Match)."""
    require(p, EXPORT)
    with ops_engine_of(request).connect() as conn:
        row = _row(conn, p, schedule_id)
    return object_response(request, view(row, _now()))


@router.put("/schedules/{schedule_id}", responses=problem_responses(403, 404, 412, 422))
def replace_schedule(request: Request, p: Auth, schedule_id: ScheduleId, body: ScheduleBody):
    """Replace a schedule (the whole body, as for create). It starts afresh: an occurrence before the edit
    is not sent; a period already sent is never sent again."""
    require(p, EXPORT)
    now = _now()
    t = report_subscriptions
    with ops_engine_of(request).begin() as conn:
        row = _row(conn, p, schedule_id)
        before = view(row, now)
        check_if_match(request, before)
        values = _values(p, body, now)
        conn.execute(
            t.update().where(t.c.id == schedule_id).values(**values, updated_at=now, active_from=now)
        )
        after = view(conn.execute(sa.select(t).where(t.c.id == schedule_id)).mappings().one(), now)
        _audit(conn, p, schedule_id, values["venue_id"], "update", before, after)
    return object_response(request, after)


@router.delete(
    "/schedules/{schedule_id}",
    status_code=204,
    responses={204: {"description": "Deleted"}, **problem_responses(403, 404, 412)},
)
def delete_schedule(request: Request, p: Auth, schedule_id: ScheduleId):
    """Delete a schedule (and its delivery ledger rows); nothing more is sent for it."""
    require(p, EXPORT)
    now = _now()
    t = report_subscriptions
    with ops_engine_of(request).begin() as conn:
        row = _row(conn, p, schedule_id)
        before = view(row, now)
        check_if_match(request, before)
        conn.execute(t.delete().where(t.c.id == schedule_id))
        _audit(conn, p, schedule_id, row.venue_id, "delete", before, None)
    return Response(status_code=204)


def _set_enabled(request: Request, p: Principal, schedule_id: int, enabled: bool) -> Response:
    require(p, EXPORT)
    now = _now()
    t = report_subscriptions
    with ops_engine_of(request).begin() as conn:
        row = _row(conn, p, schedule_id)
        before = view(row, now)
        check_if_match(request, before)
        if bool(row.enabled) != enabled:  # idempotent: pausing a paused schedule changes nothing
            values = {"enabled": enabled, "updated_at": now}
            if enabled:  # what fell due while paused is skipped, not sent on resume
                values["active_from"] = now
            conn.execute(t.update().where(t.c.id == schedule_id).values(**values))
            after = view(conn.execute(sa.select(t).where(t.c.id == schedule_id)).mappings().one(), now)
            _audit(conn, p, schedule_id, row.venue_id, "resume" if enabled else "pause", before, after)
        else:
            after = before
    return object_response(request, after)


@router.post("/schedules/{schedule_id}/pause", responses=problem_responses(403, 404, 412))
def pause_schedule(request: Request, p: Auth, schedule_id: ScheduleId):
    """Pause: nothing is sent until it is resumed (next_run_at null, status paused)."""
    return _set_enabled(request, p, schedule_id, False)


@router.post("/schedules/{schedule_id}/resume", responses=problem_responses(403, 404, 412))
def resume_schedule(request: Request, p: Auth, schedule_id: ScheduleId):
    """Resume: the next occurrence after now is sent; those that fell due while paused are skipped."""
    return _set_enabled(request, p, schedule_id, True)
