"""insights_daily_schedule: 07:00 UTC, insights_job for the day that ended -- after the nightly marts, the
05:30 pricing and the 06:00 customers runs whose marts it reads."""

from datetime import UTC, timedelta

import dagster as dg

INSIGHTS_CRON = "0 7 * * *"


def make_schedules(insights_job, default_status=dg.DefaultScheduleStatus.STOPPED) -> list:
    @dg.schedule(
        cron_schedule=INSIGHTS_CRON,
        job=insights_job,
        execution_timezone="UTC",
        default_status=default_status,
        name="insights_daily_schedule",
        description="07:00 UTC: venue_insights as of the day that ended (after marts, pricing, customers).",
    )
    def insights_daily_schedule(context: dg.ScheduleEvaluationContext):
        day = (context.scheduled_execution_time.astimezone(UTC).date() - timedelta(days=1)).isoformat()
        return dg.RunRequest(run_key=f"insights:{day}", partition_key=day)

    return [insights_daily_schedule]
