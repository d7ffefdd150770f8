"""POST /v1/insights/refresh -> a refresh request row in the ops store -> insights_job for the day asked
(one run per day, whatever the number of requests)."""

from __future__ import annotations

import dagster as dg

from analytics_pipelines.jobs.data import insights_job
from analytics_pipelines.ops.insights import mark_requested, pending_refreshes
from analytics_pipelines.resources import OpsResource


def make_insights_refresh_sensor(daily_partitions: dg.PartitionsDefinition) -> dg.SensorDefinition:
    @dg.sensor(
        job=insights_job,
        name="insights_refresh_sensor",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="One insights_job run per as-of day with open refresh requests (POST /v1/insights/refresh).",
    )
    def insights_refresh_sensor(context: dg.SensorEvaluationContext, ops: OpsResource):
        pending = pending_refreshes(ops.engine())
        if not pending:
            return dg.SkipReason("no insight refresh requests")
        keys = set(daily_partitions.get_partition_keys())
        days = sorted({r["as_of"].isoformat() for r in pending} & keys)
        mark_requested(ops.engine(), [r["id"] for r in pending if r["as_of"].isoformat() in keys])
        last = max(r["id"] for r in pending)
        return [dg.RunRequest(run_key=f"insights:{d}:{last}", partition_key=d) for d in days]

    return insights_refresh_sensor
