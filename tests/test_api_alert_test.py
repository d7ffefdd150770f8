"""`POST /v1/alerts/{id}/test` on sample marts (both warehouse backends) against a hand computation, and end
to end: a rule created through the API, predicted to fire by `test`, fires through kpi_snapshots_alert_sensor
and alert_evaluation_job, and the local SMTP server receives exactly one message (both ops stores)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import dagster as dg
import polars as pl
import pytest
import sqlalchemy as sa
from api_helpers import make_api
from notify_servers import smtp_server

from analytics_pipelines.jobs.operations import alert_evaluation_job
from analytics_pipelines.ops.alerts import alert_instances, alert_notifications
from analytics_pipelines.ops.audit import api_audit
from analytics_pipelines.ops.db import ops_engine
from analytics_pipelines.resources import OpsResource, WarehouseResource
from analytics_pipelines.sensors.data import kpi_snapshots_alert_sensor
from analytics_pipelines.warehouse import open_warehouse

AT = "2026-11-01T00:30:00+00:00"  # the sample kpi_snapshots end at 2026-10-31 23:00 UTC
ADMIN = {"role": "admin"}


def make(tmp_path, warehouse_url: str, ops_url: str):
    a, reader = make_api(warehouse_url, tmp_path)
    a.settings = replace(a.settings, ops_url=ops_url)
    a.client.app.state.settings = a.settings
    ops_engine.cache_clear()
    return a, reader


def window(api, tenant: str, venue: str | None, metric: str, minutes: int, back: int = 0) -> list[float]:
    """By hand: the values of the window (anchor - minutes, anchor] (`back` windows earlier), anchor = the
    newest snapshot_hour <= AT of this metric and scope."""
    kp = open_warehouse(api.warehouse_url).read_table("kpi_snapshots")
    at = datetime.fromisoformat(AT)
    rows = kp.filter(
        (pl.col("tenant_id") == tenant)
        & (pl.col("venue_id").is_null() if venue is None else pl.col("venue_id") == venue)
        & (pl.col("metric") == metric)
        & (pl.col("snapshot_hour") <= at)
    )
    end = rows["snapshot_hour"].max() - back * timedelta(minutes=minutes)
    inside = rows.filter(
        (pl.col("snapshot_hour") > end - timedelta(minutes=minutes)) & (pl.col("snapshot_hour") <= end)
    )
    return inside.sort("snapshot_hour")["value"].to_list()


def body(**kw) -> dict:
    base = {
        "name": "r",
        "metric": "refund_rate_24h_pct",
        "operator": "gt",
        "threshold": 0,
        "severity": "critical",
        "actions": [{"type": "email", "to": ["ops@example.com"]}],
    }
    return {**base, **kw}


def create(api, h, **kw) -> int:
    r = api.client.post("/v1/alerts", json=body(**kw), headers=h)
    assert r.status_code == 201, r.text
    return r.json()["data"]["id"]


def dry(api, h, rid: int, at: str = AT) -> dict:
    r = api.client.post(f"/v1/alerts/{rid}/test", json={"at": at}, headers=h)
    assert r.status_code == 200, r.text
    return r.json()["data"]


@pytest.fixture
def api(tmp_path, warehouse_url):
    a, reader = make(tmp_path, warehouse_url, f"sqlite:///{tmp_path / 'ops.sqlite'}")
    yield a
    reader.close()


def test_dry_run_values_match_a_hand_computation(api):
    t = api.marts.tenant_ids()[0]
    v0, v1 = api.marts.tenants[t]
    h = api.headers(t, **ADMIN)

    vals = window(api, t, None, "refund_rate_24h_pct", 180)
    avg = sum(vals) / len(vals)
    assert len(vals) == 3
    rid = create(api, h, name="avg", aggregation="avg", window_minutes=180, threshold=avg - 1)
    d = dry(api, h, rid)
    [s] = d["scopes"]  # the tenant's own tenant-wide row only: never the other tenant's
    assert (
        s["scope_key"] == f"tenant:{t}" and s["value"] == pytest.approx(avg) and s["observed"] == s["value"]
    )
    assert s["condition_met"] is True and s["would_fire"] is True and s["open_instance_id"] is None
    assert (
        d["would_fire"] is True and d["threshold"] == pytest.approx(avg - 1) and d["threshold_high"] is None
    )
    assert d["window"] == {
        "minutes": 180,
        "start": "2026-10-31T20:00:00Z",
        "end": "2026-10-31T23:00:00Z",
        "previous_start": None,
    }
    assert d["schedule"] == {"timezone": "UTC", "local_time": AT, "active": True}
    above = create(api, h, name="above", aggregation="avg", window_minutes=180, threshold=avg + 1)
    assert (
        dry(api, h, above)["would_fire"] is False
        and dry(api, h, above)["scopes"][0]["condition_met"] is False
    )

    # between over every venue of the tenant: per venue its sum, compared by hand
    s0, s1 = (sum(window(api, t, v, "tickets_sold_24h", 120)) for v in (v0, v1))
    low, high = s0 - 0.5, s0 + 0.5
    rid = create(
        api,
        h,
        name="between",
        metric="tickets_sold_24h",
        operator="between",
        threshold=low,
        threshold_high=high,
        aggregation="sum",
        window_minutes=120,
        scope="venue",
    )
    got = {s["venue_id"]: s for s in dry(api, h, rid)["scopes"]}
    assert set(got) == {v0, v1}
    assert got[v0]["value"] == pytest.approx(s0) and got[v1]["value"] == pytest.approx(s1)
    assert got[v0]["condition_met"] is True and got[v1]["condition_met"] is (low <= s1 <= high)

    # change_percent: this hour against the hour before, signed threshold
    [cur], [prev] = (
        window(api, t, v0, "hourly_revenue_cents", 60),
        window(api, t, v0, "hourly_revenue_cents", 60, 1),
    )
    change = (cur - prev) / abs(prev) * 100
    rid = create(
        api,
        h,
        name="trend",
        metric="hourly_revenue_cents",
        operator="change_percent",
        threshold=-5,
        scope="venue",
        venue_id=v0,
    )
    d = dry(api, h, rid)
    [s] = d["scopes"]
    assert (s["value"], s["previous"], s["observed"]) == (
        pytest.approx(cur),
        pytest.approx(prev),
        pytest.approx(change),
    )
    assert s["condition_met"] is (change <= -5)
    assert d["window"]["previous_start"] == "2026-10-31T21:00:00Z"

    # the schedule in the rule's own time zone: 00:30 UTC on Sunday is Saturday 20:30 in New York
    ny = lambda **s: {"timezone": "America/New_York", **s}  # noqa: E731
    for name, schedule, active in (
        ("saturday", ny(active_days=[6]), True),
        ("sunday", ny(active_days=[0]), False),
        ("evening", ny(active_hours={"start": "20:00", "end": "21:00"}), True),
        ("morning", ny(active_hours={"start": "08:00", "end": "20:00"}), False),
        ("excluded", ny(excluded_dates=["2026-10-31"]), False),
        ("utc-sunday", {"timezone": "UTC", "active_days": [0]}, True),
    ):
        rid = create(api, h, name=name, schedule=schedule, threshold=avg - 1)
        d = dry(api, h, rid)
        assert d["schedule"]["active"] is active, name
        assert d["would_fire"] is active and (d["scopes"] != []) is active, name
    assert d["schedule"]["local_time"] == AT

    # disabled: the condition holds, nothing would fire
    rid = create(api, h, name="off", enabled=False, threshold=avg - 1)
    d = dry(api, h, rid)
    assert d["condition_met"] is True and d["would_fire"] is False

    # a dry run writes nothing: no instance, no notification, no audit row but the creations
    with ops_engine(api.settings.ops_url).connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(alert_instances)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(alert_notifications)).scalar() == 0
        assert set(conn.execute(sa.select(api_audit.c.action)).scalars()) == {"create"}
    # a naive time is refused
    r = api.client.post(f"/v1/alerts/{rid}/test", json={"at": "2026-11-01T00:30:00"}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "at"


def sensor_tick(sensor, **kw):
    with dg.build_sensor_context(**kw) as ctx:
        return sensor.evaluate_tick(ctx)


def test_a_rule_made_through_the_api_fires_once_through_the_sensor(tmp_path, ops_url, monkeypatch):
    api, reader = make(tmp_path, f"duckdb:///{tmp_path / 'warehouse'}", ops_url)
    monkeypatch.setenv("TT_ALERT_DEFAULT_RULES", "none")
    monkeypatch.delenv("TT_ALERT_EMAILS", raising=False)
    monkeypatch.delenv("TT_ALERT_WEBHOOK_URL", raising=False)
    t = api.marts.tenant_ids()[0]
    h = api.headers(t, **ADMIN)
    [last] = window(api, t, None, "refund_rate_24h_pct", 60)
    rid = create(api, h, name="Refunds high", threshold=last - 1)
    quiet = create(api, h, name="Refunds very high", threshold=last + 1)
    predicted = dry(api, h, rid)
    assert predicted["would_fire"] is True and dry(api, h, quiet)["would_fire"] is False
    resources = {"warehouse": WarehouseResource(url=api.warehouse_url), "ops": OpsResource(url=ops_url)}
    defs = dg.Definitions(
        jobs=[alert_evaluation_job], sensors=[kpi_snapshots_alert_sensor], resources=resources
    )
    sensor = defs.get_sensor_def("kpi_snapshots_alert_sensor")
    try:
        with smtp_server() as (port, inbox), dg.instance_for_test() as instance:
            monkeypatch.setenv("TT_SMTP_HOST", "127.0.0.1")
            monkeypatch.setenv("TT_SMTP_PORT", str(port))
            cursor = sensor_tick(sensor, instance=instance, definitions=defs).cursor
            for _ in range(2):  # two kpi_snapshots materializations: two evaluations, one alert
                instance.report_runless_asset_event(
                    dg.AssetMaterialization("kpi_snapshots", partition="2026-10-31-23:00")
                )
                result = sensor_tick(sensor, instance=instance, definitions=defs, cursor=cursor)
                [req] = result.run_requests
                run = defs.resolve_job_def("alert_evaluation_job").execute_in_process(
                    instance=instance,
                    run_config={"ops": {"evaluate_alerts": {"config": {"now": AT}}}},
                    tags={**req.tags, "dagster/run_key": req.run_key},
                )
                assert run.success
                cursor = result.cursor
            assert not sensor_tick(sensor, instance=instance, definitions=defs, cursor=cursor).run_requests
    finally:
        reader.close()
    assert len(inbox) == 1
    rcpts, msg = inbox[0]
    assert rcpts == ["ops@example.com"] and msg["Subject"] == "[CRITICAL] Refunds high"
    assert f"observed {predicted['scopes'][0]['observed']:g}" in msg.get_payload(decode=True).decode()
    listed = api.client.get(f"/v1/alerts/{rid}/instances", headers=h).json()
    [inst] = listed["data"]
    assert listed["meta"]["total"] == 1 and inst["scope_key"] == f"tenant:{t}" and inst["status"] == "active"
    assert inst["trigger_value"] == pytest.approx(predicted["scopes"][0]["observed"])
    assert api.client.get(f"/v1/alerts/{quiet}/instances", headers=h).json()["data"] == []
    rule = api.client.get(f"/v1/alerts/{rid}", headers=h).json()["data"]
    assert rule["trigger_count"] == 1
    # now the instance is open: the dry run says it would not fire again, and why
    again = dry(api, h, rid)
    assert again["condition_met"] is True and again["would_fire"] is False
    assert again["scopes"][0]["open_instance_id"] == inst["id"]


def test_a_venue_writer_tests_only_its_venue_and_a_missing_mart_is_503(tmp_path):
    import shutil

    api, reader = make(
        tmp_path, f"duckdb:///{tmp_path / 'warehouse'}", f"sqlite:///{tmp_path / 'ops.sqlite'}"
    )
    try:
        t = api.marts.tenant_ids()[0]
        v = api.marts.tenants[t][0]
        h = api.headers(t, v, permissions=("analytics.read", "analytics.write"))
        rid = create(api, h, name="mine", metric="tickets_sold_24h", aggregation="max", window_minutes=120)
        [s] = dry(api, h, rid)["scopes"]
        assert s["scope_key"] == f"venue:{v}" and s["value"] == pytest.approx(
            max(window(api, t, v, "tickets_sold_24h", 120))
        )
        shutil.rmtree(tmp_path / "warehouse" / "kpi_snapshots")
        r = api.client.post(f"/v1/alerts/{rid}/test", json={"at": AT}, headers=h)
        assert r.status_code == 503 and r.json()["table"] == "kpi_snapshots" and r.headers["Retry-After"]
    finally:
        reader.close()
