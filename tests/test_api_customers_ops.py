"""The customer routes of issue 20 (journey, RFM, CLV, search, list, segment analysis) over sample marts on both
warehouse backends, each figure equal to hand-written SQL over the same tables (to the cent); tenant and venue
scoping (another tenant's customer is 404, a customer of two tenants shows each tenant its own rows); the
e-mail search (found, never in a response or a log, uvicorn's access log included); and the health routes
(/health/live without I/O, /health/dependencies with a down dependency reported, bounded and masked)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import Counter

import pytest
from api_customers_sample import build_sample_customers
from api_helpers import make_api

from analytics_pipelines.customers import lookup as L
from analytics_pipelines.customers.rfm import SEGMENTS
from analytics_pipelines.warehouse import open_warehouse
from analytics_pipelines.warehouse.reader_postgres import PostgresReader


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def env(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"cust-{request.param}")
    url = (
        f"duckdb:///{tmp / 'warehouse'}"
        if request.param == "duckdb"
        else request.getfixturevalue("pg_database_module")
    )
    api, reader = make_api(url, tmp)
    cust = build_sample_customers(open_warehouse(url), api.marts)
    reader.refresh()
    if isinstance(reader, PostgresReader):
        reader._catalog_at = 0
    api.cust = cust
    api.wh = open_warehouse(url)
    yield api
    reader.close()


def _server_log(caplog) -> str:
    """Every log record but the test client's own (httpx logs each URL it requests: the client's side)."""
    return "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore")))


def _ta(api):
    a, b = api.marts.tenant_ids()
    return a, api.marts.tenants[a][0], b


def _data(r):
    assert r.status_code == 200, r.text
    return r.json()


def _user_with_everything(api, tenant, venue):
    """A customer of `venue` with an order, a refund and a resale (bought or sold) there."""
    wh = api.wh
    rows = wh.read(
        """SELECT o.user_id FROM fct_orders o
           WHERE o.tenant_id = %s AND o.venue_id = %s
             AND EXISTS (SELECT 1 FROM fct_refunds r WHERE r.user_id = o.user_id AND r.venue_id = o.venue_id)
             AND EXISTS (SELECT 1 FROM fct_resales s WHERE (s.buyer_id = o.user_id OR s.seller_id = o.user_id)
                         AND s.venue_id = o.venue_id)
           GROUP BY o.user_id ORDER BY o.user_id""",
        [tenant, venue],
    )
    assert rows.height, "the sample has a customer with orders, refunds and resales at the venue"
    return rows["user_id"][0]


def _expected_journey(api, tenant, venue, uid):
    """The timeline by hand: one query per fact, the segment changes from the RFM rows in Python."""
    wh, vc = api.wh, ("AND venue_id = %s" if venue else "")
    vp = [venue] if venue else []
    ev = []
    for typ, sql in (
        ("order", f"SELECT order_id AS id, recognized_at AS at, gross_revenue_cents AS amount FROM fct_orders "
                  f"WHERE tenant_id = %s {vc} AND user_id = %s"),
        ("refund", f"SELECT refund_id AS id, refunded_at AS at, refund_cents AS amount FROM fct_refunds "
                   f"WHERE tenant_id = %s {vc} AND user_id = %s"),
        ("resale_purchase", f"SELECT transfer_id AS id, completed_at AS at, sale_cents AS amount FROM fct_resales "
                            f"WHERE tenant_id = %s {vc} AND buyer_id = %s"),
        ("resale_sale", f"SELECT transfer_id AS id, completed_at AS at, seller_payout_cents AS amount "
                        f"FROM fct_resales WHERE tenant_id = %s {vc} AND seller_id = %s"),
    ):  # fmt: skip
        for r in wh.read(sql, [tenant, *vp, uid]).iter_rows(named=True):
            ev.append((typ, r["id"], int(r["amount"])))
    te = wh.read(
        f"SELECT event_type, ref_id, amount_cents FROM customer_ticket_events WHERE tenant_id = %s {vc} "
        "AND user_id = %s",
        [tenant, *vp, uid],
    )
    for typ, ref, amount in te.iter_rows():
        ev.append((typ, ref, None if amount is None else int(amount)))
    scope = ("venue", venue) if venue else ("tenant", tenant)
    rfm = wh.read(
        "SELECT as_of, segment FROM customer_rfm_scores WHERE scope = %s AND scope_id = %s AND user_id = %s "
        "ORDER BY as_of",
        [*scope, uid],
    )
    prev = None
    for r in rfm.iter_rows(named=True):
        if r["segment"] != prev:
            ev.append(("segment_change", r["as_of"].isoformat(), (prev or "(new)", r["segment"])))
        prev = r["segment"]
    return ev


def _got(rows):
    return [
        (e["event_type"], e["ref_id"], (e["from_segment"], e["to_segment"]))
        if e["event_type"] == "segment_change"
        else (e["event_type"], e["ref_id"], e["amount_cents"])
        for e in rows
    ]


def test_journey_equals_the_facts_and_the_rfm_history(env):
    api = env
    t, v, _ = _ta(api)
    uid = _user_with_everything(api, t, v)
    body = _data(api.get(f"/v1/customers/{uid}/journey?limit=1000", t, v))
    rows = body["data"]
    expected = _expected_journey(api, t, v, uid)
    assert Counter(_got(rows)) == Counter(expected)
    assert {e["event_type"] for e in rows} == set(L.EVENT_TYPES) - (
        {"resale_purchase", "resale_sale"} - {e[0] for e in expected}
    )
    assert body["meta"]["total"] == len(expected) and all(e["venue_id"] == v for e in rows)
    times = [e["occurred_at"] for e in rows]
    assert times == sorted(times)
    # pages of 3 put together are the whole timeline, in the same order; desc is its reverse in time
    pages = []
    for off in range(0, len(rows), 3):
        got = _data(api.get(f"/v1/customers/{uid}/journey?limit=3&offset={off}", t, v))
        assert got["meta"]["total"] == len(expected)
        pages += got["data"]
    assert pages == rows
    past = _data(api.get(f"/v1/customers/{uid}/journey?limit=3&offset={len(rows) + 5}", t, v))
    assert past["data"] == [] and past["meta"]["total"] == len(expected)  # the length, from the count
    assert "__total" not in rows[0]
    desc = _data(api.get(f"/v1/customers/{uid}/journey?limit=1000&order=desc", t, v))["data"]
    assert [e["occurred_at"] for e in desc] == sorted(times, reverse=True)
    # order amounts to the cent
    orders = api.wh.read(
        "SELECT sum(gross_revenue_cents) AS g, sum(tickets) AS k FROM fct_orders "
        "WHERE tenant_id = %s AND venue_id = %s AND user_id = %s",
        [t, v, uid],
    )
    mine = [e for e in rows if e["event_type"] == "order"]
    assert sum(e["amount_cents"] for e in mine) == int(orders["g"][0])
    assert sum(e["tickets"] for e in mine) == int(orders["k"][0])
    # a tenant-wide admin: every venue of the tenant, the tenant scope's segment changes
    full = _data(api.get(f"/v1/customers/{uid}/journey?limit=1000", t, role="admin"))
    assert Counter(_got(full["data"])) == Counter(_expected_journey(api, t, None, uid))


def test_rfm_and_clv_of_one_customer(env):
    api = env
    t, v, _ = _ta(api)
    uid = _user_with_everything(api, t, v)
    rfm = _data(api.get(f"/v1/customers/{uid}/rfm", t, v))["data"]
    exp = api.wh.read(
        "SELECT as_of, frequency, monetary_cents, segment FROM customer_rfm_scores "
        "WHERE scope = 'venue' AND venue_id = %s AND user_id = %s ORDER BY as_of DESC",
        [v, uid],
    )
    assert [(r["as_of"], r["frequency"], r["monetary_cents"], r["segment"]) for r in rfm] == [
        (d.isoformat(), int(f), int(m), s) for d, f, m, s in exp.iter_rows()
    ]
    clv = _data(api.get(f"/v1/customers/{uid}/clv", t, role="admin"))
    exp = api.wh.read(
        "SELECT venue_id, p_alive, expected_purchases_12m, clv_12m_cents, historic_value_cents "
        "FROM customer_lifetime_value WHERE tenant_id = %s AND user_id = %s ORDER BY venue_id",
        [t, uid],
    )
    assert [r["venue_id"] for r in clv["data"]] == exp["venue_id"].to_list()
    assert clv["summary"]["historic_value_cents"] == int(exp["historic_value_cents"].sum())
    assert clv["summary"]["clv_12m_cents"] == (
        int(exp["clv_12m_cents"].sum()) if exp["clv_12m_cents"].count() else None
    )
    assert clv["summary"]["p_alive"] == pytest.approx(exp["p_alive"].max())
    one = _data(api.get(f"/v1/customers/{uid}/clv", t, v))
    assert [r["venue_id"] for r in one["data"]] == [v]
    assert one["summary"]["venues"] == 1


def test_another_tenants_customers_are_404_and_a_shared_customer_sees_each_tenant_its_own(env):
    api = env
    t, v, b = _ta(api)
    theirs = [u for u, home in api.cust.users.items() if home == b]
    for uid in theirs:
        for path in ("journey", "rfm", "clv"):
            r = api.get(f"/v1/customers/{uid}/{path}", t, role="admin")
            assert r.status_code == 404, (path, r.text)
            assert uid not in r.text or "no " in r.json()["detail"]
    shared = api.cust.shared_user
    for tenant in (t, b):
        rows = _data(api.get(f"/v1/customers/{shared}/journey?limit=1000", tenant, role="admin"))["data"]
        venues = {e["venue_id"] for e in rows if e["event_type"] != "segment_change"}
        assert {e["venue_id"] for e in rows if e["event_type"] == "segment_change"} == {None}  # tenant scope
        assert venues and venues <= set(api.marts.tenants[tenant]), tenant
        assert Counter(_got(rows)) == Counter(_expected_journey(api, tenant, None, shared))
    # the list and search of one tenant never name a customer only the other tenant has
    listed = _data(api.get("/v1/customers/list?limit=1000", t, role="admin"))["data"]
    assert not {r["user_id"] for r in listed} & (set(theirs) - {shared})


def test_search_by_email_and_id(env, caplog):
    api = env
    t, v, b = _ta(api)
    uid = _user_with_everything(api, t, v)
    email = api.cust.emails[uid]
    caplog.set_level(logging.DEBUG)
    r = api.get(f"/v1/customers/search?q={email.upper()}", t, role="admin")
    body = _data(r)
    assert [x["user_id"] for x in body["data"]] == [uid] and body["meta"]["matched_by"] == "email"
    assert r.headers["cache-control"] == "no-store" and body["meta"]["total"] == 1
    c360 = api.wh.read("SELECT spend_cents FROM customer_360 WHERE tenant_id = %s AND user_id = %s", [t, uid])
    assert body["data"][0]["spend_cents"] == int(c360["spend_cents"][0])
    venue = _data(api.client.post("/v1/customers/search", json={"q": email}, headers=api.headers(t, v)))
    assert [x["user_id"] for x in venue["data"]] == [uid]
    assert email.lower() not in r.text.lower() and email.lower() not in str(venue).lower()
    # the other tenant does not find this tenant's customers by e-mail; a customer of both is found by both
    for u, home in api.cust.users.items():
        found = _data(api.get(f"/v1/customers/search?q={api.cust.emails[u]}", b, role="admin"))["data"]
        assert [x["user_id"] for x in found] == ([u] if home == b or u == api.cust.shared_user else []), u
    # by id: exact, and an 8-digit prefix equals a LIKE over customer_360
    assert [
        x["user_id"] for x in _data(api.get(f"/v1/customers/search?q={uid}", t, role="admin"))["data"]
    ] == [uid]
    prefix = uid[:8]
    exp = api.wh.read(
        "SELECT user_id FROM customer_360 WHERE tenant_id = %s AND user_id LIKE %s ORDER BY user_id",
        [t, prefix + "%"],
    )
    got = _data(api.get(f"/v1/customers/search?q={prefix.upper()}", t, role="admin"))
    assert [x["user_id"] for x in got["data"]] == exp["user_id"].to_list() and got["meta"][
        "total"
    ] == exp.height
    for q, needle in (("abc12", "at least 6"), ("abcdef1", "at least 8"), ("not an id!", "neither"),
                      ("a@b@c.de", "e-mail")):  # fmt: skip
        bad = api.get(f"/v1/customers/search?q={q}", t, role="admin")
        assert bad.status_code == 422, (q, bad.text)
        assert needle in bad.json()["detail"]
    assert (
        api.client.post("/v1/customers/search", json={"q": "a@b"}, headers=api.headers(t, v)).status_code
        == 422
    )
    assert email.lower() not in _server_log(caplog).lower() and "customers/search" in caplog.text


def test_search_query_is_not_in_uvicorns_access_log(env, caplog):
    """A real uvicorn server (its own access logger): the e-mail in ?q= never reaches a log record."""
    import httpx
    import uvicorn

    api = env
    t, v, _ = _ta(api)
    uid = _user_with_everything(api, t, v)
    email = api.cust.emails[uid]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(api.client.app, port=port, log_config=None, access_log=True))
    thread = threading.Thread(target=server.run, daemon=True)
    caplog.set_level(logging.INFO)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        r = httpx.get(f"http://127.0.0.1:{port}/v1/customers/search", params={"q": email},
                      headers=api.headers(t, role="admin"))  # fmt: skip
        assert r.status_code == 200 and [x["user_id"] for x in r.json()["data"]] == [uid]
        httpx.get(f"http://127.0.0.1:{port}/health/live")
    finally:
        server.should_exit = True
        thread.join(10)
    access = [rec.getMessage() for rec in caplog.records if rec.name == "uvicorn.access"]
    assert any("/v1/customers/search?<redacted>" in m for m in access), access
    assert any("/health/live" in m for m in access)
    # every record but the test client's own (httpx logs the URL it requested)
    server_side = _server_log(caplog)
    assert "customers/search" in server_side
    assert email not in server_side and email.replace("@", "%40") not in server_side


def test_segment_analysis_equals_sql(env):
    api = env
    t, v, _ = _ta(api)
    seg = api.wh.read(
        "SELECT segment, customers, revenue_cents FROM customer_segments WHERE scope = 'venue' AND venue_id = %s "
        "AND customers > 0 ORDER BY customers DESC, segment",
        [v],
    ).row(0, named=True)
    name = seg["segment"]
    body = _data(api.get(f"/v1/customers/segments/{name}/analysis", t, v))["data"][0]
    assert (body["customers"], body["revenue_cents"]) == (seg["customers"], seg["revenue_cents"])
    risk = api.wh.read(
        """SELECT count(*) AS n, avg(c.churn_probability) AS churn, avg(1 - c.p_alive) AS dropout,
                  sum(CASE WHEN c.churn_probability >= 0.7 THEN 1 ELSE 0 END) AS high
           FROM customer_rfm_scores r JOIN customer_lifetime_value c ON c.venue_id = r.venue_id
                AND c.user_id = r.user_id
           WHERE r.scope = 'venue' AND r.venue_id = %s AND r.segment = %s
             AND r.as_of = (SELECT max(as_of) FROM customer_rfm_scores)""",
        [v, name],
    ).row(0, named=True)
    cr = body["churn_risk"]
    assert cr["customers"] == risk["n"] == seg["customers"]
    assert cr["avg_churn_probability"] == pytest.approx(risk["churn"])
    assert cr["avg_dropout_probability"] == pytest.approx(risk["dropout"])
    assert cr["high_churn_risk_customers"] == risk["high"]
    moves = api.wh.read(
        "SELECT from_segment, to_segment, customers FROM customer_segment_transitions "
        "WHERE scope = 'venue' AND venue_id = %s AND to_as_of = (SELECT max(to_as_of) FROM "
        "customer_segment_transitions)",
        [v],
    )
    into = moves.filter((moves["to_segment"] == name) & (moves["from_segment"] != name))
    out = moves.filter((moves["from_segment"] == name) & (moves["to_segment"] != name))
    tr = body["transitions"]
    assert tr["customers_in"] == int(into["customers"].sum()) and tr["customers_out"] == int(
        out["customers"].sum()
    )
    assert {m["from_segment"] for m in tr["in"]} == set(into["from_segment"])
    assert api.get("/v1/customers/segments/Nobody/analysis", t, v).status_code == 404


def test_list_filters_equal_sql(env):
    api = env
    t, v, _ = _ta(api)
    every = _data(api.get("/v1/customers/list?limit=1000", t, role="admin"))
    c360 = api.wh.read(
        "SELECT user_id, clv_12m_cents FROM customer_360 WHERE tenant_id = %s AND orders > 0", [t]
    )
    assert every["meta"]["total"] == c360.height == len(every["data"])
    seg = every["data"][0]["segment"]
    q = "segment={s}&churn_risk=high&min_clv_cents=1000&max_clv_cents=70000&last_purchase_from={d}"
    d = api.marts.first_day.isoformat()
    got = _data(api.get(f"/v1/customers/list?{q.format(s=seg, d=d)}&limit=1000", t, role="admin"))
    exp = api.wh.read(
        """SELECT user_id FROM customer_360 WHERE tenant_id = %s AND orders > 0 AND segment = %s
           AND churn_probability >= 0.7 AND clv_12m_cents BETWEEN 1000 AND 70000
           AND CAST(last_purchase_at AS DATE) >= %s ORDER BY clv_12m_cents DESC, user_id""",
        [t, seg, api.marts.first_day],
    )
    assert [r["user_id"] for r in got["data"]] == exp["user_id"].to_list() and got["meta"][
        "total"
    ] == exp.height
    # venue scope, paginated: two pages = the venue's CLV rows, best CLV first
    venue_rows = api.wh.read(
        "SELECT user_id FROM customer_lifetime_value WHERE tenant_id = %s AND venue_id = %s "
        "ORDER BY clv_12m_cents DESC NULLS LAST, user_id",
        [t, v],
    )["user_id"].to_list()
    p1 = _data(api.get("/v1/customers/list?limit=4", t, v))
    p2 = _data(api.get("/v1/customers/list?limit=1000&offset=4", t, v))
    assert [r["user_id"] for r in p1["data"] + p2["data"]] == venue_rows
    assert p1["meta"]["total"] == len(venue_rows)
    assert api.get("/v1/customers/list?min_clv_cents=5&max_clv_cents=4", t, v).status_code == 422
    huge = api.get(f"/v1/customers/list?min_clv_cents={10**19}", t, v)  # past BIGINT: 422, not a DB error
    assert huge.status_code == 422 and "min_clv_cents" in huge.json()["detail"]
    bad = api.get("/v1/customers/list?segment=Nobody", t, v)
    assert bad.status_code == 422 and "segment" in bad.json()["detail"]
    assert set(SEGMENTS) >= {r["segment"] for r in every["data"] if r["segment"]}


# -- health ---------------------------------------------------------------------------------------------------
def test_health_live_does_no_io(tmp_path):
    from fastapi.testclient import TestClient

    from analytics_pipelines.api import Settings, create_app

    class Unreachable:
        def __getattr__(self, name):
            raise AssertionError(f"/health/live touched the reader ({name})")

    app = create_app(Settings(warehouse_url="duckdb:///nowhere", jwt_secret="x" * 40), reader=Unreachable())
    app.state.owns_reader = False
    r = TestClient(app).get("/health/live")
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_dependencies_report_down_ones_bounded_and_masked(env, monkeypatch, tmp_path):
    api = env
    t, _, _ = _ta(api)
    secret = "s3cret-pw-never-shown"
    hung = socket.socket()  # accepts connections and never says a word: an SMTP server that hangs
    hung.bind(("127.0.0.1", 0))
    hung.listen(8)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "storage:\n  postgres:\n    postgres_db:\n      username: {env: TT_DAGSTER_PG_USER}\n"
        "      password: {env: TT_DAGSTER_PG_PASSWORD}\n      hostname: 127.0.0.1\n"
        f"      db_name: dagster\n      port: {closed}\n"
    )
    for k, val in {
        "TT_SMTP_HOST": "127.0.0.1",
        "TT_SMTP_PORT": str(hung.getsockname()[1]),
        "TT_MONGO_URL": f"mongodb://admin:{secret}@127.0.0.1:{closed}/behavior?authSource=admin",
        "DAGSTER_HOME": str(home),
        "TT_DAGSTER_PG_USER": "dagster",
        "TT_DAGSTER_PG_PASSWORD": secret,
    }.items():
        monkeypatch.setenv(k, val)
    monkeypatch.delenv("TT_INFLUX_URL", raising=False)
    app = api.client.app
    monkeypatch.setattr(app.state, "dependencies", None)  # rebuilt from this environment
    monkeypatch.setitem(api.settings.extra, "health_timeout", 0.5)
    try:
        start = time.perf_counter()
        r = api.client.get("/health/dependencies", headers=api.headers(t, role="admin"))
        took = time.perf_counter() - start
    finally:
        hung.close()
    assert r.status_code == 200, r.text
    body = r.json()
    c = body["checks"]
    assert set(c) == {"warehouse", "ops_store", "smtp", "dagster_storage", "mongodb", "influxdb"}
    assert c["warehouse"]["status"] == "up" and c["ops_store"]["status"] == "up"
    assert c["smtp"]["status"] == "down" and "timed out" in c["smtp"]["error"]
    assert 450 <= c["smtp"]["latency_ms"] < 1500
    for name in ("mongodb", "dagster_storage"):
        assert c[name]["status"] == "down" and c[name]["latency_ms"] is not None, (name, c[name])
        assert c[name]["target"].startswith(("mongodb://127.0.0.1:", "postgresql://127.0.0.1:")), c[name]
    assert c["influxdb"] == {"status": "not_configured", "latency_ms": None, "target": None}
    assert body["status"] == "degraded"
    assert secret not in r.text and "admin@" not in r.text and "dagster@" not in r.text
    assert took < 2.0, "the checks ran one after the other, or one was not bounded"
    # without a token: status and latency only, no targets; a bad token is 401
    anon = api.client.get("/health/dependencies").json()["checks"]
    assert anon["mongodb"]["status"] == "down" and "target" not in anon["mongodb"]
    assert api.client.get("/health/dependencies", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_check_all_bounds_a_hung_probe_and_masks_urls():
    import asyncio

    from analytics_pipelines import health

    def hangs(timeout):
        time.sleep(3)

    def fails(timeout):
        raise ConnectionError("could not connect to postgresql://u:pw@db:5432/x")

    deps = [
        health.Dependency("slow", "x://h", hangs),
        health.Dependency("bad", "y://h", fails),
        health.Dependency("none", None, None),
    ]
    start = time.perf_counter()
    out = asyncio.run(health.check_all(deps, timeout=0.3))
    assert time.perf_counter() - start < 1.5
    assert out["slow"]["status"] == "down" and out["slow"]["error"] == "timed out after 0.3 s"
    assert out["bad"]["status"] == "down" and "pw" not in out["bad"]["error"]
    assert "postgresql://db:5432/x" in out["bad"]["error"] and out["none"]["status"] == "not_configured"
    assert health.mask_url("postgresql://u:p%40ss@db.internal:6543/wh?sslpassword=x") == (
        "postgresql://db.internal:6543/wh"
    )
    assert health.mask_url("mongodb://user:pw@[::1]:27017/") == "mongodb://[::1]:27017/"
    assert health.overall({"warehouse": {"status": "up"}, "b": {"status": "not_configured"}}) == "ok"


def test_new_routes_without_the_customer_marts_are_503_and_email_search_without_a_key_is_503(
    tmp_path, monkeypatch
):
    """Before the customer marts exist (base sample marts only): 503 naming the table, never 500. Outside
    development without TT_LANDING_PSEUDONYM_KEY an e-mail search cannot be keyed: 503, not a guess."""
    import uuid

    api, reader = make_api(f"duckdb:///{tmp_path / 'wh'}", tmp_path)
    try:
        t, v, _ = _ta(api)
        uid = uuid.uuid4()
        for url in (
            f"/v1/customers/{uid}/journey",
            f"/v1/customers/{uid}/rfm",
            f"/v1/customers/{uid}/clv",
            "/v1/customers/list",
            "/v1/customers/search?q=0123abcd",
            "/v1/customers/segments/Champions/analysis",
        ):
            r = api.get(url, t, v)
            assert r.status_code == 503 and "not materialized yet" in r.json()["detail"], (url, r.text)
        monkeypatch.setenv("TT_ENV", "production")
        monkeypatch.delenv("TT_LANDING_PSEUDONYM_KEY", raising=False)
        r = api.get("/v1/customers/search?q=ann@example.org", t, v)
        assert r.status_code == 503 and "TT_LANDING_PSEUDONYM_KEY" in r.json()["detail"]
        assert "ann@example.org" not in r.text
    finally:
        reader.close()
