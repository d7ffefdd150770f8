"""Monitoring (issue 17): sales velocity, sell-out ETA, anomalies.

The domain's registry entries (see docs/adding-a-mart.md); default_registry() includes them.
Velocity and sell-out: analytics_pipelines/monitoring/ (docs/monitoring.md).
KPI anomalies: docs/anomalies.md (builders in analytics_pipelines/anomalies/assets.py)."""

from __future__ import annotations

from analytics_pipelines.registry.cubes_monitoring import SALES_VELOCITY
from analytics_pipelines.registry.model import Check, Table

G = "monitoring"
M = "analytics_pipelines.monitoring.steps:"
EVENT_INPUTS = (
    "stg_tickets",
    "stg_ticket_types",
    "stg_events",
    "stg_event_schedules",
    "stg_event_categories",
)

VELOCITY_TABLES: tuple[Table, ...] = (
    Table(
        name="sales_velocity",
        group=G,
        description="Sales velocity per event on sale at 5-minute grain (the old sales tracker, persisted): "
        "tickets in the bucket, tickets/minute over the last 5/15/60 minutes, acceleration (5-minute minus "
        "15-minute rate), trend from the mean acceleration of the last three buckets (+/-0.5), tickets sold, "
        "capacity, remaining (NULL with capacity_reason when unknown or 0), high_velocity (> 10/min) and "
        "sellout_imminent (linear: remaining / 15-minute rate <= 60 min). A row per bucket with a sale in "
        "its trailing hour while the event is on sale. Refreshed every 5 minutes for today; days older than "
        "TT_VELOCITY_COMPACT_AFTER_DAYS are compacted into sales_velocity_hourly.",
        grain="one row per event and 5-minute bucket with a sale in the trailing hour",
        keys=("event_id", "bucket_start"),
        partitioning="daily",
        partition_column="day",
        upstream=EVENT_INPUTS,
        build=M + "sales_velocity",
        kinds=("polars",),
        serve=True,
        venue_column="venue_id",
        cube=SALES_VELOCITY,
        checks=(
            Check(
                "reconciles_to_staging",
                "Every staged sale of the window is in a bucket or counted as left out (unknown event, off "
                "sale); rates finite and >= 0; remaining within [0, capacity] or NULL with a reason; "
                "tickets_sold never decreases within an event.",
                M + "check_velocity",
            ),
        ),
    ),
    Table(
        name="sales_velocity_hourly",
        group=G,
        factory="none",
        description="sales_velocity compacted to hours (maintenance, velocity_compaction_job): per event and "
        "hour, tickets, the peak and mean 5-minute rates, tickets sold and remaining at the hour's last "
        "bucket, high_velocity / sellout_imminent if any bucket had them, and how many 5-minute rows it "
        "replaced. The 5-minute partitions of a day are dropped only after its hourly rows are written.",
        grain="one row per event and hour",
        keys=("event_id", "hour"),
        partitioning="daily",
        partition_column="day",
        venue_column="venue_id",
    ),
    Table(
        name="sellout_curves",
        group=G,
        description="The sell-out model's curve library, refreshed daily (sellout_model_job, "
        "sellout_model_schedule), never by the 5-minute refresh: one row per event that sold out before the "
        "run (capacity, on-sale t0, sell-out time, early velocity, days to the event, minutes to reach 1..100 "
        "% sold as m001..m100). Also writes the out-of-time backtest (sellout_model_performance: ETA error at "
        "25/50/75 % sold against the seed's linear rule, the calibrated interval's holdout coverage) and the "
        "interval calibration (sellout_calibration). A library worse than the linear rule at 50 % sold is "
        "not stored: the previous library and calibration stay.",
        grain="one row per sold-out event",
        keys=("event_id",),
        upstream=EVENT_INPUTS,
        build=M + "sellout_model",
        kinds=("polars", "numpy"),
        venue_column="venue_id",
        produces=("sellout_calibration", "sellout_model_performance"),
        checks=(
            Check(
                "beats_linear_rule",
                "Backtest (out of time) median absolute ETA error at 50 % sold <= the seed's linear rule's.",
                M + "check_beats_linear",
                kind="invariants",
            ),
        ),
    ),
    Table(
        name="sellout_calibration",
        group=G,
        produced_by="sellout_curves",
        grain="one row per fraction-sold bucket (and the pooled row 'all')",
        keys=("bucket",),
        tenant_column=None,
        no_tenant_reason="calibration quantiles of the model's residuals over all tenants' events",
        description="Split-conformal calibration of the sell-out ETA's 80 % interval (monitoring/"
        "calibration.py): per fraction-sold bucket, the 10th / 90th conformal quantiles of the backtest's "
        "log-time residuals scaled by the neighbours' spread, how many residuals, and the method (pooled or "
        "the neighbours' interval when too few).",
    ),
    Table(
        name="sellout_forecast",
        group=G,
        description="Sell-out ETA per event on sale, with a calibrated 80 % interval (eta p10-p90), from the "
        "stored curve library (sellout_curves, daily) and its calibration: nearest past sell-out curves "
        "(shape of the curve so far, early velocity, days to the event, category, venue; "
        "monitoring/curves.py), beside the seed's linear rule; a reason instead of an ETA when there is none "
        "(cancelled, sold out, capacity unknown/0, < 5 % sold, stalled, too few past sell-outs). Refreshed "
        "every 5 minutes; it only reads the library.",
        grain="one row per event on sale",
        keys=("event_id",),
        upstream=(*EVENT_INPUTS, "sellout_curves"),
        build=M + "sellout_forecast",
        kinds=("polars", "numpy"),
        serve=True,
        venue_column="venue_id",
        checks=(
            Check(
                "valid_forecast",
                "One row per event; an ETA or a reason on every row; p10 <= p50 <= p90; no NaN/negative.",
                M + "check_forecast",
                kind="invariants",
            ),
        ),
    ),
    Table(
        name="sellout_model_performance",
        group=G,
        produced_by="sellout_curves",
        grain="one row per model, evaluation, metric and bucket",
        keys=("model", "evaluation", "metric", "bucket"),
        tenant_column=None,
        no_tenant_reason="model evaluation metrics over all tenants' events",
        description="The sell-out ETA model's and the seed linear rule's backtest: median absolute error "
        "(minutes) at 25/50/75 % sold, interval coverage, with model version, trained_at, training window "
        "and features.",
    ),
)


VELOCITY_ANOMALY_TABLES: tuple[Table, ...] = (
    Table(
        name="velocity_anomalies",
        group=G,
        description="Hours whose sales velocity (tickets sold per venue and hour, the 5-minute buckets' "
        "hourly sum) departs from the venue's robust weekday x hour baseline (median and MAD of the same "
        "slot over TT_ANOMALY_BASELINE_WEEKS weeks, Poisson floor, windows 1/6/24/72 h; the KPI detector): "
        "value, baseline, scale, score, severity at TT_ANOMALY_THRESHOLDS, direction, alerting. Refreshed "
        "hourly for today (velocity_anomaly_job); alert instances through the seeded velocity_anomaly rule "
        "(monitoring_alert_job). Validated on the generator's planted on-sale bursts and stalls.",
        grain="one row per anomalous hour, tenant, venue and metric",
        keys=("hour", "tenant_id", "venue_id", "metric"),
        partitioning="daily",
        partition_column="day",
        upstream=("stg_tickets", "stg_events", "stg_event_schedules", "stg_ticket_types"),
        build=M + "velocity_anomalies",
        kinds=("polars", "numpy"),
        serve=False,
        venue_column="venue_id",
        checks=(
            Check(
                "scores_valid",
                "Every row has a baseline, a positive scale, a finite score and the severity its |score| gives.",
                M + "check_velocity_anomalies",
                kind="invariants",
            ),
        ),
    ),
)

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


TABLES: tuple[Table, ...] = (*VELOCITY_TABLES, *VELOCITY_ANOMALY_TABLES, *ANOMALY_TABLES)
