"""Every sensor: data (new source data, new KPI snapshots), operations (run failures, freshness) and reports
(export requests, subscription deliveries)."""

from analytics_pipelines.sensors import anomalies, data, operations, reports


def sensors(daily_partitions) -> list:
    from analytics_pipelines.jobs import main_job

    return [
        data.kpi_snapshots_alert_sensor,
        data.make_source_data_sensor(main_job, partitions_def=daily_partitions),
        *operations.sensors,
        *reports.sensors,
        *anomalies.sensors,
    ]
