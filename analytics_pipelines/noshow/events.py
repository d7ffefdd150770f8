"""Per-event no-show figures: the expected no-shows of an event with their 80 % interval (a Poisson-binomial
sum of the ticket probabilities), the held-out events' expected vs actual, and the reliability deciles."""

from __future__ import annotations

import numpy as np
import polars as pl

Z = 1.2815515655446004  # the standard normal's 90 % quantile: an 80 % central interval


def event_forecast(rows: pl.DataFrame, p: np.ndarray, column: str = "p") -> pl.DataFrame:
    """Per event (tenant_id, venue_id, event_id, starts_at): tickets, expected no-shows (sum p), its
    Poisson-binomial standard deviation and the 80 % interval in whole tickets."""
    mean, var = pl.col(column).sum(), (pl.col(column) * (1 - pl.col(column))).sum()
    return (
        rows.select("tenant_id", "venue_id", "event_id", "starts_at")
        .with_columns(pl.Series(column, p, dtype=pl.Float64))
        .group_by("tenant_id", "venue_id", "event_id")  # on the categorical codes; strings per event after
        .agg(
            pl.first("starts_at"),
            pl.len().cast(pl.Int64).alias("tickets"),
            mean.alias("expected"),
            var.alias("var"),
        )
        .with_columns(pl.col("var").sqrt().alias("sd"))
        .with_columns(
            (pl.col("expected") - Z * pl.col("sd"))
            .floor()
            .clip(0, pl.col("tickets"))
            .cast(pl.Int64)
            .alias("p10"),
            (pl.col("expected") + Z * pl.col("sd"))
            .ceil()
            .clip(0, pl.col("tickets"))
            .cast(pl.Int64)
            .alias("p90"),
        )
        .drop("var")
        .with_columns(pl.col("tenant_id", "venue_id", "event_id").cast(pl.String))
    )


def decile_rows(y: np.ndarray, p: np.ndarray) -> list[tuple]:
    """The reliability table by deciles of the predicted probability: mean predicted vs observed rate."""
    n = len(y)
    if n < 10:
        return []
    order = np.argsort(p, kind="stable")
    decile = np.empty(n, dtype=int)
    decile[order] = np.arange(n) * 10 // n
    rows = []
    for d in range(10):
        sel = decile == d
        label = f"d{d + 1:02d}"
        rows += [
            ("reliability_decile_mean_predicted", label, float(p[sel].mean()), int(sel.sum())),
            ("reliability_decile_observed_rate", label, float(y[sel].mean()), int(sel.sum())),
        ]
    return rows


def event_rows(held: pl.DataFrame, p: np.ndarray) -> tuple[list[tuple], pl.DataFrame]:
    """Per held-out event, expected vs actual no-shows: (metric rows, the per-event frame)."""
    fc = (
        event_forecast(held, p)
        .join(
            held.group_by("event_id")
            .agg(pl.col("no_show").sum().cast(pl.Int64).alias("actual"))
            .with_columns(pl.col("event_id").cast(pl.String)),
            on="event_id",
        )
        .sort("event_id")
    )  # the metrics sum over the events in one order (a group-by's order varies)
    if fc.height == 0:
        return [], fc
    err = (fc["expected"] - fc["actual"]).to_numpy()
    inside = fc.select((pl.col("actual") >= pl.col("p10")) & (pl.col("actual") <= pl.col("p90")))
    n = fc.height
    total_actual = float(fc["actual"].sum())
    rows = [
        ("events", None, float(n), n),
        ("event_mae_no_shows", None, float(np.abs(err).mean()), n),
        ("event_bias_no_shows", None, float(err.mean()), n),
        ("event_interval_coverage", None, float(inside.to_series().mean()), n),
        (
            "event_total_abs_pct_error",
            None,
            float(abs(fc["expected"].sum() - total_actual) / total_actual) if total_actual else None,
            n,
        ),
    ]
    return rows, fc
