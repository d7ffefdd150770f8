"""Monitoring jobs: `monitoring_job` (sales_velocity for a day range and the sell-out forecast from the stored
curve library: the 5-minute refresh), `sellout_model_job` (the daily model refresh: curve library, backtest,
interval calibration) and `velocity_compaction_job` (5-minute velocity history -> hourly, see
monitoring/compaction.py)."""

import dagster as dg

from analytics_pipelines.automation.retries import RUN_RETRY_TAGS, now_of, retry_transient
from analytics_pipelines.jobs.data import _asset_job
from analytics_pipelines.resources import WarehouseResource
from analytics_pipelines.settings import Settings

monitoring_job = _asset_job(
    "monitoring_job",
    # the group also holds the hourly anomaly and the daily fraud assets, which have their own jobs
    dg.AssetSelection.assets("sales_velocity", "sellout_forecast"),
    "analytics",
    "Sales velocity (5-minute buckets) for a day range and the sell-out ETA forecast from the stored curve "
    "library (every 5 minutes for today: velocity_refresh_schedule); the library is not rebuilt here.",
)

sellout_model_job = _asset_job(
    "sellout_model_job",
    dg.AssetSelection.assets("sellout_curves", "sellout_calibration", "sellout_model_performance"),
    "analytics",
    "The sell-out model's daily refresh: the curve library of past sell-outs, its out-of-time backtest "
    "against the seed's linear rule and the interval calibration (sellout_model_schedule).",
)


velocity_anomaly_job = _asset_job(
    "velocity_anomaly_job",
    dg.AssetSelection.assets("velocity_anomalies"),
    "analytics",
    "Velocity anomalies (venues' tickets per hour against their weekday x hour baselines) for a day range "
    "(hourly for today: velocity_anomaly_schedule); alerts via monitoring_alert_job.",
)


class CompactionConfig(dg.Config):
    now: str = ""
    """Run as of this ISO time (with zone); empty: the wall clock."""
    after_days: int = 0
    """Compact days older than this; 0: TT_VELOCITY_COMPACT_AFTER_DAYS (default 30)."""


@dg.op(
    description="Compact sales_velocity days older than the retention into sales_velocity_hourly, then drop "
    "their 5-minute partitions (never before the hourly rows are written).",
    tags={"team": "analytics"},
)
def compact_velocity(
    context: dg.OpExecutionContext, config: CompactionConfig, warehouse: WarehouseResource
) -> dg.Output[dict]:
    from analytics_pipelines.monitoring.compaction import compact

    days = config.after_days or Settings.from_env().velocity.compact_after_days
    out = retry_transient(lambda: compact(warehouse.get(), now_of(config.now), days))
    context.log.info(f"velocity compaction: {out}")
    return dg.Output(out, metadata={k: v for k, v in out.items() if isinstance(v, (int, str))})


@dg.op(
    description="Compact fraud history older than TT_FRAUD_COMPACT_AFTER_DAYS: fraud_scores summarised into "
    "fraud_scores_daily (flagged user-days kept verbatim), fraud_metrics_hourly into fraud_metrics_daily "
    "(hourly partitions dropped only after the daily rows are written).",
    tags={"team": "analytics"},
)
def compact_fraud(
    context: dg.OpExecutionContext, config: CompactionConfig, warehouse: WarehouseResource
) -> dg.Output[dict]:
    from analytics_pipelines.fraud.retention import compact

    settings = Settings.from_env()
    days = config.after_days or settings.fraud_compact_after_days
    out = retry_transient(
        lambda: compact(warehouse.get(), now_of(config.now), days, settings.fraud_flag_score)
    )
    context.log.info(f"fraud compaction: {out}")
    return dg.Output(out, metadata={k: v for k, v in out.items() if isinstance(v, (int, str))})


@dg.job(
    name="velocity_compaction_job",
    tags={"team": "analytics", **RUN_RETRY_TAGS},
    description="Monitoring retention: sales_velocity 5-minute history older than "
    "TT_VELOCITY_COMPACT_AFTER_DAYS -> hourly; fraud history older than TT_FRAUD_COMPACT_AFTER_DAYS -> daily.",
)
def velocity_compaction_job():
    compact_velocity()
    compact_fraud()


jobs = [monitoring_job, sellout_model_job, velocity_anomaly_job, velocity_compaction_job]
