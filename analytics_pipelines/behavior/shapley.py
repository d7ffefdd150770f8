"""The data-driven attribution model: Shapley values of a conversion-rate game estimated from the paths.

v(S) = P(convert | the journey was exposed to exactly the channels S), estimated from converting and
non-converting paths: the cell's conversion rate where at least MIN_CELL paths had exactly S, else the
prediction of an additive linear-probability fit (OLS of converted on the channel indicators; its intercept
is v(empty), which the data cannot show directly since a journey with no touch leaves no document). A
channel's Shapley value in the full game is its average marginal contribution to the conversion probability
over all orders of arrival: its estimated incremental effect per exposed journey, by which channels are
ranked. An order's credit splits among the channels S of its path by their Shapley values in the game
restricted to S (negative values count as 0; all zero -> equal split). Under an additive truth the Shapley
value of every channel is its effect, whatever S, which is why this model recovers the planted order and a
rule with fixed weights cannot.
"""

from __future__ import annotations

from itertools import combinations
from math import factorial

import numpy as np
import polars as pl

MIN_CELL = 30


def masks(paths: pl.DataFrame, channels: tuple[str, ...]) -> np.ndarray:
    """The channel-set bitmask of every path (column `channels`: list of channel names)."""
    bits = {c: 1 << i for i, c in enumerate(channels)}
    m = paths.select(
        pl.col("channels").list.eval(pl.element().replace_strict(bits, default=0)).list.unique().list.sum()
    ).to_series()
    return m.fill_null(0).to_numpy().astype(np.int64)


def fit_game(mask: np.ndarray, converted: np.ndarray, k: int) -> tuple[np.ndarray, dict]:
    """v over all 2^k channel sets, and fit statistics."""
    x = ((mask[:, None] >> np.arange(k)) & 1).astype(float)
    design = np.c_[np.ones(len(mask)), x]
    coef, *_ = np.linalg.lstsq(design, converted.astype(float), rcond=None)
    all_sets = np.arange(2**k)
    xs = ((all_sets[:, None] >> np.arange(k)) & 1).astype(float)
    v = np.clip(np.c_[np.ones(2**k), xs] @ coef, 0.0, 1.0)
    n = np.bincount(mask, minlength=2**k)
    conv = np.bincount(mask, weights=converted.astype(float), minlength=2**k)
    cells = n >= MIN_CELL
    v[cells] = conv[cells] / n[cells]
    v[0] = float(np.clip(coef[0], 0.0, 1.0))
    return v, {"paths": int(len(mask)), "cells_from_data": int(cells.sum()), "intercept": float(coef[0])}


def shapley_table(v: np.ndarray, k: int) -> np.ndarray:
    """phi[S, c]: channel c's Shapley value in the game v restricted to the set S (0 when c not in S)."""
    phi = np.zeros((2**k, k))
    for s in range(1, 2**k):
        members = [c for c in range(k) if s >> c & 1]
        n = len(members)
        for c in members:
            others = [o for o in members if o != c]
            total = 0.0
            for size in range(n):
                w = factorial(size) * factorial(n - size - 1) / factorial(n)
                for t in combinations(others, size):
                    tm = sum(1 << o for o in t)
                    total += w * (v[tm | 1 << c] - v[tm])
            phi[s, c] = total
    return phi


def shares(phi: np.ndarray, k: int) -> np.ndarray:
    """Credit shares per channel set: positive Shapley values normalized (equal split if none)."""
    pos = np.clip(phi, 0.0, None)
    tot = pos.sum(axis=1, keepdims=True)
    member = ((np.arange(2**k)[:, None] >> np.arange(k)) & 1).astype(float)
    size = np.maximum(member.sum(axis=1, keepdims=True), 1)
    return np.where(tot > 0, pos / np.where(tot > 0, tot, 1), member / size)


def holdout_metrics(ids: np.ndarray, mask: np.ndarray, converted: np.ndarray, k: int) -> dict:
    """The game refitted without a fifth of the paths (by a hash of their id), evaluated on that fifth:
    Brier score and ROC AUC of v(S) as the conversion probability, against the constant-rate baseline (the
    training paths' conversion rate), which the data-driven model must beat."""
    from sklearn.metrics import brier_score_loss, roc_auc_score

    test = ids % 5 == 0
    n = int(test.sum())
    if n < 50 or len(set(converted[test])) < 2 or len(set(converted[~test])) < 2:
        return {"n": n}
    v, _ = fit_game(mask[~test], converted[~test], k)
    pred, y = v[mask[test]], converted[test]
    base = np.full(n, converted[~test].mean())
    return {
        "n": n,
        "brier": float(brier_score_loss(y, pred)),
        "baseline_brier": float(brier_score_loss(y, base)),
        "roc_auc": float(roc_auc_score(y, pred)),
        "baseline_roc_auc": 0.5,
    }
