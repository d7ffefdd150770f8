"""The monitoring tables' builders and checks (registry/monitoring.py names them): thin wrappers that read the
warehouse, call the pure functions of velocity.py / sellout.py / curves.py and say what they left out."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import polars as pl

from analytics_pipelines.marts.reconcile import CheckOutcome
from analytics_pipelines.monitoring import calibration as K
from analytics_pipelines.monitoring import curves as C
from analytics_pipelines.monitoring import sellout as S
from analytics_pipelines.monitoring import velocity as V
from analytics_pipelines.monitoring import velocity_anomalies as VA
from analytics_pipelines.monitoring.inputs import TS, load_events, load_sales, sold_before
from analytics_pipelines.registry.context import BuildContext, Built, md_table


# -- sales_velocity --------------------------------------------------------------------------------------
def sales_velocity(ctx: BuildContext) -> Built:
    start, end = V.window(ctx.first, ctx.last, ctx.now)
    lo = start - V.LOOKBACK
    sales = load_sales(ctx.wh, lo, end)
    df, left_out = V.velocity(
        sales, load_events(ctx.wh), sold_before(ctx.wh, lo), start, end, ctx.settings.velocity
    )
    return Built(
        {"sales_velocity": df},
        metadata={
            **left_out,
            "buckets_through": (end.isoformat() if end > start else "none"),
            "events": df["event_id"].n_unique(),
            "high_velocity_rows": int(df["high_velocity"].sum()),
            "sellout_imminent_rows": int(df["sellout_imminent"].sum()),
        },
        extras={"left_out": left_out, "start": start, "end": end},
    )


def check_velocity(ctx: BuildContext, built: Built) -> CheckOutcome:
    """Every sale of the window is in a bucket or counted as left out (an independent count of the staged
    tickets); rates >= 0 and finite; remaining within [0, capacity] or NULL with a capacity reason; tickets
    sold never decrease within an event; trends from the three values."""
    df = built.frames["sales_velocity"]
    left, start, end = built.extras["left_out"], built.extras["start"], built.extras["end"]
    staged = load_sales(ctx.wh, start, end).height if end > start else 0
    accounted = int(df["tickets"].sum() or 0) + left["sales_of_unknown_events"] + left["sales_off_sale"]
    rates = ["per_minute_5m", "per_minute_15m", "per_minute_60m", "acceleration", "eta_linear_minutes"]
    not_finite = df.filter(pl.any_horizontal(~pl.col(c).is_finite() for c in rates)).height
    negative = df.filter(pl.any_horizontal(pl.col(c) < 0 for c in rates[:3])).height
    bad_remaining = df.filter(
        (pl.col("remaining").is_not_null() & ~pl.col("remaining").is_between(0, pl.col("capacity")))
        | (pl.col("remaining").is_null() & pl.col("capacity_reason").is_null())
    ).height
    decreasing = (
        df.sort("event_id", "bucket_start").filter(pl.col("tickets_sold").diff().over("event_id") < 0).height
    )
    bad_trend = df.filter(~pl.col("trend").is_in(V.TRENDS)).height
    passed = staged == accounted and not (not_finite or negative or bad_remaining or decreasing or bad_trend)
    return CheckOutcome(
        passed,
        {
            "staged_sales": staged,
            "accounted_sales": accounted,
            "not_finite_rows": not_finite,
            "negative_rate_rows": negative,
            "remaining_out_of_range": bad_remaining,
            "tickets_sold_decreasing": decreasing,
            "unknown_trend": bad_trend,
        },
    )


# -- sellout_curves (+ sellout_calibration, sellout_model_performance): daily --------------------------------
def sellout_model(ctx: BuildContext) -> Built:
    """The daily model refresh: the curve library (every event sold out before now), its out-of-time backtest
    against the seed's linear rule and the interval calibration. A library worse than the linear rule at 50 %
    sold is not stored (the previous library and calibration stay; the performance rows say why)."""
    events = load_events(ctx.wh)
    sales = load_sales(ctx.wh, None, ctx.now)
    library = C.curves(sales, events)
    digest = hashlib.sha256(
        "|".join(f"{e}:{t}" for e, t in zip(library["event_id"], library["sellout_at"], strict=True)).encode()
    ).hexdigest()[:12]
    version = f"{C.MODEL}-{C.VERSION}-{digest}"
    bt = S.backtest(library, sales)
    scores = S.score(bt)
    coverage = K.holdout_coverage(bt)
    window = (
        f"{library['t0'].min()}..{library['sellout_at'].max()} ({library.height} sold-out curves)"
        if library.height
        else "no sold-out curves"
    )
    perf = S.performance_rows(scores, version, ctx.now, window, coverage)
    mid = scores[0.5]
    evaluable = mid["n"] >= S.MIN_BACKTEST
    beats = evaluable and mid["model_mae"] <= mid["linear_mae"]
    frames = {"sellout_model_performance": perf}
    already: tuple[str, ...] = ()
    if beats or not evaluable or "sellout_curves" not in ctx.wh.tables():
        frames["sellout_curves"] = C.to_table(library, version, ctx.now)
        frames["sellout_calibration"] = K.calibration_frame(bt).with_columns(
            pl.lit(version).alias("model_version"), pl.lit(ctx.now).cast(TS).alias("trained_at")
        )
    else:  # worse than the linear rule: the stored library and calibration stay (the check fails, says so)
        frames["sellout_curves"] = ctx.wh.read_table("sellout_curves")
        frames["sellout_calibration"] = ctx.wh.read_table("sellout_calibration")
        already = ("sellout_curves", "sellout_calibration")
    headline = pl.DataFrame(
        [
            (
                f"{int(f * 100)} %",
                s["n"],
                s["model_mae"],
                s["linear_mae"],
                s["coverage"],
                coverage[f"{int(f * 100)}%_sold"]["coverage"],
            )
            for f, s in scores.items()
        ],
        schema=[
            "sold",
            "checkpoints",
            "model_mae_min",
            "linear_mae_min",
            "neighbours_p10_p90_coverage",
            "calibrated_80_coverage_out_of_time",
        ],
        orient="row",
    )
    return Built(
        frames,
        already_written=already,
        metadata={
            "model_version": version,
            "sold_out_curves": library.height,
            "backtest": md_table(headline),
            "calibrated_80_coverage_out_of_time": coverage[K.POOLED]["coverage"],
            "kept_previous_library": bool(already),
        },
        extras={"scores": scores, "evaluable": evaluable, "beats": beats, "kept": bool(already)},
    )


# -- sellout_forecast: every 5 minutes, reads the stored library -------------------------------------------
def sellout_forecast(ctx: BuildContext) -> Built:
    """The ETA of every event on sale now from the stored library and calibration (sellout_curves: built
    daily by sellout_model_job; never rebuilt here). No stored library yet: every ETA row says so."""
    events = load_events(ctx.wh)
    sales = load_sales(ctx.wh, None, ctx.now)
    tables = ctx.wh.tables()
    stored = ctx.wh.read_table("sellout_curves") if "sellout_curves" in tables else None
    library = C.from_table(stored) if stored is not None else pl.DataFrame(schema=C.LIBRARY_SCHEMA)
    version = (
        stored["model_version"][0]
        if stored is not None and stored.height
        else f"{C.MODEL}-{C.VERSION}-no-library"
    )
    calibration = ctx.wh.read_table("sellout_calibration") if "sellout_calibration" in tables else None
    trained_at = stored["trained_at"][0] if stored is not None and stored.height else None
    fc = S.forecast(
        library,
        sales,
        events,
        ctx.now,
        version,
        ctx.settings.velocity.imminent_minutes,
        calibration,
        trained_at,
    )
    return Built(
        {"sellout_forecast": fc},
        metadata={
            "model_version": version,
            "library_curves": library.height,
            "forecast_rows": fc.height,
            "with_eta": int(fc["eta_minutes_p50"].is_not_null().sum()),
            "calibrated_rows": int((fc["interval_method"] == K.METHOD).sum()),
        },
    )


def check_beats_linear(ctx: BuildContext, built: Built) -> CheckOutcome:
    """Backtest median absolute ETA error at 50 % sold: the model's <= the seed's linear rule's."""
    s = built.extras["scores"]
    meta = {
        f"{k}_{int(f * 100)}": (round(v[k], 2) if isinstance(v[k], float) else v[k])
        for f, v in s.items()
        for k in ("n", "model_mae", "linear_mae")
    }
    meta["kept_previous_library"] = built.extras["kept"]
    if not built.extras["evaluable"]:
        return CheckOutcome(
            True,
            meta,
            skipped="fewer than 5 backtest checkpoints at 50 % sold (sold-out events with 3 earlier sell-outs)",
        )
    return CheckOutcome(built.extras["beats"], meta)


def check_forecast(ctx: BuildContext, built: Built) -> CheckOutcome:
    """sellout_forecast: one row per event; an ETA or a reason on every row (never both missing); intervals
    ordered p10 <= p50 <= p90, ETAs >= 0 and finite; fractions within [0, 1] unless the row says sold out."""
    df = built.frames["sellout_forecast"]
    eta = ["eta_minutes_p10", "eta_minutes_p50", "eta_minutes_p90", "eta_linear_minutes", "fraction_sold"]
    no_answer = df.filter(pl.col("eta_minutes_p50").is_null() & pl.col("reason").is_null()).height
    unordered = df.filter(
        (pl.col("eta_minutes_p10") > pl.col("eta_minutes_p50"))
        | (pl.col("eta_minutes_p50") > pl.col("eta_minutes_p90"))
    ).height
    bad = df.filter(pl.any_horizontal((~pl.col(c).is_finite()) | (pl.col(c) < 0) for c in eta)).height
    dup = df.height - df["event_id"].n_unique()
    return CheckOutcome(
        not (no_answer or unordered or bad or dup),
        {
            "rows": df.height,
            "no_eta_no_reason": no_answer,
            "unordered": unordered,
            "bad_values": bad,
            "duplicate_events": dup,
        },
    )


# -- velocity_anomalies: hourly, today's partition ---------------------------------------------------------
def velocity_anomalies(ctx: BuildContext) -> Built:
    """Anomalous hours of the venues' tickets-per-hour series in the run's days (up to the last complete
    hour), against their robust weekday x hour baselines (monitoring/velocity_anomalies.py)."""
    cfg = ctx.settings.anomaly
    first = datetime.fromisoformat(str(ctx.first)).replace(tzinfo=UTC)
    day_end = datetime.fromisoformat(str(ctx.last)).replace(tzinfo=UTC) + timedelta(hours=23)
    last = min(day_end, ctx.now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1))
    if last < first:
        df = pl.DataFrame(schema=VA.ANOMALY_SCHEMA)
    else:
        sales = load_sales(ctx.wh, VA.history_start(first, cfg), last + timedelta(hours=1))
        df = VA.detect(sales, load_events(ctx.wh), cfg, first, last)
    return Built(
        {"velocity_anomalies": df},
        metadata={
            "scored_through": last.isoformat() if last >= first else "none",
            "anomalous_hours": df.height,
            "alerting_hours": int(df["alerting"].sum()),
            "venues": df["venue_id"].n_unique(),
        },
    )


def check_velocity_anomalies(ctx: BuildContext, built: Built) -> CheckOutcome:
    """Every row has a baseline, a positive scale, a finite score and the severity its |score| gives."""
    from analytics_pipelines.anomalies.detector import severity_of

    df = built.frames["velocity_anomalies"]
    cfg = ctx.settings.anomaly
    no_baseline = df.filter(pl.col("baseline").is_null() | ~(pl.col("scale") > 0)).height
    not_finite = df.filter(~pl.col("score").is_finite() | ~pl.col("value").is_finite()).height
    wrong = df.filter(severity_of(pl.col("score").abs(), cfg.thresholds) != pl.col("severity")).height
    return CheckOutcome(
        not (no_baseline or not_finite or wrong),
        {"rows": df.height, "no_baseline": no_baseline, "not_finite": not_finite, "wrong_severity": wrong},
    )
