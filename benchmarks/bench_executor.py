"""Benchmark: one daily partition of a job through the path the daemon's runs take, not execute_in_process:
`dagster job execute` (the run worker's code path) with the definitions' default executor (multiprocess, step
processes forked from a preloaded server: analytics_pipelines/definitions.py). Not a test.

    python benchmarks/bench_executor.py --data-dir /work/large/data --day 2026-10-31 --runs 2

The data dir is one a run built (`analytics-pipelines run --scale large`); its instance (<data-dir>/.dagster, the
project's dagster.yaml storage) records the runs. Prints per run: wall seconds (the command), the run's own
seconds (RUN_START..RUN_SUCCESS), the sum of its steps (STEP_START..STEP_SUCCESS, two at a time on 2 cores)
and the slowest steps. Figures are recorded by hand in results/large-steps.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from analytics_pipelines.instance import storage_env

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run_env(data: Path) -> dict[str, str]:
    return {
        "DAGSTER_HOME": str(ROOT),  # the project's dagster.yaml
        **storage_env(str(data / ".dagster")),
        "TT_DATA_DIR": str(data),
        "TT_ENV": os.environ.get("TT_ENV", "development"),
    }


def one_run(job: str, day: str, env: dict[str, str]) -> tuple[float, str]:
    t = time.perf_counter()
    proc = subprocess.run(
        [str(BIN / "dagster"), "job", "execute", "-m", "analytics_pipelines.definitions", "-j", job]
        + ["--tags", json.dumps({"dagster/partition": day})],
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{job} {day} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return wall, proc.stderr + proc.stdout


def run_figures(env: dict[str, str], job: str) -> dict:
    os.environ.update(env)
    import dagster as dg

    instance = dg.DagsterInstance.get()
    run = instance.get_runs(filters=dg.RunsFilter(job_name=job), limit=1)[0]

    def entries(kind):
        return [r.event_log_entry for r in instance.get_records_for_run(run.run_id, of_type=kind).records]

    start = entries(dg.DagsterEventType.RUN_START)[0].timestamp
    end = entries(dg.DagsterEventType.RUN_SUCCESS)[0].timestamp
    steps = {
        e.step_key: e.dagster_event.event_specific_data.duration_ms / 1000
        for e in entries(dg.DagsterEventType.STEP_SUCCESS)
    }
    return {"status": run.status.value, "run_s": end - start, "steps": steps}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True, type=Path)
    p.add_argument("--day", default="2026-10-31")
    p.add_argument("--job", default="main_job")
    p.add_argument("--runs", type=int, default=2)
    args = p.parse_args()
    env = {**os.environ, **run_env(args.data_dir.resolve())}
    for i in range(args.runs):
        wall, _ = one_run(args.job, args.day, env)
        fig = run_figures(env, args.job)
        steps = fig["steps"]
        top = sorted(steps.items(), key=lambda kv: -kv[1])[:8]
        print(
            f"run {i + 1}: {args.job} {args.day} {fig['status']}: command {wall:.1f} s, run {fig['run_s']:.1f} s, "
            f"{len(steps)} steps summing {sum(steps.values()):.1f} s; slowest: "
            + ", ".join(f"{k} {v:.1f}" for k, v in top),
            flush=True,
        )


if __name__ == "__main__":
    main()
