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
    """Per group: its slope, cluster-robust standard error, observations and clusters behind it."""

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
    vectorized Newton steps. Standard errors clustered (clusters nested in the groups)."""
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
    sc = np.bincount(cl, weights=zt * (y - mu), minlength=n_cl)
    cl_group = np.zeros(n_cl, np.int64)
    cl_group[cl] = grp
    meat = np.bincount(cl_group, weights=sc * sc, minlength=n_groups)
    g = np.bincount(cl_group, minlength=n_groups).astype(float)
    adj = np.where(g > 1, g / np.maximum(g - 1, 1), 1.0)
    var = np.where(h > 1e-12, meat * adj / np.maximum(h, 1e-12) ** 2, np.nan)
    identified = h > 1e-12
    return Slopes(
        beta=np.where(identified, beta, np.nan),
        se=np.sqrt(var),
        n_obs=np.bincount(grp, minlength=n_groups),
        n_clusters=g.astype(np.int64),
        converged=converged,
    )


def fit_elasticities(
    y: np.ndarray,
    log_price: np.ndarray,
    controls: np.ndarray,
    group: np.ndarray,
    n_groups: int,
    fe: np.ndarray,
    cluster: np.ndarray,
    rounds: int = 4,
) -> tuple[Slopes, np.ndarray]:
    """Per-group price elasticities with shared controls, by backfitting: the controls' coefficients given
    the slopes (fit_ppml with the price term as offset), then the slopes given the controls (fit_slopes),
    `rounds` times (it converges to the joint estimate in a few rounds; the slopes' standard errors treat
    the shared controls as known: they are estimated from every ticket type). Rows whose group is
    >= n_groups get no slope (ticket types without a price change: they inform the controls only)."""
    grp = np.asarray(group)
    has = grp < n_groups
    beta = np.zeros(n_groups + 1)
    gamma = np.zeros(controls.shape[1])
    g_idx = np.where(has, grp, n_groups)
    slopes = None
    for _ in range(rounds):
        price_term = np.where(has, beta[g_idx] * log_price, 0.0)
        if controls.shape[1]:
            gamma = fit_ppml(y, controls, fe, cluster, offset=price_term).beta
            gamma = np.where(np.isfinite(gamma), gamma, 0.0)
        off = controls @ gamma
        slopes = fit_slopes(y[has], log_price[has], grp[has], n_groups, fe[has], cluster[has], off[has])
        beta[:n_groups] = np.where(np.isfinite(slopes.beta), slopes.beta, 0.0)
    return slopes, gamma
