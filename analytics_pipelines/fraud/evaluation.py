"""How the fraud scoring does against the generator's planted fraudsters (world.truth["fraud"]). Only tests
and benchmarks call this: the scoring assets never read the truth."""

from __future__ import annotations

import polars as pl

from analytics_pipelines.fraud.features import Inputs
from analytics_pipelines.warehouse.base import Warehouse


def evaluate(wh: Warehouse, truth: dict, k: int = 100) -> dict:
    """`rank_against_truth` over the warehouse's fraud_events."""
    return rank_against_truth(
        wh.read_table("fraud_events", columns=["user_id", "pattern", "risk_score"]), truth, k
    )


def rank_against_truth(ev: pl.DataFrame, truth: dict, k: int = 100) -> dict:
    """precision@k over users ranked by their highest event risk, recall over planted users (an event of
    any pattern), recall and pattern agreement per planted pattern, and the precision of every flag."""
    planted = pl.DataFrame(truth["fraudsters"]).select("user_id", pl.col("pattern").alias("true_pattern"))
    users = (
        ev.sort("risk_score", descending=True)
        .group_by("user_id", maintain_order=True)
        .agg(pl.max("risk_score"), pl.col("pattern").alias("patterns"))
        .sort(["risk_score", "user_id"], descending=[True, False])
        .join(planted, on="user_id", how="left")
    )
    top = users.head(k)
    hit = planted.join(users.select("user_id", "patterns"), on="user_id", how="left")
    per = (
        hit.group_by("true_pattern")
        .agg(
            pl.len().alias("planted"),
            pl.col("patterns").is_not_null().sum().alias("found"),
            pl.col("patterns")
            .list.contains(pl.col("true_pattern"))
            .fill_null(False)
            .sum()
            .alias("same_pattern"),
        )
        .sort("true_pattern")
    )
    return {
        "k": k,
        "precision_at_k": top["true_pattern"].is_not_null().mean() if top.height else 0.0,
        "recall": hit["patterns"].is_not_null().mean() if hit.height else 0.0,
        "flagged_users": users.height,
        "precision_all_flags": users["true_pattern"].is_not_null().mean() if users.height else 0.0,
        "planted_users": planted.height,
        "per_pattern": {
            r["true_pattern"]: {
                "planted": r["planted"],
                "found": r["found"],
                "recall": r["found"] / r["planted"],
                "same_pattern": r["same_pattern"],
            }
            for r in per.iter_rows(named=True)
        },
    }


def inputs_from_source(t: dict[str, pl.DataFrame]) -> Inputs:
    """Generated source tables (synth.generate_tables) shaped as staging holds them for clean data: statuses
    lower case, marketplace money in *_cents, orders.metadata parsed. For evaluations without ingestion."""
    meta = pl.col("metadata")
    orders = (
        t["orders"]
        .select(
            "id",
            "tenant_id",
            "user_id",
            "event_id",
            pl.col("status").str.to_lowercase(),
            "created_at",
            "confirmed_at",
            "cancelled_at",
            meta.str.json_path_match("$.payment_method").alias("payment_method"),
            meta.str.json_path_match("$.channel").alias("channel"),
        )
        .with_columns(pl.coalesce("created_at", "confirmed_at", "cancelled_at").alias("t"))
    )
    return Inputs(
        orders=orders,
        items=t["order_items"].select("order_id", "quantity"),
        users=t["users"].select("id", "created_at"),
        events=t["events"].select("id", "venue_id"),
        refunds=t["order_refunds"].select("order_id", "created_at"),
        listings=t["marketplace_listings"].select(
            "tenant_id",
            "seller_id",
            "ticket_id",
            "venue_id",
            pl.col("price").alias("price_cents"),
            pl.col("original_face_value").alias("original_face_value_cents"),
            "listed_at",
        ),
        tickets=t["tickets"].select("id", "purchased_at"),
    )
