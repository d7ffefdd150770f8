"""Benchmark: the model jobs alone (predictions_job, pricing_job) through the real Dagster jobs on a data
directory whose warehouse main_job already built (not a test).

    python benchmarks/bench_models.py --data-dir /work/wt-models16-large                  # both jobs
    python benchmarks/bench_models.py --data-dir DIR --jobs predictions_job --assets no_show_model

The data directory is used as `make run` uses it (the embedded default warehouse under it, a persistent
Dagster instance in <data-dir>/.dagster); the jobs WRITE into it: point it at a copy, never at shared data.
Per asset step: seconds (STEP_START..STEP_SUCCESS/FAILURE from the event log), CPU seconds of the process
(user + system, every thread) and its peak RSS while the step ran, from bench_full's /proc sampler; the load
average at the start and the end is printed beside (the wall seconds depend on it, the CPU seconds much less).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_full import RssSampler, steps_of  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", required=True, help="a copy of a built data directory (the jobs write)")
    p.add_argument("--jobs", default="predictions_job,pricing_job", help="comma-separated jobs, in order")
    p.add_argument("--assets", help="comma-separated asset keys: only these (one ad-hoc job per --jobs)")
    args = p.parse_args()
    data = Path(args.data_dir).resolve()
    os.environ.setdefault("TT_ENV", "development")
    os.environ["TT_DATA_DIR"] = str(data)
    os.environ["TT_DAGSTER_STORAGE"] = str(data / ".dagster")
    for k in ("TT_SOURCE_URL", "TT_WAREHOUSE_URL", "TT_OPS_URL"):
        os.environ.pop(k, None)  # the embedded default, as `make run`
    from analytics_pipelines.cli import _setup_dagster_home

    _setup_dagster_home()
    import dagster as dg

    from analytics_pipelines.runner import run_job

    defs = None
    jobs = args.jobs.split(",")
    if args.assets:
        from analytics_pipelines.definitions import build_definitions
        from analytics_pipelines.registry import default_registry
        from analytics_pipelines.settings import Settings

        base = build_definitions(default_registry(), Settings.from_env())
        adhoc = dg.define_asset_job(
            "bench_models_job",
            selection=dg.AssetSelection.assets(*args.assets.split(",")).required_multi_asset_neighbors(),
        )
        defs = dg.Definitions.merge(base, dg.Definitions(jobs=[adhoc]))
        jobs = ["bench_models_job"]
    instance = dg.DagsterInstance.get()
    sampler = RssSampler()
    sampler.start()
    print(f"load average at the start: {os.getloadavg()}", flush=True)
    ok = True
    for job in jobs:
        t, c = time.perf_counter(), time.process_time()
        result = run_job(job, instance=instance, defs=defs, log_level="WARNING")
        ok &= result.success
        print(
            f"{job}: {time.perf_counter() - t:.1f} s wall, {time.process_time() - c:.1f} CPU s, "
            f"success={result.success}",
            flush=True,
        )
        time.sleep(0.2)
        for s in steps_of(instance, result.run_id, sampler):
            print(
                f"  {s['step']}: {s['seconds']:.1f} s, {s['cpu_seconds']:.1f} CPU s, "
                f"peak RSS {s['peak_rss_gb']:.2f} GB, ok={s['ok']}"
            )
        for e in result.all_events:  # the builders' own stage timings (materialization metadata)
            if e.event_type_value == "ASSET_MATERIALIZATION":
                m = e.event_specific_data.materialization
                for k in ("stage_seconds", "stages", "cpu_seconds"):
                    if k in m.metadata:
                        print(f"  {m.asset_key.to_user_string()} {k}: {m.metadata[k].value}")
        failed = [
            f"{e.event_specific_data.asset_key.to_user_string()}:{e.event_specific_data.check_name}"
            for e in result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.event_specific_data.passed
        ]
        print(f"  failed checks: {failed or 'none'}", flush=True)
    sampler.stop()
    print(f"load average at the end: {os.getloadavg()}")
    print(f"process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GB")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
