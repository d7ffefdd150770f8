"""Report schedules (issue 20): the pure next-run/due computation (DST in Europe/Berlin, monthly day 31, end
date, once, pause/resume), the additive migration of existing ops databases, and a schedule created through
the API delivered by the real Dagster sensor and job at its time (frozen clock) to a local SMTP server;
pause stops it, resume restarts it. SQLite and PostgreSQL ops stores."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import UTC, date, datetime

import dagster as dg
import mart_frames as mf
import pytest
import sqlalchemy as sa
from api_helpers import SECRET
from fastapi.testclient import TestClient
from notify_servers import smtp_server

from analytics_pipelines.api import Settings, create_app, report_routes
from analytics_pipelines.api.auth import mint_token
from analytics_pipelines.exports import delivery
from analytics_pipelines.exports.schedules import (
    Schedule,
    ScheduleError,
    latest_due,
    next_run,
    period_bounds,
    period_label,
    validate,
)
from analytics_pipelines.jobs.reports import report_delivery_job
from analytics_pipelines.ops.db import ops_engine
from analytics_pipelines.ops.exports import analytics_exports, report_subscriptions
from analytics_pipelines.resources import OpsResource, WarehouseResource
from analytics_pipelines.sensors.reports import report_delivery_sensor
from analytics_pipelines.warehouse import open_warehouse
from analytics_pipelines.warehouse.readers import open_reader

BERLIN = "Europe/Berlin"


def utc(*a) -> datetime:
    return datetime(*a, tzinfo=UTC)


# --- the pure computation ---------------------------------------------------------------------------------


def test_daily_across_the_dst_changes_in_berlin():
    s = Schedule("daily", "07:00", BERLIN)
    # spring forward (29 March 2026): 07:00 is 06:00 UTC before, 05:00 UTC after
    assert next_run(s, utc(2026, 3, 28, 6, 0)) == utc(2026, 3, 29, 5, 0)
    assert next_run(s, utc(2026, 3, 27, 12, 0)) == utc(2026, 3, 28, 6, 0)
    # fall back (25 October 2026): 05:00 UTC before, 06:00 UTC after
    assert next_run(s, utc(2026, 10, 24, 5, 0)) == utc(2026, 10, 25, 6, 0)
    # a time that does not exist that day (02:30 on 29 March) is sent at 03:30 summer time (01:30 UTC);
    # one that exists twice (02:30 on 25 October) at its first occurrence (summer time, 00:30 UTC)
    gap = Schedule("daily", "02:30", BERLIN)
    assert next_run(gap, utc(2026, 3, 28, 12, 0)) == utc(2026, 3, 29, 1, 30)
    assert next_run(gap, utc(2026, 10, 24, 12, 0)) == utc(2026, 10, 25, 0, 30)
    assert next_run(gap, utc(2026, 10, 25, 0, 30)) == utc(2026, 10, 26, 1, 30)  # once, not twice that night
    # the due side agrees: at 05:00 UTC on 29 March the report of the 28th is due, not before
    assert latest_due(s, utc(2026, 3, 29, 4, 59)) == (date(2026, 3, 28), utc(2026, 3, 28, 6, 0))
    assert latest_due(s, utc(2026, 3, 29, 5, 0)) == (date(2026, 3, 29), utc(2026, 3, 29, 5, 0))


def test_monthly_day_31_is_the_last_day_of_short_months():
    s = Schedule("monthly", "09:00", "UTC", day_of_month=31)
    runs, now = [], utc(2027, 12, 31, 10, 0)
    for _ in range(4):
        now = next_run(s, now)
        runs.append(now.date())
    assert runs == [date(2028, 1, 31), date(2028, 2, 29), date(2028, 3, 31), date(2028, 4, 30)]  # leap year
    assert next_run(s, utc(2026, 2, 1)) == utc(2026, 2, 28, 9, 0)
    # the 30th stays the 30th in long months and is the 28th in February
    s30 = Schedule("monthly", "09:00", "UTC", day_of_month=30)
    assert next_run(s30, utc(2026, 1, 30, 9, 0)) == utc(2026, 2, 28, 9, 0)
    assert next_run(s30, utc(2026, 2, 28, 9, 0)) == utc(2026, 3, 30, 9, 0)
    # what it delivers: the last complete calendar month
    assert period_label("monthly", date(2026, 2, 28)) == "2026-01"
    assert period_bounds("weekly_executive", "2026-01") == (date(2026, 1, 1), date(2026, 1, 31))


def test_weekly_day_of_week_end_date_and_once():
    fri = Schedule("weekly", "08:30", BERLIN, day_of_week=4)
    assert next_run(fri, utc(2026, 11, 5, 10, 0)) == utc(2026, 11, 6, 7, 30)  # Friday, CET
    assert period_label("weekly", date(2026, 11, 6)) == "2026-W44"  # the last complete ISO week
    assert period_bounds("analytics_report", "2026-W44") == (date(2026, 10, 26), date(2026, 11, 1))
    # end date: the last local date with a delivery, inclusive
    ending = Schedule("daily", "07:00", BERLIN, end_date=date(2026, 11, 10))
    assert next_run(ending, utc(2026, 11, 9, 7, 0)) == utc(2026, 11, 10, 6, 0)
    assert next_run(ending, utc(2026, 11, 10, 6, 0)) is None
    assert latest_due(ending, utc(2026, 11, 20)) == (date(2026, 11, 10), utc(2026, 11, 10, 6, 0))
    # once
    once = Schedule("once", "09:15", BERLIN, run_date=date(2026, 11, 20))
    assert next_run(once, utc(2026, 11, 1)) == utc(2026, 11, 20, 8, 15)
    assert next_run(once, utc(2026, 11, 20, 8, 15)) is None
    assert latest_due(once, utc(2026, 11, 20, 8, 14)) is None
    assert latest_due(once, utc(2026, 11, 21)) == (date(2026, 11, 20), utc(2026, 11, 20, 8, 15))
    assert period_label("once", date(2026, 11, 20)) == "once-2026-11-20"
    assert period_bounds("daily_venue", "once-2026-11-20") == (date(2026, 11, 19), date(2026, 11, 19))
    f = {"date_from": "2026-11-02", "date_to": "2026-11-04"}
    assert period_bounds("financial_report", "once-2026-11-20", f) == (date(2026, 11, 2), date(2026, 11, 4))
    # paused: no next run; active_from (creation, resume): an earlier occurrence is not due
    assert next_run(fri, utc(2026, 11, 5), enabled=False) is None
    fresh = Schedule("daily", "07:00", "UTC", active_from=utc(2026, 11, 5, 7, 0, 30))
    assert latest_due(fresh, utc(2026, 11, 5, 8)) is None
    assert next_run(fresh, utc(2026, 11, 5, 8)) == utc(2026, 11, 6, 7, 0)
    assert latest_due(fresh, utc(2026, 11, 6, 7)) == (date(2026, 11, 6), utc(2026, 11, 6, 7))


@pytest.mark.parametrize(
    "schedule, field",
    [
        (Schedule("daily", "24:30"), "local_time"),
        (Schedule("daily", "7:00"), "local_time"),
        (Schedule("daily", "07:00", "Mars/Olympus_Mons"), "timezone"),
        (Schedule("daily", "07:00", "Europe"), "timezone"),
        (Schedule("once", "07:00"), "run_date"),
        (Schedule("once", "07:00", run_date=date(2026, 11, 1)), "run_date"),  # in the past
        (Schedule("daily", "07:00", day_of_week=1), "day_of_week"),
        (Schedule("weekly", "07:00", day_of_week=7), "day_of_week"),
        (Schedule("monthly", "07:00", day_of_month=32), "day_of_month"),
        (Schedule("daily", "07:00", end_date=date(2026, 11, 4)), "end_date"),
        (Schedule("hourly", "07:00"), "frequency"),
    ],
)
def test_impossible_schedules_name_the_field(schedule, field):
    with pytest.raises(ScheduleError) as e:
        validate(schedule, utc(2026, 11, 5, 10))
    assert e.value.field == field


# --- the ops store: new columns on existing databases, due deliveries -------------------------------------

NEW_SUB_COLUMNS = {
    "run_date",
    "day_of_week",
    "day_of_month",
    "end_date",
    "active_from",
    "filters",
    "options",
    "updated_at",
}


def test_existing_databases_get_the_new_columns(ops_url):
    """A database created before issue 20 (tables without the new columns) is migrated by ops_engine();
    twice is a no-op; its first-version subscription keeps being delivered as before."""
    old = sa.MetaData()
    for table, new in ((report_subscriptions, NEW_SUB_COLUMNS), (analytics_exports, {"retries"})):
        sa.Table(table.name, old, *[c._copy() for c in table.columns if c.name not in new])
    kw = {"connect_args": {"options": "-c search_path=ops,public"}} if ops_url.startswith("postgres") else {}
    url = ops_url.replace("postgresql://", "postgresql+psycopg://")
    raw = sa.create_engine(url, **kw)
    with raw.begin() as conn:
        if raw.dialect.name == "postgresql":
            conn.execute(sa.text("CREATE SCHEMA IF NOT EXISTS ops"))
        old.create_all(conn)
        conn.execute(
            sa.text(
                "INSERT INTO report_subscriptions (tenant_id, venue_id, report, format, recipients, cadence, "
                "local_time, timezone, enabled, created_at) VALUES (:t, :v, 'daily_venue', 'pdf', '[\"a@b.co\"]',"
                " 'daily', '07:00', 'UTC', true, :now)"
            ),
            {"t": mf.T1, "v": mf.V1, "now": utc(2026, 11, 1)},
        )
    raw.dispose()
    ops_engine.cache_clear()
    engine = ops_engine(ops_url)
    cols = {c["name"] for c in sa.inspect(engine).get_columns("report_subscriptions")}
    assert NEW_SUB_COLUMNS <= cols
    assert "retries" in {c["name"] for c in sa.inspect(engine).get_columns("analytics_exports")}
    ops_engine.cache_clear()
    engine = ops_engine(ops_url)  # idempotent
    due = delivery.due_deliveries(engine, utc(2026, 11, 6, 7, 5))
    assert [d.period for d in due] == ["2026-11-05"]  # the first version's catch-up, unchanged
    ops_engine.cache_clear()


def test_due_deliveries_follow_frequency_end_date_and_pause(ops_url):
    engine = ops_engine(ops_url)
    created = utc(2026, 11, 5, 10)
    common = dict(tenant_id=mf.T1, venue_id=mf.V1, recipients=["gm@venue.example"], now=created)
    weekly = delivery.create_subscription(
        engine,
        report="weekly_executive",
        cadence="weekly",
        local_time="08:30",
        timezone=BERLIN,
        day_of_week=4,
        active_from=created,
        **common,
    )
    ending = delivery.create_subscription(
        engine,
        report="daily_venue",
        cadence="daily",
        end_date=date(2026, 11, 6),
        active_from=created,
        **common,
    )
    once = delivery.create_subscription(
        engine,
        report="financial_report",
        cadence="once",
        local_time="09:00",
        run_date=date(2026, 11, 7),
        filters={"date_from": "2026-11-02", "date_to": "2026-11-04"},
        active_from=created,
        **common,
    )

    def due(now):
        return sorted((d.subscription_id, d.period) for d in delivery.due_deliveries(engine, now))

    assert due(utc(2026, 11, 5, 12)) == []  # nothing before its creation
    assert due(utc(2026, 11, 6, 7, 30)) == sorted([(ending, "2026-11-05"), (weekly, "2026-W44")])
    assert due(utc(2026, 11, 7, 9)) == sorted(
        [(ending, "2026-11-05"), (weekly, "2026-W44"), (once, "once-2026-11-07")]
    )
    # after its end date the last occurrence stays the 6th's (period 2026-11-05), nothing later
    assert (ending, "2026-11-06") not in due(utc(2026, 11, 9, 9))
    with engine.begin() as conn:
        conn.execute(
            report_subscriptions.update().where(report_subscriptions.c.id == weekly).values(enabled=False)
        )
    assert weekly not in {s for s, _ in due(utc(2026, 11, 13, 8))}


# --- through the API and the real sensor and job, frozen clock --------------------------------------------


def _csv_days(data: bytes) -> set[str]:
    return {row["day"] for row in csv.DictReader(io.StringIO(data.decode()))}


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def frozen(monkeypatch):
    clock = Clock(utc(2026, 11, 5, 10))
    monkeypatch.setattr(report_routes, "_now", clock)  # the API's clock
    monkeypatch.setattr(delivery, "utcnow", clock)  # the sensor's and the delivery's
    return clock


def test_a_schedule_created_through_the_api_is_delivered_paused_and_resumed(
    ops_url, marts_url, tmp_path, monkeypatch, frozen
):
    monkeypatch.setenv("TT_DATA_DIR", str(tmp_path / "data"))
    settings = Settings(warehouse_url=marts_url, jwt_secret=SECRET, ops_url=ops_url)
    reader = open_reader(marts_url, refresh_seconds=3600)
    client = TestClient(create_app(settings, reader=reader))
    token = mint_token(
        settings, tenant_id=mf.T1, venue_id=mf.V1, permissions=["analytics.read", "analytics.export"]
    )
    h = {"Authorization": f"Bearer {token}"}
    ops = OpsResource(url=ops_url)
    resources = {"ops": ops, "warehouse": WarehouseResource(url=marts_url)}
    engine = ops_engine(ops_url)
    with smtp_server() as (port, inbox), dg.DagsterInstance.ephemeral() as instance:
        monkeypatch.setenv("TT_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("TT_SMTP_PORT", str(port))

        def tick(at: datetime) -> list[str]:
            """The sensor at `at`; every run it asks for executed; the periods it asked for."""
            frozen.now = at
            result = report_delivery_sensor(
                dg.build_sensor_context(instance=instance, resources={"ops": ops})
            )
            if isinstance(result, dg.SkipReason):
                return []
            for req in result:
                run = report_delivery_job.execute_in_process(
                    run_config=req.run_config, instance=instance, resources=resources
                )
                assert run.success
            return [r.tags["period"] for r in result]

        body = {
            "report": "daily_venue",
            "format": "pdf",
            "recipients": ["gm@venue.example"],
            "frequency": "daily",
            "local_time": "07:00",
            "timezone": BERLIN,
        }
        r = client.post("/v1/reports/schedules", json=body, headers=h)
        assert r.status_code == 201, r.text
        sched = r.json()["data"]
        assert sched["next_run_at"] == "2026-11-06T06:00:00Z" and sched["status"] == "active"
        assert sched["venue_id"] == mf.V1
        once = client.post(
            "/v1/reports/schedules",
            json={
                "report": "financial_report",
                "format": "csv",
                "recipients": ["cfo@venue.example"],
                "frequency": "once",
                "local_time": "09:00",
                "timezone": BERLIN,
                "run_date": "2026-11-06",
                "filters": {"date_from": "2026-11-02", "date_to": "2026-11-04"},
            },
            headers=h,
        )
        assert once.status_code == 201, once.text
        assert once.json()["data"]["next_run_at"] == "2026-11-06T08:00:00Z"

        assert tick(utc(2026, 11, 5, 10, 5)) == []  # created after today's 07:00: nothing due yet
        assert tick(utc(2026, 11, 6, 5, 59)) == []
        assert tick(utc(2026, 11, 6, 6, 0)) == ["2026-11-05"]
        assert len(inbox) == 1
        rcpts, msg = inbox[0]
        assert rcpts == ["gm@venue.example"] and "2026-11-05" in msg["Subject"]
        assert tick(utc(2026, 11, 6, 6, 5)) == []  # sent once
        # the once schedule: its filters' date range, as CSV, at 09:00 Berlin
        assert tick(utc(2026, 11, 6, 8, 0)) == ["once-2026-11-06"]
        rcpts, msg = inbox[1]
        assert rcpts == ["cfo@venue.example"] and "Financial report" in msg["Subject"]
        (att,) = [p for p in msg.walk() if p.get_filename()]
        with zipfile.ZipFile(io.BytesIO(att.get_payload(decode=True))) as z:  # one CSV per section
            (per_day,) = [n for n in z.namelist() if n.endswith("per_day.csv")]
            assert _csv_days(z.read(per_day)) == {"2026-11-02", "2026-11-03", "2026-11-04"}
        got = client.get(f"/v1/reports/schedules/{once.json()['data']['id']}", headers=h).json()["data"]
        assert got["status"] == "finished" and got["next_run_at"] is None

        # pause: the 7th's 07:00 passes without a message
        frozen.now = utc(2026, 11, 6, 12)
        url = f"/v1/reports/schedules/{sched['id']}"
        p = client.post(url + "/pause", headers=h).json()["data"]
        assert p["status"] == "paused" and p["next_run_at"] is None
        assert tick(utc(2026, 11, 7, 6, 5)) == []
        assert len(inbox) == 2
        # resume after that occurrence: it is skipped, the next one is sent
        frozen.now = utc(2026, 11, 7, 7)
        r = client.post(url + "/resume", headers=h).json()["data"]
        assert r["status"] == "active" and r["next_run_at"] == "2026-11-08T06:00:00Z"
        assert tick(utc(2026, 11, 7, 7, 5)) == []
        assert tick(utc(2026, 11, 8, 6, 1)) == ["2026-11-07"]
        assert len(inbox) == 3 and "2026-11-07" in inbox[2][1]["Subject"]
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT period, status FROM report_deliveries ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [
        ("2026-11-05", "sent"),
        ("once-2026-11-06", "sent"),
        ("2026-11-07", "sent"),
    ]
    reader.close()


def test_export_type_schedule_renders_its_period_with_its_filters(ops_url, marts_url, tmp_path, monkeypatch):
    """An export-type subscription delivers the export over its period (here a weekly financial report
    for venue 1 on Fridays: the last ISO week), with the filters applied."""
    monkeypatch.setenv("TT_DATA_DIR", str(tmp_path / "data"))
    engine = ops_engine(ops_url)
    sid = delivery.create_subscription(
        engine,
        mf.T1,
        mf.V1,
        "financial_report",
        ["cfo@venue.example"],
        "weekly",
        fmt="json",
        day_of_week=4,
        timezone=BERLIN,
        now=utc(2026, 11, 1),
    )
    with engine.connect() as conn:
        sub = (
            conn.execute(sa.select(report_subscriptions).where(report_subscriptions.c.id == sid))
            .mappings()
            .one()
        )
    path = delivery.render_subscription(open_warehouse(marts_url), sub, "2026-W46", tmp_path / "out")
    doc = json.loads(path.read_bytes())
    assert doc["period"] == {"start": "2026-11-09", "end": "2026-11-15"}
    days = {r["day"] for r in doc["sections"][2 - 1]["records"]}  # "Per day"
    assert days == {f"2026-11-{d:02d}" for d in range(9, 16)}
    assert doc["metadata"]["filters"]["venue_ids"] == [mf.V1]
