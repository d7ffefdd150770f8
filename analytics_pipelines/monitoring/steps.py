"""The monitoring tables' builders and checks (registry/monitoring.py names them): thin wrappers that read the
warehouse, call the pure functions of velocity.py / sellout.py / curves.py and say what they left out."""

from __future__ import annotations

import hashlib

import polars as pl

from analytics_pipelines.marts.reconcile import CheckOutcome
from analytics_pipelines.monitoring import calibration as K
from analytics_pipelines.monitoring import curves as C
from analytics_pipelines.monitoring import sellout as S
from analytics_pipelines.monitoring import velocity as V
from analytics_pipelines.monitoring.inputs import load_events, load_sales, sold_before
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


# -- sellout_forecast + sellout_model_performance ---------------------------------------------------------
def sellout_forecast(ctx: BuildContext) -> Built:
    events = load_events(ctx.wh)
    sales = load_sales(ctx.wh, None, ctx.now)
    library = C.curves(sales, events)
    digest = hashlib.sha256(
        "|".join(f"{e}:{t}" for e, t in zip(library["event_id"], library["sellout_at"], strict=True)).encode()
    ).hexdigest()[:12]
    version = f"{C.MODEL}-{C.VERSION}-{digest}"
    bt = S.backtest(library, sales)
    scores = S.score(bt)
    window = (
        f"{library['t0'].min()}..{library['sellout_at'].max()} ({library.height} sold-out curves)"
        if library.height
        else "no sold-out curves"
    )
    coverage = K.holdout_coverage(bt)
    calibration = K.calibration_frame(bt)
    perf = S.performance_rows(scores, version, ctx.now, window, coverage)
    mid = scores[0.5]
    evaluable = mid["n"] >= S.MIN_BACKTEST
    beats = evaluable and mid["model_mae"] <= mid["linear_mae"]
    frames = {"sellout_model_performance": perf}
    already: tuple[str, ...] = ()
    if beats or not evaluable or "sellout_forecast" not in ctx.wh.tables():
        frames["sellout_forecast"] = S.forecast(
            library, sales, events, ctx.now, version, ctx.settings.velocity.imminent_minutes, calibration
        )
    else:  # worse than the linear rule: the stored forecast stays (the check fails and says so)
        frames["sellout_forecast"] = ctx.wh.read_table("sellout_forecast")
        already = ("sellout_forecast",)
    fc = frames["sellout_forecast"]
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
            "forecast_rows": fc.height,
            "with_eta": int(fc["eta_minutes_p50"].is_not_null().sum()),
            "kept_previous_forecast": bool(already),
        },
        extras={"scores": scores, "evaluable": evaluable, "beats": beats, "kept": bool(already)},
    )


def check_beats_linear(ctx: BuildContext, built: Built) -> CheckOutcome:
    """Backtest median absolute ETA error at 50 % sold: the model's <= the seed's linear rule's."""
    s = built.extras["scores"]
    meta = {
        f"{k}_{int(f * 100)}": (round(v[k], 2) if isinstance(v[k], float) else v[k])
        for f, v in s.items()
        for k in ("n", "model_mae", "linear_mae")
    }
    meta["kept_previous_forecast"] = built.extras["kept"]
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
