"""Publication sensors: new materializations of a published source table -> a run of its publication job
for exactly those partitions (contiguous keys in one single-run range). The cursor is the newest storage id
seen per source; nothing is requested while InfluxDB is not configured (TT_INFLUX_URL)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import dagster as dg

from analytics_pipelines.partitions import RANGE_END_TAG, RANGE_START_TAG
from analytics_pipelines.publication.series import PUBLISHERS
from analytics_pipelines.settings import Settings


def new_partitions(
    instance: dg.DagsterInstance, source: str, after: int | None
) -> tuple[list[str], int | None]:
    """Partition keys of `source` materialized after storage id `after`; the newest storage id seen."""
    keys, newest, cursor = set(), after, None
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(source), after_storage_id=after),
            limit=1000,
            cursor=cursor,
            ascending=True,
        )
        for r in page.records:
            newest = max(newest or 0, r.storage_id)
            if r.asset_materialization is not None and r.asset_materialization.partition:
                keys.add(r.asset_materialization.partition)
        if not page.has_more:
            break
        cursor = page.cursor
    return sorted(keys), newest


FORMATS = {"daily": ("%Y-%m-%d", timedelta(days=1)), "hourly": ("%Y-%m-%d-%H:%M", timedelta(hours=1))}


def contiguous_ranges(keys: list[str], partitioning: str) -> list[tuple[str, str]]:
    """Daily or hourly partition keys -> (first, last) of each run of consecutive keys."""
    fmt, step = FORMATS[partitioning]
    out: list[tuple[str, str]] = []
    prev = None
    for key in sorted(set(keys)):
        t = datetime.strptime(key, fmt)
        if prev is not None and t - prev == step:
            out[-1] = (out[-1][0], key)
        else:
            out.append((key, key))
        prev = t
    return out


def make_publication_sensor(job, partitioning: str, name: str | None = None) -> dg.SensorDefinition:
    sources = sorted({p.source for p in PUBLISHERS.values() if p.partitioning == partitioning})

    @dg.sensor(
        name=name or f"{job.name}_sensor",
        job=job,
        minimum_interval_seconds=120,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"New partitions of {', '.join(sources)} -> {job.name} for exactly those partitions "
        "(only when TT_INFLUX_URL is set).",
    )
    def _sensor(context: dg.SensorEvaluationContext):
        if not Settings.from_env().influx.url:
            return dg.SkipReason("InfluxDB not configured (TT_INFLUX_URL): nothing to publish")
        cursor = json.loads(context.cursor) if context.cursor else {}
        keys, new_cursor = set(), dict(cursor)
        for source in sources:
            found, newest = new_partitions(context.instance, source, cursor.get(source))
            keys.update(found)
            if newest is not None:
                new_cursor[source] = newest
        context.update_cursor(json.dumps(new_cursor, sort_keys=True))
        if not keys:
            return dg.SkipReason("no new partitions of the published tables")
        stamp = max(v for v in new_cursor.values())
        return [
            dg.RunRequest(
                run_key=f"{first}..{last}@{stamp}", tags={RANGE_START_TAG: first, RANGE_END_TAG: last}
            )
            for first, last in contiguous_ranges(sorted(keys), partitioning)
        ]

    return _sensor
