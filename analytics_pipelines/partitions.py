"""Partition definitions shared by assets, jobs and schedules."""

from __future__ import annotations

import os

import dagster as dg

#: First day of history: one year before the generator's default as-of date, the history of the `small`
#: demo. Set TT_PARTITION_START for more history (medium/large generate two years: 2024-11-01) or for a
#: real platform database. Rows before it are not lost: raw_unplaceable_rows quarantines them.
PARTITION_START = os.environ.get("TT_PARTITION_START", "2025-11-01")

#: One partition per UTC day, up to and including today (intraday refreshes rewrite today's partition).
daily_partitions = dg.DailyPartitionsDefinition(start_date=PARTITION_START, timezone="UTC", end_offset=1)

#: One partition per UTC hour (hourly KPI snapshots).
hourly_partitions = dg.HourlyPartitionsDefinition(start_date=f"{PARTITION_START}-00:00", timezone="UTC",
                                                  end_offset=1)

#: One partition per ISO week (Monday start), for registry entries with partitioning="weekly" (none today:
#: the customer RFM history is daily).
weekly_partitions = dg.WeeklyPartitionsDefinition(start_date=PARTITION_START, timezone="UTC", day_offset=1)

#: Dagster's run tags for a single run over a partition range (documented tag names; not imported from
#: Dagster's private modules)
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def _first_monday(start: str) -> str:
    from datetime import date, timedelta

    d = date.fromisoformat(start)
    return (d + timedelta(days=(7 - d.weekday()) % 7)).isoformat()


#: Report weeks (Monday-Sunday, UTC), keyed by their Monday; the first full week of history onward
report_weekly_partitions = dg.WeeklyPartitionsDefinition(start_date=_first_monday(PARTITION_START), day_offset=1,
                                                         timezone="UTC")
