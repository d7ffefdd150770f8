"""Export requests and report delivery over the ops tables, on SQLite and PostgreSQL: lifecycle transitions
(and the illegal ones), atomic claims, retries with backoff, cancel, expiry deleting files; the Dagster
sensor's run keys and jobs; subscriptions delivered to a real SMTP server (aiosmtpd) exactly once across
repeated ticks and a restart."""

from __future__ import annotations

import email
import hashlib
import socket
import threading
from datetime import UTC, date, datetime, timedelta
from email import policy

import dagster as dg
import mart_frames as mf
import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from analytics_pipelines.assets.reports import report_assets
from analytics_pipelines.exports import delivery, lifecycle
from analytics_pipelines.exports.lifecycle import IllegalTransition
from analytics_pipelines.jobs.reports import jobs
from analytics_pipelines.notify import SmtpSettings
from analytics_pipelines.ops.db import ops_engine
from analytics_pipelines.ops.exports import report_deliveries
from analytics_pipelines.reports import render
from analytics_pipelines.reports.builders import daily_venue_report, executive_report
from analytics_pipelines.reports.filters import ExportRequestError
from analytics_pipelines.resources import OpsResource, WarehouseResource
from analytics_pipelines.schedules.reports import schedules
from analytics_pipelines.sensors.reports import export_request_sensor, report_delivery_sensor, sensors
from analytics_pipelines.settings import Settings as ProjectSettings
from analytics_pipelines.warehouse import open_warehouse

resources = {"ops": OpsResource()}
assets = report_assets(ProjectSettings.from_env())
KEY = "test-pseudonym-key-0123456789"
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.fixture
def engine(ops_url):
    return ops_engine(ops_url)


@pytest.fixture
def sqlite_ops(tmp_path):
    """Dagster-level tests run on SQLite only; both ops backends are covered by the tests below them."""
    url = f"sqlite:///{tmp_path / 'ops.sqlite'}"
    return url, ops_engine(url)


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("TT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TT_EXPORT_PSEUDONYM_KEY", KEY)
    monkeypatch.delenv("TT_ENV", raising=False)
    return tmp_path / "data"


def _new(engine, **kw):
    args = dict(
        tenant_id=mf.T1,
        export_type="financial_report",
        fmt="xlsx",
        filters={"date_from": "2026-11-02", "date_to": "2026-11-15"},
        now=T0,
    )
    return lifecycle.create_request(engine, **{**args, **kw})


# --- lifecycle ------------------------------------------------------------------------------------------


def test_create_request_validates(engine, marts_url):
    wh = open_warehouse(marts_url)
    cases = [
        (dict(export_type="dashboard"), "unknown export type"),
        (dict(fmt="docx"), "unknown format"),
        (dict(filters={"date_from": "2026-13-01"}), "ISO date"),
        (dict(filters={"colour": 1}), "unknown filter"),
        (dict(export_type="raw_data"), "options.table"),
        (dict(tenant_id=""), "tenant_id is required"),
        (dict(filters={"segments": ["VIP"]}), "does not apply to financial_report"),
        (dict(export_type="customer_list", filters={"segments": ["VIP"]}, warehouse=wh), "customer marts"),
        (dict(max_attempts=0), "max_attempts"),
    ]
    for kw, msg in cases:
        with pytest.raises(ExportRequestError, match=msg):
            _new(engine, **kw)
    rid = _new(engine, venue_id=mf.V1.upper())
    row = lifecycle.get(engine, rid)
    assert row["status"] == "pending" and row["filters"]["venue_ids"] == [mf.V1] and row["progress"] == 0


def test_lifecycle_transitions_and_illegal_ones(engine, tmp_path):
    rid = _new(engine)
    with pytest.raises(IllegalTransition, match="is pending"):
        lifecycle.complete(engine, rid, tmp_path / "x")
    with pytest.raises(IllegalTransition):
        lifecycle.set_progress(engine, rid, 50)
    assert lifecycle.claim(engine, rid, "run-1", now=T0)
    assert not lifecycle.claim(engine, rid, "run-2", now=T0)  # already processing
    lifecycle.set_progress(engine, rid, 40)
    assert lifecycle.get(engine, rid)["progress"] == 40
    with pytest.raises(ValueError):
        lifecycle.set_progress(engine, rid, 140)
    f = tmp_path / "out.csv"
    f.write_bytes(b"a,b\n1,2\n")
    row = lifecycle.complete(engine, rid, f, now=T0)
    assert row["status"] == "completed" and row["progress"] == 100 and row["file_size"] == 8
    assert row["checksum_sha256"] == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    assert row["expires_at"] == T0 + timedelta(days=7) and row["completed_at"] == T0
    assert lifecycle.claim(engine, rid) is False
    with pytest.raises(IllegalTransition, match="cannot complete .* completed"):
        lifecycle.complete(engine, rid, f)
    with pytest.raises(IllegalTransition, match="cannot cancel .* completed"):
        lifecycle.cancel(engine, rid)  # pending or processing only (issue 20)
    with pytest.raises(IllegalTransition):
        lifecycle.fail(engine, rid, "late")
    with pytest.raises(KeyError):
        lifecycle.get(engine, "no-such-id")


def test_concurrent_claims_let_exactly_one_through(engine):
    rid = _new(engine)
    results, barrier = [], threading.Barrier(4)

    def worker(i):
        barrier.wait()
        results.append(lifecycle.claim(engine, rid, f"run-{i}", now=T0))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]


def test_retry_with_backoff_until_max_attempts(engine):
    rid = _new(engine, max_attempts=3)
    assert lifecycle.claim(engine, rid, now=T0)
    assert lifecycle.fail(engine, rid, "boom", now=T0) == "pending"
    row = lifecycle.get(engine, rid)
    assert (
        row["attempts"] == 1
        and row["next_attempt_at"] == T0 + timedelta(seconds=60)
        and row["error_message"] == "boom"
    )
    assert not lifecycle.claim(engine, rid, now=T0 + timedelta(seconds=30))  # not due yet
    assert lifecycle.due_requests(engine, now=T0 + timedelta(seconds=30)) == []
    due = lifecycle.due_requests(engine, now=T0 + timedelta(seconds=61))
    assert [d.run_key for d in due] == [f"{rid}:1"]
    assert lifecycle.claim(engine, rid, now=T0 + timedelta(seconds=61))
    assert lifecycle.fail(engine, rid, "boom", now=T0 + timedelta(seconds=61)) == "pending"
    assert lifecycle.get(engine, rid)["next_attempt_at"] == T0 + timedelta(seconds=61 + 120)  # doubled
    t2 = T0 + timedelta(seconds=200)
    assert lifecycle.claim(engine, rid, now=t2)
    assert lifecycle.fail(engine, rid, "boom", now=t2) == "failed"
    row = lifecycle.get(engine, rid)
    assert row["status"] == "failed" and row["attempts"] == 3 and row["next_attempt_at"] is None
    assert lifecycle.due_requests(engine, now=t2 + timedelta(days=1)) == []
    # a non-retryable failure fails at once
    other = _new(engine)
    assert lifecycle.claim(engine, other, now=T0)
    assert lifecycle.fail(engine, other, "bad filter", retryable=False, now=T0) == "failed"


def test_cancel_only_while_pending(engine):
    rid = _new(engine)
    lifecycle.cancel(engine, rid)
    assert lifecycle.get(engine, rid)["status"] == "cancelled"
    assert not lifecycle.claim(engine, rid)
    with pytest.raises(IllegalTransition, match="cancelled"):
        lifecycle.cancel(engine, rid)
    assert lifecycle.due_requests(engine) == []


def test_expiry_deletes_the_file_and_marks_expired(engine, tmp_path, monkeypatch):
    monkeypatch.setenv("TT_EXPORT_TTL_DAYS", "2")
    rid, keep = _new(engine), _new(engine)
    files = []
    for i, r in enumerate((rid, keep)):
        assert lifecycle.claim(engine, r, now=T0)
        f = tmp_path / f"f{i}.json"
        f.write_text("{}")
        files.append(f)
        lifecycle.complete(engine, r, f, now=T0 if r == rid else T0 + timedelta(days=1))
    assert lifecycle.expire_due(engine, now=T0 + timedelta(days=1)) == []
    assert lifecycle.expire_due(engine, now=T0 + timedelta(days=2, seconds=1)) == [rid]
    assert not files[0].exists() and files[1].exists()
    assert (
        lifecycle.get(engine, rid)["status"] == "expired"
        and lifecycle.get(engine, keep)["status"] == "completed"
    )
    assert lifecycle.expire_due(engine, now=T0 + timedelta(days=2, seconds=1)) == []  # idempotent
    monkeypatch.setenv("TT_EXPORT_TTL_DAYS", "soon")
    with pytest.raises(ValueError, match="TT_EXPORT_TTL_DAYS"):
        lifecycle.ttl_days()


def test_stale_processing_is_recovered(engine):
    rid = _new(engine)
    assert lifecycle.claim(engine, rid, now=T0)
    assert lifecycle.recover_stale(engine, now=T0 + timedelta(minutes=30)) == []
    assert lifecycle.recover_stale(engine, now=T0 + timedelta(hours=3)) == [rid]
    row = lifecycle.get(engine, rid)
    assert row["status"] == "pending" and row["attempts"] == 1 and "interrupted" in row["error_message"]


def test_run_export_end_to_end(engine, marts_url, env):
    wh = open_warehouse(marts_url)
    rid = _new(engine, export_type="customer_list", fmt="csv", venue_id=mf.V1)
    row = lifecycle.run_export(engine, wh, rid, run_id="r1")
    assert row["status"] == "completed", row["error_message"]
    path = env / "exports" / mf.T1 / f"customer_list_{rid}.zip"
    assert row["file_path"] == str(path) and path.stat().st_size == row["file_size"]
    assert row["checksum_sha256"] == lifecycle.sha256_file(path)
    assert lifecycle.run_export(engine, wh, rid) is None  # nothing to claim any more


def test_run_export_failures_are_recorded(engine, marts_url, env, monkeypatch, tmp_path):
    monkeypatch.delenv("TT_EXPORT_PSEUDONYM_KEY")
    rid = _new(engine, export_type="transaction_history", fmt="json")
    row = lifecycle.run_export(engine, open_warehouse(marts_url), rid)
    assert row["status"] == "failed" and row["attempts"] == 1  # configuration error: not retried
    assert "TT_EXPORT_PSEUDONYM_KEY is not set" in row["error_message"]
    # a mart that is not built yet is retried later
    rid = _new(engine, export_type="event_summary", fmt="pdf")
    row = lifecycle.run_export(engine, open_warehouse(f"duckdb:///{tmp_path / 'empty'}"), rid)
    assert row["status"] == "pending" and "not built yet" in row["error_message"] and row["next_attempt_at"]


# --- Dagster --------------------------------------------------------------------------------------------


def _defs(ops_url, marts_url):
    return dg.Definitions(
        assets=assets,
        jobs=jobs,
        sensors=sensors,
        schedules=schedules,
        resources={
            **resources,
            "ops": OpsResource(url=ops_url),
            "warehouse": WarehouseResource(url=marts_url),
        },
    )


def test_export_sensor_run_keys_and_job(sqlite_ops, marts_url, env):
    ops_url, engine = sqlite_ops
    defs = _defs(ops_url, marts_url)
    ops = OpsResource(url=ops_url)
    with dg.DagsterInstance.ephemeral() as instance:
        ctx = dg.build_sensor_context(instance=instance, resources={"ops": ops})
        assert isinstance(export_request_sensor(ctx), dg.SkipReason)
        a, b = _new(engine, fmt="pdf"), _new(engine, fmt="json")
        reqs = export_request_sensor(dg.build_sensor_context(instance=instance, resources={"ops": ops}))
        assert sorted(r.run_key for r in reqs) == sorted([f"{a}:0", f"{b}:0"])  # both created at T0
        reqs = sorted(reqs, key=lambda r: r.run_key != f"{a}:0")
        again = export_request_sensor(dg.build_sensor_context(instance=instance, resources={"ops": ops}))
        assert sorted(r.run_key for r in again) == sorted(
            r.run_key for r in reqs
        )  # same keys: the daemon dedupes
        job = defs.resolve_job_def("export_job")
        result = job.execute_in_process(run_config=reqs[0].run_config, instance=instance)
        assert result.success
        row = lifecycle.get(engine, a)
        assert row["status"] == "completed" and row["run_id"] == result.run_id
        # the same run config again finds nothing to claim and does no work
        assert job.execute_in_process(run_config=reqs[0].run_config, instance=instance).success
        assert lifecycle.get(engine, a)["completed_at"] == row["completed_at"]
        left = export_request_sensor(dg.build_sensor_context(instance=instance, resources={"ops": ops}))
        assert [r.run_key for r in left] == [f"{b}:0"]


def test_export_job_failure_is_visible(sqlite_ops, marts_url, env, monkeypatch):
    ops_url, engine = sqlite_ops
    monkeypatch.delenv("TT_EXPORT_PSEUDONYM_KEY")
    rid = _new(engine, export_type="customer_list")
    job = _defs(ops_url, marts_url).resolve_job_def("export_job")
    result = job.execute_in_process(
        run_config={"ops": {"process_export_request": {"config": {"request_id": rid}}}}, raise_on_error=False
    )
    assert not result.success
    assert lifecycle.get(engine, rid)["status"] == "failed"


def test_maintenance_job_and_report_assets(sqlite_ops, marts_url, env, tmp_path):
    ops_url, engine = sqlite_ops
    defs = _defs(ops_url, marts_url)
    rid = _new(engine)
    assert lifecycle.claim(engine, rid, now=T0 - timedelta(days=30))
    f = tmp_path / "old.csv"
    f.write_text("x")
    lifecycle.complete(engine, rid, f, now=T0 - timedelta(days=30))
    assert defs.resolve_job_def("export_maintenance_job").execute_in_process().success
    assert lifecycle.get(engine, rid)["status"] == "expired" and not f.exists()
    sched = defs.resolve_schedule_def("export_maintenance_schedule")
    assert sched.cron_schedule == "15 * * * *"
    res = {"warehouse": WarehouseResource(url=marts_url)}
    daily = dg.materialize(
        [a for a in assets if a.key.path == ["daily_venue_reports"]],
        partition_key="2026-11-05",
        resources=res,
    )
    assert daily.success
    out = env / "reports" / "daily_venue" / "2026-11-05"
    assert {p.name for p in out.iterdir()} >= {
        f"{v}.{ext}" for v in (mf.V1, mf.V2, mf.V3) for ext in ("pdf", "xlsx", "zip")
    }
    weekly = dg.materialize(
        [a for a in assets if a.key.path == ["weekly_executive_reports"]],
        partition_key="2026-11-09",
        resources=res,
    )
    assert weekly.success
    assert (env / "reports" / "weekly_executive" / "2026-11-09" / f"{mf.V2}.pdf").exists()


# --- subscriptions and delivery -------------------------------------------------------------------------


class _Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook name
        self.messages.append(
            (envelope.rcpt_tos, email.message_from_bytes(envelope.content, policy=policy.default))
        )
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp():
    inbox, port = _Inbox(), _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, SmtpSettings(host="127.0.0.1", port=port, sender="reports@tickettoken.test", timeout_s=5)
    finally:
        controller.stop()


def test_due_periods_follow_local_time_and_zone():
    ny = "America/New_York"  # UTC-5 in November
    p = delivery.latest_due_period("daily", "07:00", ny, datetime(2026, 11, 22, 11, 59, tzinfo=UTC))
    assert p.label == "2026-11-20"  # 06:59 in New York: today's delivery not due yet
    p = delivery.latest_due_period("daily", "07:00", ny, datetime(2026, 11, 22, 12, 0, tzinfo=UTC))
    assert p.label == "2026-11-21" and p.due_at == datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    p = delivery.latest_due_period(
        "weekly", "08:30", "Europe/Berlin", datetime(2026, 11, 23, 7, 31, tzinfo=UTC)
    )
    assert (p.label, p.first, p.last) == ("2026-W47", date(2026, 11, 16), date(2026, 11, 22))
    p = delivery.latest_due_period(
        "weekly", "08:30", "Europe/Berlin", datetime(2026, 11, 23, 7, 29, tzinfo=UTC)
    )
    assert p.label == "2026-W46"
    p = delivery.latest_due_period(
        "monthly", "06:00", "Asia/Tokyo", datetime(2026, 11, 30, 21, 0, tzinfo=UTC)
    )
    assert (p.label, p.first, p.last) == (
        "2026-11",
        date(2026, 11, 1),
        date(2026, 11, 30),
    )  # Tokyo: Dec 1 06:00


def test_subscription_validation(engine):
    ok = dict(
        tenant_id=mf.T1, venue_id=mf.V1, report="daily_venue", recipients=["ops@example.com"], cadence="daily"
    )
    for kw, msg in (
        (dict(report="hourly"), "unknown report"),
        (dict(cadence="weekly"), "sent daily"),
        (dict(recipients=["nope"]), "not email"),
        (dict(recipients=[]), "1 to 50"),
        (dict(local_time="7am"), "HH:MM"),
        (dict(timezone="Mars/Olympus"), "time zone"),
        (dict(fmt="docx"), "unknown format"),
    ):
        with pytest.raises(ExportRequestError, match=msg):
            delivery.create_subscription(engine, **{**ok, **kw})
    assert delivery.create_subscription(engine, **ok) > 0


def _ledger(engine):
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(report_deliveries)).mappings()]


def test_delivery_exactly_once_across_ticks_and_restart(ops_url, engine, marts_url, smtp, env):
    inbox, settings = smtp
    wh = open_warehouse(marts_url)
    sid = delivery.create_subscription(
        engine,
        mf.T1,
        mf.V1,
        "daily_venue",
        ["gm@venue.example", "cfo@venue.example"],
        "daily",
        fmt="pdf",
        local_time="07:00",
        timezone="Europe/Berlin",
    )
    now = datetime(2026, 11, 6, 6, 5, tzinfo=UTC)  # 07:05 in Berlin: yesterday (2026-11-05) is due
    due = delivery.due_deliveries(engine, now)
    assert [d.run_key for d in due] == [f"{sid}:2026-11-05:0"]
    first = delivery.deliver(engine, wh, sid, "2026-11-05", settings, now=now)
    assert first.status == "sent" and first.attached
    # the same tick again, a second sender, and a "restart" (a brand-new engine) all find it sent
    assert delivery.deliver(engine, wh, sid, "2026-11-05", settings, now=now).status == "skipped"
    assert delivery.due_deliveries(engine, now) == []
    restarted = sa.create_engine(
        engine.url,
        **(
            {"connect_args": {"options": "-c search_path=ops,public"}}
            if engine.dialect.name == "postgresql"
            else {}
        ),
    )
    assert delivery.due_deliveries(restarted, now + timedelta(minutes=5)) == []
    assert delivery.deliver(restarted, wh, sid, "2026-11-05", settings, now=now).status == "skipped"
    restarted.dispose()
    assert len(inbox.messages) == 1
    rcpts, msg = inbox.messages[0]
    assert sorted(rcpts) == ["cfo@venue.example", "gm@venue.example"]
    assert "2026-11-05" in msg["Subject"] and "Театр «Мир»" in msg["Subject"]  # UTF-8 subject
    (att,) = list(msg.iter_attachments())
    assert att.get_content_type() == "application/pdf" and att.get_filename() == "daily_venue_2026-11-05.pdf"
    assert att.get_content() == open(first.file_path, "rb").read() and att.get_content()[:5] == b"%PDF-"
    (row,) = _ledger(engine)
    assert row["status"] == "sent" and row["attempts"] == 1 and row["message_id"] == msg["Message-ID"]


def test_concurrent_delivery_claims_let_exactly_one_sender_through(engine):
    sid = delivery.create_subscription(engine, mf.T1, mf.V1, "daily_venue", ["gm@venue.example"], "daily")
    results, barrier = [], threading.Barrier(4)

    def sender():
        barrier.wait()
        results.append(delivery._claim(engine, sid, "2026-11-05", T0))

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]
    assert [r["status"] for r in _ledger(engine)] == ["sending"]
    assert delivery.stuck_sending(engine, now=T0 + timedelta(hours=2)) == [(sid, "2026-11-05")]


def test_large_report_sends_a_link_instead(engine, marts_url, smtp, env):
    inbox, settings = smtp
    sid = delivery.create_subscription(
        engine,
        mf.T1,
        mf.V2,
        "weekly_executive",
        ["ceo@example.com"],
        "weekly",
        fmt="xlsx",
        local_time="06:00",
        timezone="UTC",
    )
    out = delivery.deliver(
        engine,
        open_warehouse(marts_url),
        sid,
        "2026-W46",
        settings,
        limit_bytes=1000,
        link_base="https://reports.example/files",
    )
    assert out.status == "sent" and not out.attached
    ((_, msg),) = inbox.messages
    assert list(msg.iter_attachments()) == []
    body = msg.get_body().get_content()
    assert "above the 1,000-byte attachment limit" in body and "https://reports.example/files/" in body


def test_monthly_executive_report_compares_calendar_months(engine, marts_url, smtp, env):
    import json

    inbox, settings = smtp
    sid = delivery.create_subscription(
        engine,
        mf.T1,
        mf.V1,
        "weekly_executive",
        ["ceo@example.com"],
        "monthly",
        fmt="json",
        local_time="06:00",
        timezone="Europe/Berlin",
    )
    now = datetime(2026, 12, 1, 5, 30, tzinfo=UTC)  # 06:30 in Berlin on the 1st: November is due
    assert [d.run_key for d in delivery.due_deliveries(engine, now)] == [f"{sid}:2026-11:0"]
    assert (
        delivery.deliver(engine, open_warehouse(marts_url), sid, "2026-11", settings, now=now).status
        == "sent"
    )
    ((_, msg),) = inbox.messages
    (att,) = list(msg.iter_attachments())
    doc = json.loads(att.get_content())
    assert doc["period"] == {"start": "2026-11-01", "end": "2026-11-30"}
    assert doc["metadata"]["previous_period"] == {"start": "2026-10-01", "end": "2026-10-31"}
    totals = doc["sections"][0]["records"]
    assert (
        totals[0]["gross_revenue_cents"]
        == mf.build()["venue_analytics"].filter(mf.pl.col("venue_id") == mf.V1)["gross_revenue_cents"].sum()
    )  # all fixture days are in November
    assert delivery.due_deliveries(engine, now) == []


def test_failed_delivery_is_recorded_and_retried(engine, marts_url, smtp, env):
    inbox, settings = smtp
    wh = open_warehouse(marts_url)
    sid = delivery.create_subscription(
        engine,
        mf.T1,
        mf.V1,
        "daily_venue",
        ["gm@venue.example"],
        "daily",
        fmt="json",
        local_time="07:00",
        timezone="UTC",
    )
    now = datetime(2026, 11, 6, 7, 30, tzinfo=UTC)
    dead = SmtpSettings(host="127.0.0.1", port=_free_port(), timeout_s=2)
    out = delivery.deliver(engine, wh, sid, "2026-11-05", dead, now=now, smtp_retries=0)
    assert out.status == "failed" and out.attempts == 1 and "Connection" in out.error
    (row,) = _ledger(engine)
    assert row["status"] == "failed" and row["last_error"] and row["next_attempt_at"]
    assert delivery.due_deliveries(engine, now + timedelta(minutes=1)) == []  # backing off
    assert delivery.deliver(engine, wh, sid, "2026-11-05", settings, now=now).status == "skipped"
    later = now + timedelta(minutes=6)
    assert [d.run_key for d in delivery.due_deliveries(engine, later)] == [f"{sid}:2026-11-05:1"]
    ok = delivery.deliver(engine, wh, sid, "2026-11-05", settings, now=later)
    assert ok.status == "sent" and ok.attempts == 2
    assert delivery.deliver(engine, wh, sid, "2026-11-05", settings, now=later).status == "skipped"
    assert len(inbox.messages) == 1


def test_delivery_sensor_and_job(sqlite_ops, marts_url, smtp, env, monkeypatch):
    ops_url, engine = sqlite_ops
    inbox, settings = smtp
    monkeypatch.setenv("TT_SMTP_HOST", settings.host)
    monkeypatch.setenv("TT_SMTP_PORT", str(settings.port))
    sid = delivery.create_subscription(
        engine, mf.T1, mf.V1, "daily_venue", ["gm@venue.example"], "daily", local_time="00:00", timezone="UTC"
    )
    ops = OpsResource(url=ops_url)
    defs = _defs(ops_url, marts_url)
    with dg.DagsterInstance.ephemeral() as instance:
        reqs = report_delivery_sensor(dg.build_sensor_context(instance=instance, resources={"ops": ops}))
        period = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
        assert [r.run_key for r in reqs] == [f"{sid}:{period}:0"]
        job = defs.resolve_job_def("report_delivery_job")
        assert job.execute_in_process(run_config=reqs[0].run_config, instance=instance).success
        assert job.execute_in_process(run_config=reqs[0].run_config, instance=instance).success  # skipped
        tick = report_delivery_sensor(dg.build_sensor_context(instance=instance, resources={"ops": ops}))
        assert isinstance(tick, dg.SkipReason)
    assert len(inbox.messages) == 1  # a day with no sales still gets its report (zeros, said so)


# --- on real marts built from the tiny generator --------------------------------------------------------

REAL_FIRST, REAL_LAST = "2026-10-25", "2026-10-31"


@pytest.fixture(scope="module")
def real_marts(materialized):
    """The session's warehouse: tiny data materialized through the real jobs (every check passed)."""
    return materialized.warehouse_url


def test_exports_and_reports_on_real_marts(real_marts, sqlite_ops, env, tmp_path):
    import openpyxl
    import polars as pl
    from pdf_tools import ink_per_page, pdf_text

    _, engine = sqlite_ops
    wh = open_warehouse(real_marts)
    tenant, venue, day = wh.read(
        "SELECT tenant_id, venue_id, day FROM venue_analytics "
        "ORDER BY gross_revenue_cents DESC, venue_id LIMIT 1"
    ).row(0)
    # a financial export through the request lifecycle, read back to the cent
    rid = lifecycle.create_request(
        engine,
        tenant,
        "financial_report",
        "xlsx",
        venue_id=venue,
        filters={"date_from": REAL_FIRST, "date_to": REAL_LAST},
        warehouse=wh,
    )
    row = lifecycle.run_export(engine, wh, rid)
    assert row["status"] == "completed", row["error_message"]
    per_day = list(openpyxl.load_workbook(row["file_path"])["Per day"].iter_rows(values_only=True))
    rc = (
        wh.read_table("revenue_by_channel", "venue_id = %s", [venue])
        .group_by("day")
        .agg(pl.col("gross_revenue_cents", "refunds_cents", "net_revenue_cents").sum())
    )
    want = {r["day"]: r for r in rc.iter_rows(named=True)}
    h = per_day[0]
    assert len(per_day) - 1 == 7  # the filter's seven days
    for r in per_day[1:]:
        mart = want.get(r[0].date(), {"gross_revenue_cents": 0, "refunds_cents": 0, "net_revenue_cents": 0})
        for col, head in (
            ("gross_revenue_cents", "Gross revenue"),
            ("refunds_cents", "Refunds"),
            ("net_revenue_cents", "Net revenue"),
        ):
            assert round(r[h.index(head)] * 100) == mart[col], (r[0], col)
    # the daily venue report of the venue's best day: the venue's real name, key figures equal to the mart
    report_path = render(daily_venue_report(wh, venue, day, tenant), "xlsx", tmp_path / "daily")
    kpi = list(openpyxl.load_workbook(report_path)["Key figures"].iter_rows(values_only=True))
    mart = wh.read_table("venue_analytics", "venue_id = %s AND day = %s", [venue, day]).row(0, named=True)
    got = dict(zip(kpi[0], kpi[1], strict=True))
    assert round(got["Gross revenue"] * 100) == mart["gross_revenue_cents"]
    assert got["Tickets sold"] == mart["tickets_sold"] and got["Orders"] == mart["orders"]
    name = wh.read_table("stg_venues", "id = %s", [venue], ["name"])["name"][0]
    weekly = render(
        executive_report(wh, venue, date(2026, 10, 26), date(2026, 11, 1), tenant), "pdf", tmp_path / "weekly"
    )
    assert all(s > 0.01 for s in ink_per_page(weekly, tmp_path))
    assert name in pdf_text(weekly)


def test_definitions_load_with_the_marts():
    """The report assets depend on the registry's real mart assets, in the one Definitions."""
    from analytics_pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    daily = graph.get(dg.AssetKey("daily_venue_reports"))
    assert {k.to_user_string() for k in daily.parent_keys} == {
        "venue_analytics",
        "venue_analytics_hourly",
        "revenue_by_channel",
        "revenue_by_category",
        "event_analytics",
        "event_performance",
    }
    assert all(graph.get(k).is_materializable for k in daily.parent_keys)  # real assets, not stubs
    for name in (
        "export_job",
        "export_maintenance_job",
        "report_delivery_job",
        "daily_venue_reports_job",
        "weekly_executive_reports_job",
    ):
        assert defs.resolve_job_def(name)
    for key in (dg.AssetKey("daily_venue_reports"), dg.AssetKey("weekly_executive_reports")):
        node = graph.get(key)
        assert (
            node.group_name == "reports"
            and node.owners == ["team:data-platform"]
            and len(node.description) > 40
        )


def test_report_schedules_pick_the_finished_period():
    from analytics_pipelines.schedules.reports import (
        daily_venue_reports_schedule,
        weekly_executive_reports_schedule,
    )

    ctx = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 23, 6, 30, tzinfo=UTC))
    (req,) = [daily_venue_reports_schedule(ctx)]
    assert req.partition_key == "2026-11-22" and req.run_key == "2026-11-22"
    ctx = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 23, 7, 0, tzinfo=UTC))
    req = weekly_executive_reports_schedule(ctx)
    assert req.partition_key == "2026-11-16"
