"""Shared request plumbing: auth dependency, query parameters, scoped SQL, JSON with ETag."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated
from uuid import UUID

from fastapi import Depends, HTTPException, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from analytics_pipelines.api.auth import AUTH_STATE, READ, Principal, decode_token, require, venue_scope
from analytics_pipelines.warehouse.reader import Reader, Result

_bearer = HTTPBearer(auto_error=False, description="JWT (HS256, or RS256 when a public key is configured)")


# The dependencies are coroutines: they do no I/O, and a plain `def` would send each of them to a worker
# thread (four thread hops per request before the endpoint runs).
async def principal(
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if creds is None:
        if request.headers.get("authorization"):
            raise HTTPException(
                401,
                "Authentication required: use 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        raise HTTPException(401, "Authentication required", headers={"WWW-Authenticate": "Bearer"})
    cached = request.scope.get("state", {}).get(AUTH_STATE)  # verified once by the rate limiter
    if cached is not None and cached[0] == creds.credentials:
        if isinstance(cached[1], HTTPException):
            raise cached[1]
        return cached[1]
    return decode_token(request.app.state.settings, creds.credentials)


Auth = Annotated[Principal, Depends(principal)]


def reader_of(request: Request) -> Reader:
    return request.app.state.reader


async def read_principal(p: Auth) -> Principal:
    require(p, READ)
    return p


Reading = Annotated[Principal, Depends(read_principal)]

VenueQ = Annotated[
    UUID | None,
    Query(
        description="Venue to read. Non-admin tokens may name only their own "
        "venue (the default); admins any venue of their tenant "
        "(default: the whole tenant)."
    ),
]
StartQ = Annotated[date | None, Query(description="First day (UTC, inclusive). Default: 30 days before end.")]
EndQ = Annotated[date | None, Query(description="Last day (UTC, inclusive). Default: today.")]
LimitQ = Annotated[int, Query(ge=1, le=1000, description="Page size, 1-1000.")]
OffsetQ = Annotated[int, Query(ge=0, le=10_000_000, description="Rows to skip.")]


def date_range(request: Request, start: date | None, end: date | None) -> tuple[date, date]:
    """Defaults and the seed's rules: start <= end, at most max_range_days days."""
    max_days = request.app.state.settings.max_range_days
    end = end or datetime.now(UTC).date()
    start = start or end - timedelta(days=29)
    if start > end:
        raise HTTPException(400, f"start_date ({start}) must be on or before end_date ({end})")
    if (end - start).days + 1 > max_days:
        raise HTTPException(400, f"date range too long: {(end - start).days + 1} days, at most {max_days}")
    return start, end


def scope_sql(p: Principal, venues: list[str] | None, table_alias: str = "") -> tuple[str, list]:
    """`tenant_id = %s [AND venue_id = %s]` for the token's tenant and the allowed venue."""
    a = f"{table_alias}." if table_alias else ""
    if venues:
        return f"{a}tenant_id = %s AND {a}venue_id = %s", [p.tenant_id, venues[0]]
    return f"{a}tenant_id = %s", [p.tenant_id]


async def run(request: Request, p: Principal, sql: str, params: Sequence, tables: Sequence[str]) -> Result:
    """The query's result for the token's tenant: from the reader's cache on the event loop, or computed
    by one of the reader's few worker threads."""
    reader = reader_of(request)
    hit = reader.cached(p.tenant_id, sql, params, tables)
    if hit is not None:
        return hit
    return await asyncio.get_running_loop().run_in_executor(
        reader.executor, reader.query, p.tenant_id, sql, params, tables
    )


def run_blocking(request: Request, p: Principal, sql: str, params: Sequence, tables: Sequence[str]) -> Result:
    """`run` for endpoints that are plain functions (they run in a worker thread already)."""
    return reader_of(request).query(p.tenant_id, sql, params, tables)


def jsonable(v):
    if v is None or isinstance(v, (str, bool, int)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=UTC)
        return v.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, UUID):
        return str(v)
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    return str(v)


def rows_json(result: Result) -> list[dict]:
    cols = result.columns
    return [{c: jsonable(x) for c, x in zip(cols, r, strict=True)} for r in result.rows]


def json_response(request: Request, payload: dict, cache: bool = True, status: int = 200) -> Response:
    """JSON body; mart reads get an ETag (hash of the body) and Cache-Control, and 304 when the client's
    If-None-Match already names this body."""
    return body_response(request, dumps(payload), cache, status)


def dumps(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def body_response(request: Request, body: bytes, cache: bool = True, status: int = 200) -> Response:
    """`json_response` of an already encoded body (api/memo.py keeps bodies)."""
    if not cache:
        return Response(body, status_code=status, media_type="application/json")
    etag = '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'
    headers = {
        "ETag": etag,
        "Vary": "Authorization",
        "Cache-Control": f"private, max-age={request.app.state.settings.cache_max_age}",
    }
    inm = request.headers.get("if-none-match")
    if inm and (inm.strip() == "*" or etag in {t.strip().removeprefix("W/") for t in inm.split(",")}):
        return Response(status_code=304, headers=headers)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def page(request: Request, result: Result, limit: int | None = None, offset: int = 0, **meta) -> Response:
    data = rows_json(result)
    m = {**meta}
    if limit is not None:
        m.update(limit=limit, offset=offset, returned=len(data))
    return json_response(request, {"data": data, "meta": {k: jsonable(v) for k, v in m.items()}})


def scoped(p: Principal, venue_id) -> list[str] | None:
    return venue_scope(p, venue_id)


@dataclass
class Scope:
    """A read's principal, its tenant/venue condition and (for ranged reads) its validated date range."""

    p: Principal
    venues: list[str] | None
    where: str
    params: list
    start: date | None = None
    end: date | None = None


async def _venue_scope(p: Reading, venue_id: VenueQ = None) -> Scope:
    venues = scoped(p, venue_id)
    return Scope(p, venues, *scope_sql(p, venues))


async def _ranged_scope(
    request: Request, p: Reading, venue_id: VenueQ = None, start_date: StartQ = None, end_date: EndQ = None
) -> Scope:
    start, end = date_range(request, start_date, end_date)
    venues = scoped(p, venue_id)
    return Scope(p, venues, *scope_sql(p, venues), start=start, end=end)


#: endpoint parameters: the venue (validated against the token) and, for Ranged, start_date/end_date
Scoped = Annotated[Scope, Depends(_venue_scope)]
Ranged = Annotated[Scope, Depends(_ranged_scope)]
