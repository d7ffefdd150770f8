"""Report schedules: hourly export housekeeping, yesterday's daily venue reports, last week's executive
reports."""

from datetime import timedelta

import dagster as dg

from analytics_pipelines.jobs.reports import (
    daily_venue_reports_job,
    export_maintenance_job,
    weekly_executive_reports_job,
)

export_maintenance_schedule = dg.ScheduleDefinition(
    name="export_maintenance_schedule",
    job=export_maintenance_job,
    cron_schedule="15 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)


@dg.schedule(
    job=daily_venue_reports_job,
    cron_schedule="30 6 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def daily_venue_reports_schedule(context: dg.ScheduleEvaluationContext):
    """06:30 UTC: yesterday's daily venue reports (the day is complete and its marts rebuilt)."""
    day = (context.scheduled_execution_time.date() - timedelta(days=1)).isoformat()
    return dg.RunRequest(run_key=day, partition_key=day)


@dg.schedule(
    job=weekly_executive_reports_job,
    cron_schedule="0 7 * * 1",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def weekly_executive_reports_schedule(context: dg.ScheduleEvaluationContext):
    """Mondays 07:00 UTC: the week that ended on Sunday."""
    monday = (context.scheduled_execution_time.date() - timedelta(days=7)).isoformat()
    return dg.RunRequest(run_key=monday, partition_key=monday)


schedules = [export_maintenance_schedule, daily_venue_reports_schedule, weekly_executive_reports_schedule]
