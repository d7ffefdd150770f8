"""Conventions of the API's operational routes (the ops store, never a mart): one pagination scheme,
optimistic concurrency on writes (ETag / If-Match -> 412), the audit row of every write, ownership checks.

- Pagination: `limit` 1-1000 and `offset` (`LimitQ`, `OffsetQ`); the body is `{"data": [...], "meta":
  {"limit", "offset", "returned", "total"}}` -- the same shape as the mart reads (`common.page`).
- ETag: every single-object response carries `ETag`, a hash of the object as shown. A write (PUT, DELETE,
  POST on an object) honours `If-Match`: when it does not name the current ETag the write is refused with 412
  and nothing changes. Without If-Match the write proceeds (clients that do not do concurrency control keep
  working; two operators are kept from overwriting each other whenever their clients send it).
- Ownership: another tenant's object does not exist for the token (404: its id must not leak); another
  venue's object of the same tenant is 403 (the caller knows the venue exists; the message says why)."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

import sqlalchemy as sa
from fastapi import HTTPException, Request, Response

from analytics_pipelines.api.auth import Principal
from analytics_pipelines.api.common import jsonable
from analytics_pipelines.ops.audit import record_audit
from analytics_pipelines.ops.db import as_utc


def ops_engine_of(request: Request) -> sa.Engine:
    """The API's engine for the ops store (created on first use; tables created if missing)."""
    state = request.app.state
    if getattr(state, "ops", None) is None:
        from analytics_pipelines.ops.db import ops_engine

        state.ops = ops_engine(state.settings.ops_url)
    return state.ops


def row_dict(row) -> dict:
    """A SQLAlchemy row as JSON-able dict, timestamps as aware UTC."""
    return {k: jsonable(as_utc(v) if isinstance(v, datetime) else v) for k, v in row._mapping.items()}


def etag_of(obj: dict) -> str:
    body = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def check_if_match(request: Request, current: dict) -> None:
    """412 when the request's If-Match names neither `*` nor the current object's ETag."""
    header = request.headers.get("if-match")
    if header is None:
        return
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    if "*" in tags or etag_of(current) in tags:
        return
    raise HTTPException(
        412, "the object changed since you read it (If-Match does not match its ETag); read it again"
    )


def object_response(request: Request, obj: dict, status: int = 200, location: str | None = None) -> Response:
    """`{"data": obj}` with the object's ETag (and Location for a created object)."""
    body = json.dumps({"data": obj}, separators=(",", ":"), ensure_ascii=False).encode()
    headers = {"ETag": etag_of(obj), "Cache-Control": "no-store"}
    if location:
        headers["Location"] = location
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def list_response(request: Request, rows: list[dict], limit: int, offset: int, total: int | None) -> Response:
    body = {"data": rows, "meta": {"limit": limit, "offset": offset, "returned": len(rows), "total": total}}
    return Response(
        json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(),
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def paginate(conn: sa.Connection, query: sa.Select, limit: int, offset: int) -> tuple[list[dict], int]:
    """One page of `query` and the total row count (same filters)."""
    total = conn.execute(sa.select(sa.func.count()).select_from(query.order_by(None).subquery())).scalar_one()
    rows = [row_dict(r) for r in conn.execute(query.limit(limit).offset(offset))]
    return rows, int(total)


def check_owner(p: Principal, row, what: str) -> None:
    """Another tenant's row does not exist for this token (404); another venue's is forbidden (403);
    a tenant-wide row (venue null) is an admin's."""
    if row is None or row.tenant_id != p.tenant_id:
        raise HTTPException(404, f"{what} not found")
    if not p.is_admin and (row.venue_id is None or row.venue_id != p.venue_id):
        raise HTTPException(403, f"Forbidden: this {what} belongs to another venue or to the whole tenant")


def audit(
    conn: sa.Connection, p: Principal, entity: str, action: str, before: dict | None, after: dict | None
):
    """The audit row of a write of `entity` (an object as the API shows it, with `id` and `venue_id`) by the
    token's subject, on the write's own connection (ops/audit.py)."""
    ref = after or before
    record_audit(
        conn,
        tenant_id=p.tenant_id,
        venue_id=ref.get("venue_id"),
        actor=p.user_id,
        entity=entity,
        entity_id=ref["id"],
        action=action,
        before=before,
        after=after,
    )
