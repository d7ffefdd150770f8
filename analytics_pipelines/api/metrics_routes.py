"""Reading metrics (issue 21, the seed's metrics.routes): GET /v1/metrics (the catalogue of measures),
/v1/metrics/realtime, /v1/metrics/trends, /v1/metrics/compare and /v1/metrics/aggregate -- every number through
the semantic query layer (api/query.py `answer`: compiled from the registry's cubes, the token's tenant and
venue injected, bounded, cached by the reader until a mart read changes). The series arithmetic (gaps, moving
averages, weekday-aligned comparisons) is analytics_pipelines/query/series.py; docs/metrics.md explains it.

The POST routes of the same prefix (recording custom metrics) are api/custom_metrics.py."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from analytics_pipelines.api import query as layer
from analytics_pipelines.api.auth import Principal, venue_scope
from analytics_pipelines.api.common import Reading, VenueQ, json_response
from analytics_pipelines.api.memo import memoized
from analytics_pipelines.api.problems import ProblemError, problem_responses
from analytics_pipelines.query import series
from analytics_pipelines.query.model import QueryRequest
from analytics_pipelines.registry.cubes import KPI_METRICS
from analytics_pipelines.registry.semantic import Cube, Measure
from analytics_pipelines.warehouse.reader import TableMissing

router = APIRouter(prefix="/v1/metrics", tags=["metrics"])

Granularity = Literal["hour", "day", "week", "month", "quarter", "year"]
MeasureQ = Annotated[
    str, Query(min_length=3, max_length=130, description="`<mart>.<measure>` (GET /v1/metrics lists them)")
]
StartQ = Annotated[date | None, Query(description="First day (UTC, inclusive). Default: 29 days before end.")]
EndQ = Annotated[date | None, Query(description="Last day (UTC, inclusive). Default: today.")]
ERRORS = problem_responses(401, 403, 422, 503, 504)
VELOCITY = (
    "tickets",
    "events_selling",
    "tickets_per_minute_5m",
    "tickets_per_minute_15m",
    "tickets_per_minute_60m",
    "high_velocity_events",
    "sellout_imminent_events",
)
CUSTOM = ("points", "value_sum", "value_avg", "value_min", "value_max")


def invalid(field: str, msg: str, member: str | None = None) -> ProblemError:
    return ProblemError(
        422,
        f"invalid {field}: {msg}",
        type="invalid-query",
        errors=[{"field": field, "member": member, "msg": msg}],
    )


def renamer(mapping: dict[str, str]):
    """The layer's field names (`measures.0`, `time_dimension.date_range`, ...) as this route's parameters:
    the longest prefix of `mapping` that matches, else the field unchanged."""

    def rename(field: str) -> str:
        for prefix in sorted(mapping, key=len, reverse=True):
            if field == prefix or field.startswith(prefix + "."):
                return mapping[prefix]
        return field

    return rename


SERIES_FIELDS = {
    "measures": "measure",
    "order": "measure",
    "time_dimension.dimension": "measure",
    "time_dimension.granularity": "granularity",
    "time_dimension.date_range": "start_date",
    "filters": "venue_id",
    "limit": "start_date",
}


def resolve(request: Request, member: str, field: str = "measure") -> tuple[str, Cube, Measure]:
    cubes = request.app.state.registry.cubes()
    name, _, short = member.partition(".")
    cube = cubes.get(name)
    m = cube.measure(short) if cube else None
    if m is None:
        raise invalid(field, f"unknown measure {member!r} (GET /v1/metrics lists the measures)", member)
    return name, cube, m


def timed(name: str, cube: Cube, m: Measure) -> str:
    """The measure's time dimension (`<mart>.<dimension>`); 422 when its cube has none."""
    if not cube.time:
        raise invalid(
            "measure", f"{name}.{m.name} has no time dimension: it has no series", f"{name}.{m.name}"
        )
    return f"{name}.{cube.time}"


def venue_filter(p: Principal, venue_id, cube_name: str) -> list[dict]:
    """A filter on the venue a request names (403 when the token may not read it)."""
    venues = venue_scope(p, venue_id) if venue_id is not None else None
    return [{"member": f"{cube_name}.venue", "operator": "equals", "values": venues}] if venues else []


def days_of(start: date | None, end: date | None) -> tuple[date, date]:
    end = end or datetime.now(UTC).date()
    return start or end - timedelta(days=29), end


async def ask(request: Request, p: Principal, body: dict, fields: dict[str, str]) -> dict:
    """The layer's answer to `body` (compiled, scoped, cached), its errors named by this route's
    parameters."""
    return await layer.answer(request, p, QueryRequest.model_validate(body), renamer(fields))


def admin_sql(out: dict, *answers: dict) -> dict:
    sql = [{"sql": a["sql"], "params": a["params"]} for a in answers if "sql" in a]
    return out | ({"sql": sql} if sql else {})


@router.get("", summary="The catalogue of measures", responses=problem_responses(401, 403, 422))
async def catalogue(
    request: Request,
    p: Reading,
    cube: Annotated[str | None, Query(max_length=63, description="Only this mart's measures")] = None,
) -> Response:
    """Every measure of the registry's cubes (the marts of the query layer) with its aggregation or formula,
    unit, currency, description, time dimension and granularities, and what a period without rows holds."""
    cubes = request.app.state.registry.cubes()
    if cube is not None and cube not in cubes:
        raise invalid("cube", f"{cube!r} has no measures (marts with measures: {', '.join(sorted(cubes))})")
    rows = [r for r in series.catalogue(cubes) if cube is None or r["cube"] == cube]
    return json_response(request, {"measures": rows, "count": len(rows)})


@router.get("/trends", summary="A measure's series with a moving average", responses=ERRORS)
@memoized
async def trends(
    request: Request,
    p: Reading,
    measure: MeasureQ,
    granularity: Granularity = "day",
    start_date: StartQ = None,
    end_date: EndQ = None,
    window: Annotated[
        int | None, Query(ge=1, le=366, description="Periods in the moving average (default per granularity)")
    ] = None,
    venue_id: VenueQ = None,
) -> Response:
    """The measure per period of `granularity` over [start_date, end_date], gaps filled (0 for additive
    measures, NULL otherwise), with the moving value over the last `window` periods (NULL for the first
    window-1 periods)."""
    name, cube, m = resolve(request, measure)
    td = timed(name, cube, m)
    first, last = days_of(start_date, end_date)
    wanted = [measure] + [f"{name}.{x.name}" for x in series.leaves(cube, m) if x is not m]
    body = {
        "measures": wanted if series.ratio_of_sums(cube, m) else [measure],
        "time_dimension": {"dimension": td, "granularity": granularity, "date_range": [first, last]},
        "filters": venue_filter(p, venue_id, name),
    }
    # compiled once, 422s first; at most one row per period comes back, so the bound is the limit
    cap = request.app.state.settings.query_max_rows
    q = layer.compile_for(
        request, p, QueryRequest.model_validate(body | {"limit": cap}), renamer(SERIES_FIELDS)
    )
    periods = series.periods(first, last, granularity)
    if len(periods) > cap:
        raise invalid("granularity", f"{len(periods)} periods of a {granularity}: at most {cap}")
    out = await layer.answer_compiled(request, p, q)
    key = f"{td}.{granularity}"
    got = {series.parse_time(r[key]): r for r in out["data"]}
    gap = series.gap_value(m)
    points = []
    for t in periods:
        row = got.get(t)
        points.append({k.partition(".")[2]: (row or {}).get(k, gap) for k in body["measures"]})
    window = window or series.DEFAULT_WINDOW[granularity]
    moving = series.moving(cube, m, points, window)
    dim_type = cube.dimension(cube.time).type
    start, stop = (
        datetime.combine(first, datetime.min.time(), UTC),
        datetime.combine(last, datetime.min.time(), UTC),
    )
    data = [
        {
            "period": series.time_label(t, dim_type),
            "value": pt[m.name],
            "moving_average": mv,
            "filled": t not in got,
            "complete": t >= start and series.period_end(t, granularity) <= stop + timedelta(days=1),
        }
        for t, pt, mv in zip(periods, points, moving, strict=True)
    ]
    how = (
        "ratio of the window's summed components"
        if series.ratio_of_sums(cube, m)
        else "mean of the window's values"
        if series.is_additive(m)
        else "mean of the window's non-null values"
    )
    result = {
        "measure": measure,
        "unit": m.unit,
        "granularity": granularity,
        "window": window,
        "moving_average": how,
        "gap_value": gap,
        "date_range": [first.isoformat(), last.isoformat()],
        "data": data,
        "as_of": out["meta"]["as_of"],
    }
    return json_response(request, admin_sql(result, out))


@router.get("/compare", summary="A period against the previous one or a year before", responses=ERRORS)
@memoized
async def compare(
    request: Request,
    p: Reading,
    measure: MeasureQ,
    start_date: StartQ = None,
    end_date: EndQ = None,
    against: Literal["previous", "year"] = "previous",
    venue_id: VenueQ = None,
) -> Response:
    """Per day and in total: the measure over [start_date, end_date] against `previous` (the period of equal
    length just before) or `year` (364 days before: each day against the same weekday a year earlier), with
    the absolute and percent change (NULL where the base is 0)."""
    name, cube, m = resolve(request, measure)
    td = timed(name, cube, m)
    first, last = days_of(start_date, end_date)
    b_first, b_last, shift = series.base_range(first, last, against)
    filters = venue_filter(p, venue_id, name)
    days = (last - first).days + 1

    def body(a: date, b: date, daily: bool) -> dict:
        t = {"dimension": td, "date_range": [a, b]} | ({"granularity": "day"} if daily else {})
        return {"measures": [measure], "time_dimension": t, "filters": filters, "limit": max(days, 1)}

    cur = await ask(request, p, body(first, last, True), SERIES_FIELDS)
    base = await ask(request, p, body(b_first, b_last, True), SERIES_FIELDS)
    cur_total = await ask(request, p, body(first, last, False), SERIES_FIELDS)
    base_total = await ask(request, p, body(b_first, b_last, False), SERIES_FIELDS)
    gap = series.gap_value(m)
    key = f"{td}.day"

    def by_day(out: dict) -> dict[date, object]:
        return {series.parse_time(r[key]).date(): r[measure] for r in out["data"]}

    now, then = by_day(cur), by_day(base)
    rows = []
    for i in range(days):
        d = first + timedelta(days=i)
        b = d - timedelta(days=shift)
        v, bv = now.get(d, gap), then.get(b, gap)
        diff, pct = series.change(v, bv)
        rows.append(
            {
                "day": d.isoformat(),
                "base_day": b.isoformat(),
                "weekday": d.strftime("%a"),
                "base_weekday": b.strftime("%a"),
                "value": v,
                "base_value": bv,
                "change": diff,
                "change_pct": pct,
            }
        )

    def total(out: dict):
        v = out["data"][0][measure] if out["data"] else None
        return gap if v is None else v

    t_now, t_base = total(cur_total), total(base_total)
    diff, pct = series.change(t_now, t_base)
    result = {
        "measure": measure,
        "unit": m.unit,
        "against": against,
        "shift_days": shift,
        "period": [first.isoformat(), last.isoformat()],
        "base_period": [b_first.isoformat(), b_last.isoformat()],
        "totals": {"value": t_now, "base_value": t_base, "change": diff, "change_pct": pct},
        "data": rows,
        "as_of": cur["meta"]["as_of"],
    }
    return json_response(request, admin_sql(result, cur, base, cur_total, base_total))


def _split(values: list[str]) -> list[str]:
    return [x.strip() for v in values for x in v.split(",") if x.strip()]


@router.get("/aggregate", summary="The query layer as a GET: measures by dimensions", responses=ERRORS)
@memoized
async def aggregate(
    request: Request,
    p: Reading,
    measures: Annotated[
        list[str], Query(max_length=20, description="`<mart>.<measure>`, repeated or comma-separated")
    ] = [],  # noqa: B006
    dimensions: Annotated[
        list[str], Query(max_length=10, description="`<mart>.<dimension>`, repeated or comma-separated")
    ] = [],  # noqa: B006
    granularity: Granularity | None = None,
    start_date: StartQ = None,
    end_date: EndQ = None,
    limit: Annotated[int | None, Query(ge=1, description="Rows (at most the layer's bound)")] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    venue_id: VenueQ = None,
) -> Response:
    """POST /v1/query's answer for measures grouped by dimensions and, with `granularity`, by the time of
    the measures' mart over [start_date, end_date] (default: the layer's, the last year)."""
    ms, ds = _split(measures), _split(dimensions)
    if not ms and not ds:
        raise invalid("measures", "name at least one measure or dimension")
    first_member = (ms or ds)[0]
    cube_name = first_member.partition(".")[0]
    cube = request.app.state.registry.cubes().get(cube_name)
    body: dict = {"measures": ms, "dimensions": ds, "limit": limit, "offset": offset}
    if (granularity or start_date or end_date) and cube is not None:  # an unknown mart: the layer says so
        if not cube.time:
            field = "granularity" if granularity else "start_date"
            raise invalid(field, f"{first_member} belongs to no mart with a time dimension", first_member)
        td: dict = {"dimension": f"{cube_name}.{cube.time}", "granularity": granularity}
        if start_date or end_date:
            td["date_range"] = list(days_of(start_date, end_date))
        body["time_dimension"] = td
    if cube is not None:
        body["filters"] = venue_filter(p, venue_id, cube_name)
    fields = {
        "measures": "measures",
        "dimensions": "dimensions",
        "order": "measures",
        "time_dimension.dimension": "measures",
        "time_dimension.granularity": "granularity",
        "time_dimension.date_range": "start_date",
        "filters": "venue_id",
    }
    return json_response(request, await ask(request, p, body, fields))


async def _part(request: Request, p: Principal, body: dict, missing: list) -> dict | None:
    try:
        return await ask(request, p, body, {"filters": "venue_id"})
    except TableMissing as exc:
        missing.append(exc.table)
        return None


@router.get("/realtime", summary="Latest 5-minute and hourly values with their as-of time", responses=ERRORS)
async def realtime(request: Request, p: Reading, venue_id: VenueQ = None) -> Response:
    """The newest 5-minute bucket of sales velocity (sales_velocity), the newest hour of the KPI snapshots
    (kpi_snapshots; a tenant-wide token reads the tenant rows) and the newest hour of custom metrics, each
    with its as-of time; a mart not materialized yet leaves its part null and is named in `missing`."""
    missing: list[str] = []
    out: dict = {"five_minute": None, "hourly": None, "custom_hourly": None}
    v = {
        "measures": [f"sales_velocity.{x}" for x in VELOCITY],
        "dimensions": ["sales_velocity.bucket_start"],
        "order": [["sales_velocity.bucket_start", "desc"]],
        "filters": venue_filter(p, venue_id, "sales_velocity"),
        "limit": 1,
    }
    vel = await _part(request, p, v, missing)
    if vel and vel["data"]:
        row = vel["data"][0]
        at = series.parse_time(row["sales_velocity.bucket_start"])
        out["five_minute"] = {
            "as_of": row["sales_velocity.bucket_start"],
            "bucket_end": series.time_label(at + timedelta(minutes=5), "timestamp"),
            "values": {x: row[f"sales_velocity.{x}"] for x in VELOCITY},
        }
    kpi_filter = venue_filter(p, venue_id, "kpi_snapshots")
    if not kpi_filter and venue_scope(p, None) is None:  # the whole tenant: its own snapshot rows
        kpi_filter = [{"member": "kpi_snapshots.venue", "operator": "notSet", "values": []}]
    k = {
        "measures": ["kpi_snapshots.value_sum"],
        "dimensions": ["kpi_snapshots.metric"],
        "time_dimension": {"dimension": "kpi_snapshots.snapshot_hour", "granularity": "hour"},
        "order": [["kpi_snapshots.snapshot_hour", "desc"]],
        "filters": kpi_filter,
        "limit": len(KPI_METRICS),
    }
    out["hourly"] = latest(await _part(request, p, k, missing), "kpi_snapshots.snapshot_hour.hour", "metric")
    c = {
        "measures": [f"custom_metrics.{x}" for x in CUSTOM],
        "dimensions": ["custom_metrics.metric_type"],
        "time_dimension": {"dimension": "custom_metrics.hour", "granularity": "hour"},
        "order": [["custom_metrics.hour", "desc"]],
        "filters": venue_filter(p, venue_id, "custom_metrics"),
        "limit": 8,
    }
    out["custom_hourly"] = latest(
        await _part(request, p, c, missing), "custom_metrics.hour.hour", "metric_type"
    )
    out["missing"] = missing
    return json_response(request, out)


def latest(ans: dict | None, time_key: str, by: str) -> dict | None:
    """The rows of the newest period of a layer answer ordered newest first: {as_of, values: {by: value}}
    (one measure) or {by: {measure: value}} (several)."""
    if not ans or not ans["data"]:
        return None
    top = ans["data"][0][time_key]
    values = {}
    for row in (r for r in ans["data"] if r[time_key] == top):
        key = next(v for k, v in row.items() if k.endswith(f".{by}"))
        ms = {
            k.rpartition(".")[2]: v
            for k, v in row.items()
            if ans["meta"]["members"].get(k, {}).get("kind") == "measure"
        }
        values[key] = next(iter(ms.values())) if len(ms) == 1 else ms
    return {"as_of": top, "values": dict(sorted(values.items()))}
