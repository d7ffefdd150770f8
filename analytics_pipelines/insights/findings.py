"""The shape of a finding and what every rule shares: the stable id, the severity scale, the query-layer
request that reproduces the finding's main number. Pure (no Dagster, no FastAPI)."""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta

import polars as pl

#: severities, weakest first
SEVERITIES = ("low", "medium", "high")
TYPES = (
    "revenue_wow",
    "tickets_wow",
    "revenue_yoy",
    "tickets_yoy",
    "event_sellout_pacing",
    "event_stalling",
    "churn_risk_rising",
    "segment_shift",
    "kpi_anomaly",
    "velocity_anomaly",
    "pending_price_recommendations",
)

SCHEMA = {
    "insight_id": pl.String,
    "as_of": pl.Date,
    "tenant_id": pl.String,
    "venue_id": pl.String,
    "type": pl.String,
    "severity": pl.String,
    "subject_id": pl.String,
    "evidence_key": pl.String,
    "score": pl.Float64,
    "sentence": pl.String,
    "evidence": pl.String,
    "query": pl.String,
}


def insight_id(kind: str, venue_id: str | None, evidence_key: str) -> str:
    """Stable id: the same type, venue and evidence give the same id on every run (a dismissal sticks)."""
    raw = f"{kind}|{venue_id or ''}|{evidence_key}".encode()
    return hashlib.sha256(raw).hexdigest()[:24]


def finding(
    *,
    as_of: date,
    tenant_id: str,
    venue_id: str | None,
    kind: str,
    severity: str,
    evidence_key: str,
    score: float,
    sentence: str,
    evidence: dict,
    query: dict | None,
    subject_id: str | None = None,
) -> dict:
    assert kind in TYPES and severity in SEVERITIES, (kind, severity)
    return {
        "insight_id": insight_id(kind, venue_id, evidence_key),
        "as_of": as_of,
        "tenant_id": tenant_id,
        "venue_id": venue_id,
        "type": kind,
        "severity": severity,
        "subject_id": subject_id,
        "evidence_key": evidence_key,
        "score": float(score),
        "sentence": sentence,
        "evidence": json.dumps(evidence, sort_keys=True, default=str),
        "query": json.dumps(query, sort_keys=True, default=str) if query is not None else None,
    }


def frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SCHEMA, orient="row") if rows else pl.DataFrame(schema=SCHEMA)


def severity_of(abs_score: float, medium: float, high: float) -> str:
    return "high" if abs_score >= high else "medium" if abs_score >= medium else "low"


def query_request(
    measure: str,
    first: date,
    last: date,
    granularity: str,
    venue_id: str | None = None,
    event_id: str | None = None,
    dimensions: tuple[str, ...] = (),
) -> dict:
    """A POST /v1/query body: `measure` ("cube.name") over [first, last] at `granularity`, filtered to the
    venue (and event). The cube's time dimension is `<cube>.day` (the sales cubes) or given by the caller
    through `dimensions`' cube."""
    cube = measure.split(".")[0]
    time_dim = {"customer_rfm_scores": "as_of"}.get(cube, "day")
    filters = []
    if venue_id is not None:
        filters.append({"member": f"{cube}.venue", "operator": "equals", "values": [venue_id]})
    if event_id is not None:
        filters.append({"member": f"{cube}.event", "operator": "equals", "values": [event_id]})
    return {
        "measures": [measure],
        "dimensions": list(dimensions),
        "time_dimension": {
            "dimension": f"{cube}.{time_dim}",
            "granularity": granularity,
            "date_range": [first.isoformat(), last.isoformat()],
        },
        "filters": filters,
    }


def last_complete_week(as_of: date) -> tuple[date, date]:
    """(Monday, Sunday) of the latest ISO week that ends on or before `as_of` (data through as_of)."""
    sunday = as_of - timedelta(days=(as_of.weekday() + 1) % 7)
    return sunday - timedelta(days=6), sunday
