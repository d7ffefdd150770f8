"""`customer_lifetime_value`: historic value (the old service's formula) beside BG/NBD + Gamma-Gamma
predictions (analytics_pipelines.customers.clv), per customer and venue, and a calibration/holdout validation.

Conventions and fits: analytics_pipelines.customers.lifetime_fit.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from analytics_pipelines.customers import clv
from analytics_pipelines.customers.clv import gamma_gamma
from analytics_pipelines.customers.clv import model as clv_model
from analytics_pipelines.customers.evaluation import performance_rows
from analytics_pipelines.customers.lifetime_fit import (
    MIN_REPEAT_BUYERS,
    WEEK_DAYS,
    Fit,
    _calibration_sorted,
    _columns,
    _prepare,
    _Prepared,
    _rows_by,
    fit_models,
    rfm_summary,
)
from analytics_pipelines.customers.parallel import TaskPool, run_all

#: below this many orders the fits run in this process only (a helper process takes ~1-2 s to start)
POOL_MIN_ORDERS = 200_000
MONTHLY_DISCOUNT = 0.01
#: 12 "months" of clv.DAYS_PER_MONTH days, in weeks
YEAR_WEEKS = 12 * clv.DAYS_PER_MONTH / WEEK_DAYS


PREDICTED = (
    "p_alive",
    "expected_purchases_90d",
    "expected_purchases_12m",
    "expected_value_per_purchase_cents",
    "clv_12m_cents",
    "clv_24m_cents",
)


def _predict_task(
    x: np.ndarray,
    t_x: np.ndarray,
    t: np.ndarray,
    m: np.ndarray,
    bg: clv.BGNBDParams,
    gg: clv.GammaGammaParams,
) -> tuple[np.ndarray, ...]:
    """The PREDICTED columns for the rows of one fit (run in this process or a helper).

    The same numbers, bit for bit, as clv.probability_alive, clv.conditional_expected_purchases,
    clv.conditional_expected_average_value and clv.customer_lifetime_value (tests/test_customers.py checks
    it), with the work they would repeat done once: P(alive) and the expected value per purchase are
    shared, the expected purchases are evaluated once per distinct (frequency, T) and the 12-month CLV is
    the 24-month sum after 12 months (all the expressions are element-wise)."""
    alive = clv_model._probability_alive(bg, x, t_x, t)
    xd, td, row = gamma_gamma._distinct_pairs(x, t)
    values = gamma_gamma._lifetime_values(bg, gg, x, t_x, t, m, (12, 24), MONTHLY_DISCOUNT, WEEK_DAYS)
    return (
        alive,
        alive * clv_model._expected_purchases_if_alive(bg, np.asarray(90 / WEEK_DAYS), xd, td)[row],
        alive * clv_model._expected_purchases_if_alive(bg, np.asarray(YEAR_WEEKS), xd, td)[row],
        clv_model._conditional_expected_average_value(gg, x, m),
        values[12],
        values[24],
    )


def _expected_purchases_task(
    x: np.ndarray, t_x: np.ndarray, t: np.ndarray, bg: clv.BGNBDParams, horizon: float
) -> np.ndarray:
    """clv.conditional_expected_purchases(bg, horizon, x, t_x, t), bit for bit, evaluated once per
    distinct (frequency, T) (run in this process or a helper)."""
    xd, td, row = gamma_gamma._distinct_pairs(x, t)
    return (
        clv_model._probability_alive(bg, x, t_x, t)
        * clv_model._expected_purchases_if_alive(bg, np.asarray(horizon), xd, td)[row]
    )


def _rows_by_fit(summary: pl.DataFrame, fits: dict[str, Fit | None]) -> list[tuple[Fit, np.ndarray]]:
    """(fit, row numbers of the venues using it), in venue order of first use."""
    groups: dict[int, tuple[Fit, list[np.ndarray]]] = {}
    for venue, idx in sorted(_rows_by(summary, "venue_id").items()):
        fit = fits.get(venue)
        if fit is not None:
            groups.setdefault(id(fit), (fit, []))[1].append(idx)
    return [(fit, np.concatenate(parts)) for fit, parts in groups.values()]


def predict(summary: pl.DataFrame, fits: dict[str, Fit | None], pool: TaskPool | None = None) -> pl.DataFrame:
    """Predictions for every row of `summary`, each with the fit of its venue (fit_scope, fit_id); one task
    per fit (shared with the pool's helper when given)."""
    with threadpool_limits(limits=1, user_api="blas"):
        return _predict_all(summary, fits, pool)


def _predict_all(summary: pl.DataFrame, fits: dict[str, Fit | None], pool: TaskPool | None) -> pl.DataFrame:
    cols = _columns(summary)
    out = {c: np.full(summary.height, np.nan) for c in PREDICTED}
    groups = _rows_by_fit(summary, fits)
    done = run_all(pool, _predict_task, [(*(a[idx] for a in cols), f.bgnbd, f.gg) for f, idx in groups])
    for (_, idx), values in zip(groups, done, strict=True):
        for c, v in zip(PREDICTED, values, strict=True):
            out[c][idx] = v
    used = pl.DataFrame(
        [(v, f.scope if f else "none", f.key if f else None) for v, f in fits.items()],
        schema={"venue_id": pl.String, "fit_scope": pl.String, "fit_id": pl.String},
        orient="row",
    )
    return (
        summary.with_columns(pl.Series(c, v).fill_nan(None) for c, v in out.items())
        .join(used, on="venue_id", how="left")
        .with_columns(pl.col("fit_scope").fill_null("none"))
    )


def fits_frame(fits: dict[str, Fit | None], as_of: date) -> pl.DataFrame:
    """One row per distinct fit used: its scope, key, parameters and the number of repeat buyers."""
    seen = {(f.scope, f.key): f for f in fits.values() if f is not None}
    rows = [
        {
            "as_of": as_of,
            "fit_scope": f.scope,
            "fit_id": f.key,
            "repeat_buyers": f.repeat_buyers,
            "customers": f.bgnbd.n_customers,
            "r": f.bgnbd.r,
            "alpha_weeks": f.bgnbd.alpha,
            "a": f.bgnbd.a,
            "b": f.bgnbd.b,
            "p": f.gg.p,
            "q": f.gg.q,
            "v_cents": f.gg.v,
            "venues_using": sum(1 for g in fits.values() if g is f),
        }
        for f in seen.values()
    ]
    return pl.DataFrame(
        rows,
        schema={
            "as_of": pl.Date,
            "fit_scope": pl.String,
            "fit_id": pl.String,
            "repeat_buyers": pl.Int64,
            "customers": pl.Int64,
            "r": pl.Float64,
            "alpha_weeks": pl.Float64,
            "a": pl.Float64,
            "b": pl.Float64,
            "p": pl.Float64,
            "q": pl.Float64,
            "v_cents": pl.Float64,
            "venues_using": pl.Int64,
        },
    )


def task_pool(orders: pl.DataFrame, workers: int | None = None) -> TaskPool:
    """The pool for the fits and predictions: `workers` processes (default parallel.default_workers(), 2),
    or this process alone for histories under POOL_MIN_ORDERS orders, where starting a helper costs more
    than it saves."""
    if workers is None and orders.height < POOL_MIN_ORDERS:
        workers = 1
    return TaskPool(workers)


def lifetime_value(
    orders: pl.DataFrame,
    as_of: date,
    churn: pl.DataFrame | None = None,
    min_repeat_buyers: int = MIN_REPEAT_BUYERS,
    workers: int | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(`customer_lifetime_value` rows, the fits used). `churn` (user_id, churn_probability) is joined on.
    `workers`: processes for the fits and predictions (see task_pool); the results do not depend on it."""
    with task_pool(orders, workers) as pool:  # the helper starts while the summary is computed
        return _lifetime_value(orders, as_of, churn, min_repeat_buyers, pool, _prepare(orders, as_of))


def lifetime_value_and_holdout(
    orders: pl.DataFrame,
    as_of: date,
    churn: pl.DataFrame | None = None,
    holdout_days: int = 90,
    min_repeat_buyers: int = MIN_REPEAT_BUYERS,
    workers: int | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(lifetime_value rows, fits, holdout_validation rows): the same frames as the two functions, computed
    with one helper pool and one sort of the orders (the calibration rows are a prefix of each customer-
    venue's sorted rows) instead of one each."""
    with task_pool(orders, workers) as pool:
        prepared = _prepare(orders, as_of)
        rows, fits = _lifetime_value(orders, as_of, churn, min_repeat_buyers, pool, prepared)
        perf = _holdout_validation(orders, as_of, holdout_days, min_repeat_buyers, pool, prepared)
    return rows, fits, perf


def _lifetime_value(
    orders: pl.DataFrame,
    as_of: date,
    churn: pl.DataFrame | None,
    min_repeat_buyers: int,
    pool: TaskPool,
    prepared: _Prepared,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    summary = rfm_summary(orders, as_of, prepared)
    fits = fit_models(summary, min_repeat_buyers, pool)
    rows = predict(summary, fits, pool)
    avg = pl.col("historic_value_cents").mean().over("venue_id")
    rows = rows.with_columns(
        pl.lit(as_of).alias("as_of"),
        pl.when(pl.col("historic_value_cents") > 2 * avg)
        .then(pl.lit("high"))
        .when(pl.col("historic_value_cents") > 0.5 * avg)
        .then(pl.lit("medium"))
        .otherwise(pl.lit("low"))
        .alias("historic_segment"),
    )
    if churn is not None:
        rows = rows.join(churn.select("user_id", "churn_probability"), on="user_id", how="left")
    else:
        rows = rows.with_columns(pl.lit(None, pl.Float64).alias("churn_probability"))
    out = rows.select(
        "as_of",
        "tenant_id",
        "venue_id",
        "user_id",
        "first_purchase_at",
        "last_purchase_at",
        pl.col("orders").cast(pl.Int64),
        pl.col("occasions").cast(pl.Int64).alias("purchase_days"),
        "historic_value_cents",
        "historic_aov_cents",
        "historic_lifespan_days",
        "historic_orders_per_month",
        "historic_segment",
        pl.col("frequency").cast(pl.Int64),
        "recency_weeks",
        "t_weeks",
        "monetary_cents",
        *PREDICTED,
        (1.0 - pl.col("p_alive")).alias("bgnbd_dropout_probability"),
        "churn_probability",
        "fit_scope",
        "fit_id",
    )
    return out, fits_frame(fits, as_of)


def holdout_validation(
    orders: pl.DataFrame,
    as_of: date,
    holdout_days: int = 90,
    min_repeat_buyers: int = MIN_REPEAT_BUYERS,
    workers: int | None = None,
) -> pl.DataFrame:
    """Calibration/holdout split by date: fit on occasions up to as_of - holdout_days, predict each
    calibration customer-venue's repeat occasions (purchase weeks) in the holdout window, compare with what
    happened.

    Returns model_performance rows (model_family 'clv'): totals, mean absolute error, correlation, and per
    calibration frequency bucket (0..6, '7+') the mean predicted and actual holdout occasions."""
    with task_pool(orders, workers) as pool:
        return _holdout_validation(
            orders, as_of, holdout_days, min_repeat_buyers, pool, _prepare(orders, as_of)
        )


def _holdout_validation(
    orders: pl.DataFrame,
    as_of: date,
    holdout_days: int,
    min_repeat_buyers: int,
    pool: TaskPool,
    prepared: _Prepared,
) -> pl.DataFrame:
    cal_end = as_of - timedelta(days=holdout_days)
    sorted_cal = _calibration_sorted(orders, cal_end, as_of, prepared)
    cal, actual = sorted_cal if sorted_cal is not None else (rfm_summary(orders, cal_end), None)
    if cal.height == 0:
        return _perf_frame([], as_of, cal_end)
    fits = fit_models(cal, min_repeat_buyers, pool)
    # only the expected purchases are needed here (not the CLV): one task per fit, not per venue
    horizon = holdout_days / WEEK_DAYS
    groups = _rows_by_fit(cal, fits)
    x, t_x, t, _ = _columns(cal)
    with threadpool_limits(limits=1, user_api="blas"):
        done = run_all(
            pool,
            _expected_purchases_task,
            [(x[idx], t_x[idx], t[idx], f.bgnbd, horizon) for f, idx in groups],
        )
    predicted, has_fit = np.zeros(cal.height), np.zeros(cal.height, dtype=bool)
    for (_, idx), values in zip(groups, done, strict=True):
        predicted[idx], has_fit[idx] = values, True
    # the calibration rows of the venues with a fit
    pred = cal.with_columns(pl.Series("predicted", predicted), *([] if actual is None else [actual])).filter(
        pl.Series(has_fit)
    )
    rows: list[tuple[str, str | None, float, int]] = [
        ("calibration_customers", None, float(cal.height), cal.height),
        ("customers_with_fit", None, float(pred.height), pred.height),
    ]
    if actual is not None:  # counted in the same sort as the calibration rows
        both = pred
    else:
        later = orders.filter(
            (pl.col("day") > cal_end) & (pl.col("day") <= as_of) & pl.col("user_id").is_not_null()
        )
        # repeat occasions in the holdout, in the model's unit: distinct weeks since the customer's first order
        later = later.join(pred.select("venue_id", "user_id", "first_day"), on=["venue_id", "user_id"])
        actual = later.group_by("venue_id", "user_id").agg(
            ((pl.col("day") - pl.col("first_day")).dt.total_days() // 7).n_unique().alias("actual")
        )
        both = pred.join(actual, on=["venue_id", "user_id"], how="left").with_columns(
            pl.col("actual").fill_null(0)
        )
    n = both.height
    if n:
        p, a = both["predicted"].to_numpy(), both["actual"].to_numpy().astype(float)
        corr = float(np.corrcoef(p, a)[0, 1]) if n > 1 and p.std() > 0 and a.std() > 0 else float("nan")
        rows += [
            ("predicted_repeat_purchases_total", None, float(p.sum()), n),
            ("actual_repeat_purchases_total", None, float(a.sum()), n),
            (
                "total_error_pct",
                None,
                float((p.sum() - a.sum()) / a.sum() * 100) if a.sum() else float("nan"),
                n,
            ),
            ("mae_per_customer", None, float(np.abs(p - a).mean()), n),
            ("correlation", None, corr, n),
        ]
        bucket = (
            pl.when(pl.col("frequency") >= 7)
            .then(pl.lit("7+"))
            .otherwise(pl.col("frequency").cast(pl.Int64).cast(pl.String))
        )
        by = both.group_by(bucket.alias("bucket")).agg(
            pl.len().alias("n"), pl.mean("predicted"), pl.mean("actual")
        )
        for b, k, pm, am in by.sort("bucket").iter_rows():
            rows += [
                ("mean_predicted_by_calibration_frequency", b, pm, k),
                ("mean_actual_by_calibration_frequency", b, am, k),
            ]
    return _perf_frame(rows, as_of, cal_end, holdout_days)


def _perf_frame(rows, as_of: date, cutoff: date, holdout_days: int = 0) -> pl.DataFrame:
    return performance_rows("clv", "bgnbd_gamma_gamma", as_of, cutoff, holdout_days, rows)
