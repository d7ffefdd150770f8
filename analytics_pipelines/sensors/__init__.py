"""Every sensor: data (new source data, new KPI snapshots), operations (run failures, freshness) and reports
(export requests, subscription deliveries), publication (new partitions -> InfluxDB), custom metrics
(new points -> their mart)."""

from analytics_pipelines.sensors import anomalies, data, insights, metrics, operations, publication, reports


def sensors(daily_partitions) -> list:
    from analytics_pipelines.jobs import main_job
    from analytics_pipelines.jobs.publication import daily_publication_job, kpi_publication_job

    return [
        publication.make_publication_sensor(kpi_publication_job, "hourly"),
        publication.make_publication_sensor(daily_publication_job, "daily"),
        data.kpi_snapshots_alert_sensor,
        data.make_source_data_sensor(main_job, partitions_def=daily_partitions),
        *operations.sensors,
        *reports.sensors,
        *anomalies.sensors,
        metrics.make_custom_metrics_sensor(daily_partitions),
        insights.make_insights_refresh_sensor(daily_partitions),
    ]
