"""Monitoring schedules (they replace the old monitoring service's 30 s sales tracker loop):

- velocity_refresh_schedule: every 5 minutes (UTC), today's partition of monitoring_job (sales_velocity's
  complete 5-minute buckets of today and the sell-out forecast); skipped while the previous one is in flight;
- sellout_model_schedule: daily 05:15 UTC, sellout_model_job (the curve library, backtest and interval
  calibration the 5-minute forecast reads; before customers_daily_schedule, whose model_performance collects
  the backtest rows);
- velocity_anomaly_schedule: hourly at :07 UTC, today's partition of velocity_anomaly_job;
- velocity_compaction_schedule: nightly 03:45 (local), velocity_compaction_job.
"""

from __future__ import annotations

from datetime import UTC

import dagster as dg

from analytics_pipelines.schedules.data import refresh_today, schedule_timezone, tick_schedule

VELOCITY_CRON = "*/5 * * * *"
COMPACTION_CRON = "45 3 * * *"
SELLOUT_MODEL_CRON = "15 5 * * *"
VELOCITY_ANOMALY_CRON = "7 * * * *"


def make_schedules(
    monitoring_job,
    compaction_job,
    model_job=None,
    timezone: str | None = None,
    anomaly_job=None,
    default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.STOPPED,
) -> list[dg.ScheduleDefinition]:
    tz = schedule_timezone(timezone)

    @dg.schedule(
        cron_schedule=VELOCITY_CRON,
        job=monitoring_job,
        execution_timezone="UTC",
        default_status=default_status,
        name="velocity_refresh_schedule",
        description="Every 5 minutes: today's (UTC) sales_velocity buckets and the sell-out forecast.",
    )
    def velocity_refresh_schedule(context: dg.ScheduleEvaluationContext):
        return refresh_today(context, monitoring_job.name, "velocity")

    velocity_compaction_schedule = tick_schedule(
        "velocity_compaction_schedule",
        compaction_job,
        COMPACTION_CRON,
        tz,
        default_status,
        ("compact_velocity", "compact_fraud"),
        lambda when: f"velocity_compaction:{when.date().isoformat()}",
        "Nightly: sales_velocity days older than TT_VELOCITY_COMPACT_AFTER_DAYS -> "
        "sales_velocity_hourly (maintenance; nothing dropped before it is compacted).",
    )

    out = [velocity_refresh_schedule, velocity_compaction_schedule]
    if model_job is not None:

        @dg.schedule(
            cron_schedule=SELLOUT_MODEL_CRON,
            job=model_job,
            execution_timezone="UTC",
            default_status=default_status,
            name="sellout_model_schedule",
            description="Daily at 05:15 UTC: the sell-out curve library, its backtest and the interval "
            "calibration (the 5-minute forecast only reads them).",
        )
        def sellout_model_schedule(context: dg.ScheduleEvaluationContext):
            day = context.scheduled_execution_time.astimezone(UTC).date().isoformat()
            return dg.RunRequest(run_key=f"sellout_model:{day}", tags={"refresh": "sellout_model"})

        out.append(sellout_model_schedule)
    if anomaly_job is not None:

        @dg.schedule(
            cron_schedule=VELOCITY_ANOMALY_CRON,
            job=anomaly_job,
            execution_timezone="UTC",
            default_status=default_status,
            name="velocity_anomaly_schedule",
            description="Hourly (:07 UTC): today's velocity_anomalies up to the last complete hour.",
        )
        def velocity_anomaly_schedule(context: dg.ScheduleEvaluationContext):
            return refresh_today(context, anomaly_job.name, "velocity_anomalies")

        out.append(velocity_anomaly_schedule)
    return out
