"""Partition definitions shared by assets, jobs, schedules and sensors, made from the configured first day
of history (Settings.partition_start, TT_PARTITION_START): nothing here reads the environment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache

import dagster as dg

#: Dagster's run tags for a single run over a partition range (documented tag names; not imported from
#: Dagster's private modules)
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def _first_monday(start: str) -> str:
    d = date.fromisoformat(start)
    return (d + timedelta(days=(7 - d.weekday()) % 7)).isoformat()


@dataclass(frozen=True)
class Partitions:
    #: one partition per UTC day, up to and including today (intraday refreshes rewrite today's partition)
    daily: dg.DailyPartitionsDefinition
    #: one partition per UTC hour (hourly KPI snapshots)
    hourly: dg.HourlyPartitionsDefinition
    #: one partition per ISO week (Monday start), for registry entries with partitioning="weekly" (none today:
    #: the customer RFM history is daily)
    weekly: dg.WeeklyPartitionsDefinition
    #: report weeks (Monday-Sunday, UTC) keyed by their Monday, from the first full week of history
    report_weekly: dg.WeeklyPartitionsDefinition


@cache
def partitions(start: str) -> Partitions:
    """The partitions of a history starting on `start` (ISO day). Rows before it are not lost:
    raw_unplaceable_rows quarantines them."""
    return Partitions(
        daily=dg.DailyPartitionsDefinition(start_date=start, timezone="UTC", end_offset=1),
        hourly=dg.HourlyPartitionsDefinition(start_date=f"{start}-00:00", timezone="UTC", end_offset=1),
        weekly=dg.WeeklyPartitionsDefinition(start_date=start, timezone="UTC", day_offset=1),
        report_weekly=dg.WeeklyPartitionsDefinition(
            start_date=_first_monday(start), day_offset=1, timezone="UTC"
        ),
    )


def configured():
    """The partitions of the configured history (Settings.from_env(), read when called)."""
    from analytics_pipelines.settings import Settings

    return partitions(Settings.from_env().partition_start)
