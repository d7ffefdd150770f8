"""deploy/dagster-celery for real: a `dagster-celery worker` subprocess (Redis broker at 127.0.0.1:6379) executes
the steps of a run of the project's definitions with the Celery executor, on the dagster-postgres instance.

What this proves: the same definitions load with the Celery executor, the worker started from
deploy/dagster-celery/celery.yaml takes the run's steps from Redis and runs them (the run's engine events
name our worker for every step), the assets and their checks are recorded in the PostgreSQL storage. What it
cannot: a second machine (worker and run share this host, so the embedded warehouse path is shared too; across
machines the warehouse and ops store must be PostgreSQL, docs/deploy.md)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from dagster_pg import instance_env

redis = pytest.importorskip("redis", reason="the celery extra (make install) brings redis")

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEPLOY = ROOT / "deploy" / "dagster-celery"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
ASSETS = ("raw_venues", "stg_venues")


@contextmanager
def _redis_db():
    """An empty Redis database index (1-15) on the shared server; the Celery keys we made are deleted after."""
    for index in range(15, 0, -1):
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=index)
        try:
            client.ping()
        except redis.exceptions.ConnectionError as exc:
            if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
                pytest.fail(f"CI=true but Redis at {REDIS_HOST}:{REDIS_PORT} is unreachable: {exc}")
            pytest.skip(f"Redis unreachable: {exc}")
        if client.dbsize() == 0:
            break
    else:
        pytest.fail("no empty Redis database index among 1-15")
    before = set(client.keys("*"))
    try:
        yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{index}"
    finally:
        made = set(client.keys("*")) - before
        if made:
            client.delete(*made)


def _wait_ready(worker: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    """Until the worker says it is ready (celery's 'ready.' line); its log if it exits or never does."""
    deadline = time.monotonic() + timeout
    while "ready." not in log.read_text(errors="replace"):
        if worker.poll() is not None:
            pytest.fail(f"the celery worker exited ({worker.returncode}):\n{log.read_text()[-4000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"the celery worker was not ready after {timeout:.0f} s:\n{log.read_text()[-4000:]}")
        time.sleep(1)


def _finish(run: subprocess.Popen, worker: subprocess.Popen, log: Path, timeout: float = 600) -> str:
    """The run's output once it exits; fails with both logs if the worker dies or the run hangs."""
    deadline = time.monotonic() + timeout
    while run.poll() is None:
        if worker.poll() is not None:
            pytest.fail(
                f"the celery worker exited ({worker.returncode}) during the run:\n{log.read_text()[-4000:]}"
            )
        if time.monotonic() > deadline:
            pytest.fail(f"the run did not finish in {timeout:.0f} s; worker log:\n{log.read_text()[-4000:]}")
        time.sleep(1)
    return (log.parent / "run.log").read_text(errors="replace")


def test_a_celery_worker_executes_the_runs_steps(tmp_path, pg_database):
    from analytics_pipelines.source.db import SourceDB

    source = f"duckdb:///{tmp_path / 'source.duckdb'}"
    SourceDB(source).create()  # the contract's tables, empty: the run ingests nothing but runs every step
    worker_name = f"tt-test-{uuid.uuid4().hex[:8]}"
    with _redis_db() as broker:
        env = {
            **instance_env(pg_database, tmp_path / "dagster"),
            "TT_DATA_DIR": str(tmp_path / "data"),
            "TT_SOURCE_URL": source,
            "TT_WAREHOUSE_URL": f"duckdb:///{tmp_path / 'warehouse'}",
            "TT_OPS_URL": f"sqlite:///{tmp_path / 'ops.sqlite'}",
            "TT_PARTITION_START": "2025-11-01",
            "TT_INFLUX_URL": "",
            "TT_CELERY_BROKER_URL": broker,
            "TT_CELERY_BACKEND_URL": broker,
            # the worker command starts `celery` from PATH
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        log = tmp_path / "worker.log"
        with log.open("wb") as out:
            worker = subprocess.Popen(
                # a child of a script ignores SIGINT/SIGTERM unless they are restored
                [
                    "env",
                    "--default-signal=INT,TERM",
                    str(BIN / "dagster-celery"),
                    "worker",
                    "start",
                    "-A",
                    "dagster_celery.app",
                    "-y",
                    str(DEPLOY / "celery.yaml"),
                    "-n",
                    worker_name,
                    "--",
                    "--concurrency=2",
                ],
                env=env,
                cwd=tmp_path,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                _wait_ready(worker, log)
                started = time.perf_counter()
                run_out = (tmp_path / "run.log").open("wb")
                run = subprocess.Popen(
                    [
                        str(BIN / "dagster"),
                        "asset",
                        "materialize",
                        "-f",
                        str(DEPLOY / "definitions.py"),
                        "--select",
                        ",".join(ASSETS),
                    ],
                    env=env,
                    cwd=tmp_path,
                    stdout=run_out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                try:
                    output = _finish(run, worker, log)
                finally:
                    if run.poll() is None:
                        os.killpg(run.pid, signal.SIGKILL)
                        run.wait(10)
                    run_out.close()
                took = time.perf_counter() - started
                assert run.returncode == 0, f"{output[-4000:]}\nworker log:\n{log.read_text()[-4000:]}"
            finally:
                if worker.poll() is None:
                    os.killpg(worker.pid, signal.SIGTERM)
                    try:
                        worker.wait(30)
                    except subprocess.TimeoutExpired:
                        pass
                try:  # the celery pool processes that outlived the worker: the group is ours
                    os.killpg(worker.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                worker.wait(10)
    print(f"run through the celery worker: {took:.1f} s")
    with psycopg.connect(pg_database) as conn:
        ((run_id, status),) = conn.execute("SELECT run_id, status FROM runs").fetchall()
        assert status == "SUCCESS"
        rows = conn.execute(
            "SELECT event FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ENGINE_EVENT'",
            (run_id,),
        ).fetchall()
        in_worker = [e for (e,) in rows if "in celery worker" in e]
        started_steps = {
            r[0]
            for r in conn.execute(
                "SELECT step_key FROM event_logs WHERE run_id = %s AND dagster_event_type = 'STEP_START'",
                (run_id,),
            )
        }
        materialized = {
            r[0]
            for r in conn.execute(
                "SELECT asset_key FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
                (run_id,),
            )
        }
    assert {f'["{a}"]' for a in ASSETS} <= materialized
    assert started_steps >= set(ASSETS)
    # every step was handed to our worker (the engine event names it), none ran in the launching process
    for step in started_steps:
        assert any(f"Executing steps {step} in celery worker" in e and worker_name in e for e in in_worker), (
            step,
            in_worker,
        )
