"""The Dagster instance configurations: the local default and the shipped dagster-postgres one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from analytics_pipelines.instance import storage_env

ROOT = Path(__file__).resolve().parent.parent

RUN = """
from analytics_pipelines.source.db import SourceDB
from analytics_pipelines.resources import default_source_url
from analytics_pipelines.runner import run_job
import dagster as dg
SourceDB(default_source_url()).create()
result = run_job("ingest_job", first="2026-11-01", last="2026-11-01")
instance = dg.DagsterInstance.get()
print("STORAGE", type(instance.run_storage).__name__, flush=True)
print("EVENTS", type(instance.event_log_storage).__name__, flush=True)
print("RUN", result.run_id, result.success, flush=True)
"""


def _run(env: dict) -> dict[str, str]:
    env = {**storage_env(env.pop("TT_DAGSTER_STORAGE")), **env}
    proc = subprocess.run([sys.executable, "-c", RUN], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if line.startswith(("STORAGE", "EVENTS", "RUN")))
    return lines


def test_default_instance_is_local_sqlite(tmp_path):
    out = _run({"DAGSTER_HOME": str(ROOT), "TT_DAGSTER_STORAGE": str(tmp_path / "dagster"),
                "TT_DATA_DIR": str(tmp_path / "data")})
    assert out["STORAGE"] == "SqliteRunStorage"
    assert out["EVENTS"] == "FastSqliteEventLogStorage"
    run_id, ok = out["RUN"].split()
    assert ok == "True"
    assert (tmp_path / "dagster" / "history" / "runs.db").exists()


@pytest.mark.postgres
def test_dagster_postgres_instance_records_the_run(tmp_path, pg_database):
    db = pg_database.rsplit("/", 1)[1]
    out = _run({"DAGSTER_HOME": str(ROOT / "deploy" / "dagster-postgres"),
                "TT_DAGSTER_STORAGE": str(tmp_path / "dagster"), "TT_DATA_DIR": str(tmp_path / "data"),
                "TT_DAGSTER_PG_USER": "postgres", "TT_DAGSTER_PG_PASSWORD": "", "TT_DAGSTER_PG_HOST": "127.0.0.1",
                "TT_DAGSTER_PG_PORT": "5432", "TT_DAGSTER_PG_DB": db})
    assert out["STORAGE"] == "PostgresRunStorage"
    run_id, ok = out["RUN"].split()
    assert ok == "True"
    with psycopg.connect(pg_database) as conn:
        status = conn.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,)).fetchone()
        events = conn.execute("SELECT count(*) FROM event_logs WHERE run_id = %s", (run_id,)).fetchone()[0]
    assert status == ("SUCCESS",)
    assert events > 10
