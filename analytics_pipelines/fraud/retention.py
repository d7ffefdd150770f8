"""Retention of the fraud history (maintenance, velocity_compaction_job's `compact_fraud` op): days older
than TT_FRAUD_COMPACT_AFTER_DAYS (default 180) are compacted, never silently deleted.

- fraud_scores (one row per user and day with activity): the rows of flagged user-days (risk_score at or above
  TT_FRAUD_FLAG_SCORE: the evidence behind fraud_events) are kept verbatim; every day's rows are summarised first
  into `fraud_scores_daily` (per tenant, venue and day: user-days scored, flagged, per risk level, mean / max
  risk, rows compacted), then the day's partition is rewritten with its flagged rows only. A day already in
  fraud_scores_daily is not compacted again (a re-run changes nothing).
- fraud_metrics_hourly -> `fraud_metrics_daily` (per tenant, venue and day: orders, flagged orders, fraud_pct,
  hours compacted), then the hourly partitions are dropped (never before the daily rows are written).
fraud_events (one row per flagged behaviour, the "never flagged twice" ledger) is kept whole.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from analytics_pipelines.warehouse.base import Warehouse

SCORES, SCORES_DAILY = "fraud_scores", "fraud_scores_daily"
METRICS, METRICS_DAILY = "fraud_metrics_hourly", "fraud_metrics_daily"
LEVELS = ("low", "medium", "high", "critical")


def scores_daily(df: pl.DataFrame, flag_score: float) -> pl.DataFrame:
    """fraud_scores rows -> one row per tenant, venue and day (pure)."""
    return (
        df.group_by("tenant_id", "venue_id", "day")
        .agg(
            pl.len().cast(pl.Int64).alias("user_days"),
            (pl.col("risk_score") >= flag_score).sum().cast(pl.Int64).alias("flagged_user_days"),
            *((pl.col("risk_level") == lvl).sum().cast(pl.Int64).alias(f"level_{lvl}") for lvl in LEVELS),
            pl.col("risk_score").cast(pl.Float64).mean().alias("mean_risk_score"),
            pl.col("risk_score").cast(pl.Float64).max().alias("max_risk_score"),
            (pl.col("risk_score") < flag_score).sum().cast(pl.Int64).alias("rows_compacted"),
        )
        .sort("day", "tenant_id", "venue_id")
    )


def metrics_daily(df: pl.DataFrame) -> pl.DataFrame:
    """fraud_metrics_hourly rows -> one row per tenant, venue and day (pure); fraud_pct = flagged / orders."""
    return (
        df.group_by("tenant_id", "venue_id", "day")
        .agg(
            pl.col("orders").sum().cast(pl.Int64),
            pl.col("flagged_orders").sum().cast(pl.Int64),
            pl.len().cast(pl.Int64).alias("hours_compacted"),
        )
        .with_columns(
            pl.when(pl.col("orders") > 0)
            .then(pl.col("flagged_orders") * 100.0 / pl.col("orders"))
            .otherwise(0.0)
            .alias("fraud_pct")
        )
        .sort("day", "tenant_id", "venue_id")
    )


def _days(df: pl.DataFrame) -> list[str]:
    return sorted({d.isoformat() for d in df["day"].unique().to_list()})


def compact(wh: Warehouse, now: datetime, days: int, flag_score: float) -> dict:
    """Compact fraud history older than (today - days); returns what it did."""
    cutoff = (now.astimezone(UTC).date() - timedelta(days=days)).isoformat()
    out: dict = {"cutoff": cutoff, "score_days": 0, "score_rows_compacted": 0, "metric_days": 0}
    tables = wh.tables()
    if SCORES in tables:
        done = set(_days(wh.read_table(SCORES_DAILY, columns=["day"]))) if SCORES_DAILY in tables else set()
        old = wh.read_table(SCORES, "day < %s", [cutoff])
        old = old.filter(~pl.col("day").cast(pl.String).is_in(list(done)))
        if old.height:
            summary = scores_daily(old, flag_score)
            keys = _days(old)
            kept = old.filter(pl.col("risk_score") >= flag_score)
            wh.write_partitions(SCORES_DAILY, summary, ["day"], [(k,) for k in keys])
            if wh.count(SCORES_DAILY, "day >= %s AND day <= %s", [keys[0], keys[-1]]) < summary.height:
                raise RuntimeError(f"{SCORES_DAILY}: not every summary row written; {SCORES} kept whole")
            wh.write_partitions(SCORES, kept, ["day"], [(k,) for k in keys])
            left = wh.count(SCORES, "day >= %s AND day <= %s", [keys[0], keys[-1]])
            if left != kept.height or int(summary["rows_compacted"].sum()) + left != old.height:
                raise RuntimeError(f"{SCORES}: {left} rows left of {old.height}, expected {kept.height}")
            out.update(
                score_days=len(keys), score_rows_compacted=old.height - kept.height, score_rows_kept=left
            )
    if METRICS in tables:
        old = wh.read_table(METRICS, "day < %s", [cutoff])
        if old.height:
            daily = metrics_daily(old)
            keys = _days(old)
            wh.write_partitions(METRICS_DAILY, daily, ["day"], [(k,) for k in keys])
            written = wh.read_table(
                METRICS_DAILY, "day < %s", [cutoff], columns=["orders", "hours_compacted"]
            )
            if int(written["hours_compacted"].sum()) < old.height:  # never drop what was not safely written
                raise RuntimeError(f"{METRICS_DAILY}: rows missing after the write; hourly rows kept")
            dropped = wh.drop_partitions(METRICS, "day", cutoff)
            out.update(
                metric_days=len(keys), metric_rows_compacted=old.height, partitions_dropped=len(dropped)
            )
    return out
