"""The log-log demand model's estimator: Poisson pseudo-maximum likelihood with one level of fixed effects
concentrated out, and cluster-robust standard errors. numpy only.

Model: E[tickets_it] = exp(a_i + sum_g b_g * 1[i in g] * log(price_it) + controls_it * c), i = a ticket type
(its fixed effect a_i), t = a day. b_g is the price elasticity of group g (a category, or a category at a
venue). It is the log-log model log E[q] = a + b log p + controls; it is fitted by Poisson PML rather than by
OLS on log(q) because most ticket-type days sell 0 or a handful of tickets: log(0) is undefined and dropping
the zero days biases OLS towards 0 (Santos Silva & Tenreyro 2006). PPML is consistent for any count
distribution whose mean follows the model (overdispersion included); the sandwich variance does not assume
Poisson variance.

Fixed effects: for a given b, the first-order condition of a_i has a closed form, a_i = log(sum_t q_it) -
log(sum_t exp(x_it b)), so they are concentrated out; the Newton step of b then uses the within-transformed
(mu-weighted, demeaned per ticket type) regressors, which is the Frisch-Waugh-Lovell "within" estimator of
a GLM with one fixed effect.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass
class Fit:
    beta: np.ndarray
    se: np.ndarray
    converged: bool
    iterations: int
    n_obs: int
    n_clusters: int
    #: per observation fitted mean (dropped groups: NaN)
    mu: np.ndarray
    #: per fixed-effect group: its estimated level (NaN for groups without any sale)
    alpha: np.ndarray

    def ci(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        z = stats.norm.ppf(0.5 + level / 2)
        return self.beta - z * self.se, self.beta + z * self.se


def _group_sum(values: np.ndarray, groups: np.ndarray, n: int) -> np.ndarray:
    if values.ndim == 1:
        return np.bincount(groups, weights=values, minlength=n)
    return np.stack(
        [np.bincount(groups, weights=values[:, j], minlength=n) for j in range(values.shape[1])], 1
    )


def fit_ppml(
    y: np.ndarray,
    x: np.ndarray,
    fe: np.ndarray,
    cluster: np.ndarray,
    offset: np.ndarray | None = None,
    max_iter: int = 100,
    tol: float = 1e-9,
) -> Fit:
    """Poisson PML of y on x with a fixed effect per `fe` code, standard errors clustered by `cluster` codes
    (with the small-sample factor G/(G-1)). Groups whose y are all 0 carry no information and are dropped.
    x must not hold a constant (the fixed effects are the constants)."""
    y = np.asarray(y, float)
    x = np.asarray(x, float)
    fe = np.unique(np.asarray(fe), return_inverse=True)[1]
    n_fe = int(fe.max()) + 1 if fe.size else 0
    y_g = np.bincount(fe, weights=y, minlength=n_fe)
    keep = y_g[fe] > 0
    k = x.shape[1]
    mu_all = np.full(y.size, np.nan)
    alpha_all = np.full(n_fe, np.nan)
    if keep.sum() <= k or k == 0:
        return Fit(np.full(k, np.nan), np.full(k, np.nan), False, 0, int(keep.sum()), 0, mu_all, alpha_all)
    off = np.zeros(y.size) if offset is None else np.asarray(offset, float)
    yk, xk, fk, ok = y[keep], x[keep], fe[keep], off[keep]
    cl = np.unique(np.asarray(cluster)[keep], return_inverse=True)[1]
    beta = np.zeros(k)
    converged = False
    it = 0
    while it < max_iter:
        it += 1
        eta = xk @ beta + ok
        eta -= eta.max()
        e = np.exp(eta)
        alpha = np.log(np.where(y_g > 0, y_g, 1.0)) - np.log(
            np.maximum(np.bincount(fk, weights=e, minlength=n_fe), 1e-300)
        )
        mu = np.exp(alpha[fk] + eta)
        w_g = np.bincount(fk, weights=mu, minlength=n_fe)
        xbar = _group_sum(mu[:, None] * xk, fk, n_fe) / np.maximum(w_g, 1e-300)[:, None]
        xt = xk - xbar[fk]
        h = xt.T @ (mu[:, None] * xt)
        score = xt.T @ (yk - mu)
        step = np.linalg.lstsq(h, score, rcond=None)[0]
        # damped Newton: the profile log-likelihood is concave, a cap on the step keeps exp() finite
        big = np.abs(step).max()
        if big > 2:
            step *= 2 / big
        beta = beta + step
        if np.abs(step).max() < tol:
            converged = True
            break
    eta = xk @ beta + ok
    shift = eta.max()
    e = np.exp(eta - shift)
    alpha = np.log(np.where(y_g > 0, y_g, 1.0)) - np.log(
        np.maximum(np.bincount(fk, weights=e, minlength=n_fe), 1e-300)
    )
    mu = np.exp(alpha[fk] + eta - shift)
    w_g = np.bincount(fk, weights=mu, minlength=n_fe)
    xbar = _group_sum(mu[:, None] * xk, fk, n_fe) / np.maximum(w_g, 1e-300)[:, None]
    xt = xk - xbar[fk]
    h = xt.T @ (mu[:, None] * xt)
    h_inv = np.linalg.pinv(h)
    g = int(cl.max()) + 1
    s = _group_sum(xt * (yk - mu)[:, None], cl, g)
    meat = s.T @ s * (g / (g - 1) if g > 1 else 1.0)
    v = h_inv @ meat @ h_inv
    se = np.sqrt(np.maximum(np.diag(v), 0))
    mu_all[keep] = mu
    alpha_all = np.where(y_g > 0, alpha - shift, np.nan)
    return Fit(beta, se, converged, it, int(keep.sum()), g, mu_all, alpha_all)


def dummies(codes: np.ndarray, n_levels: int) -> np.ndarray:
    """One-hot columns of codes 1..n_levels-1 (level 0 is the reference)."""
    out = np.zeros((codes.size, max(n_levels - 1, 0)))
    rows = np.flatnonzero(codes > 0)
    out[rows, codes[rows] - 1] = 1.0
    return out


@dataclass
class Slopes:
    """Per group: its slope, cluster-robust standard error, observations, and clusters with price
    variation behind it."""

    beta: np.ndarray
    se: np.ndarray
    n_obs: np.ndarray
    n_clusters: np.ndarray
    converged: bool


def fit_slopes(
    y: np.ndarray,
    z: np.ndarray,
    group: np.ndarray,
    n_groups: int,
    fe: np.ndarray,
    cluster: np.ndarray,
    offset: np.ndarray,
    max_iter: int = 100,
    tol: float = 1e-9,
) -> Slopes:
    """One slope of z per group (every fixed-effect group and cluster lies within one group), the rest of
    the linear predictor given as `offset`: independent one-parameter PPML problems, solved together with
    vectorized Newton steps. Standard errors clustered (clusters nested in the groups), jackknife-type (CV3:
    the usual sandwich is far too small with the few events a category's price changes come from); the
    number of clusters with price variation is returned for t(G-1) intervals. A slope resting on one such
    cluster is not identified (NaN)."""
    y, z, off = (np.asarray(a, float) for a in (y, z, offset))
    fe = np.unique(np.asarray(fe), return_inverse=True)[1]
    n_fe = int(fe.max()) + 1 if fe.size else 0
    y_g = np.bincount(fe, weights=y, minlength=n_fe)
    keep = y_g[fe] > 0
    y, z, off, fe, grp = y[keep], z[keep], off[keep], fe[keep], np.asarray(group)[keep]
    cl = np.unique(np.asarray(cluster)[keep], return_inverse=True)[1]
    logy = np.log(np.where(y_g > 0, y_g, 1.0))
    beta = np.zeros(n_groups)
    converged = False

    def _state(b):
        eta = b[grp] * z + off
        shift = np.full(n_fe, -np.inf)  # per fixed-effect group shift: exp() stays finite
        np.maximum.at(shift, fe, eta)
        shift = np.where(np.isfinite(shift), shift, 0.0)
        e = np.exp(eta - shift[fe])
        alpha = logy - np.log(np.maximum(np.bincount(fe, weights=e, minlength=n_fe), 1e-300))
        mu = np.exp(alpha[fe] + eta - shift[fe])
        w = np.bincount(fe, weights=mu, minlength=n_fe)
        zbar = np.bincount(fe, weights=mu * z, minlength=n_fe) / np.maximum(w, 1e-300)
        zt = z - zbar[fe]
        return mu, zt

    for _ in range(max_iter):
        mu, zt = _state(beta)
        h = np.bincount(grp, weights=mu * zt * zt, minlength=n_groups)
        s = np.bincount(grp, weights=zt * (y - mu), minlength=n_groups)
        step = np.where(h > 1e-12, s / np.maximum(h, 1e-12), 0.0)
        step = np.clip(step, -2, 2)
        beta = beta + step
        if np.abs(step).max(initial=0) < tol:
            converged = True
            break
    mu, zt = _state(beta)
    h = np.bincount(grp, weights=mu * zt * zt, minlength=n_groups)
    n_cl = int(cl.max()) + 1 if cl.size else 0
    # jackknife-type cluster-robust variance (CV3): each cluster's score scaled by the Hessian without it;
    # only clusters with price variation inform a slope (their count is the t distribution's G)
    sc = np.bincount(cl, weights=zt * (y - mu), minlength=n_cl)
    hc = np.bincount(cl, weights=mu * zt * zt, minlength=n_cl)
    cl_group = np.zeros(n_cl, np.int64)
    cl_group[cl] = grp
    informative = hc > 1e-12 * np.maximum(h[cl_group], 1e-300)
    g = np.bincount(cl_group, weights=informative.astype(float), minlength=n_groups)
    rest = h[cl_group] - hc
    lonely = np.bincount(cl_group, weights=(informative & (rest <= 1e-12)).astype(float), minlength=n_groups)
    term = np.where(informative & (rest > 1e-12), (sc / np.where(rest > 1e-12, rest, 1.0)) ** 2, 0.0)
    var = np.bincount(cl_group, weights=term, minlength=n_groups) * np.where(
        g > 1, (g - 1) / np.maximum(g, 1), 0
    )
    identified = (h > 1e-12) & (g >= 2) & (lonely == 0) & (var > 0)
    return Slopes(
        beta=np.where(identified, beta, np.nan),
        se=np.where(identified, np.sqrt(np.where(identified, var, 0.0)), np.nan),
        n_obs=np.bincount(grp, minlength=n_groups),
        n_clusters=g.astype(np.int64),
        converged=converged,
    )


def fit_factors(
    y: np.ndarray, factors: list[np.ndarray], fe: np.ndarray, offset: np.ndarray, iterations: int = 30
) -> list[np.ndarray]:
    """Poisson ML of categorical controls (each an array of level codes) beside the fixed effects, given an
    offset: iterative proportional fitting (each level's coefficient has a closed form given the rest), no
    dense design matrix. Returns the controls' summed contribution per observation (normalized: the fixed
    effects absorb any constant): apply_factors maps them to observations."""
    y = np.asarray(y, float)
    fe = np.unique(np.asarray(fe), return_inverse=True)[1]
    n_fe = int(fe.max()) + 1 if fe.size else 0
    y_fe = np.bincount(fe, weights=y, minlength=n_fe)
    log_y_fe = np.log(np.where(y_fe > 0, y_fe, 1.0))
    deltas = [np.zeros(int(f.max()) + 1 if f.size else 0) for f in factors]
    y_lv = [np.bincount(f, weights=y, minlength=d.size) for f, d in zip(factors, deltas, strict=True)]
    for _ in range(iterations):
        biggest = 0.0
        for j, f in enumerate(factors):
            eta = offset + sum(d[g] for d, g in zip(deltas, factors, strict=True))
            shift = np.full(n_fe, -np.inf)
            np.maximum.at(shift, fe, eta)
            shift = np.where(np.isfinite(shift), shift, 0.0)
            e = np.exp(eta - shift[fe])
            alpha = log_y_fe - np.log(np.maximum(np.bincount(fe, weights=e, minlength=n_fe), 1e-300))
            mu = np.where(y_fe[fe] > 0, np.exp(alpha[fe] + eta - shift[fe]), 0.0)
            mu_lv = np.bincount(f, weights=mu, minlength=deltas[j].size)
            ok = (y_lv[j] > 0) & (mu_lv > 0)
            step = np.where(ok, np.log(np.where(ok, y_lv[j], 1.0) / np.where(ok, mu_lv, 1.0)), 0.0)
            deltas[j] = np.where(y_lv[j] > 0, deltas[j] + step, -30.0)
            deltas[j] -= deltas[j][y_lv[j] > 0].mean() if ok.any() else 0.0
            biggest = max(biggest, float(np.abs(step).max(initial=0.0)))
        if biggest < 1e-7:
            break
    return deltas


def apply_factors(deltas: list[np.ndarray], factors: list[np.ndarray]) -> np.ndarray:
    """The controls' summed contribution per observation; a level the fit never saw counts 0."""
    n = factors[0].size if factors else 0
    out = np.zeros(n)
    for d, f in zip(deltas, factors, strict=True):
        known = f < d.size
        out[known] += d[f[known]]
    return out


def fit_elasticities(
    y: np.ndarray,
    log_price: np.ndarray,
    factors: list[np.ndarray],
    group: np.ndarray,
    n_groups: int,
    fe: np.ndarray,
    cluster: np.ndarray,
    rounds: int = 6,
) -> tuple[Slopes, list[np.ndarray]]:
    """Per-group price elasticities with shared categorical controls, by backfitting: the controls given
    the slopes (fit_factors with the price term as offset), then the slopes given the controls
    (fit_slopes), `rounds` times (the joint Poisson ML; the slopes' standard errors treat the shared
    controls as known: they are estimated from every ticket type's days). Rows whose group is >= n_groups
    get no slope (ticket types without a price change: they inform the controls only). Returns the slopes
    and the controls' level coefficients (apply_factors)."""
    grp = np.asarray(group)
    has = grp < n_groups
    beta = np.zeros(n_groups + 1)
    g_idx = np.where(has, grp, n_groups)
    control = np.zeros(len(y))
    deltas: list[np.ndarray] = []
    slopes = None
    for _ in range(rounds):
        price_term = np.where(has, beta[g_idx] * log_price, 0.0)
        if factors:
            deltas = fit_factors(y, factors, fe, price_term)
            control = apply_factors(deltas, factors)
        slopes = fit_slopes(y[has], log_price[has], grp[has], n_groups, fe[has], cluster[has], control[has])
        beta[:n_groups] = np.where(np.isfinite(slopes.beta), slopes.beta, 0.0)
    return slopes, deltas
