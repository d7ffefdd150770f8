"""Validation of the elasticity model on held-out price changes, against the seed's fixed -1.5.

Holdout: the events whose id hashes into the last fifth (about 20 %, stable across runs). The model is
fitted on the other events; for every price change of a held-out ticket type, the tickets it sold in the
`window` observed days after the change are predicted from the tickets it sold in the `window` observed
days before it at the old price: pre x (controls' expected demand after / before) x (new / old price) ^
elasticity. The model uses its category's estimate; the baseline uses -1.5 with the same controls, so the
comparison isolates the elasticity. Metrics: WAPE (sum |error| / sum observed), mean absolute error in
tickets, mean Poisson deviance; rows in `pricing_model_performance` (evaluation 'in_time_holdout').
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime

import numpy as np
import polars as pl

from analytics_pipelines.pricing.model import FEATURES, MODEL, SEED_ELASTICITY, control_effect

WINDOW = 14
FAMILY = "pricing"
BASELINE = "seed_fixed_elasticity_-1.5"

PERFORMANCE_SCHEMA = {
    "model_family": pl.String,
    "model": pl.String,
    "model_version": pl.String,
    "trained_at": pl.Datetime("us", "UTC"),
    "train_first": pl.Date,
    "train_last": pl.Date,
    "features": pl.String,
    "as_of": pl.Date,
    "cutoff": pl.Date,
    "horizon_days": pl.Int64,
    "evaluation": pl.String,
    "metric": pl.String,
    "bucket": pl.String,
    "value": pl.Float64,
    "n": pl.Int64,
}


def holdout_events(event_ids: pl.Series, share: int = 5) -> pl.Series:
    """True for the events held out (a stable hash of the id: the same events every run)."""
    return event_ids.map_elements(
        lambda e: int(hashlib.sha256(str(e).encode()).hexdigest()[:8], 16) % share == 0,
        return_dtype=pl.Boolean,
    )


def change_windows(panel: pl.DataFrame, deltas: list[np.ndarray], window: int = WINDOW) -> pl.DataFrame:
    """One row per observed price change with enough days on both sides: tickets before/after, the
    controls' expected demand before/after (exp(controls' effect) summed), old and new price."""
    p = panel.sort("ticket_type_id", "day")
    p = p.with_columns(
        pl.Series("w", np.exp(control_effect(p, deltas))),
        pl.col("price_change").cum_sum().over("ticket_type_id").alias("spell"),
        pl.int_range(pl.len()).over("ticket_type_id").alias("pos"),
    )
    changes = p.filter(pl.col("price_change") == 1).select(
        "ticket_type_id", "category_id", "tenant_id", pl.col("spell"), pl.col("pos").alias("at")
    )
    if changes.height == 0:
        return pl.DataFrame()
    j = p.select("ticket_type_id", "pos", "spell", "tickets", "w", "price_cents").join(
        changes, on="ticket_type_id", how="inner", suffix="_c"
    )
    pre = j.filter((pl.col("spell") == pl.col("spell_c") - 1) & (pl.col("pos") >= pl.col("at") - window))
    post = j.filter((pl.col("spell") == pl.col("spell_c")) & (pl.col("pos") < pl.col("at") + window))
    agg = [
        pl.col("tickets").sum().alias("tickets"),
        pl.col("w").sum().alias("w"),
        pl.col("price_cents").first().alias("price"),
        pl.len().alias("days"),
    ]
    k = ["tenant_id", "category_id", "ticket_type_id", "at"]
    return (
        pre.group_by(k)
        .agg(agg)
        .join(post.group_by(k).agg(agg), on=k, suffix="_post")
        .filter((pl.col("days") >= 3) & (pl.col("days_post") >= 3))
        # windows in which the controls expect no demand (levels never seen selling) cannot be scaled
        .filter((pl.col("w") > 1e-6) & (pl.col("w_post") > 1e-6))
    )


def _metrics(obs: np.ndarray, pred: np.ndarray) -> list[tuple[str, float]]:
    err = np.abs(obs - pred)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(obs > 0, obs * np.log(obs / np.maximum(pred, 1e-9)), 0.0) - (obs - pred)
    return [
        ("wape", float(err.sum() / obs.sum()) if obs.sum() > 0 else 0.0),
        ("mae_tickets", float(err.mean())),
        ("poisson_deviance", float(2 * term.mean())),
    ]


def evaluate(
    windows: pl.DataFrame,
    elasticity: pl.DataFrame,
    version: str,
    trained_at: datetime,
    train_first: date | None,
    train_last: date | None,
) -> pl.DataFrame:
    """pricing_model_performance rows: the model's and the baseline's holdout metrics, plus how many
    held-out changes had a category estimate."""
    base = dict(
        model_family=FAMILY,
        model_version=version,
        trained_at=trained_at,
        train_first=train_first,
        train_last=train_last,
        features=",".join(FEATURES),
        as_of=train_last,
        cutoff=train_last,
        horizon_days=WINDOW,
        evaluation="in_time_holdout",
        bucket=None,
    )
    rows = []
    if windows.height:
        est = elasticity.filter(pl.col("status") == "estimated").select(
            pl.col("tenant_id"), pl.col("category").alias("category_id"), "elasticity"
        )
        w = windows.with_columns(pl.col("category_id").fill_null("(none)")).join(
            est, on=["tenant_id", "category_id"], how="inner"
        )
        obs = w["tickets_post"].to_numpy().astype(float)
        scale = (w["tickets"] * w["w_post"] / w["w"]).to_numpy()
        ratio = (w["price_post"] / w["price"]).to_numpy().astype(float)
        for model, e in ((MODEL, w["elasticity"].to_numpy()), (BASELINE, np.full(w.height, SEED_ELASTICITY))):
            for metric, value in _metrics(obs, scale * ratio**e) if w.height else []:
                rows.append({**base, "model": model, "metric": metric, "value": value, "n": w.height})
        rows.append(
            {
                **base,
                "model": MODEL,
                "metric": "holdout_changes",
                "value": float(windows.height),
                "n": w.height,
            }
        )
    else:
        rows.append({**base, "model": MODEL, "metric": "holdout_changes", "value": 0.0, "n": 0})
    return pl.DataFrame(rows, schema=PERFORMANCE_SCHEMA)


#: fewer held-out changes than this: the comparison is noise, the check reports it as skipped (a warning)
MIN_HOLDOUT_CHANGES = 20


def beats_baseline(perf: pl.DataFrame) -> tuple[bool | None, dict]:
    """The model's holdout WAPE is no worse than the baseline's: True/False, or None when there are fewer
    than MIN_HOLDOUT_CHANGES held-out changes with a category estimate (too few to tell)."""
    wape = perf.filter(pl.col("metric") == "wape")
    m = wape.filter(pl.col("model") == MODEL)["value"]
    b = wape.filter(pl.col("model") == BASELINE)["value"]
    n = int(wape["n"][0]) if wape.height else 0
    if n < MIN_HOLDOUT_CHANGES or m.len() == 0 or b.len() == 0:
        return None, {
            "changes": n,
            "note": f"fewer than {MIN_HOLDOUT_CHANGES} held-out price changes to compare",
        }
    return bool(m[0] <= b[0] + 1e-12), {"model_wape": m[0], "baseline_wape": b[0], "changes": n}
