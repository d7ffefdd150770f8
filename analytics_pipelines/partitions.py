"""Partition definitions shared by assets, jobs and schedules."""

from __future__ import annotations

import os

import dagster as dg

#: First day of history. The generator's data starts here by default; set TT_PARTITION_START for a real
#: platform database.
PARTITION_START = os.environ.get("TT_PARTITION_START", "2024-11-01")

#: One partition per UTC day, up to and including today (intraday refreshes rewrite today's partition).
daily_partitions = dg.DailyPartitionsDefinition(start_date=PARTITION_START, timezone="UTC", end_offset=1)
