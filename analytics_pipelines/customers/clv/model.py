"""CLV model parameters, the BG/NBD and Gamma-Gamma formulas, and input checks (see the package docstring)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.integrate import quad
from scipy.special import betainc, betaincinv, betaln, expit, gammaln, hyp2f1

DAYS_PER_MONTH: Final[float] = 30.0
"""Length of the month used by :func:`customer_lifetime_value`, as in lifetimes' ``freq="D"``."""

FloatArray = npt.NDArray[np.float64]


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
