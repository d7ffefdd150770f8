"""monitoring_alert_job: after kpi_anomalies lands, the seeded monitoring rules (KPI anomaly per metric,
high velocity, sell-out imminent, fraud spike) are evaluated through the alert engine (persisted rules,
instances and cooldowns; e-mail and webhook). Run by kpi_anomaly_alert_sensor."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl

from analytics_pipelines.alerting import Notifier
from analytics_pipelines.anomalies import alerts as A
from analytics_pipelines.automation.retries import retry_transient
from analytics_pipelines.resources import OpsResource, WarehouseResource
from analytics_pipelines.settings import Settings


class MonitoringAlertConfig(dg.Config):
    first_hour: str = ""
    """First kpi_anomalies hour key (YYYY-MM-DD-HH:MM) to evaluate; empty: the last hour."""
    last_hour: str = ""
    """Last hour key to evaluate; empty: the newest kpi_snapshots hour."""


#: the anomaly rows the alert rules read (kpi_anomalies, velocity_anomalies)
ANOMALY_ROWS = {
    "hour": pl.Datetime("us", "UTC"),
    "tenant_id": pl.String,
    "venue_id": pl.String,
    "metric": pl.String,
    "alerting": pl.Boolean,
}


def _key(k: str) -> datetime:
    return datetime.strptime(k, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC)


def run_monitoring_alerts(wh, engine, cfg, first: datetime | None, last: datetime | None, notifier) -> dict:
    if last is None:
        if "kpi_snapshots" not in wh.tables():
            return {"hours": 0}
        newest = wh.read("SELECT max(snapshot_hour) AS h FROM kpi_snapshots")["h"][0]
        if newest is None:
            return {"hours": 0}
        last = newest.astimezone(UTC) if newest.tzinfo else newest.replace(tzinfo=UTC)
    first = first or last
    hours = [first + timedelta(hours=i) for i in range(int((last - first) / timedelta(hours=1)) + 1)]
    lo = (first - timedelta(hours=cfg.resolve_hours)).strftime("%Y-%m-%d-%H:%M")
    anomalies = (
        wh.read_partitions(
            "kpi_anomalies",
            "hour_key",
            lo,
            last.strftime("%Y-%m-%d-%H:%M"),
            columns=["hour", "tenant_id", "venue_id", "metric", "alerting"],
        )
        if "kpi_anomalies" in wh.tables()
        else pl.DataFrame(schema=ANOMALY_ROWS)
    )
    venues = wh.read_table("stg_venues", columns=["tenant_id", "id"]).rename({"id": "venue_id"})
    anomaly = A.evaluate_anomaly_alerts(engine, anomalies, venues, hours, cfg, notifier)
    velocity = A.evaluate_velocity_anomaly_alerts(
        engine,
        _velocity_anomalies(wh, first - timedelta(hours=cfg.resolve_hours), last),
        venues,
        hours,
        cfg,
        notifier,
    )
    other = A.evaluate_velocity_fraud(engine, wh, last + timedelta(hours=1), notifier)
    return {
        "hours": len(hours),
        "anomaly_triggered": len(anomaly.triggered),
        "anomaly_resolved": len(anomaly.resolved),
        "anomaly_still_open": len(anomaly.still_open),
        "velocity_anomaly_triggered": len(velocity.triggered),
        "velocity_anomaly_resolved": len(velocity.resolved),
        "velocity_fraud_triggered": len(other.triggered),
        "velocity_fraud_resolved": len(other.resolved),
        "notifications": len(anomaly.notifications) + len(velocity.notifications) + len(other.notifications),
    }


def _velocity_anomalies(wh, first: datetime, last: datetime) -> pl.DataFrame:
    """velocity_anomalies rows of the hours [first, last] (empty before the table exists)."""
    cols = list(ANOMALY_ROWS)
    if "velocity_anomalies" not in wh.tables():
        return pl.DataFrame(schema=ANOMALY_ROWS)
    df = wh.read_partitions(
        "velocity_anomalies", "day", first.date().isoformat(), last.date().isoformat(), columns=cols
    )
    return df.with_columns(pl.col("hour").cast(pl.Datetime("us", "UTC"))).filter(
        pl.col("hour").is_between(first, last)
    )


@dg.op(
    description="Seed the monitoring alert rules (idempotent) and evaluate them: KPI anomaly rules over the "
    "hours of kpi_anomalies (deduplicated, resolved when the series is back to normal), velocity and fraud "
    "rules when sales_velocity / fraud_metrics_hourly exist.",
    tags={"team": "data-platform"},
)
def evaluate_monitoring_alerts(
    context: dg.OpExecutionContext,
    config: MonitoringAlertConfig,
    warehouse: WarehouseResource,
    ops: OpsResource,
) -> dg.Output[dict]:
    cfg = Settings.from_env().anomaly
    first = _key(config.first_hour) if config.first_hour else None
    last = _key(config.last_hour) if config.last_hour else None
    out = retry_transient(
        lambda: run_monitoring_alerts(warehouse.get(), ops.engine(), cfg, first, last, Notifier.from_env())
    )
    context.log.info(f"monitoring alerts: {out}")
    return dg.Output(out, metadata=out)


@dg.job(
    name="monitoring_alert_job",
    tags={"team": "data-platform"},
    description="Evaluate the seeded monitoring alert rules (run by kpi_anomaly_alert_sensor).",
)
def monitoring_alert_job():
    evaluate_monitoring_alerts()


jobs = [monitoring_alert_job]
