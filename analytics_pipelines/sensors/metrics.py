"""Custom metrics: new points in the ops store -> custom_metrics_job for the days they fall on."""

from __future__ import annotations

import dagster as dg

from analytics_pipelines.jobs.data import custom_metrics_job
from analytics_pipelines.ops.custom_metrics import days_after
from analytics_pipelines.resources import OpsResource


def make_custom_metrics_sensor(daily_partitions: dg.PartitionsDefinition) -> dg.SensorDefinition:
    @dg.sensor(
        job=custom_metrics_job,
        name="custom_metrics_sensor",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="One custom_metrics_job run per day that received new points through POST /v1/metrics "
        "since the last evaluation (cursor: the newest point id seen).",
    )
    def custom_metrics_sensor(context: dg.SensorEvaluationContext, ops: OpsResource):
        after = int(context.cursor or 0)
        days, newest = days_after(ops.engine(), after)
        if not days:
            return dg.SkipReason(f"no custom metric points after id {after}")
        keys = set(daily_partitions.get_partition_keys())
        outside = [d for d in days if d not in keys]
        if outside:  # validated at recording; only a point stamped just past midnight ahead of the clock
            context.log.warning(f"points on days without a partition yet, picked up later: {outside}")
            return dg.SkipReason(f"waiting for the partitions of {outside}")
        context.update_cursor(str(newest))
        return [dg.RunRequest(run_key=f"custom_metrics:{d}:{newest}", partition_key=d) for d in days]

    return custom_metrics_sensor
