"""`model_performance`: the union of every model family's `<family>_model_performance` table.

Each model asset writes its own family's metrics (one producer per table); this asset collects them so that
analysts and the API read one table. Which families exist comes from the registry (its upstream tables). A
family whose table is partitioned by training day (attribution_model_performance) contributes its latest
partition, without the partition column: model_performance holds each family's latest evaluation."""

from __future__ import annotations

import polars as pl

from analytics_pipelines.marts.reconcile import CheckOutcome
from analytics_pipelines.registry import default_registry
from analytics_pipelines.registry.context import BuildContext, Built, md_table


def model_performance(ctx: BuildContext) -> Built:
    have = set(ctx.wh.tables())
    frames = [_latest(ctx, t) for t in ctx.table.upstream if t in have]
    frames = [_utc(f) for f in frames if f.height]
    df = (
        pl.concat(frames, how="diagonal_relaxed")
        if frames
        else pl.DataFrame(
            schema={
                "model_family": pl.String,
                "model": pl.String,
                "metric": pl.String,
                "bucket": pl.String,
                "value": pl.Float64,
                "n": pl.Int64,
            }
        )
    )
    headline = df.filter(pl.col("bucket").is_null()).select("model_family", "model", "metric", "value", "n")
    return Built(
        {"model_performance": df},
        metadata={
            "families": ", ".join(sorted(df["model_family"].unique().to_list())) if df.height else "none",
            "headline": md_table(headline, 40),
        },
    )


def _latest(ctx: BuildContext, name: str) -> pl.DataFrame:
    """A family's rows; of a table partitioned by training day, only the latest day's (the column dropped)."""
    df = ctx.wh.read_table(name)
    registry = ctx.registry or default_registry()
    col = registry.table(name).partition_column if name in registry.names() else None
    if col is None or col not in df.columns or df.is_empty():
        return df
    return df.filter(pl.col(col) == pl.col(col).max()).drop(col)


def _utc(df: pl.DataFrame) -> pl.DataFrame:
    """Every timestamp column as UTC-aware microseconds: families write trained_at with or without a zone
    (naive means UTC here), and the union needs one type per column."""
    fixes = []
    for name, dtype in df.schema.items():
        if isinstance(dtype, pl.Datetime):
            col = pl.col(name).dt.cast_time_unit("us")
            col = (
                col.dt.replace_time_zone("UTC")
                if dtype.time_zone is None
                else col.dt.convert_time_zone("UTC")
            )
            fixes.append(col.alias(name))
    return df.with_columns(fixes) if fixes else df


def check_performance(ctx: BuildContext, built: Built) -> CheckOutcome:
    """One row per (family, model, evaluation, metric, bucket); values finite; AUC, Brier and shares within
    [0, 1] (the rules of customers/checks.py, which every model family's rows follow)."""
    from analytics_pipelines.customers.checks import check_model_performance

    return check_model_performance(built.frames["model_performance"])
