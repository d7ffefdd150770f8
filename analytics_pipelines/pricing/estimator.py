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


class Runs:
    """Dense codes whose observations are contiguous (sorted): per code its first position and count, so
    per-code sums and maxima are reduceats over contiguous runs and a per-code value goes back to the rows
    by np.repeat (no scatter, no gather by code)."""

    def __init__(self, codes: np.ndarray) -> None:
        n = codes.size
        self.starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if n else np.zeros(0, np.int64)
        self.counts = np.diff(np.r_[self.starts, n])

    def sum(self, values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(values, self.starts) if values.size else np.zeros(0)

    def max(self, values: np.ndarray) -> np.ndarray:
        return np.maximum.reduceat(values, self.starts) if values.size else np.zeros(0)

    def rows(self, per_code: np.ndarray) -> np.ndarray:
        return np.repeat(per_code, self.counts)


def by_code(codes: np.ndarray) -> np.ndarray | None:
    """The stable permutation that makes the observations of each code contiguous, None when they are
    (a fit's answer does not depend on the order of its observations; only its rounding does)."""
    if codes.size < 2 or bool((codes[1:] >= codes[:-1]).all()):
        return None
    return np.argsort(codes, kind="stable")


def dense_codes(codes) -> np.ndarray:
    """Codes renumbered 0..n-1 in ascending order (np.unique's inverse) in O(n): a bincount of the
    present codes instead of a sort, for non-negative integer codes of moderate range (the physical codes
    of a categorical); anything else goes through np.unique."""
    codes = np.asarray(codes)
    if codes.size and codes.dtype.kind in "iu" and codes.min() >= 0 and codes.max() < 4 * codes.size + 1024:
        present = np.bincount(codes) > 0
        if present.all():  # dense already
            return codes.astype(np.int64, copy=False)
        return (np.cumsum(present) - 1)[codes]
    return np.unique(codes, return_inverse=True)[1].reshape(-1).astype(np.int64)


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
    fe = dense_codes(fe)
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
    cl = dense_codes(np.asarray(cluster)[keep])
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


#: fit_slopes stops updating a group once its Newton step is below this (the steps of a converged
#: one-parameter problem are rounding noise, ~1e-14, from then on; before, every group was updated until the
#: slowest had converged, which moved the converged ones by < 1e-12)
FREEZE_STEP = 1e-12


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
    init: np.ndarray | None = None,
) -> Slopes:
    """One slope of z per group (every fixed-effect group and cluster lies within one group), the rest of
    the linear predictor given as `offset`: independent one-parameter PPML problems, solved together with
    vectorized Newton steps. Standard errors clustered (clusters nested in the groups), jackknife-type (CV3:
    the usual sandwich is far too small with the few events a category's price changes come from); the
    number of clusters with price variation is returned for t(G-1) intervals. A slope resting on one such
    cluster is not identified (NaN). `init`: starting slopes (a warm start).

    The groups' problems are independent, so a group whose step has fallen to rounding level
    (FREEZE_STEP) is left where it is and the next steps are computed on the other groups' rows only (a
    slope without a finite optimum, walking off by the step cap for ~90 steps, used to drag every
    group's rows along). The observations are taken in fixed-effect order (contiguous runs)."""
    y, z, off = (np.asarray(a, float) for a in (y, z, offset))
    fe = dense_codes(fe)
    n_fe = int(fe.max()) + 1 if fe.size else 0
    y_g = np.bincount(fe, weights=y, minlength=n_fe)
    keep = y_g[fe] > 0
    y, z, off, fe, grp = y[keep], z[keep], off[keep], fe[keep], np.asarray(group, np.int64)[keep]
    cl = dense_codes(np.asarray(cluster)[keep])
    beta = np.zeros(n_groups) if init is None else np.where(np.isfinite(init), init, 0.0).astype(float)
    converged = False
    fe = dense_codes(fe)
    order = by_code(fe)
    if order is not None:
        y, z, off, fe, grp, cl = (a[order] for a in (y, z, off, fe, grp, cl))

    class _Rows:
        def __init__(self, sel: np.ndarray | None) -> None:
            pick = (lambda a: a) if sel is None else (lambda a: a[sel])
            self.y, self.z, self.off, self.grp = pick(y), pick(z), pick(off), pick(grp)
            self.runs = Runs(pick(fe))
            self.logy = np.log(np.maximum(self.runs.sum(self.y), 1e-300))

        def state(self, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            runs = self.runs
            eta = b[self.grp] * self.z + self.off
            e = np.exp(eta - runs.rows(runs.max(eta)))  # shifted by the type's maximum: exp() stays finite
            # mu = exp(alpha + eta) with the type's alpha in closed form: log(sum y) - log(sum exp(eta))
            mu = e * runs.rows(np.exp(self.logy - np.log(np.maximum(runs.sum(e), 1e-300))))
            zbar = runs.sum(mu * self.z) / np.maximum(runs.sum(mu), 1e-300)
            return mu, self.z - runs.rows(zbar)

    rows = every = _Rows(None)
    active = np.ones(n_groups, bool)
    for _ in range(max_iter):
        mu, zt = rows.state(beta)
        h = np.bincount(rows.grp, weights=mu * zt * zt, minlength=n_groups)
        s = np.bincount(rows.grp, weights=zt * (rows.y - mu), minlength=n_groups)
        step = np.where(active & (h > 1e-12), s / np.maximum(h, 1e-12), 0.0)
        step = np.clip(step, -2, 2)
        beta = beta + step
        if np.abs(step).max(initial=0) < tol:
            converged = True
            break
        active &= np.abs(step) >= FREEZE_STEP
        if rows.grp.size and active[rows.grp].mean() < 0.5:  # most rows belong to frozen groups: drop them
            rows = _Rows(np.flatnonzero(active[grp]))
    mu, zt = every.state(beta)
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


def apply_factors(deltas: list[np.ndarray], factors: list[np.ndarray]) -> np.ndarray:
    """The controls' summed contribution per observation; a level the fit never saw counts 0."""
    n = factors[0].size if factors else 0
    out = np.zeros(n)
    for d, f in zip(deltas, factors, strict=True):
        if f.size and f.max() < d.size:
            out += d[f]
            continue
        known = f < d.size
        out[known] += d[f[known]]
    return out
