"""The Gamma-Gamma spend model: fit, log-likelihood, expected average value, and customer lifetime value."""

from __future__ import annotations

import math
import warnings

import numpy as np
import numpy.typing as npt

from analytics_pipelines.customers.clv.fitting import (
    _collapse_duplicates,
    _gamma_gamma_objective,
    _GammaGammaData,
    _minimize,
)
from analytics_pipelines.customers.clv.model import (
    DAYS_PER_MONTH,
    BGNBDParams,
    FloatArray,
    GammaGammaParams,
    _check_bgnbd_inputs,
    _check_penalizer,
    _check_spend,
    _coerce,
    _conditional_expected_average_value,
    _expected_purchases_if_alive,
    _gamma_gamma_inputs,
    _gamma_gamma_log_likelihood,
    _probability_alive,
)


def fit_gamma_gamma(
    frequency: npt.ArrayLike, monetary_value: npt.ArrayLike, penalizer: float = 0.0
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
        warnings.warn(
            "the fit did not converge: every customer's average spend is the same, so the "
            "Gamma-Gamma likelihood has no maximum; try a small penalizer such as 0.001",
            RuntimeWarning,
            stacklevel=stacklevel,
        )
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
    params: GammaGammaParams, frequency: npt.ArrayLike, monetary_value: npt.ArrayLike
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
    params: GammaGammaParams, frequency: npt.ArrayLike, monetary_value: npt.ArrayLike
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

    return _lifetime_values(
        bgnbd_params, gg_params, x, t_x, age, m, (int(months),), monthly_discount_rate, time_unit_days
    )[int(months)]


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
