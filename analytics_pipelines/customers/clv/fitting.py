"""CLV fitting: sufficient statistics, objectives (mean negative log-likelihood + penalty and its gradient),
the optimiser and the collapse of duplicate customer rows."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar

import numpy as np
import polars as pl
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln

from analytics_pipelines.customers.clv.model import FloatArray

_Data = TypeVar("_Data")

# Log-parameters are searched in [-_LOG_BOUND, _LOG_BOUND]; an optimum on that box means a parameter ran
# off to 0 or infinity (the fit is then reported as not converged).
_LOG_BOUND: Final[float] = 25.0
_OPTIMIZER_OPTIONS: Final[dict[str, float]] = {"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-9}
# L-BFGS-B's line search can fail at the optimum itself, the objective being flat there at float precision
# (gtol 1e-9 out of reach: a tiny venue's Gamma-Gamma fit stopped "ABNORMAL" with |gradient| 4e-9, and a
# restart from that point stopped at once; the same code had kept that fit on another machine, presumably
# its rounding reaching gtol). Such a stop (status 2, not the iteration limit) counts as converged when no
# gradient component exceeds this.
_STALLED_GTOL: Final[float] = 1e-6
# From this many rows _collapse_duplicates groups with polars rather than sorting with numpy.
_COLLAPSE_WITH_POLARS: Final[int] = 20_000


@dataclass(frozen=True, slots=True)
class _BGNBDData:
    """Distinct customer rows with their counts, split the way the objective uses them.

    The terms of the log-likelihood that depend on x only are summed over the distinct frequencies;
    the others over the distinct (x, t_x, T) rows, the ``ln(1 + ...)`` term over those with x > 0.
    """

    n_customers: float
    freq_values: FloatArray
    freq_counts: FloatArray
    x: FloatArray
    age: FloatArray
    counts: FloatArray
    rep_x: FloatArray
    rep_t_x: FloatArray
    rep_age: FloatArray
    rep_counts: FloatArray

    @classmethod
    def build(cls, x: FloatArray, t_x: FloatArray, age: FloatArray, counts: FloatArray) -> _BGNBDData:
        freq_values, freq_index = np.unique(x, return_inverse=True)
        repeat = x > 0
        return cls(
            n_customers=float(counts.sum()),
            freq_values=freq_values,
            freq_counts=np.bincount(freq_index, weights=counts, minlength=freq_values.size),
            x=x,
            age=age,
            counts=counts,
            rep_x=x[repeat],
            rep_t_x=t_x[repeat],
            rep_age=age[repeat],
            rep_counts=counts[repeat],
        )


def _bgnbd_objective(log_params: FloatArray, data: _BGNBDData, penalizer: float) -> tuple[float, FloatArray]:
    params = np.exp(log_params)
    r, alpha, a, b = params
    n = data.n_customers

    # Terms in x only: ln Γ(r+x) - ln Γ(r) + ln B(a, b+x) - ln B(a, b).
    xs, wx = data.freq_values, data.freq_counts
    ll = wx @ (gammaln(r + xs) + betaln(a, b + xs)) - n * (gammaln(r) + betaln(a, b))
    psi_abx = digamma(a + b + xs)
    grad = np.array(
        [
            wx @ digamma(r + xs) - n * digamma(r),
            0.0,
            n * digamma(a + b) - wx @ psi_abx,
            wx @ (digamma(b + xs) - psi_abx) - n * (digamma(b) - digamma(a + b)),
        ]
    )

    # r ln α - (r+x) ln(α+T).
    w = data.counts
    log_alpha_age = np.log(alpha + data.age)
    ll += n * r * np.log(alpha) - w @ ((r + data.x) * log_alpha_age)
    grad[0] += n * np.log(alpha) - w @ log_alpha_age
    grad[1] += n * r / alpha - w @ ((r + data.x) / (alpha + data.age))

    # ln(1 + exp(L)) for x > 0, L = ln a - ln(b+x-1) + (r+x) ln((α+T)/(α+t_x)).
    xr, t_x, age, wr = data.rep_x, data.rep_t_x, data.rep_age, data.rep_counts
    log_ratio = np.log1p((age - t_x) / (alpha + t_x))
    log_odds = np.log(a) - np.log(b + xr - 1.0) + (r + xr) * log_ratio
    ll += wr @ np.logaddexp(0.0, log_odds)
    dead = wr * expit(log_odds)
    grad += np.array(
        [
            dead @ log_ratio,
            dead @ ((r + xr) * (1.0 / (alpha + age) - 1.0 / (alpha + t_x))),
            dead.sum() / a,
            -(dead @ (1.0 / (b + xr - 1.0))),
        ]
    )

    value = -ll / n + penalizer * float(params @ params)
    return value, (-grad / n + 2.0 * penalizer * params) * params


@dataclass(frozen=True, slots=True)
class _GammaGammaData:
    """Distinct (x, m) rows of the customers with x > 0 with their counts, the x-only terms summed over
    the distinct frequencies, and the parameter-free sums of ln m."""

    n_customers: float
    freq_values: FloatArray
    freq_counts: FloatArray
    x: FloatArray
    m: FloatArray
    counts: FloatArray
    sum_log_m: float
    sum_x_log_m: float

    @classmethod
    def build(cls, x: FloatArray, m: FloatArray, counts: FloatArray) -> _GammaGammaData:
        freq_values, freq_index = np.unique(x, return_inverse=True)
        log_m = np.log(m)
        return cls(
            n_customers=float(counts.sum()),
            freq_values=freq_values,
            freq_counts=np.bincount(freq_index, weights=counts, minlength=freq_values.size),
            x=x,
            m=m,
            counts=counts,
            sum_log_m=float(counts @ log_m),
            sum_x_log_m=float(counts @ (x * log_m)),
        )


def _gamma_gamma_objective(
    log_params: FloatArray, data: _GammaGammaData, penalizer: float
) -> tuple[float, FloatArray]:
    params = np.exp(log_params)
    p, q, v = params
    n = data.n_customers

    # Terms in x only: ln Γ(px+q) - ln Γ(px) + px ln x, and the constant ones.
    xs, wx = data.freq_values, data.freq_counts
    pxs = p * xs
    psi_pxq = digamma(pxs + q)
    ll = wx @ (gammaln(pxs + q) - gammaln(pxs) + pxs * np.log(xs)) - n * gammaln(q) + n * q * np.log(v)
    ll += p * data.sum_x_log_m - data.sum_log_m
    grad = np.array(
        [
            wx @ (xs * (psi_pxq - digamma(pxs) + np.log(xs))) + data.sum_x_log_m,
            wx @ psi_pxq - n * digamma(q) + n * np.log(v),
            n * q / v,
        ]
    )

    # -(px+q) ln(v + x m).
    w, x = data.counts, data.x
    log_v_xm = np.log(v + x * data.m)
    ll -= w @ ((p * x + q) * log_v_xm)
    grad -= np.array([w @ (x * log_v_xm), w @ log_v_xm, w @ ((p * x + q) / (v + x * data.m))])

    value = -ll / n + penalizer * float(params @ params)
    return value, (-grad / n + 2.0 * penalizer * params) * params


def _minimize(
    objective: Callable[[FloatArray, _Data, float], tuple[float, FloatArray]],
    start: FloatArray,
    data: _Data,
    penalizer: float,
    stacklevel: int = 3,
) -> tuple[FloatArray, bool]:
    """Minimise over the log-parameters; converged means success strictly inside the search box."""
    result = minimize(
        objective,
        start,
        args=(data, penalizer),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-_LOG_BOUND, _LOG_BOUND)] * start.size,
        options=_OPTIMIZER_OPTIONS,
    )
    stalled_at_optimum = result.status == 2 and bool(np.all(np.abs(result.jac) <= _STALLED_GTOL))
    converged = (bool(result.success) or stalled_at_optimum) and bool(
        np.all(np.abs(result.x) < _LOG_BOUND - 1e-6)
    )
    if not converged:
        warnings.warn(
            f"the fit did not converge ({result.message}; log-parameters {result.x}); "
            "try a small penalizer such as 0.001",
            RuntimeWarning,
            stacklevel=stacklevel,
        )
    return result.x, converged


def _collapse_duplicates(*columns: FloatArray) -> tuple[list[FloatArray], FloatArray]:
    """Distinct rows of the given columns (sorted, for reproducible sums) and how often each occurs.

    Small inputs (the customer marts' hundreds of per-venue fits on a few thousand rows) are sorted with
    numpy, where building a frame costs more than the sort; large ones are grouped with polars (hashing,
    multi-threaded), then sorted. Both give the same rows in the same order. -0.0 is counted as 0.0."""
    cols = [np.asarray(c, dtype=np.float64) + 0.0 for c in columns]
    n = cols[0].size
    if n >= _COLLAPSE_WITH_POLARS:
        names = [f"c{i}" for i in range(len(cols))]
        grouped = (
            pl.DataFrame(dict(zip(names, cols, strict=True)))
            .group_by(names)
            .agg(pl.len().alias("count"))
            .sort(names)
        )
        distinct = [grouped[name].to_numpy().astype(np.float64) for name in names]
        return distinct, grouped["count"].to_numpy().astype(np.float64)
    order = np.lexsort(cols[::-1])  # the first column is the primary sort key
    cols = [c[order] for c in cols]
    starts = np.ones(n, dtype=bool)
    if n:
        starts[1:] = np.logical_or.reduce([c[1:] != c[:-1] for c in cols])
    first = np.flatnonzero(starts)
    counts = np.diff(np.append(first, n)).astype(np.float64)
    return [c[first] for c in cols], counts
