"""The semantic query layer (POST /v1/query) end to end over the sample marts, on both warehouse backends:
31 queries equal hand-written SQL to the cent; a cross-tenant walk through every cube finds only the token's
tenant and venue; every bad request (unknown members, disallowed joins, granularities, ranges, injection
payloads in every field) is a 422 naming the member and no query runs; results come from the reader's cache
until a mart read changes; a query past the statement timeout is cancelled (504)."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime

import polars as pl
import pytest
from api_helpers import make_api
from query_bad import BAD, PAYLOADS, bodies_with
from query_cases import CASES, Case, R
from query_sample import build_query_marts

from analytics_pipelines.api import query as query_api
from analytics_pipelines.api.common import jsonable
from analytics_pipelines.query.compile import Compiled
from analytics_pipelines.registry import default_registry
from analytics_pipelines.warehouse import open_warehouse
from analytics_pipelines.warehouse.reader import QueryTimeout

ADMIN = {"role": "admin"}


def _open(url, tmp, **settings):
    api, reader = make_api(url, tmp, **settings)
    build_query_marts(open_warehouse(url), api.marts)
    reader.refresh()
    return api, reader


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def qapi(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("query")
    url = (
        f"duckdb:///{tmp / 'warehouse'}"
        if request.param == "duckdb"
        else request.getfixturevalue("pg_database_module")
    )
    api, reader = _open(url, tmp)
    yield api
    reader.close()


@pytest.fixture
def fresh(warehouse_url, tmp_path):
    """A warehouse of its own (the test writes to it), on each backend."""
    api, reader = _open(warehouse_url, tmp_path, query_timeout_seconds=0.3)
    yield api, reader
    reader.close()


def _tenants(api):
    t0, t1 = api.marts.tenant_ids()
    return t0, api.marts.tenants[t0], t1, api.marts.tenants[t1]


def post(api, body, tenant, venue=None, **kw):
    return api.client.post("/v1/query", headers=api.headers(tenant, venue, **kw), json=body)


def _norm(v):
    v = jsonable(v)
    return round(v, 6) if isinstance(v, float) else v


def _same(got: list[tuple], want: list[tuple], ordered: bool) -> None:
    if not ordered:
        got, want = sorted(got, key=repr), sorted(want, key=repr)
    assert len(got) == len(want), (len(got), len(want))
    for g, w in zip(got, want, strict=True):
        assert len(g) == len(w)
        for a, b in zip(g, w, strict=True):
            if isinstance(a, float) or isinstance(b, float):
                assert a == pytest.approx(b, rel=1e-9, abs=1e-9), (g, w)
            else:
                assert a == b, (g, w)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_query_equals_hand_written_sql(qapi, case: Case):
    t, venues, _, _ = _tenants(qapi)
    body = json.loads(json.dumps(case.request).replace("{venue}", venues[1]))
    if case.who == "venue":
        r, params = post(qapi, body, t, venues[0]), [t, venues[0]]
    else:
        r, params = (
            post(qapi, body, t, **ADMIN),
            [t] + ([venues[1]] if case.who == "admin-venue-filter" else []),
        )
    assert r.status_code == 200, r.text
    out = r.json()
    got = [tuple(_norm(v) for v in row.values()) for row in out["data"]]
    width = len(out["data"][0]) if out["data"] else 1
    names = ", ".join(f"c{i}" for i in range(width))  # PostgreSQL names unnamed columns alike: name them
    hand = f"SELECT * FROM ({case.sql}) AS q({names})"
    want = [
        tuple(_norm(v) for v in row) for row in open_warehouse(qapi.warehouse_url).read(hand, params).rows()
    ]
    assert want, f"{case.id}: the hand-written SQL finds no rows; the comparison would prove nothing"
    _same(got, want, case.ordered)
    assert len(out["data"][0]) == len(want[0])
    # an admin sees the SQL that ran: registry identifiers only, every value a parameter
    if case.who != "venue":
        assert t not in out["sql"] and t in out["params"]


def test_the_answer_carries_members_as_of_and_range_and_only_admins_see_sql(qapi):
    t, venues, _, _ = _tenants(qapi)
    body = {
        "measures": ["venue_analytics.gross_revenue"],
        "filters": [
            {"member": "event_performance.category_name", "operator": "equals", "values": ["Concert"]}
        ],
        "time_dimension": {"dimension": "venue_analytics.day", "granularity": "month", "date_range": R},
    }
    # a dimension of a mart venue_analytics may not join
    assert post(qapi, body, t, **ADMIN).status_code == 422
    body = {
        "measures": ["event_analytics.gross_revenue"],
        "filters": [
            {"member": "event_performance.category_name", "operator": "equals", "values": ["Concert"]}
        ],
        "time_dimension": {"dimension": "event_analytics.day", "granularity": "month", "date_range": R},
    }
    admin = post(qapi, body, t, **ADMIN).json()
    assert "Concert" not in admin["sql"] and "Concert" in admin["params"]
    assert admin["meta"]["as_of"] == {"event_analytics": "2026-10-31", "event_performance": None}
    assert admin["meta"]["date_range"] == R
    assert admin["meta"]["members"]["event_analytics.gross_revenue"]["unit"] == "cents"
    user = post(qapi, body, t, venues[0]).json()
    assert "sql" not in user and "params" not in user
    assert (
        user["data"][0]["event_analytics.gross_revenue"] < admin["data"][0]["event_analytics.gross_revenue"]
    )
    kpi = post(qapi, {"measures": ["kpi_snapshots.snapshots"]}, t, venues[0]).json()
    assert kpi["meta"]["as_of"]["kpi_snapshots"] == "2026-10-31T23:00:00Z"
    members = qapi.client.get("/v1/query/members", headers=qapi.headers(t, venues[0])).json()["cubes"]
    assert {"venue_analytics", "customer_segments", "conversion_funnel"} <= set(members)
    aov = next(m for m in members["venue_analytics"]["measures"] if m["name"].endswith("average_order_value"))
    assert aov["formula"] == "gross_revenue / orders"


def test_cross_tenant_walk_finds_only_the_tokens_rows(qapi):
    """Every cube, every dimension, as each tenant's admin and as a venue: only the token's venues come back,
    and a filter naming another tenant's venue finds nothing."""
    t0, v0, t1, v1 = _tenants(qapi)
    walked = 0
    for name, cube in default_registry().cubes().items():
        summable = [f"{name}.{m.name}" for m in cube.measures]  # formulas included: every measure runs
        for tenant, mine, theirs, venue in ((t0, v0, v1, None), (t1, v1, v0, None), (t0, v0, v1, v0[0])):
            kw = {} if venue else ADMIN
            for d in cube.dimensions:
                body = {
                    "measures": summable,
                    "dimensions": [f"{name}.venue"] + ([f"{name}.{d.name}"] if d.name != "venue" else []),
                    "limit": 10_000,
                }
                if cube.time:
                    body["time_dimension"] = {
                        "dimension": f"{name}.{cube.time}",
                        "date_range": ["2026-01-01", "2026-12-31"],
                    }
                r = post(qapi, body, tenant, venue, **kw)
                assert r.status_code == 200, (name, d.name, r.text)
                seen = {row[f"{name}.venue"] for row in r.json()["data"]}
                assert seen, (name, d.name)
                assert seen <= ({venue} if venue else set(mine) | {None}), (name, d.name, seen)
                walked += 1
            other = {
                **body,
                "filters": [{"member": f"{name}.venue", "operator": "equals", "values": [theirs[0]]}],
            }
            assert post(qapi, other, tenant, venue, **kw).json()["data"] == [], name
        for g in cube.dimension(cube.time).granularities if cube.time else ():
            body = {
                "measures": summable,
                "dimensions": [f"{name}.venue"],
                "time_dimension": {"dimension": f"{name}.{cube.time}", "granularity": g, "date_range": R},
            }
            r = post(qapi, body, t0, v0[0])
            assert r.status_code == 200, (name, g, r.text)
            assert {row[f"{name}.venue"] for row in r.json()["data"]} <= {v0[0]}, (name, g)
    assert walked >= 60


@pytest.fixture
def spied(qapi, monkeypatch):
    reader = qapi.client.app.state.reader
    calls = []
    monkeypatch.setattr(reader, "query", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(reader, "cached", lambda *a, **k: calls.append(a))
    return calls


def _problem(r, field: str):
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["status"] == 422 and r.headers["content-type"].startswith("application/problem+json")
    fields = [e["field"] for e in body["errors"]]
    assert any(f == field or f.startswith(field + ".") for f in fields), (field, fields)
    return body


@pytest.mark.parametrize("field,body,msg", BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_requests_are_422_naming_the_member_and_nothing_runs(qapi, spied, field, body, msg):
    t, venues, _, _ = _tenants(qapi)
    problem = _problem(post(qapi, body, t, **ADMIN), field)
    assert msg in problem["detail"], problem["detail"]
    assert spied == []


@pytest.mark.parametrize("payload", PAYLOADS)
def test_injection_in_every_field_is_422_and_nothing_runs(qapi, spied, payload):
    t, venues, _, _ = _tenants(qapi)
    for field, body in bodies_with(payload):
        _problem(post(qapi, body, t, venues[0]), field)
    assert spied == []


def test_cache_hit_on_repeat_and_miss_after_a_write_to_a_mart_read(fresh):
    api, reader = fresh
    t, venues, _, _ = _tenants(api)
    body = {
        "measures": ["venue_analytics.gross_revenue"],
        "time_dimension": {"dimension": "venue_analytics.day", "date_range": R},
    }
    first = post(api, body, t, **ADMIN).json()["data"]
    hits, misses = reader.cache_hits, reader.cache_misses
    assert post(api, body, t, **ADMIN).json()["data"] == first
    assert reader.cache_hits >= hits + 2 and reader.cache_misses == misses  # the rows and the as-of: cached

    wh = open_warehouse(api.warehouse_url)
    # a write to a mart the query does not read keeps the answer cached
    rbc = wh.read_table("revenue_by_channel").filter(pl.col("day") == date(2026, 10, 31))
    wh.write_partitions("revenue_by_channel", rbc, ["day"], [("2026-10-31",)])
    reader.refresh()
    hits = reader.cache_hits
    assert post(api, body, t, **ADMIN).json()["data"] == first and reader.cache_hits >= hits + 2

    # a run landing new rows in venue_analytics: the cached answer is forgotten, the new total is served
    va = wh.read_table("venue_analytics").filter(pl.col("day") == date(2026, 10, 31))
    va = va.with_columns(pl.col("gross_revenue_cents") + 1_000)
    wh.write_partitions("venue_analytics", va, ["day"], [("2026-10-31",)])
    warmed = reader.cache_warmed
    reader.refresh()
    # the answer was used lately: the refresh recomputed it before any request asked (refresh-ahead)
    assert reader.cache_warmed >= warmed + 1
    again = post(api, body, t, **ADMIN).json()["data"]
    added = 1_000 * len(api.marts.tenants[t])
    assert again[0]["venue_analytics.gross_revenue"] == first[0]["venue_analytics.gross_revenue"] + added


SLOW = {
    "duckdb": "SELECT count(*) AS n FROM range(100000000000) t(a) WHERE mod(a, 7) = 3",
    "postgres": "SELECT count(*) AS n FROM generate_series(1, 1000000000) a WHERE mod(a, 7) = 3",
}


def test_a_query_past_the_statement_timeout_is_cancelled(fresh, monkeypatch):
    api, reader = fresh
    t, venues, _, _ = _tenants(api)
    slow = SLOW[reader.kind]
    started = time.monotonic()
    with pytest.raises(QueryTimeout):
        reader.query(t, slow, [], [], timeout=0.3)
    assert time.monotonic() - started < 5
    # the reader answers the next query normally, and the route answers 504 with a problem body
    assert reader.query(t, "SELECT 1 AS one", [], []).rows == [(1,)]
    monkeypatch.setattr(
        query_api,
        "compile_for",
        lambda request, p, body, rename=None: Compiled(slow, [], [], {}, None, 1, 0, []),
    )
    started = time.monotonic()
    r = post(api, {"measures": ["venue_analytics.orders"]}, t, venues[0])
    assert r.status_code == 504 and r.json()["type"].endswith("/query-timeout"), r.text
    assert r.json()["timeout_seconds"] == 0.3 and time.monotonic() - started < 5


def test_grafana_panels_are_answered_by_the_same_layer(qapi):
    """A Grafana target naming a layer measure returns the /v1/query series, from the same cache entry;
    kpi.* and sales.* go through the layer too (admin: the tenant-wide KPI rows)."""
    t, venues, _, _ = _tenants(qapi)
    h = qapi.headers(t, **ADMIN)
    names = qapi.client.post("/grafana/search", json={"target": "average_order"}, headers=h).json()
    assert (
        "venue_analytics.average_order_value" in names
        and "customer_segments.average_order_value" not in names
    )
    body = {
        "measures": ["venue_analytics.average_order_value"],
        "time_dimension": {"dimension": "venue_analytics.day", "granularity": "week", "date_range": R},
        "limit": 10_000,
    }
    series = post(qapi, body, t, **ADMIN).json()["data"]
    reader = qapi.client.app.state.reader
    hits = reader.cache_hits
    rng = {"from": f"{R[0]}T00:00:00Z", "to": f"{R[1]}T23:59:59Z"}
    targets = [{"target": "venue_analytics.average_order_value.week"}, {"target": "kpi.hourly_revenue_cents"}]
    out = qapi.client.post("/grafana/query", headers=h, json={"range": rng, "targets": targets}).json()
    assert reader.cache_hits >= hits + 1  # the panel's query is the /v1/query one: a cache hit
    assert [p[0] for p in out[0]["datapoints"]] == pytest.approx(
        [row["venue_analytics.average_order_value"] for row in series]
    )
    first = date.fromisoformat(series[0]["venue_analytics.day.week"])
    assert out[0]["datapoints"][0][1] == int(
        datetime(first.year, first.month, first.day, tzinfo=UTC).timestamp() * 1000
    )
    kpi = open_warehouse(qapi.warehouse_url).read_table("kpi_snapshots")
    tenant_rows = kpi.filter(
        (pl.col("tenant_id") == t)
        & pl.col("venue_id").is_null()
        & (pl.col("metric") == "hourly_revenue_cents")
    )
    assert tenant_rows.height > 0
    assert sorted(p[0] for p in out[1]["datapoints"]) == pytest.approx(sorted(tenant_rows["value"].to_list()))
    bad = qapi.client.post(
        "/grafana/query", headers=h, json={"range": rng, "targets": [{"target": "venue_analytics.nope"}]}
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["member"] == "venue_analytics.nope"


def test_random_well_formed_requests_never_fail_the_server(qapi):
    """Requests drawn from the registry's own members (any cube, measures, dimensions through its joins,
    granularities, filters with every operator and values of every kind, order): 200 or 422, never a 5xx,
    and a venue token's rows are its venue's."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from analytics_pipelines.query.model import OPERATORS
    from analytics_pipelines.registry.semantic import GRANULARITIES

    t, venues, _, theirs = _tenants(qapi)
    cubes = default_registry().cubes()
    values = st.sampled_from(
        [
            venues[0],
            theirs[0],
            "web",
            "primary:web",
            "Champions",
            "Can't Lose Them",
            "hourly_revenue_cents",
            "2026-10-20",
            "2026-10-20T05:00:00",
            3,
            2.5,
            True,
            "true",
            "x",
            "",
            "-1",
        ]
    )

    @st.composite
    def requests(draw):
        name = draw(st.sampled_from(sorted(cubes)))
        cube = cubes[name]
        own = [f"{name}.{d.name}" for d in cube.dimensions]
        joined = [f"{j.to}.{d.name}" for j in cube.joins for d in cubes[j.to].dimensions]
        measures = draw(
            st.lists(st.sampled_from([f"{name}.{m.name}" for m in cube.measures]), max_size=3, unique=True)
        )
        dims = draw(st.lists(st.sampled_from(own + joined), max_size=2, unique=True))
        body = {"measures": measures, "dimensions": dims}
        if cube.time and draw(st.booleans()):
            first = draw(st.dates(date(2026, 9, 1), date(2026, 10, 31)))
            body["time_dimension"] = {
                "dimension": f"{name}.{cube.time}",
                "granularity": draw(st.sampled_from([None, *GRANULARITIES])),
                "date_range": [first.isoformat(), "2026-10-31"],
            }
        body["filters"] = [
            {
                "member": draw(st.sampled_from(own + joined + measures)),
                "operator": draw(st.sampled_from(OPERATORS)),
                "values": draw(st.lists(values, max_size=2)),
            }
            for _ in range(draw(st.integers(0, 2)))
        ]
        if measures + dims and draw(st.booleans()):
            body["order"] = {draw(st.sampled_from(measures + dims)): draw(st.sampled_from(["asc", "desc"]))}
        body["limit"] = draw(st.integers(1, 50))
        return body

    statuses = []

    # derandomized: the same 60 bodies every run (hypothesis's draws are not independent: a random run
    # answered 200 to anything from 17 to 40 of 60, so a share checked on random draws was flaky)
    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(body=requests())
    def check(body):
        r = post(qapi, body, t, venues[0])
        assert r.status_code in (200, 422), (body, r.status_code, r.text[:300])
        statuses.append(r.status_code)
        if r.status_code == 200:
            for row in r.json()["data"]:
                for k, v in row.items():
                    if k.endswith(".venue"):
                        assert v in (venues[0], None), (body, row)

    check()
    # a good share of the bodies is valid (a generator gone wrong -- everything 422 -- fails this)
    assert statuses.count(200) >= len(statuses) // 4, statuses.count(200)  # 19 of these 60 at writing
