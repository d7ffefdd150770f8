"""Alert rules over the API (issue 20): CRUD with ETag/If-Match (412) and an audit row per write, scoping
(other tenant 404, other venue 403, who may write), per-tenant names (409), every 422 of a bad body -- on
both ops stores (SQLite and PostgreSQL). The dry run and the end-to-end firing: test_api_alert_test.py."""

from __future__ import annotations

from dataclasses import replace

import pytest
import sqlalchemy as sa
from api_helpers import make_api

from analytics_pipelines.alerting.rules import KPI_METRICS
from analytics_pipelines.api.writes import etag_of
from analytics_pipelines.ops.alerts import alert_rules
from analytics_pipelines.ops.audit import api_audit
from analytics_pipelines.ops.db import ops_engine

ADMIN = {"role": "admin"}
WRITER = {"permissions": ("analytics.read", "analytics.write")}


def rule_body(**kw) -> dict:
    base = {
        "name": "High refund rate",
        "metric": "refund_rate_24h_pct",
        "operator": "greater_than",
        "threshold": 10,
        "severity": "critical",
        "schedule": {"timezone": "Europe/Berlin", "active_days": [1, 2, 3, 4, 5]},
        "actions": [
            {"type": "email", "to": ["Ops@Example.com", "oncall@example.com"]},
            {"type": "webhook", "url": "https://hooks.example.com/services/T0/secret-token"},
        ],
    }
    return {**base, **kw}


def make(tmp_path, ops_url: str, mode: str = "production"):
    a, reader = make_api(f"duckdb:///{tmp_path / 'warehouse'}", tmp_path)
    a.settings = replace(a.settings, ops_url=ops_url, mode=mode)
    a.client.app.state.settings = a.settings
    ops_engine.cache_clear()
    return a, reader


@pytest.fixture
def api(tmp_path, ops_url):
    a, reader = make(tmp_path, ops_url)
    yield a
    reader.close()


def audit_rows(api) -> list[dict]:
    with ops_engine(api.settings.ops_url).connect() as conn:
        q = sa.select(api_audit).where(api_audit.c.entity == "alert_rule").order_by(api_audit.c.id)
        return [dict(r) for r in conn.execute(q).mappings()]


def test_crud_round_trip_with_etags_and_audit(api):
    t = api.marts.tenant_ids()[0]
    h = api.headers(t, **ADMIN)
    r = api.client.post("/v1/alerts", json=rule_body(), headers=h)
    assert r.status_code == 201, r.text
    rule = r.json()["data"]
    rid = rule["id"]
    assert r.headers["Location"] == f"/v1/alerts/{rid}" and r.headers["ETag"] == etag_of(rule)
    assert rule["operator"] == "gt" and rule["type"] == "threshold"  # the seed's spelling, stored canonical
    assert rule["tenant_id"] == t and rule["venue_id"] is None and rule["scope"] == "tenant"
    assert rule["actions"][0] == {"type": "email", "to": ["ops@example.com", "oncall@example.com"]}
    assert rule["schedule"] == {
        "timezone": "Europe/Berlin",
        "active_days": [1, 2, 3, 4, 5],
        "excluded_dates": [],
    }
    assert rule["created_by"] == "dev-user" and rule["enabled"] is True

    got = api.client.get(f"/v1/alerts/{rid}", headers=h)
    assert got.json()["data"] == rule and got.headers["ETag"] == r.headers["ETag"]

    # two operators: the second writes with the ETag it read before the first one's change -> 412
    stale = r.headers["ETag"]
    changed = rule_body(
        operator="between", threshold=5, threshold_high=25, aggregation="avg", window_minutes=180
    )
    first = api.client.put(f"/v1/alerts/{rid}", json=changed, headers={**h, "If-Match": stale})
    assert first.status_code == 200, first.text
    assert first.json()["data"]["threshold_high"] == 25 and first.json()["data"]["aggregation"] == "avg"
    second = api.client.put(
        f"/v1/alerts/{rid}", json=rule_body(threshold=99), headers={**h, "If-Match": stale}
    )
    assert second.status_code == 412 and second.headers["content-type"].startswith("application/problem+json")
    now = api.client.get(f"/v1/alerts/{rid}", headers=h)
    assert now.json()["data"]["threshold"] == 5 and now.headers["ETag"] == first.headers["ETag"]

    off = api.client.post(f"/v1/alerts/{rid}/toggle", headers={**h, "If-Match": first.headers["ETag"]})
    assert off.status_code == 200 and off.json()["data"]["enabled"] is False
    assert api.client.post(f"/v1/alerts/{rid}/toggle", headers={**h, "If-Match": stale}).status_code == 412
    same = api.client.post(f"/v1/alerts/{rid}/toggle", json={"enabled": False}, headers=h)
    assert same.json()["data"]["enabled"] is False  # an explicit state is idempotent

    trend = api.client.post(
        "/v1/alerts",
        json=rule_body(
            name="Revenue falls",
            metric="hourly_revenue_cents",
            operator="change_percent",
            threshold=-50,
            severity="info",
        ),
        headers=h,
    ).json()["data"]
    assert trend["type"] == "trend"
    listed = api.client.get("/v1/alerts?limit=1", headers=h).json()
    assert listed["meta"] == {"limit": 1, "offset": 0, "returned": 1, "total": 2}
    assert [x["id"] for x in listed["data"]] == [rid]
    ids = lambda q: [x["id"] for x in api.client.get(f"/v1/alerts?{q}", headers=h).json()["data"]]  # noqa: E731
    assert ids("enabled=false") == [rid] and ids("enabled=true") == [trend["id"]]
    assert ids("type=trend") == [trend["id"]] and ids("type=threshold") == [rid]
    assert ids("severity=info") == [trend["id"]] and ids("severity=error") == []
    assert ids("metric=hourly_revenue_cents") == [trend["id"]]
    assert api.client.get("/v1/alerts?type=comparison", headers=h).status_code == 422
    assert api.client.get("/v1/alerts?metric=a%00b", headers=h).status_code == 422  # was a PostgreSQL 500

    assert api.client.delete(f"/v1/alerts/{rid}", headers={**h, "If-Match": stale}).status_code == 412
    etag = api.client.get(f"/v1/alerts/{rid}", headers=h).headers["ETag"]
    gone = api.client.delete(f"/v1/alerts/{rid}", headers={**h, "If-Match": etag})
    assert gone.status_code == 204 and gone.content == b""
    assert api.client.get(f"/v1/alerts/{rid}", headers=h).status_code == 404

    audit = [a for a in audit_rows(api) if a["entity_id"] == str(rid)]
    assert [a["action"] for a in audit] == ["create", "update", "toggle", "toggle", "delete"]
    assert {a["actor"] for a in audit} == {"dev-user"} and {a["tenant_id"] for a in audit} == {t}
    assert audit[0]["before"] is None and audit[-1]["after"] is None
    assert audit[1]["before"]["threshold"] == 10 and audit[1]["after"]["threshold"] == 5
    assert audit[2]["before"]["enabled"] is True and audit[2]["after"]["enabled"] is False
    assert audit[-1]["before"]["operator"] == "between"
    # webhook paths carry tokens: masked in the audit trail
    assert audit[0]["after"]["actions"][1]["url"] == "https://hooks.example.com/***"
    assert "secret-token" not in str([a["before"] for a in audit] + [a["after"] for a in audit])


def test_scoping_and_who_may_write(api):
    t, other_t = api.marts.tenant_ids()
    v, other_v = api.marts.tenants[t]
    reader = api.headers(t, v)
    writer = api.headers(t, v, **WRITER)
    admin = api.headers(t, **ADMIN)

    refused = api.client.post("/v1/alerts", json=rule_body(), headers=reader)
    assert refused.status_code == 403 and "analytics.write" in refused.json()["detail"]
    mine = api.client.post("/v1/alerts", json=rule_body(name="mine"), headers=writer)
    assert mine.status_code == 201, mine.text
    assert mine.json()["data"]["venue_id"] == v and mine.json()["data"]["scope"] == "venue"
    for bad in ({"venue_id": other_v}, {"scope": "tenant"}):
        r = api.client.post("/v1/alerts", json=rule_body(name="x", **bad), headers=writer)
        assert r.status_code == 403, (bad, r.text)

    tenant_rule = api.client.post("/v1/alerts", json=rule_body(name="tenant wide"), headers=admin).json()[
        "data"
    ]
    theirs = api.client.post(
        "/v1/alerts", json=rule_body(name="their venue", venue_id=other_v), headers=admin
    ).json()["data"]
    assert theirs["scope"] == "venue" and theirs["venue_id"] == other_v
    rid = mine.json()["data"]["id"]

    # a venue token: its own venue's rules only, read with analytics.read, written with analytics.write
    assert [x["id"] for x in api.client.get("/v1/alerts", headers=reader).json()["data"]] == [rid]
    assert api.client.get(f"/v1/alerts/{rid}", headers=reader).status_code == 200
    assert api.client.post(f"/v1/alerts/{rid}/toggle", headers=reader).status_code == 403
    assert api.client.post(f"/v1/alerts/{rid}/toggle", headers=writer).status_code == 200
    for foreign in (tenant_rule["id"], theirs["id"]):
        for method, url in (
            ("get", f"/v1/alerts/{foreign}"),
            ("put", f"/v1/alerts/{foreign}"),
            ("delete", f"/v1/alerts/{foreign}"),
            ("post", f"/v1/alerts/{foreign}/toggle"),
            ("get", f"/v1/alerts/{foreign}/instances"),
            ("post", f"/v1/alerts/{foreign}/test"),
        ):
            kw = {"json": rule_body(name="z")} if method == "put" else {}
            r = api.client.request(method.upper(), url, headers=writer, **kw)
            assert r.status_code == 403, (method, url, r.text)
    assert api.client.get(f"/v1/alerts?venue_id={other_v}", headers=reader).status_code == 403

    # an admin: the whole tenant, or one venue
    all_ids = [x["id"] for x in api.client.get("/v1/alerts", headers=admin).json()["data"]]
    assert all_ids == sorted([rid, tenant_rule["id"], theirs["id"]])
    assert [
        x["id"] for x in api.client.get(f"/v1/alerts?venue_id={other_v}", headers=admin).json()["data"]
    ] == [theirs["id"]]

    # another tenant, even its admin: 404 everywhere, and an empty list
    stranger = api.headers(other_t, **ADMIN)
    for method, url in (
        ("get", f"/v1/alerts/{rid}"),
        ("put", f"/v1/alerts/{rid}"),
        ("delete", f"/v1/alerts/{rid}"),
        ("post", f"/v1/alerts/{rid}/toggle"),
        ("get", f"/v1/alerts/{rid}/instances"),
        ("post", f"/v1/alerts/{rid}/test"),
        ("get", "/v1/alerts/999999"),
    ):
        kw = {"json": rule_body(name="z")} if method == "put" else {}
        r = api.client.request(method.upper(), url, headers=stranger, **kw)
        assert r.status_code == 404 and r.json()["detail"] == "alert rule not found", (method, url)
    assert api.client.get("/v1/alerts", headers=stranger).json()["data"] == []
    # the platform's seeded rules (no tenant) are nobody's through the API
    from analytics_pipelines.alerting import seed_default_rules

    seed_default_rules(ops_engine(api.settings.ops_url), enabled=())
    with ops_engine(api.settings.ops_url).connect() as conn:
        platform = (
            conn.execute(sa.select(alert_rules.c.id).where(alert_rules.c.tenant_id.is_(None))).scalars().all()
        )
    assert platform and all(
        api.client.get(f"/v1/alerts/{i}", headers=admin).status_code == 404 for i in platform
    )
    assert {x["id"] for x in api.client.get("/v1/alerts", headers=admin).json()["data"]} == set(all_ids)
    # unchanged by all the refused writes
    assert api.client.get(f"/v1/alerts/{tenant_rule['id']}", headers=admin).json()["data"] == tenant_rule
    assert {a["action"] for a in audit_rows(api)} == {"create", "toggle"}


def test_names_are_unique_per_tenant(api):
    t, other_t = api.marts.tenant_ids()
    a, b = api.headers(t, **ADMIN), api.headers(other_t, **ADMIN)
    first = api.client.post("/v1/alerts", json=rule_body(name="Refunds"), headers=a)
    assert first.status_code == 201
    # another tenant may choose the same name, and learns nothing about the first
    assert api.client.post("/v1/alerts", json=rule_body(name="Refunds"), headers=b).status_code == 201
    again = api.client.post("/v1/alerts", json=rule_body(name="Refunds"), headers=a)
    assert again.status_code == 409 and "already exists in your tenant" in again.json()["detail"]
    assert again.json()["errors"][0]["field"] == "name"
    other = api.client.post("/v1/alerts", json=rule_body(name="Other"), headers=a).json()["data"]
    renamed = api.client.put(f"/v1/alerts/{other['id']}", json=rule_body(name="Refunds"), headers=a)
    assert renamed.status_code == 409
    assert api.client.get(f"/v1/alerts/{other['id']}", headers=a).json()["data"]["name"] == "Other"
    # the platform's default rule names are free for tenants too
    assert (
        api.client.post("/v1/alerts", json=rule_body(name="high_refund_rate"), headers=a).status_code == 201
    )
    from analytics_pipelines.alerting import seed_default_rules

    assert "high_refund_rate" in seed_default_rules(ops_engine(api.settings.ops_url), enabled=())


def _old_store(url: str) -> tuple[int, int]:
    """An ops store as the version before per-tenant names created it (UNIQUE(name) on the column, without
    the per-tenant indexes), holding one tenant's rule and an instance of it: (rule id, instance id)."""
    from datetime import UTC, datetime

    from analytics_pipelines.ops.alerts import alert_instances

    md = sa.MetaData()
    rules = sa.Table(
        "alert_rules", md, *[c._copy() for c in alert_rules.columns], sa.UniqueConstraint("name")
    )
    instances = alert_instances.to_metadata(md)
    kw = {} if url.startswith("sqlite") else {"connect_args": {"options": "-c search_path=ops,public"}}
    engine = sa.create_engine(url, **kw)
    with engine.begin() as conn:
        if not url.startswith("sqlite"):
            conn.execute(sa.text("CREATE SCHEMA IF NOT EXISTS ops"))
        md.create_all(conn)
        rule = conn.execute(
            rules.insert()
            .values(
                tenant_id="00000000-0000-4000-8000-000000000001",
                name="Refunds",
                metric="refund_rate_24h_pct",
                operator="gt",
                threshold=5,
                schedule={},
                actions=[],
            )
            .returning(rules.c.id)
        ).scalar_one()
        inst = conn.execute(
            instances.insert()
            .values(
                rule_id=rule,
                scope_key="tenant:x",
                status="active",
                severity="warning",
                triggered_at=datetime.now(UTC),
            )
            .returning(instances.c.id)
        ).scalar_one()
    engine.dispose()
    return rule, inst


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_an_old_store_with_global_names_is_migrated_to_names_per_tenant(tmp_path, store, request):
    """A store made when names were unique platform-wide is migrated when opened: the global constraint
    goes (PostgreSQL: dropped; SQLite: the table rebuilt), the per-tenant indexes come, the rule, its id and
    its instance stay; then another tenant may use the name and the same tenant still may not."""
    from analytics_pipelines.ops.alerts import alert_instances, relax_rule_names

    url = (
        f"sqlite:///{tmp_path / 'old.sqlite'}"
        if store == "sqlite"
        else request.getfixturevalue("pg_database")
    )
    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    rule, inst = _old_store(url)
    ops_engine.cache_clear()
    engine = ops_engine(url)  # opening the store migrates it
    assert not relax_rule_names(engine)  # idempotent: nothing left to do
    with engine.connect() as conn:
        uniques = sa.inspect(conn).get_unique_constraints("alert_rules")
        assert not [u for u in uniques if u["column_names"] == ["name"]]
        assert (
            conn.execute(sa.select(alert_rules.c.name).where(alert_rules.c.id == rule)).scalar() == "Refunds"
        )
        got = conn.execute(sa.select(alert_instances.c.rule_id).where(alert_instances.c.id == inst)).scalar()
        assert got == rule
    api, reader = make(tmp_path, url)
    try:
        t, other_t = api.marts.tenant_ids()
        body = rule_body(name="Refunds")
        assert (
            api.client.post("/v1/alerts", json=body, headers=api.headers(other_t, **ADMIN)).status_code == 201
        )
        assert api.client.post("/v1/alerts", json=body, headers=api.headers(t, **ADMIN)).status_code == 201
        again = api.client.post("/v1/alerts", json=body, headers=api.headers(t, **ADMIN))
        assert again.status_code == 409
    finally:
        reader.close()


BAD = [
    ({"metric": "cpu_usage"}, "metric", "unknown metric 'cpu_usage'"),
    ({"metric": "anomaly:hourly_orders"}, "metric", "unknown metric"),
    ({"operator": "above"}, "operator", "unknown operator 'above'"),
    ({"aggregation": "median"}, "aggregation", "unknown aggregation 'median'"),
    ({"severity": "fatal"}, "severity", "'fatal' is not one of info, warning, error, critical"),
    ({"operator": "between"}, "threshold_high", "required for operator between"),
    ({"operator": "between", "threshold_high": 10}, "threshold_high", "greater than threshold"),
    ({"operator": "not_between", "threshold_high": 3}, "threshold_high", "greater than threshold"),
    ({"window_minutes": 90}, "window_minutes", "multiple of 60"),
    (
        {"schedule": {"timezone": "Mars/Olympus"}},
        "schedule.timezone",
        "unknown IANA time zone 'Mars/Olympus'",
    ),
    ({"schedule": {"active_hours": {"start": "25:00", "end": "06:00"}}}, "schedule.active_hours", "HH:MM"),
    ({"schedule": {"active_days": [7]}}, "schedule.active_days", "0 (Sunday) .. 6 (Saturday)"),
    ({"schedule": {"excluded_dates": ["2026-02-31"]}}, "schedule.excluded_dates", "YYYY-MM-DD"),
    ({"actions": []}, "actions", "at least one action"),
    *(
        (
            {"actions": [{"type": kind}]},
            "actions[0].type",
            f"'{kind}' is not supported; supported: email, webhook",
        )
        for kind in ("sms", "slack", "dashboard", "log", "pagerduty")
    ),
    ({"actions": [{"type": "email"}]}, "actions[0].to", "non-empty list"),
    ({"actions": [{"type": "email", "to": ["jane@"]}]}, "actions[0].to", "not e-mail addresses"),
    (
        {"actions": [{"type": "email", "to": ["a@b.com"], "url": "https://x.io"}]},
        "actions[0]",
        "unknown keys",
    ),
    ({"actions": [{"type": "webhook"}]}, "actions[0].url", "URL"),
    (
        {"actions": [{"type": "webhook", "url": "http://hooks.example.com/x"}]},
        "actions[0].url",
        "https required",
    ),
    ({"actions": [{"type": "webhook", "url": "http://127.0.0.1:9/x"}]}, "actions[0].url", "https required"),
    (
        {"actions": [{"type": "webhook", "url": "https://u:p@hooks.example.com"}]},
        "actions[0].url",
        "credentials",
    ),
    (
        {"actions": [{"type": "webhook", "url": "ftp://hooks.example.com"}]},
        "actions[0].url",
        "https required",
    ),
    ({"threshold": "ten"}, "threshold", ""),
    ({"colour": "red"}, "colour", ""),
    ({"name": ""}, "name", ""),
    ({"name": "nul\x00byte"}, "name", "control characters"),
]


@pytest.mark.parametrize("change,field,text", BAD, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD)])
def test_bad_bodies_are_422_naming_the_field(api, change, field, text):
    t = api.marts.tenant_ids()[0]
    h = api.headers(t, **ADMIN)
    r = api.client.post("/v1/alerts", json=rule_body(**change), headers=h)
    assert r.status_code == 422, r.text
    body = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert body["errors"][0]["field"] == field and text in body["detail"], body
    if field == "metric":
        assert body["known_metrics"] == list(KPI_METRICS)
    if field == "actions[0].type":
        assert body["supported_actions"] == ["email", "webhook"]
    # the same body on PUT: 422 as well, the rule untouched
    ok = api.client.post("/v1/alerts", json=rule_body(name="fine"), headers=h).json()["data"]
    assert api.client.put(f"/v1/alerts/{ok['id']}", json=rule_body(**change), headers=h).status_code == 422
    assert api.client.get(f"/v1/alerts/{ok['id']}", headers=h).json()["data"] == ok


def test_http_webhooks_to_localhost_only_in_development(tmp_path):
    api, reader = make(tmp_path, f"sqlite:///{tmp_path / 'ops.sqlite'}", mode="development")
    try:
        h = api.headers(api.marts.tenant_ids()[0], **ADMIN)
        local = rule_body(actions=[{"type": "webhook", "url": "http://localhost:8080/hook"}])
        assert api.client.post("/v1/alerts", json=local, headers=h).status_code == 201
        remote = rule_body(name="b", actions=[{"type": "webhook", "url": "http://hooks.example.com/x"}])
        assert api.client.post("/v1/alerts", json=remote, headers=h).status_code == 422
    finally:
        reader.close()


def test_fuzzed_alert_requests_never_answer_a_server_error(api):
    """schemathesis over the alert rule operations with an admin's and a venue writer's token (after a
    real rule exists, so ids hit rows too): never a 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    t = api.marts.tenant_ids()[0]
    v = api.marts.tenants[t][0]
    tokens = [api.headers(t, **ADMIN), api.headers(t, v, **WRITER)]
    for i, h in enumerate(tokens):
        assert api.client.post("/v1/alerts", json=rule_body(name=f"seed {i}"), headers=h).status_code == 201
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.client.app)
    failures = []
    for op in schema.get_all_operations():
        op = op.ok()
        if not op.path.startswith("/v1/alerts"):
            continue

        @settings(max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def check(case):
            if "alert_id" in (case.path_parameters or {}):
                case.path_parameters["alert_id"] = 1 + case.path_parameters["alert_id"] % 3
            for h in tokens:
                resp = case.call(headers=h)
                if resp.status_code >= 500 and "not materialized yet" not in resp.text:
                    failures.append(
                        (case.method, case.formatted_path, case.body, resp.status_code, resp.text[:200])
                    )

        check()
    assert not failures, failures[:5]


def test_two_processes_opening_an_old_sqlite_store_migrate_it_once(tmp_path):
    """The second opener finds the constraint gone under its write lock and leaves the table alone."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    rule, _ = _old_store(url)
    code = (
        "import sys; from analytics_pipelines.ops.db import ops_engine; ops_engine(sys.argv[1]); print('ok')"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and out.strip() == "ok", err
    ops_engine.cache_clear()
    with ops_engine(url).connect() as conn:
        assert conn.execute(sa.select(alert_rules.c.id)).scalars().all() == [rule]
