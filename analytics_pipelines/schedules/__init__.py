"""Every schedule, each bound to a job: data (intraday, nightly, hourly KPIs, weekly customers, maintenance,
delivery sweep; in the configured time zone) and reports."""

from analytics_pipelines.schedules import data, monitoring, reports


def schedules(timezone: str) -> list:
    from analytics_pipelines.jobs import customers_job, kpi_job, main_job
    from analytics_pipelines.jobs.monitoring import monitoring_job, velocity_compaction_job

    return [
        *data.make_schedules(
            main_job=main_job, kpi_job=kpi_job, customers_job=customers_job, timezone=timezone
        ),
        *reports.schedules,
        *monitoring.make_schedules(monitoring_job, velocity_compaction_job, timezone=timezone),
    ]
