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
from scipy import sparse, stats

#: fit_elasticities keeps its Hessian factorization (a chord Newton step) while each step is at most this share
#: of the previous one, and refactorizes otherwise
REFACTOR_RATIO = 0.25


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


class _Runs:
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


def _by_code(codes: np.ndarray) -> np.ndarray | None:
    """The stable permutation that makes the observations of each code contiguous, None when they are
    (a fit's answer does not depend on the order of its observations; only its rounding does)."""
    if codes.size < 2 or bool((codes[1:] >= codes[:-1]).all()):
        return None
    return np.argsort(codes, kind="stable")


def _dense_codes(codes) -> np.ndarray:
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
    fe = _dense_codes(fe)
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
    cl = _dense_codes(np.asarray(cluster)[keep])
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
    fe = _dense_codes(fe)
    n_fe = int(fe.max()) + 1 if fe.size else 0
    y_g = np.bincount(fe, weights=y, minlength=n_fe)
    keep = y_g[fe] > 0
    y, z, off, fe, grp = y[keep], z[keep], off[keep], fe[keep], np.asarray(group, np.int64)[keep]
    cl = _dense_codes(np.asarray(cluster)[keep])
    beta = np.zeros(n_groups) if init is None else np.where(np.isfinite(init), init, 0.0).astype(float)
    converged = False
    fe = _dense_codes(fe)
    order = _by_code(fe)
    if order is not None:
        y, z, off, fe, grp, cl = (a[order] for a in (y, z, off, fe, grp, cl))

    class _Rows:
        def __init__(self, sel: np.ndarray | None) -> None:
            pick = (lambda a: a) if sel is None else (lambda a: a[sel])
            self.y, self.z, self.off, self.grp = pick(y), pick(z), pick(off), pick(grp)
            self.runs = _Runs(pick(fe))
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


def _design(
    log_price: np.ndarray, group: np.ndarray, n_groups: int, factors: list[np.ndarray], y: np.ndarray
) -> tuple[sparse.csr_matrix, list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """The joint model's sparse design: one price column per slope group (log price on its rows), then one
    column per free control level, then one column of zeros. A factor's first level with sales is its
    reference (0: the fixed effects absorb any constant), levels without any sale are fixed at -30 (no
    demand; their ML estimate is -inf). Every row has exactly one entry per slot (its price column, then
    one level per factor): an absent one (no slope group, a reference or fixed level) is a 0 in the last
    column, so the CSR arrays are the slots' arrays as they are (no masks; the zeros add nothing to a
    product, and the last column's parameter has no information: _factor gives it no step). Returns (X,
    per factor the column of each level or -1, the fixed part of the predictor, and the slots: per row and
    slot its column and value, for _Hessian)."""
    n = y.size
    k = 1 + len(factors)
    col_of, p = [], n_groups
    for f in factors:
        y_lv = np.bincount(f, weights=y, minlength=int(f.max()) + 1 if f.size else 0)
        free = y_lv > 0
        if free.any():
            free[np.flatnonzero(free)[0]] = False  # the reference level
        idx = np.full(y_lv.size, -1, np.int64)
        idx[free] = p + np.arange(int(free.sum()))
        p += int(free.sum())
        col_of.append(idx)
    zero = p  # the column of zeros
    cols = np.empty((n, k), np.int64)
    vals = np.empty((n, k))
    has = group < n_groups
    cols[:, 0] = np.where(has, group, zero)
    vals[:, 0] = np.where(has, log_price, 0.0)
    fixed = np.zeros(n)
    for j, (f, idx) in enumerate(zip(factors, col_of, strict=True), start=1):
        cols[:, j] = np.where(idx >= 0, idx, zero)[f]
        vals[:, j] = cols[:, j] != zero
        dead = np.bincount(f, weights=y, minlength=idx.size) <= 0
        if dead.any():
            fixed -= np.where(dead[f], 30.0, 0.0)
    x = sparse.csr_matrix((vals.reshape(-1), cols.reshape(-1), np.arange(0, n * k + 1, k)), shape=(n, p + 1))
    return x, col_of, fixed, cols, vals


class _Hessian:
    """The concentrated Poisson likelihood's (negative) Hessian, X'WX - A' diag(1/w) A (A = the per
    fixed-effect sums of W X, w = the per fixed-effect sums of mu), for one design; what every Hessian of a
    fit shares is set up once. The observations must be in fixed-effect order (`runs`).

    X'WX from the design's slots (at most one entry per row and slot): per slot one bincount for its
    diagonal, per pair of slots one bincount of the pair's cells. A = (the fixed effects' row sums
    weighted by mu) @ X; A' diag(1/w) A as dense products of chunks of fixed effects with similar columns
    (fixed effects ordered by their first column in each slot, the widest slot first: a chunk of ticket
    types of one tier uses its tier's sales-curve levels only), instead of a sparse-sparse product (3x the
    time at 1.7M rows)."""

    CHUNK = 2048

    def __init__(self, x: sparse.csr_matrix, cols: np.ndarray, vals: np.ndarray, runs: _Runs) -> None:
        self.x, self.runs = x, runs
        n, k = cols.shape
        self.p = p = x.shape[1]  # the last column holds the absent entries (zeros): its cells stay 0
        self.cols = [np.ascontiguousarray(cols[:, i]) for i in range(k)]
        # a slot whose values are 1 where present (a factor level) needs no value weights
        self.vals = [
            None if np.array_equal(vals[:, i], (self.cols[i] != p - 1).astype(float)) else vals[:, i].copy()
            for i in range(k)
        ]
        self.indptr = np.r_[runs.starts, n].astype(np.int64)
        self.rows = np.arange(n)
        first = [np.minimum.reduceat(ci, runs.starts) if n else ci for ci in self.cols]
        widest = int(np.argmax([np.count_nonzero(np.bincount(ci)) for ci in self.cols])) if k else 0
        self.order = np.lexsort([f for i, f in enumerate(first) if i != widest][::-1] + [first[widest]])

    def __call__(self, mu: np.ndarray) -> np.ndarray:
        p = q = self.p
        xwx = np.zeros((q, q))
        # per slot: mu times its values (or mu alone for a slot of 1s)
        wv = [mu if v is None else mu * v for v in self.vals]
        diag = np.arange(q)
        for i, (ci, vi) in enumerate(zip(self.cols, self.vals, strict=True)):
            xwx[diag, diag] += np.bincount(ci, weights=wv[i] if vi is None else wv[i] * vi, minlength=q)
            for cj, vj in zip(self.cols[i + 1 :], self.vals[i + 1 :], strict=True):
                cell = np.bincount(ci * q + cj, weights=wv[i] if vj is None else wv[i] * vj, minlength=q * q)
                cell = cell.reshape(q, q)
                xwx += cell
                xwx += cell.T
        n_fe = self.runs.starts.size
        a = (sparse.csr_matrix((mu, self.rows, self.indptr), shape=(n_fe, mu.size)) @ self.x).tocsr()
        a = a[self.order]
        nnz = np.diff(a.indptr)
        data = a.data / np.repeat(np.sqrt(np.maximum(self.runs.sum(mu)[self.order], 1e-300)), nnz)
        ada = np.zeros((p, p))
        for s in range(0, n_fe, self.CHUNK):
            m = min(self.CHUNK, n_fe - s)
            lo, hi = a.indptr[s], a.indptr[s + m]
            used, at = np.unique(a.indices[lo:hi], return_inverse=True)
            block = np.zeros((m, used.size))
            block[np.repeat(np.arange(m), nnz[s : s + m]), at] = data[lo:hi]
            ada[np.ix_(used, used)] += block.T @ block
        h = xwx - ada
        h[-1, :] = 0.0  # the column of zeros (absent entries, weighted by mu alone in a slot of 1s)
        h[:, -1] = 0.0
        return h


def _factor(h: np.ndarray):
    """A factorization of h restricted to the directions with information: a parameter whose diagonal is
    (numerically) 0 — e.g. a slope with no price variation inside any type — gets no step (its score is 0
    up to rounding, which a ridge would amplify into endless tiny moves). A tiny ridge keeps the rest
    positive definite; an indefinite block falls back to least squares."""
    from scipy.linalg import cho_factor

    diag = np.abs(np.diag(h))
    active = diag > 1e-9 * max(float(diag.max(initial=0.0)), 1e-300)
    sub = h[np.ix_(active, active)]
    ridge = 1e-10 * max(float(diag.max(initial=0.0)), 1e-300)
    try:
        return active, cho_factor(sub + ridge * np.eye(sub.shape[0]))
    except np.linalg.LinAlgError:
        return active, sub


def _solve(factor, score: np.ndarray) -> np.ndarray:
    from scipy.linalg import cho_solve

    active, f = factor
    step = np.zeros(score.size)
    if not active.any():
        return step
    if isinstance(f, np.ndarray):
        step[active] = np.linalg.lstsq(f, score[active], rcond=1e-12)[0]
    else:
        step[active] = cho_solve(f, score[active])
    return step


def fit_elasticities(
    y: np.ndarray,
    log_price: np.ndarray,
    factors: list[np.ndarray],
    group: np.ndarray,
    n_groups: int,
    fe: np.ndarray,
    cluster: np.ndarray,
    max_iter: int = 50,
    tol: float = 1e-6,
    init_beta: np.ndarray | None = None,
    init_deltas: list[np.ndarray] | None = None,
) -> tuple[Slopes, list[np.ndarray]]:
    """Per-group price elasticities with shared categorical controls: the joint Poisson ML by Newton steps
    on the slopes and every control level at once, the fixed effects concentrated out (their closed form
    given the rest). The Hessian of the concentrated likelihood is X'WX - A' diag(1/w) A with A = the
    per-fixed-effect sums of W X (the within transformation of a GLM with one fixed effect), built from
    sparse products: memory linear in the panel plus a (slopes + levels)^2 matrix, a handful of iterations
    (quadratic convergence) instead of a backfitting loop. The slopes' standard errors come from
    fit_slopes at the joint estimate, treating the shared controls as known (they are estimated from every
    ticket type's days). Rows whose group is >= n_groups get no slope (ticket types without a price
    change: they inform the controls only). `init_beta` / `init_deltas`: a warm start (the full sample's
    fit for a cross-fitting fold). Returns the slopes and the controls' level coefficients
    (apply_factors). BLAS is held to one thread meanwhile: the factorizations are of a few hundred
    columns, and a multi-threaded OpenBLAS took ~0.1 s for a 300 x 300 Cholesky on the shared 2-core
    machine instead of 1 ms (its threads wait for each other)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _fit_elasticities(
            y, log_price, factors, group, n_groups, fe, cluster, max_iter, tol, init_beta, init_deltas
        )


def _fit_elasticities(
    y: np.ndarray,
    log_price: np.ndarray,
    factors: list[np.ndarray],
    group: np.ndarray,
    n_groups: int,
    fe: np.ndarray,
    cluster: np.ndarray,
    max_iter: int,
    tol: float,
    init_beta: np.ndarray | None,
    init_deltas: list[np.ndarray] | None,
) -> tuple[Slopes, list[np.ndarray]]:
    y = np.asarray(y, float)
    log_price = np.asarray(log_price, float)
    grp = np.asarray(group, np.int64)
    fe = _dense_codes(fe)
    cluster = np.asarray(cluster)
    order = _by_code(fe)  # the observations in fixed-effect order: per-type sums over contiguous runs
    if order is not None:
        y, log_price, grp, fe, cluster = (a[order] for a in (y, log_price, grp, fe, cluster))
        factors = [f[order] for f in factors]
    runs = _Runs(fe)
    y_fe = runs.sum(y)
    sold = y_fe > 0
    log_y_fe = np.log(np.where(sold, y_fe, 1.0))
    x, col_of, fixed, slot_cols, slot_vals = _design(log_price, grp, n_groups, factors, y)
    theta = np.zeros(x.shape[1])
    if init_beta is not None:
        theta[:n_groups] = np.where(np.isfinite(init_beta), init_beta, 0.0)
    if init_deltas is not None:
        for f, idx, d in zip(factors, col_of, init_deltas, strict=False):
            m = min(idx.size, d.size)
            # this fit's reference level (coefficient 0) is its factor's first level with sales (_design);
            # the start is the other fit's levels relative to it. (The first level without a column was
            # used before: a level without sales here sat ahead of the reference in a cross-fitting fold,
            # its -30 shifted every start by ~30 and the fold needed ~15 damped Newton steps.)
            with_sales = np.flatnonzero(np.bincount(f, weights=y, minlength=idx.size) > 0)
            ref_level = int(with_sales[0]) if with_sales.size else -1
            ref = d[ref_level] if 0 <= ref_level < m else 0.0
            on = idx[:m] >= 0
            theta[idx[:m][on]] = d[:m][on] - ref
    xt = x.T.tocsr()
    hessian = _Hessian(x, slot_cols, slot_vals, runs)
    factor, last = None, np.inf
    for _ in range(max_iter):
        eta = x @ theta + fixed
        e = np.exp(eta - runs.rows(runs.max(eta)))  # shifted by the type's maximum: exp() stays finite
        # mu = exp(alpha + eta), the type's alpha in closed form: log(sum y) - log(sum exp(eta)); 0 for a
        # type without sales
        ratio = np.where(sold, np.exp(log_y_fe - np.log(np.maximum(runs.sum(e), 1e-300))), 0.0)
        mu = e * runs.rows(ratio)
        score = xt @ (y - mu)
        if factor is None:
            # the Hessian is the iteration's dominant cost: it is kept while the steps shrink fast
            # (a chord Newton method; recomputed when they do not), so a warm start costs one or two
            factor = _factor(hessian(mu))
        step = _solve(factor, score)
        big = np.abs(step).max(initial=0.0)
        if big > 2:  # damped: the concentrated log-likelihood is concave, a cap keeps exp() finite
            step *= 2 / big
        theta += step
        if big < tol:
            break
        if big > REFACTOR_RATIO * last:
            factor = None
        last = big
    deltas = []
    for f, idx in zip(factors, col_of, strict=True):
        y_lv = np.bincount(f, weights=y, minlength=idx.size)
        d = np.where(idx >= 0, theta[np.maximum(idx, 0)], 0.0)
        d = np.where(y_lv > 0, d, -30.0)
        d -= d[y_lv > 0].mean() if (y_lv > 0).any() else 0.0
        deltas.append(d)
    control = apply_factors(deltas, factors) if factors else np.zeros(y.size)
    has = grp < n_groups
    slopes = fit_slopes(
        y[has],
        log_price[has],
        grp[has],
        n_groups,
        fe[has],
        np.asarray(cluster)[has],
        control[has],
        init=theta[:n_groups],
    )
    return slopes, deltas
