"""The query layer's declarations of the custom metrics mart (custom_metrics, issue 21) and the 5-minute
sales velocity (sales_velocity, issue 17); the sales marts' are in cubes.py, whose helpers these use."""

from __future__ import annotations

from analytics_pipelines.metrics.custom import METRIC_TYPES
from analytics_pipelines.monitoring.velocity import TRENDS
from analytics_pipelines.registry.cubes import EVENT, HOUR_UP, VENUE, total
from analytics_pipelines.registry.semantic import Cube, Dimension, Measure

IN_UNIT = "in the metric type's unit (count, cents or percent: group or filter by metric_type)"

CUSTOM_METRICS = Cube(
    columns=(
        "day",
        "hour",
        "tenant_id",
        "venue_id",
        "metric_type",
        "unit",
        "points",
        "value_sum",
        "value_min",
        "value_max",
        "value_avg",
        "value_last",
        "last_recorded_at",
    ),
    measures=(
        total("points", "points", "Points recorded (POST /v1/metrics, /v1/metrics/bulk)."),
        Measure(
            "value_sum",
            "sum",
            "value_sum",
            unit="metric",
            description=f"Sum of the points' values, {IN_UNIT}.",
        ),
        Measure(
            "value_min", "min", "value_min", unit="metric", description=f"Lowest value recorded, {IN_UNIT}."
        ),
        Measure(
            "value_max", "max", "value_max", unit="metric", description=f"Highest value recorded, {IN_UNIT}."
        ),
        Measure(
            "value_avg",
            "formula",
            formula="value_sum / points",
            unit="metric",
            description="Mean of the points' values: sum / points after aggregation (not a mean of the hours' "
            f"means), {IN_UNIT}.",
        ),
    ),
    dimensions=(
        VENUE,
        Dimension("metric_type", "metric_type", values=tuple(METRIC_TYPES), description="The metric type."),
        Dimension(
            "unit", "unit", values=("count", "cents", "percent"), description="The metric type's unit."
        ),
        Dimension(
            "hour", "hour", "timestamp", HOUR_UP, description="The UTC hour the points were stamped in."
        ),
    ),
    time="hour",
    as_of="last_recorded_at",
    description="Custom metrics recorded by venue systems, per hour, venue and metric type (the hour's last "
    "value, value_last, is in the mart but is no measure: no aggregation of it over venues or hours means "
    "anything).",
)

RATE = "tickets/minute"
SALES_VELOCITY = Cube(
    columns=(
        "tenant_id",
        "venue_id",
        "event_id",
        "bucket_start",
        "day",
        "tickets",
        "per_minute_5m",
        "per_minute_15m",
        "per_minute_60m",
        "acceleration",
        "tickets_sold",
        "capacity",
        "remaining",
        "trend",
        "high_velocity",
        "sellout_imminent",
        "sold_out",
        "oversold",
        "eta_linear_minutes",
        "capacity_reason",
    ),
    measures=(
        total("tickets", "tickets", "Tickets sold in the 5-minute buckets."),
        Measure(
            "events_selling",
            "count_distinct",
            "event_id",
            unit="count",
            description="Events with a sale in the trailing hour of a bucket.",
        ),
        Measure(
            "tickets_per_minute_5m",
            "sum",
            "per_minute_5m",
            unit=RATE,
            description="Σ over events of the 5-minute rate: a venue's rate per bucket (group by bucket_start; "
            "summed over several buckets it means nothing).",
        ),
        Measure(
            "tickets_per_minute_15m",
            "sum",
            "per_minute_15m",
            unit=RATE,
            description="Σ over events of the 15-minute rate (per bucket, as above).",
        ),
        Measure(
            "tickets_per_minute_60m",
            "sum",
            "per_minute_60m",
            unit=RATE,
            description="Σ over events of the 60-minute rate (per bucket, as above).",
        ),
        Measure(
            "peak_rate_5m",
            "max",
            "per_minute_5m",
            unit=RATE,
            description="Highest 5-minute rate of an event.",
        ),
        Measure(
            "high_velocity_events",
            "count",
            unit="count",
            description="Event buckets selling over 10 tickets/minute.",
            when=(("high_velocity", "true"),),
        ),
        Measure(
            "sellout_imminent_events",
            "count",
            unit="count",
            description="Event buckets about to sell out (remaining / 15-minute rate <= 60 min).",
            when=(("sellout_imminent", "true"),),
        ),
    ),
    dimensions=(
        VENUE,
        EVENT,
        Dimension(
            "bucket_start",
            "bucket_start",
            "timestamp",
            HOUR_UP,
            description="The 5-minute bucket's start (UTC); as a plain dimension: the bucket itself.",
        ),
        Dimension("trend", "trend", values=TRENDS, description="accelerating, steady or decelerating."),
        Dimension("high_velocity", "high_velocity", "boolean", description="Over 10 tickets/minute."),
    ),
    time="bucket_start",
    as_of="bucket_start",
    description="Sales velocity per event and 5-minute bucket (refreshed every 5 minutes for today).",
)
