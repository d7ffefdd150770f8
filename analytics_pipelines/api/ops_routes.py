"""The API's only writes, all into operational tables: export requests and alert acknowledgements."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path as FsPath
from typing import Annotated, Literal
from uuid import UUID

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from analytics_pipelines.alerting.engine import acknowledge as ack_instance
from analytics_pipelines.api.auth import EXPORT, READ, Principal, require
from analytics_pipelines.api.common import Auth, LimitQ, OffsetQ, VenueQ, json_response, scoped
from analytics_pipelines.api.writes import check_owner, ops_engine_of, row_dict
from analytics_pipelines.exports.lifecycle import create_request
from analytics_pipelines.ops.alerts import alert_instances
from analytics_pipelines.ops.db import as_utc
from analytics_pipelines.ops.exports import EXPORT_FORMATS, EXPORT_TYPES, analytics_exports
from analytics_pipelines.reports.export_types import RAW_DATA_TABLES
from analytics_pipelines.warehouse import open_warehouse

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


# -- exports ------------------------------------------------------------------------------------------
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
    top: int | None = Field(None, ge=1, le=1000, description="event_summary: how many top events")


class ExportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    export_type: Literal.__getitem__(EXPORT_TYPES)  # type: ignore[valid-type]
    format: Literal.__getitem__(EXPORT_FORMATS)  # type: ignore[valid-type]
    filters: ExportFilters = Field(default_factory=ExportFilters)
    options: ExportOptions = Field(default_factory=ExportOptions)


def _public(row) -> dict:
    d = _row(row)
    d.pop("file_path", None)  # where the file lives on the server is not the client's business
    if d.get("status") == "completed":
        d["download_url"] = f"/v1/exports/{d['id']}/download"
    return d


@router.post(
    "/exports",
    status_code=202,
    tags=["exports"],
    responses={202: {"description": "Accepted: a pending export request"}},
)
def create_export(request: Request, p: Auth, body: ExportCreate):
    """Queue an export (status pending; the export runner picks it up). Venue users may export only their
    venue; admins any venues of their tenant or the whole tenant."""
    require(p, EXPORT)
    f = body.filters
    if (
        f.date_from
        and f.date_to
        and (f.date_to - f.date_from).days + 1 > request.app.state.settings.max_range_days
    ):
        raise HTTPException(
            400, f"date range too long: at most {request.app.state.settings.max_range_days} days"
        )
    venues = sorted({str(v) for v in f.venue_ids})
    if not p.is_admin:
        if not p.venue_id:
            raise HTTPException(403, "Forbidden: the token names no venue and is not an admin's")
        if any(v != p.venue_id for v in venues):
            raise HTTPException(403, "Forbidden: a venue-scoped token may export only its own venue")
        venues = [p.venue_id]
    filters = f.model_dump(mode="json", exclude_defaults=True)
    filters["venue_ids"] = venues
    engine = _engine(request)
    warehouse = open_warehouse(request.app.state.settings.warehouse_url) if f.segments else None
    try:  # the export runner's own validation and insert (analytics_pipelines/exports/lifecycle.py)
        new_id = create_request(
            engine,
            p.tenant_id,
            body.export_type,
            body.format,
            filters,
            body.options.model_dump(mode="json", exclude_none=True),
            venue_id=venues[0] if len(venues) == 1 else None,
            user_id=p.user_id,
            warehouse=warehouse,
        )
    except (ValueError, LookupError) as exc:  # ExportRequestError says what is wrong
        raise HTTPException(400, str(exc)) from None
    with engine.connect() as conn:
        row = conn.execute(sa.select(analytics_exports).where(analytics_exports.c.id == new_id)).first()
    resp = json_response(request, {"data": _public(row)}, cache=False, status=202)
    resp.headers["Location"] = f"/v1/exports/{new_id}"
    return resp


def _export_row(request: Request, p: Principal, export_id: UUID):
    require(p, EXPORT)
    with _engine(request).connect() as conn:
        row = conn.execute(
            sa.select(analytics_exports).where(analytics_exports.c.id == str(export_id))
        ).first()
    _check_owner(p, row, "export")
    return row


@router.get("/exports/{export_id}", tags=["exports"])
def export_status(request: Request, p: Auth, export_id: Annotated[UUID, Path()]):
    """An export request's status, progress and, once completed, its download link."""
    return json_response(request, {"data": _public(_export_row(request, p, export_id))}, cache=False)


@router.get(
    "/exports/{export_id}/download",
    tags=["exports"],
    responses={
        200: {"content": {"application/octet-stream": {}}},
        409: {"description": "not completed yet"},
        410: {"description": "expired"},
    },
)
def export_download(request: Request, p: Auth, export_id: Annotated[UUID, Path()]):
    """The completed export's file, streamed (X-Checksum-SHA256 carries its checksum)."""
    row = _export_row(request, p, export_id)
    expires = _utc(row.expires_at)
    if row.status == "expired" or (expires and expires <= datetime.now(UTC)):
        raise HTTPException(410, "export expired; request a new one")
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
