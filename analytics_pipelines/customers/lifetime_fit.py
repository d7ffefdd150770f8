"""The BG/NBD + Gamma-Gamma fits of `customer_lifetime_value` (analytics_pipelines.customers.lifetime):
the per customer and venue summary (frequency, recency, T, monetary) and the per venue/tenant/platform fits.

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
from datetime import date

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from analytics_pipelines.customers import clv
from analytics_pipelines.customers import keys as K
from analytics_pipelines.customers.clv import bgnbd, gamma_gamma
from analytics_pipelines.customers.clv import model as clv_model
from analytics_pipelines.customers.parallel import TaskPool, run_all

WEEK_DAYS = 7.0
MIN_REPEAT_BUYERS = 100
#: L2 penalties tried in turn until a fit converges (0 = plain maximum likelihood)
PENALIZERS = (0.0, 0.001, 0.01)


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
