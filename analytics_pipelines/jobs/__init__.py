"""Jobs. `main_job` materializes every daily asset (ingestion, facts, marts); run it over a partition range in
one run (single-run backfill policy) with `analytics-pipelines run` or a backfill from the UI. `kpi_job`
takes hourly KPI snapshots."""

from __future__ import annotations

import dagster as dg

main_job = dg.define_asset_job(
    name="main_job",
    selection=dg.AssetSelection.all() - dg.AssetSelection.groups("kpis"),
    description="Everything daily: source -> raw -> staging -> facts -> marts for a partition range.",
    tags={"team": "data-platform"},
)

ingest_job = dg.define_asset_job(
    name="ingest_job",
    selection=dg.AssetSelection.groups("raw", "staging"),
    description="Source -> raw -> staging only.",
    tags={"team": "data-platform"},
)

marts_job = dg.define_asset_job(
    name="marts_job",
    selection=dg.AssetSelection.groups("facts", "marts"),
    description="Facts and marts only, from the staging already in the warehouse (re-derive after a fix).",
    tags={"team": "analytics"},
)

kpi_job = dg.define_asset_job(
    name="kpi_job",
    selection=dg.AssetSelection.groups("kpis"),
    description="Hourly business KPI snapshots (kpi_snapshots) over an hour range.",
    tags={"team": "analytics"},
)

jobs = [main_job, ingest_job, marts_job, kpi_job]
