"""Recording custom metrics (issue 21; the seed's `POST /metrics` and `/metrics/bulk`): points go to the ops
store only; `custom_metrics_sensor` turns them into the `custom_metrics` mart. The API never writes a mart.

An `Idempotency-Key` header (per tenant) makes a retry safe: the same key with the same body answers the first
request again (`Idempotent-Replayed: true`) and records nothing; with another body 422 (the IETF
idempotency-key draft's answer). A bulk request is all or nothing: one invalid point refuses the request with
422 naming it (`metrics.3.value`)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from analytics_pipelines.api.auth import WRITE, Principal, require
from analytics_pipelines.api.common import Auth, scoped
from analytics_pipelines.api.problems import ProblemError, problem_responses
from analytics_pipelines.api.writes import object_response, ops_engine_of
from analytics_pipelines.metrics.custom import METRIC_TYPES, point_error
from analytics_pipelines.ops.custom_metrics import IdempotencyConflict, record

router = APIRouter(prefix="/v1/metrics", tags=["metrics"])

DimKey = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
DimValue = Annotated[str, Field(max_length=100)]
MetricTypeField = Annotated[str, Field(description=f"One of: {', '.join(METRIC_TYPES)}", max_length=40)]


class MetricPoint(BaseModel):
    model_config = ConfigDict(extra="forbid")
    venue_id: UUID | None = Field(None, description="Default: the token's venue (admins must name one)")
    metric_type: MetricTypeField
    value: float = Field(description="counts and cents: whole numbers; percentages 0-100")
    timestamp: datetime | None = Field(None, description="When the value was observed (default: now)")
    dimensions: dict[DimKey, DimValue] = Field(default_factory=dict, max_length=10)


class MetricBulk(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metrics: list[MetricPoint] = Field(min_length=1, max_length=1000)


IdemKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Makes a retry safe: the same key and body record once",
    ),
]


def _points(request: Request, p: Principal, items: list[MetricPoint], prefix: str) -> list[dict]:
    """Validated rows (422 naming the first point at fault)."""
    from analytics_pipelines.settings import Settings as ProjectSettings

    earliest = datetime.fromisoformat(ProjectSettings.from_env().partition_start).replace(tzinfo=UTC)
    now = datetime.now(UTC)
    rows = []
    for i, item in enumerate(items):
        where = f"{prefix}{i}." if prefix else ""
        venues = scoped(p, item.venue_id)
        if not venues:
            raise _invalid(
                f"{where}venue_id", "a tenant-wide token must name the venue the metric belongs to"
            )
        at = item.timestamp or now
        err = point_error(item.metric_type, item.value, at, now, earliest)
        if err:
            field, msg = err.split(": ", 1)
            raise _invalid(f"{where}{field}", msg)
        rows.append(
            {
                "venue_id": venues[0],
                "metric_type": item.metric_type,
                "value": item.value,
                "recorded_at": at.astimezone(UTC),
                "dimensions": item.dimensions,
            }
        )
    return rows


def _invalid(field: str, msg: str) -> ProblemError:
    return ProblemError(
        422,
        f"invalid {field}: {msg}",
        errors=[{"field": field, "in": "body", "msg": msg, "type": "value_error"}],
    )


def _record(request: Request, p: Principal, body: BaseModel, rows: list[dict], key: str | None):
    digest = hashlib.blake2b(
        json.dumps(body.model_dump(mode="json"), sort_keys=True).encode(), digest_size=16
    ).hexdigest()
    try:
        req, created = record(ops_engine_of(request), p.tenant_id, p.user_id, rows, digest, key)
    except IdempotencyConflict:
        raise HTTPException(
            422, "Idempotency-Key was already used for a different request body; use a new key"
        ) from None
    data = {
        "request_id": req["id"],
        "points": req["points"],
        "idempotency_key": req["idempotency_key"],
        "recorded_at": req["created_at"].isoformat() if hasattr(req["created_at"], "isoformat") else None,
    }
    resp = object_response(request, data, status=201 if created else 200)
    if not created:
        resp.headers["Idempotent-Replayed"] = "true"
    return resp


WRITE_RESPONSES = {
    201: {"description": "Recorded"},
    200: {"description": "Replayed: this Idempotency-Key and body were recorded before"},
    **problem_responses(401, 403, 413, 422),
}


@router.post("", status_code=201, responses=WRITE_RESPONSES)
def record_metric(request: Request, p: Auth, body: MetricPoint, idempotency_key: IdemKey = None):
    """Record one custom metric point of the token's venue (admins: a venue of their tenant). Permission
    analytics.write. The point reaches the `custom_metrics` mart with the next custom_metrics_job run
    (custom_metrics_sensor, every 30 s)."""
    require(p, WRITE)
    return _record(request, p, body, _points(request, p, [body], ""), idempotency_key)


@router.post("/bulk", status_code=201, responses=WRITE_RESPONSES)
def record_metrics(request: Request, p: Auth, body: MetricBulk, idempotency_key: IdemKey = None):
    """Record up to 1000 points at once, all or nothing."""
    require(p, WRITE)
    return _record(request, p, body, _points(request, p, body.metrics, "metrics."), idempotency_key)
