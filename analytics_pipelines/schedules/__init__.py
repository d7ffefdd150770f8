"""Every schedule, each bound to a job: data (intraday, nightly, hourly KPIs, weekly customers, maintenance,
delivery sweep; in the configured time zone) and reports."""

from analytics_pipelines.schedules import behavior, data, insights, monitoring, predictions, pricing, reports
from analytics_pipelines.schedules.fraud import make_fraud_schedule


def schedules(timezone: str) -> list:
    from analytics_pipelines.jobs import (
        behavior_job,
        customers_job,
        fraud_job,
        kpi_job,
        main_job,
        pricing_job,
    )
    from analytics_pipelines.jobs.data import insights_job, predictions_job
    from analytics_pipelines.jobs.monitoring import (
        monitoring_job,
        sellout_model_job,
        velocity_anomaly_job,
        velocity_compaction_job,
    )

    return [
        *data.make_schedules(
            main_job=main_job, kpi_job=kpi_job, customers_job=customers_job, timezone=timezone
        ),
        *predictions.make_schedules(predictions_job),
        *pricing.make_schedules(pricing_job),
        *behavior.make_schedules(behavior_job),
        *reports.schedules,
        make_fraud_schedule(fraud_job),
        *insights.make_schedules(insights_job),
        *monitoring.make_schedules(
            monitoring_job,
            velocity_compaction_job,
            sellout_model_job,
            timezone=timezone,
            anomaly_job=velocity_anomaly_job,
        ),
    ]
