"""The no-show classifier: gradient boosting calibrated out of time, evaluated out of time beside the seed's rule.

Rows: the sold tickets of ended events (features.features, label `no_show`). Splits are by event, in time
(events ordered by start; a share of the labelled tickets, whole events, at the end):
- out-of-time holdout: the latest HOLDOUT_SHARE of the labelled tickets' events. Training rows are the
  events that ENDED before the first held-out event starts (an event overlapping that moment is in neither).
- inside the training rows, the latest CALIBRATION_SHARE (same rule) calibrates; the rest fits.
The classifier: scikit-learn's HistGradientBoostingClassifier (the category as a native categorical feature,
missing values native) fitted on the older rows, then CalibratedClassifierCV over the frozen booster on the
newer rows (isotonic with enough calibration rows, else sigmoid): probabilities calibrated on events later
than those it learnt from, as the predictions will be.

Evaluation (rows of model_performance): ROC AUC, average precision, Brier, precision/recall at a threshold,
ten fixed-width reliability bins and ten deciles of the predicted probability ("reliability table"), and per
held-out event the expected no-shows (sum of probabilities) against the actual count, with the share of
events inside the 80 % interval. The seed's rule is scored on the same held-out tickets.

The model that predicts upcoming events is the same recipe refitted on every labelled ticket (fit on the
older events, calibrated on the latest).

Per event: the no-show count of independent tickets with probabilities p_i is Poisson-binomial: mean
sum p_i, variance sum p_i (1 - p_i); the 80 % interval is the normal approximation widened to whole tickets
(floor(mean - z sd), ceil(mean + z sd)), within [0, tickets].
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass, field
from datetime import datetime

import joblib
import numpy as np
import polars as pl
import sklearn
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from analytics_pipelines.customers.evaluation import best_f1_threshold, evaluate, performance_rows
from analytics_pipelines.noshow.events import decile_rows, event_rows
from analytics_pipelines.noshow.features import NUMERIC
from analytics_pipelines.noshow.plan import (
    CALIBRATION_SHARE,
    DRAWS,
    HOLDOUT_SHARE,
    MAX_TRAIN_ROWS,
    event_split,
    of_events,
)

FAMILY = "no_show"
SEED_MODEL = "seed_rule"
TOP_CATEGORIES = 30
ISOTONIC_MIN_ROWS, ISOTONIC_MIN_POSITIVES = 2_000, 100
MIN_FIT_ROWS, MIN_FIT_POSITIVES = 100, 10
INTERVAL_LEVEL = 0.8
SEED_THRESHOLD = 0.3  # the seed recommends actions above 0.3
FEATURES = [*NUMERIC, "category_code"]
#: the columns of a labelled ticket the evaluation and the fit read (features.features has more)
ROW_COLUMNS = [
    "tenant_id",
    "venue_id",
    "event_id",
    "category_id",
    "starts_at",
    "ends_at",
    "phase",
    "no_show",
    "seed_probability",
    *NUMERIC,
]


class NotEnoughData(ValueError):
    """Too few labelled tickets (or one class only) to fit and evaluate a model."""


def categories_of(rows: pl.DataFrame, k: int = TOP_CATEGORIES) -> list[str]:
    return (
        rows["category_id"]
        .cast(pl.String)
        .drop_nulls()
        .value_counts(sort=True)
        .head(k)["category_id"]
        .sort()
        .to_list()
        if rows.height
        else []
    )


def matrix(rows: pl.DataFrame, categories: list[str]) -> np.ndarray:
    """NUMERIC (NULL -> NaN, handled natively by the booster) and the category's index (unknown/NULL =
    len(categories))."""
    if not rows.height:
        return np.empty((0, len(FEATURES)))
    codes = {c: i for i, c in enumerate(categories)}
    code = (
        pl.col("category_id")
        .cast(pl.String)
        .replace_strict(codes, default=len(categories), return_dtype=pl.Float64)
        .fill_null(float(len(categories)))
    )
    # one C-ordered float64 copy (NULL and NaN -> NaN), not a copy per column stacked and cast again
    return rows.select(*(pl.col(c).cast(pl.Float64) for c in NUMERIC), code).to_numpy(order="c")


def _labels(rows: pl.DataFrame) -> np.ndarray:
    return rows["no_show"].cast(pl.Int8).to_numpy().astype(int)


def _viable(y: np.ndarray, rows: int = MIN_FIT_ROWS, positives: int = MIN_FIT_POSITIVES) -> bool:
    return len(y) >= rows and min(int(y.sum()), len(y) - int(y.sum())) >= positives


@dataclass
class Fitted:
    model: CalibratedClassifierCV
    categories: list[str]
    calibration: str
    fit_rows: int
    calibration_rows: int
    threshold: float
    fit_cutoff: datetime | None
    #: the fitted rows (their in-sample figures are computed by the evaluation only)
    fit_frame: pl.DataFrame = field(repr=False, default_factory=pl.DataFrame)

    def predict(self, rows: pl.DataFrame) -> np.ndarray:
        """Calibrated probabilities. One thread: the booster's OpenMP threads spin-wait on a shared machine
        (measured on the 2-core VM under load: 25k rows in 11 s with the default threads)."""
        if rows.height == 0:
            return np.zeros(0)
        with threadpool_limits(limits=1):
            p = self.model.predict_proba(matrix(rows, self.categories))[:, 1]
        return np.clip(p, 0.0, 1.0)


def fit(
    rows: pl.DataFrame, max_rows: int = MAX_TRAIN_ROWS, events: pl.Series | None = None, drawn: str = "final"
) -> Fitted:
    """The booster on the older events of `rows` (only those of `events` when given), calibrated on the
    latest CALIBRATION_SHARE of them; each side a deterministic sample of at most `max_rows` tickets, drawn
    without copying the others (at `large`, millions of labelled tickets). When the rows carry the plan's
    draws (DRAWS[drawn], describe_plan), those rows: the same draw, made over every ticket."""
    within = (
        rows
        if events is None
        else rows.select(
            "event_id",
            "starts_at",
            "ends_at",
            *(["event_tickets"] if "event_tickets" in rows.columns else []),
        ).filter(pl.col("event_id").is_in(events.implode()))
    )
    early, late, cutoff = event_split(within, CALIBRATION_SHARE)
    fit_rows, calibration_rows = DRAWS[drawn]
    if fit_rows in rows.columns:
        older, newer = rows.filter(pl.col(fit_rows)), rows.filter(pl.col(calibration_rows))
    else:
        older = of_events(rows, early, max_rows, sampled=True)
        newer = of_events(rows, late, max_rows, sampled=True)
    y_old, y_new = _labels(older), _labels(newer)
    if not _viable(y_old) or not _viable(y_new, MIN_FIT_ROWS // 2, MIN_FIT_POSITIVES // 2):
        raise NotEnoughData(
            f"no-show model needs >= {MIN_FIT_ROWS} fitted and {MIN_FIT_ROWS // 2} calibration tickets with "
            f"both outcomes; got {len(y_old)} ({int(y_old.sum())} no-shows) and {len(y_new)} "
            f"({int(y_new.sum())} no-shows)"
        )
    categories = categories_of(older)
    x_old, x_new = matrix(older, categories), matrix(newer, categories)
    with threadpool_limits(limits=1):
        booster = HistGradientBoostingClassifier(
            learning_rate=0.1,
            max_iter=150,
            max_leaf_nodes=15,
            min_samples_leaf=40,
            l2_regularization=1.0,
            categorical_features=[len(FEATURES) - 1],
            early_stopping=False,
            random_state=0,
        ).fit(x_old, y_old)
        method = (
            "isotonic"
            if len(y_new) >= ISOTONIC_MIN_ROWS and y_new.sum() >= ISOTONIC_MIN_POSITIVES
            else "sigmoid"
        )
        model, p_new = calibrate(booster, x_new, y_new, method)
    return Fitted(
        model, categories, method, len(y_old), len(y_new), best_f1_threshold(y_new, p_new), cutoff, older
    )


class _Given(ClassifierMixin, BaseEstimator):
    """A fitted stand-in whose decision values are its one input column (calibrate)."""

    def __init__(self, classes: np.ndarray):
        self.classes = classes

    def fit(self, X, y):  # never called: it is frozen
        return self

    def decision_function(self, X):
        return np.asarray(X)[:, 0]

    def predict(self, X):
        return self.classes[(self.decision_function(X) > 0).astype(int)]

    def __sklearn_is_fitted__(self):
        return True

    @property
    def classes_(self):
        return self.classes


def calibrate(
    booster: HistGradientBoostingClassifier, x: np.ndarray, y: np.ndarray, method: str
) -> tuple[CalibratedClassifierCV, np.ndarray]:
    """`CalibratedClassifierCV(FrozenEstimator(booster), method=method).fit(x, y)` and its probabilities of
    `x`, from ONE pass of the booster over x. The usual fit predicts x once to calibrate (the cross-validated
    predictions of a frozen estimator are its plain predictions) and predicting x again for the threshold is
    a second pass (~1 s at the 200k cap, twice a run). Here the booster's decision values are computed once,
    the calibrator is fitted on them through a stand-in that returns them, and the booster takes the
    stand-in's place: the same fitted object, to the pickled byte (test_calibrate_is_the_usual_fit)."""
    d = booster.decision_function(x)
    model = CalibratedClassifierCV(FrozenEstimator(_Given(booster.classes_)), method=method).fit(
        d.reshape(-1, 1), y
    )
    frozen = FrozenEstimator(booster)
    model.estimator = frozen
    for c in model.calibrated_classifiers_:
        c.estimator = frozen
    model.n_features_in_ = booster.n_features_in_
    p = model.calibrated_classifiers_[0].calibrators[0].predict(d)  # = model.predict_proba(x)[:, 1]
    return model, p


@dataclass
class Evaluation:
    rows: pl.DataFrame  # performance rows (without the version columns)
    model_auc: float
    seed_auc: float
    holdout_rows: int
    holdout_positives: int
    cutoff: datetime
    events: pl.DataFrame  # per held-out event: expected (model, seed) vs actual
    fitted: Fitted


def evaluate_out_of_time(labelled: pl.DataFrame, as_of, max_rows: int = MAX_TRAIN_ROWS) -> Evaluation:
    """Fit on the older events, score the held-out latest ones; the model and the seed rule side by side."""
    early, late, cutoff = event_split(labelled, HOLDOUT_SHARE)
    if "holdout_sample" in labelled.columns:  # the plan's sample of the held-out events (describe_plan)
        chosen = labelled.filter(pl.col("holdout_sample"))["event_id"].unique()
        late = late.filter(late.is_in(chosen.implode()))
    held = of_events(labelled, late)
    y = _labels(held)
    if cutoff is None or len(y) == 0 or y.min() == y.max():
        raise NotEnoughData(
            f"no out-of-time holdout with both outcomes: {held.height} held-out tickets of "
            f"{labelled.height} labelled"
        )
    fitted = fit(labelled, max_rows, events=early, drawn="evaluation")
    p = fitted.predict(held)
    seed = held["seed_probability"].to_numpy()
    cutoff_day = cutoff.date()
    fit_p = fitted.predict(fitted.fit_frame)
    parts = []
    for model_name, yy, pp, thr, ev in (
        (model_label(fitted), y, p, fitted.threshold, "out_of_time"),
        (SEED_MODEL, y, seed, SEED_THRESHOLD + 1e-9, "out_of_time"),
        (model_label(fitted), _labels(fitted.fit_frame), fit_p, fitted.threshold, "in_sample"),
        (
            SEED_MODEL,
            _labels(fitted.fit_frame),
            fitted.fit_frame["seed_probability"].to_numpy(),
            SEED_THRESHOLD + 1e-9,
            "in_sample",
        ),
    ):
        metrics = evaluate(yy, pp, thr)
        if ev == "out_of_time":
            metrics += decile_rows(yy, pp)
            metrics += event_rows(held, pp)[0]
        parts.append(performance_rows(FAMILY, model_name, as_of, cutoff_day, None, metrics, ev))
    _, model_events = event_rows(held, p)
    _, seed_events = event_rows(held, seed)
    events = model_events.join(
        seed_events.select("event_id", pl.col("expected").alias("seed_expected")), on="event_id", how="left"
    ).sort("starts_at", "event_id")
    return Evaluation(
        pl.concat(parts),
        float(roc_auc_score(y, p)),
        float(roc_auc_score(y, seed)),
        len(y),
        int(y.sum()),
        cutoff,
        events,
        fitted,
    )


def model_label(fitted: Fitted) -> str:
    return f"hist_gradient_boosting_{fitted.calibration}"


@dataclass
class Gate:
    """Whether the evaluated model may replace the predictions: True (beats the seed rule and the minimum
    AUC), False (worse: refused, the previous predictions stay), None (too few held-out tickets to judge)."""

    passed: bool | None
    reason: str
    metrics: dict


def gate(ev: Evaluation, min_auc: float, min_rows: int, min_positives: int) -> Gate:
    m = {
        "roc_auc_model": ev.model_auc,
        "roc_auc_seed_rule": ev.seed_auc,
        "min_auc": min_auc,
        "holdout_tickets": ev.holdout_rows,
        "holdout_no_shows": ev.holdout_positives,
    }
    if ev.holdout_rows < min_rows or ev.holdout_positives < min_positives:
        return Gate(
            None,
            f"held-out tickets too few to judge: {ev.holdout_rows} tickets, {ev.holdout_positives} no-shows "
            f"(need {min_rows} and {min_positives})",
            m,
        )
    problems = []
    if not ev.model_auc > ev.seed_auc:
        problems.append(f"AUC {ev.model_auc:.4f} does not beat the seed rule's {ev.seed_auc:.4f}")
    if not ev.model_auc >= min_auc:
        problems.append(f"AUC {ev.model_auc:.4f} is below the minimum {min_auc:.2f}")
    if problems:
        return Gate(False, "; ".join(problems), m)
    return Gate(True, f"AUC {ev.model_auc:.4f} > seed rule {ev.seed_auc:.4f} and >= {min_auc:.2f}", m)


def serialize(fitted: Fitted, meta: dict) -> tuple[bytes, str]:
    """The model's joblib bytes and their sha256 (same model and metadata -> same bytes)."""
    payload = {
        "model": fitted.model,
        "features": FEATURES,
        "categories": fitted.categories,
        "calibration": fitted.calibration,
        "threshold": fitted.threshold,
        "sklearn_version": sklearn.__version__,
        **meta,
    }
    buf = io.BytesIO()
    joblib.dump(payload, buf)
    data = buf.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)
