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
from analytics_pipelines.fraud.evaluation import inputs_from_source, rank_against_truth
from analytics_pipelines.fraud.features import user_days
from analytics_pipelines.generator import synth
from analytics_pipelines.generator.reference import DEFAULT_AS_OF
from analytics_pipelines.generator.truth import planted_truth


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
    days = user_days(inputs_from_source(tables))
    t2 = time.perf_counter()
    now = datetime.combine(DEFAULT_AS_OF, datetime.min.time(), UTC)
    scored, note = scoring.score(days, days, args.flag, now)
    ev = scoring.events(scored.filter(pl.col("risk_score") >= args.flag), None, now)
    t3 = time.perf_counter()
    r = rank_against_truth(ev, truth)
    out = {
        "scale": args.scale,
        "seed": args.seed,
        "user_days": days.height,
        "model": note,
        "events": ev.height,
        **r,
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
