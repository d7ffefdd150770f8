"""KPI anomalies after kpi_snapshots, monitoring alerts after kpi_anomalies (issue 17)."""

import dagster as dg

from analytics_pipelines.jobs.anomaly_alerts import monitoring_alert_job
from analytics_pipelines.jobs.data import anomaly_job


@dg.asset_sensor(
    asset_key=dg.AssetKey("kpi_snapshots"),
    job=anomaly_job,
    name="kpi_anomaly_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Scores the hour kpi_snapshots just materialized (anomaly_job for that partition).",
)
def kpi_anomaly_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    mat = asset_event.dagster_event
    partition = mat.partition if mat is not None else None
    if not partition:
        return dg.SkipReason("kpi_snapshots materialization without a partition")
    return dg.RunRequest(run_key=f"kpi_anomalies:{partition}", partition_key=partition)


@dg.asset_sensor(
    asset_key=dg.AssetKey("kpi_anomalies"),
    job=monitoring_alert_job,
    name="kpi_anomaly_alert_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Evaluates the monitoring alert rules for the hour kpi_anomalies just scored.",
)
def kpi_anomaly_alert_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    mat = asset_event.dagster_event
    partition = (mat.partition if mat is not None else None) or ""
    return dg.RunRequest(
        run_key=f"kpi_anomaly_alerts:{context.cursor}",
        run_config={"ops": {"evaluate_monitoring_alerts": {"config": {"last_hour": partition}}}},
    )


sensors = [kpi_anomaly_sensor, kpi_anomaly_alert_sensor]
