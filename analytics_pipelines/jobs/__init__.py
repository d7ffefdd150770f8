"""Every job, by domain: data (asset jobs over the registry's groups), operations (alerts, maintenance,
delivery sweep), reports (exports, deliveries, report files), publication (InfluxDB)."""

from analytics_pipelines.jobs import anomaly_alerts, data, monitoring, operations, publication, reports
from analytics_pipelines.jobs.data import (
    behavior_job,
    customers_job,
    fraud_job,
    ingest_job,
    kpi_job,
    main_job,
    marts_job,
    predictions_job,
    pricing_job,
)

jobs = [
    *data.jobs,
    *operations.jobs,
    *reports.jobs,
    *publication.jobs,
    *anomaly_alerts.jobs,
    *monitoring.jobs,
]

__all__ = [
    "behavior_job",
    "customers_job",
    "fraud_job",
    "ingest_job",
    "jobs",
    "kpi_job",
    "main_job",
    "marts_job",
    "predictions_job",
    "pricing_job",
]
