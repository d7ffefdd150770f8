"""`customer_lifetime_value`: historic value (the old service's formula) beside BG/NBD + Gamma-Gamma
predictions (analytics_pipelines.customers.clv), per customer and venue, and a calibration/holdout validation.

Conventions. Time is counted in whole weeks from the customer's first recognized order at the venue (week
0 = its first 7 days). A purchase occasion is a week with at least one order (several orders in one week
are one occasion, as lifetimes' `summary_data_from_transaction_data` with a weekly period); frequency =
occasions - 1; recency = the last occasion's week; T = whole weeks from the first order's day to the as-of
day; monetary = mean gross revenue (cents) of the repeat occasions. Whole weeks make many customers share
one (frequency, recency, T), which is what keeps hundreds of per-venue fits fast (clv collapses
identical rows). Predictions are for customers as of the end of the as-of day.

Fits. Each venue gets its own fit when it has at least `min_repeat_buyers` customers with a repeat
occasion and both fits converge (and Gamma-Gamma q > 1, a finite mean spend), plain maximum likelihood
first, then with the L2 penalties 0.001 and 0.01 (short histories leave the dropout unidentified); otherwise the venue's rows
use a pooled fit over all customer-venue rows of its tenant, and failing that one over the whole platform.
Each row says which (`fit_scope` venue/tenant/platform, `fit_id`); `none` when not even the platform can
be fitted (then the predictions are NULL).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from analytics_pipelines.customers import clv
from analytics_pipelines.customers import keys as K
from analytics_pipelines.customers.clv import bgnbd, gamma_gamma
from analytics_pipelines.customers.clv import model as clv_model
from analytics_pipelines.customers.evaluation import performance_rows
from analytics_pipelines.customers.parallel import TaskPool, run_all

WEEK_DAYS = 7.0
MIN_REPEAT_BUYERS = 100
#: below this many orders the fits run in this process only (a helper process takes ~1-2 s to start)
POOL_MIN_ORDERS = 200_000
MONTHLY_DISCOUNT = 0.01
#: L2 penalties tried in turn until a fit converges (0 = plain maximum likelihood)
PENALIZERS = (0.0, 0.001, 0.01)
#: 12 "months" of clv.DAYS_PER_MONTH days, in weeks
YEAR_WEEKS = 12 * clv.DAYS_PER_MONTH / WEEK_DAYS


@dataclass(frozen=True)
class Fit:
    scope: str  # venue | tenant | platform
    key: str  # venue_id, tenant_id or 'platform'
    bgnbd: clv.BGNBDParams
    gg: clv.GammaGammaParams
    repeat_buyers: int


@dataclass(frozen=True)
class _Prepared:
    """The orders up to an as-of date that have a customer and, where the sorted path applies, their integer
    (tenant, venue, customer) codes and their sort (_sorted_orders; None when the key does not fit): shared
    by the CLV rows and the holdout validation when they are computed together."""

    o: pl.DataFrame
    codes: list[tuple[np.ndarray, int]] | None
    sorted: tuple[np.ndarray, np.ndarray, np.ndarray] | None


def _prepare(orders: pl.DataFrame, as_of: date) -> _Prepared:
    o = orders.filter((pl.col("day") <= as_of) & pl.col("user_id").is_not_null())
    if not _sorted_path_applies(o):
        return _Prepared(o, None, None)
    codes = _codes(o)
    return _Prepared(o, codes, _sorted_orders(o, codes))


def rfm_summary(orders: pl.DataFrame, as_of: date, prepared: _Prepared | None = None) -> pl.DataFrame:
    """Per (tenant_id, venue_id, user_id): the BG/NBD inputs (whole weeks, see the module doc) and the old
    service's historic figures. `prepared`: _prepare(orders, as_of) already computed."""
    p = prepared or _prepare(orders, as_of)
    per = _reduce_runs(p.o, *p.sorted) if p.sorted is not None else None
    return _with_model_inputs(per if per is not None else _per_customer_venue_grouped(p.o), as_of)


def _per_customer_venue_grouped(o: pl.DataFrame) -> pl.DataFrame:
    """Per customer-venue: occasions (purchase weeks), orders, value, first day, last week, the first week's
    value, first/last purchase (polars group-bys)."""
    keys = ["tenant_id", "venue_id", "user_id"]
    o = o.with_columns(pl.col("day").min().over(keys).alias("first_day"))
    weekly = o.group_by(
        *keys, ((pl.col("day") - pl.col("first_day")).dt.total_days() // 7).alias("week")
    ).agg(
        pl.first("first_day"),
        pl.len().alias("n_orders"),
        pl.sum("gross_revenue_cents").alias("cents"),
        pl.min("recognized_at").alias("first_at"),
        pl.max("recognized_at").alias("last_at"),
    )
    return weekly.group_by(keys).agg(
        pl.len().alias("occasions"),
        pl.sum("n_orders").alias("orders"),
        pl.sum("cents").alias("historic_value_cents"),
        pl.first("first_day"),
        pl.max("week").alias("last_week"),
        pl.col("cents").filter(pl.col("week") == 0).sum().alias("first_cents"),
        pl.min("first_at").alias("first_purchase_at"),
        pl.max("last_at").alias("last_purchase_at"),
    )


def _with_model_inputs(per: pl.DataFrame, as_of: date) -> pl.DataFrame:
    lifespan = (pl.col("last_purchase_at") - pl.col("first_purchase_at")).dt.total_seconds() / 86400.0
    return per.with_columns(
        (pl.col("occasions") - 1).cast(pl.Float64).alias("frequency"),
        pl.col("last_week").cast(pl.Float64).alias("recency_weeks"),
        ((pl.lit(as_of) - pl.col("first_day")).dt.total_days() // 7).cast(pl.Float64).alias("t_weeks"),
        pl.when(pl.col("occasions") > 1)
        .then((pl.col("historic_value_cents") - pl.col("first_cents")) / (pl.col("occasions") - 1))
        .otherwise(0.0)
        .alias("monetary_cents"),
        # the old service (analytics-service L480-538): lifespan in days >= 1, AOV, purchases per 30 days
        pl.max_horizontal(lifespan, pl.lit(1.0)).alias("historic_lifespan_days"),
    ).with_columns(
        (pl.col("historic_value_cents") / pl.col("orders")).alias("historic_aov_cents"),
        (pl.col("orders") / pl.max_horizontal(pl.col("historic_lifespan_days") / 30.0, pl.lit(1.0))).alias(
            "historic_orders_per_month"
        ),
    )


def _sorted_path_applies(o: pl.DataFrame) -> bool:
    """The sorted path handles the warehouse's types without NULL cents or timestamps; anything else takes
    the group-by path (same results, slower)."""
    return (
        o.schema["day"] == pl.Date
        and o.schema["gross_revenue_cents"] == pl.Int64
        and isinstance(o.schema["recognized_at"], pl.Datetime)
        and o.select(pl.col("gross_revenue_cents").null_count() + pl.col("recognized_at").null_count()).item()
        == 0
    )


def _codes(o: pl.DataFrame) -> list[tuple[np.ndarray, int]]:
    return [K.dense_codes(o["tenant_id"]), K.dense_codes(o["venue_id"]), K.user_codes(o)]


def _sorted_orders(
    o: pl.DataFrame, codes: list[tuple[np.ndarray, int]] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(row order, key, day) of the orders sorted by an integer (tenant, venue, customer) key and day, the
    key and day already in that order; None when the key does not fit in 63 bits."""
    key = K.combined_key(codes or _codes(o))
    day = o["day"].to_physical().to_numpy().astype(np.int64)
    order = None if key is None else K.sort_by_key(key, day)
    return None if order is None else (order, key[order], day[order])


def _reduce_runs(o: pl.DataFrame, order: np.ndarray, g: np.ndarray, day: np.ndarray) -> pl.DataFrame:
    """The per customer-venue figures from rows `order` of `o` sorted by key `g` and `day`: a customer-venue
    is a run of equal keys, its occasions the runs of equal (key, week) and its first day its first row's."""
    n = order.size
    cents = o["gross_revenue_cents"].to_numpy()[order]
    at = o["recognized_at"].to_physical().to_numpy()[order]
    starts = K.run_starts(g)
    first_day = day[starts]
    week = (day - np.repeat(first_day, K.run_lengths(starts, n))) // 7
    wstarts = K.run_starts(g, week)  # one per purchase week (occasion) of a customer-venue
    wcents = np.add.reduceat(cents, wstarts) if n else cents
    occasion_of_start = np.searchsorted(wstarts, starts)  # the first occasion (week 0) of each customer-venue
    ends = np.append(starts[1:], n)[: starts.size] - 1
    reduce = (lambda f, a: f.reduceat(a, starts)) if n else (lambda f, a: a[:0])
    ids = o.select("tenant_id", "venue_id", "user_id")[pl.Series(order[starts])]
    return ids.with_columns(
        pl.Series("occasions", K.run_lengths(occasion_of_start, wstarts.size), dtype=pl.UInt32),
        pl.Series("orders", K.run_lengths(starts, n), dtype=pl.UInt32),
        pl.Series("historic_value_cents", reduce(np.add, cents), dtype=pl.Int64),
        pl.Series("first_day", first_day.astype(np.int32), dtype=pl.Int32).cast(pl.Date),
        pl.Series("last_week", week[ends], dtype=pl.Int64),
        pl.Series("first_cents", wcents[occasion_of_start], dtype=pl.Int64),
        pl.Series("first_purchase_at", reduce(np.minimum, at)).cast(o.schema["recognized_at"]),
        pl.Series("last_purchase_at", reduce(np.maximum, at)).cast(o.schema["recognized_at"]),
    )


def _calibration_sorted(
    orders: pl.DataFrame, cal_end: date, as_of: date, prepared: _Prepared | None = None
) -> tuple[pl.DataFrame, pl.Series] | None:
    """(rfm_summary(orders, cal_end), each of its rows' repeat occasions in (cal_end, as_of]) from one sort
    of the orders up to as_of: the calibration rows are each run's rows up to cal_end, the holdout weeks
    the distinct weeks (from the calibration first day) of its later rows. None where the joins of
    holdout_validation are needed to give the same answer (a venue in several tenants or without an id,
    other types) or the key does not fit. `prepared`: _prepare(orders, as_of) already computed."""
    p = prepared or _prepare(orders, as_of)
    o = p.o
    if p.codes is None or o.height == 0 or o["venue_id"].null_count():
        return None
    (tenant, _), (venue, n_venues) = p.codes[:2]
    tenant_of = np.zeros(n_venues + 1, dtype=np.uint64)
    tenant_of[venue] = tenant
    if np.any(tenant_of[venue] != tenant):  # a venue in several tenants
        return None
    if p.sorted is None:
        return None
    order, g, day = p.sorted
    cut = (cal_end - date(1970, 1, 1)).days
    cal = day <= cut
    per = _reduce_runs(o, order[cal], g[cal], day[cal])
    keys, first_day = g[cal][K.run_starts(g[cal])], day[cal][K.run_starts(g[cal])]
    # the holdout rows of the calibration customer-venues (a later first purchase at the venue is not one)
    hg, hday = g[~cal], day[~cal]
    pos = np.minimum(np.searchsorted(keys, hg), max(keys.size - 1, 0))
    known = keys.size > 0
    mine = (keys[pos] == hg) if known else np.zeros(hg.size, dtype=bool)
    pos, week = pos[mine], (hday[mine] - first_day[pos[mine]]) // 7
    occasions = (
        np.bincount(pos[K.run_starts(pos, week)], minlength=keys.size) if pos.size else np.zeros(keys.size)
    )
    return _with_model_inputs(per, cal_end), pl.Series("actual", occasions, dtype=pl.UInt32)


def _try_fit(
    x: np.ndarray, t_x: np.ndarray, t: np.ndarray, m: np.ndarray, min_repeat_buyers: int
) -> tuple[clv.BGNBDParams, clv.GammaGammaParams] | None:
    repeat = (x > 0) & (m > 0)
    if repeat.sum() < min_repeat_buyers:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            # short histories leave the dropout parameters unidentified (a, b run off to infinity): then
            # retry with the small L2 penalties clv.fit_bgnbd recommends before giving up on this scope.
            # clv.fit_bgnbd / clv.fit_gamma_gamma in two steps, so that the retries reuse the validated
            # and collapsed data (the same fits)
            bg_rows = bgnbd._bgnbd_distinct(*clv_model._bgnbd_inputs(x, t_x, t))
            for penalizer in PENALIZERS:
                bg = bgnbd._fit_bgnbd_distinct(*bg_rows, penalizer)
                if bg.converged:
                    break
            gg_rows = gamma_gamma._gamma_gamma_distinct(*clv_model._gamma_gamma_inputs(x[repeat], m[repeat]))
            for penalizer in PENALIZERS:
                gg = gamma_gamma._fit_gamma_gamma_distinct(*gg_rows, penalizer)
                if gg.converged and gg.q > 1.0:
                    break
        except ValueError:
            return None
    if not (bg.converged and gg.converged and gg.q > 1.0):
        return None
    return bg, gg


def _columns(summary: pl.DataFrame) -> tuple[np.ndarray, ...]:
    return tuple(
        summary[c].cast(pl.Float64).to_numpy()
        for c in ("frequency", "recency_weeks", "t_weeks", "monetary_cents")
    )


def _rows_by(summary: pl.DataFrame, key: str) -> dict[str, np.ndarray]:
    """{key value: row numbers}: one group-by instead of a frame per group (hundreds of venues)."""
    g = (
        summary.select(pl.col(key), pl.int_range(pl.len(), dtype=pl.Int64).alias("_i"))
        .group_by(key)
        .agg("_i")
    )
    return {
        k: np.asarray(v, dtype=np.int64) for k, v in zip(g[key].to_list(), g["_i"].to_list(), strict=True)
    }


def _fit_task(
    x: np.ndarray, t_x: np.ndarray, t: np.ndarray, m: np.ndarray, min_repeat_buyers: int
) -> tuple[clv.BGNBDParams, clv.GammaGammaParams, int] | None:
    """One scope's fit (run in this process or a helper): the parameters and the repeat buyers, or None."""
    p = _try_fit(x, t_x, t, m, min_repeat_buyers)
    return (*p, int((x > 0).sum())) if p else None


def fit_models(
    summary: pl.DataFrame, min_repeat_buyers: int = MIN_REPEAT_BUYERS, pool: TaskPool | None = None
) -> dict[str, Fit | None]:
    """The fit each venue uses: {venue_id: Fit or None}, venue first, then its tenant, then the platform.

    The fits are independent: with a `pool` they are shared between this process and its helper, the tenant
    and platform fits computed beside the venue fits whether used or not (without, the tenant fits only
    for tenants with a failed venue, the platform fit only if a tenant fails too). BLAS is held
    to one thread meanwhile: the fits are hundreds of 3-4 parameter L-BFGS-B problems, and a multi-threaded
    OpenBLAS made each optimizer step ~10x slower on the 2-core machine (measured)."""
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit_models(summary, min_repeat_buyers, pool)


def _fit_models(
    summary: pl.DataFrame, min_repeat_buyers: int, pool: TaskPool | None
) -> dict[str, Fit | None]:
    cols = _columns(summary)

    def fits(groups: list[tuple[str, str, np.ndarray | None]]) -> dict[tuple[str, str], Fit | None]:
        tasks = [(*(c if idx is None else c[idx] for c in cols), min_repeat_buyers) for _, _, idx in groups]
        done = run_all(pool, _fit_task, tasks)
        return {
            (scope, key): Fit(scope, key, *p) if p else None
            for (scope, key, _), p in zip(groups, done, strict=True)
        }

    venue_rows = [("venue", v, idx) for v, idx in sorted(_rows_by(summary, "venue_id").items())]
    tenant_of = dict(summary.select("venue_id", "tenant_id").unique().iter_rows())
    by_tenant = _rows_by(summary, "tenant_id")
    tenant_rows = [("tenant", t, by_tenant[t]) for t in sorted(by_tenant, key=lambda t: (t is None, t or ""))]
    if pool is not None:
        # with helpers, the pooled fits run beside the venue fits (largest first) instead of after them: a
        # tenant's fit is used when one of its venues cannot be fitted, the platform's when a tenant cannot,
        # which at hundreds of venues is nearly always (the unused ones are dropped: the same fits result)
        done = fits([("platform", "platform", None), *tenant_rows, *venue_rows])
    else:
        done = fits(venue_rows)
        failed = {tenant_of[key] for (_, key), f in done.items() if f is None}
        done |= fits([row for row in tenant_rows if row[1] in failed])
        if any(f is None for (scope, _), f in done.items() if scope == "tenant"):
            done |= fits([("platform", "platform", None)])

    def fallback(tenant: str) -> Fit | None:
        return done[("tenant", tenant)] or done.get(("platform", "platform"))

    return {v: done[("venue", v)] or fallback(tenant_of[v]) for _, v, _ in venue_rows}


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
