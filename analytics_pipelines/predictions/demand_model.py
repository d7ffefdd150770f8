"""The demand model: a HistGradientBoosting regressor with the Poisson loss (expected tickets of a day) and a
negative binomial around it (p10/p50/p90) on the feature rows of predictions/demand_data.py, the two
baselines it must beat, and the error measures of the backtest.

Baselines (evaluated on the same rows):
- `seasonal_naive`: the series' tickets on the same weekday of the last observed week (weekly seasonal
  naive), interval = the point (no spread);
- `seed_heuristic`: the old service's rule (analytics-service PredictionService.predictDemand, L6583-6638):
  150 tickets on a Saturday or Sunday, 100 otherwise, per day, whatever the event or ticket type; its
  `Math.random() * 50 - 25` noise has mean 0 and is left out (the rule's expectation), its interval is
  0.8x..1.2x (the rule's own).

MASE (Hyndman & Koehler 2006) with the weekly seasonal-naive in-sample scale: mean |error| over the test rows
divided by the mean |y_t - y_(t-7)| over the evaluated series' observed days up to the origin (pooled across
the series: a per-series scale is 0 for a series without sales). A model beats a baseline when its MASE is
lower (the same scale: its MAE is lower)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import stats
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from analytics_pipelines.predictions.demand_data import CATEGORICAL, FEATURES

QUANTILES = {"p10": 0.1, "p50": 0.5, "p90": 0.9}
MODEL_NAME = "hist_gradient_boosting_poisson_nb"
BASELINES = ("seasonal_naive", "seed_heuristic")
#: training rows above this are subsampled (deterministically: a hash of the row's key)
MAX_TRAIN_ROWS = 50_000
SEED = 20261206
#: the regressor's settings (deterministic: fixed seed, no early stopping)
HGB_PARAMS = {
    "loss": "poisson",
    "max_iter": 100,
    "learning_rate": 0.12,
    "max_leaf_nodes": 31,
    "min_samples_leaf": 40,
    "l2_regularization": 1.0,
}


@dataclass
class DemandModel:
    """The expected tickets of a day (HistGradientBoosting, Poisson loss) and a negative binomial around
    it, Var = mu + alpha mu^2, alpha fitted on the training rows by the method of moments: its 10/50/90 %
    quantiles are p10/p50/p90 (p50 is the predictive median: what minimises the absolute error)."""

    model: HistGradientBoostingRegressor
    alpha: float
    features: list[str]

    def mean(self, rows: pl.DataFrame) -> np.ndarray:
        with threadpool_limits(limits=1):
            return np.clip(self.model.predict(matrix(rows)), 0.0, None)

    def predict(self, rows: pl.DataFrame) -> pl.DataFrame:
        """tickets_p10/p50/p90 per row: never negative, never above the series' remaining tickets, ordered."""
        mu = self.mean(rows)
        raw = nb_quantiles(list(QUANTILES.values()), mu, self.alpha)
        cap = rows["remaining"].cast(pl.Float64).to_numpy()
        raw = np.sort(np.clip(raw, 0.0, cap[:, None]), axis=1)  # p10 <= p50 <= p90
        return pl.DataFrame({f"tickets_{q}": raw[:, i] for i, q in enumerate(QUANTILES)})


def nb_quantile(q: float, mu: np.ndarray, alpha: float) -> np.ndarray:
    """The q-quantile of a negative binomial with mean mu and Var = mu + alpha mu^2 (Poisson when alpha ~ 0)."""
    mu = np.maximum(mu, 1e-9)
    if alpha < 1e-6:
        return stats.poisson.ppf(q, mu)
    n = 1.0 / alpha
    return stats.nbinom.ppf(q, n, n / (n + mu))


#: rows whose mean is above this (or whose P(0) underflows) take scipy's ppf instead of the pmf walk
WALK_MAX_MEAN = 200.0


def nb_quantiles(qs: list[float], mu: np.ndarray, alpha: float) -> np.ndarray:
    """The qs-quantiles (columns, qs ascending) of negative binomials with means mu and Var = mu + alpha mu^2
    (Poisson when alpha ~ 0): the least k with P(X <= k) >= q, as scipy's ppf defines it, found for all the
    quantiles at once by walking the pmf recurrence (P(k+1) = P(k) (k + n)/(k + 1) (1 - p); Poisson:
    P(k) mu/(k + 1)) over the rows still below the highest q, vectorized; rows with a large mean (the walk
    would be long, P(0) may underflow) use scipy's ppf (`nb_quantile`), ~1.8 us a value."""
    mu = np.maximum(np.asarray(mu, dtype=np.float64), 1e-9)
    out = np.zeros((len(mu), len(qs)))
    poisson = alpha < 1e-6
    if poisson:
        log_p0 = -mu
    else:
        n = 1.0 / alpha
        p = n / (n + mu)
        log_p0 = n * np.log(p)
    walk = (mu <= WALK_MAX_MEAN) & (log_p0 > -700.0)
    if (~walk).any():
        for j, q in enumerate(qs):
            out[~walk, j] = nb_quantile(q, mu[~walk], alpha)
    idx = np.flatnonzero(walk)
    pmf = np.exp(log_p0[idx])
    cdf = pmf.copy()
    ratio = mu[idx] if poisson else (1.0 - p[idx])
    extra = 0.0 if poisson else n
    found = np.zeros((len(idx), len(qs)), dtype=bool)
    top = qs[-1] - 1e-12
    k = 0
    while len(idx):
        for j, q in enumerate(qs):
            hit = ~found[:, j] & (cdf >= q)
            out[idx[hit], j] = k
            found[:, j] |= hit
        active = cdf < top
        if not active.any():
            break
        idx, pmf, cdf, ratio, found = idx[active], pmf[active], cdf[active], ratio[active], found[active]
        pmf = pmf * ratio * ((k + extra) if not poisson else 1.0) / (k + 1)
        cdf = cdf + pmf
        k += 1
    return out


def matrix(rows: pl.DataFrame) -> np.ndarray:
    return rows.select(pl.col(c).cast(pl.Float64).fill_null(0.0).fill_nan(0.0) for c in FEATURES).to_numpy()


def subsample(rows: pl.DataFrame, limit: int = MAX_TRAIN_ROWS) -> pl.DataFrame:
    if rows.height <= limit:
        return rows
    h = pl.concat_str("ticket_type_id", pl.col("origin").cast(pl.String), pl.col("day").cast(pl.String)).hash(
        SEED
    )
    return (
        rows.with_columns(h.alias("_h"))
        .sort("_h")
        .head(limit)
        .drop("_h")
        .sort("origin", "ticket_type_id", "day")
    )


def fit(rows: pl.DataFrame, max_iter: int | None = None) -> DemandModel:
    """The Poisson regressor on the labelled rows (deterministic: fixed seed, no early stopping) and the
    dispersion of the counts around it."""
    rows = subsample(rows.filter(pl.col("target").is_not_null()))
    x, y = matrix(rows), rows["target"].cast(pl.Float64).to_numpy()
    cat = [FEATURES.index(c) for c in CATEGORICAL]
    with threadpool_limits(limits=1):
        model = HistGradientBoostingRegressor(
            **{**HGB_PARAMS, **({"max_iter": max_iter} if max_iter else {})},
            categorical_features=cat,
            early_stopping=False,
            random_state=SEED,
        ).fit(x, y)
        mu = np.clip(model.predict(x), 0.0, None)
    denom = float((mu**2).sum())
    alpha = max(0.0, float(((y - mu) ** 2 - mu).sum()) / denom) if denom > 0 else 0.0
    return DemandModel(model, alpha, list(FEATURES))


def baselines(rows: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """The baselines' forecasts (tickets_p10/p50/p90) for the rows."""
    naive = rows["same_weekday_last_week"].cast(pl.Float64)
    weekend = rows["weekday"] >= 6
    seed = pl.Series(np.where(weekend.to_numpy(), 150.0, 100.0))
    return {
        "seasonal_naive": pl.DataFrame({"tickets_p10": naive, "tickets_p50": naive, "tickets_p90": naive}),
        "seed_heuristic": pl.DataFrame(
            {"tickets_p10": seed * 0.8, "tickets_p50": seed, "tickets_p90": seed * 1.2}
        ),
    }


def mase_scale(grid: pl.DataFrame, series: list[str], origin) -> float:
    """Mean |y_t - y_(t-7)| over the series' observed days up to `origin` (pooled; days with a t-7 only)."""
    g = grid.filter(pl.col("ticket_type_id").is_in(series) & (pl.col("day") <= origin)).sort(
        "ticket_type_id", "day"
    )
    d = g.with_columns(
        (pl.col("tickets") - pl.col("tickets").shift(7).over("ticket_type_id")).abs().alias("d")
    )
    v = d["d"].drop_nulls()
    return float(v.mean()) if v.len() else float("nan")


def errors(actual: np.ndarray, fc: pl.DataFrame, scale: float) -> dict[str, float]:
    """MAE, MASE, bias, the 80 % interval's coverage and mean width for one forecast of the rows."""
    p50 = fc["tickets_p50"].to_numpy()
    lo, hi = fc["tickets_p10"].to_numpy(), fc["tickets_p90"].to_numpy()
    mae = float(np.mean(np.abs(actual - p50))) if len(actual) else float("nan")
    return {
        "mae": mae,
        "mase": mae / scale if scale and scale == scale and scale > 0 else float("nan"),
        "bias": float(np.mean(p50 - actual)) if len(actual) else float("nan"),
        "coverage_80": float(np.mean((actual >= lo - 1e-9) & (actual <= hi + 1e-9)))
        if len(actual)
        else float("nan"),
        "interval_width_80": float(np.mean(hi - lo)) if len(actual) else float("nan"),
    }
