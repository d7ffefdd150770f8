"""Widget data through the query layer, on both warehouse backends: widgets equal hand-written SQL over the
sample marts to the cent (venue token, and an admin reading a venue's widget); a cross-tenant walk through
every widget finds no row of another tenant; a widget whose measure has left the registry answers 409 (data,
export, and inside the default dashboard), never 500; CSV/XLSX exports hold exactly the data rows; the default
dashboard is built once from the template and every widget answers -- over the sample marts and over the
marts the real jobs materialized (`materialized`)."""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import date

import pytest
from api_helpers import SECRET
from dashboard_helpers import R, User, open_api, widget_body
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from analytics_pipelines.api import Settings, create_app
from analytics_pipelines.api import query as query_api
from analytics_pipelines.api.auth import mint_token
from analytics_pipelines.api.common import jsonable
from analytics_pipelines.dashboards.template import default_dashboard
from analytics_pipelines.registry import default_registry
from analytics_pipelines.warehouse import open_warehouse
from analytics_pipelines.warehouse.readers import open_reader

TODAY = date(2026, 11, 1)  # the day after the sample marts' and the materialized marts' last day
#: a day long after the data: the default dashboard's widgets are anchored on their marts' latest data
LATER = date(2028, 6, 1)


@pytest.fixture
def wapi(warehouse_url, tmp_path, monkeypatch):
    monkeypatch.setattr(query_api, "today", lambda: TODAY)
    api, reader = open_api(warehouse_url, tmp_path)
    yield api
    reader.close()


def _q(measures, dims=(), time=None, granularity=None, **kw):
    body = {"measures": list(measures), "dimensions": list(dims)} | kw
    if time:
        body["time_dimension"] = {"dimension": time, "granularity": granularity, "date_range": R}
    return body


IN_R = "day BETWEEN DATE '2026-10-12' AND DATE '2026-10-31'"
#: (widget query, hand-written SQL over the marts for tenant %s and venue %s, ordered?)
CASES = [
    (
        _q(
            [
                "venue_analytics.gross_revenue",
                "venue_analytics.net_revenue",
                "venue_analytics.average_order_value",
            ],
            time="venue_analytics.day",
            granularity="day",
        ),
        "SELECT day, sum(gross_revenue_cents), sum(net_revenue_cents), "
        "CAST(sum(gross_revenue_cents) AS FLOAT8) / NULLIF(sum(orders), 0) FROM venue_analytics "
        f"WHERE tenant_id = %s AND venue_id = %s AND {IN_R} GROUP BY day ORDER BY day",
        True,
    ),
    (
        _q(["venue_analytics.tickets_sold", "venue_analytics.refund_rate"], time="venue_analytics.day"),
        "SELECT sum(tickets_sold), 100 * CAST(sum(refunds_cents) AS FLOAT8) / NULLIF(sum(gross_revenue_cents), 0) "
        f"FROM venue_analytics WHERE tenant_id = %s AND venue_id = %s AND {IN_R}",
        True,
    ),
    (
        _q(
            ["event_analytics.gross_revenue", "event_analytics.tickets_sold"],
            ["event_analytics.event"],
            time="event_analytics.day",
        ),
        "SELECT event_id, sum(gross_revenue_cents), sum(tickets_sold) FROM event_analytics "
        f"WHERE tenant_id = %s AND venue_id = %s AND {IN_R} GROUP BY event_id",
        False,
    ),
    (
        _q(
            ["revenue_by_channel.gross_revenue", "revenue_by_channel.refunds"],
            ["revenue_by_channel.channel"],
            time="revenue_by_channel.day",
            granularity="week",
        ),
        "SELECT CAST(date_trunc('week', day) AS DATE), channel, sum(gross_revenue_cents), sum(refunds_cents) "
        f"FROM revenue_by_channel WHERE tenant_id = %s AND venue_id = %s AND {IN_R} GROUP BY 1, 2",
        False,
    ),
    (
        _q(
            ["customer_segments.customers", "customer_segments.revenue"],
            ["customer_segments.segment"],
            time="customer_segments.as_of",
            granularity="day",
        ),
        "SELECT as_of, segment, sum(customers), sum(revenue_cents) FROM customer_segments "
        "WHERE tenant_id = %s AND venue_id = %s AND scope = 'venue' "
        "AND as_of BETWEEN DATE '2026-10-12' AND DATE '2026-10-31' GROUP BY 1, 2",
        False,
    ),
    (
        _q(
            ["event_performance.gross_revenue", "event_performance.capacity_utilization"],
            ["event_performance.event_name"],
        ),
        "SELECT event_name, sum(gross_revenue_cents), "
        "100 * CAST(sum(tickets_sold) AS FLOAT8) / NULLIF(sum(capacity), 0) FROM event_performance "
        "WHERE tenant_id = %s AND venue_id = %s GROUP BY event_name",
        False,
    ),
]


def _norm(v):
    v = jsonable(v)
    return round(v, 6) if isinstance(v, float) else v


def _rows(rows) -> list[tuple]:
    return [tuple(_norm(x) for x in r) for r in rows]


def _same(got, want, ordered):
    if not ordered:
        got, want = sorted(got, key=repr), sorted(want, key=repr)
    assert got == want


def test_widget_data_equals_hand_written_sql(wapi):
    t = wapi.marts.tenant_ids()[0]
    v = wapi.marts.tenants[t][0]
    alice, admin = User(wapi, t, v, "alice"), User(wapi, t, None, "root", role="admin")
    d = alice.post("/v1/dashboards", {"name": "Cents"}).json()["data"]["id"]
    wh = open_warehouse(wapi.warehouse_url)
    for i, (query, sql, ordered) in enumerate(CASES):
        body = widget_body(f"w{i}") | {"query": query}
        r = alice.post(f"/v1/dashboards/{d}/widgets", body)
        assert r.status_code == 201, (i, r.text)
        w = r.json()["data"]["id"]
        outs = []
        for who in (alice, admin):  # the admin reads the venue's widget in the venue's scope
            r = who.get(f"/v1/widgets/{w}/data")
            assert r.status_code == 200, r.text
            outs.append(r.json())
        width = len(outs[0]["meta"]["members"])
        names = ", ".join(f"c{j}" for j in range(width))
        want = _rows(wh.read(f"SELECT * FROM ({sql}) AS q({names})", [t, v]).rows())
        assert want, f"case {i}: the hand-written SQL finds no rows"
        for out in outs:
            assert out["widget"]["id"] == w and out["meta"]["returned"] == len(want)
            _same(_rows(row.values() for row in out["data"]), want, ordered)
        assert "sql" not in alice.get(f"/v1/widgets/{w}/data").json()


def test_cross_tenant_walk_through_every_widget(wapi):
    """A widget per cube (grouped by venue) on a dashboard of every venue of both tenants; every token walks
    every widget: another tenant's is 404, another venue's 403, its own answers only its venue's rows."""
    marts = wapi.marts
    tokens, owned = [], {}
    for t, venues in marts.tenants.items():
        tokens.append(User(wapi, t, None, "root", role="admin"))
        for v in venues:
            u = User(wapi, t, v, "owner")
            tokens.append(u)
            d = u.post("/v1/dashboards", {"name": "Walk"}).json()["data"]["id"]
            u.post(f"/v1/dashboards/{d}/share", {"shares": [{"user": "root", "access": "view"}]})
            for name, cube in default_registry().cubes().items():
                q = {
                    "measures": [f"{name}.{cube.measures[0].name}"],
                    "dimensions": [f"{name}.venue"],
                    "limit": 10_000,
                }
                if cube.time:
                    q["time_dimension"] = {"dimension": f"{name}.{cube.time}", "date_range": R}
                r = u.post(f"/v1/dashboards/{d}/widgets", widget_body(name) | {"query": q})
                assert r.status_code == 201, r.text
                owned[r.json()["data"]["id"]] = (t, v)
            # a stored filter naming another tenant's venue finds nothing
            other = next(x for tt, vs in marts.tenants.items() if tt != t for x in vs)
            q = _q(["venue_analytics.gross_revenue"], ["venue_analytics.venue"], time="venue_analytics.day")
            q["filters"] = [{"member": "venue_analytics.venue", "operator": "equals", "values": [other]}]
            w = u.post(f"/v1/dashboards/{d}/widgets", widget_body("foreign") | {"query": q}).json()["data"][
                "id"
            ]
            assert u.get(f"/v1/widgets/{w}/data").json()["data"] == []
    answered = 0
    for u in tokens:
        for w, (t, v) in owned.items():
            r = u.get(f"/v1/widgets/{w}/data")
            if u.tenant != t:
                assert r.status_code == 404, r.text
                continue
            if u.venue not in (None, v):
                assert r.status_code == 403, r.text
                continue
            assert r.status_code == 200, r.text
            rows = r.json()["data"]
            venue_col = next(k for k in r.json()["meta"]["members"] if k.endswith(".venue"))
            assert rows and {row[venue_col] for row in rows} == {v}, (w, rows[:3])
            answered += 1
    assert answered == 2 * len(owned)  # each widget: its venue's owner and its tenant's admin


class _Vanished:
    """The app's registry with a measure (and the formulas over it) gone from one cube."""

    def __init__(self, registry, cube: str, measure: str):
        self.tables, self._reg, self._cube, self._measure = registry.tables, registry, cube, measure

    def cubes(self):
        out = dict(self._reg.cubes())
        c = out[self._cube]
        keep = tuple(
            m for m in c.measures if m.name != self._measure and self._measure not in (m.formula or "")
        )
        out[self._cube] = dataclasses.replace(c, measures=keep)
        return out


def test_a_widget_whose_measure_left_the_registry_answers_409(wapi):
    t = wapi.marts.tenant_ids()[0]
    v = wapi.marts.tenants[t][0]
    a = User(wapi, t, v, "alice", permissions=("analytics.read", "analytics.write", "analytics.export"))
    d = a.post("/v1/dashboards", {"name": "Stale"}).json()["data"]["id"]
    w = a.post(f"/v1/dashboards/{d}/widgets", widget_body()).json()["data"]["id"]
    ok = a.post(f"/v1/dashboards/{d}/widgets", widget_body("ok", ["venue_analytics.tickets_sold"]))
    assert a.get(f"/v1/widgets/{w}/data").status_code == 200
    app = wapi.client.app
    app.state.registry = _Vanished(app.state.registry, "venue_analytics", "gross_revenue")
    for url in (f"/v1/widgets/{w}/data", f"/v1/widgets/{w}/export?format=csv"):
        r = a.get(url)
        assert r.status_code == 409, (url, r.text)
        p = r.json()
        assert p["type"].endswith("widget-query-stale") and p["widget_id"] == w
        assert p["errors"][0]["member"] == "venue_analytics.gross_revenue"
        assert "venue_analytics.gross_revenue" in p["detail"]
    assert a.get(f"/v1/widgets/{ok.json()['data']['id']}/data").status_code == 200
    # the default dashboard keeps answering: its widgets over the vanished measure carry the 409
    board = a.get("/v1/dashboard").json()["data"]
    stale = [x for x in board["widgets"] if "error" in x]
    assert stale and all(x["error"]["status"] == 409 for x in stale)
    assert all(
        "data" in x for x in board["widgets"] if "venue_analytics.gross_revenue" not in str(x["query"])
    )
    # a new widget over it is refused when written (422 naming the member)
    r = a.post(f"/v1/dashboards/{d}/widgets", widget_body())
    assert r.status_code == 422 and r.json()["errors"][0]["member"] == "venue_analytics.gross_revenue"


def test_export_csv_and_xlsx_hold_the_data_rows(wapi):
    t = wapi.marts.tenant_ids()[0]
    v = wapi.marts.tenants[t][0]
    a = User(wapi, t, v, "alice", permissions=("analytics.read", "analytics.write", "analytics.export"))
    d = a.post("/v1/dashboards", {"name": "Export"}).json()["data"]["id"]
    q = _q(
        ["revenue_by_channel.gross_revenue", "revenue_by_channel.tickets", "revenue_by_channel.refund_rate"],
        ["revenue_by_channel.channel"],
        time="revenue_by_channel.day",
        granularity="week",
    )
    w = a.post(f"/v1/dashboards/{d}/widgets", widget_body("By channel") | {"query": q}).json()["data"]["id"]
    data = a.get(f"/v1/widgets/{w}/data").json()
    rows = data["data"]
    assert rows
    members = list(rows[0])
    assert set(members) == set(data["meta"]["members"])
    r = a.get(f"/v1/widgets/{w}/export?format=csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert f"widget-{w}-by_channel.csv" in r.headers["content-disposition"]
    table = list(csv.reader(io.StringIO(r.text)))
    names = [m + "_cents" if data["meta"]["members"][m].get("unit") == "cents" else m for m in members]
    assert table[0] == names
    assert table[1:] == [["" if row[m] is None else str(row[m]) for m in members] for row in rows]
    r = a.get(f"/v1/widgets/{w}/export?format=xlsx")
    assert r.status_code == 200 and "spreadsheetml" in r.headers["content-type"]
    sheet = load_workbook(io.BytesIO(r.content)).active
    values = list(sheet.iter_rows(values_only=True))
    assert len(values) == len(rows) + 1 and len(values[0]) == len(members)
    for got, row in zip(values[1:], rows, strict=True):
        for cell, m in zip(got, members, strict=True):
            want = row[m]
            if data["meta"]["members"][m].get("unit") == "cents":
                assert cell == pytest.approx(want / 100), m  # the XLSX shows amounts
            elif isinstance(want, float):
                assert cell == pytest.approx(want), m
            else:
                assert str(cell) == str(want) or cell == want, m
    assert a.get(f"/v1/widgets/{w}/export?format=pdf").status_code == 422
    reader = User(wapi, t, v, "alice")  # analytics.export is what an export needs
    assert reader.get(f"/v1/widgets/{w}/export?format=csv").status_code == 403


def test_default_dashboard_is_built_once_and_every_widget_answers(wapi, monkeypatch):
    monkeypatch.setattr(
        query_api, "today", lambda: LATER
    )  # years after the data: anchored widgets still answer
    t = wapi.marts.tenant_ids()[0]
    v0, v1 = wapi.marts.tenants[t]
    first = User(wapi, t, v0, "rita", permissions=("analytics.read",))
    r = first.get("/v1/dashboard")
    assert r.status_code == 200, r.text
    board = r.json()["data"]
    _, template = default_dashboard()
    assert board["is_default"] and [w["title"] for w in board["widgets"]] == [w["title"] for w in template]
    for w in board["widgets"]:
        assert w["data"]["data"], w["title"]
    kpis = board["widgets"][0]["data"]
    assert kpis["meta"]["date_range"] == [
        "2025-10-31",
        "2026-10-31",
    ]  # 366 days (inclusive) up to the latest data
    want = open_warehouse(wapi.warehouse_url).read(
        "SELECT sum(gross_revenue_cents) AS g, sum(tickets_sold) AS n FROM venue_analytics "
        "WHERE tenant_id = %s AND venue_id = %s",
        [t, v0],
    )
    assert kpis["data"][0]["venue_analytics.gross_revenue"] == want["g"][0]
    assert kpis["data"][0]["venue_analytics.tickets_sold"] == want["n"][0]
    # the same query without the anchor follows the layer's default (ending today): nothing that late
    writer = User(wapi, t, v0, "bob")
    d = writer.post("/v1/dashboards", {"name": "Plain"}).json()["data"]["id"]
    plain = template[0] | {"options": {}}
    w = writer.post(f"/v1/dashboards/{d}/widgets", plain).json()["data"]["id"]
    assert writer.get(f"/v1/widgets/{w}/data").json()["data"][0]["venue_analytics.gross_revenue"] is None
    again = User(wapi, t, v0, "bob").get("/v1/dashboard").json()["data"]
    assert again["id"] == board["id"]
    admin = User(wapi, t, None, "root", role="admin")
    assert admin.get("/v1/dashboard").status_code == 422
    other = admin.get(f"/v1/dashboard?venue_id={v1}").json()["data"]
    assert other["id"] != board["id"] and other["venue_id"] == v1
    # every reader of the venue sees the default one; a writer may edit it, not delete it
    assert [x["id"] for x in User(wapi, t, v0, "carol").get("/v1/dashboards").json()["data"]] == [board["id"]]
    assert writer.put(f"/v1/dashboards/{board['id']}", {"name": "Our overview"}).status_code == 200
    assert writer.delete(f"/v1/dashboards/{board['id']}").status_code == 403
    assert admin.delete(f"/v1/dashboards/{board['id']}").status_code == 204
    assert first.get("/v1/dashboard").json()["data"]["id"] != board["id"]  # built again


def test_default_dashboard_over_the_materialized_marts(materialized, tmp_path, monkeypatch):
    """After the real jobs ran (what `make run` does at small scale), every venue's default dashboard answers
    with rows in every widget -- also long after the data's last day (the widgets are anchored on it)."""
    monkeypatch.setattr(query_api, "today", lambda: LATER)
    url = materialized.warehouse_url
    pairs = (
        open_warehouse(url)
        .read("SELECT DISTINCT tenant_id, venue_id FROM venue_analytics ORDER BY 1, 2")
        .rows()
    )
    assert pairs
    settings = Settings(warehouse_url=url, jwt_secret=SECRET, ops_url=f"sqlite:///{tmp_path / 'ops.db'}")
    reader = open_reader(url)
    try:
        client = TestClient(create_app(settings, reader=reader))
        for tenant, venue in pairs:
            token = mint_token(settings, tenant_id=tenant, venue_id=venue, permissions=["analytics.read"])
            r = client.get("/v1/dashboard", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200, r.text
            for w in r.json()["data"]["widgets"]:
                assert "error" not in w, w.get("error")
                rows = w["data"]["data"]
                assert rows, (venue, w["title"])
                assert any(
                    v not in (None, 0) for row in rows for k, v in row.items() if k in w["query"]["measures"]
                )
    finally:
        reader.close()


def test_a_widget_and_the_same_v1_query_share_one_cached_answer(wapi, monkeypatch):
    """The widget's data goes through the query layer's compile and the reader's cache: after POST /v1/query
    asked the same question for the same venue, the widget's data runs no query."""
    t = wapi.marts.tenant_ids()[0]
    v = wapi.marts.tenants[t][0]
    a = User(wapi, t, v, "alice")
    d = a.post("/v1/dashboards", {"name": "Cache"}).json()["data"]["id"]
    body = widget_body("cached", ["venue_analytics.orders", "venue_analytics.fees"])
    w = a.post(f"/v1/dashboards/{d}/widgets", body).json()["data"]["id"]
    reader = wapi.client.app.state.reader
    ran, real = [], reader.query
    monkeypatch.setattr(reader, "query", lambda *args, **kw: ran.append(args[1]) or real(*args, **kw))
    direct = wapi.client.post("/v1/query", headers=a.h, json=body["query"])
    assert direct.status_code == 200 and len(ran) == 2  # the rows and the as-of
    got = a.get(f"/v1/widgets/{w}/data").json()
    assert len(ran) == 2, ran  # both from the cache
    assert got["data"] == direct.json()["data"] and got["meta"] == direct.json()["meta"]
