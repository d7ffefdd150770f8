"""Every job, by domain: data (asset jobs over the registry's groups), operations (alerts, maintenance,
delivery sweep), reports (exports, deliveries, report files)."""

from analytics_pipelines.jobs import data, monitoring, operations, reports
from analytics_pipelines.jobs.data import (
    customers_job,
    ingest_job,
    kpi_job,
    main_job,
    marts_job,
    predictions_job,
)

jobs = [*data.jobs, *operations.jobs, *reports.jobs, *monitoring.jobs]

__all__ = ["customers_job", "ingest_job", "jobs", "kpi_job", "main_job", "marts_job", "predictions_job"]
