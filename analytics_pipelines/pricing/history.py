"""Approved pricing recommendations in the `price_history` mart (source 'recommendation').

An approved change is a decision, not a price the platform charged: it is recorded as a point row
(valid_from = valid_to = the approval time) beside the platform's price intervals, so that the intervals
(and their reconciliation against ticket_price_history and the snapshots) stay the platform's. When the
platform applies it (a ticket_price_history change of the same type to the same price at or after the
approval), the row carries `applied_at` and `applied_change_id`."""

from __future__ import annotations

import polars as pl

from analytics_pipelines.marts.reconcile import CheckOutcome
from analytics_pipelines.pricing.recommend import match_applied

EXTRA = {"change_id": pl.Int64, "applied_at": pl.Datetime("us", "UTC"), "applied_change_id": pl.String}
APPROVED_SCHEMA = {
    "id": pl.Int64,
    "tenant_id": pl.String,
    "venue_id": pl.String,
    "event_id": pl.String,
    "ticket_type_id": pl.String,
    "currency": pl.String,
    "recommended_price_cents": pl.Int64,
    "decided_at": pl.Datetime("us", "UTC"),
}


def approved_changes(ops_url: str | None) -> pl.DataFrame:
    """The ops store's approved changes (pending_price_changes, status 'approved')."""
    from analytics_pipelines.ops import pricing as ops
    from analytics_pipelines.ops.db import ops_engine

    rows = ops.approved(ops_engine(ops_url))
    if not rows:
        return pl.DataFrame(schema=APPROVED_SCHEMA)
    return pl.DataFrame([{k: r[k] for k in APPROVED_SCHEMA} for r in rows], schema=APPROVED_SCHEMA)


def with_recommendations(
    history: pl.DataFrame, approved: pl.DataFrame, types: pl.DataFrame, platform: pl.DataFrame
) -> pl.DataFrame:
    """price_history plus one 'recommendation' row per approved change (types: stg_ticket_types id, name;
    platform: stg_ticket_price_history id, ticket_type_id, new_price_cents, changed_at)."""
    base = history.with_columns(pl.lit(None, t).alias(c) for c, t in EXTRA.items())
    if approved.height == 0:
        return base
    links = match_applied(approved, platform)
    rec = (
        approved.join(
            types.select(pl.col("id").alias("ticket_type_id"), pl.col("name").alias("ticket_type_name")),
            on="ticket_type_id",
            how="left",
        )
        .join(links, on="id", how="left")
        .select(
            "tenant_id",
            "venue_id",
            "event_id",
            "ticket_type_id",
            "ticket_type_name",
            pl.col("recommended_price_cents").alias("price_cents"),
            pl.col("decided_at").alias("valid_from"),
            pl.col("decided_at").alias("valid_to"),
            pl.lit("recommendation").alias("source"),
            "currency",
            pl.col("id").alias("change_id"),
            "applied_at",
            "applied_change_id",
        )
    )
    return pl.concat([base, rec.cast({c: base.schema[c] for c in rec.columns})], how="vertical").sort(
        "ticket_type_id", "valid_from"
    )


def platform_rows(df: pl.DataFrame) -> pl.DataFrame:
    """The platform's price intervals (what the interval reconciliation and event_price_summary cover)."""
    return df.filter(pl.col("source") != "recommendation")


def check_recommendation_rows(df: pl.DataFrame, approved: pl.DataFrame) -> CheckOutcome:
    """Every approved change exactly once as a 'recommendation' row, at its price, type and approval time."""
    rec = df.filter(pl.col("source") == "recommendation")
    a = approved.select(
        pl.col("id").alias("change_id"),
        "ticket_type_id",
        pl.col("recommended_price_cents").alias("price_cents"),
        pl.col("decided_at").alias("valid_from"),
    )
    joined = a.join(rec, on="change_id", how="full", coalesce=True, suffix="_mart")
    differ = joined.filter(
        pl.col("ticket_type_id_mart").is_null()
        | pl.col("ticket_type_id").is_null()
        | (pl.col("ticket_type_id") != pl.col("ticket_type_id_mart"))
        | (pl.col("price_cents") != pl.col("price_cents_mart"))
        | (pl.col("valid_from") != pl.col("valid_from_mart"))
    ).height
    return CheckOutcome(
        differ == 0,
        {
            "recommendation_rows": rec.height,
            "approved_changes": approved.height,
            "recommendation_rows_differing": differ,
        },
    )
