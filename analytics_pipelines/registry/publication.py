"""Publication (issue 18): time series published to InfluxDB.

One entry per published source table. They are not warehouse tables (`stored="elsewhere"`: the points live
in InfluxDB, the cursor in the ops store's `influx_publications`); `factory="publication"` makes their
assets (assets/publication.py), partitioned like their source. The series: publication/series.py.

Each publishes one source table (its upstream): kpi_snapshots, sales_velocity, kpi_anomalies,
fraud_metrics_hourly.
"""

from __future__ import annotations

from analytics_pipelines.registry.model import Check, Table

P = "analytics_pipelines.publication.steps:"
WHY_NOT_BLOCKING = (
    "nothing in the pipeline reads the published series; a publication problem must never stop other "
    "assets (InfluxDB being down fails the publication asset itself, and run_failure_alert_sensor alerts)"
)


def _accounted() -> Check:
    return Check(
        "every_row_published_or_counted",
        "Every source row of the run became a point or is counted with its reason (no timestamp, no field "
        "value); points = the records written.",
        P + "check_published",
        kind="invariants",
        why_not_blocking=WHY_NOT_BLOCKING,
    )


def _entry(name: str, **kw) -> Table:
    return Table(
        name=name,
        group="publication",
        factory="publication",
        stored="elsewhere",
        kinds=("influxdb",),
        owner="team:data-platform",
        venue_column="venue_id",
        checks=(_accounted(),),
        **kw,
    )


TABLES: tuple[Table, ...] = (
    _entry(
        "influx_kpi_snapshots",
        description="kpi_snapshots published to InfluxDB as measurement `kpi`: one point per hour, tenant and "
        "venue (tags tenant, venue; no venue tag for tenant-wide rows), one float field per metric, at "
        "snapshot_hour. Re-publishing an hour overwrites its points.",
        grain="one point per hour, tenant and venue",
        keys=("snapshot_hour", "tenant_id", "venue_id"),
        partitioning="hourly",
        partition_column="hour_key",
        upstream=("kpi_snapshots",),
    ),
    _entry(
        "influx_event_sales",
        description="sales_velocity published as the seed's measurement `event_sales` (tag event_id, plus "
        "tenant and venue): velocity (tickets/min, 5 min), acceleration, tickets_sold, remaining, tickets, "
        "velocity_15m, velocity_60m, one point per event and 5-minute bucket.",
        grain="one point per event and 5-minute bucket",
        keys=("event_id", "bucket_start"),
        partitioning="daily",
        partition_column="day",
        upstream=("sales_velocity",),
    ),
    _entry(
        "influx_kpi_anomalies",
        description="kpi_anomalies published as measurement `kpi_anomaly` (tags tenant, venue, metric): value, "
        "baseline, scale, score, severity, direction, detector_version, at the anomaly's hour.",
        grain="one point per hour, tenant, venue and metric",
        keys=("hour", "tenant_id", "venue_id", "metric"),
        partitioning="hourly",
        partition_column="hour_key",
        upstream=("kpi_anomalies",),
    ),
    _entry(
        "influx_fraud_metrics",
        description="fraud_metrics_hourly published as measurement `fraud_metrics` (tags tenant, venue): "
        "orders, flagged_orders, fraud_pct per hour.",
        grain="one point per tenant, venue and hour",
        keys=("tenant_id", "venue_id", "hour"),
        partitioning="daily",
        partition_column="day",
        upstream=("fraud_metrics_hourly",),
    ),
)
