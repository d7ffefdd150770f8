"""Asset jobs. `main_job` materializes every daily asset (ingestion, facts, marts); run it over a partition
range in one run (single-run backfill policy) with `analytics-pipelines run` or a backfill from the UI.
`kpi_job` takes hourly KPI snapshots, `customers_job` builds the customer analytics for a day."""

from __future__ import annotations

import dagster as dg

from analytics_pipelines.automation.retries import RETRY_POLICY, RUN_RETRY_TAGS


def _asset_job(
    name: str, selection: dg.AssetSelection, team: str, description: str, retries: bool = True
) -> dg.UnresolvedAssetJobDefinition:
    """An asset job with the project's retries: transient errors retried per step, failed runs from failure."""
    if not retries:
        return dg.define_asset_job(
            name=name, selection=selection, description=description, tags={"team": team}
        )
    return dg.define_asset_job(
        name=name,
        selection=selection,
        description=description,
        tags={"team": team, **RUN_RETRY_TAGS},
        op_retry_policy=RETRY_POLICY,
    )


main_job = _asset_job(
    "main_job",
    dg.AssetSelection.all()
    - dg.AssetSelection.groups("kpis", "reports", "customers", "models", "predictions", "monitoring"),
    "data-platform",
    "Everything daily: source -> raw -> staging -> facts -> marts for a partition range.",
)
ingest_job = _asset_job(
    "ingest_job",
    dg.AssetSelection.groups("raw", "staging"),
    "data-platform",
    "Source -> raw -> staging only.",
)
marts_job = _asset_job(
    "marts_job",
    dg.AssetSelection.groups("facts", "marts"),
    "analytics",
    "Facts and marts only, from the staging already in the warehouse (re-derive after a fix).",
)
kpi_job = _asset_job(
    "kpi_job",
    dg.AssetSelection.groups("kpis"),
    "analytics",
    "Hourly business KPI snapshots (kpi_snapshots) over an hour range.",
)
customers_job = _asset_job(
    "customers_job",
    dg.AssetSelection.groups("customers", "models"),
    "analytics",
    "Customer marts for a day's as-of date (RFM partition) and every whole-table customer mart (CLV, churn "
    "model retraining, segments, transitions, cohorts, 360) and model_performance.",
    retries=False,
)

predictions_job = _asset_job(
    "predictions_job",
    dg.AssetSelection.groups("predictions"),
    "analytics",
    "The prediction models (issue 16) over the marts already in the warehouse: the no-show model and its "
    "predictions, forecast, reasons and performance rows.",
    retries=False,
)

jobs = [main_job, ingest_job, marts_job, kpi_job, customers_job, predictions_job]
