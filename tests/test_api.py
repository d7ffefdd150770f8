"""The read API end to end over sample marts on both warehouse backends: scoped results that match the
marts, tenant isolation (and PostgreSQL RLS), validation, ETags, the operational writes (alerts, exports),
Grafana, health, reads during partition rewrites, and schema-driven fuzzing with zero 5xx."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import polars as pl
import psycopg
import pytest
import sqlalchemy as sa
from api_helpers import make_api

from analytics_pipelines.ops.alerts import alert_instances, alert_rules
from analytics_pipelines.ops.db import ops_engine
from analytics_pipelines.ops.exports import analytics_exports
from analytics_pipelines.warehouse import open_warehouse
from analytics_pipelines.warehouse.reader_postgres import PostgresReader
from analytics_pipelines.warehouse.rls import enable_tenant_rls

RANGE = "start_date=2026-10-12&end_date=2026-10-31"


@pytest.fixture
def api(warehouse_url, tmp_path):
    a, reader = make_api(warehouse_url, tmp_path)
    yield a
    reader.close()


def _tv(api):
    tenants = api.marts.tenant_ids()
    return tenants[0], api.marts.tenants[tenants[0]][0], tenants[1], api.marts.tenants[tenants[1]][0]


def test_scoped_reads_match_the_marts(api):
    t, v, _, _ = _tv(api)
    va = open_warehouse(api.warehouse_url).read_table("venue_analytics")
    mine = va.filter((pl.col("tenant_id") == t) & (pl.col("venue_id") == v))
    r = api.get(f"/v1/revenue/summary?{RANGE}", t, v)
    assert r.status_code == 200, r.text
    s = r.json()["data"][0]
    assert s["gross_revenue_cents"] == mine["gross_revenue_cents"].sum()
    assert s["net_revenue_cents"] == mine["net_revenue_cents"].sum() and s["venues"] == 1 and s["days"] == 20

    daily = api.get(f"/v1/venues/daily?{RANGE}&limit=1000", t, v).json()["data"]
    assert len(daily) == 20 and {d["venue_id"] for d in daily} == {v}
    page2 = api.get(f"/v1/venues/daily?{RANGE}&limit=5&offset=5", t, v).json()
    assert [d["day"] for d in page2["data"]] == [d["day"] for d in daily[5:10]]
    assert page2["meta"] == {
        "limit": 5,
        "offset": 5,
        "returned": 5,
        "start_date": "2026-10-12",
        "end_date": "2026-10-31",
    }

    # an admin reads the whole tenant by default
    admin = api.get(f"/v1/revenue/summary?{RANGE}", t, role="admin").json()["data"][0]
    assert admin["venues"] == 2
    assert admin["gross_revenue_cents"] == va.filter(pl.col("tenant_id") == t)["gross_revenue_cents"].sum()

    for url in (
        "/v1/revenue/by-channel",
        "/v1/revenue/projections",
        "/v1/sales/metrics?granularity=week",
        "/v1/sales/metrics?granularity=hour",
        "/v1/sales/trends",
        "/v1/sales/seasonality",
        "/v1/events/performance?sort=tickets",
        "/v1/events/top?limit=2",
        "/v1/kpis",
    ):
        sep = "&" if "?" in url else "?"
        r = api.get(f"{url}{sep}{RANGE}" if "sales" in url or "channel" in url else url, t, v)
        assert r.status_code == 200, (url, r.text)
        rows = r.json()["data"]
        assert rows, url
        assert all(row.get("venue_id", v) == v for row in rows), url
    top = api.get("/v1/events/top?limit=2", t, v).json()["data"]
    assert len(top) == 2 and top[0]["gross_revenue_cents"] >= top[1]["gross_revenue_cents"]
    event = api.marts.events[v][0]
    ph = api.get(f"/v1/events/{event}/price-history", t, v).json()["data"]
    assert len(ph) == 2 and ph[1]["valid_to"] is None
    kpis = api.get("/v1/kpis", t, v).json()["data"]
    assert len(kpis) == 11 and len({k["snapshot_hour"] for k in kpis}) == 1


def test_tenant_and_venue_isolation(api):
    t, v, t2, v2 = _tv(api)
    # a venue token asking for another venue: 403, whatever the tenant
    r = api.get(f"/v1/venues/daily?venue_id={v2}&{RANGE}", t, v)
    assert r.status_code == 403 and "not scoped to venue" in r.json()["detail"]
    other_same_tenant = api.marts.tenants[t][1]
    assert api.get(f"/v1/sales/trends?venue_id={other_same_tenant}&{RANGE}", t, v).status_code == 403
    # an admin may read any venue of its tenant, and sees nothing of another tenant's venue
    assert api.get(f"/v1/venues/daily?venue_id={other_same_tenant}&{RANGE}", t, role="admin").json()["data"]
    foreign = api.get(f"/v1/venues/daily?venue_id={v2}&{RANGE}", t, role="admin")
    assert foreign.status_code == 200 and foreign.json()["data"] == []
    assert (
        api.get(f"/v1/revenue/summary?venue_id={v2}&{RANGE}", t, role="admin").json()["data"][0]["venues"]
        == 0
    )
    # tenant-wide reads never include the other tenant's venues
    everything = api.get(f"/v1/venues/daily?{RANGE}&limit=1000", t, role="admin").json()["data"]
    assert {d["venue_id"] for d in everything} == set(api.marts.tenants[t])
    assert (
        api.get(f"/v1/events/{api.marts.events[v2][0]}/price-history", t, role="admin").json()["data"] == []
    )


@pytest.mark.postgres
def test_postgres_rls_hides_other_tenants_even_without_a_filter(pg_database, tmp_path):
    a, reader = make_api(pg_database, tmp_path)
    try:
        t, _, t2, _ = _tv(a)
        assert isinstance(reader, PostgresReader)
        total = open_warehouse(pg_database).count("venue_analytics")
        mine = reader.query(t, "SELECT count(*), count(DISTINCT tenant_id) FROM venue_analytics").rows[0]
        assert 0 < mine[0] < total and mine[1] == 1
        assert reader.query(t, "SELECT DISTINCT tenant_id FROM venue_analytics").rows == [(t,)]
        # asking for the other tenant's rows explicitly still returns none
        assert reader.query(t, "SELECT count(*) FROM venue_analytics WHERE tenant_id = %s", [t2]).rows == [
            (0,)
        ]
        # a transaction without the tenant setting, as the API role, sees zero rows of any mart
        with psycopg.connect(pg_database) as conn, conn.transaction():
            conn.execute("SET LOCAL ROLE tt_api_reader")
            for table in ("venue_analytics", "kpi_snapshots", "sales_metrics", "event_performance"):
                assert conn.execute(f"SELECT count(*) FROM analytics.{table}").fetchone() == (0,), table
        # the role cannot write
        with psycopg.connect(pg_database) as conn, conn.transaction():
            conn.execute("SET LOCAL ROLE tt_api_reader")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DELETE FROM analytics.venue_analytics")
        # the writer (owner) is unaffected and a mart created later is protected on first use
        assert enable_tenant_rls(pg_database, tables=["venue_analytics"]) == ["venue_analytics"]
        wh = open_warehouse(pg_database)
        wh.replace_table(
            "no_shows", pl.DataFrame({"tenant_id": [t, t2], "venue_id": ["a", "b"], "no_shows": [1, 2]})
        )
        time.sleep(0.01)
        reader._catalog_at = 0  # do not wait the catalog interval
        assert reader.query(t, "SELECT tenant_id FROM no_shows", tables=["no_shows"]).rows == [(t,)]
    finally:
        reader.close()


def test_missing_mart_is_503_not_500(api):
    t, v, _, _ = _tv(api)
    for url in (
        "/v1/events/no-shows",
        "/v1/revenue/by-category",
        "/v1/customers/segments",
        "/v1/customers/rfm",
        "/v1/customers/lifetime-value",
        "/v1/customers/churn-risk",
        "/v1/customers/cohorts",
        "/v1/customers/segment-transitions",
        f"/v1/customers/{uuid.uuid4()}",
    ):
        r = api.get(url, t, v)
        assert r.status_code == 503, (url, r.text)
        assert "not materialized yet" in r.json()["detail"]


def _refresh(api):
    reader = api.client.app.state.reader
    reader.refresh()
    if isinstance(reader, PostgresReader):
        reader._catalog_at = 0


VALIDATION_CASES = [
    ("/v1/venues/daily?venue_id=not-a-uuid", 422, "venue_id"),
    ("/v1/sales/metrics?granularity=minute", 422, "granularity"),
    ("/v1/venues/daily?limit=0", 422, "limit"),
    ("/v1/venues/daily?limit=1001", 422, "limit"),
    ("/v1/venues/daily?offset=-1", 422, "offset"),
    ("/v1/venues/daily?start_date=2026-13-01", 422, "start_date"),
    ("/v1/venues/daily?start_date=2026-10-31&end_date=2026-10-01", 400, "on or before"),
    ("/v1/revenue/summary?start_date=2024-01-01&end_date=2026-01-01", 400, "too long"),
    ("/v1/events/performance?sort=drop%20table", 422, "sort"),
    ("/v1/events/nope/price-history", 422, "event_id"),
    ("/v1/customers/a%27%20or%201=1", 422, "valid UUID"),
]


def test_validation_errors_are_clear_4xx(api):
    t, v, _, _ = _tv(api)
    h = api.headers(t, v)
    for url, status, needle in VALIDATION_CASES:
        r = api.client.get(url, headers=h)
        assert r.status_code == status, (url, r.text)
        assert needle in r.json()["detail"], (url, r.json())


def test_etag_and_cache_control(api):
    t, v, _, _ = _tv(api)
    h = api.headers(t, v)
    r = api.client.get(f"/v1/revenue/summary?{RANGE}", headers=h)
    etag = r.headers["etag"]
    assert r.headers["cache-control"].startswith("private, max-age=")
    again = api.client.get(f"/v1/revenue/summary?{RANGE}", headers={**h, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    other = api.client.get(
        "/v1/revenue/summary?start_date=2026-10-13&end_date=2026-10-31", headers={**h, "If-None-Match": etag}
    )
    assert other.status_code == 200 and other.headers["etag"] != etag


def _alert(engine, tenant, venue, status="active"):
    with engine.begin() as conn:
        rid = conn.execute(
            alert_rules.insert().values(
                name=f"rule-{uuid.uuid4().hex}",
                metric="refund_rate_24h_pct",
                operator="gt",
                threshold=5,
                tenant_id=tenant,
                schedule={},
                actions=[],
            )
        ).inserted_primary_key[0]
        return conn.execute(
            alert_instances.insert().values(
                rule_id=rid,
                tenant_id=tenant,
                venue_id=venue,
                scope_key=f"venue:{venue}",
                status=status,
                severity="warning",
                triggered_at=datetime(2026, 10, 31, 12, tzinfo=UTC),
                trigger_value=7.5,
                message="refunds high",
            )
        ).inserted_primary_key[0]


def test_alert_instances_list_and_acknowledge(api):
    t, v, t2, v2 = _tv(api)
    engine = ops_engine(api.settings.ops_url)
    active, resolved = _alert(engine, t, v), _alert(engine, t, v, "resolved")
    foreign, tenant_wide = _alert(engine, t2, v2), _alert(engine, t, None)
    listed = api.get("/v1/alerts/instances", t, v).json()["data"]
    assert {a["id"] for a in listed} == {active, resolved}
    assert {
        a["id"] for a in api.get("/v1/alerts/instances?status=active", t, role="admin").json()["data"]
    } == {active, tenant_wide}
    h = api.headers(t, v)
    r = api.client.post(f"/v1/alerts/instances/{active}/acknowledge", json={"notes": "on it"}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["status"] == "acknowledged" and r.json()["data"]["acknowledged_by"] == "dev-user"
    with engine.connect() as conn:
        row = conn.execute(sa.select(alert_instances).where(alert_instances.c.id == active)).one()
    assert row.status == "acknowledged" and row.notes == "on it" and row.acknowledged_at is not None
    again = api.client.post(
        f"/v1/alerts/instances/{active}/acknowledge",
        json={"notes": "late"},
        headers=api.headers(t, v, user_id="someone-else"),
    )
    assert again.status_code == 200 and again.json()["data"]["acknowledged_by"] == "dev-user"  # idempotent
    assert again.json()["data"]["notes"] == "on it"
    r = api.client.post(f"/v1/alerts/instances/{resolved}/acknowledge", headers=h)
    assert r.status_code == 409 and "resolved" in r.json()["detail"]
    assert api.client.post(f"/v1/alerts/instances/{foreign}/acknowledge", headers=h).status_code == 404
    assert api.client.post(f"/v1/alerts/instances/{tenant_wide}/acknowledge", headers=h).status_code == 403
    assert (
        api.client.post(
            f"/v1/alerts/instances/{tenant_wide}/acknowledge", headers=api.headers(t, role="admin")
        ).status_code
        == 200
    )
    assert api.client.post("/v1/alerts/instances/999999/acknowledge", headers=h).status_code == 404
    bad = api.client.post(f"/v1/alerts/instances/{active}/acknowledge", json={"notes": "x" * 3000}, headers=h)
    assert bad.status_code == 422


def test_exports_create_status_download(api, tmp_path):
    t, v, t2, v2 = _tv(api)
    h = api.headers(t, v, permissions=("analytics.read", "analytics.export"))
    body = {
        "export_type": "analytics_report",
        "format": "csv",
        "filters": {"date_from": "2026-10-01", "date_to": "2026-10-31"},
    }
    r = api.client.post("/v1/exports", json=body, headers=h)
    assert r.status_code == 202, r.text
    export = r.json()["data"]
    assert (
        export["status"] == "pending"
        and export["venue_id"] == v
        and r.headers["location"].endswith(export["id"])
    )
    engine = ops_engine(api.settings.ops_url)
    with engine.connect() as conn:
        row = conn.execute(sa.select(analytics_exports).where(analytics_exports.c.id == export["id"])).one()
    assert row.tenant_id == t and row.filters["venue_ids"] == [v] and row.status == "pending"

    for bad, status in (
        ({**body, "export_type": "everything"}, 422),
        ({**body, "format": "exe"}, 422),
        ({**body, "filters": {"date_from": "2026-10-31", "date_to": "2026-10-01"}}, 422),
        ({**body, "filters": {"venue_ids": [v2]}}, 403),
        ({**body, "tenant_id": t2}, 422),
        ({**body, "export_type": "raw_data"}, 400),  # raw_data needs options.table
        ({**body, "options": {"table": "venue_analytics"}}, 400),
        ({**body, "options": {"table": "users"}}, 422),
    ):
        r = api.client.post("/v1/exports", json=bad, headers=h)
        assert r.status_code == status, (bad, r.text)
    assert api.client.post("/v1/exports", json=body, headers=api.headers(t, v)).status_code == 403
    raw = {"export_type": "raw_data", "format": "csv", "options": {"table": "venue_analytics"}}
    assert api.client.post("/v1/exports", json=raw, headers=h).status_code == 202

    url = f"/v1/exports/{export['id']}"
    assert api.client.get(url, headers=h).json()["data"]["status"] == "pending"
    assert api.client.get(url + "/download", headers=h).status_code == 409
    # the export runner completes it
    api.settings.export_dir.mkdir(parents=True, exist_ok=True)
    f = api.settings.export_dir / "report.csv"
    f.write_text("day,revenue\n2026-10-01,100\n")
    with engine.begin() as conn:
        conn.execute(
            analytics_exports.update()
            .where(analytics_exports.c.id == export["id"])
            .values(
                status="completed",
                file_path=str(f),
                checksum_sha256="ab" * 32,
                expires_at=datetime.now(UTC) + timedelta(days=7),
            )
        )
    st = api.client.get(url, headers=h).json()["data"]
    assert st["download_url"] == url + "/download" and "file_path" not in st
    d = api.client.get(url + "/download", headers=h)
    assert d.status_code == 200 and d.text == "day,revenue\n2026-10-01,100\n"
    assert d.headers["x-checksum-sha256"] == "ab" * 32 and "attachment" in d.headers["content-disposition"]
    # another tenant cannot see it, another venue of the tenant may not download it
    other_tenant = api.headers(t2, v2, permissions=("analytics.export",))
    assert api.client.get(url + "/download", headers=other_tenant).status_code == 404
    other_venue = api.headers(t, api.marts.tenants[t][1], permissions=("analytics.export",))
    assert api.client.get(url + "/download", headers=other_venue).status_code == 403
    # a path outside the export directory is never served; expired is 410
    outside = tmp_path / "secret.txt"
    outside.write_text("no")
    with engine.begin() as conn:
        conn.execute(
            analytics_exports.update()
            .where(analytics_exports.c.id == export["id"])
            .values(file_path=str(outside))
        )
    assert api.client.get(url + "/download", headers=h).status_code == 410
    with engine.begin() as conn:
        conn.execute(
            analytics_exports.update()
            .where(analytics_exports.c.id == export["id"])
            .values(file_path=str(f), expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert api.client.get(url + "/download", headers=h).status_code == 410
    assert api.client.get(f"/v1/exports/{uuid.uuid4()}", headers=h).status_code == 404


def test_grafana_datasource(api):
    t, v, _, _ = _tv(api)
    h = api.headers(t, v)
    assert api.client.get("/grafana/", headers=h).json() == {"status": "ok"}
    names = api.client.post("/grafana/search", json={"target": ""}, headers=h).json()
    assert "kpi.tickets_sold_24h" in names and "sales.day.gross_revenue_cents" in names
    rng = {"from": "2026-10-25T00:00:00.000Z", "to": "2026-10-31T23:59:59.000Z"}
    r = api.client.post(
        "/grafana/query",
        headers=h,
        json={
            "range": rng,
            "targets": [
                {"target": "kpi.tickets_sold_24h", "refId": "A"},
                {"target": "sales.day.tickets_sold", "refId": "B"},
            ],
        },
    )
    assert r.status_code == 200, r.text
    kpi, sales = r.json()
    assert len(kpi["datapoints"]) == 6 and len(sales["datapoints"]) == 7
    va = (
        open_warehouse(api.warehouse_url)
        .read_table("venue_analytics")
        .filter((pl.col("venue_id") == v) & (pl.col("day") == date(2026, 10, 31)))
    )
    assert sales["datapoints"][-1] == [
        float(va["tickets_sold"][0]),
        int(datetime(2026, 10, 31, tzinfo=UTC).timestamp() * 1000),
    ]
    mixed = {"from": "2026-10-25T00:00:00", "to": "2026-10-31T23:59:59+02:00"}  # naive and offset: no 500
    assert (
        api.client.post("/grafana/query", headers=h, json={"range": mixed, "targets": []}).status_code == 200
    )
    bad = api.client.post(
        "/grafana/query", headers=h, json={"range": rng, "targets": [{"target": "x; drop"}]}
    )
    assert bad.status_code == 400 and "unknown target" in bad.json()["detail"]
    engine = ops_engine(api.settings.ops_url)
    _alert(engine, t, v)
    ann = api.client.post("/grafana/annotations", headers=h, json={"range": rng, "annotation": {"name": "a"}})
    assert ann.status_code == 200 and ann.json()[0]["tags"][0] == "alert"


def test_health(api):
    assert api.client.get("/health").json()["status"] == "ok"
    r = api.client.get("/health/ready")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready" and body["freshness"]["venue_analytics"] == "2026-10-31"
    assert body["freshness"]["kpi_snapshots"].startswith("2026-10-31T23:00")


def test_results_are_cached_until_the_warehouse_changes(api):
    """Identical reads are answered from the cache (no query) until a warehouse write lands; the next
    refresh sees the write (embedded: the partition file; PostgreSQL: the write counter bumped in the
    writing transaction) and the following read returns the new rows."""
    t, v, _, _ = _tv(api)
    reader = api.client.app.state.reader
    url = "/v1/venues/daily?start_date=2026-10-31&end_date=2026-10-31"
    first = api.get(url, t, v).json()["data"]
    misses = reader.cache_misses
    assert api.get(url, t, v).json()["data"] == first
    assert reader.cache_misses == misses and reader.cache_hits >= 1  # served from the cache
    assert not reader.refresh()  # nothing changed: the cache stays
    assert api.get(url, t, v).json()["data"] == first and reader.cache_misses == misses

    wh = open_warehouse(api.warehouse_url)
    day = wh.read_table("venue_analytics", "day = %s", (date(2026, 10, 31),))
    wh.write_partitions(
        "venue_analytics",
        day.with_columns(tickets_sold=pl.col("tickets_sold") + 1000),
        ["day"],
        [("2026-10-31",)],
    )
    warmed = reader.cache_warmed
    assert reader.refresh()
    # refresh-ahead: the result was used lately, so the refresh recomputed it (no request waits for it)
    assert reader.cache_warmed == warmed + 1
    after = api.get(url, t, v).json()["data"]
    assert reader.cache_misses == misses
    assert [r["tickets_sold"] for r in after] == [r["tickets_sold"] + 1000 for r in first]

    # recomputed again only if asked for since: a long run's every write does not recompute it forever
    for expected in (warmed + 2, warmed + 2):
        wh.write_partitions("venue_analytics", day, ["day"], [("2026-10-31",)])
        assert reader.refresh()
        assert reader.cache_warmed == expected
    api.get(url, t, v)
    misses += 1
    assert reader.cache_misses == misses
    # a result nobody used within the warm window (or past the warm budget) is dropped, not recomputed
    warmed = reader.cache_warmed
    for window, budget in ((0.0, 10.0), (900.0, 0.0)):
        reader.warm_window, reader.warm_budget = window, budget
        wh.write_partitions("venue_analytics", day, ["day"], [("2026-10-31",)])
        assert reader.refresh()
        assert reader.cache_warmed == warmed
        again = api.get(url, t, v).json()["data"]
        misses += 1
        assert reader.cache_misses == misses
        assert [r["tickets_sold"] for r in again] == [r["tickets_sold"] for r in first]


def test_a_write_forgets_only_the_results_that_read_the_written_mart(api):
    """Hourly KPI snapshots landing do not empty the cache of the venue dashboards: only results that
    read kpi_snapshots are recomputed (both backends: embedded refresh and PostgreSQL write counters)."""
    t, v, _, _ = _tv(api)
    reader = api.client.app.state.reader
    daily, kpis = "/v1/venues/daily?" + RANGE, "/v1/kpis"
    api.get(daily, t, v)
    first_kpis = api.get(kpis, t, v).json()["data"]
    misses = reader.cache_misses

    wh = open_warehouse(api.warehouse_url)
    wh.replace_table("kpi_snapshots", wh.read_table("kpi_snapshots").with_columns(value=pl.col("value") + 1))
    warmed = reader.cache_warmed
    assert reader.refresh()
    assert reader.cache_warmed == warmed + 1  # the KPI result was recomputed, the daily one left alone
    api.get(daily, t, v)
    after = api.get(kpis, t, v).json()["data"]
    assert reader.cache_misses == misses  # both answered from the cache
    assert [r["value"] for r in after] == [r["value"] + 1 for r in first_kpis]


def test_a_result_read_while_a_change_lands_is_not_cached(api):
    reader = api.client.app.state.reader
    t, v, _, _ = _tv(api)
    real = reader._execute

    def racing(*args):
        res = real(*args)
        reader._changed()  # a refresh saw a change while this query ran
        return res

    reader._execute = racing
    try:
        api.get("/v1/events/top", t, v)
    finally:
        reader._execute = real
    misses = reader.cache_misses
    api.get("/v1/events/top", t, v)
    assert reader.cache_misses == misses + 1


def test_misses_run_on_the_readers_few_threads_and_hits_on_the_event_loop(api):
    """A cache miss is computed by one of the reader's worker threads (a bounded pool, not a thread per
    request); a hit is answered without any database call and without leaving the event loop."""
    reader = api.client.app.state.reader
    t, v, _, _ = _tv(api)
    threads = []
    real = reader._execute

    def recording(*args):
        threads.append(threading.current_thread().name)
        return real(*args)

    reader._execute = recording
    try:
        url = "/v1/revenue/summary?" + RANGE
        first = api.get(url, t, v).json()
        assert len(threads) == 1 and threads[0].startswith(f"tt-api-{reader.kind}")
        assert api.get(url, t, v).json() == first and len(threads) == 1  # the hit ran no query
    finally:
        reader._execute = real
    assert reader.executor._max_workers <= 8


def test_reads_never_fail_or_see_half_a_partition_while_a_run_rewrites(warehouse_url, tmp_path):
    """A writer thread keeps replacing 5 daily partitions of venue_analytics, each write stamping every
    row with one version number; readers must always see every venue of every day, with one version per
    day (a partition is whole), and never an error."""
    a, reader = make_api(warehouse_url, tmp_path, days=5, refresh_seconds=0.02)
    try:
        t = a.marts.tenant_ids()[0]
        wh = open_warehouse(warehouse_url)
        base = wh.read_table("venue_analytics")
        keys = [(d.isoformat(),) for d in sorted(base["day"].unique())]
        wh.write_partitions(
            "venue_analytics", base.with_columns(tickets_sold=pl.lit(0, pl.Int64)), ["day"], keys
        )
        _refresh(a)
        stop = threading.Event()
        writes = [0]

        def writer():
            while not stop.is_set():
                writes[0] += 1
                wh.write_partitions(
                    "venue_analytics",
                    base.with_columns(tickets_sold=pl.lit(writes[0], pl.Int64)),
                    ["day"],
                    keys,
                )

        th = threading.Thread(target=writer)
        th.start()
        h = a.headers(t, role="admin")
        seen, reads = set(), 0
        deadline = time.monotonic() + 1.5
        try:
            while time.monotonic() < deadline:
                r = a.client.get(
                    "/v1/venues/daily?start_date=2026-10-27&end_date=2026-10-31&limit=1000", headers=h
                )
                assert r.status_code == 200, r.text
                rows = r.json()["data"]
                assert len(rows) == 5 * 2, len(rows)
                by_day = {}
                for row in rows:
                    by_day.setdefault(row["day"], set()).add(row["tickets_sold"])
                assert all(len(vs) == 1 for vs in by_day.values()), by_day
                seen |= {x for vs in by_day.values() for x in vs}
                reads += 1
        finally:
            stop.set()
            th.join()
        assert writes[0] >= 3 and reads >= 5
        assert len(seen) >= 2, "the reader never saw a new version"
    finally:
        reader.close()


def test_snapshot_poll_lists_a_table_again_only_after_a_write(tmp_path, monkeypatch):
    """The embedded reader's poll stats one version marker per table; a table's partition files are
    listed again only after the warehouse wrote it (tables without a marker: every time)."""
    import analytics_pipelines.warehouse.reader_snapshot as R

    a, reader = make_api(f"duckdb:///{tmp_path / 'warehouse'}", tmp_path)
    try:
        listed, real = [], R.table_files
        monkeypatch.setattr(R, "table_files", lambda root, t: listed.append(t) or real(root, t))
        assert reader.refresh() == []
        present = reader.tables()
        assert "venue_analytics" in present and not set(listed) & present  # markers unchanged: not listed
        wh = open_warehouse(a.warehouse_url)
        day = wh.read_partitions("venue_analytics", "day", "2026-10-31", "2026-10-31")
        wh.write_partitions(
            "venue_analytics", day.with_columns(pl.col("orders") + 1), ["day"], [("2026-10-31",)]
        )
        listed.clear()
        assert reader.refresh() == ["venue_analytics"]
        assert set(listed) & present == {"venue_analytics"}
    finally:
        reader.close()


def _customers_frame(day: str, users: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"day": [day] * len(users), "tenant_id": ["t"] * len(users), "user_id": users})


def test_the_embedded_copy_keeps_customer_marts_ordered_by_customer(tmp_path):
    """The API's copy orders a mart declared with a serve order by that column (a lookup reads one row
    group), on the first load and for the rows of a partition that changes later; other marts keep the
    order of their files (a mart read by date keeps each partition together)."""
    from analytics_pipelines.warehouse.reader_snapshot import SnapshotReader

    wh = open_warehouse(f"duckdb:///{tmp_path / 'wh'}")
    users = [str(uuid.UUID(int=(i * 7919) % 1000)) for i in range(1000)]
    wh.write_partitions(
        "c",
        pl.concat([_customers_frame("2026-01-01", users[:500]), _customers_frame("2026-01-02", users[500:])]),
        ["day"],
        [("2026-01-01",), ("2026-01-02",)],
    )
    wh.replace_table("n", pl.DataFrame({"tenant_id": ["t"] * 3, "x": [3, 1, 2], "user_id": ["c", "a", "b"]}))
    reader = SnapshotReader(tmp_path / "wh", tables=["c", "n"], background=False, orders={"c": "user_id"})
    try:

        def stored(table: str, col: str) -> list:
            return [r[0] for r in reader.db.execute(f"SELECT {col} FROM {table} ORDER BY rowid").fetchall()]

        assert stored("c", "user_id") == sorted(users)
        assert stored("n", "x") == [3, 1, 2]
        from analytics_pipelines.warehouse.reader import api_orders

        assert api_orders()["fct_orders"] == "user_id" and "customer_rfm_scores" not in api_orders()
        later = [str(uuid.UUID(int=2000 + (i * 13) % 50)) for i in range(50)]
        wh.write_partitions("c", _customers_frame("2026-01-03", later), ["day"], [("2026-01-03",)])
        assert reader.refresh() == ["c"]
        assert stored("c", "user_id") == sorted(users) + sorted(later)
    finally:
        reader.close()


@pytest.mark.postgres
def test_postgres_marts_get_an_index_per_customer_column(pg_database):
    wh = open_warehouse(pg_database)
    wh.replace_table(
        "fct_x", pl.DataFrame({"tenant_id": ["t"], "venue_id": ["v"], "buyer_id": ["b"], "seller_id": ["s"]})
    )
    enable_tenant_rls(pg_database, tables=["fct_x"])
    with psycopg.connect(pg_database) as conn:
        got = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'fct_x'")}
    assert {"fct_x_tenant_venue_idx", "fct_x_buyer_id_idx", "fct_x_seller_id_idx"} <= got


def test_while_a_refresh_recomputes_a_result_a_fresh_query_never_gets_the_previous_data(api):
    """Between a change and its recomputation a hot result still answers with the previous data (no
    request burst), except to `fresh` queries -- what the realtime hub asks when told of the change."""
    t, v, _, _ = _tv(api)
    reader = api.client.app.state.reader
    sql = "SELECT sum(tickets_sold) AS n FROM venue_analytics WHERE tenant_id = %s AND day = %s"
    args = (t, sql, [t, date(2026, 10, 31)], ["venue_analytics"])
    before = reader.query(*args).rows
    wh = open_warehouse(api.warehouse_url)
    day = wh.read_table("venue_analytics", "day = %s", (date(2026, 10, 31),))
    wh.write_partitions(
        "venue_analytics",
        day.with_columns(tickets_sold=pl.col("tickets_sold") + 1),
        ["day"],
        [("2026-10-31",)],
    )
    real = reader._recompute
    seen = {}

    def recompute(hot):  # what requests see while the refresh recomputes
        seen["stale"] = reader.query(*args).rows
        seen["fresh"] = reader.query(*args, fresh=True).rows
        real(hot)

    reader._recompute = recompute
    try:
        assert reader.refresh()
    finally:
        reader._recompute = real
    assert seen["stale"] == before
    assert seen["fresh"][0][0] == before[0][0] + day.filter(pl.col("tenant_id").cast(pl.String) == t).height
    assert reader.query(*args).rows == seen["fresh"]


def test_a_restarted_api_answers_the_results_in_use_before_from_its_cache(warehouse_url, tmp_path):
    """Shutdown keeps the keys of the results in use (mode 0600, no rows); the next process recomputes them
    before serving, so its first requests are cache hits with the same answers (dates survive the file)."""
    import dataclasses
    import json
    import stat

    from fastapi.testclient import TestClient

    from analytics_pipelines.api.app import create_app
    from analytics_pipelines.warehouse.readers import open_reader

    warm = tmp_path / "api" / "warm_keys.json"
    api, reader = make_api(warehouse_url, tmp_path)
    settings = dataclasses.replace(api.settings, warm_file=warm)
    t, v, _, _ = _tv(api)
    urls = ["/v1/venues/daily?" + RANGE, "/v1/kpis", "/v1/events/top"]
    with TestClient(create_app(settings, reader=reader)) as client:  # lifespan: shutdown saves the keys
        before = [client.get(u, headers=api.headers(t, v)).json()["data"] for u in urls]
    reader.close()
    assert stat.S_IMODE(warm.stat().st_mode) == 0o600
    saved = json.loads(warm.read_text())["keys"]
    assert len(saved) >= len(urls) and all("rows" not in k for k in saved)

    second = open_reader(warehouse_url, refresh_seconds=3600)
    try:
        with TestClient(create_app(settings, reader=second)) as client:  # lifespan: start restores them
            assert second.cache_misses == len(saved)  # recomputed before the first request
            after = [client.get(u, headers=api.headers(t, v)).json()["data"] for u in urls]
            assert second.cache_misses == len(saved) and second.cache_hits >= len(urls)
        assert after == before
    finally:
        second.close()
