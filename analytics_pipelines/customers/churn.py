"""Churn: a scikit-learn model on a time split, evaluated beside the old service's two rule scores.

Customer = user, platform-wide (a user belongs to one tenant). Label: a customer with a recognized order on
or before the cutoff churns when they have no recognized order in the `horizon` (90) days after it.

Features as of a cutoff: analytics_pipelines.customers.churn_features (only data up to the end of the
cutoff day).

Out-of-time split (T = as_of, h = horizon = the label window, 90 days). Training rows: the customers as of
each of TRAIN_SNAPSHOTS cutoffs T - 2h, T - 2h - 30 d, T - 2h - 60 d (stacked; above MAX_TRAIN_ROWS rows a
deterministic sample), each labelled by (cutoff, cutoff + h], so no training label looks past T - h.
Evaluation rows ('out_of_time'): the customers as of T - h, labelled by (T - h, T]: behaviour after every
training label. The decision threshold maximises F1 on the training rows; model_performance holds ROC AUC,
average precision, precision/recall/F1 at that threshold, the Brier score and ten reliability bins for the
training rows ('in_sample') and the out-of-time rows, for the model and the old rules on the same rows. A
history too short for a training snapshot (under 2h before T) falls back to the former in-time design:
the customers as of T - h, a deterministic 25 % (polars hash of user_id) held out ('in_time_holdout').
The old rules: `seed_risk_score` (analytics-service L540-587: customers silent > 90 days get min(100,
days/90 x 50) - 10 if > 5 purchases - 10 if > 10 - 5 if AOV > $100, others 0; high risk > 70) and
`seed_profile_churn` (L5649-5905: 0.8/0.6/0.4/0.2/0.1 by days silent > 180/90/60/30, x 0.5 if > 4
purchases a year, x 0.7 if > 2; flagged > 0.6). Purchases are orders here (the old service counted ticket
rows), and the profile rule's first/last purchase swap is not copied.

The model that scores today's customers is refitted on all labelled rows (training + evaluation rows, every
label observed by T) and applied to the features as of `as_of`.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import joblib
import numpy as np
import polars as pl
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from analytics_pipelines.customers.churn_features import NUMERIC, Inputs, features, features_at
from analytics_pipelines.customers.evaluation import best_f1_threshold as _best_f1_threshold
from analytics_pipelines.customers.evaluation import evaluate, performance_rows

HORIZON_DAYS = 90
HOLDOUT_SHARE = 4  # 1 in 4 customers (the in-time fallback only)
TRAIN_SNAPSHOTS = 3  # training cutoffs as_of - 2 x horizon, 30 and 60 days before it
SNAPSHOT_STEP_DAYS = 30
#: a logistic regression on ~30 features learns nothing more from millions of rows than from 200k: larger
#: training sets are subsampled (deterministically) to bound the fit time; the holdout is always complete
MAX_TRAIN_ROWS = 200_000
TOP_CATEGORIES = 10
MODEL_NAME = "logistic_regression"


class NotEnoughHistory(ValueError):
    """The history cannot support a churn model (too short, or one class only)."""


def label(inp: Inputs, feats: pl.DataFrame, cutoff: date, horizon: int = HORIZON_DAYS) -> pl.DataFrame:
    """`churned` = no recognized order in (cutoff, cutoff + horizon]."""
    later = inp.orders.filter((pl.col("day") > cutoff) & (pl.col("day") <= cutoff + timedelta(days=horizon)))
    active = later.select("user_id").unique().with_columns(pl.lit(False).alias("churned"))
    return feats.join(active, on="user_id", how="left").with_columns(pl.col("churned").fill_null(True))


def rule_scores_only(inp: Inputs, as_of: date) -> pl.DataFrame:
    """customer_churn_scores when there is no model (NotEnoughHistory): the old rules' scores, NULL
    probabilities."""
    return seed_rules(features(inp, as_of)).select(
        pl.lit(as_of).alias("as_of"),
        "user_id",
        "tenant_id",
        "recency_days",
        "frequency",
        pl.lit(None, pl.Float64).alias("churn_probability"),
        pl.lit(None, pl.Boolean).alias("churn_flag"),
        "seed_risk_score",
        "seed_profile_churn",
        "favourite_category_id",
    )


def seed_rules(feats: pl.DataFrame) -> pl.DataFrame:
    """The old service's two rule scores (module doc) for each feature row."""
    days = pl.col("recency_days")
    aov_dollars = pl.col("monetary_cents") / pl.col("frequency") / 100
    risk = (
        (days / 90 * 50).clip(upper_bound=100)
        - pl.when(pl.col("frequency") > 5).then(10).otherwise(0)
        - pl.when(pl.col("frequency") > 10).then(10).otherwise(0)
        - pl.when(aov_dollars > 100).then(5).otherwise(0)
    ).clip(0, 100)
    span_years = (pl.col("last_day") - pl.col("first_day")).dt.total_days() / 365
    per_year = (
        pl.when((pl.col("frequency") > 1) & (span_years > 0))
        .then(pl.col("frequency") / span_years)
        .otherwise(0.0)
    )
    base = (
        pl.when(days > 180)
        .then(0.8)
        .when(days > 90)
        .then(0.6)
        .when(days > 60)
        .then(0.4)
        .when(days > 30)
        .then(0.2)
        .otherwise(0.1)
    )
    factor = pl.when(per_year > 4).then(0.5).when(per_year > 2).then(0.7).otherwise(1.0)
    return feats.with_columns(
        pl.when(days > 90).then(risk).otherwise(0.0).alias("seed_risk_score"),
        (base * factor).alias("seed_profile_churn"),
    )


def _matrix(feats: pl.DataFrame, categories: list[str]) -> np.ndarray:
    """The numeric features (NULL = 0) and the favourite category one-hot (the ten, then 'other'), written
    column by column into one Fortran-ordered float64 array (the layout the model has always been fitted
    on: the scaler's column sums depend on it)."""
    k = len(NUMERIC)
    out = np.empty((feats.height, k + len(categories) + 1), dtype=np.float64, order="F")
    for j, c in enumerate(NUMERIC):
        out[:, j] = feats[c].fill_null(0.0).to_numpy()
    fav = feats["favourite_category_id"]
    for j, c in enumerate(categories):
        out[:, k + j] = (fav == c).fill_null(False).to_numpy()
    out[:, -1] = (~fav.is_in(categories)).fill_null(True).to_numpy()
    return out


def _fit(x: np.ndarray, y: np.ndarray):
    if len(y) > MAX_TRAIN_ROWS:
        keep = np.random.default_rng(20261101).choice(len(y), MAX_TRAIN_ROWS, replace=False)
        x, y = x[keep], y[keep]
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, C=1.0)).fit(x, y)


@dataclass
class ChurnResult:
    scores: pl.DataFrame  # per customer as of as_of
    performance: pl.DataFrame  # model_performance rows (model_family 'churn')
    model: object
    categories: list[str]
    threshold: float
    cutoff: date
    holdout: dict[
        str, float
    ]  # headline figures: 'model:metric' of the evaluation, ':in_sample' the fitted rows'
    evaluation: str = "out_of_time"  # or 'in_time_holdout' (history too short for an out-of-time split)
    training_rows: pl.DataFrame | None = None  # user_id, cutoff, churned: the evaluated model's fitted rows
    train_cutoffs: list[date] | None = None  # the training snapshots' cutoffs (none in the in-time fallback)


def train(inp: Inputs, as_of: date, horizon: int = HORIZON_DAYS) -> ChurnResult:
    """Train on snapshots whose labels end by as_of - horizon, evaluate out of time on the customers as of
    as_of - horizon labelled by (as_of - horizon, as_of] (beside the rules), refit on all those labelled
    rows, score as of `as_of` (module doc).

    BLAS is held to one thread: L-BFGS on ~30 coefficients is many tiny BLAS calls, which a multi-threaded
    OpenBLAS made several times slower on the shared 2-core machine (measured)."""
    with threadpool_limits(limits=1, user_api="blas"):
        return _train(inp, as_of, horizon)


def training_cutoffs(
    as_of: date,
    horizon: int = HORIZON_DAYS,
    snapshots: int = TRAIN_SNAPSHOTS,
    step_days: int = SNAPSHOT_STEP_DAYS,
) -> list[date]:
    """The out-of-time design's training cutoffs, latest first: the latest is as_of - 2 x horizon, so every
    training label window (cutoff, cutoff + horizon] ends on or before the split as_of - horizon."""
    last = as_of - timedelta(days=2 * horizon)
    return [last - timedelta(days=step_days * k) for k in range(snapshots)]


def _viable(y: np.ndarray, rows: int = 20, per_class: int = 5) -> bool:
    return len(y) >= rows and min(int(y.sum()), len(y) - int(y.sum())) >= per_class


def _train(inp: Inputs, as_of: date, horizon: int) -> ChurnResult:
    split = as_of - timedelta(days=horizon)
    first = inp.orders["day"].min()
    cutoffs = [c for c in training_cutoffs(as_of, horizon) if first is not None and c >= first]
    frames = features_at(inp, [*cutoffs, split, as_of])  # one pass for every snapshot and today's rows
    at_split, at_as_of = frames[-2], frames[-1]
    evaluated = seed_rules(label(inp, at_split, split, horizon)).with_columns(pl.lit(split).alias("cutoff"))
    y_ev = evaluated["churned"].to_numpy().astype(int)
    parts = [
        seed_rules(label(inp, f, c, horizon)).with_columns(pl.lit(c).alias("cutoff"))
        for c, f in zip(cutoffs, frames, strict=False)
    ]
    trained = pl.concat(parts, how="vertical_relaxed") if parts else evaluated.clear()
    if (
        trained.height > MAX_TRAIN_ROWS
    ):  # subsampled before the matrix: the fitted rows are the in-sample rows
        keep = np.sort(np.random.default_rng(20261101).choice(trained.height, MAX_TRAIN_ROWS, replace=False))
        trained = trained[pl.Series(keep)]
    evaluation = "out_of_time"
    if not (_viable(trained["churned"].to_numpy().astype(int)) and _viable(y_ev)):
        # too short a history for snapshots whose labels end by the split: the old in-time customer holdout
        if not _viable(y_ev):
            raise NotEnoughHistory(
                f"churn needs labelled customers of both classes as of {split} (horizon "
                f"{horizon} days before {as_of}); got {len(y_ev)} customers, "
                f"{int(y_ev.sum())} churned"
            )
        holdout = evaluated["user_id"].hash(seed=20261101) % HOLDOUT_SHARE == 0
        trained, evaluated, evaluation = (
            evaluated.filter(~holdout),
            evaluated.filter(holdout),
            "in_time_holdout",
        )
        y_ev = evaluated["churned"].to_numpy().astype(int)
        y_tr = trained["churned"].to_numpy().astype(int)
        if min(y_ev.sum(), len(y_ev) - y_ev.sum()) == 0 or not _viable(y_tr, 5, 1):
            raise NotEnoughHistory(f"churn holdout or training rows as of {split} hold one class only")
    y_tr = trained["churned"].to_numpy().astype(int)
    categories = (
        trained["favourite_category_id"]
        .drop_nulls()
        .value_counts(sort=True)
        .head(TOP_CATEGORIES)["favourite_category_id"]
        .sort()
        .to_list()
    )
    x_tr, x_ev = _matrix(trained, categories), _matrix(evaluated, categories)
    model = _fit(x_tr, y_tr)
    p_tr = model.predict_proba(x_tr)[:, 1]
    threshold = _best_f1_threshold(y_tr, p_tr)
    p_ev = model.predict_proba(x_ev)[:, 1]
    perf = []
    for name, rows, y, p in (("in_sample", trained, y_tr, p_tr), (evaluation, evaluated, y_ev, p_ev)):
        perf += [
            performance_rows("churn", MODEL_NAME, as_of, split, horizon, evaluate(y, p, threshold), name),
            performance_rows(
                "churn",
                "seed_risk_score",
                as_of,
                split,
                horizon,
                evaluate(y, rows["seed_risk_score"].to_numpy() / 100, 0.70 + 1e-9),
                name,
            ),
            performance_rows(
                "churn",
                "seed_profile_churn",
                as_of,
                split,
                horizon,
                evaluate(y, rows["seed_profile_churn"].to_numpy(), 0.60 + 1e-9),
                name,
            ),
        ]
    performance = pl.concat(perf)
    head = performance.filter(pl.col("metric").is_in(["roc_auc", "precision", "recall", "brier"]))
    headline = {
        r["model"] + ":" + r["metric"] + ("" if r["evaluation"] == evaluation else ":" + r["evaluation"]): r[
            "value"
        ]
        for r in head.iter_rows(named=True)
    }
    final = _fit(np.vstack([x_tr, x_ev]), np.concatenate([y_tr, y_ev]))  # every label observed by as_of
    now = seed_rules(at_as_of)
    p_now = final.predict_proba(_matrix(now, categories))[:, 1] if now.height else np.zeros(0)
    scores = now.select(
        pl.lit(as_of).alias("as_of"),
        "user_id",
        "tenant_id",
        "recency_days",
        "frequency",
        pl.Series("churn_probability", p_now, dtype=pl.Float64),
        pl.Series("churn_flag", p_now >= threshold, dtype=pl.Boolean),
        "seed_risk_score",
        "seed_profile_churn",
        "favourite_category_id",
    )
    return ChurnResult(
        scores,
        performance,
        final,
        categories,
        threshold,
        split,
        headline,
        evaluation,
        trained.select("user_id", "cutoff", "churned"),
        sorted(cutoffs),
    )


def save_model(result: ChurnResult, directory: Path, as_of: date) -> tuple[Path, str]:
    """Write the fitted model (joblib) as `churn-<as_of>-<sha256[:12]>.joblib` in `directory` (temp file +
    rename); returns (path, full sha256 of the file). Same model bytes -> same name."""
    payload = {
        "model": result.model,
        "numeric_features": NUMERIC,
        "categories": result.categories,
        "threshold": result.threshold,
        "cutoff": result.cutoff.isoformat(),
        "as_of": as_of.isoformat(),
        "horizon_days": HORIZON_DAYS,
        "holdout": result.holdout,
        "evaluation": result.evaluation,
        "train_cutoffs": [c.isoformat() for c in result.train_cutoffs or []],
        "sklearn_version": sklearn.__version__,
    }
    buf = io.BytesIO()
    joblib.dump(payload, buf)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"churn-{as_of.isoformat()}-{digest[:12]}.joblib"
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path, digest


def load_model(path: Path) -> dict:
    """The payload written by :func:`save_model` (model, feature names, categories, threshold, ...)."""
    return joblib.load(path)
