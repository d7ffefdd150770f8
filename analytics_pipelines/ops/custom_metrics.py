"""Custom metric points recorded through the API (`POST /v1/metrics`, `/v1/metrics/bulk`), and the request
that recorded them: an `Idempotency-Key` names one request per tenant, so a client retrying after a timeout
records its points once (the same key with another body is refused)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import polars as pl
import sqlalchemy as sa

from analytics_pipelines.ops.db import as_utc, metadata

custom_metric_requests = sa.Table(
    "custom_metric_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(36), nullable=False),
    sa.Column("idempotency_key", sa.String(100)),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("points", sa.Integer, nullable=False),
    sa.Column("created_by", sa.String(100)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("tenant_id", "idempotency_key", name="custom_metric_requests_once"),
)

custom_metric_points = sa.Table(
    "custom_metric_points",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column(
        "request_id",
        sa.Integer,
        sa.ForeignKey("custom_metric_requests.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("tenant_id", sa.String(36), nullable=False),
    sa.Column("venue_id", sa.String(36), nullable=False),
    sa.Column("metric_type", sa.String(40), nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("dimensions", sa.JSON, nullable=False, default=dict),
    sa.Index("custom_metric_points_time", "recorded_at"),
)


class IdempotencyConflict(Exception):
    """The key was used before for a different request body."""


def record(
    engine: sa.Engine,
    tenant_id: str,
    actor: str | None,
    points: Sequence[dict],
    request_hash: str,
    idempotency_key: str | None = None,
) -> tuple[dict, bool]:
    """Insert `points` (dicts: venue_id, metric_type, value, recorded_at, dimensions) as one request.
    Returns (the request row, created). A repeated key with the same body returns the first request
    (created False) and inserts nothing; with another body raises IdempotencyConflict."""
    r = custom_metric_requests
    with engine.begin() as conn:
        if idempotency_key is not None:
            prior = conn.execute(
                sa.select(r).where(r.c.tenant_id == tenant_id, r.c.idempotency_key == idempotency_key)
            ).first()
            if prior is not None:
                if prior.request_hash != request_hash:
                    raise IdempotencyConflict(idempotency_key)
                return dict(prior._mapping), False
        try:
            with conn.begin_nested():
                rid = conn.execute(
                    r.insert().values(
                        tenant_id=tenant_id,
                        idempotency_key=idempotency_key,
                        request_hash=request_hash,
                        points=len(points),
                        created_by=actor,
                        created_at=datetime.now(UTC),
                    )
                ).inserted_primary_key[0]
        except sa.exc.IntegrityError:  # a concurrent request with the same key won the race
            prior = conn.execute(
                sa.select(r).where(r.c.tenant_id == tenant_id, r.c.idempotency_key == idempotency_key)
            ).one()
            if prior.request_hash != request_hash:
                raise IdempotencyConflict(idempotency_key) from None
            return dict(prior._mapping), False
        conn.execute(
            custom_metric_points.insert(), [{**p, "request_id": rid, "tenant_id": tenant_id} for p in points]
        )
        row = conn.execute(sa.select(r).where(r.c.id == rid)).one()
    return dict(row._mapping), True


def points_between(engine: sa.Engine, start: datetime, end: datetime) -> pl.DataFrame:
    """Every point recorded for [start, end) (UTC), as a frame for the mart."""
    t = custom_metric_points
    q = sa.select(t.c.id, t.c.tenant_id, t.c.venue_id, t.c.metric_type, t.c.value, t.c.recorded_at).where(
        t.c.recorded_at >= start, t.c.recorded_at < end
    )
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    return pl.DataFrame(
        {
            "id": [r.id for r in rows],
            "tenant_id": [r.tenant_id for r in rows],
            "venue_id": [r.venue_id for r in rows],
            "metric_type": [r.metric_type for r in rows],
            "value": [float(r.value) for r in rows],
            "recorded_at": [as_utc(r.recorded_at) for r in rows],
        },
        schema={
            "id": pl.Int64,
            "tenant_id": pl.String,
            "venue_id": pl.String,
            "metric_type": pl.String,
            "value": pl.Float64,
            "recorded_at": pl.Datetime("us", "UTC"),
        },
    )


def days_after(engine: sa.Engine, after_id: int, limit: int = 10_000) -> tuple[list[str], int]:
    """The UTC days of the points recorded after point `after_id`, and the newest point id (the sensor's
    cursor)."""
    t = custom_metric_points
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.c.id, t.c.recorded_at).where(t.c.id > after_id).order_by(t.c.id).limit(limit)
        ).all()
    if not rows:
        return [], after_id
    return sorted({as_utc(r.recorded_at).date().isoformat() for r in rows}), int(rows[-1].id)
