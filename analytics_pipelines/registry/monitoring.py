"""Monitoring (issue 17): sales velocity, sell-out ETA, anomalies.

The domain's registry entries (see docs/adding-a-mart.md); default_registry() includes them.
KPI anomalies: docs/anomalies.md (builders in analytics_pipelines/anomalies/assets.py)."""

from __future__ import annotations

from analytics_pipelines.registry.model import Check, Table

A = "analytics_pipelines.anomalies.assets:"

ANOMALY_TABLES: tuple[Table, ...] = (
    Table(
        name="kpi_baselines",
        group="monitoring",
        grain="one row per tenant, venue, metric, window, weekday and hour of day",
        keys=("tenant_id", "venue_id", "metric", "window_hours", "weekday", "hour_of_day"),
        upstream=("fct_orders", "fct_refunds", "stg_venues"),
        build=A + "kpi_baselines",
        kinds=("numpy",),
        serve=False,
        venue_column="venue_id",
        description="Robust seasonal baselines of the hourly KPI series (hourly_orders, hourly_refunds): per "
        "venue, metric, trailing window (1, 6, 24, 72 h) and weekday x hour, the median and MAD of the "
        "same slot over the previous TT_ANOMALY_BASELINE_WEEKS weeks and the scale used "
        "(max(1.4826 MAD, sqrt(median), 1)); `insufficient_history` where fewer than "
        "TT_ANOMALY_MIN_WEEKS weeks exist. The week of the clock's last full hour (valid_from).",
        checks=(
            Check(
                "valid_baselines",
                "168 slots per series and window; fitted rows with a median, MAD >= 0, scale >= 1; "
                "unfitted rows carry no numbers.",
                A + "check_baselines",
                kind="invariants",
            ),
        ),
    ),
    Table(
        name="kpi_anomalies",
        group="monitoring",
        partitioning="hourly",
        partition_column="hour_key",
        grain="one row per anomalous hour, tenant, venue and metric",
        keys=("hour_key", "tenant_id", "venue_id", "metric"),
        upstream=("kpi_snapshots", "kpi_baselines", "fct_orders", "fct_refunds", "stg_venues"),
        build=A + "kpi_anomalies",
        kinds=("numpy",),
        serve=True,
        venue_column="venue_id",
        description="Hours whose KPI (kpi_snapshots' hourly_orders / hourly_refunds per venue) departs from "
        "its weekday x hour baseline: value, baseline, scale (robust, MAD-based), score = (value - "
        "baseline) / scale over the strongest trailing window, severity low/medium/high/critical at "
        "|score| >= TT_ANOMALY_THRESHOLDS (4, 6, 9, 15), direction, and `alerting` (severity at least "
        "TT_ANOMALY_ALERT_SEVERITY). Alert instances: analytics_pipelines/anomalies/alerts.py.",
        checks=(
            Check(
                "scores_valid",
                "The scored values equal kpi_snapshots' on every snapshotted hour (and the facts' "
                "series); no NaN; every row has a baseline and a positive scale; severities follow "
                "the configured thresholds.",
                A + "check_anomalies",
                kind="invariants",
            ),
        ),
    ),
)

TABLES: tuple[Table, ...] = (*ANOMALY_TABLES,)
