"""The joint elasticity fit (`fit_elasticities`): per-group price slopes and the shared categorical controls
by Newton steps on the Poisson likelihood with the ticket types' fixed effects concentrated out (estimator.py
has the model, the one-group fits and the sandwich variance this builds on; split from it to keep each
module readable)."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from analytics_pipelines.pricing.estimator import (
    Runs,
    Slopes,
    apply_factors,
    by_code,
    dense_codes,
    fit_slopes,
)

#: fit_elasticities keeps its Hessian factorization (a chord Newton step) while each step is at most this share
#: of the previous one, and refactorizes otherwise
REFACTOR_RATIO = 0.25


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

    def __init__(self, x: sparse.csr_matrix, cols: np.ndarray, vals: np.ndarray, runs: Runs) -> None:
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
        y = np.asarray(y, float)
        log_price = np.asarray(log_price, float)
        grp = np.asarray(group, np.int64)
        fe = dense_codes(fe)
        cluster = np.asarray(cluster)
        order = by_code(fe)  # the observations in fixed-effect order: per-type sums over contiguous runs
        if order is not None:
            y, log_price, grp, fe, cluster = (a[order] for a in (y, log_price, grp, fe, cluster))
            factors = [f[order] for f in factors]
        runs = Runs(fe)
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
