"""The predictions domain's schedule: `predictions_daily_schedule`, daily at 05:30 UTC, one run of
predictions_job (the demand model retrained, backtested and the forecast rewritten when it passes). It runs
before customers_daily_schedule (06:00 UTC), whose model_performance then collects the demand rows."""

import dagster as dg

PREDICTIONS_CRON = "30 5 * * *"


def make_schedules(
    predictions_job, default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.STOPPED
) -> list[dg.ScheduleDefinition]:
    @dg.schedule(
        cron_schedule=PREDICTIONS_CRON,
        job=predictions_job,
        execution_timezone="UTC",
        default_status=default_status,
        name="predictions_daily_schedule",
        description="Daily at 05:30 UTC: retrain and backtest the demand model, rewrite the forecast when it "
        "beats its baselines.",
    )
    def predictions_daily_schedule(context: dg.ScheduleEvaluationContext):
        day = context.scheduled_execution_time.date().isoformat()
        return dg.RunRequest(run_key=f"predictions:{day}", tags={"refresh": "predictions"})

    return [predictions_daily_schedule]
