"""Jobs. `main_job` materializes every asset; run it over a partition range in one run (single-run
backfill policy) with `analytics-pipelines run` or a backfill from the UI."""

from __future__ import annotations

import dagster as dg

from analytics_pipelines.partitions import daily_partitions

main_job = dg.define_asset_job(
    name="main_job",
    selection=dg.AssetSelection.all(),
    partitions_def=daily_partitions,
    description="Everything: source -> raw -> staging (and the marts built on them) for a partition range.",
    tags={"team": "data-platform"},
)

ingest_job = dg.define_asset_job(
    name="ingest_job",
    selection=dg.AssetSelection.groups("raw", "staging"),
    partitions_def=daily_partitions,
    description="Source -> raw -> staging only.",
    tags={"team": "data-platform"},
)

jobs = [main_job, ingest_job]
