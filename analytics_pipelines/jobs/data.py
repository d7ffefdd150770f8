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


#: KPI anomaly assets (hourly, after kpi_snapshots): their own job, not main_job's daily run
ANOMALY_ASSETS = ("kpi_baselines", "kpi_anomalies")
main_job = _asset_job(
    "main_job",
    # the daily data layers only: every other domain has its own job (and schedule)
    dg.AssetSelection.groups("raw", "staging", "facts", "marts", "catalog"),
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
anomaly_job = _asset_job(
    "anomaly_job",
    dg.AssetSelection.assets(*ANOMALY_ASSETS),
    "analytics",
    "KPI anomaly detection over an hour range of kpi_snapshots: this week's baselines (kpi_baselines) and "
    "the scored hours (kpi_anomalies). Run by kpi_anomaly_sensor after kpi_snapshots lands.",
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
    "predictions, the demand forecast (retrained and backtested on every run), their reasons and "
    "performance rows.",
    retries=False,
)
behavior_job = _asset_job(
    "behavior_job",
    dg.AssetSelection.groups("behavior"),
    "analytics",
    "Behavioral data (MongoDB or its Extended JSON files) for a partition range: raw behavioral tables, "
    "quarantine, ledger, conversion funnel, attribution (five models) and campaign ROI (docs/behavior.md).",
)

pricing_job = _asset_job(
    "pricing_job",
    dg.AssetSelection.groups("pricing"),
    "analytics",
    "Price elasticity (model fit, holdout validation) and pricing recommendations (published to the ops "
    "store's pending_price_changes), as of the run's time, from the marts already in the warehouse.",
    retries=False,
)

fraud_job = _asset_job(
    "fraud_job",
    dg.AssetSelection.assets("fraud_scores", "fraud_events", "fraud_metrics_hourly"),
    "analytics",
    "Daily fraud scoring (docs/fraud.md): the user-days of a day range scored, the events deduplicated, the "
    "hourly fraud_% of those days.",
)

custom_metrics_job = _asset_job(
    "custom_metrics_job",
    dg.AssetSelection.groups("custom_metrics"),
    "analytics",
    "The custom_metrics mart for a day range from the points recorded through the API (ops store); started by "
    "custom_metrics_sensor for the days new points fall on.",
)

insights_job = _asset_job(
    "insights_job",
    dg.AssetSelection.groups("insights"),
    "analytics",
    "venue_insights for a day range (as-of days) from the marts already in the warehouse; daily after the "
    "marts, the customers and the models (insights_daily_schedule), or on request through "
    "insights_refresh_sensor (POST /v1/insights/refresh).",
)

jobs = [
    main_job,
    ingest_job,
    marts_job,
    kpi_job,
    anomaly_job,
    customers_job,
    predictions_job,
    pricing_job,
    behavior_job,
    fraud_job,
    custom_metrics_job,
    insights_job,
]
