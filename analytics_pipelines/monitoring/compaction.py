"""Retention of the 5-minute velocity history: days older than TT_VELOCITY_COMPACT_AFTER_DAYS are compacted
into `sales_velocity_hourly` (per event and hour), then their 5-minute partitions are dropped. Nothing is
deleted before its hourly rows are written, and a day is compacted from all of its 5-minute rows at once (a
re-run finds nothing left to compact and changes nothing)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from analytics_pipelines.monitoring.inputs import TS
from analytics_pipelines.warehouse.base import Warehouse

SOURCE, TARGET = "sales_velocity", "sales_velocity_hourly"


def hourly(df: pl.DataFrame) -> pl.DataFrame:
    """5-minute rows -> one row per event and hour (pure)."""
    return (
        df.sort("event_id", "bucket_start")
        .with_columns(pl.col("bucket_start").dt.truncate("1h").alias("hour"))
        .group_by("tenant_id", "venue_id", "event_id", "hour", maintain_order=True)
        .agg(
            pl.col("day").first(),
            pl.col("tickets").sum(),
            pl.col("per_minute_5m").max().alias("peak_per_minute_5m"),
            (pl.col("tickets").sum() / 60.0).alias("per_minute_60m"),
            pl.col("tickets_sold").last(),
            pl.col("capacity").last(),
            pl.col("remaining").last(),
            pl.col("high_velocity").any(),
            pl.col("sellout_imminent").any(),
            pl.col("sold_out").any(),
            pl.len().cast(pl.Int64).alias("buckets_compacted"),
        )
        .with_columns(pl.col("hour").cast(TS))
    )


def compact(wh: Warehouse, now: datetime, days: int) -> dict:
    """Compact every day of sales_velocity before (today - days); returns what it did."""
    if SOURCE not in wh.tables():
        return {"days_compacted": 0, "rows_compacted": 0, "hourly_rows": 0}
    cutoff = (now.astimezone(UTC).date() - timedelta(days=days)).isoformat()
    old = wh.read_table(SOURCE, "day < %s", [cutoff])
    if old.is_empty():
        return {"days_compacted": 0, "rows_compacted": 0, "hourly_rows": 0, "cutoff": cutoff}
    out = hourly(old)
    keys = sorted({d.isoformat() for d in old["day"].unique().to_list()})
    wh.write_partitions(TARGET, out, ["day"], [(k,) for k in keys])
    written = wh.count(TARGET, "day < %s", [cutoff])
    if written < out.height:  # never drop what was not safely written
        raise RuntimeError(f"{TARGET}: {written} rows after writing {out.height}; 5-minute rows kept")
    dropped = wh.drop_partitions(SOURCE, "day", cutoff)
    return {
        "days_compacted": len(keys),
        "rows_compacted": old.height,
        "hourly_rows": out.height,
        "partitions_dropped": len(dropped),
        "cutoff": cutoff,
    }
