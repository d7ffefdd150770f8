"""Calibrated sell-out ETA intervals: split-conformal on the backtest's residuals in log-time.

The nearest curves' 10th..90th percentiles (monitoring/curves.py) understate the uncertainty (42-64 % of the
actual sell-out times fell inside them). Each backtest checkpoint (an event that sold out, queried at 25 / 50 /
75 % sold with only the curves that had sold out before) gives a residual in log-time, normalised by the
neighbours' own spread (a query whose neighbours disagree gets a wider interval):

    score = (log(1 + truth) - log(1 + p50)) / (log(1 + p90_nn) - log(1 + p10_nn) + SPREAD_FLOOR)

Per fraction-sold bucket (below 37.5 %, 37.5-62.5 %, above: the checkpoints 25 / 50 / 75 %), the interval's
bounds are the conformal quantiles of the scores (the floor(0.1 (n + 1))-th and ceil(0.9 (n + 1))-th smallest:
finite-sample 80 %): lo / hi = exp(log(1 + p50) + q * spread) - 1, clipped so that p10 <= p50 <= p90. A bucket
with fewer than MIN_PER_BUCKET scores uses every bucket's scores; fewer than MIN_POOLED in all: the
neighbours' interval stays (interval_method = "neighbours").

Validation (`holdout_coverage`): the latest HOLDOUT_SHARE of the checkpoints (by the time they were queried)
are held out; the calibration uses only the checkpoints whose sell-out was known before the holdout's first
query (out of time); coverage = the share of held-out actual remaining times inside the calibrated interval.
"""

from __future__ import annotations

import numpy as np
import polars as pl

LEVEL = 0.8
SPREAD_FLOOR = 0.1
MIN_PER_BUCKET = 10
MIN_POOLED = 10
HOLDOUT_SHARE = 0.4
#: (lower bound, upper bound, name) of the fraction-sold buckets; the backtest's checkpoints are their centres
BUCKETS = ((0.0, 0.375, "25%_sold"), (0.375, 0.625, "50%_sold"), (0.625, 1.0001, "75%_sold"))
POOLED = "all"
METHOD = "split_conformal_log_time"
COVERAGE_METRIC = "interval_coverage_80_calibrated"

SCHEMA = {"bucket": pl.String, "n": pl.Int64, "q_lo": pl.Float64, "q_hi": pl.Float64, "method": pl.String}


def bucket_of(fraction: pl.Expr) -> pl.Expr:
    expr = pl.lit(None, pl.String)
    for lo, hi, name in reversed(BUCKETS):
        expr = pl.when((fraction >= lo) & (fraction < hi)).then(pl.lit(name)).otherwise(expr)
    return expr


def _spread(p10: pl.Expr, p90: pl.Expr) -> pl.Expr:
    return (p90 + 1).log() - (p10 + 1).log() + SPREAD_FLOOR


def scores(bt: pl.DataFrame) -> pl.DataFrame:
    """Backtest rows with a model ETA -> bucket, as_of, known_at (when the truth was known: the sell-out) and
    the normalised log-time residual."""
    return bt.filter(pl.col("eta_p50").is_not_null() & pl.col("truth").is_not_null()).select(
        bucket_of(pl.col("fraction")).alias("bucket"),
        "as_of",
        (pl.col("t0") + pl.duration(seconds=(pl.col("sellout_minutes") * 60).cast(pl.Int64))).alias(
            "known_at"
        ),
        (
            ((pl.col("truth").clip(0) + 1).log() - (pl.col("eta_p50") + 1).log())
            / _spread(pl.col("eta_p10"), pl.col("eta_p90"))
        ).alias("score"),
    )


def _quantiles(s: np.ndarray) -> tuple[float, float]:
    """Finite-sample conformal bounds of a two-sided LEVEL interval."""
    s = np.sort(s)
    n = len(s)
    alpha = (1 - LEVEL) / 2
    k_lo = max(int(np.floor(alpha * (n + 1))), 1)
    k_hi = min(int(np.ceil((1 - alpha) * (n + 1))), n)
    return float(s[k_lo - 1]), float(s[k_hi - 1])


def fit(sc: pl.DataFrame) -> pl.DataFrame:
    """One row per bucket (and the pooled row): n, q_lo, q_hi, method (which scores it used)."""
    pooled = sc["score"].to_numpy()
    rows = []
    p_lo, p_hi = _quantiles(pooled) if len(pooled) >= MIN_POOLED else (None, None)
    for _, _, name in BUCKETS:
        mine = sc.filter(pl.col("bucket") == name)["score"].to_numpy()
        if len(mine) >= MIN_PER_BUCKET:
            rows.append((name, len(mine), *_quantiles(mine), METHOD))
        elif p_lo is not None:
            rows.append((name, len(pooled), p_lo, p_hi, f"{METHOD} (pooled: {len(mine)} in bucket)"))
        else:
            rows.append((name, len(pooled), None, None, "neighbours (too few backtest checkpoints)"))
    rows.append((POOLED, len(pooled), p_lo, p_hi, METHOD if p_lo is not None else "neighbours"))
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")


def apply(pred: pl.DataFrame, calibration: pl.DataFrame) -> pl.DataFrame:
    """pred: fraction, eta_p10, eta_p50, eta_p90 (the neighbours') -> the same with eta_p10 / eta_p90
    calibrated and interval_method; rows without calibration keep the neighbours' interval."""
    cal = calibration.filter(pl.col("bucket") != POOLED).select("bucket", "q_lo", "q_hi")
    out = pred.with_columns(bucket_of(pl.col("fraction")).alias("_bucket")).join(
        cal.rename({"bucket": "_bucket"}), on="_bucket", how="left"
    )
    spread = _spread(pl.col("eta_p10"), pl.col("eta_p90"))
    at = lambda q: ((pl.col("eta_p50") + 1).log() + q * spread).exp() - 1  # noqa: E731
    ok = pl.col("q_lo").is_not_null() & pl.col("eta_p50").is_not_null()
    return out.with_columns(
        pl.when(ok)
        .then(pl.min_horizontal(at(pl.col("q_lo")).clip(0), "eta_p50"))
        .otherwise("eta_p10")
        .alias("eta_p10"),
        pl.when(ok)
        .then(pl.max_horizontal(at(pl.col("q_hi")), "eta_p50"))
        .otherwise("eta_p90")
        .alias("eta_p90"),
        pl.when(ok)
        .then(pl.lit(METHOD))
        .when(pl.col("eta_p50").is_not_null())
        .then(pl.lit("neighbours"))
        .alias("interval_method"),
    ).drop("_bucket", "q_lo", "q_hi")


def holdout_coverage(bt: pl.DataFrame, share: float = HOLDOUT_SHARE) -> dict[str, dict]:
    """Out-of-time coverage of the calibrated LEVEL interval: per bucket and overall (key POOLED), with
    counts; coverage None where nothing was held out or nothing could calibrate it."""
    rows = bt.filter(pl.col("eta_p50").is_not_null() & pl.col("truth").is_not_null()).sort("as_of")
    empty = {name: {"n": 0, "n_calibration": 0, "coverage": None} for *_, name in (*BUCKETS, (0, 0, POOLED))}
    if rows.height < 2:
        return empty
    first = min(max(int(rows.height * (1 - share)), 1), rows.height - 1)
    cut = rows["as_of"][first]
    hold = rows.filter(pl.col("as_of") >= cut)
    cal_rows = scores(rows).filter(pl.col("known_at") < cut)
    calibration = fit(cal_rows)
    got = apply(hold, calibration).with_columns(bucket_of(pl.col("fraction")).alias("bucket"))
    got = got.filter(pl.col("interval_method") == METHOD).with_columns(
        ((pl.col("truth") >= pl.col("eta_p10")) & (pl.col("truth") <= pl.col("eta_p90"))).alias("inside")
    )
    out = {}
    for *_, name in (*BUCKETS, (0, 0, POOLED)):
        part = got if name == POOLED else got.filter(pl.col("bucket") == name)
        n_cal = cal_rows.height if name == POOLED else cal_rows.filter(pl.col("bucket") == name).height
        out[name] = {
            "n": part.height,
            "n_calibration": n_cal,
            "coverage": float(part["inside"].mean()) if part.height else None,
        }
    return out


def calibration_frame(bt: pl.DataFrame) -> pl.DataFrame:
    """The calibration the forecast uses: every backtest checkpoint (all of them sold out before now)."""
    return fit(scores(bt))
