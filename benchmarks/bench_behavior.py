"""Behavioral ingestion and attribution for one day (writes benchmarks/results/behavior_<scale>.md).

Generates the world at `scale`, writes the MongoDB collections as Extended JSON files, then times, through
the same functions the behavior_job's assets call (behavior.ingest.ingest with the file source,
behavior.attribution.attribute):
- ingesting ONE day (all collections: read + bson.json_util parse + normalize + place + quarantine);
- attributing ONE day (five models; the data-driven model fitted on the 180 days before it, paths over a
  30-day lookback), with the touchpoints of those 210 days ingested beforehand (timed separately);
and reports the data-driven model's channel ranking against the planted order, and the seed's.

    python benchmarks/bench_behavior.py [--scale small|medium|large] [--record]

Prints its figures; --record also writes them to benchmarks/results/behavior_<scale>.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from analytics_pipelines.behavior.attribution import attribute
from analytics_pipelines.behavior.ingest import ingest
from analytics_pipelines.behavior.source import FileSource
from analytics_pipelines.generator.behavior_docs import write_files
from analytics_pipelines.generator.reference import DEFAULT_AS_OF, SCALES
from analytics_pipelines.generator.synth import _build

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="small")
    ap.add_argument("--record", action="store_true", help="write benchmarks/results/behavior_<scale>.md")
    ap.add_argument("--training-days", type=int, default=180, help="the data-driven model's training window")
    ap.add_argument("--day", help="the day to ingest/attribute (default: 30 days before as_of)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    w = _build(SCALES[args.scale], 42, DEFAULT_AS_OF)
    t_build = time.perf_counter() - t0
    d = Path(tempfile.mkdtemp(prefix="bench-behavior-")) / "mongo"
    t0 = time.perf_counter()
    counts = write_files(w.behavior, d)
    t_write = time.perf_counter() - t0
    venues = pl.DataFrame(
        {
            "id": w.venues.ids.take(np.arange(len(w.venues.ids))),
            "tenant_id": w.tenant_ids.take(w.venues.tenant),
        }
    )
    day = args.day or (DEFAULT_AS_OF - timedelta(days=30)).isoformat()
    t0, c0 = time.perf_counter(), time.process_time()
    one = ingest(FileSource(d), day, day, venues, 720)
    t_ingest, c_ingest = time.perf_counter() - t0, time.process_time() - c0
    docs_day = int(one["behavior_ledger"]["docs"].sum())
    first = (date.fromisoformat(day) - timedelta(days=args.training_days + 30)).isoformat()
    t0 = time.perf_counter()
    tp = ingest(FileSource(d), first, day, venues, 720, kinds=("touchpoints",))["raw_campaign_touchpoints"]
    t_tp = time.perf_counter() - t0
    o = w.orders
    paid = np.isin(o.status, (2, 3, 6))
    t = np.where(o.confirmed >= 0, o.confirmed, o.created)[paid]
    orders = pl.DataFrame(
        {
            "order_id": o.ids.take(np.flatnonzero(paid)),
            "day": pl.from_epoch(pl.Series(t), "s").dt.date(),
            "event_id": w.events.ids.take(o.event[paid]),
            "revenue_cents": o.total[paid],
        }
    ).filter(pl.col("day") == date.fromisoformat(day))
    t0, c0 = time.perf_counter(), time.process_time()
    out = attribute(tp, orders, day, day, 30, args.training_days)
    t_attr, c_attr = time.perf_counter() - t0, time.process_time() - c0
    eff = out["attribution_channel_effects"]
    planted = w.truth["behavior"]["planted_order"]
    lines = [
        f"# Behavioral ingestion and attribution, `{args.scale}` (seed 42), one day ({day})",
        "",
        f"Machine: {platform.machine()}, {platform.python_version()}, 2 cores shared with other jobs; load "
        f"average {os.getloadavg()[0]:.1f} at the end. Wall seconds depend on that load; CPU seconds (all of the "
        "process's threads) much less.",
        "",
        "| step | wall s | volume |",
        "|---|---|---|",
        f"| build the world (generator, all tables + documents) | {t_build:.1f} | {sum(counts.values()):,} documents |",
        f"| write Extended JSON files | {t_write:.1f} | {len(list(d.rglob('*.json'))):,} files |",
        f"| **ingest one day** (all collections) | **{t_ingest:.2f}** (CPU {c_ingest:.2f}) | {docs_day:,} documents "
        "placed in the day |",
        f"| ingest {args.training_days + 30} days of touchpoints (attribution's input) | {t_tp:.1f} | "
        f"{tp.height:,} touchpoints |",
        f"| **attribute one day** (5 models, Shapley fit on {args.training_days} days) | **{t_attr:.2f}** "
        f"(CPU {c_attr:.2f}) | "
        f"{out['campaign_attribution']['order_id'].n_unique():,} orders, {tp.height:,} touchpoints read |",
        "",
        f"Planted order of true incremental effect: {', '.join(planted)}",
        "",
        "| tenant | data-driven ranking (estimated effect) | matches | seed fixed-weight ranking | matches |",
        "|---|---|---|---|---|",
    ]
    for (tenant,), rows in eff.group_by("tenant_id", maintain_order=True):
        dd = rows.sort("effect_rank")
        sd = rows.sort("seed_rank")["channel"].to_list()
        ranking = ", ".join(
            f"{c} {e:.3f}" for c, e in zip(dd["channel"], dd["incremental_effect"], strict=True)
        )
        lines.append(
            f"| {tenant[:8]} | {ranking} | {dd['channel'].to_list() == planted} | {', '.join(sd)} | {sd == planted} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.record:
        return
    out_path = ROOT / "benchmarks" / "results" / f"behavior_{args.scale}.md"
    out_path.write_text(text)


if __name__ == "__main__":
    main()
