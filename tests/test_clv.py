"""Tests of analytics_pipelines.customers.clv (BG/NBD and Gamma-Gamma) on the CDNOW data set.

Reference numbers marked "lifetimes 0.11.3" were computed by running lifetimes 0.11.3 (in a throwaway
virtualenv, not a dependency of this project) on the CDNOW files in tests/data/cdnow/.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import approx_fprime

from analytics_pipelines.customers import clv
from analytics_pipelines.customers.clv import BGNBDParams, GammaGammaParams, fitting
from analytics_pipelines.customers.clv.fitting import (
    _bgnbd_objective,
    _BGNBDData,
    _collapse_duplicates,
    _gamma_gamma_objective,
    _GammaGammaData,
)

CDNOW_DIR = Path(__file__).parent / "data" / "cdnow"

# Parameters used for all prediction references (lifetimes' fitted values, rounded): both sides are
# evaluated at exactly these values so the comparison does not depend on either optimiser.
BG = BGNBDParams(r=0.2426, alpha=4.4135, a=0.7929, b=2.4258)
GG = GammaGammaParams(p=6.2488, q=3.7444, v=15.4428)

# CDNOW customers with ID 1, 2, 3, 18, 100, 157, 1516, 2357 (weeks).
IDS = [1, 2, 3, 18, 100, 157, 1516, 2357]
FREQ = np.array([2, 1, 0, 1, 1, 29, 26, 0])
REC = np.array([30.43, 1.71, 0.0, 4.86, 23.86, 37.71, 30.86, 0.0])
AGE = np.array([38.86, 38.86, 38.86, 38.86, 38.29, 38.0, 31.0, 27.0])
MON = np.array([22.35, 11.77, 0.0, 9.99, 26.22, 26.26, 39.97, 0.0])


@pytest.fixture(scope="module")
def cdnow() -> pl.DataFrame:
    """The 2357 CDNOW customers: frequency, recency, T (weeks) and monetary_value (dollars)."""
    summary = pl.read_csv(CDNOW_DIR / "cdnow_customers_summary.csv")
    spend = pl.read_csv(CDNOW_DIR / "cdnow_customers_summary_with_transactions.csv")
    assert summary.height == spend.height == 2357
    assert (summary["frequency"] == spend["x"]).all() and (summary["T"] == spend["T"]).all()
    return summary.select("ID", "frequency", "recency", "T").with_columns(monetary_value=spend["zbar"])


def test_reference_customers_are_cdnow_rows(cdnow: pl.DataFrame) -> None:
    rows = cdnow.filter(pl.col("ID").is_in(IDS)).sort("ID")
    np.testing.assert_array_equal(rows["frequency"].to_numpy(), FREQ)
    np.testing.assert_array_equal(rows["recency"].to_numpy(), REC)
    np.testing.assert_array_equal(rows["T"].to_numpy(), AGE)
    np.testing.assert_array_equal(rows["monetary_value"].to_numpy(), MON)


# --------------------------------------------------------------------------------------------------
# Fits
# --------------------------------------------------------------------------------------------------


def test_bgnbd_reproduces_published_cdnow_fit(cdnow: pl.DataFrame) -> None:
    # Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way", section 5.
    fit = clv.fit_bgnbd(cdnow["frequency"], cdnow["recency"], cdnow["T"])
    assert fit.converged
    assert fit.n_customers == 2357
    for got, published in [(fit.r, 0.243), (fit.alpha, 4.414), (fit.a, 0.793), (fit.b, 2.426)]:
        assert got == pytest.approx(published, rel=1e-2)
    assert fit.log_likelihood == pytest.approx(-9582.4, abs=0.05)


@pytest.mark.parametrize(
    ("penalizer", "expected"),
    [
        # lifetimes 0.11.3: BetaGeoFitter(penalizer_coef=...).fit(frequency, recency, T).params_
        (0.0, (0.24259292827982148, 4.413532265271809, 0.7928859664406578, 2.4257523826257374)),
        (0.001, (0.24277626788032344, 4.405278055812616, 0.4984464874693404, 1.323244225702985)),
    ],
)
def test_bgnbd_matches_lifetimes_fit(cdnow: pl.DataFrame, penalizer: float, expected: tuple) -> None:
    fit = clv.fit_bgnbd(cdnow["frequency"], cdnow["recency"], cdnow["T"], penalizer=penalizer)
    np.testing.assert_allclose([fit.r, fit.alpha, fit.a, fit.b], expected, rtol=1e-5)


def test_gamma_gamma_reproduces_published_cdnow_fit(cdnow: pl.DataFrame) -> None:
    # Hardie's note "The Gamma-Gamma Model of Monetary Value" / lifetimes' docs: p 6.25, q 3.74, v 15.44.
    fit = clv.fit_gamma_gamma(cdnow["frequency"], cdnow["monetary_value"])
    assert fit.converged
    assert fit.n_customers == int((cdnow["frequency"] > 0).sum()) == 946
    np.testing.assert_allclose([fit.p, fit.q, fit.v], [6.25, 3.74, 15.44], rtol=2e-3)


@pytest.mark.parametrize(
    ("penalizer", "expected"),
    [
        # lifetimes 0.11.3: GammaGammaFitter(penalizer_coef=...).fit on the customers with frequency > 0
        (0.0, (6.24880249607099, 3.7445884609237634, 15.447748064943575)),
        (0.001, (7.912024992186517, 2.4468193618903404, 7.20956426855066)),
    ],
)
def test_gamma_gamma_matches_lifetimes_fit(cdnow: pl.DataFrame, penalizer: float, expected: tuple) -> None:
    fit = clv.fit_gamma_gamma(cdnow["frequency"], cdnow["monetary_value"], penalizer=penalizer)
    np.testing.assert_allclose([fit.p, fit.q, fit.v], expected, rtol=1e-5)


def test_gamma_gamma_ignores_customers_without_repeat_purchases(cdnow: pl.DataFrame) -> None:
    everyone = clv.fit_gamma_gamma(cdnow["frequency"], cdnow["monetary_value"])
    repeaters = cdnow.filter(pl.col("frequency") > 0)
    only_repeaters = clv.fit_gamma_gamma(repeaters["frequency"], repeaters["monetary_value"])
    # The spend of one-time customers (0 in CDNOW) does not matter.
    other_spend = np.where(cdnow["frequency"].to_numpy() > 0, cdnow["monetary_value"].to_numpy(), 123.0)
    ignored = clv.fit_gamma_gamma(cdnow["frequency"], other_spend)
    assert everyone == only_repeaters == ignored
    assert everyone.log_likelihood == pytest.approx(
        clv.gamma_gamma_log_likelihood(everyone, cdnow["frequency"], cdnow["monetary_value"]).sum(), rel=1e-12
    )


def test_duplicate_rows_act_as_weights(cdnow: pl.DataFrame) -> None:
    once = clv.fit_bgnbd(cdnow["frequency"], cdnow["recency"], cdnow["T"])
    tripled = pl.concat([cdnow, cdnow, cdnow]).sample(fraction=1.0, shuffle=True, seed=7)
    thrice = clv.fit_bgnbd(tripled["frequency"], tripled["recency"], tripled["T"])
    np.testing.assert_allclose(
        [thrice.r, thrice.alpha, thrice.a, thrice.b], [once.r, once.alpha, once.a, once.b], rtol=1e-6
    )
    assert thrice.log_likelihood == pytest.approx(3 * once.log_likelihood, rel=1e-9)
    assert thrice.n_customers == 3 * 2357
    assert once.log_likelihood == pytest.approx(
        clv.bgnbd_log_likelihood(once, cdnow["frequency"], cdnow["recency"], cdnow["T"]).sum(), rel=1e-12
    )


def test_fit_is_invariant_to_the_time_unit(cdnow: pl.DataFrame) -> None:
    weeks = clv.fit_bgnbd(cdnow["frequency"], cdnow["recency"], cdnow["T"])
    days = clv.fit_bgnbd(cdnow["frequency"], cdnow["recency"] * 7, cdnow["T"] * 7)
    np.testing.assert_allclose(
        [days.r, days.alpha / 7, days.a, days.b], [weeks.r, weeks.alpha, weeks.a, weeks.b], rtol=1e-6
    )


def _objective_gradients(data: object, objective, start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    analytic = objective(start, data, 0.01)[1]
    numeric = approx_fprime(start, lambda z: objective(z, data, 0.01)[0], 1e-7)
    return analytic, numeric


@pytest.mark.parametrize(
    "log_params", [np.zeros(4), np.array([-1.4, 0.3, -0.2, 0.9]), np.array([0.5, -2.0, 1.0, -1.0])]
)
def test_bgnbd_objective_gradient(cdnow: pl.DataFrame, log_params: np.ndarray) -> None:
    x, t_x, age = (cdnow[c].to_numpy().astype(float) for c in ("frequency", "recency", "T"))
    data = _BGNBDData.build(x, t_x / age.max(), age / age.max(), np.ones_like(x))
    analytic, numeric = _objective_gradients(data, _bgnbd_objective, log_params)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-6)
    # The objective is the penalised mean of the public per-customer log-likelihood.
    r, alpha, a, b = np.exp(log_params)
    per_customer = clv.bgnbd_log_likelihood(BGNBDParams(r, alpha, a, b), x, t_x / age.max(), age / age.max())
    expected = -per_customer.mean() + 0.01 * (r**2 + alpha**2 + a**2 + b**2)
    assert _bgnbd_objective(log_params, data, 0.01)[0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "log_params", [np.log([1.0, 2.0, 30.0]), np.array([1.8, 1.3, 2.7]), np.array([-1.0, 0.2, 0.5])]
)
def test_gamma_gamma_objective_gradient(cdnow: pl.DataFrame, log_params: np.ndarray) -> None:
    repeat = cdnow.filter(pl.col("frequency") > 0)
    x, m = repeat["frequency"].to_numpy().astype(float), repeat["monetary_value"].to_numpy()
    data = _GammaGammaData.build(x, m, np.ones_like(x))
    analytic, numeric = _objective_gradients(data, _gamma_gamma_objective, log_params)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-6)
    p, q, v = np.exp(log_params)
    expected = -clv.gamma_gamma_log_likelihood(GammaGammaParams(p, q, v), x, m).mean() + 0.01 * (
        p**2 + q**2 + v**2
    )
    assert _gamma_gamma_objective(log_params, data, 0.01)[0] == pytest.approx(expected, rel=1e-12)


def test_non_converged_fit_is_flagged() -> None:
    # Identical spends: the spend variance is 0, so p and q run off to infinity.
    with pytest.warns(RuntimeWarning, match="did not converge"):
        fit = clv.fit_gamma_gamma([1, 2, 3], [5.0, 5.0, 5.0])
    assert not fit.converged


# --------------------------------------------------------------------------------------------------
# Predictions against lifetimes 0.11.3 at the fixed parameters BG and GG
# --------------------------------------------------------------------------------------------------

# lifetimes 0.11.3: BetaGeoFitter.conditional_expected_number_of_purchases_up_to_time(t, ...)
EXPECTED_PURCHASES = {
    1.0: [
        0.03744327872943787,
        0.0060646056907752,
        0.00558651821338271,
        0.00888475593307864,
        0.01873415380336779,
        0.6623967155242685,
        0.7106236196242139,
        0.00768554288866385,
    ],
    39.0: [
        1.2259111998992285,
        0.20324888286609233,
        0.19478655038715112,
        0.2977632528826936,
        0.6267980982278458,
        20.053589797077926,
        20.75048390015057,
        0.25898507663871295,
    ],
    52.0: [
        1.5585840056700448,
        0.2599047609465544,
        0.25167302746953163,
        0.380765128781211,
        0.8012156725097427,
        25.06130261538205,
        25.759338513090917,
        0.3320802073857959,
    ],
}
# lifetimes 0.11.3: BetaGeoFitter.conditional_probability_alive(...)
PROBABILITY_ALIVE = [
    0.7266079973001562,
    0.21222445924803884,
    1.0,
    0.31091263300374594,
    0.646988086903291,
    0.9691331053363038,
    0.9689192315509454,
    1.0,
]
# lifetimes 0.11.3: BetaGeoFitter.expected_number_of_purchases_up_to_time([1, 39, 78])
POPULATION_PURCHASES = [0.05318665594923623, 1.1950518784094886, 1.8580217586441132]
# lifetimes 0.11.3: GammaGammaFitter.conditional_expected_average_profit(...)
AVERAGE_VALUE = [
    24.656890738748196,
    18.908435778143485,
    35.162136947966765,
    17.67162752301739,
    28.948817399813187,
    26.392806467507,
    39.89013531993811,
    35.162136947966765,
]
# lifetimes 0.11.3: GammaGammaFitter.customer_lifetime_value(bgf, ..., time=months, discount_rate=0.01, freq="W")
CLV_WEEKS_LIFETIMES_W = {
    1: [
        3.8993205103796353,
        0.48559503856114106,
        0.8353986364487561,
        0.6648721167678582,
        2.2961084411257033,
        73.13020499857247,
        117.9805193749148,
        1.1444979530167054,
    ],
    12: [
        36.275964311431395,
        4.636678625703692,
        8.342232084036704,
        6.348496355684539,
        21.884252209690896,
        625.3437531066697,
        972.1170648682885,
        11.014678090494419,
    ],
    24: [
        59.16492494358181,
        7.687074979891845,
        14.259679651976235,
        10.525070084690372,
        36.24530410795504,
        975.5273120649147,
        1492.856279324908,
        18.449509447928623,
    ],
}
# lifetimes 0.11.3, freq="D", time=12, discount_rate=0.01, on the same customers with recency and T in
# days (x 7) and alpha in days (x 7).
CLV_DAYS_12 = [
    35.86854069108669,
    4.583264250097316,
    8.241787553516618,
    6.275361899697357,
    21.632552868264607,
    618.8456382413282,
    962.3262677647925,
    10.886180988865622,
]


@pytest.mark.parametrize("t", sorted(EXPECTED_PURCHASES))
def test_conditional_expected_purchases_matches_lifetimes(t: float) -> None:
    got = clv.conditional_expected_purchases(BG, t, FREQ, REC, AGE)
    np.testing.assert_allclose(got, EXPECTED_PURCHASES[t], rtol=1e-10)


def test_conditional_expected_purchases_matches_the_paper() -> None:
    # Fader, Hardie & Lee (2005), section 5: customer with x = 2, t_x = 30.43, T = 38.86 expects 1.226
    # transactions in the next 39 weeks.
    fitted = BGNBDParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
    assert clv.conditional_expected_purchases(fitted, 39, 2, 30.43, 38.86)[0] == pytest.approx(
        1.226, abs=5e-4
    )


def test_probability_alive_matches_lifetimes() -> None:
    np.testing.assert_allclose(clv.probability_alive(BG, FREQ, REC, AGE), PROBABILITY_ALIVE, rtol=1e-12)


def test_expected_purchases_population_matches_lifetimes() -> None:
    got = clv.expected_purchases_population(BG, [1.0, 39.0, 78.0])
    np.testing.assert_allclose(got, POPULATION_PURCHASES, rtol=1e-10)
    assert clv.expected_purchases_population(BG, 0.0)[0] == 0.0


def test_expected_purchases_population_matches_simulation() -> None:
    # Simulate the BG/NBD story for new customers: Poisson(λ t) purchase opportunities while alive, and
    # a Geometric(p) number of repeat purchases before dropping out (a customer only drops out right
    # after a repeat purchase).
    rng = np.random.default_rng(2005)
    n, t = 400_000, 39.0
    rate = rng.gamma(BG.r, 1.0 / BG.alpha, n)
    dropout = rng.beta(BG.a, BG.b, n)
    purchases = np.minimum(rng.poisson(rate * t), rng.geometric(dropout))
    standard_error = purchases.std() / math.sqrt(n)
    assert abs(purchases.mean() - clv.expected_purchases_population(BG, t)[0]) < 4 * standard_error


def test_conditional_expected_average_value_matches_lifetimes() -> None:
    np.testing.assert_allclose(
        clv.conditional_expected_average_value(GG, FREQ, MON), AVERAGE_VALUE, rtol=1e-12
    )


@pytest.mark.parametrize("months", sorted(CLV_WEEKS_LIFETIMES_W))
def test_customer_lifetime_value_matches_lifetimes_weekly(months: int) -> None:
    # lifetimes' freq="W" counts 4.345 weeks in a month.
    got = clv.customer_lifetime_value(BG, GG, FREQ, REC, AGE, MON, months=months, time_unit_days=30 / 4.345)
    np.testing.assert_allclose(got, CLV_WEEKS_LIFETIMES_W[months], rtol=1e-10)


def test_customer_lifetime_value_time_unit_days() -> None:
    # Weekly data with time_unit_days=7 is the same as daily data with lifetimes' freq="D" (30-day months).
    got = clv.customer_lifetime_value(BG, GG, FREQ, REC, AGE, MON, months=12, time_unit_days=7.0)
    np.testing.assert_allclose(got, CLV_DAYS_12, rtol=1e-10)
    in_days = clv.customer_lifetime_value(
        BGNBDParams(BG.r, BG.alpha * 7, BG.a, BG.b), GG, FREQ, REC * 7, AGE * 7, MON, time_unit_days=1.0
    )
    np.testing.assert_allclose(in_days, CLV_DAYS_12, rtol=1e-10)


def test_customer_lifetime_value_edge_cases() -> None:
    assert np.all(clv.customer_lifetime_value(BG, GG, FREQ, REC, AGE, MON, months=0) == 0.0)
    undiscounted = clv.customer_lifetime_value(BG, GG, FREQ, REC, AGE, MON, monthly_discount_rate=0.0)
    horizon = 12 * clv.DAYS_PER_MONTH / 7
    expected = clv.conditional_expected_purchases(
        BG, horizon, FREQ, REC, AGE
    ) * clv.conditional_expected_average_value(GG, FREQ, MON)
    np.testing.assert_allclose(undiscounted, expected, rtol=1e-12)


# --------------------------------------------------------------------------------------------------
# Input forms
# --------------------------------------------------------------------------------------------------


def test_accepts_lists_polars_series_and_scalars() -> None:
    expected = clv.probability_alive(BG, FREQ, REC, AGE)
    for args in [
        (FREQ.tolist(), REC.tolist(), AGE.tolist()),
        (pl.Series(FREQ), pl.Series(REC), pl.Series(AGE)),
        (pl.Series(FREQ, dtype=pl.Int32), REC.tolist(), pl.Series(AGE)),
    ]:
        got = clv.probability_alive(BG, *args)
        assert isinstance(got, np.ndarray) and got.dtype == np.float64 and got.shape == (8,)
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    scalar = clv.conditional_expected_purchases(BG, 39, 2, 30.43, 38.86)
    assert scalar.shape == (1,)
    shared_age = clv.conditional_expected_purchases(BG, [1.0, 2.0], [0, 3], [0.0, 20.0], 38.86)
    assert shared_age.shape == (2,)
    assert clv.probability_alive(BG, [], [], []).shape == (0,)


def test_inputs_are_not_modified() -> None:
    x, t_x, age = FREQ.copy(), REC.copy(), AGE.copy()
    clv.customer_lifetime_value(BG, GG, x, t_x, age, MON)
    clv.fit_bgnbd(x, t_x, age, penalizer=0.01)
    np.testing.assert_array_equal(x, FREQ)
    np.testing.assert_array_equal(t_x, REC)


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frequency", "recency", "T", "message"),
    [
        ([1, -1], [1.0, 0.0], [2.0, 2.0], "frequency must be >= 0"),
        ([1.5, 0], [1.0, 0.0], [2.0, 2.0], "whole number"),
        ([1, 0], [-1.0, 0.0], [2.0, 2.0], "recency must be >= 0"),
        ([1, 0], [3.0, 0.0], [2.0, 2.0], "recency must be <= T"),
        ([1, 0], [1.0, 1.0], [2.0, 2.0], "recency must be 0 for customers with frequency 0"),
        ([1, 0], [float("nan"), 0.0], [2.0, 2.0], "recency contains NaN"),
        ([1, 0], [1.0, 0.0], [2.0, float("inf")], "T contains NaN or infinite"),
        (pl.Series([1, None]), [1.0, 0.0], [2.0, 2.0], "frequency contains NaN"),
        ([1, 0, 2], [1.0, 0.0], [2.0, 2.0], "mismatched lengths"),
        ([[1, 0]], [1.0, 0.0], [2.0, 2.0], "1-D"),
        (["a", "b"], [1.0, 0.0], [2.0, 2.0], "frequency must be numeric"),
    ],
)
def test_bgnbd_input_validation(frequency, recency, T, message: str) -> None:
    for call in (
        lambda: clv.fit_bgnbd(frequency, recency, T),
        lambda: clv.probability_alive(BG, frequency, recency, T),
        lambda: clv.conditional_expected_purchases(BG, 1.0, frequency, recency, T),
        lambda: clv.bgnbd_log_likelihood(BG, frequency, recency, T),
        lambda: clv.customer_lifetime_value(BG, GG, frequency, recency, T, 10.0),
    ):
        with pytest.raises(ValueError, match=message):
            call()


def test_other_validation_errors() -> None:
    with pytest.raises(ValueError, match="at least one customer with frequency > 0"):
        clv.fit_bgnbd([0, 0], [0.0, 0.0], [3.0, 4.0])
    with pytest.raises(ValueError, match="at least one customer with frequency > 0"):
        clv.fit_bgnbd([], [], [])
    with pytest.raises(ValueError, match="T > 0"):
        clv.fit_bgnbd([1, 0], [0.0, 0.0], [0.0, 0.0])
    with pytest.raises(ValueError, match="penalizer"):
        clv.fit_bgnbd(FREQ, REC, AGE, penalizer=-0.1)
    with pytest.raises(ValueError, match="t must be >= 0"):
        clv.conditional_expected_purchases(BG, -1.0, FREQ, REC, AGE)
    with pytest.raises(ValueError, match="t must be >= 0"):
        clv.expected_purchases_population(BG, [1.0, -1.0])
    with pytest.raises(ValueError, match="at least one customer with frequency > 0"):
        clv.fit_gamma_gamma([0, 0], [0.0, 0.0])
    with pytest.raises(ValueError, match="monetary_value must be > 0"):
        clv.fit_gamma_gamma([1, 2], [0.0, 3.0])
    with pytest.raises(ValueError, match="monetary_value must be >= 0"):
        clv.conditional_expected_average_value(GG, [1, 2], [-1.0, 3.0])
    with pytest.raises(ValueError, match="q <= 1"):
        clv.conditional_expected_average_value(GammaGammaParams(p=2.0, q=0.9, v=3.0), [1], [3.0])
    with pytest.raises(ValueError, match="parameter alpha must be finite and > 0"):
        BGNBDParams(r=0.2, alpha=0.0, a=0.8, b=2.4)
    with pytest.raises(ValueError, match="parameter v must be finite and > 0"):
        GammaGammaParams(p=1.0, q=2.0, v=float("nan"))
    for kwargs, message in [
        ({"months": -1}, "months"),
        ({"months": 1.5}, "months"),
        ({"monthly_discount_rate": -0.01}, "monthly_discount_rate"),
        ({"time_unit_days": 0.0}, "time_unit_days"),
    ]:
        with pytest.raises(ValueError, match=message):
            clv.customer_lifetime_value(BG, GG, FREQ, REC, AGE, MON, **kwargs)


def test_params_are_frozen() -> None:
    with pytest.raises(AttributeError):
        BG.r = 1.0  # type: ignore[misc]


# --------------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------------

_positive = st.floats(min_value=1e-3, max_value=1e3)
_bgnbd_params = st.builds(BGNBDParams, r=_positive, alpha=_positive, a=_positive, b=_positive)
_frequency = st.one_of(st.integers(0, 100), st.integers(0, 10**15)).map(float)


@st.composite
def _customers(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = draw(st.integers(1, 8))
    x, t_x, age = [], [], []
    for _ in range(n):
        frequency = draw(_frequency)
        T = draw(st.floats(min_value=0.0, max_value=1e4))
        x.append(frequency)
        t_x.append(0.0 if frequency == 0 else draw(st.floats(min_value=0.0, max_value=1.0)) * T)
        age.append(T)
    return np.array(x), np.array(t_x), np.array(age)


@settings(max_examples=300, deadline=None)
@given(params=_bgnbd_params, customers=_customers())
def test_bgnbd_log_likelihood_and_probability_alive_are_well_behaved(params: BGNBDParams, customers) -> None:
    x, t_x, age = customers
    assert np.all(np.isfinite(clv.bgnbd_log_likelihood(params, x, t_x, age)))
    alive = clv.probability_alive(params, x, t_x, age)
    assert np.all((alive >= 0.0) & (alive <= 1.0))
    assert np.all(alive[x == 0] == 1.0)
    # A customer whose last purchase is at the end of the period (t_x = T) has not had a chance to
    # show they dropped out, hence is alive with probability (b+x-1)/(a+b+x-1).
    at_end = x > 0
    if np.any(at_end):
        recent = clv.probability_alive(params, x[at_end], age[at_end], age[at_end])
        expected = (params.b + x[at_end] - 1) / (params.a + params.b + x[at_end] - 1)
        np.testing.assert_allclose(recent, expected, rtol=1e-9)


@settings(max_examples=200, deadline=None)
@given(
    params=_bgnbd_params.filter(lambda p: abs(p.a - 1.0) > 1e-3),
    customers=_customers(),
    t=st.floats(min_value=0.0, max_value=1e3),
    extra=st.floats(min_value=0.0, max_value=1e3),
)
def test_conditional_expected_purchases_grow_with_t(
    params: BGNBDParams, customers, t: float, extra: float
) -> None:
    x, t_x, age = customers
    x = np.minimum(x, 1e6)
    sooner = clv.conditional_expected_purchases(params, t, x, t_x, age)
    later = clv.conditional_expected_purchases(params, t + extra, x, t_x, age)
    assert np.all(np.isfinite(sooner)) and np.all(sooner >= 0.0)
    # 1e-6: the hypergeometric evaluation is good to ~1e-7 in the worst corners (whole-number a - r, z ~ 1).
    assert np.all(later >= sooner * (1 - 1e-6) - 1e-12)


@settings(max_examples=100, deadline=None)
@given(
    params=_bgnbd_params.filter(lambda p: abs(p.a - 1.0) > 1e-3),
    customers=_customers(),
    months=st.integers(0, 36),
    discount=st.floats(min_value=0.0, max_value=0.2),
    spend=st.floats(min_value=0.0, max_value=1e4),
)
def test_customer_lifetime_value_grows_with_months(
    params: BGNBDParams, customers, months: int, discount: float, spend: float
) -> None:
    x, t_x, age = customers
    x = np.minimum(x, 1e6)
    m = np.where(x > 0, spend, 0.0)
    shorter = clv.customer_lifetime_value(
        params, GG, x, t_x, age, m, months=months, monthly_discount_rate=discount
    )
    longer = clv.customer_lifetime_value(
        params, GG, x, t_x, age, m, months=months + 1, monthly_discount_rate=discount
    )
    assert np.all(np.isfinite(longer)) and np.all(shorter >= 0.0)
    assert np.all(longer >= shorter * (1 - 1e-6) - 1e-12)


@settings(max_examples=200, deadline=None)
@given(
    p=_positive,
    q=_positive,
    v=_positive,
    x=_frequency.filter(lambda f: f > 0),
    m=st.floats(min_value=1e-6, max_value=1e6),
)
def test_gamma_gamma_log_likelihood_is_finite(p: float, q: float, v: float, x: float, m: float) -> None:
    ll = clv.gamma_gamma_log_likelihood(GammaGammaParams(p, q, v), [x, 0.0], [m, 0.0])
    assert np.isfinite(ll[0]) and ll[1] == 0.0


def test_fit_warns_nothing_on_well_posed_data(cdnow: pl.DataFrame) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clv.fit_bgnbd(cdnow["frequency"], cdnow["recency"], cdnow["T"])
        clv.fit_gamma_gamma(cdnow["frequency"], cdnow["monetary_value"])


def test_collapse_duplicates_numpy_and_polars_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small inputs are collapsed with a numpy sort, large ones with a polars group-by: the same rows."""
    rng = np.random.default_rng(3)
    cols = [
        rng.integers(0, 40, 5000).astype(float),
        rng.integers(0, 9, 5000) * 0.5,
        rng.gamma(2.0, 3.0, 5000),
    ]
    cols[2][::3] = 1.25  # duplicates in the continuous column too
    cols[1][::7] = -0.0
    numpy_rows, numpy_counts = _collapse_duplicates(*cols)
    monkeypatch.setattr(fitting, "_COLLAPSE_WITH_POLARS", 1)
    polars_rows, polars_counts = _collapse_duplicates(*cols)
    for a, b in zip(numpy_rows, polars_rows, strict=True):
        np.testing.assert_array_equal(a, b)
        assert not np.signbit(a).any()  # -0.0 counted as 0.0
    np.testing.assert_array_equal(numpy_counts, polars_counts)
    assert numpy_counts.sum() == 5000 and len(numpy_counts) < 5000


def test_a_line_search_stalled_at_the_optimum_counts_as_converged():
    """L-BFGS-B stops "ABNORMAL" (status 2) when its line search finds no decrease: at the optimum itself when
    the objective is flat at float precision (a tiny venue's Gamma-Gamma fit: |gradient| 4e-9, gtol 1e-9 out
    of reach), converged; with the gradient still large, not. Rosenbrock's objective rounded to a grid makes
    both stops deterministic."""
    import warnings

    from analytics_pipelines.customers.clv import fitting

    def rosenbrock(grid: float):
        def objective(x, data, penalizer):
            a, b = x
            f = (1 - a) ** 2 + 100 * (b - a * a) ** 2
            g = np.array([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)])
            return float(np.round(f / grid) * grid), g

        return objective

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        at_optimum, converged = fitting._minimize(rosenbrock(1e-12), np.array([-1.2, 1.0]), None, 0.0)
        short, stopped_short = fitting._minimize(rosenbrock(1e-6), np.array([-1.2, 1.0]), None, 0.0)
    assert converged and np.allclose(at_optimum, 1.0, atol=1e-6)
    assert not stopped_short and not np.allclose(short, 1.0, atol=1e-5)
