"""Alert rules and instances: every operator and aggregation, schedules in local time, the engine on SQLite
and PostgreSQL ops databases (one instance per trigger, acknowledged alerts stay quiet, resolution,
cooldowns across restarts, racing evaluators), email through a real SMTP server and webhooks through real
HTTP servers."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
import sqlalchemy as sa
from notify_servers import http_server, smtp_server

from analytics_pipelines import notify
from analytics_pipelines.alerting import engine as E
from analytics_pipelines.alerting import notifier as N
from analytics_pipelines.alerting import rules as R
from analytics_pipelines.ops.alerts import alert_instances, alert_notifications, alert_rules
from analytics_pipelines.ops.db import as_utc, ops_engine

T1 = "11111111-1111-1111-1111-111111111111"
T2 = "22222222-2222-2222-2222-222222222222"
V = [f"aaaaaaaa-0000-0000-0000-00000000000{i}" for i in range(3)]
NOW = datetime(2026, 11, 20, 12, 5, tzinfo=UTC)
HOUR = datetime(2026, 11, 20, 12, tzinfo=UTC)


def kpis(
    values: dict[tuple[str, str | None], list[float]],
    metric: str = "refund_rate_24h_pct",
    last_hour: datetime = HOUR,
) -> pl.DataFrame:
    """kpi_snapshots rows: per (tenant, venue) a list of hourly values ending at `last_hour`."""
    rows = []
    for (tenant, venue), series in values.items():
        for i, v in enumerate(series):
            rows.append(
                {
                    "snapshot_hour": last_hour - timedelta(hours=len(series) - 1 - i),
                    "tenant_id": tenant,
                    "venue_id": venue,
                    "metric": metric,
                    "value": v,
                }
            )
    return pl.DataFrame(
        rows,
        schema={
            "snapshot_hour": pl.Datetime("us", "UTC"),
            "tenant_id": pl.String,
            "venue_id": pl.String,
            "metric": pl.String,
            "value": pl.Float64,
        },
    )


def rule(**kw) -> dict:
    base = dict(name="r", metric="refund_rate_24h_pct", operator="gt", threshold=10.0)
    return R.validate_rule({**base, **kw})


# -- pure: operators, aggregations, schedule, validation ----------------------------------------------------


@pytest.mark.parametrize(
    "op,threshold,high,value,expected",
    [
        ("gt", 10, None, 10.5, True),
        ("gt", 10, None, 10, False),
        ("gte", 10, None, 10, True),
        ("gte", 10, None, 9.99, False),
        ("lt", 10, None, 9, True),
        ("lt", 10, None, 10, False),
        ("lte", 10, None, 10, True),
        ("lte", 10, None, 10.01, False),
        ("eq", 10, None, 10.0, True),
        ("eq", 10, None, 10.1, False),
        ("ne", 10, None, 10.1, True),
        ("ne", 10, None, 10.0, False),
        ("between", 5, 10, 5, True),
        ("between", 5, 10, 10, True),
        ("between", 5, 10, 10.5, False),
        ("between", 5, 10, 4.9, False),
        ("not_between", 5, 10, 4.9, True),
        ("not_between", 5, 10, 10.5, True),
        ("not_between", 5, 10, 7, False),
        ("change_percent", 20, None, 25.0, True),
        ("change_percent", 20, None, 19.0, False),
        ("change_percent", -50, None, -60.0, True),
        ("change_percent", -50, None, -40.0, False),
        ("greater_than", 10, None, 11, True),
        ("not_equals", 10, None, 10, False),
    ],
)
def test_every_operator(op, threshold, high, value, expected):
    r = rule(operator=op, threshold=threshold, threshold_high=high)
    assert R.condition_met(r, value) is expected
    assert R.condition_met(r, None) is None


def test_aggregation_windows_and_scopes():
    frame = kpis({(T1, None): [1, 2, 3, 4, 8], (T1, V[0]): [100, 5, 6, 7, 9], (T2, None): [50]})
    expect = {"last": 8, "sum": 15, "avg": 5, "min": 3, "max": 8, "count": 3}
    for agg, want in expect.items():
        vals = R.scope_values(rule(aggregation=agg, window_minutes=180), frame, NOW)
        got = dict(zip(vals["scope_key"], vals["value"], strict=True))
        assert got[f"tenant:{T1}"] == want, agg
        assert got[f"tenant:{T2}"] == (1 if agg == "count" else 50), agg
        assert f"venue:{V[0]}" not in got  # tenant scope reads the tenant-wide rows only
    venue = R.scope_values(rule(scope="venue", aggregation="max", window_minutes=120), frame, NOW)
    assert venue.select("scope_key", "value").rows() == [(f"venue:{V[0]}", 9.0)]
    # the window ends at the newest snapshot <= now: a snapshot after `now` is ignored
    early = R.scope_values(rule(aggregation="last"), frame, HOUR - timedelta(minutes=30))
    assert dict(zip(early["scope_key"], early["value"], strict=True))[f"tenant:{T1}"] == 4
    # rule restricted to one tenant
    only = R.scope_values(rule(tenant_id=T2), frame, NOW)
    assert only["scope_key"].to_list() == [f"tenant:{T2}"]


def test_change_percent_against_the_previous_window():
    frame = kpis({(T1, None): [100, 100, 40, 20], (T2, None): [0, 0, 5, 5], (T1, V[1]): [7]})
    r = rule(operator="change_percent", threshold=-50, aggregation="sum", window_minutes=120)
    vals = R.scope_values(r, frame, NOW)
    got = {k: (v, p, o) for k, v, p, o in vals.select("scope_key", "value", "previous", "observed").rows()}
    assert got[f"tenant:{T1}"] == (60.0, 200.0, -70.0)
    assert got[f"tenant:{T2}"][2] is None  # change from zero is undefined, not infinite
    assert R.condition_met(r, got[f"tenant:{T1}"][2]) is True
    assert R.condition_met(r, got[f"tenant:{T2}"][2]) is None


def test_schedule_in_local_time():
    berlin = R.validate_schedule(
        {"timezone": "Europe/Berlin", "active_hours": {"start": "09:00", "end": "17:00"}}
    )
    # 08:30 UTC is 09:30 in Berlin (winter, UTC+1): active, although 08:30 is outside 09-17 in UTC
    assert R.schedule_active(berlin, datetime(2026, 11, 20, 8, 30, tzinfo=UTC))
    assert not R.schedule_active(berlin, datetime(2026, 11, 20, 7, 30, tzinfo=UTC))  # 08:30 local
    assert not R.schedule_active(
        berlin, datetime(2026, 11, 20, 16, 0, tzinfo=UTC)
    )  # 17:00 local, end exclusive
    # summer time: 07:30 UTC is 09:30 CEST
    assert R.schedule_active(berlin, datetime(2026, 7, 1, 7, 30, tzinfo=UTC))
    # active days 1..5 (Mon..Fri, 0 = Sunday): Saturday 2026-11-21 is off; Friday 23:30 UTC is Saturday in Tokyo
    weekdays = R.validate_schedule({"timezone": "Asia/Tokyo", "active_days": [1, 2, 3, 4, 5]})
    assert R.schedule_active(weekdays, datetime(2026, 11, 20, 10, tzinfo=UTC))
    assert not R.schedule_active(weekdays, datetime(2026, 11, 20, 23, 30, tzinfo=UTC))
    # excluded dates are local dates: 2026-12-24 23:30 UTC is already Christmas Day in Berlin
    xmas = R.validate_schedule({"timezone": "Europe/Berlin", "excluded_dates": ["2026-12-25"]})
    assert not R.schedule_active(xmas, datetime(2026, 12, 24, 23, 30, tzinfo=UTC))
    assert R.schedule_active(xmas, datetime(2026, 12, 24, 22, 30, tzinfo=UTC))
    # a window across midnight belongs to the day it starts: Friday 22:00 - Saturday 06:00 (New York)
    night = R.validate_schedule(
        {"timezone": "America/New_York", "active_hours": ["22:00", "06:00"], "active_days": [5]}
    )
    assert R.schedule_active(night, datetime(2026, 11, 21, 8, tzinfo=UTC))  # Sat 03:00 local
    assert not R.schedule_active(night, datetime(2026, 11, 22, 8, tzinfo=UTC))  # Sun 03:00 local
    assert not R.schedule_active(night, datetime(2026, 11, 20, 17, tzinfo=UTC))  # Fri 12:00 local
    assert R.schedule_active(R.validate_schedule({}), NOW)


@pytest.mark.parametrize(
    "bad,message",
    [
        ({"operator": "above"}, "unknown operator 'above'"),
        ({"metric": "cpu_usage"}, "unknown metric 'cpu_usage'"),
        ({"aggregation": "median"}, "unknown aggregation 'median'"),
        ({"operator": "between"}, "threshold_high: required for operator between"),
        ({"operator": "not_between", "threshold_high": 1}, "threshold_high: must be greater than threshold"),
        ({"operator": "between", "threshold_high": 10}, "threshold_high: must be greater than threshold"),
        ({"schedule": {"timezone": "posixrules"}}, "unknown IANA time zone 'posixrules'"),
        ({"schedule": {"timezone": "Europe/Berlin "}}, "unknown IANA time zone"),
        ({"schedule": {"active_hours": {"start": "25:00", "end": "17:00"}}}, "active_hours"),
        ({"schedule": {"active_hours": {"start": "09:00", "end": "09:60"}}}, "active_hours"),
        ({"schedule": {"excluded_dates": ["2026-02-31"]}}, "excluded_dates"),
        ({"schedule": {"excluded_dates": "2026-02-01"}}, "excluded_dates: a list"),
        ({"schedule": {"timezone": "Mars/Olympus"}}, "unknown IANA time zone 'Mars/Olympus'"),
        ({"schedule": {"active_hours": {"start": "9am", "end": "17:00"}}}, "active_hours"),
        ({"schedule": {"active_days": [7]}}, "active_days"),
        ({"schedule": {"excluded_dates": ["2026-13-01"]}}, "excluded_dates"),
        ({"threshold": "ten"}, "threshold: not a number"),
        ({"threshold": None}, "threshold: a number is required"),
        ({"window_minutes": 90}, "multiple of 60"),
        ({"severity": "fatal"}, "severity"),
        ({"actions": [{"type": "pager"}]}, "actions[0]"),
        ({"actions": [{"type": "email", "to": ["not-an-address"]}]}, "email addresses"),
        ({"venue_id": V[0]}, "needs scope 'venue'"),
        ({"name": ""}, "name: required"),
    ],
)
def test_bad_rules_are_refused_with_a_clear_message(bad, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")):
        R.validate_rule(
            {"name": "r", "metric": "refund_rate_24h_pct", "operator": "gt", "threshold": 10, **bad}
        )


# -- the engine on both operational databases ---------------------------------------------------------------


def fresh_engine(url: str) -> sa.Engine:
    """A new engine as a new process would get (the cached one forgotten)."""
    ops_engine.cache_clear()
    return ops_engine(url)


QUIET = N.Notifier(sleep=lambda s: None)


def instances(engine, **where) -> list[dict]:
    q = sa.select(alert_instances).order_by(alert_instances.c.id)
    for k, v in where.items():
        q = q.where(alert_instances.c[k] == v)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def test_venue_alerts_fire_once_however_often_evaluated(ops_url):
    eng = fresh_engine(ops_url)
    E.create_rule(
        eng,
        dict(
            name="venue refunds",
            metric="refund_rate_24h_pct",
            operator="gt",
            threshold=10,
            scope="venue",
            actions=[{"type": "log"}],
        ),
    )
    frame = kpis({(T1, V[0]): [12], (T1, V[1]): [15], (T1, V[2]): [3], (T1, None): [11]})
    first = E.evaluate(eng, frame, NOW, QUIET)
    assert sorted(s for _, s in first.triggered) == [f"venue:{V[0]}", f"venue:{V[1]}"]
    for minute in range(1, 6):  # the old service inserted venue_alerts every minute
        again = E.evaluate(eng, frame, NOW + timedelta(minutes=minute), QUIET)
        assert not again.triggered and len(again.still_open) == 2
    rows = instances(eng)
    assert len(rows) == 2 and {r["status"] for r in rows} == {"active"}
    with eng.connect() as conn:
        r = conn.execute(sa.select(alert_rules.c.trigger_count, alert_rules.c.last_triggered_at)).one()
        assert r.trigger_count == 2 and as_utc(r.last_triggered_at) == NOW
        assert conn.execute(sa.select(sa.func.count()).select_from(alert_notifications)).scalar() == 2


def test_acknowledged_alert_stays_quiet_then_resolves(ops_url):
    eng = fresh_engine(ops_url)
    E.create_rule(
        eng,
        dict(
            name="refunds",
            metric="refund_rate_24h_pct",
            operator="gt",
            threshold=10,
            actions=[{"type": "log"}],
            cooldown_minutes=30,
        ),
    )
    high = kpis({(T1, None): [20]})
    assert len(E.evaluate(eng, high, NOW, QUIET).triggered) == 1
    inst = instances(eng)[0]
    acked = E.acknowledge(
        eng, inst["id"], "ops@tickettoken", "looking into it", now=NOW + timedelta(minutes=1)
    )
    assert acked["status"] == "acknowledged" and acked["acknowledged_by"] == "ops@tickettoken"
    assert (
        E.acknowledge(eng, inst["id"], "someone-else")["acknowledged_by"] == "ops@tickettoken"
    )  # idempotent
    for minute in range(2, 12):  # the old bug: acknowledged alerts re-fired every minute
        s = E.evaluate(eng, high, NOW + timedelta(minutes=minute), QUIET)
        assert not s.triggered and s.still_open == [("refunds", f"tenant:{T1}")]
    assert len(instances(eng)) == 1
    # the condition clears: the acknowledged instance resolves
    cleared = E.evaluate(
        eng, kpis({(T1, None): [4]}, last_hour=HOUR + timedelta(hours=1)), NOW + timedelta(hours=1), QUIET
    )
    assert cleared.resolved == [("refunds", f"tenant:{T1}")]
    done = E.get_instance(eng, inst["id"])
    assert done["status"] == "resolved" and done["resolved_at"] == NOW + timedelta(hours=1)
    with pytest.raises(ValueError, match="already resolved"):
        E.acknowledge(eng, inst["id"], "late")
    with pytest.raises(LookupError):
        E.acknowledge(eng, 999999, "nobody")


def test_cooldown_survives_a_restart(ops_url):
    eng = fresh_engine(ops_url)
    E.create_rule(
        eng,
        dict(
            name="refunds",
            metric="refund_rate_24h_pct",
            operator="gt",
            threshold=10,
            actions=[{"type": "log"}],
            cooldown_minutes=60,
        ),
    )
    high, low = kpis({(T1, None): [20]}), kpis({(T1, None): [1]})
    E.evaluate(eng, high, NOW, QUIET)
    assert E.evaluate(eng, low, NOW + timedelta(minutes=10), QUIET).resolved
    # a new process: new engine, nothing in memory
    eng2 = fresh_engine(ops_url)
    s = E.evaluate(eng2, high, NOW + timedelta(minutes=40), QUIET)
    assert s.cooldown == [("refunds", f"tenant:{T1}")] and not s.triggered
    s = E.evaluate(eng2, high, NOW + timedelta(minutes=69), QUIET)
    assert s.cooldown and not s.triggered
    s = E.evaluate(fresh_engine(ops_url), high, NOW + timedelta(minutes=71), QUIET)  # 61 min after resolution
    assert s.triggered == [("refunds", f"tenant:{T1}")]
    assert [r["status"] for r in instances(eng2)] == ["resolved", "active"]


def test_one_open_instance_per_rule_and_scope_even_when_evaluators_race(ops_url):
    eng = fresh_engine(ops_url)
    rid = E.create_rule(
        eng,
        dict(
            name="refunds",
            metric="refund_rate_24h_pct",
            operator="gt",
            threshold=10,
            actions=[],
            cooldown_minutes=0,
        ),
    )
    row = dict(
        rule_id=rid,
        scope_key=f"tenant:{T1}",
        tenant_id=T1,
        status="active",
        severity="warning",
        triggered_at=NOW,
    )
    with eng.begin() as conn:
        conn.execute(alert_instances.insert().values(**row))
    # the database itself refuses a second open instance ...
    with pytest.raises(sa.exc.IntegrityError), eng.begin() as conn:
        conn.execute(alert_instances.insert().values(**{**row, "status": "acknowledged"}))
    # ... and an evaluator that lost the race records it instead of failing or duplicating
    summary = E.EvaluationSummary()
    r = {**R.validate_rule(E.get_rule(eng, rid)), "id": rid}
    assert (
        E._open_instance(
            eng,
            r,
            {"scope_key": f"tenant:{T1}", "tenant_id": T1, "venue_id": None, "observed": 20.0, "value": 20.0},
            NOW,
            summary,
        )
        is None
    )
    assert summary.lost_race == [("refunds", f"tenant:{T1}")]
    # resolved instances do not count: a new one may open
    with eng.begin() as conn:
        conn.execute(alert_instances.update().values(status="resolved", resolved_at=NOW))
    # real concurrent evaluators (threads, separate connections): exactly one new instance
    frame = kpis({(T1, None): [20]})
    errors: list[BaseException] = []

    def run():
        try:
            E.evaluate(eng, frame, NOW + timedelta(minutes=5), QUIET)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(instances(eng, status="active")) == 1


def test_manual_resolve_and_schedule_gate(ops_url):
    eng = fresh_engine(ops_url)
    E.create_rule(
        eng,
        dict(
            name="office hours",
            metric="refund_rate_24h_pct",
            operator="gt",
            threshold=10,
            actions=[{"type": "log"}],
            cooldown_minutes=15,
            schedule={"timezone": "America/Los_Angeles", "active_hours": ["09:00", "17:00"]},
        ),
    )
    high = kpis({(T1, None): [20]})
    night = E.evaluate(eng, high, NOW, QUIET)  # 12:05 UTC is 04:05 in Los Angeles
    assert night.outside_schedule == ["office hours"] and not instances(eng)
    day = NOW + timedelta(hours=6)  # 10:05 local
    assert E.evaluate(eng, high, day, QUIET).triggered
    inst = instances(eng)[0]
    E.acknowledge(eng, inst["id"], "amy", "known issue", now=day)
    out = E.resolve(eng, inst["id"], user="amy", note="refunds batch done", now=day + timedelta(minutes=1))
    assert (
        out["status"] == "resolved" and "known issue" in out["notes"] and "refunds batch done" in out["notes"]
    )
    assert E.resolve(eng, inst["id"])["resolved_at"] == day + timedelta(minutes=1)  # idempotent
    # still true after the manual resolution: quiet during the cooldown, fires after it
    assert E.evaluate(eng, high, day + timedelta(minutes=10), QUIET).cooldown
    assert E.evaluate(eng, high, day + timedelta(minutes=17), QUIET).triggered


def test_default_rules_seeded_once_and_configurable(ops_url, monkeypatch):
    eng = fresh_engine(ops_url)
    monkeypatch.setenv(E.DEFAULT_ENABLED_ENV, "high_refund_rate")
    assert E.seed_default_rules(eng) == ["high_refund_rate", "revenue_drop"]
    assert E.seed_default_rules(eng) == []
    with eng.connect() as conn:
        rows = {r.name: r for r in conn.execute(sa.select(alert_rules))}
    assert rows["high_refund_rate"].enabled and not rows["revenue_drop"].enabled
    assert (
        rows["high_refund_rate"].threshold,
        rows["high_refund_rate"].severity,
        rows["high_refund_rate"].cooldown_minutes,
    ) == (10.0, "warning", 60)
    assert (
        rows["revenue_drop"].operator,
        rows["revenue_drop"].threshold,
        rows["revenue_drop"].severity,
        rows["revenue_drop"].cooldown_minutes,
    ) == ("lt", -50.0, "info", 120)
    monkeypatch.setenv(E.DEFAULT_ENABLED_ENV, "no_such_rule")
    with pytest.raises(ValueError, match="unknown default rules"):
        E.seed_default_rules(eng)
    # the seeded revenue-drop rule fires on hourly_revenue_change_pct once enabled
    E.update_rule(eng, rows["revenue_drop"].id, {"enabled": True})
    drop = kpis({(T1, None): [-70.0]}, metric="hourly_revenue_change_pct")
    s = E.evaluate(eng, drop, NOW, N.Notifier(sleep=lambda s: None))
    assert ("revenue_drop", f"tenant:{T1}") in s.triggered
    with pytest.raises(ValueError, match="unknown rule fields"):
        E.create_rule(
            eng, {"name": "x", "metric": "venues_total", "operator": "gt", "threshold": 1, "foo": 1}
        )
    with pytest.raises(ValueError, match="already exists"):
        E.create_rule(eng, dict(DEFAULT_RULE_COPY))


DEFAULT_RULE_COPY = {k: v for k, v in E.DEFAULT_RULES[0].items()}


def test_evaluate_refuses_a_frame_without_the_columns(tmp_path):
    eng = fresh_engine(f"sqlite:///{tmp_path / 'ops.sqlite'}")
    with pytest.raises(ValueError, match="lacks kpi_snapshots columns"):
        E.evaluate(eng, pl.DataFrame({"metric": ["x"]}), NOW, QUIET)
    with pytest.raises(ValueError, match="column types expected"):
        E.evaluate(eng, kpis({(T1, None): [1]}).with_columns(pl.lit("high").alias("value")), NOW, QUIET)
    # naive UTC timestamps and an all-null venue column (typed Null) are fine
    E.create_rule(eng, dict(name="r", metric="refund_rate_24h_pct", operator="gt", threshold=10, actions=[]))
    raw = pl.DataFrame(
        {
            "snapshot_hour": [datetime(2026, 11, 20, 12)],
            "tenant_id": [T1],
            "venue_id": [None],
            "metric": ["refund_rate_24h_pct"],
            "value": [12],
        }
    )
    assert E.evaluate(eng, raw, NOW, QUIET).triggered == [("r", f"tenant:{T1}")]
    with pytest.raises(ValueError, match="time-zone aware"):
        E.evaluate(eng, kpis({(T1, None): [1]}), datetime(2026, 1, 1), QUIET)


# -- delivery through real servers ----------------------------------------------------------------------------


def test_email_through_a_real_smtp_server(tmp_path, caplog):
    eng = fresh_engine(f"sqlite:///{tmp_path / 'ops.sqlite'}")
    with smtp_server() as (port, inbox):
        E.create_rule(
            eng,
            dict(
                name="High refund rate",
                metric="refund_rate_24h_pct",
                operator="gt",
                threshold=10,
                severity="critical",
                actions=[{"type": "email", "to": ["jane.doe@example.com", "ops@tickettoken.io"]}],
            ),
        )
        notifier = N.Notifier(smtp=notify.SmtpSettings(host="127.0.0.1", port=port), sleep=lambda s: None)
        with caplog.at_level(logging.INFO):
            s = E.evaluate(eng, kpis({(T1, None): [17.5]}), NOW, notifier)
    assert len(inbox) == 1
    rcpts, msg = inbox[0]
    assert sorted(rcpts) == ["jane.doe@example.com", "ops@tickettoken.io"]
    assert msg["Subject"] == "[CRITICAL] High refund rate"
    body = msg.get_payload(decode=True).decode()
    assert "observed 17.5" in body and f"tenant:{T1}" in body and "Alert: High refund rate" in body
    [note] = s.notifications
    assert note["status"] == "sent" and note["attempts"] == 1
    assert note["target_masked"] == "j***@example.com, o***@tickettoken.io"
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("analytics_pipelines"))
    assert "jane.doe@example.com" not in ours and "j***@example.com" in ours
    with eng.connect() as conn:
        stored = conn.execute(sa.select(alert_notifications)).mappings().one()
    assert stored["channel"] == "email" and stored["target_masked"] == note["target_masked"]


def test_email_to_an_unreachable_server_is_recorded_not_raised(tmp_path, monkeypatch):
    from notify_servers import free_port

    eng = fresh_engine(f"sqlite:///{tmp_path / 'ops.sqlite'}")
    monkeypatch.setenv("TT_ALERT_EMAILS", "oncall@example.com")
    E.create_rule(
        eng,
        dict(
            name="refunds",
            metric="refund_rate_24h_pct",
            operator="gt",
            threshold=10,
            actions=[{"type": "email"}],
        ),
    )  # recipients from TT_ALERT_EMAILS
    notifier = N.Notifier.from_env(
        smtp=notify.SmtpSettings(port=free_port(), timeout_s=2), sleep=lambda s: None
    )
    s = E.evaluate(eng, kpis({(T1, None): [20]}), NOW, notifier)
    [note] = s.notifications
    assert note["status"] == "failed" and note["attempts"] == 3 and "Connection" in note["error"]
    assert note["target_masked"] == "o***@example.com"
    assert s.triggered  # the instance exists even though the email did not go out


def test_webhook_that_fails_twice_then_succeeds(tmp_path):
    eng = fresh_engine(f"sqlite:///{tmp_path / 'ops.sqlite'}")
    waits: list[float] = []
    with http_server([500, 503, 200]) as (url, received):
        E.create_rule(
            eng,
            dict(
                name="refunds",
                metric="refund_rate_24h_pct",
                operator="gt",
                threshold=10,
                actions=[{"type": "webhook", "url": url, "headers": {"X-Token": "abc"}}],
            ),
        )
        s = E.evaluate(eng, kpis({(T1, None): [20]}), NOW, N.Notifier(backoff_s=0.5, sleep=waits.append))
    assert len(received) == 3 and waits == [0.5, 1.0]  # exponential backoff between the attempts
    body = received[-1]["body"]
    assert body["alert"] == "refunds" and body["value"] == 20.0 and body["scope"] == f"tenant:{T1}"
    assert body["instance_id"] == instances(eng)[0]["id"] and received[-1]["headers"]["X-Token"] == "abc"
    with eng.connect() as conn:
        note = conn.execute(sa.select(alert_notifications)).mappings().one()
    assert (note["channel"], note["status"], note["attempts"]) == ("webhook", "sent", 3)
    assert "secret-token" not in note["target_masked"] and note["target_masked"].endswith("/***")
    assert s.notifications[0]["attempts"] == 3


def test_webhook_that_always_fails_is_recorded_and_evaluation_goes_on(tmp_path):
    eng = fresh_engine(f"sqlite:///{tmp_path / 'ops.sqlite'}")
    with http_server([], default=500) as (url, received):
        E.create_rule(
            eng,
            dict(
                name="refunds",
                metric="refund_rate_24h_pct",
                operator="gt",
                threshold=10,
                actions=[{"type": "webhook", "url": url}, {"type": "sms"}],
            ),
        )
        E.create_rule(
            eng,
            dict(
                name="sales", metric="tickets_sold_24h", operator="lt", threshold=5, actions=[{"type": "log"}]
            ),
        )
        frame = pl.concat([kpis({(T1, None): [20]}), kpis({(T1, None): [1]}, metric="tickets_sold_24h")])
        s = E.evaluate(eng, frame, NOW, N.Notifier(webhook_retries=2, sleep=lambda s: None))
    assert len(received) == 3
    assert len(s.triggered) == 2
    by_channel = {(n["instance_id"], n["channel"]): n for n in s.notifications}
    failed = [n for n in by_channel.values() if n["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["channel"] == "webhook" and failed[0]["attempts"] == 3
    assert failed[0]["error"] == "HTTP 500"
    assert sorted(n["channel"] for n in s.notifications) == ["log", "log", "webhook"]


def test_default_ops_engine_follows_the_environment(tmp_path, monkeypatch):
    """ops_engine() without a URL resolves TT_OPS_URL as it is now: an engine cached for an earlier value
    would send a job's writes to another database (the publication cursor once went to the wrong store)."""
    engines = []
    for name in ("a", "b", "a"):
        monkeypatch.setenv("TT_OPS_URL", f"sqlite:///{tmp_path / name}.sqlite")
        engines.append(ops_engine())
    assert [e.url.database for e in engines] == [str(tmp_path / f"{n}.sqlite") for n in "aba"]
    assert engines[0] is engines[2]  # still one engine per database
