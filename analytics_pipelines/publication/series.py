"""What is published: one `Publisher` per source table (its registry entry is in registry/publication.py).

- `kpi_snapshots` (hourly, long form) -> measurement `kpi`: one point per hour, tenant and venue with one
  float field per metric (the table's metric names); tags `tenant`, `venue` (absent for tenant-wide rows).
- `sales_velocity` (vel17, daily) -> the seed's measurement `event_sales`, tag `event_id` (+ tenant, venue),
  fields velocity (tickets/min over the last 5 minutes, the seed's high-velocity rate), acceleration
  (floats), tickets_sold, remaining (integers, as the seed wrote them), plus tickets and the 15/60-minute
  rates; one point per 5-minute bucket at `bucket_start`.
- `kpi_anomalies` (anom17, hourly) -> `kpi_anomaly`: tags tenant, venue, metric; fields value, baseline,
  scale, score (floats), severity, direction, detector_version (strings: not tags, so that a re-scored hour
  overwrites its point instead of adding a second series).
- `fraud_metrics_hourly` (fraud17, daily) -> `fraud_metrics`: tags tenant, venue; fields orders,
  flagged_orders (integers), fraud_pct (float), at `hour`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from analytics_pipelines.publication.lines import Series

TENANT_VENUE = {"tenant": "tenant_id", "venue": "venue_id"}


@dataclass(frozen=True)
class Publisher:
    name: str
    source: str
    measurement: str
    #: the source's partition column and partitioning ("daily" | "hourly")
    partition_column: str
    partitioning: str
    #: a fixed Series, or a function of the source frame (KPI fields follow the metric names present)
    series: Series | Callable[[pl.DataFrame], Series]
    #: reshape the source rows before they become points (None: as they are)
    prepare: Callable[[pl.DataFrame], pl.DataFrame] | None = None

    def series_for(self, df: pl.DataFrame) -> Series:
        return self.series(df) if callable(self.series) else self.series


def _kpi_wide(df: pl.DataFrame) -> pl.DataFrame:
    """Long (metric, value) -> one row per hour, tenant and venue with a column per metric."""
    if df.height == 0:
        return df.select("snapshot_hour", "tenant_id", "venue_id")
    return df.pivot(
        on="metric",
        index=["snapshot_hour", "tenant_id", "venue_id"],
        values="value",
        aggregate_function="first",
    )


KPI_INDEX = ("snapshot_hour", "tenant_id", "venue_id")


def _kpi_series(wide: pl.DataFrame) -> Series:
    metrics = sorted(c for c in wide.columns if c not in KPI_INDEX)
    return Series(
        measurement="kpi",
        time_column="snapshot_hour",
        tags=TENANT_VENUE,
        fields={m: (m, "float") for m in metrics},
    )


EVENT_SALES = Series(
    measurement="event_sales",
    time_column="bucket_start",
    tags={**TENANT_VENUE, "event_id": "event_id"},
    fields={
        "velocity": ("per_minute_5m", "float"),
        "acceleration": ("acceleration", "float"),
        "tickets_sold": ("tickets_sold", "int"),
        "remaining": ("remaining", "int"),
        "tickets": ("tickets", "int"),
        "velocity_15m": ("per_minute_15m", "float"),
        "velocity_60m": ("per_minute_60m", "float"),
    },
)

KPI_ANOMALY = Series(
    measurement="kpi_anomaly",
    time_column="hour",
    tags={**TENANT_VENUE, "metric": "metric"},
    fields={
        "value": ("value", "float"),
        "baseline": ("baseline", "float"),
        "scale": ("scale", "float"),
        "score": ("score", "float"),
        "severity": ("severity", "string"),
        "direction": ("direction", "string"),
        "detector_version": ("detector_version", "string"),
    },
)

FRAUD_METRICS = Series(
    measurement="fraud_metrics",
    time_column="hour",
    tags=TENANT_VENUE,
    fields={
        "orders": ("orders", "int"),
        "flagged_orders": ("flagged_orders", "int"),
        "fraud_pct": ("fraud_pct", "float"),
    },
)

PUBLISHERS: dict[str, Publisher] = {
    p.name: p
    for p in (
        Publisher(
            "influx_kpi_snapshots", "kpi_snapshots", "kpi", "hour_key", "hourly", _kpi_series, _kpi_wide
        ),
        Publisher("influx_event_sales", "sales_velocity", "event_sales", "day", "daily", EVENT_SALES),
        Publisher("influx_kpi_anomalies", "kpi_anomalies", "kpi_anomaly", "hour_key", "hourly", KPI_ANOMALY),
        Publisher(
            "influx_fraud_metrics", "fraud_metrics_hourly", "fraud_metrics", "day", "daily", FRAUD_METRICS
        ),
    )
}
