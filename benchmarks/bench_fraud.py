"""fraud_job through the real Dagster job (benchmarks/jobrun.py): one daily run (what fraud_daily_schedule
launches) and, once, the whole history as a single-run backfill, then the events against the planted truth
(precision@100, recall, per pattern). Prints; with --record writes benchmarks/results/fraud_<scale>.json.

    .venv/bin/python benchmarks/bench_fraud.py --scale small --base /tmp/bench_fraud_small

Setup (untimed, skipped when <base>/data/warehouse exists): generate the scale (seed 42) and run main_job
over its history (fraud_job reads only staging; main_job is what `make run` builds first). Goal (issue 17): the daily batch <= 30 s at `large`; precision@100 >= 0.8 and recall
>= 0.7 at `medium`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from analytics_pipelines.generator.reference import DEFAULT_AS_OF, SCALES


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="small", choices=list(SCALES))
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--base", required=True, help="working directory (data/ is created under it)")
    ap.add_argument("--skip-history", action="store_true", help="only the daily run")
    ap.add_argument("--record", action="store_true", help="write benchmarks/results/fraud_<scale>.json")
    args = ap.parse_args(argv)
    data = Path(args.base).resolve() / "data"
    history = SCALES[args.scale].history_days
    first = (DEFAULT_AS_OF - timedelta(days=history)).isoformat()
    last = (DEFAULT_AS_OF - timedelta(days=1)).isoformat()
    os.environ.update(
        {
            "TT_DATA_DIR": str(data),
            "TT_SOURCE_URL": f"duckdb:///{data / 'source.duckdb'}",
            "TT_WAREHOUSE_URL": f"duckdb:///{data / 'warehouse'}",
            "TT_OPS_URL": f"sqlite:///{data / 'ops.sqlite'}",
            "TT_PARTITION_START": min(first, "2025-11-01"),
            "TT_ENV": os.environ.get("TT_ENV", "development"),
        }
    )
    import dagster as dg
    from jobrun import failed_checks, peak_rss_gb, timed_run

    from analytics_pipelines.definitions import build_definitions
    from analytics_pipelines.fraud.evaluation import evaluate
    from analytics_pipelines.generator.run import generate
    from analytics_pipelines.generator.truth import planted_truth
    from analytics_pipelines.registry import default_registry
    from analytics_pipelines.settings import Settings
    from analytics_pipelines.warehouse import open_warehouse

    defs = build_definitions(default_registry(), Settings.from_env())
    instance = dg.DagsterInstance.ephemeral()
    now = datetime.combine(DEFAULT_AS_OF, datetime.min.time(), UTC).isoformat()
    if not (data / "warehouse").exists():
        data.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        generate(os.environ["TT_SOURCE_URL"], scale=args.scale, seed=args.seed, progress=False)
        result, seconds, _ = timed_run("main_job", first, last, instance, now=now, defs=defs)
        print(
            f"setup: generate + main_job {time.perf_counter() - t:.1f} s (main_job {seconds:.1f} s)",
            flush=True,
        )
        if not result.success:
            raise SystemExit("main_job failed")
    out: dict = {"scale": args.scale, "seed": args.seed, "date": date.today().isoformat()}
    if not args.skip_history:
        result, seconds, steps = timed_run("fraud_job", first, last, instance, now=now, defs=defs)
        out["history_run"] = {
            "seconds": round(seconds, 1),
            "steps": steps,
            "failed_checks": failed_checks(result),
            "success": result.success,
        }
        print(f"fraud_job over {first}..{last}: {seconds:.1f} s {steps}", flush=True)
        truth = planted_truth(args.scale, args.seed)["fraud"]
        out["evaluation"] = evaluate(open_warehouse(os.environ["TT_WAREHOUSE_URL"]), truth)
        print(json.dumps(out["evaluation"], indent=1), flush=True)
    result, seconds, steps = timed_run("fraud_job", last, last, instance, now=now, defs=defs)
    out["daily_run"] = {
        "seconds": round(seconds, 1),
        "steps": steps,
        "failed_checks": failed_checks(result),
        "success": result.success,
    }
    out["peak_rss_gb"] = round(peak_rss_gb(), 2)
    print(
        f"fraud_job for {last} (the daily schedule's run): {seconds:.1f} s {steps}; peak RSS {out['peak_rss_gb']} GB"
    )
    if args.record:
        results = Path(__file__).parent / "results"
        results.mkdir(exist_ok=True)
        (results / f"fraud_{args.scale}.json").write_text(json.dumps(out, indent=2, default=str))
    return 0 if result.success else 1


if __name__ == "__main__":
    raise SystemExit(main())
