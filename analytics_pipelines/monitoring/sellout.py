"""Sell-out ETA per event on sale (`sellout_forecast`) and its out-of-time backtest against the seed's linear
rule (`sellout_model_performance`). The model: monitoring/curves.py.

Backtest: every event that sold out is queried at the moments it reached 25 %, 50 % and 75 % of its capacity,
with only the curves that had sold out before that moment; the truth is the time it actually took from there.
The seed's rule at the same moment: remaining / velocity, velocity = tickets in the last minute (the sales
tracker's), else over the last 10 minutes, else the last 60 (no ETA when all are 0). Median absolute errors
are compared on the checkpoints where both give an ETA.

If the model is worse than the linear rule at 50 % sold, the blocking check `beats_linear_rule` fails and the
stored forecast is left as it was (this run writes the performance rows only).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl

from analytics_pipelines.monitoring import calibration as K
from analytics_pipelines.monitoring import curves as C
from analytics_pipelines.monitoring.inputs import TS

CHECKPOINTS = (0.25, 0.5, 0.75)
MIN_FRACTION = 0.05
#: checkpoints at 50 % sold needed before the comparison with the linear rule means anything
MIN_BACKTEST = 5
STALL_HOURS = 24
FAMILY = "sellout"

FORECAST_SCHEMA = {
    "tenant_id": pl.String,
    "venue_id": pl.String,
    "event_id": pl.String,
    "as_of": TS,
    "tickets_sold": pl.Int64,
    "capacity": pl.Int64,
    "fraction_sold": pl.Float64,
    "elapsed_minutes": pl.Float64,
    "eta_minutes_p10": pl.Float64,
    "eta_minutes_p50": pl.Float64,
    "eta_minutes_p90": pl.Float64,
    "sellout_at_p10": TS,
    "sellout_at_p50": TS,
    "sellout_at_p90": TS,
    "starts_at": TS,
    "expected_before_event": pl.Boolean,
    "sellout_imminent": pl.Boolean,
    "eta_linear_minutes": pl.Float64,
    "neighbours": pl.Int64,
    "interval_method": pl.String,
    "reason": pl.String,
    "model_version": pl.String,
    "trained_at": TS,
}


def _ranked(sales: pl.DataFrame) -> pl.DataFrame:
    """Each sale with the event's running count, sorted by time (for as-of joins)."""
    return (
        sales.sort("event_id", "created_at")
        .with_columns(pl.int_range(1, pl.len() + 1).over("event_id").alias("sold"))
        .sort("created_at")
        .select("event_id", "created_at", "sold")
    )


def _rank_at(ranked: pl.DataFrame, points: pl.DataFrame, offset_minutes: float) -> pl.Series:
    """Per point (event_id, at): tickets sold at or before at - offset (0 when none)."""
    q = points.with_row_index("_i").with_columns(
        (pl.col("at") - pl.duration(seconds=int(offset_minutes * 60))).alias("_at")
    )
    joined = q.sort("_at").join_asof(
        ranked,
        left_on="_at",
        right_on="created_at",
        by="event_id",
        check_sortedness=False,  # both sides are sorted by time (above); groups make polars unable to verify
    )
    return joined.sort("_i")["sold"].fill_null(0)


def linear_eta(sales: pl.DataFrame, points: pl.DataFrame) -> pl.Series:
    """The seed's rule at each point (event_id, at, capacity): remaining / velocity (1, else 10, else 60
    minutes); NULL when nothing sold in the last hour or the capacity is unknown."""
    ranked = _ranked(sales)
    now = _rank_at(ranked, points, 0.0)
    vel = None
    for minutes in (1, 10, 60):
        v = (now - _rank_at(ranked, points, minutes)) / minutes
        vel = v if vel is None else pl.Series(np.where(vel.to_numpy() > 0, vel.to_numpy(), v.to_numpy()))
    remaining = (points["capacity"] - now).clip(0).cast(pl.Float64)
    out = np.where(vel.to_numpy() > 0, remaining.to_numpy() / np.maximum(vel.to_numpy(), 1e-9), np.nan)
    return pl.Series("eta_linear", out).fill_nan(None)


def _grid_minutes(library: pl.DataFrame, f: float) -> pl.Expr:
    """Minutes a library curve took to reach fraction f (0 for f <= 0: the on-sale)."""
    if f <= 1e-9:
        return pl.lit(0.0)
    return pl.col("grid").list.get(max(int(np.ceil(round(f * C.GRID, 9))), 1) - 1)


def backtest(library: pl.DataFrame, sales: pl.DataFrame) -> pl.DataFrame:
    """One row per sold-out event and checkpoint: truth, model ETA (+ interval) and the linear rule's ETA."""
    rows = []
    for f in CHECKPOINTS:  # three checkpoints, each vectorised over every event
        rows.append(
            library.select(
                "event_id",
                "category_id",
                "venue_id",
                "capacity",
                "t0",
                "early_velocity",
                "days_to_event",
                "sellout_minutes",
                pl.lit(f).alias("fraction"),
                _grid_minutes(library, f).alias("elapsed"),
                _grid_minutes(library, f - float(C.step(f))).alias("elapsed_a"),
                _grid_minutes(library, f - 2 * float(C.step(f))).alias("elapsed_b"),
            )
        )
    q = pl.concat(rows).with_columns(
        (pl.col("t0") + pl.duration(seconds=(pl.col("elapsed") * 60).cast(pl.Int64))).alias("as_of"),
        (pl.col("sellout_minutes") - pl.col("elapsed")).alias("truth"),
    )
    # early velocity as known at the checkpoint: the first hour, or the pace so far when less time passed
    q = q.with_columns(
        pl.when(pl.col("elapsed") >= 60)
        .then(pl.col("early_velocity"))
        .otherwise(pl.col("fraction") * 60.0 / (pl.col("elapsed") + 1.0))
        .alias("early_velocity")
    )
    pred = C.predict(library, q)
    mine = sales.join(library.select("event_id"), on="event_id")  # the sold-out events' sales only
    lin = linear_eta(mine, q.select("event_id", pl.col("as_of").alias("at"), "capacity"))
    return q.hstack(pred.drop("event_id")).with_columns(lin.alias("eta_linear"))


def score(bt: pl.DataFrame) -> dict[float, dict]:
    """Per checkpoint: median absolute errors (minutes) of the model and the linear rule on the checkpoints
    where both have an ETA, the interval's coverage and counts."""
    out = {}
    for f in CHECKPOINTS:
        part = bt.filter(pl.col("fraction") == f)
        both = part.filter(pl.col("eta_p50").is_not_null() & pl.col("eta_linear").is_not_null())
        model_err = (both["eta_p50"] - both["truth"]).abs()
        lin_err = (both["eta_linear"] - both["truth"]).abs()
        inside = both.filter(
            (pl.col("truth") >= pl.col("eta_p10")) & (pl.col("truth") <= pl.col("eta_p90"))
        ).height
        out[f] = {
            "n": both.height,
            "n_events": part.height,
            "model_mae": float(model_err.median()) if both.height else None,
            "linear_mae": float(lin_err.median()) if both.height else None,
            "coverage": inside / both.height if both.height else None,
        }
    return out


def performance_rows(
    scores: dict, version: str, trained_at: datetime, window: str, coverage: dict | None = None
) -> pl.DataFrame:
    """The backtest's rows for model_performance; `coverage` (calibration.holdout_coverage) adds the
    calibrated 80 % interval's out-of-time coverage per bucket and overall (bucket NULL)."""
    rows = []
    for f, s in scores.items():
        bucket = f"{int(f * 100)}%_sold"
        for model, metric, value in (
            (C.MODEL, "eta_median_abs_error_minutes", s["model_mae"]),
            ("seed_linear", "eta_median_abs_error_minutes", s["linear_mae"]),
            (C.MODEL, "interval_coverage_neighbours_p10_p90", s["coverage"]),
        ):
            rows.append((model, metric, bucket, value, s["n"]))
        if f == 0.5:
            rows.append((C.MODEL, "eta_median_abs_error_minutes", None, s["model_mae"], s["n"]))
            rows.append(("seed_linear", "eta_median_abs_error_minutes", None, s["linear_mae"], s["n"]))
    for bucket, c in (coverage or {}).items():
        b = None if bucket == K.POOLED else bucket
        rows.append((C.MODEL, K.COVERAGE_METRIC, b, c["coverage"], c["n"]))
    return pl.DataFrame(
        [
            (
                FAMILY,
                m,
                version if m == C.MODEL else "seed",
                trained_at,
                window,
                C.FEATURES if m == C.MODEL else "remaining, velocity (1/10/60 min)",
                "out_of_time",
                metric,
                b,
                v,
                n,
                scores.get(0.5, {}).get("linear_mae"),
            )
            for m, metric, b, v, n in rows
        ],
        schema={
            "model_family": pl.String,
            "model": pl.String,
            "model_version": pl.String,
            "trained_at": TS,
            "training_window": pl.String,
            "features": pl.String,
            "evaluation": pl.String,
            "metric": pl.String,
            "bucket": pl.String,
            "value": pl.Float64,
            "n": pl.Int64,
            "baseline_value_at_50": pl.Float64,
        },
        orient="row",
    )


def forecast(
    library: pl.DataFrame,
    sales: pl.DataFrame,
    events: pl.DataFrame,
    now: datetime,
    version: str,
    imminent_minutes: float = 60.0,
    calibration: pl.DataFrame | None = None,
    trained_at: datetime | None = None,
) -> pl.DataFrame:
    """One row per event whose sale window holds `now` (sale start <= now < the later of sale end and event
    start): the ETA with its interval, or a reason why there is none (cancelled, sold out, capacity unknown or
    0, less than 5 % sold, no sale in the last 24 hours, too few past sell-outs). `calibration`
    (calibration.fit over the backtest) widens the neighbours' p10..p90 into the calibrated 80 % interval."""
    s = sales.filter(pl.col("created_at").is_not_null() & (pl.col("created_at") < now))
    ev = events.filter(
        (pl.coalesce("sale_start", "starts_at") <= now)
        & (pl.max_horizontal(pl.col("sale_end"), pl.col("starts_at")) > now)
    )
    per = (
        s.join(ev.select("event_id"), on="event_id")
        .group_by("event_id")
        .agg(
            pl.len().cast(pl.Int64).alias("tickets_sold"),
            pl.col("created_at").min().alias("first_sale"),
            pl.col("created_at").max().alias("last_sale"),
        )
    )
    ev = ev.join(per, on="event_id", how="left").with_columns(
        pl.col("tickets_sold").fill_null(0),
        pl.min_horizontal(pl.coalesce("sale_start", "first_sale"), "first_sale").alias("t0"),
    )
    ev = ev.with_columns(pl.coalesce("t0", "sale_start").alias("t0"))
    # the sale that reached fraction - w and fraction - 2w (w = curves.step): the recent pace
    frac = pl.col("tickets_sold") / pl.col("capacity")
    w = pl.min_horizontal(pl.lit(0.1), frac / 2)
    rank_a = ((frac - w) * pl.col("capacity")).ceil().cast(pl.Int64)
    rank_b = ((frac - 2 * w) * pl.col("capacity")).ceil().cast(pl.Int64)
    ranked = (
        s.join(ev.select("event_id"), on="event_id")
        .sort("event_id", "created_at")
        .with_columns(pl.int_range(1, pl.len() + 1).over("event_id").alias("rank"))
    )
    for name, rank in (("a_at", rank_a), ("b_at", rank_b)):  # rank < 1: the on-sale itself (t0)
        ev = ev.join(
            ev.select("event_id", rank.alias("rank"))
            .join(ranked, on=["event_id", "rank"])
            .select("event_id", pl.col("created_at").alias(name)),
            on="event_id",
            how="left",
        ).with_columns(pl.coalesce(name, "t0").alias(name))
    first_hour = (
        ranked.join(ev.select("event_id", "t0"), on="event_id")
        .filter(pl.col("created_at") < pl.col("t0") + pl.duration(hours=1))
        .group_by("event_id")
        .agg(pl.len().alias("first_hour"))
    )
    minutes = lambda a, b: (pl.col(a) - pl.col(b)).dt.total_seconds() / 60.0  # noqa: E731
    ev = ev.join(first_hour, on="event_id", how="left").with_columns(pl.lit(now).cast(TS).alias("as_of"))
    ev = ev.with_columns(
        pl.when(pl.col("capacity").is_not_null())
        .then(pl.col("tickets_sold") / pl.col("capacity"))
        .alias("fraction_sold"),
        pl.max_horizontal(minutes("as_of", "t0"), pl.lit(0.0)).fill_null(0.0).alias("elapsed"),
        pl.max_horizontal(minutes("a_at", "t0"), pl.lit(0.0)).fill_null(0.0).alias("elapsed_a"),
        pl.max_horizontal(minutes("b_at", "t0"), pl.lit(0.0)).fill_null(0.0).alias("elapsed_b"),
        ((pl.col("starts_at") - pl.col("t0")).dt.total_seconds() / 86400.0)
        .fill_null(30.0)
        .alias("days_to_event"),
    )
    ev = ev.with_columns(
        pl.when(pl.col("elapsed") >= 60)
        .then(pl.col("first_hour").fill_null(0) / pl.col("capacity"))
        .otherwise(pl.col("fraction_sold") * 60.0 / (pl.col("elapsed") + 1.0))
        .fill_null(0.0)
        .alias("early_velocity"),
        pl.when(pl.col("status") == "cancelled")
        .then(pl.lit("cancelled"))
        .when(pl.col("capacity_reason").is_not_null())
        .then(pl.col("capacity_reason"))
        .when(pl.col("tickets_sold") >= pl.col("capacity"))
        .then(pl.lit("sold_out"))
        .when(pl.col("fraction_sold") < MIN_FRACTION)
        .then(pl.lit(f"less than {int(MIN_FRACTION * 100)} % sold"))
        .when(pl.col("last_sale") < now - timedelta(hours=STALL_HOURS))
        .then(pl.lit(f"stalled: no sale in the last {STALL_HOURS} hours"))
        .alias("reason"),
    )
    todo = ev.filter(pl.col("reason").is_null())
    pred = C.predict(
        library,
        todo.select(
            "event_id",
            "category_id",
            "venue_id",
            "as_of",
            pl.col("fraction_sold").alias("fraction"),
            "elapsed",
            "elapsed_a",
            "elapsed_b",
            "early_velocity",
            "days_to_event",
        ),
    )
    pred = pred.with_columns(todo["fraction_sold"].alias("fraction"))
    if calibration is not None:
        pred = K.apply(pred, calibration)
    else:
        pred = pred.with_columns(
            pl.when(pl.col("eta_p50").is_not_null()).then(pl.lit("neighbours")).alias("interval_method")
        )
    pred = pred.drop("fraction")
    lin = linear_eta(
        s.join(ev.select("event_id"), on="event_id"),
        ev.select("event_id", pl.col("as_of").alias("at"), pl.col("capacity").fill_null(0)),
    )
    ev = ev.with_columns(
        pl.when(pl.col("reason").is_null() & pl.col("capacity").is_not_null())
        .then(lin)
        .alias("eta_linear_minutes")
    ).join(
        pred.rename({f"eta_{p}": f"eta_minutes_{p}" for p in ("p10", "p50", "p90")}),
        on="event_id",
        how="left",
    )
    at = lambda c: pl.lit(now).cast(TS) + pl.duration(seconds=(pl.col(c) * 60).round().cast(pl.Int64))  # noqa: E731
    out = ev.with_columns(
        pl.when(pl.col("reason").is_null() & pl.col("eta_minutes_p50").is_null())
        .then(pl.lit(f"fewer than {C.MIN_LIBRARY} past sell-out curves before now"))
        .otherwise(pl.col("reason"))
        .alias("reason")
    ).with_columns(
        at("eta_minutes_p10").alias("sellout_at_p10"),
        at("eta_minutes_p50").alias("sellout_at_p50"),
        at("eta_minutes_p90").alias("sellout_at_p90"),
    )
    out = out.with_columns(
        (pl.col("sellout_at_p50") < pl.col("starts_at")).fill_null(False).alias("expected_before_event"),
        (pl.col("eta_minutes_p50") <= imminent_minutes).fill_null(False).alias("sellout_imminent"),
        pl.col("elapsed").alias("elapsed_minutes"),
        pl.lit(version).alias("model_version"),
        pl.lit(trained_at or now).cast(TS).alias("trained_at"),
        pl.col("neighbours").fill_null(0),
    )
    return out.select(list(FORECAST_SCHEMA)).cast(FORECAST_SCHEMA).sort("tenant_id", "event_id")
