"""Data sensors: new source data -> main_job for exactly the changed days; a new kpi_snapshots
materialization -> alert_evaluation_job."""

import json
from datetime import UTC, datetime

import dagster as dg

from analytics_pipelines.automation import source_changes
from analytics_pipelines.jobs.operations import alert_evaluation_job
from analytics_pipelines.partitions import RANGE_END_TAG, RANGE_START_TAG, configured
from analytics_pipelines.resources import SourceResource

KPI_ASSET = dg.AssetKey("kpi_snapshots")


@dg.asset_sensor(
    asset_key=KPI_ASSET,
    job=alert_evaluation_job,
    name="kpi_snapshots_alert_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Runs alert_evaluation_job after each new kpi_snapshots materialization (a backfill "
    "of many hours gives one evaluation, on the newest data).",
)
def kpi_snapshots_alert_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    mat = asset_event.dagster_event
    partition = mat.partition if mat is not None else None
    # the asset sensor's cursor is the materialization's storage id: one evaluation per new materialization
    return dg.RunRequest(
        run_key=f"kpi_snapshots:{context.cursor}", tags={"kpi_snapshots_partition": partition or "-"}
    )


def make_source_data_sensor(
    job,
    name: str = "source_data_sensor",
    minimum_interval_seconds: int = 300,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
    partitions_def: dg.TimeWindowPartitionsDefinition | None = None,
) -> dg.SensorDefinition:
    """A sensor requesting runs of `job` (daily-partitioned) for exactly the days whose source rows changed
    since its cursor (per fact table: the newest change time seen). Contiguous days go into one run over
    the range (single-run backfill policy); run_key = range + watermark, so a tick never launches twice.
    The first tick only records the watermarks (history is a backfill, not a sensor's job)."""

    @dg.sensor(
        name=name,
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="New or changed source rows (late-arriving included) -> runs of "
        f"{getattr(job, 'name', 'the job')} for exactly the daily partitions they fall in.",
    )
    def _sensor(context: dg.SensorEvaluationContext, source: SourceResource):
        cursor = json.loads(context.cursor) if context.cursor else {}
        now = datetime.now(UTC)
        keys = (partitions_def or configured().daily).get_partition_keys(current_time=now)
        if not keys:
            return dg.SkipReason("no partitions yet")
        days, new_cursor, by_table = source_changes.changed_partitions(
            source.db(), cursor, now, keys[0], keys[-1]
        )
        context.update_cursor(json.dumps(new_cursor, sort_keys=True))
        if not cursor:
            return dg.SkipReason("watermarks recorded; later changes will request their partitions")
        if not days:
            return dg.SkipReason("no source rows changed since the last tick")
        stamp = max(v for v in new_cursor.values() if v)
        tables = ", ".join(f"{t}: {len(d)}" for t, d in sorted(by_table.items()))
        context.log.info(f"changed days by table: {tables}")
        requests = []
        for first, last in source_changes.contiguous_ranges(days):
            tags = {"source_change": stamp}
            if first == last:
                requests.append(dg.RunRequest(run_key=f"{first}@{stamp}", partition_key=first, tags=tags))
            else:
                requests.append(
                    dg.RunRequest(
                        run_key=f"{first}..{last}@{stamp}",
                        tags={**tags, RANGE_START_TAG: first, RANGE_END_TAG: last},
                    )
                )
        return requests

    return _sensor
