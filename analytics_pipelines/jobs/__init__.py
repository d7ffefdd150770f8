"""Jobs. `main_job` materializes every daily asset (ingestion, facts, marts); run it over a partition range in
one run (single-run backfill policy) with `analytics-pipelines run` or a backfill from the UI. `kpi_job`
takes hourly KPI snapshots."""

from __future__ import annotations

import dagster as dg

from analytics_pipelines.automation.jobs import RETRY_POLICY, RUN_RETRY_TAGS

main_job = dg.define_asset_job(
    name="main_job",
    selection=dg.AssetSelection.all() - dg.AssetSelection.groups("kpis", "reports", "customers"),
    description="Everything daily: source -> raw -> staging -> facts -> marts for a partition range.",
    tags={"team": "data-platform", **RUN_RETRY_TAGS},
    op_retry_policy=RETRY_POLICY,
)

ingest_job = dg.define_asset_job(
    name="ingest_job",
    selection=dg.AssetSelection.groups("raw", "staging"),
    description="Source -> raw -> staging only.",
    tags={"team": "data-platform", **RUN_RETRY_TAGS},
    op_retry_policy=RETRY_POLICY,
)

marts_job = dg.define_asset_job(
    name="marts_job",
    selection=dg.AssetSelection.groups("facts", "marts"),
    description="Facts and marts only, from the staging already in the warehouse (re-derive after a fix).",
    tags={"team": "analytics", **RUN_RETRY_TAGS},
    op_retry_policy=RETRY_POLICY,
)

kpi_job = dg.define_asset_job(
    name="kpi_job",
    selection=dg.AssetSelection.groups("kpis"),
    description="Hourly business KPI snapshots (kpi_snapshots) over an hour range.",
    tags={"team": "analytics", **RUN_RETRY_TAGS},
    op_retry_policy=RETRY_POLICY,
)

jobs = [main_job, ingest_job, marts_job, kpi_job]
