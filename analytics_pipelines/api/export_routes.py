"""Export requests over the export lifecycle (analytics_pipelines/exports/lifecycle.py): create (also
POST /v1/reports/generate), history, status, download, cancel, retry.

Cancel: pending or processing -> cancelled; a run that finishes afterwards finds its completion refused (a
conditional UPDATE ... WHERE status = 'processing') and deletes its file, so a cancelled export is never
served. Retry: failed or expired -> the SAME request back to pending (same id and download URL, attempt count
kept, at least one more attempt allowed); the failure it had is visible in the audit row's `before`."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path as FsPath
from typing import Annotated, Literal
from uuid import UUID

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from analytics_pipelines.api.auth import EXPORT, Principal, require
from analytics_pipelines.api.common import Auth, LimitQ, OffsetQ, VenueQ, scoped
from analytics_pipelines.api.problems import problem_responses
from analytics_pipelines.api.writes import (
    check_if_match,
    check_owner,
    list_response,
    object_response,
    ops_engine_of,
    paginate,
    row_dict,
)
from analytics_pipelines.exports import lifecycle
from analytics_pipelines.ops.audit import record_audit
from analytics_pipelines.ops.db import as_utc
from analytics_pipelines.ops.exports import EXPORT_FORMATS, EXPORT_STATUSES, EXPORT_TYPES, analytics_exports
from analytics_pipelines.reports.export_types import RAW_DATA_TABLES
from analytics_pipelines.warehouse import open_warehouse

router = APIRouter(prefix="/v1")
ExportId = Annotated[UUID, Path(description="The export request's id")]


class ExportFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date_from: date | None = None
    date_to: date | None = None
    venue_ids: list[UUID] = Field(default_factory=list, max_length=100)
    event_ids: list[UUID] = Field(default_factory=list, max_length=1000)
    category_ids: list[UUID] = Field(default_factory=list, max_length=100)
    segments: list[Annotated[str, Field(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9 _-]+$")]] = Field(
        default_factory=list, max_length=20
    )

    @model_validator(mode="after")
    def _range(self):
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError("date_from must be on or before date_to")
        return self


class ExportOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    table: Literal.__getitem__(RAW_DATA_TABLES) | None = Field(  # type: ignore[valid-type]
        None, description="raw_data only (required there): the table to export"
    )
    top: int | None = Field(None, ge=1, le=1000, description="analytics_report: how many top events")


class ExportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    export_type: Literal.__getitem__(EXPORT_TYPES)  # type: ignore[valid-type]
    format: Literal.__getitem__(EXPORT_FORMATS)  # type: ignore[valid-type]
    filters: ExportFilters = Field(default_factory=ExportFilters)
    options: ExportOptions = Field(default_factory=ExportOptions)


def public(row) -> dict:
    """An export as the API shows it (a row, or a row_dict)."""
    d = row if isinstance(row, dict) else row_dict(row)
    d.pop("file_path", None)  # where the file lives on the server is not the client's business
    d["retries"] = d.get("retries") or 0
    if d.get("status") == "completed":
        d["download_url"] = f"/v1/exports/{d['id']}/download"
    return d


def create_export(request: Request, p: Principal, body: ExportCreate):
    """Queue an export (pending; the export sensor picks it up), with its audit row. Venue users may export
    only their venue; admins any venues of their tenant or the whole tenant."""
    require(p, EXPORT)
    f = body.filters
    max_days = request.app.state.settings.max_range_days
    if f.date_from and f.date_to and (f.date_to - f.date_from).days + 1 > max_days:
        raise HTTPException(400, f"date range too long: at most {max_days} days")
    venues = sorted({str(v) for v in f.venue_ids})
    if not p.is_admin:
        if not p.venue_id:
            raise HTTPException(403, "Forbidden: the token names no venue and is not an admin's")
        if any(v != p.venue_id for v in venues):
            raise HTTPException(403, "Forbidden: a venue-scoped token may export only its own venue")
        venues = [p.venue_id]
    filters = f.model_dump(mode="json", exclude_defaults=True)
    filters["venue_ids"] = venues
    engine = ops_engine_of(request)
    warehouse = open_warehouse(request.app.state.settings.warehouse_url) if f.segments else None
    t = analytics_exports
    try:  # the export runner's own validation and insert, in one transaction with the audit row
        with engine.begin() as conn:
            new_id = lifecycle.create_request(
                engine,
                p.tenant_id,
                body.export_type,
                body.format,
                filters,
                body.options.model_dump(mode="json", exclude_none=True),
                venue_id=venues[0] if len(venues) == 1 else None,
                user_id=p.user_id,
                warehouse=warehouse,
                conn=conn,
            )
            obj = public(conn.execute(sa.select(t).where(t.c.id == new_id)).one())
            record_audit(
                conn,
                tenant_id=p.tenant_id,
                venue_id=obj["venue_id"],
                actor=p.user_id,
                entity="export",
                entity_id=new_id,
                action="create",
                before=None,
                after=obj,
            )
    except (ValueError, LookupError) as exc:  # ExportRequestError says what is wrong
        raise HTTPException(400, str(exc)) from None
    return object_response(request, obj, 202, f"/v1/exports/{new_id}")


@router.post(
    "/exports",
    status_code=202,
    tags=["exports"],
    responses={202: {"description": "Accepted: a pending export request"}, **problem_responses(400, 403)},
)
def post_export(request: Request, p: Auth, body: ExportCreate):
    """Queue an export (status pending; the export runner picks it up). Venue users may export only their
    venue; admins any venues of their tenant or the whole tenant."""
    return create_export(request, p, body)


def _created_bound(d: date) -> datetime:
    return datetime.combine(d, time(0), UTC)


@router.get("/exports", tags=["exports"], responses=problem_responses(403, 422))
def list_exports(
    request: Request,
    p: Auth,
    venue_id: VenueQ = None,
    status: Annotated[
        Literal.__getitem__(EXPORT_STATUSES) | None,  # type: ignore[valid-type]
        Query(description="Only exports in this status"),
    ] = None,
    type: Annotated[
        Literal.__getitem__(EXPORT_TYPES) | None,  # type: ignore[valid-type]
        Query(description="Only exports of this type"),
    ] = None,
    created_from: Annotated[date | None, Query(description="Created on or after this UTC day")] = None,
    created_to: Annotated[date | None, Query(description="Created on or before this UTC day")] = None,
    limit: LimitQ = 100,
    offset: OffsetQ = 0,
):
    """The export history of the token's venue (admins: the tenant's, or one venue's), newest first."""
    require(p, EXPORT)
    if created_from and created_to and created_from > created_to:
        raise HTTPException(422, "created_from must be on or before created_to")
    venues = scoped(p, venue_id)
    t = analytics_exports
    q = sa.select(t).where(t.c.tenant_id == p.tenant_id)
    if venues:
        q = q.where(t.c.venue_id == venues[0])
    if status:
        q = q.where(t.c.status == status)
    if type:
        q = q.where(t.c.export_type == type)
    if created_from:
        q = q.where(t.c.created_at >= _created_bound(created_from))
    if created_to and created_to < date.max:
        q = q.where(t.c.created_at < _created_bound(created_to + timedelta(days=1)))
    q = q.order_by(t.c.created_at.desc(), t.c.id.desc())
    with ops_engine_of(request).connect() as conn:
        rows, total = paginate(conn, q, limit, offset)
    return list_response(request, [public(r) for r in rows], limit, offset, total)


def _export_row(request: Request, p: Principal, export_id: UUID, conn: sa.Connection | None = None):
    require(p, EXPORT)
    q = sa.select(analytics_exports).where(analytics_exports.c.id == str(export_id))
    if conn is not None:
        row = conn.execute(q).first()
    else:
        with ops_engine_of(request).connect() as c:
            row = c.execute(q).first()
    check_owner(p, row, "export")
    return row


@router.get("/exports/{export_id}", tags=["exports"], responses=problem_responses(403, 404))
def export_status(request: Request, p: Auth, export_id: ExportId):
    """An export request's status, progress and, once completed, its download link (with its ETag)."""
    return object_response(request, public(_export_row(request, p, export_id)))


def _transition(request: Request, p: Principal, export_id: UUID, action: str, allowed: tuple[str, ...]):
    engine = ops_engine_of(request)
    with engine.begin() as conn:
        row = _export_row(request, p, export_id, conn)
        before = public(row)
        check_if_match(request, before)
        if row.status not in allowed:
            raise HTTPException(
                409, f"cannot {action} export {row.id}: it is {row.status} (only {' or '.join(allowed)})"
            )
        try:
            getattr(lifecycle, action)(engine, row.id, conn=conn)
        except lifecycle.IllegalTransition as exc:  # changed between our read and the UPDATE
            raise HTTPException(409, str(exc)) from None
        after = public(
            conn.execute(sa.select(analytics_exports).where(analytics_exports.c.id == row.id)).one()
        )
        record_audit(
            conn,
            tenant_id=p.tenant_id,
            venue_id=row.venue_id,
            actor=p.user_id,
            entity="export",
            entity_id=row.id,
            action=action,
            before=before,
            after=after,
        )
    return after


@router.post("/exports/{export_id}/cancel", tags=["exports"], responses=problem_responses(403, 404, 409, 412))
def cancel_export(request: Request, p: Auth, export_id: ExportId):
    """Cancel a pending or processing export. A run producing it discards its file when it finishes; the
    export is never downloadable. 409 once completed, failed, expired or already cancelled."""
    return object_response(request, _transition(request, p, export_id, "cancel", ("pending", "processing")))


@router.post(
    "/exports/{export_id}/retry",
    status_code=202,
    tags=["exports"],
    responses={202: {"description": "Accepted: pending again"}, **problem_responses(403, 404, 409, 412)},
)
def retry_export(request: Request, p: Auth, export_id: ExportId):
    """Run a failed or expired export again: the same request (id, download URL) back to pending, its
    attempt count kept and at least one more attempt allowed (`retries` counts these manual retries)."""
    after = _transition(request, p, export_id, "retry", ("failed", "expired"))
    return object_response(request, after, 202)


@router.get(
    "/exports/{export_id}/download",
    tags=["exports"],
    responses={200: {"content": {"application/octet-stream": {}}}, **problem_responses(403, 404, 409, 410)},
)
def export_download(request: Request, p: Auth, export_id: ExportId):
    """The completed export's file, streamed (X-Checksum-SHA256 carries its checksum). 409 while it is not
    completed (a cancelled export never is), 410 once expired."""
    row = _export_row(request, p, export_id)
    expires = as_utc(row.expires_at)
    if row.status == "expired" or (expires and expires <= datetime.now(UTC)):
        raise HTTPException(410, "export expired; request a new one (or POST .../retry)")
    if row.status != "completed":
        raise HTTPException(409, f"export is {row.status}, not completed")
    root = request.app.state.settings.export_dir
    path = FsPath(row.file_path or "").resolve() if row.file_path else None
    if path is None or root is None or not path.is_relative_to(root) or not path.is_file():
        raise HTTPException(410, "export file is no longer available; request a new one")
    headers = {"Cache-Control": "private, no-store"}
    if row.checksum_sha256:
        headers["X-Checksum-SHA256"] = row.checksum_sha256
    media = {
        "csv": "text/csv",
        "json": "application/json",
        "pdf": "application/pdf",
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    }
    return FileResponse(
        path,
        media_type=media.get(row.format, "application/octet-stream"),
        filename=f"{row.export_type}-{row.id}.{row.format}",
        headers=headers,
    )
