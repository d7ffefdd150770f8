"""Monitoring (issue 17): fraud scoring (docs/fraud.md).

The domain's registry entries (see docs/adding-a-mart.md); default_registry() includes them."""

from __future__ import annotations

from analytics_pipelines.registry.model import Check, Table

S = "analytics_pipelines.fraud.steps:"
G = "monitoring"
STAGING = (
    "stg_orders",
    "stg_order_items",
    "stg_users",
    "stg_events",
    "stg_order_refunds",
    "stg_marketplace_listings",
    "stg_tickets",
)

TABLES: tuple[Table, ...] = (
    Table(
        name="fraud_scores",
        group=G,
        description="Fraud risk per user and UTC day with activity (orders of any status, refunds, resale "
        "listings): the features (velocity per account, failed checkouts, payment methods, tickets per order "
        "vs the per-order maximum, account age, refunds over 90 days, resale markup and time to resale over "
        "30 days), the seed's rules as explicit rules, an IsolationForest anomaly fitted on the last 30 days "
        "of user-days, and a 0-100 risk score with its level, pattern, reasons and evidence (JSON).",
        grain="one row per tenant, user and day with activity",
        keys=("tenant_id", "user_id", "day"),
        partitioning="daily",
        partition_column="day",
        upstream=STAGING,
        build=S + "fraud_scores",
        kinds=("polars", "scikit-learn"),
        venue_column="venue_id",
        checks=(
            Check(
                "valid_scores",
                "Risk within 0-100, anomaly within [0, 1], no NaN, the level matches the score, a known "
                "pattern, behaviour windows ordered.",
                S + "check_scores",
                kind="invariants",
            ),
        ),
    ),
    Table(
        name="fraud_events",
        group=G,
        description="One event per flagged behaviour (risk at or above TT_FRAUD_FLAG_SCORE): user, pattern, "
        "risk score and level, reasons, the behaviour's time window, the first and last day it was flagged, "
        "scored_at (when it was first flagged: re-runs and later days that see that behaviour again do not flag "
        "it again) and the evidence as JSON.",
        grain="one row per tenant, user, pattern and behaviour",
        keys=("event_id",),
        upstream=("fraud_scores",),
        build=S + "fraud_events",
        kinds=("polars",),
        serve=True,
        admin_only=True,
        venue_column="venue_id",
        checks=(
            Check(
                "one_event_per_behaviour",
                "No two events of one user and pattern overlap in time; windows ordered; every event at or "
                "above the flag score.",
                S + "check_events",
                kind="invariants",
            ),
        ),
    ),
    Table(
        name="fraud_metrics_hourly",
        group=G,
        description="Per venue and hour: orders (any status), orders placed by a flagged user inside the "
        "flagged behaviour's window, and fraud_pct; served as Grafana annotations where fraud_pct > 5.",
        grain="one row per tenant, venue and hour with orders",
        keys=("tenant_id", "venue_id", "hour"),
        partitioning="daily",
        partition_column="day",
        upstream=("stg_orders", "stg_events", "fraud_events"),
        build=S + "fraud_metrics_hourly",
        kinds=("polars",),
        serve=True,
        venue_column="venue_id",
        checks=(
            Check(
                "orders_reconcile",
                "Orders per day equal a count of stg_orders of the day; flagged orders within the orders; "
                "fraud_pct within 0-100.",
                S + "check_metrics",
            ),
        ),
    ),
    Table(
        name="fraud_scores_daily",
        group=G,
        factory="none",
        description="fraud_scores compacted (maintenance, velocity_compaction_job's compact_fraud): per tenant, "
        "venue and day older than TT_FRAUD_COMPACT_AFTER_DAYS, user-days scored and flagged, counts per risk "
        "level, mean and max risk, rows compacted. The day's flagged user-days stay in fraud_scores verbatim.",
        grain="one row per tenant, venue and day",
        keys=("tenant_id", "venue_id", "day"),
        partitioning="daily",
        partition_column="day",
        venue_column="venue_id",
    ),
    Table(
        name="fraud_metrics_daily",
        group=G,
        factory="none",
        description="fraud_metrics_hourly compacted (maintenance): per tenant, venue and day older than "
        "TT_FRAUD_COMPACT_AFTER_DAYS, orders, flagged orders, fraud_pct and hours compacted; the hourly "
        "partitions are dropped only after these rows are written.",
        grain="one row per tenant, venue and day",
        keys=("tenant_id", "venue_id", "day"),
        partitioning="daily",
        partition_column="day",
        venue_column="venue_id",
    ),
)
