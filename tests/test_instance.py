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
    proc = subprocess.run(
        [sys.executable, "-c", RUN],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = dict(
        line.split(" ", 1)
        for line in proc.stdout.splitlines()
        if line.startswith(("STORAGE", "EVENTS", "RUN"))
    )
    return lines


def test_default_instance_is_local_sqlite(tmp_path):
    out = _run(
        {
            "DAGSTER_HOME": str(ROOT),
            "TT_DAGSTER_STORAGE": str(tmp_path / "dagster"),
            "TT_DATA_DIR": str(tmp_path / "data"),
        }
    )
    assert out["STORAGE"] == "SqliteRunStorage"
    assert out["EVENTS"] == "FastSqliteEventLogStorage"
    run_id, ok = out["RUN"].split()
    assert ok == "True"
    assert (tmp_path / "dagster" / "history" / "runs.db").exists()


@pytest.mark.postgres
def test_dagster_postgres_instance_records_the_run(tmp_path, pg_database):
    db = pg_database.rsplit("/", 1)[1]
    out = _run(
        {
            "DAGSTER_HOME": str(ROOT / "deploy" / "dagster-postgres"),
            "TT_DAGSTER_STORAGE": str(tmp_path / "dagster"),
            "TT_DATA_DIR": str(tmp_path / "data"),
            "TT_DAGSTER_PG_USER": "postgres",
            "TT_DAGSTER_PG_PASSWORD": "",
            "TT_DAGSTER_PG_HOST": "127.0.0.1",
            "TT_DAGSTER_PG_PORT": "5432",
            "TT_DAGSTER_PG_DB": db,
        }
    )
    assert out["STORAGE"] == "PostgresRunStorage"
    run_id, ok = out["RUN"].split()
    assert ok == "True"
    with psycopg.connect(pg_database) as conn:
        status = conn.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,)).fetchone()
        events = conn.execute("SELECT count(*) FROM event_logs WHERE run_id = %s", (run_id,)).fetchone()[0]
    assert status == ("SUCCESS",)
    assert events > 10


def test_fast_event_log_storage_matches_the_private_dagster_api_it_uses():
    """FastSqliteEventLogStorage (analytics_pipelines/instance.py) subclasses a private Dagster class and
    calls private members. Fails on any Dagster upgrade, on purpose: re-check the members in PRIVATE_API
    (store_event_batch must still write exactly what store_event writes per event, _connect must still open
    one connection per shard), run tests/test_instance.py, then update DAGSTER_VERSION."""
    import inspect

    import dagster
    from dagster._core.events import ASSET_EVENTS, DagsterEventType
    from dagster._core.storage.event_log.base import EventLogStorage
    from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
    from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    from analytics_pipelines import instance

    recheck = (
        "re-check analytics_pipelines/instance.py (FastSqliteEventLogStorage) against this Dagster, or "
        "drop it from dagster.yaml for dagster._core.storage.event_log SqliteEventLogStorage"
    )
    assert dagster.__version__ == instance.DAGSTER_VERSION, (
        f"dagster {dagster.__version__} is installed, the storage was checked against {instance.DAGSTER_VERSION}: "
        f"{recheck}; then set DAGSTER_VERSION"
    )
    owners = {c.__name__: c for c in (SqliteEventLogStorage, SqlEventLogStorage, EventLogStorage)}
    for (owner, name), params in instance.PRIVATE_API.items():
        member = owners[owner].__dict__.get(name)
        assert member is not None, f"{owner}.{name} is gone: {recheck}"
        fn = member.__func__ if isinstance(member, classmethod | staticmethod) else member
        got = tuple(inspect.signature(inspect.unwrap(fn)).parameters)
        assert got == params, f"{owner}.{name}{got} (was {params}): {recheck}"
    assert DagsterEventType.ASSET_MATERIALIZATION in ASSET_EVENTS, recheck
    assert DagsterEventType.ASSET_MATERIALIZATION_PLANNED in ASSET_EVENTS, recheck
    assert {"id", "run_id", "event", "dagster_event_type", "asset_key", "partition"} <= set(
        SqlEventLogStorageTable.c.keys()
    ), recheck
    assert issubclass(instance.FastSqliteEventLogStorage, SqliteEventLogStorage)
    import tempfile

    with tempfile.TemporaryDirectory() as base:
        stock = SqliteEventLogStorage(base)
        for name in instance.PRIVATE_ATTRIBUTES:
            assert hasattr(stock, name), f"SqliteEventLogStorage().{name} is gone: {recheck}"


def test_batched_event_log_writes_what_the_stock_storage_writes(tmp_path, monkeypatch):
    """A single-run backfill over 10 partitions stored by FastSqliteEventLogStorage (its batch path) and by
    Dagster's SqliteEventLogStorage (one event at a time) reads back the same through the instance."""
    import dagster as dg

    from analytics_pipelines.instance import FastSqliteEventLogStorage

    parts = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-01-11")

    @dg.asset(partitions_def=parts, backfill_policy=dg.BackfillPolicy.single_run())
    def a(context):
        return dg.MaterializeResult(metadata={"rows": 3}, data_version=dg.DataVersion("v1"))

    batches = []
    original = FastSqliteEventLogStorage.store_event_batch

    def spy(self, events):
        batches.append(len(events))
        return original(self, events)

    monkeypatch.setattr(FastSqliteEventLogStorage, "store_event_batch", spy)
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
    key, seen = dg.AssetKey("a"), {}
    for name, module in (
        ("FastSqliteEventLogStorage", "analytics_pipelines.instance"),
        ("SqliteEventLogStorage", "dagster._core.storage.event_log"),
    ):
        home = tmp_path / name
        home.mkdir()
        (home / "dagster.yaml").write_text(
            f"event_log_storage:\n  module: {module}\n  class: {name}\n  config:\n"
            f"    base_dir: {home / 'events'}\ntelemetry:\n  enabled: false\n"
        )
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert type(instance.event_log_storage).__name__ == name
            run = dg.materialize(
                [a],
                instance=instance,
                tags={
                    "dagster/asset_partition_range_start": "2026-01-01",
                    "dagster/asset_partition_range_end": "2026-01-10",
                },
            )
            assert run.success
            records = instance.fetch_materializations(key, limit=100).records
            planned = instance.get_records_for_run(
                run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
            )
            entry = instance.get_asset_records([key])[0].asset_entry
            seen[name] = {
                "partitions": sorted(instance.get_materialized_partitions(key)),
                "materializations": sorted(
                    (
                        r.partition_key,
                        r.asset_materialization.metadata["rows"].value,
                        r.asset_materialization.tags.get("dagster/data_version"),
                    )
                    for r in records
                ),
                "planned": sorted(r.event_log_entry.dagster_event.partition for r in planned.records),
                "last": (entry.last_materialization.dagster_event.partition, entry.last_run_id == run.run_id),
                "tags": sorted(
                    (t["dagster/data_version"], t.get("dagster/partition", ""))
                    for t in instance.get_event_tags_for_asset(key)
                ),
            }
    assert batches and max(batches) > 1  # the batch path ran
    assert len(seen["SqliteEventLogStorage"]["partitions"]) == 10 and seen["SqliteEventLogStorage"]["tags"]
    assert seen["FastSqliteEventLogStorage"] == seen["SqliteEventLogStorage"]


WRITER = """
import sys, time
from dagster._core.events.log import EventLogEntry
from analytics_pipelines.instance import FastSqliteEventLogStorage
storage = FastSqliteEventLogStorage(sys.argv[1])
print("ready", flush=True)
for i in range(int(sys.argv[2])):
    storage.store_event(
        EventLogEntry(error_info=None, level=20, user_message=f"m{i}", run_id="watched", timestamp=time.time())
    )
    sys.stdin.readline()  # the next event once the test has seen this one
time.sleep(30)  # alive, its connections open, until the test kills it
"""


def test_a_watcher_in_another_process_sees_each_event_as_it_is_written(tmp_path):
    """The UI follows a running run through Dagster's watchdog on the run's SQLite file. The storage keeps its
    connections open (pooled), so a commit touches only the WAL; it must still wake a watcher in another
    process at every event, while the writer runs (not when it exits), and a watcher's own reads must not
    wake it again (a busy loop)."""
    import threading
    import time

    from analytics_pipelines.instance import FastSqliteEventLogStorage

    base = tmp_path / "events"
    n = 10
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(base), str(n)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert writer.stdout.readline().strip() == "ready"
        reader = FastSqliteEventLogStorage(str(base))
        reads = [0]
        read = reader.get_records_for_run

        def counted(*args, **kwargs):
            reads[0] += 1
            return read(*args, **kwargs)

        reader.get_records_for_run = counted
        seen: list[str] = []
        woke = threading.Event()

        def callback(entry, cursor):
            seen.append(entry.user_message)
            woke.set()

        reader.watch("watched", None, callback)
        try:
            for i in range(n):
                deadline = time.monotonic() + 10
                while f"m{i}" not in seen and time.monotonic() < deadline:
                    woke.wait(0.1)
                    woke.clear()
                assert f"m{i}" in seen, f"event {i} not seen while the writer runs: {seen}"
                if i == 0:
                    # the burst of file changes of the database's creation (which wake the watcher whatever
                    # the storage does) is over before the next events
                    time.sleep(1.5)
                writer.stdin.write("\n")
                writer.stdin.flush()
            assert writer.poll() is None  # all seen before the writer ended
            assert seen == [f"m{i}" for i in range(n)]
            time.sleep(0.5)
            idle = reads[0]
            time.sleep(1.5)
            # a late file event of the last write may still be handled on a loaded box; the loop this guards
            # against read thousands of times in that window
            assert reads[0] - idle <= 2, f"the watcher keeps reading with nothing written: {reads[0] - idle}"
        finally:
            reader.end_watch("watched", callback)
            reader.dispose()
    finally:
        writer.kill()
        writer.wait()


def test_wipe_and_many_runs_with_pooled_engines(tmp_path):
    """Runs beyond the kept engines are written and read back; a wipe removes the run files even though
    their engines were open, and the storage writes again afterwards."""
    import time

    from dagster._core.events.log import EventLogEntry

    from analytics_pipelines.instance import KEEP_RUN_ENGINES, FastSqliteEventLogStorage

    storage = FastSqliteEventLogStorage(str(tmp_path / "events"))

    def entry(run, msg):
        return EventLogEntry(error_info=None, level=20, user_message=msg, run_id=run, timestamp=time.time())

    runs = [f"run{i}" for i in range(KEEP_RUN_ENGINES + 3)]
    for r in runs:
        for k in range(3):
            storage.store_event(entry(r, f"{r}-{k}"))
    for r in runs:
        got = [rec.event_log_entry.user_message for rec in storage.get_records_for_run(r).records]
        assert got == [f"{r}-{k}" for k in range(3)]
    assert len(storage._engines) <= KEEP_RUN_ENGINES + 1  # the index's and the latest runs'
    storage.wipe()
    assert not list((tmp_path / "events").glob("run*.db*"))
    assert storage.get_records_for_run(runs[0]).records == []
    storage.store_event(entry(runs[0], "after"))
    assert [r.event_log_entry.user_message for r in storage.get_records_for_run(runs[0]).records] == ["after"]
    storage.dispose()
