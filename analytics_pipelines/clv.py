"""Customer lifetime value: the BG/NBD purchase model and the Gamma-Gamma spend model.

References
----------
- P. S. Fader, B. G. S. Hardie and K. L. Lee (2005), "Counting Your Customers the Easy Way: An
  Alternative to the Pareto/NBD Model", Marketing Science 24(2), 275-284 (BG/NBD).
- P. S. Fader, B. G. S. Hardie and K. L. Lee (2005), "RFM and CLV: Using Iso-Value Curves for Customer
  Base Analysis", Journal of Marketing Research 42(4), 415-430, and B. G. S. Hardie's note "The
  Gamma-Gamma Model of Monetary Value" (2013) (Gamma-Gamma).

Conventions (the same as the papers and the ``lifetimes`` package), one row per customer:

- ``frequency`` (x): number of *repeat* purchases, i.e. purchases after the customer's first one.
  A non-negative integer.
- ``recency`` (t_x): age of the customer at their last purchase, measured from their first purchase.
  0 for customers with frequency 0.
- ``T``: age of the customer at the end of the observation period, measured from their first purchase.
  ``0 <= recency <= T``.
- ``recency``, ``T`` and the horizon ``t`` of the predictions are in one and the same time unit (for
  example weeks); the fitted ``alpha`` is in that unit too.
- ``monetary_value``: average value of the customer's *repeat* purchases (the first purchase excluded),
  in any currency unit; the Gamma-Gamma parameter ``v`` and the predicted values are in that unit.

Inputs are array-likes (numpy arrays, lists, polars Series) or scalars; scalars are broadcast against
the 1-D inputs, which must all have the same length. Outputs are 1-D float64 numpy arrays. Invalid inputs
(NaN or infinite values, negative values, a non-integer frequency, recency > T, ...) raise ``ValueError``.

Fits maximise the likelihood over the log-parameters with L-BFGS-B and an analytic gradient, after
collapsing identical customer rows into one row with a count, so that a fit on millions of customers
costs little more than one on the distinct rows.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy.integrate import quad
from scipy.optimize import minimize
from scipy.special import betainc, betaincinv, betaln, digamma, expit, gammaln, hyp2f1

__all__ = [
    "DAYS_PER_MONTH",
    "BGNBDParams",
    "GammaGammaParams",
    "bgnbd_log_likelihood",
    "conditional_expected_average_value",
    "conditional_expected_purchases",
    "customer_lifetime_value",
    "expected_purchases_population",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "gamma_gamma_log_likelihood",
    "probability_alive",
]

DAYS_PER_MONTH: Final[float] = 30.0
"""Length of the month used by :func:`customer_lifetime_value`, as in lifetimes' ``freq="D"``."""

FloatArray = npt.NDArray[np.float64]
_Data = TypeVar("_Data")

# Log-parameters are searched in [-_LOG_BOUND, _LOG_BOUND]; an optimum on that box means a parameter ran
# off to 0 or infinity (the fit is then reported as not converged).
_LOG_BOUND: Final[float] = 25.0
_OPTIMIZER_OPTIONS: Final[dict[str, float]] = {"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-9}
# From this many rows _collapse_duplicates groups with polars rather than sorting with numpy.
_COLLAPSE_WITH_POLARS: Final[int] = 20_000


@dataclass(frozen=True, slots=True)
class BGNBDParams:
    """Parameters of a BG/NBD model.

    Purchase rates while alive are Gamma(shape ``r``, rate ``alpha``) across customers, ``alpha`` being in
    the time unit of recency/T; after each purchase a customer drops out with a probability that is
    Beta(``a``, ``b``) across customers.

    ``log_likelihood`` (total over customers, without the penalty), ``n_customers`` and ``converged``
    describe the fit that produced the parameters; parameters entered by hand keep their defaults
    (None, 0, True).
    """

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float | None = None
    n_customers: int = 0
    converged: bool = True

    def __post_init__(self) -> None:
        _check_positive_params(r=self.r, alpha=self.alpha, a=self.a, b=self.b)


@dataclass(frozen=True, slots=True)
class GammaGammaParams:
    """Parameters of a Gamma-Gamma spend model.

    The value of one transaction is Gamma(shape ``p``, rate nu), where nu is Gamma(shape ``q``,
    rate ``v``) across customers; ``v`` is in the currency unit of monetary_value. The mean spend per
    transaction across customers, ``p * v / (q - 1)``, is finite only for ``q > 1``.

    ``log_likelihood`` (total over the customers with frequency > 0, without the penalty),
    ``n_customers`` (the number of those customers) and ``converged`` describe the fit that produced
    the parameters; parameters entered by hand keep their defaults (None, 0, True).
    """

    p: float
    q: float
    v: float
    log_likelihood: float | None = None
    n_customers: int = 0
    converged: bool = True

    def __post_init__(self) -> None:
        _check_positive_params(p=self.p, q=self.q, v=self.v)


# --------------------------------------------------------------------------------------------------
# BG/NBD
# --------------------------------------------------------------------------------------------------


def fit_bgnbd(
    frequency: npt.ArrayLike,
    recency: npt.ArrayLike,
    T: npt.ArrayLike,
    penalizer: float = 0.0,
) -> BGNBDParams:
    """Fit a BG/NBD model by maximum likelihood.

    Args:
        frequency: number of repeat purchases of each customer (purchases after the first one).
        recency: age of each customer at their last purchase, from their first purchase (0 when
            frequency is 0).
        T: age of each customer at the end of the observation period, from their first purchase; same
            time unit as recency.
        penalizer: weight of an L2 penalty ``penalizer * (r**2 + (alpha / max(T))**2 + a**2 + b**2)``
            added to the mean negative log-likelihood per customer. This is lifetimes' ``penalizer_coef``
            (which also measures alpha in units of the oldest customer's age), so a given value gives the
            same parameters as lifetimes' ``BetaGeoFitter(penalizer_coef=...)``. Try 0.001-0.1 when a
            fit does not converge.

    Returns:
        The fitted parameters; ``alpha`` is in the time unit of recency and T. ``converged`` is False
        (and a ``RuntimeWarning`` is issued) when the optimiser did not converge or a parameter ran off
        towards 0 or infinity.

    Raises:
        ValueError: on invalid inputs (see the module docstring), or when no customer has frequency > 0
            (the dropout parameters are then not identified) or every T is 0.
    """
    x, t_x, age = _bgnbd_inputs(frequency, recency, T)
    _check_penalizer(penalizer)
    return _fit_bgnbd_distinct(*_bgnbd_distinct(x, t_x, age), penalizer, stacklevel=4)


def _bgnbd_distinct(x: FloatArray, t_x: FloatArray, age: FloatArray) -> tuple[list[FloatArray], FloatArray]:
    """fit_bgnbd's distinct (x, t_x, T) rows and counts from validated inputs (the same for every penalizer:
    a caller trying several fits the data once)."""
    if not np.any(x > 0):
        raise ValueError("fit_bgnbd needs at least one customer with frequency > 0")
    return _collapse_duplicates(x, t_x, age)


def _fit_bgnbd_distinct(
    distinct: list[FloatArray], counts: FloatArray, penalizer: float, stacklevel: int = 3
) -> BGNBDParams:
    """The rest of fit_bgnbd, on _bgnbd_distinct's rows."""
    x, t_x, age = distinct
    scale = float(age.max())
    if scale == 0.0:
        raise ValueError("fit_bgnbd needs at least one customer with T > 0")
    data = _BGNBDData.build(x, t_x / scale, age / scale, counts)
    log_params, converged = _minimize(_bgnbd_objective, np.zeros(4), data, penalizer, stacklevel)
    r, alpha_scaled, a, b = np.exp(log_params)
    alpha = alpha_scaled * scale
    log_likelihood = float(counts @ _bgnbd_log_likelihood(r, alpha, a, b, x, t_x, age))
    return BGNBDParams(
        r=float(r),
        alpha=float(alpha),
        a=float(a),
        b=float(b),
        log_likelihood=log_likelihood,
        n_customers=int(counts.sum()),
        converged=converged,
    )


def bgnbd_log_likelihood(
    params: BGNBDParams,
    frequency: npt.ArrayLike,
    recency: npt.ArrayLike,
    T: npt.ArrayLike,
) -> FloatArray:
    """Log-likelihood of each customer's (frequency, recency, T) under a BG/NBD model.

    Computed in log space (equation 6 of Fader, Hardie & Lee 2005)::

        ln L = ln Γ(r+x) - ln Γ(r) + r ln α + ln B(a, b+x) - ln B(a, b) - (r+x) ln(α+T)
               + ln(1 + [x > 0] · a/(b+x-1) · ((α+T)/(α+t_x))^(r+x))

    with the last term evaluated as ``logaddexp(0, ·)`` of its logarithm, so that it stays finite for
    very large frequencies. recency and T must be in the time unit of ``params.alpha``.
    """
    x, t_x, age = _bgnbd_inputs(frequency, recency, T)
    return _bgnbd_log_likelihood(params.r, params.alpha, params.a, params.b, x, t_x, age)


def probability_alive(
    params: BGNBDParams,
    frequency: npt.ArrayLike,
    recency: npt.ArrayLike,
    T: npt.ArrayLike,
) -> FloatArray:
    """Probability that each customer is still active ("alive") at age T.

    ``1 / (1 + [x > 0] · a/(b+x-1) · ((α+T)/(α+t_x))^(r+x))`` (lifetimes'
    ``conditional_probability_alive``), computed as a logistic function of the log-odds. Customers with frequency 0 are alive with
    probability 1: in the BG/NBD model a customer can only drop out right after a repeat purchase.
    recency and T must be in the time unit of ``params.alpha``.
    """
    x, t_x, age = _bgnbd_inputs(frequency, recency, T)
    return _probability_alive(params, x, t_x, age)


def conditional_expected_purchases(
    params: BGNBDParams,
    t: npt.ArrayLike,
    frequency: npt.ArrayLike,
    recency: npt.ArrayLike,
    T: npt.ArrayLike,
) -> FloatArray:
    """Expected number of repeat purchases of each customer in the next ``t`` time units.

    Equation 10 of Fader, Hardie & Lee (2005), i.e. lifetimes'
    ``conditional_expected_number_of_purchases_up_to_time``. ``t``, recency and T must be in the time
    unit of ``params.alpha``; ``t`` may be a scalar or one horizon per customer. Accurate to about 1e-12
    relative (checked against 150-digit arithmetic); down to ~1e-8 for ``a`` within 1e-6 of 1 and ~1e-7
    for whole-number ``a - r`` with ``t`` far beyond ``alpha + T``.
    """
    horizon, x, t_x, age = _coerce(t=t, frequency=frequency, recency=recency, T=T)
    _check_non_negative(t=horizon)
    _check_bgnbd_inputs(x, t_x, age)
    return _probability_alive(params, x, t_x, age) * _expected_purchases_if_alive(params, horizon, x, age)


def expected_purchases_population(params: BGNBDParams, t: npt.ArrayLike) -> FloatArray:
    """Expected number of repeat purchases in the first ``t`` time units after a new customer's first
    purchase, E[X(t)] (equation 9 of Fader, Hardie & Lee 2005); ``t`` is in the time unit of alpha."""
    (horizon,) = _coerce(t=t)
    _check_non_negative(t=horizon)
    zeros = np.zeros_like(horizon)
    return _expected_purchases_if_alive(params, horizon, zeros, zeros)


# --------------------------------------------------------------------------------------------------
# Gamma-Gamma
# --------------------------------------------------------------------------------------------------


def fit_gamma_gamma(
    frequency: npt.ArrayLike,
    monetary_value: npt.ArrayLike,
    penalizer: float = 0.0,
) -> GammaGammaParams:
    """Fit a Gamma-Gamma spend model by maximum likelihood.

    Only customers with frequency > 0 are used: a customer with no repeat purchase has no observed repeat
    spend (their monetary_value, conventionally 0, is ignored). Pass all customers or only the repeat
    ones; the result is the same.

    Args:
        frequency: number of repeat purchases of each customer.
        monetary_value: average value of each customer's repeat purchases; must be > 0 for customers
            with frequency > 0 and >= 0 otherwise.
        penalizer: weight of an L2 penalty ``penalizer * (p**2 + q**2 + v**2)`` added to the mean negative
            log-likelihood per customer, as lifetimes' ``GammaGammaFitter(penalizer_coef=...)``.

    Returns:
        The fitted parameters (``v`` in the currency unit of monetary_value). ``converged`` is False
        (and a ``RuntimeWarning`` is issued) when the optimiser did not converge or a parameter ran off
        towards 0 or infinity.

    Raises:
        ValueError: on invalid inputs or when no customer has frequency > 0.
    """
    x, m = _gamma_gamma_inputs(frequency, monetary_value)
    _check_penalizer(penalizer)
    return _fit_gamma_gamma_distinct(*_gamma_gamma_distinct(x, m), penalizer, stacklevel=4)


def _gamma_gamma_distinct(x: FloatArray, m: FloatArray) -> tuple[list[FloatArray], FloatArray]:
    """fit_gamma_gamma's distinct (x, m) rows of the repeat customers and counts, from validated inputs."""
    repeat = x > 0
    if not repeat.any():
        raise ValueError("fit_gamma_gamma needs at least one customer with frequency > 0")
    return _collapse_duplicates(x[repeat], m[repeat])


def _fit_gamma_gamma_distinct(
    distinct: list[FloatArray], counts: FloatArray, penalizer: float, stacklevel: int = 3
) -> GammaGammaParams:
    """The rest of fit_gamma_gamma, on _gamma_gamma_distinct's rows."""
    x, m = distinct
    data = _GammaGammaData.build(x, m, counts)
    start = np.log([1.0, 2.0, float(counts @ m / counts.sum())])
    log_params, converged = _minimize(_gamma_gamma_objective, start, data, penalizer, stacklevel)
    if converged and penalizer == 0 and np.all(m == m[0]):
        # every repeat customer spends the same: the likelihood keeps rising as p and q grow together, so
        # there is no maximum; where the optimiser stops on the flat ridge depends on rounding
        converged = False
        warnings.warn("the fit did not converge: every customer's average spend is the same, so the "
                      "Gamma-Gamma likelihood has no maximum; try a small penalizer such as 0.001",
                      RuntimeWarning, stacklevel=stacklevel)
    p, q, v = np.exp(log_params)
    log_likelihood = float(counts @ _gamma_gamma_log_likelihood(p, q, v, x, m))
    return GammaGammaParams(
        p=float(p),
        q=float(q),
        v=float(v),
        log_likelihood=log_likelihood,
        n_customers=int(counts.sum()),
        converged=converged,
    )


def gamma_gamma_log_likelihood(
    params: GammaGammaParams,
    frequency: npt.ArrayLike,
    monetary_value: npt.ArrayLike,
) -> FloatArray:
    """Log-likelihood of each customer's average repeat spend under a Gamma-Gamma model.

    ``ln Γ(px+q) - ln Γ(px) - ln Γ(q) + q ln v + (px-1) ln m + px ln x - (px+q) ln(v + x m)``
    (Hardie's note, equation 1a). Customers with frequency 0 carry no spend information and get 0.
    """
    x, m = _gamma_gamma_inputs(frequency, monetary_value)
    out = np.zeros_like(x)
    repeat = x > 0
    out[repeat] = _gamma_gamma_log_likelihood(params.p, params.q, params.v, x[repeat], m[repeat])
    return out


def conditional_expected_average_value(
    params: GammaGammaParams,
    frequency: npt.ArrayLike,
    monetary_value: npt.ArrayLike,
) -> FloatArray:
    """Expected average value of each customer's future transactions, given their past repeat spend.

    ``p (v + x m) / (p x + q - 1)``, a weighted average of the population mean ``p v / (q - 1)`` and the
    customer's own monetary_value m with weight ``p x / (p x + q - 1)`` on the latter (Hardie's note,
    equation 5; lifetimes' ``conditional_expected_average_profit``). Customers with frequency 0 get the
    population mean. In the currency unit of monetary_value.

    Raises:
        ValueError: on invalid inputs, or when ``params.q <= 1`` (the population mean is then infinite).
    """
    x, m = _gamma_gamma_inputs(frequency, monetary_value, require_positive_spend=False)
    return _conditional_expected_average_value(params, x, m)


def customer_lifetime_value(
    bgnbd_params: BGNBDParams,
    gg_params: GammaGammaParams,
    frequency: npt.ArrayLike,
    recency: npt.ArrayLike,
    T: npt.ArrayLike,
    monetary_value: npt.ArrayLike,
    months: int = 12,
    monthly_discount_rate: float = 0.01,
    time_unit_days: float = 7.0,
) -> FloatArray:
    """Discounted value of each customer's purchases over the next ``months`` months.

    Computed as lifetimes' ``customer_lifetime_value``::

        CLV = Σ_{i=1..months} E[purchases in month i] · E[value per purchase] / (1 + d)^i

    where the expected purchases come from the BG/NBD model (difference of
    :func:`conditional_expected_purchases` at the ends of consecutive months) and the expected value
    per purchase from :func:`conditional_expected_average_value`.

    Args:
        bgnbd_params: a BG/NBD model fitted on recency/T in the time unit given by ``time_unit_days``.
        gg_params: a Gamma-Gamma model fitted on monetary_value in the currency unit wanted for the CLV.
        frequency, recency, T, monetary_value: as in :func:`fit_bgnbd` and :func:`fit_gamma_gamma`.
        months: horizon in months (a month is :data:`DAYS_PER_MONTH` = 30 days); 0 gives 0.
        monthly_discount_rate: discount rate d per month, >= 0.
        time_unit_days: how many days one unit of recency/T is: 7 for weeks, 1 for days, 1/24 for hours.
            lifetimes' ``freq`` values "D", "H" and "M" correspond to 1, 1/24 and 30; its "W" counts
            4.345 weeks per month, which is ``time_unit_days = 30 / 4.345``.

    Returns:
        The CLV of each customer, in the currency unit of monetary_value.
    """
    x, t_x, age, m = _coerce(frequency=frequency, recency=recency, T=T, monetary_value=monetary_value)
    _check_bgnbd_inputs(x, t_x, age)
    _check_spend(x, m, require_positive_spend=False)
    if isinstance(months, bool) or not isinstance(months, int | np.integer) or months < 0:
        raise ValueError(f"months must be a non-negative integer, got {months!r}")
    if not (math.isfinite(monthly_discount_rate) and monthly_discount_rate >= 0):
        raise ValueError(f"monthly_discount_rate must be finite and >= 0, got {monthly_discount_rate!r}")
    if not (math.isfinite(time_unit_days) and time_unit_days > 0):
        raise ValueError(f"time_unit_days must be finite and > 0, got {time_unit_days!r}")

    return _lifetime_values(bgnbd_params, gg_params, x, t_x, age, m, (int(months),), monthly_discount_rate,
                            time_unit_days)[int(months)]


def _distinct_pairs(x: FloatArray, age: FloatArray) -> tuple[FloatArray, FloatArray, npt.NDArray[np.intp]]:
    """The distinct (x, T) pairs and each customer's pair: the expected purchases of a customer alive at T
    depend on (x, T) only, which customers share a lot (x + iT is a sort key for the pairs)."""
    distinct, row = np.unique(x + 1j * age, return_inverse=True)
    return distinct.real.copy(), distinct.imag.copy(), row


def _lifetime_values(
    bgnbd_params: BGNBDParams,
    gg_params: GammaGammaParams,
    x: FloatArray,
    t_x: FloatArray,
    age: FloatArray,
    m: FloatArray,
    months: tuple[int, ...],
    monthly_discount_rate: float,
    time_unit_days: float,
) -> dict[int, FloatArray]:
    """:func:`customer_lifetime_value` (validated float64 inputs) for several horizons in one pass over
    the months: the value for n months is the running sum after month n, the same operations in the same
    order as a separate call with ``months=n``, so the same numbers bit for bit."""
    value_per_purchase = _conditional_expected_average_value(gg_params, x, m)
    alive = _probability_alive(bgnbd_params, x, t_x, age)
    x_distinct, age_distinct, row = _distinct_pairs(x, age)
    periods_per_month = DAYS_PER_MONTH / time_unit_days
    discounted_purchases = np.zeros_like(x)
    purchases_so_far = np.zeros_like(x)
    out = {0: value_per_purchase * discounted_purchases} if 0 in months else {}
    for month in range(1, max(months, default=0) + 1):
        horizon = month * periods_per_month
        purchases = alive * _expected_purchases_if_alive(bgnbd_params, horizon, x_distinct, age_distinct)[row]
        discounted_purchases += (purchases - purchases_so_far) / (1.0 + monthly_discount_rate) ** month
        purchases_so_far = purchases
        if month in months:
            out[month] = value_per_purchase * discounted_purchases
    return out


# --------------------------------------------------------------------------------------------------
# Model formulas
# --------------------------------------------------------------------------------------------------


def _bgnbd_log_likelihood(
    r: float, alpha: float, a: float, b: float, x: FloatArray, t_x: FloatArray, age: FloatArray
) -> FloatArray:
    """Per-customer BG/NBD log-likelihood (see :func:`bgnbd_log_likelihood`)."""
    ll = (
        gammaln(r + x)
        - gammaln(r)
        + r * np.log(alpha)
        + betaln(a, b + x)
        - betaln(a, b)
        - (r + x) * np.log(alpha + age)
    )
    repeat = x > 0
    ll[repeat] += np.logaddexp(0.0, _log_odds_dead(r, alpha, a, b, x[repeat], t_x[repeat], age[repeat]))
    return ll


def _log_odds_dead(
    r: float, alpha: float, a: float, b: float, x: FloatArray, t_x: FloatArray, age: FloatArray
) -> FloatArray:
    """ln(a/(b+x-1) · ((α+T)/(α+t_x))^(r+x)) for customers with x > 0: the log-odds of having dropped
    out right after the last purchase versus being alive."""
    return np.log(a) - np.log(b + x - 1.0) + (r + x) * np.log1p((age - t_x) / (alpha + t_x))


def _probability_alive(params: BGNBDParams, x: FloatArray, t_x: FloatArray, age: FloatArray) -> FloatArray:
    alive = np.ones_like(x)
    repeat = x > 0
    alive[repeat] = expit(
        -_log_odds_dead(params.r, params.alpha, params.a, params.b, x[repeat], t_x[repeat], age[repeat])
    )
    return alive


def _expected_purchases_if_alive(
    params: BGNBDParams, t: FloatArray | float, x: FloatArray, age: FloatArray
) -> FloatArray:
    """Expected purchases in (T, T+t] of a customer known to be alive at T with x repeat purchases.

    The numerator of equation 10 of Fader, Hardie & Lee (2005)::

        (a+b+x-1)/(a-1) · (1 - G),  G = (1-z)^(r+x) · 2F1(r+x, b+x; a+b+x-1; z),  z = t/(α+T+t)

    By Euler's transformation G is also (1-z)^(a-1) · 2F1(a+b-1-r, a-1; a+b+x-1; z). The series of
    2F1(A, B; C; z) is benign when |A·B| is small next to C, so each customer gets the form with the
    smaller |A·B|: the transformed one for large frequencies, the direct one for large a.

    scipy's hyp2f1 is unreliable when C-A-B = ±(a-1-r-x) is an integer, i.e. when a - r is one (as
    with whole-number parameters): a is then moved by a relative 2e-9, which costs up to ~1e-7 relative
    accuracy (when z is within ~1e-6 of 1). The expression is 0/0 at a = 1 and loses about 1e-16/|a-1| to cancellation near it: a
    within 5e-8 of 1 is taken as 1 + 5e-8, for a relative error of a few 1e-8 at most.

    Where hyp2f1 still fails (inf, nan, or a result outside 0 <= E <= (r+x)·t/(α+T) and, for a > 1,
    E <= (a+b+x-1)/(a-1), by more than rounding; seen with r in the hundreds and z close to 1), the
    expectation is integrated numerically instead (a few milliseconds per customer, relative accuracy
    1e-5 or better in the cases tried; quad warns when it is unsure).
    """
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    if abs(a - 1.0) < 5e-8:
        a = 1.0 + 5e-8
    elif abs(a - r - round(a - r)) < 1e-9 * max(1.0, a):
        a *= 1.0 + 2e-9
    horizon, x, age = np.broadcast_arrays(np.asarray(t, dtype=np.float64), x, age)
    z = horizon / (alpha + age + horizon)
    log_1mz = -np.log1p(horizon / (alpha + age))
    c = a + b + x - 1.0
    g = np.empty_like(z)
    euler = np.abs((a + b - 1.0 - r) * (a - 1.0)) < (r + x) * (b + x)
    direct = ~euler
    xd = x[direct]
    with np.errstate(invalid="ignore", over="ignore"):
        g[euler] = np.exp((a - 1.0) * log_1mz[euler]) * hyp2f1(a + b - 1.0 - r, a - 1.0, c[euler], z[euler])
        g[direct] = np.exp((r + xd) * log_1mz[direct]) * hyp2f1(r + xd, b + xd, c[direct], z[direct])
        expected = c / (a - 1.0) * (1.0 - g)
        upper = (r + x) * horizon / (alpha + age)
        if a > 1.0:
            upper = np.minimum(upper, c / (a - 1.0))
        # Slack for rounding: 1 - G cancels when t is tiny next to α+T, and hyp2f1 can be off by ~1e-12.
        slack = 1e-6 * upper + 1e-9 * np.abs(c / (a - 1.0))
        failed = ~np.isfinite(expected) | (expected < -slack) | (expected > upper + slack)
    for i in np.flatnonzero(failed):
        expected[i] = _expected_purchases_if_alive_by_quadrature(r, alpha, a, b, horizon[i], x[i], age[i])
    return np.clip(expected, 0.0, upper)


def _expected_purchases_if_alive_by_quadrature(
    r: float, alpha: float, a: float, b: float, t: float, x: float, age: float
) -> float:
    """The same expectation for one customer, by numerical integration.

    Given alive at T, the customer's purchase rate is Gamma(r+x, α+T) and their dropout probability
    p is Beta(a, b+x); with rate λ they buy (1 - exp(-λpt))/p times in expectation over the next t, and
    averaging over λ gives h(p) = (1 - (1 + p·t/(α+T))^-(r+x)) / p. h is bounded and monotone, so
    E[h(p)] is integrated over the quantile u of p, p = I^-1(a, b+x; u).
    """
    scaled_t = t / (alpha + age)

    def h(u: float) -> float:
        p = float(betaincinv(a, b + x, u))
        return (r + x) * scaled_t if p == 0.0 else float(-np.expm1(-(r + x) * np.log1p(p * scaled_t)) / p)

    # h bends around p = 1/((r+x)·t/(α+T)): tell quad where that is on the u scale.
    bend = float(betainc(a, b + x, min(1.0, 1.0 / ((r + x) * scaled_t))))
    points = [bend] if 0.0 < bend < 1.0 else None
    return float(
        quad(h, 0.0, 1.0, points=points, limit=200, epsabs=1e-12 * (r + x) * scaled_t, epsrel=1e-10)[0]
    )


def _gamma_gamma_log_likelihood(p: float, q: float, v: float, x: FloatArray, m: FloatArray) -> FloatArray:
    """Per-customer Gamma-Gamma log-likelihood for customers with x > 0."""
    px = p * x
    return (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(v)
        + (px - 1.0) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(v + x * m)
    )


def _conditional_expected_average_value(params: GammaGammaParams, x: FloatArray, m: FloatArray) -> FloatArray:
    if params.q <= 1.0:
        raise ValueError(
            f"the Gamma-Gamma population mean spend p*v/(q-1) is infinite for q <= 1 (q = {params.q})"
        )
    return params.p * (params.v + x * m) / (params.p * x + params.q - 1.0)


# --------------------------------------------------------------------------------------------------
# Fitting: sufficient statistics and objectives (mean negative log-likelihood + penalty, and its
# gradient with respect to the log-parameters)
# --------------------------------------------------------------------------------------------------


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
    converged = bool(result.success) and bool(np.all(np.abs(result.x) < _LOG_BOUND - 1e-6))
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


# --------------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------------


def _coerce(**arrays: npt.ArrayLike) -> tuple[FloatArray, ...]:
    """Convert scalars and 1-D array-likes to float64 arrays of one common length."""
    converted: dict[str, FloatArray] = {}
    for name, values in arrays.items():
        try:
            array = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be numeric: {exc}") from exc
        if array.ndim > 1:
            raise ValueError(f"{name} must be a scalar or 1-D, got shape {array.shape}")
        converted[name] = array
    lengths = {name: array.shape[0] for name, array in converted.items() if array.ndim == 1}
    if len(set(lengths.values())) > 1:
        raise ValueError(
            "inputs have mismatched lengths: " + ", ".join(f"{k}={v}" for k, v in lengths.items())
        )
    n = next(iter(lengths.values()), 1)
    for name, array in converted.items():
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} contains NaN or infinite values")
    return tuple(np.broadcast_to(array, (n,)).astype(np.float64) for array in converted.values())


def _check_non_negative(**arrays: FloatArray) -> None:
    for name, array in arrays.items():
        if np.any(array < 0):
            raise ValueError(f"{name} must be >= 0 (found {int(np.sum(array < 0))} negative values)")


def _check_bgnbd_inputs(x: FloatArray, t_x: FloatArray, age: FloatArray) -> None:
    _check_frequency(x)
    _check_non_negative(recency=t_x)
    if np.any(t_x > age):
        raise ValueError(f"recency must be <= T (violated for {int(np.sum(t_x > age))} customers)")
    if np.any((x == 0) & (t_x != 0)):
        raise ValueError("recency must be 0 for customers with frequency 0")


def _check_frequency(x: FloatArray) -> None:
    _check_non_negative(frequency=x)
    if np.any(x != np.floor(x)):
        raise ValueError("frequency must be a whole number of repeat purchases")


def _check_spend(x: FloatArray, m: FloatArray, require_positive_spend: bool) -> None:
    _check_frequency(x)
    _check_non_negative(monetary_value=m)
    if require_positive_spend and np.any((x > 0) & (m == 0)):
        raise ValueError("monetary_value must be > 0 for customers with frequency > 0")


def _bgnbd_inputs(
    frequency: npt.ArrayLike, recency: npt.ArrayLike, T: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    x, t_x, age = _coerce(frequency=frequency, recency=recency, T=T)
    _check_bgnbd_inputs(x, t_x, age)
    return x, t_x, age


def _gamma_gamma_inputs(
    frequency: npt.ArrayLike, monetary_value: npt.ArrayLike, require_positive_spend: bool = True
) -> tuple[FloatArray, FloatArray]:
    x, m = _coerce(frequency=frequency, monetary_value=monetary_value)
    _check_spend(x, m, require_positive_spend)
    return x, m


def _check_penalizer(penalizer: float) -> None:
    if not (math.isfinite(penalizer) and penalizer >= 0):
        raise ValueError(f"penalizer must be finite and >= 0, got {penalizer!r}")


def _check_positive_params(**params: float) -> None:
    for name, value in params.items():
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"parameter {name} must be finite and > 0, got {value!r}")
