"""The hourly KPI series the detector scans: per venue and hour, the orders recognized and the completed
refunds of (hour, hour + 1 h] -- the definitions of kpi_snapshots' `hourly_orders` / `hourly_refunds`
(sql/marts/kpi_snapshots.sql), computed in bulk from the facts for the baseline's history. Every venue
hour is present (zero-filled), so a quiet hour is a 0, not a gap."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

SERIES_SCHEMA = {
    "tenant_id": pl.String,
    "venue_id": pl.String,
    "metric": pl.String,
    "hour": pl.Datetime("us", "UTC"),
    "value": pl.Float64,
}
#: metric -> (fact table, its time column)
SOURCES = {"hourly_orders": ("fct_orders", "recognized_at"), "hourly_refunds": ("fct_refunds", "refunded_at")}


def _hour_of(col: str) -> pl.Expr:
    """The snapshot hour h whose window (h, h + 1 h] holds the timestamp."""
    ts = pl.col(col).cast(pl.Datetime("us", "UTC"))
    return (ts - pl.duration(microseconds=1)).dt.truncate("1h").alias("hour")


def empty_series() -> pl.DataFrame:
    return pl.DataFrame(schema=SERIES_SCHEMA)


def hourly_series(
    facts: dict[str, pl.DataFrame],
    venues: pl.DataFrame,
    first_hour: datetime,
    last_hour: datetime,
    metrics: tuple[str, ...] = tuple(SOURCES),
) -> pl.DataFrame:
    """Zero-filled series of `metrics` for every venue (tenant_id, venue_id, optional created_at: no hours
    before it) and hour in [first_hour, last_hour]. `facts`: fct_orders / fct_refunds rows (tenant_id,
    venue_id, their time)."""
    if last_hour < first_hour or venues.is_empty():
        return empty_series()
    hours = pl.datetime_range(first_hour, last_hour, timedelta(hours=1), time_zone="UTC", eager=True)
    cols = [pl.col("tenant_id").cast(pl.String), pl.col("venue_id").cast(pl.String)]
    if "created_at" in venues.columns:  # a venue's series starts at its creation, not with zeros before it
        cols.append(pl.col("created_at").cast(pl.Datetime("us", "UTC")).dt.truncate("1h").alias("_since"))
    grid = venues.select(cols).unique(subset=["tenant_id", "venue_id"])
    grid = grid.join(pl.DataFrame({"hour": hours}), how="cross")
    if "_since" in grid.columns:
        grid = grid.filter(pl.col("_since").is_null() | (pl.col("hour") >= pl.col("_since"))).drop("_since")
    out = []
    for metric in metrics:
        table, col = SOURCES[metric]
        f = facts.get(table)
        if f is None or f.is_empty():
            counts = pl.DataFrame(
                schema={
                    "tenant_id": pl.String,
                    "venue_id": pl.String,
                    "hour": SERIES_SCHEMA["hour"],
                    "n": pl.UInt32,
                }
            )
        else:
            counts = (
                f.filter(pl.col("venue_id").is_not_null() & pl.col(col).is_not_null())
                .select(
                    pl.col("tenant_id").cast(pl.String), pl.col("venue_id").cast(pl.String), _hour_of(col)
                )
                .group_by("tenant_id", "venue_id", "hour")
                .agg(pl.len().alias("n"))
            )
        out.append(
            grid.join(counts, on=["tenant_id", "venue_id", "hour"], how="left").select(
                "tenant_id",
                "venue_id",
                pl.lit(metric).alias("metric"),
                "hour",
                pl.col("n").fill_null(0).cast(pl.Float64).alias("value"),
            )
        )
    return pl.concat(out).sort("tenant_id", "venue_id", "metric", "hour")


def read_series(wh, first_hour: datetime, last_hour: datetime, metrics: tuple[str, ...]) -> pl.DataFrame:
    """hourly_series over the warehouse's facts (days first_hour - 1 .. last_hour + 1)."""
    lo = (first_hour - timedelta(days=1)).date().isoformat()
    hi = (last_hour + timedelta(days=1)).date().isoformat()
    tables = wh.tables()
    facts = {}
    for metric in metrics:
        table, col = SOURCES[metric]
        if table in tables:
            facts[table] = wh.read_partitions(table, "day", lo, hi, columns=["tenant_id", "venue_id", col])
    venues = (
        wh.read_table("stg_venues", columns=["tenant_id", "id", "created_at"]).rename({"id": "venue_id"})
        if "stg_venues" in tables
        else pl.DataFrame(schema={"tenant_id": pl.String, "venue_id": pl.String})
    )
    return hourly_series(facts, venues, first_hour, last_hour, metrics)
