"""Dashboards and widgets over the API, in the ops store on both backends (SQLite and PostgreSQL): CRUD,
clone, share, permissions, move and duplicate round trips with their audit rows and 412 on a stale If-Match;
the seed's validation (422 naming the field); who may do what (private until shared, edit vs view, other
venue 403, other tenant 404); injection payloads in every string field stored verbatim or refused, and a
token whose subject is an injection payload sees only its own dashboards (the old dashboards-for-user query
spliced the user id into SQL)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from dashboard_helpers import READ, User, audit_rows, open_api, widget_body

from analytics_pipelines.ops.dashboards import dashboards

PAYLOADS = [
    "x' OR '1'='1",
    "'; DROP TABLE dashboards; --",
    "1; DELETE FROM widgets",
    '" OR ""="',
    "admin'/*",
    "' UNION SELECT * FROM dashboard_shares --",
]


@pytest.fixture
def api(ops_url, tmp_path):
    api, reader = open_api(f"duckdb:///{tmp_path / 'warehouse'}", tmp_path, ops_url)
    yield api
    reader.close()


def _people(api):
    t0, t1 = api.marts.tenant_ids()
    v0, v1 = api.marts.tenants[t0]
    return {
        "alice": User(api, t0, v0, "alice"),
        "bob": User(api, t0, v0, "bob"),
        "carol": User(api, t0, v0, "carol"),
        "reader": User(api, t0, v0, "rita", permissions=READ),
        "other_venue": User(api, t0, v1, "olga"),
        "admin": User(api, t0, None, "root", role="admin"),
        "other_tenant": User(api, t1, api.marts.tenants[t1][0], "alice"),
    }


def test_dashboard_crud_round_trip_with_audit_and_412(api):
    u = _people(api)
    a = u["alice"]
    r = a.post("/v1/dashboards", {"name": "Sales_board 1", "description": "first", "layout": {"columns": 12}})
    assert r.status_code == 201, r.text
    d = r.json()["data"]
    assert r.headers["Location"] == f"/v1/dashboards/{d['id']}"
    assert (d["name"], d["venue_id"], d["created_by"], d["is_default"]) == (
        "Sales_board 1",
        a.venue,
        "alice",
        False,
    )
    etag = r.headers["ETag"]
    got = a.get(f"/v1/dashboards/{d['id']}")
    assert got.status_code == 200 and got.headers["ETag"] == etag and got.json()["data"]["widgets"] == []
    listed = a.get("/v1/dashboards").json()
    assert [x["id"] for x in listed["data"]] == [d["id"]] and listed["meta"]["total"] == 1
    # replace: a stale If-Match is refused and changes nothing
    body = {"name": "Renamed", "description": "second", "layout": {"columns": 6}}
    assert a.put(f"/v1/dashboards/{d['id']}", body, etag='"stale"').status_code == 412
    assert a.get(f"/v1/dashboards/{d['id']}").json()["data"]["name"] == "Sales_board 1"
    r = a.put(f"/v1/dashboards/{d['id']}", body, etag=etag)
    assert r.status_code == 200, r.text
    assert (r.json()["data"]["name"], r.json()["data"]["layout"]) == ("Renamed", {"columns": 6})
    assert r.headers["ETag"] != etag
    assert a.delete(f"/v1/dashboards/{d['id']}", etag=etag).status_code == 412
    assert a.delete(f"/v1/dashboards/{d['id']}", etag=r.headers["ETag"]).status_code == 204
    assert a.get(f"/v1/dashboards/{d['id']}").status_code == 404
    assert audit_rows(api, "dashboard", d["id"]) == [
        ("create", "alice"),
        ("update", "alice"),
        ("delete", "alice"),
    ]


@pytest.mark.parametrize(
    "body,field",
    [
        ({"name": "x" * 101}, "name"),
        ({"name": ""}, "name"),
        ({"name": "bad;name"}, "name"),
        ({"name": "émoji ok?"}, "name"),
        ({"name": "ok", "description": "a\x00b"}, "description"),
        ({"name": "ok", "layout": {"k": "v" * 20_001}}, "layout"),
        ({"name": "ok", "colour": "red"}, "colour"),
    ],
)
def test_dashboard_validation_names_the_field(api, body, field):
    r = _people(api)["alice"].post("/v1/dashboards", body)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == field


def test_widget_round_trip_move_duplicate_validation_and_audit(api):
    a = _people(api)["alice"]
    d = a.post("/v1/dashboards", {"name": "W"}).json()["data"]["id"]
    url = f"/v1/dashboards/{d}/widgets"
    for bad, field in [
        (widget_body(width=13), "width"),
        (widget_body(height=0), "height"),
        (widget_body(x=8, width=6), "width"),
        (widget_body(type="gauge"), "type"),
        (widget_body(title=""), "title"),
    ]:
        r = a.post(url, bad)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, (field, r.text)
    r = a.post(url, widget_body(measures=["venue_analytics.no_such_measure"]))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "query.measures.0", r.text
    assert r.json()["errors"][0]["member"] == "venue_analytics.no_such_measure"
    r = a.post(url, widget_body(measures=["venue_analytics.gross_revenue", "fct_orders.orders"]))
    assert r.status_code == 422 and r.json()["errors"][0]["member"] == "fct_orders.orders"

    r = a.post(url, widget_body(x=2, y=1, width=4, height=3))
    assert r.status_code == 201, r.text
    w = r.json()["data"]
    assert (w["x"], w["y"], w["width"], w["height"], w["dashboard_id"]) == (2, 1, 4, 3, d)
    etag = r.headers["ETag"]
    move = f"/v1/widgets/{w['id']}/move"
    assert a.post(move, {"width": 11}).status_code == 422  # x 2 + 11 > 12
    assert a.post(move, {"width": 11}).json()["errors"][0]["field"] == "width"
    assert a.post(move, {"height": 13}).json()["errors"][0]["field"] == "height"
    assert a.post(move, {}).status_code == 422
    assert a.post(move, {"x": 0}, etag='"stale"').status_code == 412
    r = a.post(move, {"x": 0, "width": 12}, etag=etag)
    assert r.status_code == 200 and (r.json()["data"]["x"], r.json()["data"]["width"]) == (0, 12)
    r = a.put(f"/v1/widgets/{w['id']}", widget_body("Tickets", ["venue_analytics.tickets_sold"], type="bar"))
    assert r.status_code == 200 and r.json()["data"]["query"]["measures"] == ["venue_analytics.tickets_sold"]
    assert a.put(f"/v1/widgets/{w['id']}", widget_body(), etag='"stale"').status_code == 412
    dup = a.post(f"/v1/widgets/{w['id']}/duplicate")
    assert dup.status_code == 201, dup.text
    c = dup.json()["data"]
    assert (c["title"], c["type"], c["query"], c["y"]) == (
        "Tickets (copy)",
        "bar",
        r.json()["data"]["query"],
        4,
    )
    listed = a.get(url).json()
    assert [x["id"] for x in listed["data"]] == [w["id"], c["id"]] and listed["meta"]["total"] == 2
    assert a.delete(f"/v1/widgets/{c['id']}", etag='"stale"').status_code == 412
    assert a.delete(f"/v1/widgets/{c['id']}").status_code == 204
    assert a.get(f"/v1/widgets/{c['id']}").status_code == 404
    assert audit_rows(api, "widget", w["id"]) == [("create", "alice"), ("move", "alice"), ("update", "alice")]
    assert audit_rows(api, "widget", c["id"]) == [("duplicate", "alice"), ("delete", "alice")]
    # the dashboard's ETag follows its widgets
    assert a.get(f"/v1/dashboards/{d}").json()["data"]["widgets"][0]["title"] == "Tickets"


def test_share_permissions_clone_and_scoping(api):
    u = _people(api)
    a, b, c = u["alice"], u["bob"], u["carol"]
    d = a.post("/v1/dashboards", {"name": "Private"}).json()["data"]["id"]
    a.post(f"/v1/dashboards/{d}/widgets", widget_body())
    base = f"/v1/dashboards/{d}"
    # private until shared: a colleague of the venue does not see it
    assert b.get(base).status_code == 404 and b.get("/v1/dashboards").json()["data"] == []
    assert u["other_venue"].get(base).status_code == 403
    assert u["other_tenant"].get(base).status_code == 404
    assert u["admin"].get(base).status_code == 200
    assert u["reader"].post("/v1/dashboards", {"name": "nope"}).status_code == 403
    # share for view
    assert b.post(f"{base}/share", {"shares": [{"user": "bob", "access": "view"}]}).status_code == 404
    r = a.post(f"{base}/share", {"shares": [{"user": "bob", "access": "view"}]})
    assert r.status_code == 200, r.text
    assert [(s["subject"], s["access"]) for s in r.json()["data"]["shares"]] == [("bob", "view")]
    assert b.get(base).status_code == 200 and [x["id"] for x in b.get("/v1/dashboards").json()["data"]] == [d]
    perms = b.get(f"{base}/permissions").json()["data"]
    assert perms["owner"] == "alice" and perms["you"] == {
        "view": True,
        "edit": False,
        "delete": False,
        "share": False,
        "via": "share:view",
    }
    assert b.put(base, {"name": "Mine now"}).status_code == 403
    assert b.post(f"{base}/share", {"shares": [{"user": "carol", "access": "view"}]}).status_code == 403
    w = b.get(f"{base}/widgets").json()["data"][0]["id"]
    assert b.post(f"/v1/widgets/{w}/move", {"x": 1}).status_code == 403
    # edit share: may change and share, not delete
    a.post(f"{base}/share", {"shares": [{"user": "bob", "access": "edit"}]})
    assert b.put(base, {"name": "Edited by bob"}).status_code == 200
    assert b.post(f"/v1/widgets/{w}/move", {"x": 1}).status_code == 200
    r = b.post(f"{base}/share", {"shares": [{"user": "carol", "access": "view"}]})
    assert r.status_code == 200 and c.get(base).status_code == 200
    assert b.delete(base).status_code == 403
    assert a.post(f"{base}/share", {"shares": [{"user": "alice", "access": "view"}]}).status_code == 422
    # permissions as the owner sees them; revoke
    perms = a.get(f"{base}/permissions").json()["data"]
    assert [(s["subject"], s["access"]) for s in perms["shares"]] == [("bob", "edit"), ("carol", "view")]
    assert perms["you"]["via"] == "owner" and perms["you"]["delete"] is True
    a.post(f"{base}/share", {"shares": [{"user": "carol", "access": "none"}]})
    assert c.get(base).status_code == 404
    assert audit_rows(api, "dashboard", d)[-1] == ("share", "alice")
    # a read-only share holder without analytics.write: view only whatever the share says
    a.post(f"{base}/share", {"shares": [{"user": "rita", "access": "edit"}]})
    assert u["reader"].get(base).status_code == 200
    assert u["reader"].put(base, {"name": "x"}).status_code == 403
    # clone: the caller's, with the widgets, shared with no one
    r = b.post(f"{base}/clone", {"name": "Bobs copy"})
    assert r.status_code == 201, r.text
    clone = r.json()["data"]
    assert (clone["name"], clone["created_by"], clone["is_default"]) == ("Bobs copy", "bob", False)
    assert [x["query"] for x in clone["widgets"]] == [
        x["query"] for x in a.get(base).json()["data"]["widgets"]
    ]
    assert a.get(f"/v1/dashboards/{clone['id']}").status_code == 404  # bob's private copy
    assert b.post(f"{base}/clone").json()["data"]["name"] == "Copy of Edited by bob"
    assert audit_rows(api, "dashboard", clone["id"]) == [("clone", "bob")]
    # a widget cannot be duplicated onto another venue's dashboard
    other = u["admin"].post("/v1/dashboards", {"name": "V1", "venue_id": u["other_venue"].venue})
    assert other.status_code == 201 and other.json()["data"]["venue_id"] == u["other_venue"].venue
    r = u["admin"].post(f"/v1/widgets/{w}/duplicate", {"dashboard_id": other.json()["data"]["id"]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "dashboard_id"
    assert u["admin"].post("/v1/dashboards", {"name": "no venue"}).status_code == 422


def test_injection_payloads_are_stored_verbatim_or_refused(api):
    u = _people(api)
    a = u["alice"]
    engine = api.client.app.state.ops
    shared_with = {}
    for p in PAYLOADS:
        # the name's alphabet refuses them
        r = a.post("/v1/dashboards", {"name": p})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "name"
        # free text is kept as written
        r = a.post("/v1/dashboards", {"name": "Inj", "description": p, "layout": {p: p}})
        assert r.status_code == 201, r.text
        d = shared_with[p] = r.json()["data"]["id"]
        got = a.get(f"/v1/dashboards/{d}").json()["data"]
        assert (got["description"], got["layout"]) == (p, {p: p})
        w = a.post(f"/v1/dashboards/{d}/widgets", widget_body(title=p, options={p: [p]}))
        assert w.status_code == 201, w.text
        assert (w.json()["data"]["title"], w.json()["data"]["options"]) == (p, {p: [p]})
        r = a.post(f"/v1/dashboards/{d}/share", {"shares": [{"user": p, "access": "view"}]})
        assert r.status_code == 200 and r.json()["data"]["shares"][0]["subject"] == p
        # query members and filter values go to the query layer: refused naming the member
        bad = widget_body(measures=[p])
        assert a.post(f"/v1/dashboards/{d}/widgets", bad).json()["errors"][0]["member"] == p
        bad = widget_body()
        bad["query"]["filters"] = [{"member": "venue_analytics.venue", "operator": "equals", "values": [p]}]
        r = a.post(f"/v1/dashboards/{d}/widgets", bad)
        assert r.status_code == 422 and r.json()["errors"][0]["field"].startswith("query.filters.0"), r.text
        assert a.put(f"/v1/dashboards/{d}", {"name": p}).status_code == 422
    assert a.get("/v1/dashboards/1%20OR%201=1").status_code == 422
    # every table is still there and holds what was written
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(dashboards)).scalar() == len(PAYLOADS)
    # a subject that is an injection payload sees exactly what is shared with it, nothing more
    for p in PAYLOADS:
        sneaky = User(api, a.tenant, a.venue, p)
        seen = sneaky.get("/v1/dashboards").json()
        assert [x["id"] for x in seen["data"]] == [shared_with[p]], p  # the one dashboard shared with it
        mine = sneaky.post("/v1/dashboards", {"name": "sneaky"}).json()["data"]
        assert mine["created_by"] == p
        assert u["bob"].get(f"/v1/dashboards/{mine['id']}").status_code == 404
    lone = User(api, a.tenant, a.venue, "' OR created_by LIKE '%")
    assert lone.get("/v1/dashboards").json()["data"] == []


def test_fuzzed_dashboard_and_widget_requests_never_answer_a_server_error(api):
    """schemathesis over every dashboard and widget operation with a venue writer's and an admin's token
    (after real rows exist, so ids hit them too): never a 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    u = _people(api)
    users = [u["alice"], u["admin"]]
    d = u["alice"].post("/v1/dashboards", {"name": "Fuzz"}).json()["data"]["id"]
    u["alice"].post(f"/v1/dashboards/{d}/widgets", widget_body())
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.client.app)
    failures, seen = [], set()
    for op in schema.get_all_operations():
        op = op.ok()
        if not op.path.startswith(("/v1/dashboard", "/v1/widgets")):
            continue
        seen.add((op.method.upper(), op.path))

        @settings(max_examples=8, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def check(case):
            for key in ("dashboard_id", "widget_id"):
                if key in (case.path_parameters or {}):
                    case.path_parameters[key] = 1 + case.path_parameters[key] % 3
            for who in users:
                resp = case.call(headers=who.h)
                if resp.status_code >= 500:
                    failures.append(
                        (case.method, case.formatted_path, case.body, resp.status_code, resp.text[:200])
                    )

        check()
    assert not failures, failures[:5]
    assert len(seen) == 18, sorted(seen)  # every dashboard and widget operation was fuzzed


def test_template_and_access_rules_are_pure_and_consistent():
    from analytics_pipelines.dashboards.access import access_of
    from analytics_pipelines.dashboards.model import WidgetBody
    from analytics_pipelines.dashboards.template import default_dashboard

    fields, specs = default_dashboard()
    assert len(fields["name"]) <= 100 and len(specs) >= 5
    for spec in specs:  # every template widget is a valid widget body on the grid
        WidgetBody.model_validate(spec)
    specs[0]["title"] = "changed"
    assert default_dashboard()[1][0]["title"] == "KPIs"  # fresh copies

    def acc(**kw):
        base = {"user": "u", "is_admin": False, "can_write": True, "created_by": "o", "is_default": False}
        a = access_of(**(base | {"share": None} | kw))
        return (a.view, a.edit, a.delete, a.share, a.via)

    assert acc() == (False, False, False, False, "none")
    assert acc(created_by="u") == (True, True, True, True, "owner")
    assert acc(created_by="u", can_write=False) == (True, False, False, False, "owner")
    assert acc(share="view") == (True, False, False, False, "share:view")
    assert acc(share="edit") == (True, True, False, True, "share:edit")
    assert acc(share="edit", can_write=False) == (True, False, False, False, "share:edit")
    assert acc(is_default=True) == (True, True, False, True, "default")
    assert acc(is_default=True, can_write=False) == (True, False, False, False, "default")
    assert acc(is_admin=True, can_write=False) == (True, True, True, True, "admin")
