"""The registry's served marts, generically: what exists (`GET /v1/marts`) and its rows (`GET /v1/marts/{table}`),
scoped by the tenant and venue columns each registry entry declares. A mart added to the registry with
`serve=True` is served here with no route of its own; the purpose-built endpoints (marts.py,
customers.py) stay for the shapes dashboards need."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request

from analytics_pipelines.api.auth import ADMIN, require
from analytics_pipelines.api.common import LimitQ, OffsetQ, Reading, VenueQ, json_response, page, run, scoped
from analytics_pipelines.registry import Registry, Table

router = APIRouter(prefix="/v1")
TableP = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,62}$", description="a served mart's name")]


def registry_of(request: Request) -> Registry:
    return request.app.state.registry


def _served(request: Request, name: str) -> Table:
    for t in registry_of(request).servable():
        if t.name == name:
            return t
    raise HTTPException(404, f"{name} is not a served mart (GET /v1/marts lists them)")


def describe(t: Table) -> dict:
    return {
        "name": t.name,
        "group": t.group,
        "description": t.description,
        "grain": t.grain,
        "keys": list(t.keys),
        "tenant_column": t.tenant_column,
        "venue_column": t.venue_column,
        "partitioned_by": t.partition_column,
        "admin_only": t.tenant_column is None or t.admin_only,
    }


@router.get("/marts", tags=["catalog"])
async def marts(request: Request, p: Reading):
    """The marts this API serves, from the table registry (name, grain, keys, scoping columns)."""
    return json_response(
        request,
        {
            "data": [
                describe(t)
                for t in registry_of(request).servable()
                if (t.tenant_column and not t.admin_only) or p.is_admin
            ]
        },
    )


@router.get(
    "/marts/{table}",
    tags=["catalog"],
    responses={404: {"description": "not a served mart"}, 503: {"description": "not materialized yet"}},
)
async def mart_rows(
    request: Request,
    p: Reading,
    table: TableP,
    venue_id: VenueQ = None,
    limit: LimitQ = 100,
    offset: OffsetQ = 0,
):
    """Rows of one served mart, ordered by its keys. Always filtered to the token's tenant (the entry's tenant
    column); to the token's venue (or the admin's `venue_id`) where the mart has a venue column. A mart with
    no tenant column (model metrics) is for analytics.admin only; a venue token cannot read a tenant-wide
    mart that has no venue column."""
    t = _served(request, table)
    where, params = [], []
    if t.admin_only:
        require(p, ADMIN)
    if t.tenant_column is None:
        require(p, ADMIN)
    else:
        where.append(f"{t.tenant_column} = %s")
        params.append(p.tenant_id)
        venues = scoped(p, venue_id)
        if venues and t.venue_column:
            where.append(f"{t.venue_column} = %s")
            params.append(venues[0])
        elif venues and not t.venue_column and not p.is_admin:
            raise HTTPException(403, f"{t.name} is tenant-wide (no venue column): an admin token is required")
    order = ", ".join(t.keys) if t.keys else "1"
    sql = (
        f"SELECT * FROM {t.name} WHERE {' AND '.join(where) or 'TRUE'} ORDER BY {order} "
        f"LIMIT {int(limit)} OFFSET {int(offset)}"
    )
    res = await run(request, p, sql, params, [t.name])
    return page(request, res, limit=limit, offset=offset, table=t.name)
