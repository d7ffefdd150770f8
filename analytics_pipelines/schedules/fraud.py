"""fraud_daily_schedule: 05:30 UTC, yesterday's (UTC) partition of fraud_job (docs/fraud.md). It replaces the
seed's 30-second fraud loop (a no-op) with one daily batch over the day that ended (after the nightly run
at 02:30 has picked up that day's late rows)."""

from datetime import UTC, timedelta

import dagster as dg

FRAUD_CRON = "30 5 * * *"


def make_fraud_schedule(
    fraud_job, default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.STOPPED
) -> dg.ScheduleDefinition:
    @dg.schedule(
        cron_schedule=FRAUD_CRON,
        job=fraud_job,
        execution_timezone="UTC",
        default_status=default_status,
        name="fraud_daily_schedule",
        description="05:30 UTC: score yesterday's (UTC) user-days, update fraud_events and the hourly fraud_%.",
    )
    def fraud_daily_schedule(context: dg.ScheduleEvaluationContext):
        day = (context.scheduled_execution_time.astimezone(UTC) - timedelta(days=1)).date().isoformat()
        return dg.RunRequest(run_key=f"fraud:{day}", partition_key=day, tags={"refresh": "fraud"})

    return fraud_daily_schedule
