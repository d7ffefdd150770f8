"""Custom metrics, pure: the seed's metric whitelist with value bounds, and the hourly aggregation of the
recorded points into the `custom_metrics` mart.

The seed (validation service L17930-18116) allowed eight metric types and checked nothing about the value; its
`recordMetric` wrote a row and a Redis counter per point. Here each type has a unit and bounds (a percentage
within 0-100, money in integer-valued cents, counts whole and non-negative), a point's time may not lie in the
future (5 minutes of clock skew allowed) nor before the first day of history, and the mart keeps per hour the
count, sum, min, max, mean and last value of each (tenant, venue, metric type)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl


@dataclass(frozen=True)
class MetricType:
    unit: str  # count | cents | percent
    max_value: float
    description: str

    @property
    def whole(self) -> bool:
        return self.unit in ("count", "cents")


#: the seed's whitelist (sales, revenue, attendance, capacity, conversion, cart_abandonment,
#: average_order_value, customer_lifetime_value) with our units and bounds
METRIC_TYPES: dict[str, MetricType] = {
    "sales": MetricType("count", 1e7, "tickets sold"),
    "revenue": MetricType("cents", 1e12, "revenue in cents"),
    "attendance": MetricType("count", 1e7, "people admitted"),
    "capacity": MetricType("count", 1e7, "seats or places available"),
    "conversion": MetricType("percent", 100.0, "conversion rate, percent"),
    "cart_abandonment": MetricType("percent", 100.0, "abandoned carts, percent of carts"),
    "average_order_value": MetricType("cents", 1e9, "average order value in cents"),
    "customer_lifetime_value": MetricType("cents", 1e10, "customer lifetime value in cents"),
}
#: a point may be stamped at most this far ahead of the server's clock
CLOCK_SKEW = timedelta(minutes=5)

HOURLY_SCHEMA = {
    "day": pl.Date,
    "hour": pl.Datetime("us", "UTC"),
    "tenant_id": pl.String,
    "venue_id": pl.String,
    "metric_type": pl.String,
    "unit": pl.String,
    "points": pl.Int64,
    "value_sum": pl.Float64,
    "value_min": pl.Float64,
    "value_max": pl.Float64,
    "value_avg": pl.Float64,
    "value_last": pl.Float64,
    "last_recorded_at": pl.Datetime("us", "UTC"),
}


def point_error(
    metric_type: str, value: float, recorded_at: datetime, now: datetime, earliest: datetime
) -> str | None:
    """Why a point is refused (a sentence naming the field), or None."""
    mt = METRIC_TYPES.get(metric_type)
    if mt is None:
        return f"metric_type: {metric_type!r} is not one of {', '.join(METRIC_TYPES)}"
    if not math.isfinite(value):
        return "value: must be a finite number"
    if value < 0 or value > mt.max_value:
        return f"value: {metric_type} ({mt.unit}) must be between 0 and {mt.max_value:g}, not {value:g}"
    if mt.whole and value != int(value):
        return f"value: {metric_type} is in {mt.unit}: a whole number, not {value:g}"
    if recorded_at.tzinfo is None:
        return "timestamp: must carry a time zone (e.g. 2026-12-06T10:00:00Z)"
    if recorded_at > now + CLOCK_SKEW:
        return f"timestamp: {recorded_at.isoformat()} is in the future"
    if recorded_at < earliest:
        return f"timestamp: {recorded_at.isoformat()} is before the first day of history ({earliest.date()})"
    return None


def hourly(points: pl.DataFrame) -> pl.DataFrame:
    """Points (id, tenant_id, venue_id, metric_type, value, recorded_at) -> one row per hour, tenant, venue and
    metric type. `value_last` is the value of the latest point of the hour (ties: the later recorded id)."""
    if points.is_empty():
        return pl.DataFrame(schema=HOURLY_SCHEMA)
    units = pl.DataFrame({"metric_type": list(METRIC_TYPES), "unit": [m.unit for m in METRIC_TYPES.values()]})
    p = points.with_columns(
        recorded_at=pl.col("recorded_at").dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    ).with_columns(hour=pl.col("recorded_at").dt.truncate("1h"))
    out = (
        p.sort("recorded_at", "id")
        .group_by("hour", "tenant_id", "venue_id", "metric_type")
        .agg(
            points=pl.len().cast(pl.Int64),
            value_sum=pl.col("value").sum(),
            value_min=pl.col("value").min(),
            value_max=pl.col("value").max(),
            value_avg=pl.col("value").mean(),
            value_last=pl.col("value").last(),
            last_recorded_at=pl.col("recorded_at").max(),
        )
        .join(units, on="metric_type", how="left")
        .with_columns(day=pl.col("hour").dt.date())
    )
    return (
        out.select(list(HOURLY_SCHEMA))
        .cast(HOURLY_SCHEMA)
        .sort("day", "tenant_id", "venue_id", "metric_type", "hour")
    )
