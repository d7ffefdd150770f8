"""The fraud scoring's pure functions on generated frames, without ingestion or Dagster: the generator's
tables renamed/normalized as staging does for clean data (statuses lower case, money columns in cents,
orders.metadata parsed), then features -> rules + IsolationForest -> events over the whole history (what a
single-run backfill of fraud_job computes), scored against the planted truth.

    .venv/bin/python benchmarks/fraud_direct.py --scale medium

Used where ingesting a scale through the jobs is too slow on the machine at hand; the job itself is measured
by bench_fraud.py. Prints; nothing is written.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime

import polars as pl

from analytics_pipelines.fraud import scoring
from analytics_pipelines.fraud.features import Inputs, user_days
from analytics_pipelines.generator import synth
from analytics_pipelines.generator.reference import DEFAULT_AS_OF
from analytics_pipelines.generator.truth import planted_truth


def inputs(t: dict[str, pl.DataFrame]) -> Inputs:
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="small")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--flag", type=int, default=50)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    tables = synth.generate_tables(args.scale, seed=args.seed, as_of=DEFAULT_AS_OF)
    truth = planted_truth(args.scale, args.seed)["fraud"]
    t1 = time.perf_counter()
    days = user_days(inputs(tables))
    t2 = time.perf_counter()
    now = datetime.combine(DEFAULT_AS_OF, datetime.min.time(), UTC)
    scored, note = scoring.score(days, days, args.flag, now)
    ev = scoring.events(scored.filter(pl.col("risk_score") >= args.flag), None, now)
    t3 = time.perf_counter()
    planted = pl.DataFrame(truth["fraudsters"]).select("user_id", pl.col("pattern").alias("true_pattern"))
    users = (
        ev.group_by("user_id")
        .agg(pl.max("risk_score"), pl.col("pattern"))
        .sort(["risk_score", "user_id"], descending=[True, False])
        .join(planted, on="user_id", how="left")
    )
    found = planted.join(users.select("user_id", "pattern"), on="user_id", how="left")
    per = (
        found.group_by("true_pattern")
        .agg(pl.len().alias("planted"), pl.col("pattern").is_not_null().sum().alias("found"))
        .sort("true_pattern")
    )
    out = {
        "scale": args.scale,
        "seed": args.seed,
        "user_days": days.height,
        "model": note,
        "events": ev.height,
        "flagged_users": users.height,
        "precision_at_100": users.head(100)["true_pattern"].is_not_null().mean(),
        "recall": found["pattern"].is_not_null().mean(),
        "precision_all_flags": users["true_pattern"].is_not_null().mean(),
        "per_pattern": {r["true_pattern"]: (r["found"], r["planted"]) for r in per.iter_rows(named=True)},
        "seconds": {
            "generate": round(t1 - t0, 1),
            "features": round(t2 - t1, 1),
            "score_and_events": round(t3 - t2, 1),
        },
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
