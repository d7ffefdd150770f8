"""Sales velocity per event at 5-minute grain (the old sales tracker's numbers, persisted as history).

Per event and 5-minute bucket (UTC, `bucket_start` .. +5 min) with a sale in the trailing 60 minutes, while
the event is on sale (before its sale end, before a cancellation, up to the bucket that sold the last seat):
tickets in the bucket; tickets per minute over the last 5, 15 and 60 minutes; acceleration = per_minute_5m -
per_minute_15m (the seed's "velocity - velocity10" at this grain); trend from the mean acceleration of the
last three buckets (> +t accelerating, < -t decelerating, else steady; t = 0.5 as in the seed); tickets sold
so far, capacity and remaining (NULL when the capacity is unknown or 0, with `capacity_reason`);
high_velocity (per_minute_5m above the threshold, 10/min) and sellout_imminent (remaining / per_minute_15m
within the imminent horizon, 60 min: the linear flag; the model's ETA is sellout_forecast's).

Only complete buckets are written (bucket_start + 5 min <= now). Pure polars, vectorised: the trailing windows
come from exploding each bucket's count over the 12 buckets it belongs to, never from a loop over rows.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl

from analytics_pipelines.monitoring.inputs import EVENT_SCHEMA, TS
from analytics_pipelines.settings import VelocitySettings

BUCKET = timedelta(minutes=5)
LOOKBACK = timedelta(minutes=55)  # the trailing 60 minutes of a bucket start 55 minutes before it
TRENDS = ("accelerating", "steady", "decelerating")

SCHEMA = {
    "tenant_id": pl.String,
    "venue_id": pl.String,
    "event_id": pl.String,
    "bucket_start": TS,
    "day": pl.Date,
    "tickets": pl.Int64,
    "per_minute_5m": pl.Float64,
    "per_minute_15m": pl.Float64,
    "per_minute_60m": pl.Float64,
    "acceleration": pl.Float64,
    "tickets_sold": pl.Int64,
    "capacity": pl.Int64,
    "remaining": pl.Int64,
    "trend": pl.String,
    "high_velocity": pl.Boolean,
    "sellout_imminent": pl.Boolean,
    "sold_out": pl.Boolean,
    "oversold": pl.Boolean,
    "eta_linear_minutes": pl.Float64,
    "capacity_reason": pl.String,
}


def floor5(ts: datetime) -> datetime:
    ts = ts.astimezone(UTC)
    return ts.replace(minute=ts.minute - ts.minute % 5, second=0, microsecond=0)


def day_start(day: str | date) -> datetime:
    d = date.fromisoformat(day) if isinstance(day, str) else day
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def window(first: str, last: str, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the buckets a run over days first..last writes at `now` (complete buckets only)."""
    start = day_start(first)
    end = min(day_start(last) + timedelta(days=1), floor5(now))
    return start, max(start, end)


def _spread(frame: pl.DataFrame, value: str, n: int, out: str) -> pl.DataFrame:
    """Each (event, bucket) row's value copied onto the n buckets whose trailing window holds it, with k =
    how many buckets back it lies."""
    return (
        frame.select("event_id", "bucket_start", value)
        .with_columns(pl.lit(list(range(n)), pl.List(pl.Int64)).alias("k"))
        .explode("k", empty_as_null=True)
        .with_columns((pl.col("bucket_start") + pl.duration(minutes=5 * pl.col("k"))).alias(out))
    )


def velocity(
    sales: pl.DataFrame,
    events: pl.DataFrame,
    sold_before: pl.DataFrame,
    start: datetime,
    end: datetime,
    settings: VelocitySettings | None = None,
) -> tuple[pl.DataFrame, dict]:
    """The velocity rows of buckets in [start, end) and what was left out (counts, never silent).

    sales: event_id, created_at (at least [start - 55 min, end)); sold_before: event_id, sold_before = tickets
    sold before start - 55 min; events: monitoring.inputs.event_windows()."""
    vs = settings or VelocitySettings()
    lo = start - LOOKBACK
    events = events.cast(EVENT_SCHEMA)
    s = sales.select(pl.col("event_id").cast(pl.String), pl.col("created_at").cast(TS))
    s = s.filter(pl.col("created_at").is_not_null())
    s = s.filter((pl.col("created_at") >= lo) & (pl.col("created_at") < end))
    counts = (
        s.with_columns(pl.col("created_at").dt.truncate("5m").alias("bucket_start"))
        .group_by("event_id", "bucket_start")
        .agg(pl.len().cast(pl.Int64).alias("n"))
        .sort("event_id", "bucket_start")
    )
    spread = _spread(counts, "n", 12, "target")
    windows = (
        spread.group_by("event_id", "target")
        .agg(
            pl.col("n").filter(pl.col("k") == 0).sum().alias("tickets"),
            pl.col("n").filter(pl.col("k") < 3).sum().alias("t15"),
            pl.col("n").sum().alias("t60"),
        )
        .rename({"target": "bucket_start"})
        .filter((pl.col("bucket_start") >= start - 2 * BUCKET) & (pl.col("bucket_start") < end))
    )
    cum = counts.with_columns(pl.col("n").cum_sum().over("event_id").alias("cum")).select(
        "event_id", pl.col("bucket_start").alias("cum_at"), "cum"
    )
    rows = (
        windows.sort("bucket_start")
        .join_asof(
            cum.sort("cum_at"),
            left_on="bucket_start",
            right_on="cum_at",
            by="event_id",
            check_sortedness=False,  # both sorted by time above; polars cannot verify it within groups
        )
        .join(sold_before, on="event_id", how="left")
        .join(events, on="event_id", how="left")
        .with_columns(
            (pl.col("sold_before").fill_null(0) + pl.col("cum").fill_null(0)).alias("tickets_sold"),
            (pl.col("tickets") / 5.0).alias("per_minute_5m"),
            (pl.col("t15") / 15.0).alias("per_minute_15m"),
            (pl.col("t60") / 60.0).alias("per_minute_60m"),
        )
        .with_columns((pl.col("per_minute_5m") - pl.col("per_minute_15m")).alias("acceleration"))
    )
    # the trend: mean acceleration of this bucket and the two before (a bucket without rows has none: 0)
    acc = _spread(rows, "acceleration", 3, "target")
    trend = (
        acc.group_by("event_id", "target")
        .agg((pl.col("acceleration").sum() / 3.0).alias("mean_acc"))
        .rename({"target": "bucket_start"})
    )
    rows = rows.join(trend, on=["event_id", "bucket_start"], how="left")
    unknown = rows.filter(pl.col("tenant_id").is_null() & (pl.col("bucket_start") >= start))
    rows = rows.filter(pl.col("tenant_id").is_not_null())
    # on sale: before the sale end and a cancellation, up to the bucket that sold the last seat
    sold_out_at = (
        rows.filter(pl.col("capacity").is_not_null() & (pl.col("tickets_sold") >= pl.col("capacity")))
        .group_by("event_id")
        .agg(pl.col("bucket_start").min().alias("sold_out_at"))
    )
    rows = rows.join(sold_out_at, on="event_id", how="left")
    off_sale = (
        (pl.col("sale_end").is_not_null() & (pl.col("bucket_start") >= pl.col("sale_end")))
        | (pl.col("cancelled_at").is_not_null() & (pl.col("bucket_start") >= pl.col("cancelled_at")))
        | (pl.col("sold_out_at").is_not_null() & (pl.col("bucket_start") > pl.col("sold_out_at")))
    )
    rows = rows.filter(pl.col("bucket_start") >= start)
    outside = rows.filter(off_sale)
    rows = rows.filter(~off_sale)
    thr = vs.trend_threshold
    remaining = pl.max_horizontal(pl.col("capacity") - pl.col("tickets_sold"), pl.lit(0))
    eta = pl.when(pl.col("capacity").is_not_null() & (pl.col("per_minute_15m") > 0)).then(
        remaining.cast(pl.Float64) / pl.col("per_minute_15m")
    )
    out = rows.with_columns(
        pl.col("bucket_start").dt.date().alias("day"),
        pl.when(pl.col("capacity").is_not_null()).then(remaining).alias("remaining"),
        pl.when(pl.col("mean_acc") > thr)
        .then(pl.lit("accelerating"))
        .when(pl.col("mean_acc") < -thr)
        .then(pl.lit("decelerating"))
        .otherwise(pl.lit("steady"))
        .alias("trend"),
        (pl.col("per_minute_5m") > vs.high_per_minute).alias("high_velocity"),
        (pl.col("capacity").is_not_null() & (pl.col("tickets_sold") >= pl.col("capacity"))).alias("sold_out"),
        (pl.col("capacity").is_not_null() & (pl.col("tickets_sold") > pl.col("capacity"))).alias("oversold"),
        eta.alias("eta_linear_minutes"),
    ).with_columns(
        (
            pl.col("remaining").is_not_null()
            & (pl.col("remaining") > 0)
            & pl.col("eta_linear_minutes").is_not_null()
            & (pl.col("eta_linear_minutes") <= vs.imminent_minutes)
        ).alias("sellout_imminent")
    )
    out = out.select(list(SCHEMA)).cast(SCHEMA).sort("tenant_id", "event_id", "bucket_start")
    left_out = {
        "sales_of_unknown_events": int(unknown["tickets"].sum() or 0),
        "sales_off_sale": int(outside["tickets"].sum() or 0),
        "sales_in_window": int(
            s.filter((pl.col("created_at") >= start) & (pl.col("created_at") < end)).height
        ),
    }
    return out, left_out
