"""`model_performance`: the union of every model family's `<family>_model_performance` table.

Each model asset writes its own family's metrics (one producer per table); this asset collects them so that
analysts and the API read one table. Which families exist comes from the registry (its upstream tables)."""

from __future__ import annotations

import polars as pl

from analytics_pipelines.marts.reconcile import CheckOutcome
from analytics_pipelines.registry.context import BuildContext, Built, md_table

KEY = ["model_family", "model", "metric", "bucket"]


def model_performance(ctx: BuildContext) -> Built:
    have = set(ctx.wh.tables())
    frames = [ctx.wh.read_table(t) for t in ctx.table.upstream if t in have]
    frames = [f for f in frames if f.height]
    df = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame(schema={
        "model_family": pl.String, "model": pl.String, "metric": pl.String, "bucket": pl.String,
        "value": pl.Float64, "n": pl.Int64})
    headline = df.filter(pl.col("bucket").is_null()).select("model_family", "model", "metric", "value", "n")
    return Built({"model_performance": df}, metadata={
        "families": ", ".join(sorted(df["model_family"].unique().to_list())) if df.height else "none",
        "headline": md_table(headline, 40)})


def check_performance(ctx: BuildContext, built: Built) -> CheckOutcome:
    """One row per (family, model, metric, bucket); values finite; AUC, Brier and rates within [0, 1]."""
    df = built.frames["model_performance"]
    keys = [k for k in KEY if k in df.columns] + [c for c in ("evaluation",) if c in df.columns]
    duplicates = df.height - df.select(keys).unique().height if df.height else 0
    values = df["value"] if df.height else pl.Series([], dtype=pl.Float64)
    not_finite = int((values.is_not_null() & ~values.is_finite()).sum()) if df.height else 0
    bounded = df.filter(pl.col("metric").str.contains("roc_auc|brier|precision|recall|coverage")) if df.height else df
    out_of_range = int((~bounded["value"].is_between(0, 1)).sum()) if bounded.height else 0
    return CheckOutcome(duplicates == 0 and not_finite == 0 and out_of_range == 0, {
        "rows": df.height, "duplicate_keys": duplicates, "not_finite_values": not_finite,
        "bounded_metrics_out_of_range": out_of_range})
