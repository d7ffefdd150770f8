"""The production profile, driven by a real `dagster-daemon` against the PostgreSQL on this machine (issue 15).

One daemon session (a module fixture), everything on fresh PostgreSQL databases: Dagster's run/event/schedule
storage (deploy/dagster-postgres/dagster.yaml, QueuedRunCoordinator with its tag limits), the source (`tiny`,
generated), the warehouse (schema analytics) and the ops store (schema ops). The code location is
tests/daemon_definitions.py: the project's assets, jobs and resources, the real hourly KPI schedule on an
every-minute cron and the real kpi_snapshots alert sensor.

The scenario, as an operator would drive it:
1. `analytics-pipelines backfill --job main_job --group raw --group staging --group facts` over 365 days: an
   asset backfill the daemon executes (one run per layer of the asset graph; the daemon's pause between
   backfill iterations shortened from Dagster's fixed 30 s to 5 s: tests/daemon_launcher.py);
2. `dagster schedule start hourly_kpi_schedule`, then a second backfill of one day, submitted in a minute's last
   10 s: the schedule's tick (on the minute) queues a kpi_job run while that backfill holds its slot (tag
   limit dagster/backfill = 1 of 2);
3. kpi_snapshots' materialization makes kpi_snapshots_alert_sensor launch alert_evaluation_job;
4. the warehouse tables' checksums are equal before and after the one-day backfill.
Everything is then read back from the PostgreSQL storage. The daemon and its children (code server, run
workers) are one process group, stopped by its id; the code location is served by its own gRPC server
(`dagster api grpc`, as a deployment's code server), another group."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from dagster_pg import instance_env
from materialized import environment

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.xdist_group("daemon_postgres")]

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ADMIN = os.environ.get("TT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
FIRST, LAST = "2025-11-01", "2026-10-31"  # 365 daily partitions (TT_PARTITION_START = FIRST)
RERUN_DAY = "2026-10-15"
NOW = "2026-11-01T00:00:00+00:00"  # the runs' pinned clock (tag tt/now), as tests/materialized.py
#: the backfill's assets: main_job's ingestion and facts (raw, staging, facts), not its marts (cost: the text)
GROUPS = ("raw", "staging", "facts")
BACKFILL_TIMEOUT = float(os.environ.get("TT_TEST_DAEMON_TIMEOUT", "900"))
#: the daemon's pause between backfill iterations (Dagster's is 30 s: tests/daemon_launcher.py)
BACKFILL_INTERVAL = float(os.environ.get("TT_TEST_DAEMON_BACKFILL_INTERVAL", "5"))


@contextmanager
def _databases(*roles: str):
    base = ADMIN.rsplit("/", 1)[0]
    names = {r: f"tt_test_daemon_{r}_{uuid.uuid4().hex[:8]}" for r in roles}
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        for name in names.values():
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {r: f"{base}/{n}" for r, n in names.items()}
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            for name in names.values():
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Service:
    """A long-running Dagster process in its own session; SIGINT/SIGTERM restored (a child of a script ignores
    them otherwise), so the group stops cleanly; whatever of the group outlives it gets SIGKILL."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self.log = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            ["env", "--default-signal=INT,TERM", *args],
            env=env,
            cwd=log.parent,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def tail(self, chars: int = 6000) -> str:
        if not self._out.closed:
            self._out.flush()
        text = self.log.read_text(errors="replace")
        return text[-chars:]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        # whatever of the group outlived the daemon (a code server, a run worker): the group is ours
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        self._out.close()


@dataclass
class Scenario:
    urls: dict[str, str]
    env: dict[str, str]
    daemon_log: str
    backfill_id: str
    rerun_id: str
    seconds: dict[str, float]
    runs: list = field(default_factory=list)
    enqueued: set = field(default_factory=set)
    materialized: dict = field(default_factory=dict)
    unpartitioned: dict = field(default_factory=dict)
    states: dict = field(default_factory=dict)
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)
    versions: tuple = ({}, {})
    schedule_ticks: list = field(default_factory=list)
    sensor_ticks: list = field(default_factory=list)


def _cli(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 180) -> str:
    proc = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    )
    return proc.stdout


def _checksums(warehouse_url: str) -> dict[str, tuple[int, str]]:
    """(rows, md5 of the sorted rows' text) of every data table of the warehouse schema (not the write
    counters of _tt_table_versions: _versions)."""
    out = {}
    with psycopg.connect(warehouse_url) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'analytics' "
                "AND table_type = 'BASE TABLE' AND table_name <> '_tt_table_versions' ORDER BY 1"
            )
        ]
        for t in tables:
            n, digest = conn.execute(
                f"SELECT count(*), md5(coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '')) "
                f'FROM analytics."{t}" r'
            ).fetchone()
            out[t] = (n, digest)
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serving(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _versions(warehouse_url: str) -> dict[str, int]:
    """table -> its write counter (bumped by every write, analytics_pipelines/warehouse/postgres.py)."""
    with psycopg.connect(warehouse_url) as conn:
        return dict(conn.execute("SELECT table_name, version FROM analytics._tt_table_versions").fetchall())


def _wait(what: str, predicate, timeout: float, daemon: Service, poll: float = 2.0):
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if not daemon.alive():
            pytest.fail(
                f"{daemon.proc.args[2]} exited ({daemon.proc.returncode}) waiting for {what}:\n{daemon.tail()}"
            )
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; daemon log:\n{daemon.tail()}")
        time.sleep(poll)


def _run_table(instance) -> list[dict]:
    return [
        {
            "run_id": r.dagster_run.run_id,
            "job": r.dagster_run.job_name,
            "status": r.dagster_run.status.value,
            "backfill": r.dagster_run.tags.get("dagster/backfill"),
            "refresh": r.dagster_run.tags.get("refresh"),
            "created": r.create_timestamp.timestamp(),
            "start": r.start_time,
            "end": r.end_time,
        }
        for r in instance.get_run_records()
    ]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> Scenario:
    from analytics_pipelines.backfill import backfill_state
    from analytics_pipelines.generator.run import generate

    tmp = tmp_path_factory.mktemp("daemon")
    seconds: dict[str, float] = {}
    with _databases("dagster", "source", "warehouse", "ops") as urls:
        t0 = time.perf_counter()
        generate(urls["source"], scale="tiny", seed=7, progress=False)
        seconds["generate tiny into PostgreSQL"] = time.perf_counter() - t0
        env = {
            **instance_env(urls["dagster"], tmp / "dagster"),
            "TT_DATA_DIR": str(tmp / "data"),
            "TT_SOURCE_URL": urls["source"],
            "TT_WAREHOUSE_URL": urls["warehouse"],
            "TT_OPS_URL": urls["ops"],
            "TT_PARTITION_START": FIRST,
            "TT_INFLUX_URL": "",
            "TT_ENV": "development",
            "PYTHONUNBUFFERED": "1",
            # the production profile's event settings (docs/deploy.md): a run over 365 partitions records one
            # planned event per asset (not per partition, one INSERT + NOTIFY each: minutes per run on PostgreSQL)
            # and writes its per-partition materializations in batches
            "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true",
            "DAGSTER_EVENT_BATCH_SIZE": "1000",
        }
        (tmp / "data").mkdir()
        # the code location served by its own gRPC server (as in a deployment: no code server started,
        # heartbeat-checked and restarted by the daemon under load); runs are launched through it
        port = _free_port()
        code = Service(
            [
                str(BIN / "dagster"),
                "api",
                "grpc",
                "-f",
                str(ROOT / "tests" / "daemon_definitions.py"),
                "-d",
                str(ROOT / "tests"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "--location-name",
                "analytics_pipelines",
            ],
            env,
            tmp / "code_server.log",
        )
        workspace = tmp / "workspace.yaml"
        workspace.write_text(
            "load_from:\n"
            "  - grpc_server:\n"
            "      host: 127.0.0.1\n"
            f"      port: {port}\n"
            "      location_name: analytics_pipelines\n"
        )
        ap = str(BIN / "analytics-pipelines")
        try:
            _wait("the code server", lambda: _serving(port), 300, code, poll=1)
            daemon = Service(
                [
                    sys.executable,
                    str(ROOT / "tests" / "daemon_launcher.py"),
                    str(BACKFILL_INTERVAL),
                    "run",
                    "-w",
                    str(workspace),
                ],
                env,
                tmp / "daemon.log",
            )
        except BaseException:
            code.stop()
            raise
        t_start = time.perf_counter()
        try:
            with environment({k: v for k, v in env.items() if k.startswith(("TT_", "DAGSTER_"))}):
                instance = dg.DagsterInstance.get()
                assert type(instance.run_storage).__name__ == "PostgresRunStorage"
                assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"

                def submit(first: str, last: str) -> str:
                    out = _cli(
                        [
                            ap,
                            "backfill",
                            "--job",
                            "main_job",
                            "--from",
                            first,
                            "--to",
                            last,
                            "--tag",
                            f"tt/now={NOW}",
                            *(a for g in GROUPS for a in ("--group", g)),
                        ],
                        env,
                        tmp,
                    )
                    return re.search(r"backfill (\S+):", out).group(1)

                def finished(backfill_id: str):
                    def check():
                        state, _ = backfill_state(instance, backfill_id)
                        return state if state != "requested" else None

                    return check

                # 1. the year, as an asset backfill the daemon executes
                t0 = time.perf_counter()
                backfill_id = submit(FIRST, LAST)
                state = _wait(f"backfill {backfill_id}", finished(backfill_id), BACKFILL_TIMEOUT, daemon, 3)
                seconds["365-day backfill (daemon)"] = time.perf_counter() - t0
                assert state == "succeeded", f"backfill {backfill_id} {state}:\n{daemon.tail()}"
                materialized, unpartitioned = {}, {}
                for key, partitioned in _backfilled_assets().items():
                    if partitioned:
                        materialized[key] = instance.get_materialized_partitions(dg.AssetKey(key))
                    else:
                        unpartitioned[key] = instance.get_latest_materialization_event(dg.AssetKey(key))
                before = _checksums(urls["warehouse"])
                versions_before = _versions(urls["warehouse"])

                # 2. the operator turns the hourly KPI schedule on, and backfills one day again: the
                # schedule's tick comes while that backfill runs. The scheduler ticks on minute boundaries; the
                # backfill's five runs start over four daemon iterations (BACKFILL_INTERVAL apart) and took ~30 s
                # on a quiet box, so it is submitted in a minute's last 10 s: the next tick comes <= 10 s after it
                t1 = time.perf_counter()
                _cli(
                    [str(BIN / "dagster"), "schedule", "start", "hourly_kpi_schedule", "-w", str(workspace)],
                    env,
                    tmp,
                )
                if (second := time.time() % 60) < 50:
                    time.sleep(52 - second)
                rerun_id = submit(RERUN_DAY, RERUN_DAY)
                state = _wait(f"backfill {rerun_id}", finished(rerun_id), BACKFILL_TIMEOUT, daemon, 3)
                seconds["one-day backfill (daemon)"] = time.perf_counter() - t1
                assert state == "succeeded", f"backfill {rerun_id} {state}:\n{daemon.tail()}"
                after = _checksums(urls["warehouse"])
                versions_after = _versions(urls["warehouse"])

                # 3. the schedule's kpi_job run, then the sensor's alert_evaluation_job run
                def kpi_and_alert_done():
                    runs = _run_table(instance)
                    failed = [r for r in runs if r["status"] == "FAILURE"]
                    assert not failed, f"failed runs {failed}:\n{daemon.tail()}"
                    ok = {r["job"] for r in runs if r["status"] == "SUCCESS"}
                    return {"kpi_job", "alert_evaluation_job"} <= ok

                _wait(
                    "the schedule's kpi_job run and the sensor's alert_evaluation_job run",
                    kpi_and_alert_done,
                    300,
                    daemon,
                )
                seconds["schedule on -> sensor's run done"] = time.perf_counter() - t1
                runs = _run_table(instance)
                with psycopg.connect(urls["dagster"]) as conn:
                    enqueued = {
                        r[0]
                        for r in conn.execute(
                            "SELECT run_id FROM event_logs WHERE dagster_event_type = 'PIPELINE_ENQUEUED'"
                        )
                    }
                    schedule_ticks = conn.execute(
                        "SELECT status FROM job_ticks WHERE type = 'SCHEDULE'"
                    ).fetchall()
                    sensor_ticks = conn.execute(
                        "SELECT status FROM job_ticks WHERE type = 'SENSOR'"
                    ).fetchall()
        finally:
            daemon.stop()
            code.stop()
            seconds["daemon session"] = time.perf_counter() - t_start
            print("\n".join(f"{k}: {v:.1f} s" for k, v in seconds.items()))
        return Scenario(
            urls=urls,
            env=env,
            daemon_log=daemon.tail(20000),
            backfill_id=backfill_id,
            rerun_id=rerun_id,
            seconds=seconds,
            runs=runs,
            enqueued=enqueued,
            materialized=materialized,
            unpartitioned=unpartitioned,
            before=before,
            after=after,
            versions=(versions_before, versions_after),
            schedule_ticks=[t[0] for t in schedule_ticks],
            sensor_ticks=[t[0] for t in sensor_ticks],
        )


def _backfilled_assets() -> dict[str, bool]:
    """The backfill's target: main_job's assets of GROUPS -> partitioned or not."""
    from analytics_pipelines.definitions import build_definitions
    from analytics_pipelines.registry import default_registry
    from analytics_pipelines.settings import Settings

    defs = build_definitions(default_registry(), Settings.from_env())
    graph = defs.resolve_asset_graph()
    keys = defs.resolve_job_def("main_job").asset_layer.selected_asset_keys
    return {
        k.to_user_string(): graph.get(k).partitions_def is not None
        for k in keys
        if graph.get(k).group_name in GROUPS
    }


def _days() -> list[str]:
    from datetime import date, timedelta

    first, last = date.fromisoformat(FIRST), date.fromisoformat(LAST)
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def test_the_backfill_materialized_all_365_partitions_of_its_assets(scenario):
    days = set(_days())
    assert len(days) == 365
    assert {"raw_orders", "stg_orders", "fct_orders", "fct_refunds"} <= set(scenario.materialized)
    missing = {k: len(days - set(v)) for k, v in scenario.materialized.items() if not days <= set(v)}
    assert not missing, f"partitions not materialized, per asset: {missing}"
    assert scenario.unpartitioned and all(scenario.unpartitioned.values()), scenario.unpartitioned


def test_every_run_went_through_the_queue_and_succeeded(scenario):
    runs = scenario.runs
    # the every-minute schedule keeps queueing kpi_job runs (and the sensor alert runs) until the daemon stops
    in_flight = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED"}
    assert [r for r in runs if r["status"] not in in_flight | {"SUCCESS"}] == []
    assert {r["job"] for r in runs if r["status"] in in_flight} <= {"kpi_job", "alert_evaluation_job"}
    assert {r["run_id"] for r in runs} <= scenario.enqueued, "a run was launched without the queue"
    assert {r["job"] for r in runs} >= {"kpi_job", "alert_evaluation_job"}
    assert {r["backfill"] for r in runs if r["backfill"]} == {scenario.backfill_id, scenario.rerun_id}
    assert "SUCCESS" in scenario.schedule_ticks, scenario.schedule_ticks
    assert "SUCCESS" in scenario.sensor_ticks, scenario.sensor_ticks


def test_a_backfill_holds_one_slot_and_the_kpi_run_is_not_queued_behind_it(scenario):
    backfill_runs = sorted((r for r in scenario.runs if r["backfill"]), key=lambda r: r["start"])
    for a, b in zip(backfill_runs, backfill_runs[1:], strict=False):
        assert b["start"] >= a["end"], f"two backfill runs at once: {a} {b}"
    rerun_end = max(r["end"] for r in backfill_runs if r["backfill"] == scenario.rerun_id)
    kpi = min((r for r in scenario.runs if r["job"] == "kpi_job"), key=lambda r: r["created"])
    assert kpi["refresh"] == "hourly_kpi"
    assert kpi["start"] < rerun_end, (
        f"the KPI run started {kpi['start'] - rerun_end:.1f} s after the backfill's last run ended: {kpi}"
    )


def test_re_running_a_day_changes_no_warehouse_table(scenario):
    rerun = [r for r in scenario.runs if r["backfill"] == scenario.rerun_id]
    assert rerun and all(r["status"] == "SUCCESS" for r in rerun)
    # kpi_snapshots is written by the schedule's run in the meantime, not by the backfill
    before = {t: v for t, v in scenario.before.items() if t != "kpi_snapshots"}
    after = {t: v for t, v in scenario.after.items() if t != "kpi_snapshots"}
    assert {"raw_orders", "stg_orders", "fct_orders", "quarantine", "ingestion_ledger"} <= set(before)
    assert before["fct_orders"][0] > 0
    changed = {
        t: (before.get(t), after.get(t))
        for t in before.keys() | after.keys()
        if before.get(t) != after.get(t)
    }
    assert not changed, f"tables changed by re-running {RERUN_DAY}: {changed}"
    # and the day was rewritten, not skipped: the write counters of its tables moved
    v0, v1 = scenario.versions
    for table in ("raw_orders", "stg_orders", "fct_orders", "control_totals"):
        assert v1[table] > v0[table], (table, v0.get(table), v1.get(table))
