"""POST /v1/query: the semantic query layer (docs/query.md). The request is compiled from the registry's
cubes (analytics_pipelines/query/compile.py) with the token's tenant and venue injected, run through the
reader's cache (keyed by tenant, SQL, parameters; forgotten when a mart read changes) under a statement
timeout, and answered with the rows, the marts' as-of times and, for analytics.admin, the SQL that ran.

Not to be confused with the Grafana datasource's POST /grafana/query (api/grafana.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime
from functools import partial

from fastapi import APIRouter, Request, Response

from analytics_pipelines.api import memo
from analytics_pipelines.api.auth import Principal, venue_scope
from analytics_pipelines.api.common import Reading, json_response, jsonable, reader_of, rows_json
from analytics_pipelines.api.problems import ProblemError, problem_responses
from analytics_pipelines.query.compile import Compiled, Limits, QueryError, Scope, compile_query
from analytics_pipelines.query.model import QueryRequest
from analytics_pipelines.warehouse.reader import QueryTimeout, Result

router = APIRouter(prefix="/v1", tags=["query"])


def today() -> date:
    """The day date ranges default to (tests pin it)."""
    return datetime.now(UTC).date()


def compile_request(request: Request, p: Principal, body: QueryRequest, venue: str | None = None) -> Compiled:
    """The request compiled for this token: its tenant, and its venue (or `venue`, which the token must be
    allowed to read; an admin without one reads the whole tenant). Raises QueryError naming each member the
    registry does not allow (the callers decide: 422 for a request, 409 for a stored widget query)."""
    registry = request.app.state.registry
    settings = request.app.state.settings
    venues = venue_scope(p, venue)
    scope = Scope(p.tenant_id, venues[0] if venues else None)
    limits = Limits(max_rows=settings.query_max_rows, max_days=settings.max_range_days)
    tables = {t.name: t for t in registry.tables if t.cube is not None}
    return compile_query(body, registry.cubes(), tables, scope, limits, today())


def invalid_query(
    exc: QueryError, prefix: str = "", rename: Callable[[str], str] | None = None
) -> ProblemError:
    """422 problem naming each member at fault (`prefix`: where the query sits in the body; `rename` maps the
    layer's field names to the parameters of a route that built the request, e.g. GET /v1/metrics/*)."""
    errors = [{**e, "field": prefix + (rename(e["field"]) if rename else e["field"])} for e in exc.errors]
    first = errors[0]
    return ProblemError(422, f"invalid {first['field']}: {first['msg']}", type="invalid-query", errors=errors)


def compile_for(
    request: Request, p: Principal, body: QueryRequest, rename: Callable[[str], str] | None = None
) -> Compiled:
    """The request compiled for this token (422 problem naming each member at fault)."""
    try:
        return compile_request(request, p, body)
    except QueryError as exc:
        raise invalid_query(exc, rename=rename) from None


def _timed_out(exc: QueryTimeout, timeout: float) -> ProblemError:
    return ProblemError(
        504,
        f"{exc}: narrow the date range, filter, or group by fewer dimensions",
        type="query-timeout",
        timeout_seconds=timeout,
    )


async def execute(request: Request, p: Principal, sql: str, params: list, tables: list[str]) -> Result:
    """The reader's cached result, or the query run in the reader's executor under the statement timeout
    (504 problem when it runs past it)."""
    reader = reader_of(request)
    hit = reader.cached(p.tenant_id, sql, params, tables)
    if hit is not None:
        return hit
    timeout = request.app.state.settings.query_timeout_seconds
    run = partial(reader.query, p.tenant_id, sql, params, tables, timeout=timeout)
    try:
        return await asyncio.get_running_loop().run_in_executor(reader.executor, run)
    except QueryTimeout as exc:
        raise _timed_out(exc, timeout) from None


def run_blocking(request: Request, p: Principal, body: QueryRequest) -> tuple[Compiled, Result]:
    """The request compiled and run (cache first) from a route that already runs in a worker thread (the
    Grafana datasource)."""
    q = compile_for(request, p, body)
    timeout = request.app.state.settings.query_timeout_seconds
    try:
        return q, reader_of(request).query(p.tenant_id, q.sql, q.params, q.tables, timeout=timeout)
    except QueryTimeout as exc:
        raise _timed_out(exc, timeout) from None


async def answer(
    request: Request, p: Principal, body: QueryRequest, rename: Callable[[str], str] | None = None
) -> dict:
    """The query layer's answer as a dict (also what other routes build on: api/metrics_routes.py)."""
    return await answer_compiled(request, p, compile_for(request, p, body, rename))


async def answer_compiled(request: Request, p: Principal, q: Compiled) -> dict:
    """The answer of an already compiled query: rows (cache first), as-of times, meta, admin's SQL."""
    memo.pin(request, q.tables)
    res = await execute(request, p, q.sql, q.params, q.tables)
    as_of: dict = dict.fromkeys(q.tables)  # None: the mart has no as-of column
    for mart, sql, params in q.as_of:
        r = await execute(request, p, sql, params, [mart])
        as_of[mart] = jsonable(r.rows[0][0]) if r.rows else None
    data = rows_json(res)
    out = {
        "data": data,
        "meta": {
            "members": q.members,
            "as_of": as_of,
            "date_range": jsonable(list(q.date_range)) if q.date_range else None,
            "limit": q.limit,
            "offset": q.offset,
            "returned": len(data),
        },
    }
    if p.is_admin:
        out["sql"] = q.sql
        out["params"] = jsonable(list(q.params))
    return out


@router.post(
    "/query",
    responses=problem_responses(401, 403, 422, 503, 504),
    summary="Ask the semantic query layer (Cube-style measures, dimensions, time dimension, filters)",
)
async def query(request: Request, p: Reading, body: QueryRequest) -> Response:
    """Rows for `measures` grouped by `dimensions` and the `time_dimension` at its granularity, filtered,
    ordered and paged; members are `<mart>.<member>` of the registry's cubes (GET /v1/query/members lists
    them). The token's tenant (and venue, unless an admin's) is always applied."""
    return json_response(request, await answer(request, p, body))


@router.get("/query/members", summary="The measures and dimensions the query layer offers")
async def members(request: Request, p: Reading) -> Response:
    """Every cube's measures (aggregation, unit, description) and dimensions (type, granularities, allowed
    values) and the joins it allows."""
    out = {}
    for name, cube in request.app.state.registry.cubes().items():
        out[name] = {
            "description": cube.description,
            "measures": [
                {
                    "name": f"{name}.{m.name}",
                    "aggregation": m.agg,
                    "unit": m.unit,
                    "description": m.description,
                }
                | ({"formula": m.formula} if m.formula else {})
                for m in cube.measures
            ],
            "dimensions": [
                {"name": f"{name}.{d.name}", "type": d.type, "description": d.description}
                | ({"granularities": list(d.granularities)} if d.granularities else {})
                | ({"values": list(d.values)} if d.values else {})
                for d in cube.dimensions
            ],
            "joins": [j.to for j in cube.joins],
        }
    return json_response(request, {"cubes": out})
