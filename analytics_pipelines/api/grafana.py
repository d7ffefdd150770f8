"""Grafana simple-JSON datasource (the monitoring service's /, /search, /query, /annotations) over
kpi_snapshots, the sales_metrics series and sales velocity (`velocity.<field>[.<event_id>]`), scoped like every other read: the token's venue, or the whole
tenant for an admin. Configure Grafana's JSON datasource with URL <api>/grafana and a custom header
`Authorization: Bearer <token>`.

`kpi.<metric>`, `sales.<granularity>.<field>` and any query-layer measure of a cube with a time dimension
(`<mart>.<measure>[.<granularity>]`, e.g. `venue_analytics.average_order_value.week`) are answered by the
semantic query layer (api/query.py: the same compiled, scoped, cached query as POST /v1/query); fraud and
velocity series by their own reads."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from analytics_pipelines.api import monitoring
from analytics_pipelines.api import query as layer
from analytics_pipelines.api.common import Reading, json_response, reader_of
from analytics_pipelines.api.common import run_blocking as run
from analytics_pipelines.api.fraud import FRAUD_FIELDS, fraud_annotations, fraud_series
from analytics_pipelines.query.model import Filter, QueryRequest, TimeDimension
from analytics_pipelines.warehouse.reader import Result, TableMissing

router = APIRouter(prefix="/grafana", tags=["grafana"])
SALES_FIELDS = ("tickets_sold", "orders", "gross_revenue_cents", "unique_customers")
#: sales_metrics' columns -> the query layer's measures of the sales_metrics cube
SALES_MEASURES = dict(
    zip(SALES_FIELDS, ("tickets_sold", "orders", "gross_revenue", "unique_customers"), strict=True)
)
GRANULARITIES = ("hour", "day", "week", "month")


class Range(BaseModel):
    model_config = ConfigDict(extra="allow")
    from_: datetime = Field(alias="from")
    to: datetime

    @field_validator("from_", "to")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        # Grafana sends UTC ("...Z"); a time without an offset is taken as UTC, never compared naive
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)


class Target(BaseModel):
    model_config = ConfigDict(extra="allow")
    target: Annotated[str, Field(min_length=1, max_length=100)]
    refId: str | None = None


class QueryBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    range: Range
    targets: list[Target] = Field(max_length=20)
    maxDataPoints: int | None = Field(None, ge=1, le=100_000)


class SearchBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    target: str | None = Field(None, max_length=100)


class AnnotationBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    range: Range
    annotation: dict | None = None


@router.get("/")
def grafana_ok(p: Reading):
    """Datasource test: {"status": "ok"}."""
    return {"status": "ok"}


def _kpi_scope(p) -> tuple[str, list]:
    if p.venue_id and not p.is_admin:
        return "tenant_id = %s AND venue_id = %s", [p.tenant_id, p.venue_id]
    return "tenant_id = %s AND venue_id IS NULL", [p.tenant_id]


@router.post("/search")
def grafana_search(request: Request, p: Reading, body: SearchBody | None = None):
    """Metric names: `kpi.<metric>` (kpi_snapshots), `sales.<granularity>.<field>` (sales_metrics) and
    `fraud.<field>` (fraud_metrics_hourly)."""
    names = []
    if "kpi_snapshots" in reader_of(request).tables():
        cond, params = _kpi_scope(p)
        res = run(
            request,
            p,
            f"SELECT DISTINCT metric FROM kpi_snapshots WHERE {cond} ORDER BY metric",
            params,
            ["kpi_snapshots"],
        )
        names += [f"kpi.{r[0]}" for r in res.rows]
    if "sales_metrics" in reader_of(request).tables():
        names += [f"sales.{g}.{f}" for g in GRANULARITIES for f in SALES_FIELDS]
    if "fraud_metrics_hourly" in reader_of(request).tables():
        names += [f"fraud.{f}" for f in FRAUD_FIELDS]
    if "sales_velocity" in reader_of(request).tables():
        names += [f"velocity.{f}" for f in monitoring.GRAFANA_FIELDS]
    present = reader_of(request).tables()
    for cube_name, cube in request.app.state.registry.cubes().items():
        if cube.time and cube_name in present:
            names += [f"{cube_name}.{m.name}" for m in cube.measures]
    needle = (body.target or "").lower() if body else ""
    return [n for n in names if needle in n.lower()]


def _layer_series(
    request: Request, p, measure: str, time_dim: str, granularity: str, start, end, cap, filters=()
):
    body = QueryRequest(
        measures=[measure],
        time_dimension=TimeDimension(
            dimension=time_dim, granularity=granularity, date_range=(start.date(), end.date())
        ),
        filters=list(filters),
        limit=min(cap, request.app.state.settings.query_max_rows),
    )
    _, res = layer.run_blocking(request, p, body)
    return Result(res.columns[::-1], [(v, ts) for ts, v in res.rows])  # (value, time) like the other series


def _series(request: Request, p, target: str, start: datetime, end: datetime, cap: int) -> list:
    parts = target.split(".")
    cubes = request.app.state.registry.cubes()
    if parts[0] == "kpi" and len(parts) == 2:
        filters = [Filter(member="kpi_snapshots.metric", operator="equals", values=[parts[1]])]
        if p.is_admin:  # the tenant-wide snapshots (a venue's token reads its venue's)
            filters.append(Filter(member="kpi_snapshots.venue", operator="notSet"))
        res = _layer_series(
            request,
            p,
            "kpi_snapshots.value_sum",
            "kpi_snapshots.snapshot_hour",
            "hour",
            start,
            end,
            cap,
            filters,
        )
    elif parts[0] == "sales" and len(parts) == 3 and parts[1] in GRANULARITIES and parts[2] in SALES_FIELDS:
        measure = f"sales_metrics.{SALES_MEASURES[parts[2]]}"
        res = _layer_series(request, p, measure, "sales_metrics.period_start", parts[1], start, end, cap)
    elif parts[0] == "fraud" and len(parts) == 2 and parts[1] in FRAUD_FIELDS:
        res = fraud_series(request, p, parts[1], start, end, cap)
    elif parts[0] == "velocity":
        res = monitoring.grafana_velocity(run, request, p, parts, start, end, cap)
    elif parts[0] in cubes and cubes[parts[0]].time and len(parts) in (2, 3):
        cube = cubes[parts[0]]
        allowed = cube.dimension(cube.time).granularities
        granularity = parts[2] if len(parts) == 3 else ("day" if "day" in allowed else allowed[0])
        res = _layer_series(
            request, p, ".".join(parts[:2]), f"{parts[0]}.{cube.time}", granularity, start, end, cap
        )
    else:
        raise HTTPException(400, f"unknown target {target!r}: use a name from /grafana/search")
    return [[None if v is None else float(v), _epoch_ms(ts)] for v, ts in res.rows]


@router.post("/query")
def grafana_query(request: Request, p: Reading, body: QueryBody):
    """Time series: [{target, datapoints: [[value, epoch_ms], ...]}]."""
    start, end = body.range.from_, body.range.to
    if start > end:
        raise HTTPException(400, "range.from must be before range.to")
    max_days = request.app.state.settings.max_range_days
    if (end - start).total_seconds() > max_days * 86400:
        raise HTTPException(400, f"range too long: at most {max_days} days")
    cap = min(body.maxDataPoints or 10_000, 10_000)
    out = []
    for t in body.targets:
        try:
            points = _series(request, p, t.target, start, end, cap)
        except TableMissing:
            points = []  # a panel over a mart not built yet is empty, not an error
        out.append({"target": t.target, "datapoints": points})
    return json_response(request, out, cache=False)


@router.post("/annotations")
def grafana_annotations(request: Request, p: Reading, body: AnnotationBody):
    """Alert instances triggered in the range, and the hours whose fraud_% is above 5, as annotations."""
    import sqlalchemy as sa

    from analytics_pipelines.api.ops_routes import _engine
    from analytics_pipelines.ops.alerts import alert_instances as t

    q = sa.select(t.c.triggered_at, t.c.severity, t.c.message, t.c.trigger_value, t.c.status).where(
        t.c.tenant_id == p.tenant_id, t.c.triggered_at >= body.range.from_, t.c.triggered_at <= body.range.to
    )
    if p.venue_id and not p.is_admin:
        q = q.where(t.c.venue_id == p.venue_id)
    with _engine(request).connect() as conn:
        rows = conn.execute(q.order_by(t.c.triggered_at).limit(1000)).all()
    name = (body.annotation or {}).get("name", "alerts")
    out = []
    for r in rows:
        out.append(
            {
                "annotation": name,
                "time": _epoch_ms(r.triggered_at),
                "title": f"{r.severity}: {r.message or 'alert'}",
                "text": f"Value: {r.trigger_value} ({r.status})",
                "tags": ["alert", r.severity, r.status],
            }
        )
    out += fraud_annotations(request, p, body.range.from_, body.range.to, name)
    return json_response(request, out, cache=False)


def _epoch_ms(ts: datetime | date) -> int:
    if not isinstance(ts, datetime):
        ts = datetime(ts.year, ts.month, ts.day)
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return int(ts.timestamp() * 1000)
