"""Custom metrics (issue 21): the `custom_metrics` mart, built from the points recorded through the API.

The domain's registry entries (see docs/adding-a-mart.md); default_registry() includes them."""

from __future__ import annotations

from analytics_pipelines.registry.cubes_monitoring import CUSTOM_METRICS
from analytics_pipelines.registry.model import Check, Table

S = "analytics_pipelines.metrics.steps:"

TABLES: tuple[Table, ...] = (
    Table(
        name="custom_metrics",
        group="custom_metrics",
        description="Custom metrics venue systems record through the API (POST /v1/metrics, /v1/metrics/bulk; "
        "the seed's eight metric types with units and bounds), per hour, tenant, venue and metric type: the "
        "number of points, their sum, min, max, mean and the last value of the hour. Built by "
        "custom_metrics_job, which custom_metrics_sensor starts for the days new points fall on; the API "
        "only writes the ops store, never this mart.",
        grain="one row per hour, tenant, venue and metric type with points",
        keys=("tenant_id", "venue_id", "metric_type", "hour"),
        partitioning="daily",
        partition_column="day",
        build=S + "custom_metrics",
        kinds=("polars",),
        serve=True,
        venue_column="venue_id",
        cube=CUSTOM_METRICS,
        checks=(
            Check(
                "reconciles_to_ops_store",
                "Points and value sums per tenant, venue and metric type over the run's days equal a GROUP BY "
                "over the ops store's custom_metric_points.",
                S + "check_custom_metrics",
            ),
        ),
    ),
)
