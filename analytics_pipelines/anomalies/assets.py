"""Builders and checks of `kpi_baselines` and `kpi_anomalies` (registry/monitoring.py).

kpi_anomalies (hourly partitions, like kpi_snapshots): the hours of the run are scored with the values
kpi_snapshots holds for them (`hourly_orders`, `hourly_refunds` per venue) against weekday x hour baselines
fitted on the history before each hour's week (the same series re-derived in bulk from the facts: kpi_snapshots
keeps only the hours that were snapshotted). A check proves the two agree on the run's hours.
kpi_baselines (a whole table): the baselines of the current week (the week of the clock's last full hour),
persisted; the hourly runs of that week score with exactly these numbers (a check re-derives them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from analytics_pipelines.anomalies import detector as D
from analytics_pipelines.anomalies.series import read_series
from analytics_pipelines.marts.reconcile import CheckOutcome
from analytics_pipelines.registry.context import BuildContext, Built, md_table

ANOMALY_SCHEMA = {
    "hour_key": pl.String,
    "tenant_id": pl.String,
    "venue_id": pl.String,
    "metric": pl.String,
    "hour": pl.Datetime("us", "UTC"),
    "value": pl.Float64,
    "baseline": pl.Float64,
    "scale": pl.Float64,
    "mad": pl.Float64,
    "score": pl.Float64,
    "severity": pl.String,
    "direction": pl.String,
    "window_hours": pl.Int32,
    "window_value": pl.Float64,
    "n_weeks": pl.Int32,
    "alerting": pl.Boolean,
    "detector_version": pl.String,
}


def hour_of(key: str) -> datetime:
    return datetime.strptime(key, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC)


def _history_start(first: datetime, weeks: int, windows: tuple[int, ...]) -> datetime:
    # the baseline of first's week looks back `weeks` whole weeks; the longest window needs its hours too
    monday = (first - timedelta(days=first.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    return monday - timedelta(weeks=weeks, hours=max(windows))


def kpi_snapshot_values(wh, first: datetime, last: datetime, metrics: tuple[str, ...]) -> pl.DataFrame:
    """Venue rows of the hourly metrics kpi_snapshots holds for [first, last]."""
    if "kpi_snapshots" not in wh.tables():
        return pl.DataFrame(
            schema={
                "tenant_id": pl.String,
                "venue_id": pl.String,
                "metric": pl.String,
                "hour": pl.Datetime("us", "UTC"),
                "value": pl.Float64,
            }
        )
    kp = wh.read_table(
        "kpi_snapshots",
        "snapshot_hour >= %s AND snapshot_hour <= %s AND venue_id IS NOT NULL",
        [first, last],
        columns=["snapshot_hour", "tenant_id", "venue_id", "metric", "value"],
    )
    return kp.filter(pl.col("metric").is_in(list(metrics))).select(
        pl.col("tenant_id").cast(pl.String),
        pl.col("venue_id").cast(pl.String),
        pl.col("metric").cast(pl.String),
        pl.col("snapshot_hour").cast(pl.Datetime("us", "UTC")).alias("hour"),
        pl.col("value").cast(pl.Float64),
    )


def score_range(wh, cfg, first: datetime, last: datetime) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(scores of every venue series and hour in [first, last], the baselines of last's week, the
    kpi_snapshots values used for the scored hours)."""
    history = read_series(wh, _history_start(first, cfg.baseline_weeks, cfg.windows), last, cfg.metrics)
    snap = kpi_snapshot_values(wh, first, last, cfg.metrics)
    keys = ["tenant_id", "venue_id", "metric", "hour"]
    series = history.join(snap.rename({"value": "_snap"}), on=keys, how="left").with_columns(
        pl.coalesce("_snap", "value").alias("value")
    )
    scored, baselines = D.detect(series.drop("_snap"), cfg, first, last)
    return scored, baselines, snap


def to_anomalies(scored: pl.DataFrame, cfg) -> pl.DataFrame:
    rank = {s: i for i, s in enumerate(D.SEVERITIES)}
    out = scored.filter(pl.col("severity").is_not_null()).with_columns(
        pl.col("hour").dt.strftime("%Y-%m-%d-%H:%M").alias("hour_key"),
        pl.when(pl.col("score") > 0).then(pl.lit("up")).otherwise(pl.lit("down")).alias("direction"),
        (pl.col("severity").replace_strict(rank, return_dtype=pl.Int8) >= rank[cfg.alert_severity]).alias(
            "alerting"
        ),
        pl.lit(D.DETECTOR_VERSION).alias("detector_version"),
    )
    return (
        out.select(list(ANOMALY_SCHEMA)).cast(ANOMALY_SCHEMA).sort("hour", "tenant_id", "venue_id", "metric")
    )


def kpi_anomalies(ctx: BuildContext) -> Built:
    cfg = ctx.settings.anomaly
    first, last = hour_of(ctx.first), hour_of(ctx.last)
    scored, baselines, snap = score_range(ctx.wh, cfg, first, last)
    anomalies = to_anomalies(scored, cfg)
    scorable = scored.filter(pl.col("score").is_not_null()).height
    return Built(
        {"kpi_anomalies": anomalies},
        metadata={
            "hours_scored": len(ctx.partition_keys),
            "series_hours": scored.height,
            "scorable_series_hours": scorable,
            "not_scorable_reason": "fewer than "
            f"{cfg.min_weeks} weeks of history for {scored.height - scorable} series-hours",
            "by_severity": md_table(
                anomalies.group_by("metric", "severity").len().sort("metric", "severity"), 20
            ),
        },
        extras={"scored": scored, "snap": snap},
    )


def kpi_baselines(ctx: BuildContext) -> pl.DataFrame:
    """The baselines of the week of the last full hour before the clock."""
    cfg = ctx.settings.anomaly
    last = ctx.now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    history = read_series(ctx.wh, _history_start(last, cfg.baseline_weeks, cfg.windows), last, cfg.metrics)
    _, baselines = D.detect(history, cfg, last, last)
    return baselines.with_columns(
        pl.lit(D.DETECTOR_VERSION).alias("detector_version"),
        pl.lit(ctx.now).cast(pl.Datetime("us", "UTC")).alias("fitted_at"),
    )


# -- checks ------------------------------------------------------------------------------------------
def check_anomalies(ctx: BuildContext, built: Built) -> CheckOutcome:
    """Scored values equal kpi_snapshots' on every snapshotted hour; no NaN; severities agree with the
    documented thresholds; every row carries a baseline and a positive scale."""
    cfg = ctx.settings.anomaly
    df, scored, snap = built.frames["kpi_anomalies"], built.extras["scored"], built.extras["snap"]
    keys = ["tenant_id", "venue_id", "metric", "hour"]
    series = read_series(ctx.wh, hour_of(ctx.first), hour_of(ctx.last), cfg.metrics)
    both = snap.join(series, on=keys, how="inner", suffix="_facts")
    mismatched = both.filter((pl.col("value") - pl.col("value_facts")).abs() > 1e-9)
    nan = sum(df[c].is_nan().sum() for c in ("value", "baseline", "scale", "score") if df.height)
    bad_scale = df.filter(
        pl.col("scale").is_null() | (pl.col("scale") <= 0) | pl.col("baseline").is_null()
    ).height
    expected = D.severity_of(pl.col("score").abs(), cfg.thresholds)
    wrong_sev = df.filter(pl.col("severity") != df.select(expected).to_series()).height if df.height else 0
    passed = mismatched.is_empty() and nan == 0 and bad_scale == 0 and wrong_sev == 0
    return CheckOutcome(
        passed,
        {
            "snapshot_values_compared": both.height,
            "snapshot_values_mismatched": mismatched.height,
            "nan_values": int(nan),
            "rows_without_baseline": bad_scale,
            "wrong_severity": wrong_sev,
            "scored_series_hours": scored.height,
        },
        mismatched.head(20) if mismatched.height else None,
    )


def check_baselines(ctx: BuildContext, built: Built) -> CheckOutcome:
    """One baseline per series, window and weekday x hour; fitted rows have a median, a MAD >= 0 and a
    scale >= 1 (the floor); rows with too little history say so and carry no numbers; no NaN."""
    df = built.frames["kpi_baselines"]
    fitted = df.filter(pl.col("status") == "fitted")
    bad = fitted.filter(
        pl.col("baseline").is_null() | (pl.col("mad") < 0) | (pl.col("scale") < 1) | pl.col("scale").is_nan()
    ).height
    unfit_with_numbers = df.filter((pl.col("status") != "fitted") & pl.col("baseline").is_not_null()).height
    slots = df.group_by("tenant_id", "venue_id", "metric", "window_hours").len()
    incomplete = slots.filter(pl.col("len") != D.WEEK).height
    return CheckOutcome(
        bad == 0 and unfit_with_numbers == 0 and incomplete == 0,
        {
            "rows": df.height,
            "fitted": fitted.height,
            "insufficient_history": df.height - fitted.height,
            "invalid_fitted": bad,
            "unfitted_with_numbers": unfit_with_numbers,
            "series_without_168_slots": incomplete,
        },
    )
