"""Venue insights (issue 21): the daily `venue_insights` mart (docs/insights.md); default_registry()
includes it."""

from __future__ import annotations

from analytics_pipelines.registry.model import Check, Table

S = "analytics_pipelines.insights.steps:"

TABLES: tuple[Table, ...] = (
    Table(
        name="venue_insights",
        group="insights",
        description="Findings per venue that hold up statistically, as of each day: week-over-week and "
        "year-over-year tickets / net revenue changes beyond the venue's own noise (robust z of the log "
        "change against its past 12 changes >= 3.0), events stalling (Poisson) or pacing to sell out, "
        "rising churn-risk share and segment shifts (RFM, two-proportion z), KPI and velocity anomalies, "
        "pending price recommendations. Each with a stable id (type + venue + evidence key), severity, one sentence, the "
        "evidence (JSON) and the POST /v1/query request that reproduces its main number. Built by "
        "insights_job (daily schedule; POST /v1/insights/refresh through insights_refresh_sensor).",
        grain="one row per day (as_of) and finding",
        keys=("as_of", "insight_id"),
        partitioning="daily",
        partition_column="as_of",
        upstream=(
            "venue_analytics",
            "event_analytics",
            "event_performance",
            "kpi_anomalies",
            "velocity_anomalies",
            "pricing_recommendations",
            "customer_rfm_scores",
        ),
        build=S + "venue_insights",
        kinds=("polars",),
        serve=True,
        venue_column="venue_id",
        checks=(
            Check(
                "valid_findings",
                "One row per day and id; known type and severity; sentence, evidence and query on every row.",
                S + "check_venue_insights",
                kind="invariants",
            ),
        ),
    ),
)
