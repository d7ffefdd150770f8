"""Benchmark: one daily partition of a job, or a range of them as one run (a single-run backfill, e.g. the full
refresh), through the path the daemon's runs take, not execute_in_process: `dagster job execute` (the run
worker's code path) with the definitions' default executor (multiprocess, step processes forked from a
preloaded server: analytics_pipelines/definitions.py). Not a test.

    python benchmarks/bench_executor.py --data-dir /work/large/data --day 2026-10-31 --runs 2
    python benchmarks/bench_executor.py --data-dir /tmp/fresh/data --range all --runs 1   # full refresh

The data dir is one a run built (`analytics-pipelines run --scale large`); its instance (<data-dir>/.dagster, the
project's dagster.yaml storage) records the runs. Prints per run: wall seconds (the command), the run's own
seconds (RUN_START..RUN_SUCCESS), the sum of its steps (STEP_START..STEP_SUCCESS, two at a time on 2 cores),
the slowest steps, and the CPU seconds and the peak of the summed resident sets of the command and every process
under it (sampled every 0.2 s). Figures are recorded by hand in results/large-steps.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from analytics_pipelines.instance import storage_env

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


def run_env(data: Path) -> dict[str, str]:
    return {
        "DAGSTER_HOME": str(ROOT),  # the project's dagster.yaml
        **storage_env(str(data / ".dagster")),
        "TT_DATA_DIR": str(data),
        "TT_ENV": os.environ.get("TT_ENV", "development"),
        # the event settings a deployment gives the daemon and its runs (docs/deploy.md): without them a
        # full refresh writes ~22k per-partition "planned" events one by one (34 s before the run starts)
        "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true",
        "DAGSTER_EVENT_BATCH_SIZE": "1000",
    }


def _tree(root: int) -> dict[int, tuple[int, float]]:
    """{pid: (resident bytes, CPU seconds so far)} of `root` and every process below it (from /proc; processes
    that end meanwhile are skipped)."""
    children: dict[int, list[int]] = {}
    seen: dict[int, tuple[int, float]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)  # ppid
        # resident pages; utime + stime in clock ticks
        seen[pid] = (int(fields[21]) * PAGE, (int(fields[11]) + int(fields[12])) / TICK)
    tree, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in seen:
            tree[pid] = seen[pid]
        todo.extend(children.get(pid, []))
    return tree


def one_run(job: str, tags: dict[str, str], env: dict[str, str]) -> tuple[float, str, float, float]:
    """(wall seconds, output, peak of the summed resident sets of the command's process tree, CPU seconds of
    that tree: each process's last sample, every 0.2 s, so a process shorter than that is missed)."""
    t = time.perf_counter()
    proc = subprocess.Popen(
        [str(BIN / "dagster"), "job", "execute", "-m", "analytics_pipelines.definitions", "-j", job]
        + ["--tags", json.dumps(tags)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    peak, cpu = 0, {}
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    while proc.poll() is None:
        tree = _tree(proc.pid)
        peak = max(peak, sum(rss for rss, _ in tree.values()))
        cpu.update({pid: seconds for pid, (_, seconds) in tree.items()})
        time.sleep(0.2)
    reader.join()
    wall = time.perf_counter() - t
    out = "".join(lines)
    if proc.returncode != 0:
        raise SystemExit(f"{job} {tags} failed:\n{out[-4000:]}")
    return wall, out, peak, sum(cpu.values())


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
    p.add_argument(
        "--range",
        metavar="FIRST:LAST",
        help="instead of --day: these partitions as one run (a single-run backfill); `all` for every partition "
        "of the job (the full refresh, as the UI's 'materialize all' launches it)",
    )
    p.add_argument("--job", default="main_job")
    p.add_argument("--runs", type=int, default=2)
    args = p.parse_args()
    env = {**os.environ, **run_env(args.data_dir.resolve())}
    if args.range:
        from analytics_pipelines.partitions import RANGE_END_TAG, RANGE_START_TAG

        if args.range == "all":
            os.environ.update(env)  # the partition start the definitions read (TT_PARTITION_START)
            from analytics_pipelines.definitions import defs

            keys = defs.resolve_job_def(args.job).partitions_def.get_partition_keys()
            first, last = keys[0], keys[-1]
        else:
            first, last = args.range.split(":")
        tags, what = {RANGE_START_TAG: first, RANGE_END_TAG: last}, f"{first}..{last}"
    else:
        tags, what = {"dagster/partition": args.day}, args.day
    for i in range(args.runs):
        wall, _, peak, cpu = one_run(args.job, tags, env)
        fig = run_figures(env, args.job)
        steps = fig["steps"]
        top = sorted(steps.items(), key=lambda kv: -kv[1])[:8]
        print(
            f"run {i + 1}: {args.job} {what} {fig['status']}: command {wall:.1f} s, run {fig['run_s']:.1f} s, "
            f"{len(steps)} steps summing {sum(steps.values()):.1f} s, CPU {cpu:.1f} s, peak resident (all "
            f"processes) {peak / 1e9:.2f} GB; slowest: " + ", ".join(f"{k} {v:.1f}" for k, v in top),
            flush=True,
        )


if __name__ == "__main__":
    main()
