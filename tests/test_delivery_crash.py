"""Issue 14: delivery cannot lose mail. A real process is SIGKILLed between the SMTP send and the ledger's
record; the sweeper sends the stored message again with the same Message-ID, so the recipient has exactly one
distinct message, and a re-run sends nothing more. On SQLite and PostgreSQL ops stores, with a real SMTP
server (aiosmtpd) counting what arrives; plus concurrent deliverers and sweepers on one row."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import mart_frames as mf
import pytest
import sqlalchemy as sa
from notify_servers import free_port, http_server, smtp_server

from analytics_pipelines import notify, outbox
from analytics_pipelines.alerting import engine as alerts
from analytics_pipelines.alerting.notifier import Notifier
from analytics_pipelines.exports import delivery
from analytics_pipelines.ops.alerts import alert_notifications
from analytics_pipelines.ops.db import as_utc, ops_engine
from analytics_pipelines.ops.deliveries import delivery_ledger
from analytics_pipelines.ops.exports import report_deliveries
from analytics_pipelines.warehouse import open_warehouse

NOW = datetime(2026, 11, 6, 7, 30, tzinfo=UTC)
PERIOD = "2026-11-05"
AFTER_LEASE = NOW + outbox.DEFAULT_LEASE + timedelta(seconds=1)
GM = "gm@venue.example"

#: the delivery, in a child process that SIGKILLs itself right after the SMTP server accepted the message
#: and before the ledger records `sent` (or, with stage=render, while the report is being rendered)
CHILD = """
import os, signal, sys
from datetime import datetime
from analytics_pipelines import outbox
from analytics_pipelines.alerting import engine as alerts
from analytics_pipelines.exports import delivery
from analytics_pipelines.ops.alerts import alert_notifications
from analytics_pipelines.notify import SmtpSettings
from analytics_pipelines.ops.db import as_utc, ops_engine
from analytics_pipelines.warehouse import open_warehouse

ops_url, marts_url, sid, period, port, now, stage = sys.argv[1:]
die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
if stage == "send":
    outbox.AFTER_SEND.append(lambda key, result: result.ok and die())
else:
    delivery.render_subscription = die
delivery.deliver(ops_engine(ops_url), open_warehouse(marts_url), int(sid), period,
                 SmtpSettings(host="127.0.0.1", port=int(port)), now=datetime.fromisoformat(now))
sys.exit("the delivery was not killed")
"""


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("TT_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


#: an alert evaluation in a child process, SIGKILLed right after its first action (the webhook) was accepted
ALERT_CHILD = """
import os, signal, sys
from datetime import datetime
import polars as pl
from analytics_pipelines import outbox
from analytics_pipelines.alerting import Notifier, evaluate
from analytics_pipelines.notify import SmtpSettings
from analytics_pipelines.ops.db import as_utc, ops_engine

ops_url, port, now = sys.argv[1:]
outbox.AFTER_SEND.append(lambda key, result: result.ok and os.kill(os.getpid(), signal.SIGKILL))
now = datetime.fromisoformat(now)
frame = pl.DataFrame({"snapshot_hour": [now.replace(minute=0)], "tenant_id": ["t1"], "venue_id": [None],
                      "metric": ["refund_rate_24h_pct"], "value": [25.0]})
evaluate(ops_engine(ops_url), frame, now, Notifier(smtp=SmtpSettings(host="127.0.0.1", port=int(port))))
sys.exit("the evaluation was not killed")
"""


def _run_killed(*args, child=CHILD):
    proc = subprocess.run(
        [sys.executable, "-c", child, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=180,
        env=os.environ.copy(),
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]


def _ids_for(inbox, recipient) -> list[str]:
    """The Message-IDs of every message the SMTP server accepted for `recipient` (one per arrival)."""
    return [msg["Message-ID"] for rcpts, msg in inbox if recipient in rcpts]


def _rows(engine, table):
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(table)).mappings()]


def _subscription(engine):
    return delivery.create_subscription(
        engine, mf.T1, mf.V1, "daily_venue", [GM], "daily", fmt="json", local_time="07:00", timezone="UTC"
    )


def test_killed_between_send_and_record_the_sweeper_delivers_once(ops_url, marts_url, env):
    engine = ops_engine(ops_url)
    sid = _subscription(engine)
    wh = open_warehouse(marts_url)
    with smtp_server() as (port, inbox):
        settings = notify.SmtpSettings(host="127.0.0.1", port=port)
        transport = outbox.Transport(smtp=settings, sleep=lambda s: None)
        _run_killed(ops_url, marts_url, sid, PERIOD, port, NOW.isoformat(), "send")
        # the message left before the kill; the ledger still says `sending`, Message-ID recorded beforehand
        assert len(_ids_for(inbox, GM)) == 1
        (ledger,) = _rows(engine, delivery_ledger)
        assert ledger["state"] == "sending" and ledger["attempts"] == 1 and ledger["message"]
        assert (
            ledger["message_id"] == f"<{ledger['idem_key']}@tickettoken-analytics>" == _ids_for(inbox, GM)[0]
        )
        assert [r["status"] for r in _rows(engine, report_deliveries)] == ["sending"]

        # a re-run, and a sweep within the lease, leave the live-looking claim alone
        later = NOW + timedelta(minutes=1)
        assert delivery.deliver(engine, wh, sid, PERIOD, settings, now=later).status == "skipped"
        assert delivery.due_deliveries(engine, later) == []
        assert outbox.sweep_deliveries(engine, later, transport).as_dict() == {
            "resent": 0,
            "failed": 0,
            "reports_reset": 0,
        }
        assert len(_ids_for(inbox, GM)) == 1

        # after the lease: sent again, byte for byte, with the same Message-ID (at least once)
        swept = outbox.sweep_deliveries(engine, AFTER_LEASE, transport)
        assert swept.resent == [ledger["idem_key"]]
        ids = _ids_for(inbox, GM)
        assert len(set(ids)) == 1 and ids[0] == ledger["message_id"]  # one distinct message for the recipient
        first, again = (msg for rcpts, msg in inbox if GM in rcpts)
        parts = [
            [(p.get_content_type(), p.get_payload(decode=True)) for p in m.walk()] for m in (first, again)
        ]
        assert parts[0] == parts[1] and first["Subject"] == again["Subject"] and len(parts[0]) == 3
        (ledger,) = _rows(engine, delivery_ledger)
        assert (ledger["state"], ledger["attempts"], ledger["message"]) == ("sent", 2, None)
        (report,) = _rows(engine, report_deliveries)
        assert report["status"] == "sent" and report["message_id"] == ledger["message_id"]

        # nothing sends it again: a re-run, another tick, another sweep
        count = len(inbox)
        assert delivery.deliver(engine, wh, sid, PERIOD, settings, now=AFTER_LEASE).status == "skipped"
        assert delivery.due_deliveries(engine, AFTER_LEASE + timedelta(hours=1)) == []
        assert outbox.sweep_deliveries(engine, AFTER_LEASE + timedelta(days=1), transport).resent == []
        assert len(inbox) == count and len(set(_ids_for(inbox, GM))) == 1


def test_killed_while_rendering_the_claim_is_handed_back_and_delivered(ops_url, marts_url, env):
    engine = ops_engine(ops_url)
    sid = _subscription(engine)
    with smtp_server() as (port, inbox):
        settings = notify.SmtpSettings(host="127.0.0.1", port=port)
        _run_killed(ops_url, marts_url, sid, PERIOD, port, NOW.isoformat(), "render")
        assert inbox == [] and _rows(engine, delivery_ledger) == []
        assert [r["status"] for r in _rows(engine, report_deliveries)] == ["sending"]
        swept = outbox.sweep_deliveries(engine, AFTER_LEASE, outbox.Transport(smtp=settings))
        assert swept.reports_reset == [(sid, PERIOD)] and swept.resent == []
        due = delivery.due_deliveries(engine, AFTER_LEASE)
        assert [(d.subscription_id, d.period) for d in due] == [(sid, PERIOD)]
        out = delivery.deliver(engine, open_warehouse(marts_url), sid, PERIOD, settings, now=AFTER_LEASE)
        assert out.status == "sent" and out.attempts == 2
        assert len(_ids_for(inbox, GM)) == 1


def test_alert_killed_after_its_webhook_is_swept_once_per_key(ops_url):
    """A webhook accepted, then the kill: the e-mail action was queued (pending) with the instance but never
    sent. The sweeper re-POSTs the webhook with the same Idempotency-Key and sends the e-mail once."""
    engine = ops_engine(ops_url)
    with http_server([]) as (url, received), smtp_server() as (port, inbox):
        alerts.create_rule(
            engine,
            dict(
                name="refunds",
                metric="refund_rate_24h_pct",
                operator="gt",
                threshold=10,
                actions=[{"type": "webhook", "url": url}, {"type": "email", "to": [GM]}],
            ),
        )
        _run_killed(ops_url, port, NOW.isoformat(), child=ALERT_CHILD)
        assert len(received) == 1 and inbox == []
        states = {r["channel"]: r["state"] for r in _rows(engine, delivery_ledger)}
        assert states == {"webhook": "sending", "email": "pending"}
        assert _rows(engine, alert_notifications) == []

        notifier = Notifier(smtp=notify.SmtpSettings(host="127.0.0.1", port=port), sleep=lambda s: None)
        swept = outbox.sweep_deliveries(engine, AFTER_LEASE, notifier.transport())
        assert len(swept.resent) == 2 and swept.failed == []
        keys = [r["headers"]["Idempotency-Key"] for r in received]
        assert len(received) == 2 and len(set(keys)) == 1 and received[0]["body"] == received[1]["body"]
        assert len(_ids_for(inbox, GM)) == 1
        notes = _rows(engine, alert_notifications)
        assert sorted((n["channel"], n["status"]) for n in notes) == [("email", "sent"), ("webhook", "sent")]

        # the instance is open: evaluating again sends nothing; neither does another sweep
        frame = alerts.pl.DataFrame(
            {
                "snapshot_hour": [NOW.replace(minute=0)],
                "tenant_id": ["t1"],
                "venue_id": [None],
                "metric": ["refund_rate_24h_pct"],
                "value": [30.0],
            }
        )
        assert alerts.evaluate(engine, frame, AFTER_LEASE, notifier).still_open == [("refunds", "tenant:t1")]
        assert (
            outbox.sweep_deliveries(engine, AFTER_LEASE + timedelta(days=1), notifier.transport()).resent
            == []
        )
        assert len(received) == 2 and len(inbox) == 1


def test_a_failed_alert_email_is_retried_by_the_sweeper_with_its_message_id(ops_url):
    engine = ops_engine(ops_url)
    alerts.create_rule(
        engine,
        dict(
            name="refunds",
            metric="refund_rate_24h_pct",
            operator="gt",
            threshold=10,
            actions=[{"type": "email", "to": [GM]}],
        ),
    )
    frame = alerts.pl.DataFrame(
        {
            "snapshot_hour": [NOW.replace(minute=0)],
            "tenant_id": ["t1"],
            "venue_id": [None],
            "metric": ["refund_rate_24h_pct"],
            "value": [30.0],
        }
    )
    with smtp_server() as (port, inbox):
        down = notify.SmtpSettings(host="127.0.0.1", port=free_port(), timeout_s=2)
        (note,) = alerts.evaluate(engine, frame, NOW, Notifier(smtp=down, sleep=lambda s: None)).notifications
        assert note["status"] == "failed"
        (row,) = _rows(engine, delivery_ledger)
        assert row["state"] == "failed" and as_utc(row["next_attempt_at"]) == NOW + timedelta(minutes=5)
        up = Notifier(smtp=notify.SmtpSettings(host="127.0.0.1", port=port)).transport()
        assert outbox.sweep_deliveries(engine, NOW + timedelta(minutes=4), up).resent == []  # backing off
        assert outbox.sweep_deliveries(engine, NOW + timedelta(minutes=5), up).resent == [row["idem_key"]]
        assert _ids_for(inbox, GM) == [row["message_id"]]
        assert [n["status"] for n in _rows(engine, alert_notifications)] == ["failed", "sent"]
        assert outbox.sweep_deliveries(engine, NOW + timedelta(days=1), up).resent == []


def _race(n, fn):
    barrier, results = threading.Barrier(n), []

    def run():
        barrier.wait()
        results.append(fn())

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_deliverers_and_sweepers_send_a_row_once(ops_url):
    engine = ops_engine(ops_url)
    with smtp_server() as (port, inbox):
        settings = notify.SmtpSettings(host="127.0.0.1", port=port)
        transport = outbox.Transport(smtp=settings, sleep=lambda s: None)
        with engine.begin() as conn:
            key = outbox.enqueue_email(
                conn,
                source="test",
                source_ref="race:1",
                settings=settings,
                to=[GM],
                subject="once",
                body="one pending row",
                now=NOW,
            )
            # enqueueing the same delivery again is the same row
            assert (
                outbox.enqueue_email(
                    conn,
                    source="test",
                    source_ref="race:1",
                    settings=settings,
                    to=[GM],
                    subject="once",
                    body="one pending row",
                    now=NOW,
                )
                == key
            )
        results = _race(4, lambda: outbox.dispatch(engine, key, transport, NOW))
        assert sum(r is not None for r in results) == 1 and len(inbox) == 1
        assert outbox.state_of(engine, key)["state"] == "sent"
        assert outbox.dispatch(engine, key, transport, AFTER_LEASE, retry_failed=True) is None

        # a claim whose holder died: of four sweepers, one re-sends it
        with engine.begin() as conn:
            key2 = outbox.enqueue_email(
                conn,
                source="test",
                source_ref="race:2",
                settings=settings,
                to=[GM],
                subject="twice?",
                body="a dead sender's row",
                now=NOW,
            )
        assert outbox.claim(engine, key2, NOW) is not None  # ... and the claimer never comes back
        swept = _race(4, lambda: outbox.sweep_deliveries(engine, AFTER_LEASE, transport).resent)
        assert sorted(swept) == [[], [], [], [key2]]
        assert len(inbox) == 2 and len(set(_ids_for(inbox, GM))) == 2
        assert outbox.state_of(engine, key2)["state"] == "sent"
