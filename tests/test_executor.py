"""The default executor of the asset jobs (definitions.DEFAULT_EXECUTOR): Dagster's multiprocess executor,
its step processes forked from a server that preloaded the code location. What the daemon's runs use: one day
of main_job executed by `dagster job execute` (the run worker's path, not execute_in_process) on `tiny` data,
checked through the instance it recorded to."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
from materialized import local_instance

from analytics_pipelines.assets.ingestion import PRIORITY_TAG
from analytics_pipelines.definitions import DEFAULT_EXECUTOR, _forkserver, defs
from analytics_pipelines.generator.run import generate
from analytics_pipelines.registry.customers import HIGH_MEMORY
from analytics_pipelines.registry.model import MEMORY_TAG
from analytics_pipelines.source import contract

BIN = Path(sys.executable).parent
DAY = "2026-10-31"


def test_asset_jobs_use_the_forkserver_multiprocess_executor():
    for name in ("main_job", "customers_job", "kpi_job"):
        assert defs.resolve_job_def(name).executor_def is DEFAULT_EXECUTOR
    # what a run's `execution` config becomes: the run may set max_concurrent, the start method is fixed, and
    # one high-memory step runs at a time
    assert _forkserver({"max_concurrent": 1}) == {
        "max_concurrent": 1,
        "start_method": {"forkserver": {"preload_modules": ["analytics_pipelines.step_preload"]}},
        "tag_concurrency_limits": [{"key": MEMORY_TAG, "value": "high", "limit": 1}],
    }
    # the dimensions' raw and staging steps run first among the ready steps (Dagster's priority tag)
    prioritized = {n.name for n in defs.resolve_job_def("main_job").graph.nodes if n.tags.get(PRIORITY_TAG)}
    assert prioritized == {f"{layer}_{t}" for t in contract.dimension_tables() for layer in ("raw", "stg")}
    # the customer marts that peak at several GB carry the tag the limit counts
    tagged = {
        n.name for n in defs.resolve_job_def("customers_job").graph.nodes if n.tags.get(MEMORY_TAG) == "high"
    }
    assert tagged == set(HIGH_MEMORY)


def test_one_day_of_main_job_through_the_multiprocess_executor(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    source = f"duckdb:///{data / 'source.duckdb'}"
    generate(source, scale="tiny", seed=7, progress=False)
    home = tmp_path / "dagster"
    local_instance(home)  # writes home/dagster.yaml: the local default's storage
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "TT_ENV": "development",
        "TT_DATA_DIR": str(data),
        "TT_SOURCE_URL": source,
        "TT_WAREHOUSE_URL": f"duckdb:///{data / 'warehouse'}",
        "TT_OPS_URL": f"sqlite:///{data / 'ops.sqlite'}",
        "TT_PARTITION_START": "2026-10-01",
        "TT_INFLUX_URL": "",
    }
    # two step processes, as on the 2-core box (whatever the CPU count), for the start order checked below
    two = tmp_path / "run_config.json"  # (JSON is YAML)
    two.write_text(json.dumps({"execution": {"config": {"max_concurrent": 2}}}))
    proc = subprocess.run(
        [
            str(BIN / "dagster"),
            "job",
            "execute",
            "-m",
            "analytics_pipelines.definitions",
            "-j",
            "main_job",
            "--tags",
            json.dumps({"dagster/partition": DAY}),
            "-c",
            str(two),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    instance = dg.DagsterInstance.from_config(str(home))
    (run,) = instance.get_runs()
    assert run.status == dg.DagsterRunStatus.SUCCESS and run.tags["dagster/partition"] == DAY

    def events(kind):
        return [r.event_log_entry for r in instance.get_records_for_run(run.run_id, of_type=kind).records]

    steps = {e.step_key for e in events(dg.DagsterEventType.STEP_SUCCESS)}
    assert steps == set(defs.resolve_job_def("main_job").graph.node_names())  # every asset and check step
    assert not events(dg.DagsterEventType.STEP_FAILURE)
    # every step in a process of its own (the multiprocess executor), none in the run's process
    workers = {e.step_key: e.dagster_event.pid for e in events(dg.DagsterEventType.STEP_WORKER_STARTED)}
    assert set(workers) == steps
    run_pid = events(dg.DagsterEventType.RUN_START)[0].dagster_event.pid
    assert run_pid not in set(workers.values()) and len(set(workers.values())) == len(steps)
    # the dimensions' raw steps (priority: the head of the longest chain) start before any fact's
    started = {e.step_key: e.timestamp for e in events(dg.DagsterEventType.STEP_START)}
    dims, facts = contract.dimension_tables(), contract.fact_tables()
    assert max(started[f"raw_{t}"] for t in dims) <= min(started[f"raw_{t}"] for t in facts)
    # and the data landed: the day's orders are in fct_orders
    from analytics_pipelines.warehouse import open_warehouse

    wh = open_warehouse(env["TT_WAREHOUSE_URL"])
    assert wh.read_partitions("fct_orders", "day", DAY, DAY).height > 0


def test_the_forkserver_preload_starts_no_thread_pool():
    """Step processes are forked from the process that imported step_preload: that import must leave polars'
    thread pool (threads `polars-<n>`, started by the first polars operation) and its async runtime unstarted,
    or each forked step would inherit a pool whose threads it does not have. The polars operation after it
    shows what the check would see."""
    code = (
        "import os, re\n"
        "import analytics_pipelines.step_preload\n"
        "def pools():\n"
        "    names = [open(f'/proc/self/task/{t}/comm').read().strip() for t in os.listdir('/proc/self/task')]\n"
        "    return sorted(n for n in names if re.fullmatch(r'polars-\\d+|tokio-rt-worker', n))\n"
        "print(pools())\n"
        "import polars as pl\n"
        "pl.DataFrame({'a': range(100_000)}).select(pl.col('a').sum())\n"
        "print(pools())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "TT_ENV": "development"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    before, after = out.stdout.strip().splitlines()
    assert before == "[]" and after != "[]"
