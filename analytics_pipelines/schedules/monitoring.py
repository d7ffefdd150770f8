"""Monitoring schedules (they replace the old monitoring service's 30 s sales tracker loop):

- velocity_refresh_schedule: every 5 minutes (UTC), today's partition of monitoring_job (sales_velocity's
  complete 5-minute buckets of today and the sell-out forecast); skipped while the previous one is in flight;
- velocity_compaction_schedule: nightly 03:45 (local), velocity_compaction_job.
"""

from __future__ import annotations

from datetime import UTC

import dagster as dg

from analytics_pipelines.schedules.data import refresh_today, schedule_timezone

VELOCITY_CRON = "*/5 * * * *"
COMPACTION_CRON = "45 3 * * *"


def make_schedules(
    monitoring_job,
    compaction_job,
    timezone: str | None = None,
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

    @dg.schedule(
        cron_schedule=COMPACTION_CRON,
        job=compaction_job,
        execution_timezone=tz,
        default_status=default_status,
        name="velocity_compaction_schedule",
        description="Nightly: sales_velocity days older than TT_VELOCITY_COMPACT_AFTER_DAYS -> "
        "sales_velocity_hourly (maintenance; nothing dropped before it is compacted).",
    )
    def velocity_compaction_schedule(context: dg.ScheduleEvaluationContext):
        when = context.scheduled_execution_time.astimezone(UTC)
        return dg.RunRequest(
            run_key=f"velocity_compaction:{when.date().isoformat()}",
            run_config={"ops": {"compact_velocity": {"config": {"now": when.isoformat()}}}},
        )

    return [velocity_refresh_schedule, velocity_compaction_schedule]
