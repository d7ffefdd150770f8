"""pricing_daily_schedule: 05:30 UTC, pricing_job (refit the elasticity model, validate it against the
seed's fixed -1.5, publish new recommendations; pending ones expire after TT_PRICING_TTL_HOURS). Before the
06:00 customers_job, whose model_performance collects the pricing metrics."""

from datetime import UTC

import dagster as dg

PRICING_CRON = "30 5 * * *"


def make_schedules(pricing_job, default_status=dg.DefaultScheduleStatus.STOPPED) -> list:
    @dg.schedule(
        cron_schedule=PRICING_CRON,
        job=pricing_job,
        execution_timezone="UTC",
        default_status=default_status,
        name="pricing_daily_schedule",
        description="05:30 UTC: refit price elasticity, validate against the seed's -1.5, publish pricing "
        "recommendations for approval.",
    )
    def pricing_daily_schedule(context: dg.ScheduleEvaluationContext):
        day = context.scheduled_execution_time.astimezone(UTC).date().isoformat()
        return dg.RunRequest(run_key=f"pricing:{day}", tags={"refresh": "pricing"})

    return [pricing_daily_schedule]
