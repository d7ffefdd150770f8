"""Insight routes (issue 21): scoping (other tenant 404, other venue 403), filters and pagination, dismiss and
action with ETag / If-Match (412) and an audit row, a dismissal that sticks for the same evidence on a later
day and across app restarts, stats, a customer's own findings, and refresh -> request row ->
insights_refresh_sensor run request -- on both ops stores (SQLite, PostgreSQL) and both warehouses."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import polars as pl
import pytest
import sqlalchemy as sa
from api_helpers import make_api
from fastapi.testclient import TestClient

from analytics_pipelines.api import create_app
from analytics_pipelines.insights.findings import finding, frame, query_request
from analytics_pipelines.ops.audit import api_audit
from analytics_pipelines.ops.db import ops_engine
from analytics_pipelines.ops.insights import insight_refresh_requests
from analytics_pipelines.warehouse import open_warehouse

DAY1, DAY2 = date(2026, 10, 30), date(2026, 10, 31)
WRITE = {"permissions": ("analytics.read", "analytics.write")}
USER = "77777777-0000-0000-0000-000000000001"


def _finding(as_of, tenant, venue, kind, key, severity="medium", score=4.0):
    return finding(
        as_of=as_of,
        tenant_id=tenant,
        venue_id=venue,
        kind=kind,
        severity=severity,
        evidence_key=key,
        score=score,
        sentence=f"{kind} at {venue} ({key}).",
        evidence={"key": key, "value": 42},
        query=query_request("venue_analytics.tickets_sold", as_of, as_of, "day", venue_id=venue),
    )


def seed(wh_url: str, marts) -> dict:
    t1, t2 = marts.tenant_ids()[:2]
    v1, v2 = marts.tenants[t1][:2]
    w1 = marts.tenants[t2][0]
    day1 = [_finding(DAY1, t1, v1, "tickets_wow", "tickets:wow:2026-10-19")]
    day2 = [
        _finding(DAY2, t1, v1, "tickets_wow", "tickets:wow:2026-10-19"),  # the same evidence: the same id
        _finding(DAY2, t1, v1, "event_stalling", "ev:2026-10-20", severity="high", score=9),
        _finding(DAY2, t1, v1, "kpi_anomaly", "hourly_orders:2026-10-30T14", severity="medium", score=6),
        _finding(DAY2, t1, v2, "revenue_wow", "revenue:wow:2026-10-19"),
        _finding(DAY2, t2, w1, "tickets_wow", "tickets:wow:2026-10-19"),
    ]
    wh = open_warehouse(wh_url)
    wh.write_partitions(
        "venue_insights", frame(day1 + day2), ["as_of"], [(DAY1.isoformat(),), (DAY2.isoformat(),)]
    )
    rfm = pl.DataFrame(
        {
            "as_of": [DAY2 - timedelta(days=14), DAY2],
            "scope": ["venue", "venue"],
            "scope_id": [v1, v1],
            "tenant_id": [t1, t1],
            "venue_id": [v1, v1],
            "user_id": [USER, USER],
            "segment": ["Loyal Customers", "At Risk"],
            "recency_days": [10, 80],
        }
    )
    wh.write_partitions("customer_rfm_scores", rfm, ["as_of"], [(d.isoformat(),) for d in rfm["as_of"]])
    wh.replace_table(
        "customer_churn_scores",
        pl.DataFrame({"as_of": [DAY2], "tenant_id": [t1], "user_id": [USER], "churn_probability": [0.9]}),
    )
    return {
        "t1": t1,
        "t2": t2,
        "v1": v1,
        "v2": v2,
        "w1": w1,
        "ids": {f["type"] + f["venue_id"]: f["insight_id"] for f in day2},
    }


@pytest.fixture
def env(tmp_path, ops_url, warehouse_url):
    a, reader = make_api(warehouse_url, tmp_path)
    a.settings = replace(a.settings, ops_url=ops_url)
    a.client.app.state.settings = a.settings
    ops_engine.cache_clear()
    s = seed(warehouse_url, a.marts)
    reader.refresh()
    a.reader = reader
    yield a, s
    reader.close()


def test_list_is_scoped_filtered_and_paginated(env):
    a, s = env
    r = a.get("/v1/insights", s["t1"], s["v1"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["meta"]["total"] == 3
    assert [x["type"] for x in body["data"]] == [
        "event_stalling",
        "kpi_anomaly",
        "tickets_wow",
    ]  # severity, |score|
    assert {x["venue_id"] for x in body["data"]} == {s["v1"]} and all(
        x["as_of"] == "2026-10-31" for x in body["data"]
    )
    first = body["data"][0]
    assert first["evidence"] == {"key": "ev:2026-10-20", "value": 42} and first["status"] == "open"
    assert first["query"]["filters"][0]["values"] == [s["v1"]]
    assert [x["type"] for x in a.get("/v1/insights?severity=high", s["t1"], s["v1"]).json()["data"]] == [
        "event_stalling"
    ]
    assert a.get("/v1/insights?type=kpi_anomaly", s["t1"], s["v1"]).json()["meta"]["total"] == 1
    page = a.get("/v1/insights?limit=2&offset=2", s["t1"], s["v1"]).json()
    assert page["meta"] == {"limit": 2, "offset": 2, "returned": 1, "total": 3}
    # the other venue's token, a tenant admin, the other tenant
    assert [x["type"] for x in a.get("/v1/insights", s["t1"], s["v2"]).json()["data"]] == ["revenue_wow"]
    assert a.get("/v1/insights", s["t1"], role="admin").json()["meta"]["total"] == 4
    assert [x["venue_id"] for x in a.get("/v1/insights", s["t2"], s["w1"]).json()["data"]] == [s["w1"]]
    assert a.get("/v1/insights?as_of=2026-10-30", s["t1"], s["v1"]).json()["meta"]["total"] == 1
    for bad, field in (
        ("type=nope", "type"),
        ("severity=x", "severity"),
        ("limit=0", "limit"),
        ("status=z", "status"),
    ):
        r = a.get(f"/v1/insights?{bad}", s["t1"], s["v1"])
        assert r.status_code == 422 and field in r.text, bad


def test_get_one_is_owned(env):
    a, s = env
    mine = s["ids"]["event_stalling" + s["v1"]]
    r = a.get(f"/v1/insights/{mine}", s["t1"], s["v1"])
    assert r.status_code == 200 and r.json()["data"]["insight_id"] == mine and r.headers["ETag"]
    assert a.get(f"/v1/insights/{mine}", s["t1"], s["v2"]).status_code == 403
    assert a.get(f"/v1/insights/{mine}", s["t2"], s["w1"]).status_code == 404
    assert a.get(f"/v1/insights/{'0' * 24}", s["t1"], s["v1"]).status_code == 404
    assert a.get("/v1/insights/not-an-id", s["t1"], s["v1"]).status_code == 422


def test_dismiss_and_action_persist_with_etag_and_audit(env):
    a, s = env
    wow = s["ids"]["tickets_wow" + s["v1"]]
    h = a.headers(s["t1"], s["v1"], **WRITE)
    assert (
        a.client.post(f"/v1/insights/{wow}/dismiss", headers=a.headers(s["t1"], s["v1"])).status_code == 403
    )
    assert (
        a.client.post(f"/v1/insights/{wow}/dismiss", headers=a.headers(s["t1"], s["v2"], **WRITE)).status_code
        == 403
    )
    assert (
        a.client.post(f"/v1/insights/{wow}/dismiss", headers=a.headers(s["t2"], s["w1"], **WRITE)).status_code
        == 404
    )
    etag = a.client.get(f"/v1/insights/{wow}", headers=h).headers["ETag"]
    r = a.client.post(
        f"/v1/insights/{wow}/dismiss", json={"note": "known"}, headers={**h, "If-Match": '"stale"'}
    )
    assert r.status_code == 412
    assert a.get(f"/v1/insights/{wow}", s["t1"], s["v1"]).json()["data"]["status"] == "open"
    r = a.client.post(f"/v1/insights/{wow}/dismiss", json={"note": "known"}, headers={**h, "If-Match": etag})
    assert r.status_code == 200, r.text
    d = r.json()["data"]
    assert d["status"] == "dismissed" and d["note"] == "known" and d["status_by"] and d["status_at"]
    # the same evidence (the same id, also on the newer day) is no longer open; listed under dismissed
    open_ids = [x["insight_id"] for x in a.get("/v1/insights", s["t1"], s["v1"]).json()["data"]]
    assert wow not in open_ids and len(open_ids) == 2
    assert [
        x["insight_id"] for x in a.get("/v1/insights?status=dismissed", s["t1"], s["v1"]).json()["data"]
    ] == [wow]
    assert wow not in [
        x["insight_id"] for x in a.get("/v1/insights?as_of=2026-10-30", s["t1"], s["v1"]).json()["data"]
    ]
    stall = s["ids"]["event_stalling" + s["v1"]]
    r = a.client.post(f"/v1/insights/{stall}/action", json={"action": "opened a promo code"}, headers=h)
    assert r.status_code == 200 and r.json()["data"]["action"] == "opened a promo code"
    assert a.client.post(f"/v1/insights/{stall}/action", json={"action": ""}, headers=h).status_code == 422
    assert (
        a.client.post(f"/v1/insights/{stall}/action", json={"action": "x", "y": 1}, headers=h).status_code
        == 422
    )
    stats = a.get("/v1/insights/stats", s["t1"], s["v1"]).json()["data"]
    assert stats["by_status"] == {"open": 1, "dismissed": 1, "actioned": 1}
    assert stats["by_type"] == {"event_stalling": 1, "kpi_anomaly": 1, "tickets_wow": 1}
    assert stats["by_severity"] == {"high": 1, "medium": 2} and stats["as_of"] == "2026-10-31"
    with ops_engine(a.settings.ops_url).connect() as conn:
        audit = conn.execute(
            sa.select(api_audit.c.entity_id, api_audit.c.action).where(api_audit.c.entity == "insight")
        ).all()
    assert sorted(audit) == sorted([(wow, "dismissed"), (stall, "actioned")])
    # a new app on the same ops store (a restart) still knows
    b = TestClient(create_app(a.settings, reader=a.reader))
    r = b.get(f"/v1/insights/{wow}", headers=a.headers(s["t1"], s["v1"]))
    assert r.json()["data"]["status"] == "dismissed"


def test_customer_insights(env):
    a, s = env
    r = a.get(f"/v1/customers/{USER}/insights", s["t1"], s["v1"])
    assert r.status_code == 200, r.text
    got = {x["type"]: x for x in r.json()["data"]}
    assert set(got) == {"churn_risk_rising", "churn_risk_high"}
    assert got["churn_risk_rising"]["evidence"]["to_segment"] == "At Risk"
    assert a.get(f"/v1/customers/{USER}/insights", s["t1"], s["v2"]).status_code == 404
    assert a.get(f"/v1/customers/{USER}/insights", s["t2"], s["w1"]).status_code == 404
    assert a.get("/v1/customers/nope/insights", s["t1"], s["v1"]).status_code == 422


def _run_status(instance: dg.DagsterInstance, run_id: str, status: str) -> None:
    """Move a run to SUCCESS / FAILURE through the instance's run storage (what the executor records)."""
    from dagster._core.events import DagsterEvent, DagsterEventType

    run = instance.get_run_by_id(run_id)
    kind = DagsterEventType[f"RUN_{status}"].value
    event = DagsterEvent(event_type_value=kind, job_name=run.job_name)
    instance.run_storage.handle_run_event(run_id, event)
    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus(status)


def test_refresh_request_stays_pending_until_a_run_succeeds(env):
    """POST /v1/insights/refresh -> insights_refresh_sensor: the requests stay pending through a tick whose
    run was never launched (the next tick asks again, same run key), while the run is in flight (no second
    run asked for), and after it failed (asked again under a new run key); the tick after the tagged run
    succeeded marks them handled by that run, and nothing more is asked for."""
    from analytics_pipelines.definitions import defs
    from analytics_pipelines.ops.insights import pending_refreshes
    from analytics_pipelines.resources import OpsResource
    from analytics_pipelines.sensors.insights import DAY_TAG, REQUESTS_TAG

    a, s = env
    h = a.headers(s["t1"], s["v1"], **WRITE)
    assert a.client.post("/v1/insights/refresh", headers=a.headers(s["t1"], s["v1"])).status_code == 403
    future = (datetime.now(UTC).date() + timedelta(days=2)).isoformat()
    r = a.client.post("/v1/insights/refresh", json={"as_of": future}, headers=h)
    assert r.status_code == 422 and "as_of" in r.text
    day = (datetime.now(UTC).date() - timedelta(days=3)).isoformat()
    r = a.client.post("/v1/insights/refresh", json={"as_of": day}, headers=h)
    assert r.status_code == 202, r.text
    assert r.json()["data"]["as_of"] == day and r.json()["data"]["venue_id"] == s["v1"]
    ids = [r.json()["data"]["id"]]
    r = a.client.post("/v1/insights/refresh", json={"as_of": day}, headers=h)  # a second request: one run
    ids.append(r.json()["data"]["id"])
    url = a.settings.ops_url
    engine = ops_engine(url)
    with engine.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(insight_refresh_requests)).scalar_one() == 2
        )

    def pending() -> list[int]:
        return [p["id"] for p in pending_refreshes(engine)]

    sensor = defs.resolve_sensor_def("insights_refresh_sensor")
    job = defs.resolve_job_def("insights_job")
    with dg.DagsterInstance.ephemeral() as instance:

        def tick():
            with dg.build_sensor_context(
                instance=instance,
                repository_def=defs.get_repository_def(),
                resources={"ops": OpsResource(url=url)},
            ) as ctx:
                return sensor.evaluate_tick(ctx)

        def launch(rr) -> str:  # what the daemon does with a run request: a run with its tags and run key
            tags = {**rr.tags, "dagster/run_key": rr.run_key, "dagster/partition": rr.partition_key}
            return instance.create_run_for_job(job, tags=tags, status=dg.DagsterRunStatus.STARTED).run_id

        [first] = tick().run_requests
        assert first.partition_key == day and first.job_name in (None, "insights_job")
        assert first.tags[REQUESTS_TAG] == ",".join(map(str, ids)) and first.tags[DAY_TAG] == day
        assert pending() == ids
        # the launch did not happen (no run): the next tick asks again, under the same run key (Dagster
        # launches a run key once, so two ticks that both reach the daemon still make one run)
        [again] = tick().run_requests
        assert (again.run_key, again.tags) == (first.run_key, first.tags) and pending() == ids
        # launched and running: no second run for the same requests; still pending
        run1 = launch(again)
        res = tick()
        assert not res.run_requests and "in flight" in res.skip_message and pending() == ids
        # the run failed: the requests are still pending and asked for again under a new run key
        _run_status(instance, run1, "FAILURE")
        [retry] = tick().run_requests
        assert retry.tags[REQUESTS_TAG] == first.tags[REQUESTS_TAG] and retry.run_key != first.run_key
        assert pending() == ids
        run2 = launch(retry)
        assert not tick().run_requests and pending() == ids
        # the run succeeded: the next tick marks the requests handled by it, and asks for nothing
        _run_status(instance, run2, "SUCCESS")
        res = tick()
        assert not res.run_requests and run2 in res.skip_message and pending() == []
        with engine.connect() as conn:
            t = insight_refresh_requests
            rows = conn.execute(sa.select(t.c.handled_run_id, t.c.handled_at).where(t.c.id.in_(ids))).all()
        assert [r.handled_run_id for r in rows] == [run2, run2] and all(r.handled_at for r in rows)
        assert "no insight refresh requests" in tick().skip_message
        # a request made after a run: its own run (the handled ones are not in it)
        r = a.client.post("/v1/insights/refresh", json={"as_of": day}, headers=h)
        [later] = tick().run_requests
        assert later.tags[REQUESTS_TAG] == str(r.json()["data"]["id"])


def test_existing_refresh_requests_get_the_new_columns(ops_url):
    """An ops store made before requests stayed pending until handled (no handled_at / handled_run_id) is
    migrated by ops_engine(); its requests the old sensor already marked (run_requested_at) count as handled,
    its unmarked ones stay pending and can be handled."""
    from analytics_pipelines.ops.insights import mark_handled, pending_refreshes

    new = {"handled_at", "handled_run_id"}
    old = sa.MetaData()
    t = insight_refresh_requests
    sa.Table(t.name, old, *[c._copy() for c in t.columns if c.name not in new])
    kw = {"connect_args": {"options": "-c search_path=ops,public"}} if ops_url.startswith("postgres") else {}
    raw = sa.create_engine(ops_url.replace("postgresql://", "postgresql+psycopg://"), **kw)
    now = datetime.now(UTC)
    with raw.begin() as conn:
        if raw.dialect.name == "postgresql":
            conn.execute(sa.text("CREATE SCHEMA IF NOT EXISTS ops"))
        old.create_all(conn)
        for marked in (now, None):
            conn.execute(
                old.tables[t.name]
                .insert()
                .values(
                    tenant_id="t1", as_of=DAY1, requested_by="u", requested_at=now, run_requested_at=marked
                )
            )
    raw.dispose()
    ops_engine.cache_clear()
    engine = ops_engine(ops_url)
    assert new <= {c["name"] for c in sa.inspect(engine).get_columns(t.name)}
    [open_] = pending_refreshes(engine)
    assert open_["run_requested_at"] is None and open_["handled_at"] is None
    assert mark_handled(engine, [open_["id"]], "run-1") == 1
    assert mark_handled(engine, [open_["id"]], "run-2") == 0  # handled once, by the first run
    assert pending_refreshes(engine) == []
