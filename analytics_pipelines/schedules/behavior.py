"""behavior_daily_schedule: 04:30 UTC, the behavioral job over the two days before today (UTC). The second
day re-reads documents written late within the safety lag; the source's TTLs (90/180 days) make a missed day
unrecoverable after that, which the `behavior_fresh` check reports."""

from __future__ import annotations

from datetime import UTC, timedelta

import dagster as dg

from analytics_pipelines.partitions import RANGE_END_TAG, RANGE_START_TAG

BEHAVIOR_CRON = "30 4 * * *"


def make_schedules(behavior_job, default_status=dg.DefaultScheduleStatus.STOPPED) -> list:
    @dg.schedule(
        cron_schedule=BEHAVIOR_CRON,
        job=behavior_job,
        execution_timezone="UTC",
        default_status=default_status,
        name="behavior_daily_schedule",
        description="04:30 UTC: behavioral ingestion, funnel, attribution and campaign ROI for the two days "
        "before today (late writes within the safety lag land in their own day).",
    )
    def behavior_daily_schedule(context: dg.ScheduleEvaluationContext):
        today = context.scheduled_execution_time.astimezone(UTC).date()
        first, last = (today - timedelta(days=2)).isoformat(), (today - timedelta(days=1)).isoformat()
        return dg.RunRequest(
            run_key=f"behavior:{last}",
            tags={RANGE_START_TAG: first, RANGE_END_TAG: last, "refresh": "behavior"},
        )

    return [behavior_daily_schedule]
