"""Model evaluation shared by the customer models: the `model_performance` row format (CLV and churn) and the
binary-classifier metrics of the churn model and the old rule scores.

`evaluation` says which rows a figure comes from: 'in_sample' (the rows the model was fitted on),
'out_of_time' (rows whose labels lie after every training label: the churn model's customers at as_of -
horizon labelled by (as_of - horizon, as_of], the CLV holdout's last 90 days), 'in_time_holdout' (a customer
holdout over the same period as the training rows: the churn fallback when the history is too short for an
out-of-time split)."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

EVALUATIONS = ("in_sample", "out_of_time", "in_time_holdout")

SCHEMA = {
    "model_family": pl.String,
    "model": pl.String,
    "as_of": pl.Date,
    "cutoff": pl.Date,
    "horizon_days": pl.Int64,
    "evaluation": pl.String,
    "metric": pl.String,
    "bucket": pl.String,
    "value": pl.Float64,
    "n": pl.Int64,
}


def performance_rows(
    family: str,
    model: str,
    as_of: date,
    cutoff: date,
    horizon_days: int,
    rows: list[tuple[str, str | None, float, int]],
    evaluation: str = "out_of_time",
) -> pl.DataFrame:
    """model_performance rows: one per (metric, bucket) with its value and the number of customers behind it."""
    if evaluation not in EVALUATIONS:
        raise ValueError(f"evaluation must be one of {EVALUATIONS}, got {evaluation!r}")
    return pl.DataFrame(
        [
            (
                family,
                model,
                as_of,
                cutoff,
                horizon_days,
                evaluation,
                m,
                b,
                None if v is None or v != v else float(v),
                int(k),
            )
            for m, b, v, k in rows
        ],
        schema=SCHEMA,
        orient="row",
    )


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The probability threshold that maximises F1 (vectorised over the sorted scores)."""
    order = np.argsort(-p, kind="stable")
    ys, ps = y[order], p[order]
    tp = np.cumsum(ys)
    k = np.arange(1, len(ys) + 1)
    f1 = 2 * tp / (k + ys.sum())
    last_of_value = np.r_[ps[1:] != ps[:-1], True]  # a threshold can only fall between distinct scores
    best = int(np.argmax(np.where(last_of_value, f1, -1)))
    return float(ps[best])


def evaluate(y: np.ndarray, score: np.ndarray, threshold: float, probability: bool = True) -> list[tuple]:
    """(metric, bucket, value, n) rows: AUC, average precision, precision/recall/F1 at `threshold`,
    and for probabilities the Brier score and ten reliability bins."""
    n = len(y)
    flagged = score >= threshold
    tp = int((flagged & (y == 1)).sum())
    rows = [
        ("n", None, float(n), n),
        ("base_rate", None, float(y.mean()), n),
        ("threshold", None, threshold, n),
        ("roc_auc", None, float(roc_auc_score(y, score)), n),
        ("average_precision", None, float(average_precision_score(y, score)), n),
        ("precision", None, tp / flagged.sum() if flagged.sum() else float("nan"), int(flagged.sum())),
        ("recall", None, tp / (y == 1).sum() if (y == 1).sum() else float("nan"), int((y == 1).sum())),
        ("flagged_share", None, float(flagged.mean()), n),
    ]
    prec, rec = rows[5][2], rows[6][2]
    rows.append(("f1", None, 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0, n))
    if probability:
        rows.append(("brier", None, float(brier_score_loss(y, score)), n))
        bins = np.minimum((score * 10).astype(int), 9)
        for b in range(10):
            sel = bins == b
            if sel.any():
                label_ = f"{b / 10:.1f}-{(b + 1) / 10:.1f}"
                rows += [
                    ("reliability_mean_predicted", label_, float(score[sel].mean()), int(sel.sum())),
                    ("reliability_observed_rate", label_, float(y[sel].mean()), int(sel.sum())),
                ]
    return rows
