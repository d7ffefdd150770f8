"""Automation: partition retention on both warehouse backends, the maintenance job, schedules and sensors
with Dagster's test contexts, the new-source-data sensor on tiny generated data, freshness alerts, run
failure notifications, and end to end: sensors evaluated on a local instance whose requested runs are
then executed on that instance."""

import contextlib
import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import duckdb
import polars as pl
import pytest
import sqlalchemy as sa
from notify_servers import http_server, smtp_server

from analytics_pipelines.automation import maintenance as M
from analytics_pipelines.automation import source_changes
from analytics_pipelines.automation.retries import RETRY_POLICY, RUN_RETRY_TAGS, is_transient, retry_transient
from analytics_pipelines.checks.freshness import freshness_checks, make_freshness_checks
from analytics_pipelines.jobs.operations import alert_evaluation_job, maintenance_job
from analytics_pipelines.ops.alerts import alert_instances, alert_notifications, alert_rules
from analytics_pipelines.ops.db import ops_engine
from analytics_pipelines.ops.exports import analytics_exports
from analytics_pipelines.partitions import RANGE_END_TAG as ASSET_PARTITION_RANGE_END_TAG
from analytics_pipelines.partitions import RANGE_START_TAG as ASSET_PARTITION_RANGE_START_TAG
from analytics_pipelines.resources import InfluxResource, OpsResource, SourceResource, WarehouseResource
from analytics_pipelines.schedules.data import make_schedules
from analytics_pipelines.sensors.data import kpi_snapshots_alert_sensor, make_source_data_sensor
from analytics_pipelines.sensors.operations import make_stale_alert_sensor, run_failure_alert_sensor
from analytics_pipelines.settings import Settings as ProjectSettings
from analytics_pipelines.warehouse import open_warehouse

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
T1 = "00000000-0000-0000-0000-000000000001"
KPI_SCHEMA = {
    "snapshot_hour": pl.Datetime("us", "UTC"),
    "tenant_id": pl.String,
    "venue_id": pl.String,
    "metric": pl.String,
    "value": pl.Float64,
}


def sensor_tick(sensor, **kw):
    """Evaluate a sensor the way the daemon does, closing its context (its resources, its instance
    binding) afterwards: an unclosed context leaks Dagster's current defs-state storage into later tests."""
    with dg.build_sensor_context(**kw) as ctx:
        return sensor.evaluate_tick(ctx)


def kpi_frame(hours: list[datetime], metric: str = "refund_rate_24h_pct", value: float = 1.0) -> pl.DataFrame:
    """kpi_snapshots rows as the mart writes them (partition column hour_key, the hour's UTC start)."""
    return pl.DataFrame(
        [
            {
                "snapshot_hour": h,
                "tenant_id": T1,
                "venue_id": None,
                "metric": metric,
                "value": value,
                "hour_key": h.strftime("%Y-%m-%d-%H:%M"),
            }
            for h in hours
        ],
        schema={**KPI_SCHEMA, "hour_key": pl.String},
    )


def write_kpis(wh, frame: pl.DataFrame) -> None:
    wh.write_partitions("kpi_snapshots", frame, ["hour_key"], [(k,) for k in sorted(set(frame["hour_key"]))])


@pytest.fixture
def ops_url(tmp_path) -> str:
    ops_engine.cache_clear()
    return f"sqlite:///{tmp_path / 'ops.sqlite'}"


# -- retention primitives on both backends -------------------------------------------------------------------


def test_drop_partitions_on_both_backends(warehouse_url):
    wh = open_warehouse(warehouse_url)
    days = pl.DataFrame({"_partition": ["2026-01-01", "2026-01-02", "2026-03-01"], "x": [1, 2, 3]})
    wh.write_partitions("raw_things", days, ["_partition"], [(d,) for d in days["_partition"]])
    assert wh.drop_partitions("raw_things", "_partition", "2026-01-02") == ["2026-01-01"]
    assert wh.read_table("raw_things").sort("x")["x"].to_list() == [2, 3]
    assert wh.drop_partitions("raw_things", "_partition", "2026-01-02") == []  # idempotent
    # hour keys ("2025-11-20-23:00") and timestamp partitions compare by their text: every hour before the date goes
    hours = [
        datetime(2025, 11, 20, 23, tzinfo=UTC),
        datetime(2025, 11, 21, 0, tzinfo=UTC),
        datetime(2025, 11, 21, 1, tzinfo=UTC),
    ]
    write_kpis(wh, kpi_frame(hours))
    assert wh.drop_partitions("kpi_snapshots", "hour_key", "2025-11-21") == ["2025-11-20-23:00"]
    assert wh.read_table("kpi_snapshots")["snapshot_hour"].sort().to_list() == hours[1:]
    stamped = pl.DataFrame({"ts": hours, "x": [1, 2, 3]})
    wh.write_partitions("ts_things", stamped, ["ts"], [(str(v),) for v in stamped["ts"].cast(pl.String)])
    assert len(wh.drop_partitions("ts_things", "ts", "2025-11-21")) == 1
    assert wh.read_table("ts_things")["x"].sort().to_list() == [2, 3]
    # everything dropped: the table reads empty (or is gone), readers do not break
    assert len(wh.drop_partitions("kpi_snapshots", "hour_key", "2099-01-01")) == 2
    assert "kpi_snapshots" not in wh.tables() or wh.count("kpi_snapshots") == 0
    assert wh.drop_partitions("no_such_table", "day", "2026-01-01") == []
    with pytest.raises(ValueError, match="not a safe"):
        wh.drop_partitions("raw_things; drop", "_partition", "2026-01-01")


def test_retention_settings_from_the_environment():
    from analytics_pipelines.settings import Settings

    assert Settings.from_env({}).raw_retention_days is None
    for value, expected in (("30", 30), ("off", None), ("0", None)):
        assert Settings.from_env({"TT_RAW_RETENTION_DAYS": value}).raw_retention_days == expected
    for bad in ("thirty", "-3"):
        with pytest.raises(ValueError, match="TT_RAW_RETENTION_DAYS"):
            Settings.from_env({"TT_RAW_RETENTION_DAYS": bad})
    assert M.cutoff(NOW, 365) == "2025-11-22"


def test_maintenance_job(tmp_path, ops_url, monkeypatch):
    wh_url = f"duckdb:///{tmp_path / 'warehouse'}"
    wh = open_warehouse(wh_url)
    old, recent = NOW - timedelta(days=400), NOW - timedelta(hours=5)
    write_kpis(wh, kpi_frame([old, old + timedelta(hours=1), recent]))
    raw = pl.DataFrame({"_partition": ["2026-09-01", "2026-11-20"], "id": ["a", "b"]})
    wh.write_partitions("raw_orders", raw, ["_partition"], [("2026-09-01",), ("2026-11-20",)])
    eng = ops_engine(ops_url)
    with eng.begin() as conn:
        rid = conn.execute(
            alert_rules.insert()
            .values(name="r", metric="venues_total", operator="gt", threshold=1, schedule={}, actions=[])
            .returning(alert_rules.c.id)
        ).scalar()
        base = dict(rule_id=rid, severity="info", triggered_at=old)
        ids = [
            conn.execute(
                alert_instances.insert().values(**base, **v).returning(alert_instances.c.id)
            ).scalar()
            for v in (
                dict(scope_key="a", status="resolved", resolved_at=old),  # deleted
                dict(scope_key="b", status="resolved", resolved_at=recent),  # kept
                dict(scope_key="c", status="acknowledged"),
            )
        ]  # open: kept
        conn.execute(
            alert_notifications.insert(),
            [dict(instance_id=i, channel="log", status="sent", attempts=1, created_at=old) for i in ids],
        )
        files = {}
        for name, status, expires, completed in (
            ("done-expired", "completed", NOW - timedelta(days=1), NOW - timedelta(days=8)),
            ("done-valid", "completed", NOW + timedelta(days=3), NOW - timedelta(days=4)),
            ("done-no-expiry", "completed", None, NOW - timedelta(days=9)),
            ("pending-expired", "pending", NOW - timedelta(days=1), None),
            ("done-file-gone", "completed", NOW - timedelta(days=2), NOW - timedelta(days=9)),
        ):
            f = tmp_path / f"{name}.csv"
            if name != "done-file-gone":
                f.write_text("a,b\n")
            files[name] = f
            conn.execute(
                analytics_exports.insert().values(
                    id=name,
                    tenant_id=T1,
                    export_type="raw_data",
                    format="csv",
                    status=status,
                    filters={},
                    options={},
                    file_path=str(f),
                    expires_at=expires,
                    completed_at=completed,
                )
            )
    monkeypatch.setenv("TT_RAW_RETENTION_DAYS", "30")
    defs = dg.Definitions(
        jobs=[maintenance_job],
        resources={"warehouse": WarehouseResource(url=wh_url), "ops": OpsResource(url=ops_url)},
    )
    result = defs.resolve_job_def("maintenance_job").execute_in_process(
        run_config={"ops": {"run_maintenance": {"config": {"now": NOW.isoformat()}}}}
    )
    assert result.success
    out = result.output_for_node("run_maintenance")
    assert out == {
        "kpi_hours_dropped": 2,
        "alert_instances_deleted": 1,
        "alert_notifications_deleted": 1,
        "raw_partitions_dropped": 1,
        "exports_expired": 3,
        "export_files_deleted": 2,
        "problems": 0,
    }
    assert wh.read_table("kpi_snapshots")["snapshot_hour"].to_list() == [recent]
    assert wh.read_table("raw_orders")["id"].to_list() == ["b"]
    with eng.connect() as conn:
        assert sorted(r.scope_key for r in conn.execute(sa.select(alert_instances))) == ["b", "c"]
        status = dict(conn.execute(sa.select(analytics_exports.c.id, analytics_exports.c.status)).all())
    assert status == {
        "done-expired": "expired",
        "done-valid": "completed",
        "done-no-expiry": "expired",
        "pending-expired": "pending",
        "done-file-gone": "expired",
    }
    assert (
        not files["done-expired"].exists()
        and files["done-valid"].exists()
        and files["pending-expired"].exists()
    )
    # raw retention off by default: nothing else goes
    monkeypatch.delenv("TT_RAW_RETENTION_DAYS")
    again = defs.resolve_job_def("maintenance_job").execute_in_process(
        run_config={"ops": {"run_maintenance": {"config": {"now": (NOW + timedelta(days=400)).isoformat()}}}}
    )
    assert again.output_for_node("run_maintenance")["raw_partitions_dropped"] == 0


def test_transient_errors_are_retried_others_fail_at_once():
    import psycopg

    try:
        raise RuntimeError("wrapped") from psycopg.OperationalError("server closed the connection")
    except RuntimeError as exc:
        assert is_transient(exc)
    assert not is_transient(ValueError("bad data"))
    with pytest.raises(dg.RetryRequested):
        retry_transient(lambda: (_ for _ in ()).throw(TimeoutError("slow")))
    with pytest.raises(KeyError):
        retry_transient(lambda: {}["x"])
    assert RETRY_POLICY.max_retries == 3 and RUN_RETRY_TAGS["dagster/max_retries"] == "2"


# -- schedules -----------------------------------------------------------------------------------------


@dg.op
def _noop():
    return 1


@dg.job
def retrain_stub_job():
    _noop()


def test_schedules_are_time_zone_aware():
    from analytics_pipelines.jobs import main_job

    with pytest.raises(ValueError, match="unknown IANA time zone 'Mars/Base'"):
        make_schedules(main_job, timezone="Mars/Base")
    from analytics_pipelines.assets import registry_assets
    from analytics_pipelines.jobs import customers_job, kpi_job
    from analytics_pipelines.registry import default_registry
    from analytics_pipelines.settings import Settings

    made = make_schedules(main_job, customers_job=customers_job, kpi_job=kpi_job, timezone="America/New_York")
    defs = dg.Definitions(
        assets=registry_assets(default_registry(), Settings.from_env()),
        jobs=[main_job, kpi_job, customers_job, retrain_stub_job, maintenance_job],
        schedules=made,
        resources={
            "ops": OpsResource(),
            "warehouse": WarehouseResource(),
            "source": SourceResource(),
            "influx": InfluxResource(),
        },
    )
    repo = defs.get_repository_def()
    scheds = {s.name: defs.get_schedule_def(s.name) for s in made}
    assert {n: (s.cron_schedule, s.execution_timezone) for n, s in scheds.items()} == {
        "intraday_refresh_schedule": ("*/15 * * * *", "America/New_York"),
        "nightly_full_schedule": ("30 2 * * *", "America/New_York"),
        "maintenance_schedule": ("30 3 * * *", "America/New_York"),
        "customers_daily_schedule": ("0 6 * * *", "UTC"),  # the RFM partitions are UTC days
        "delivery_sweep_schedule": ("*/5 * * * *", "UTC"),
        "hourly_kpi_schedule": ("20 * * * *", "America/New_York"),
        "warehouse_compaction_schedule": ("50 * * * *", "UTC"),  # hourly: closed months are UTC months
    }
    ny = __import__("zoneinfo").ZoneInfo("America/New_York")
    with dg.instance_for_test() as instance, contextlib.ExitStack() as contexts:
        # 21:15 in New York on Nov 21 is 02:15 UTC on Nov 22: today's partition is the UTC day
        ctx = contexts.enter_context(
            dg.build_schedule_context(
                instance=instance,
                repository_def=repo,
                scheduled_execution_time=datetime(2026, 11, 21, 21, 15, tzinfo=ny),
            )
        )
        [req] = scheds["intraday_refresh_schedule"].evaluate_tick(ctx).run_requests
        assert req.partition_key == "2026-11-22" and req.tags["refresh"] == "intraday"
        ctx = contexts.enter_context(
            dg.build_schedule_context(
                instance=instance,
                repository_def=repo,
                scheduled_execution_time=datetime(2026, 11, 22, 2, 30, tzinfo=ny),
            )
        )
        [req] = scheds["nightly_full_schedule"].evaluate_tick(ctx).run_requests
        assert (req.tags[ASSET_PARTITION_RANGE_START_TAG], req.tags[ASSET_PARTITION_RANGE_END_TAG]) == (
            "2026-11-21",
            "2026-11-22",
        )  # 07:30 UTC Nov 22: yesterday and today in UTC
        ctx = contexts.enter_context(
            dg.build_schedule_context(
                instance=instance,
                repository_def=repo,
                scheduled_execution_time=datetime(2026, 11, 22, 3, 30, tzinfo=ny),
            )
        )
        [req] = scheds["maintenance_schedule"].evaluate_tick(ctx).run_requests
        assert req.run_config["ops"]["run_maintenance"]["config"]["now"] == "2026-11-22T08:30:00+00:00"
        ctx = contexts.enter_context(
            dg.build_schedule_context(
                instance=instance,
                repository_def=repo,
                scheduled_execution_time=datetime(2026, 11, 23, 6, 0, tzinfo=UTC),
            )
        )
        [req] = scheds["customers_daily_schedule"].evaluate_tick(ctx).run_requests
        assert req.partition_key == "2026-11-22"  # 06:00 UTC: the UTC day that just ended
        ctx = contexts.enter_context(
            dg.build_schedule_context(
                instance=instance,
                repository_def=repo,
                scheduled_execution_time=datetime(2026, 11, 21, 22, 20, tzinfo=ny),
            )
        )
        [req] = scheds["hourly_kpi_schedule"].evaluate_tick(ctx).run_requests
        assert req.partition_key == "2026-11-22-02:00"  # 03:20 UTC: the UTC hour that just ended
        # an intraday run still running: the next tick skips instead of piling up
        instance.create_run_for_job(
            retrain_stub_job, tags={"refresh": "intraday"}, status=dg.DagsterRunStatus.STARTED
        )
        intraday = make_schedules(retrain_stub_job, timezone="UTC")[0]
        small = dg.Definitions(
            jobs=[retrain_stub_job, maintenance_job],
            schedules=[intraday],
            resources={"ops": OpsResource(), "warehouse": WarehouseResource(), "source": SourceResource()},
        )
        ctx = contexts.enter_context(
            dg.build_schedule_context(
                instance=instance, scheduled_execution_time=NOW, repository_def=small.get_repository_def()
            )
        )
        result = intraday.evaluate_tick(ctx)
        assert not result.run_requests and "still queued or running" in result.skip_message


# -- alert evaluation after kpi_snapshots: sensor -> run on the local instance (end to end) -------------------


@pytest.fixture(scope="module")
def tiny_facts(tmp_path_factory) -> str:
    """Tiny generated data (seed 3) with its last three days materialized through main_job."""
    from materialized import materialize_everything

    m = materialize_everything(
        tmp_path_factory.mktemp("tiny_facts"), seed=3, runs=(("main_job", "2026-10-29", "2026-10-31"),)
    )
    return m.warehouse_url


def test_kpi_sensor_launches_alert_evaluation_on_real_marts(tiny_facts, ops_url, monkeypatch):
    """The lead's kpi_snapshots asset materialized on a local instance -> kpi_snapshots_alert_sensor ->
    the requested alert_evaluation_job run executed on that instance -> alert instances and notifications."""
    from analytics_pipelines.alerting import create_rule
    from analytics_pipelines.assets.factory import mart_asset
    from analytics_pipelines.registry import default_registry
    from analytics_pipelines.settings import Settings

    registry = default_registry()
    kpi_snapshots = mart_asset(registry, registry.table("kpi_snapshots"), Settings.from_env())

    # some venues sold in the 24 h before `hour` (not all); the platform's data ends at as_of (2026-11-01), so
    # nobody sold in the 24 h before `later`
    hour, later = ("2026-10-30-12:00", "2026-11-01-23:00")
    monkeypatch.setenv("TT_ALERT_DEFAULT_RULES", "none")
    monkeypatch.delenv("TT_ALERT_EMAILS", raising=False)
    resources = {"warehouse": WarehouseResource(url=tiny_facts), "ops": OpsResource(url=ops_url)}
    eng = ops_engine(ops_url)
    create_rule(
        eng,
        dict(
            name="venue sold tickets",
            metric="tickets_sold_24h",
            operator="gt",
            threshold=0,
            scope="venue",
            severity="info",
            actions=[{"type": "webhook"}],
        ),
    )
    with http_server([]) as (hook, received), dg.instance_for_test() as instance:
        monkeypatch.setenv("TT_ALERT_WEBHOOK_URL", hook)
        defs = dg.Definitions(
            assets=[kpi_snapshots],
            jobs=[alert_evaluation_job],
            sensors=[kpi_snapshots_alert_sensor],
            resources=resources,
        )
        sensor = defs.get_sensor_def("kpi_snapshots_alert_sensor")
        cursor = sensor_tick(sensor, instance=instance, definitions=defs).cursor
        runs = []
        for key, now in ((hour, "2026-10-30T13:30:00+00:00"), (later, "2026-11-02T00:30:00+00:00")):
            assert dg.materialize(
                [kpi_snapshots], instance=instance, partition_key=key, resources=resources
            ).success
            result = sensor_tick(sensor, instance=instance, definitions=defs, cursor=cursor)
            [req] = result.run_requests
            assert req.tags["kpi_snapshots_partition"] == key
            # the daemon's part: launch the requested run on the same instance (as of half an hour after the
            # snapshot hour, the wall clock of a real deployment)
            run = defs.resolve_job_def("alert_evaluation_job").execute_in_process(
                instance=instance,
                run_config={"ops": {"evaluate_alerts": {"config": {"now": now}}}},
                tags={**req.tags, "dagster/run_key": req.run_key},
            )
            assert run.success and instance.get_run_by_id(run.run_id).tags["dagster/run_key"] == req.run_key
            runs.append(run.output_for_node("evaluate_alerts"))
            cursor = result.cursor
            # no new materialization: no second run
            assert not sensor_tick(sensor, instance=instance, definitions=defs, cursor=cursor).run_requests
    # one instance per venue that sold tickets in the 24 h, as the mart itself says; resolved once none did
    kpis = open_warehouse(tiny_facts).read_table("kpi_snapshots")
    sold = kpis.filter(pl.col("venue_id").is_not_null() & (pl.col("metric") == "tickets_sold_24h"))
    selling = sold.filter((pl.col("hour_key") == hour) & (pl.col("value") > 0))
    assert selling.height > 0 and sold.filter(pl.col("hour_key") == hour).height > selling.height
    assert sold.filter((pl.col("hour_key") == later) & (pl.col("value") > 0)).is_empty()
    with eng.connect() as conn:
        inst = conn.execute(sa.select(alert_instances)).mappings().all()
        notes = conn.execute(sa.select(alert_notifications)).mappings().all()
    assert sorted(i["venue_id"] for i in inst) == sorted(selling["venue_id"])
    assert {i["trigger_value"] for i in inst} == set(selling["value"])
    assert {i["status"] for i in inst} == {"resolved"}
    assert runs[0]["triggered"] == selling.height and runs[1]["resolved"] == selling.height
    assert len(received) == selling.height and {n["status"] for n in notes} == {"sent"}
    assert {r["body"]["venue_id"] for r in received} == set(selling["venue_id"])


# -- run failures -------------------------------------------------------------------------------------------


@dg.op
def _explode():
    raise RuntimeError("warehouse unreachable: connection refused")


@dg.job
def failing_job():
    _explode()


def test_run_failure_sensor_sends_email_and_webhook(monkeypatch):
    with (
        smtp_server() as (port, inbox),
        http_server([503]) as (hook, received),
        dg.instance_for_test() as instance,
    ):
        monkeypatch.setenv("TT_SMTP_PORT", str(port))
        monkeypatch.setenv("TT_ALERT_EMAILS", "data-oncall@tickettoken.io, cto@tickettoken.io")
        monkeypatch.setenv("TT_ALERT_WEBHOOK_URL", hook)
        result = failing_job.execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        ctx = dg.build_run_status_sensor_context(
            sensor_name="run_failure_alert_sensor",
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            dagster_event=result.get_run_failure_event(),
        ).for_run_failure()
        import analytics_pipelines.alerting.notifier as N

        monkeypatch.setattr(N.Notifier, "backoff_s", 0.01)  # the class default: keep the retry wait short
        run_failure_alert_sensor(ctx)
    [(rcpts, msg)] = inbox
    assert sorted(rcpts) == ["cto@tickettoken.io", "data-oncall@tickettoken.io"]
    assert msg["Subject"] == "[ERROR] Dagster run failed: failing_job"
    body = msg.get_payload(decode=True).decode()
    assert result.run_id in body and "warehouse unreachable" in body
    assert len(received) == 2  # 503 then 200: retried
    payload = received[-1]["body"]
    assert (
        payload["event"] == "run_failure"
        and payload["job"] == "failing_job"
        and payload["run_id"] == result.run_id
    )


# -- new source data ---------------------------------------------------------------------------------------


@pytest.fixture
def tiny_source(tmp_path) -> str:
    from analytics_pipelines.generator.run import generate

    url = f"duckdb:///{tmp_path / 'source.duckdb'}"
    generate(url, scale="tiny", seed=3, progress=False)
    return url


def _late_rows(url: str, days: list[str], when: datetime, scan_after: str | None = None) -> str | None:
    """Orders that arrive (or change) now for old days, and a scan synced now by an offline scanner for a
    day after `scan_after`; returns the scan's day."""
    with duckdb.connect(url.removeprefix("duckdb:///")) as conn:
        conn.execute("SET TimeZone='UTC'")
        for day in days:
            conn.execute(
                """INSERT INTO orders SELECT * REPLACE (CAST(uuid() AS VARCHAR) AS id,
                                ?::TIMESTAMPTZ AS updated_at)
                            FROM orders WHERE CAST(created_at AS DATE) = ?::DATE LIMIT 1""",
                [when, day],
            )
        if scan_after is None:
            return None
        row = conn.execute(
            """SELECT id, CAST(scanned_at AS DATE) FROM ticket_scans
                              WHERE CAST(scanned_at AS DATE) > ?::DATE LIMIT 1""",
            [scan_after],
        ).fetchone()
        conn.execute(
            """INSERT INTO ticket_scans SELECT * REPLACE (CAST(uuid() AS VARCHAR) AS id,
                            ?::TIMESTAMPTZ AS created_at) FROM ticket_scans WHERE id = ?""",
            [when, row[0]],
        )
        return str(row[1])


def test_source_sensor_requests_exactly_the_changed_days(tiny_source, tmp_path):
    from analytics_pipelines.assets.ingestion import ingestion_assets
    from analytics_pipelines.registry import default_registry

    # the lead binds main_job; a raw-orders-only job keeps the end-to-end run short
    raw_orders_job = dg.define_asset_job("raw_orders_job", selection=["raw_orders"])
    sensor = make_source_data_sensor(raw_orders_job)
    wh_url = f"duckdb:///{tmp_path / 'warehouse'}"
    resources = {"source": SourceResource(url=tiny_source), "warehouse": WarehouseResource(url=wh_url)}
    defs = dg.Definitions(
        assets=ingestion_assets(default_registry(), ProjectSettings.from_env()),
        jobs=[raw_orders_job],
        sensors=[sensor],
        resources=resources,
    )
    with dg.instance_for_test() as instance:

        def tick(cursor):
            return sensor_tick(
                sensor, instance=instance, cursor=cursor, resources=resources, definitions=defs
            )

        first = tick(None)
        assert not first.run_requests and "watermarks recorded" in first.skip_message
        marks = json.loads(first.cursor)
        assert set(marks) == set(source_changes.fact_tables()) and marks["orders"].startswith("2026-10-31")
        quiet = tick(first.cursor)
        assert not quiet.run_requests and "no source rows changed" in quiet.skip_message
        late = datetime.now(UTC) - timedelta(minutes=1)
        scan_day = _late_rows(tiny_source, ["2026-08-10", "2026-08-11"], late, scan_after="2026-08-20")
        changed = tick(quiet.cursor)
        reqs = changed.run_requests
        asked = sorted(
            (r.partition_key,)
            if r.partition_key
            else (r.tags[ASSET_PARTITION_RANGE_START_TAG], r.tags[ASSET_PARTITION_RANGE_END_TAG])
            for r in reqs
        )
        # exactly the changed days: the scan's single day, and the two adjacent order days as one range run
        assert asked == [("2026-08-10", "2026-08-11"), (scan_day,)], asked
        assert json.loads(changed.cursor)["orders"] > marks["orders"]
        assert not tick(changed.cursor).run_requests  # seen: not requested again
        # a row whose change time is in the future (bad clock) does not move the watermark past real changes
        _late_rows(tiny_source, ["2026-09-01"], datetime.now(UTC) + timedelta(days=30))
        assert not tick(changed.cursor).run_requests
        # the daemon's part: run the range request for the late orders' days on this instance
        req = next(r for r in reqs if not r.partition_key)
        run = defs.resolve_job_def("raw_orders_job").execute_in_process(
            instance=instance, tags={**req.tags, "dagster/run_key": req.run_key}
        )
        assert run.success
        assert instance.get_materialized_partitions(dg.AssetKey("raw_orders")) == {"2026-08-10", "2026-08-11"}
    wh = open_warehouse(wh_url)
    with duckdb.connect(tiny_source.removeprefix("duckdb:///"), read_only=True) as c:
        n = c.execute(
            "SELECT count(*) FROM orders WHERE CAST(created_at AS DATE) = DATE '2026-08-10'"
        ).fetchone()[0]
    assert n >= 2 and wh.count("raw_orders", "_partition = %s", ["2026-08-10"]) == n


def test_contiguous_days_become_one_range():
    assert source_changes.contiguous_ranges(["2026-01-03", "2026-01-01", "2026-01-02", "2026-01-05"]) == [
        ("2026-01-01", "2026-01-03"),
        ("2026-01-05", "2026-01-05"),
    ]
    assert source_changes.contiguous_ranges([]) == []


# -- freshness -------------------------------------------------------------------------------------------


def test_stale_mart_is_visible_and_alerts_once(monkeypatch):
    @dg.asset(name="venue_analytics")
    def fresh_mart() -> None:
        return None

    @dg.asset(name="sales_metrics")
    def stale_mart() -> None:
        return None

    checks = make_freshness_checks(
        {"venue_analytics": timedelta(hours=2), "sales_metrics": timedelta(hours=26)}
    )
    alert = make_stale_alert_sensor(checks, name="stale_test_sensor")
    check_job = dg.define_asset_job("freshness_check_job", selection=dg.AssetSelection.checks(*checks))
    defs = dg.Definitions(
        assets=[fresh_mart, stale_mart], asset_checks=checks, sensors=[alert], jobs=[check_job]
    )
    monkeypatch.delenv("TT_ALERT_EMAILS", raising=False)
    with http_server([]) as (hook, received), dg.instance_for_test() as instance:
        monkeypatch.setenv("TT_ALERT_WEBHOOK_URL", hook)
        assert dg.materialize([fresh_mart], instance=instance).success

        def run_checks():
            return defs.resolve_job_def("freshness_check_job").execute_in_process(instance=instance)

        result = run_checks()
        evaluations = {e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()}
        assert evaluations["venue_analytics"].passed and not evaluations["sales_metrics"].passed
        assert (
            evaluations["sales_metrics"].severity == dg.AssetCheckSeverity.WARN
        )  # a warning badge in the UI
        tick = sensor_tick(alert, instance=instance, definitions=defs)
        assert "notified 1 stale mart" in tick.skip_message
        assert json.loads(tick.cursor) == ["sales_metrics:freshness_check"]
        [hit] = received
        assert hit["body"]["event"] == "stale_marts" and hit["body"]["assets"][0]["asset"] == "sales_metrics"
        # still stale on the next tick: no second notification
        assert (
            "no newly stale"
            in sensor_tick(alert, instance=instance, definitions=defs, cursor=tick.cursor).skip_message
        )
        # fresh again, then stale again later: a new episode would notify again
        assert dg.materialize([stale_mart], instance=instance).success
        run_checks()
        fresh = sensor_tick(alert, instance=instance, definitions=defs, cursor=tick.cursor)
        assert json.loads(fresh.cursor) == [] and len(received) == 1


def test_freshness_checks_cover_every_mart_and_the_wiring_loads():
    from analytics_pipelines.definitions import defs
    from analytics_pipelines.registry import default_registry

    registry = default_registry()
    marts = {
        t.name for t in registry.tables if t.group in ("facts", "marts", "kpis") and t.produced_by is None
    }
    covered = {spec.key.asset_key.to_user_string() for c in freshness_checks for spec in c.check_specs}
    assert marts and covered == marts, covered ^ marts
    # the native FreshnessPolicy on the same marts, in the one Definitions
    graph = defs.resolve_asset_graph()
    policies = {m: graph.get(dg.AssetKey(m)).freshness_policy for m in marts}
    assert policies["kpi_snapshots"].fail_window.to_timedelta() == timedelta(hours=2)
    assert policies["sales_metrics"].warn_window.to_timedelta() == timedelta(hours=13)
    assert all(policies[m] is not None for m in marts)
    with dg.instance_for_test():  # loading consults the current instance
        dg.Definitions.validate_loadable(defs)
        assert defs.resolve_job_def("alert_evaluation_job") and defs.get_schedule_def("hourly_kpi_schedule")
