"""The API over real marts: tiny generated data materialized through the real Dagster jobs; every mart
endpoint answers, and its figures equal the marts'. Embedded warehouse only (ingest + build cost ~20 s per
backend on this machine); the PostgreSQL reader and RLS are covered on marts of the same columns in
test_api.py."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest
from api_helpers import SECRET
from fastapi.testclient import TestClient
from materialized import FIRST, LAST

from analytics_pipelines.api import Settings, create_app
from analytics_pipelines.api.auth import mint_token
from analytics_pipelines.warehouse import open_warehouse
from analytics_pipelines.warehouse.readers import open_reader

NOW = datetime(2026, 11, 1, tzinfo=UTC)
RANGE = f"start_date={FIRST}&end_date={LAST}"


CUSTOMER_MARTS = (
    "customer_rfm_scores",
    "customer_segments",
    "customer_segment_transitions",
    "customer_lifetime_value",
    "customer_cohorts",
    "customer_360",
)


@pytest.fixture(scope="module")
def real_wh(materialized) -> str:
    """The session's warehouse: tiny data materialized through the real jobs, every mart and customer mart."""
    return materialized.warehouse_url


def test_endpoints_over_real_marts(real_wh, tmp_path):
    warehouse_url = real_wh
    wh = open_warehouse(warehouse_url)
    settings = Settings(
        warehouse_url=warehouse_url, jwt_secret=SECRET, ops_url=f"sqlite:///{tmp_path / 'ops.db'}"
    )
    reader = open_reader(warehouse_url)
    try:
        client = TestClient(create_app(settings, reader=reader))
        va = wh.read_table("venue_analytics")
        busiest = (
            va.group_by("tenant_id", "venue_id")
            .agg(pl.sum("gross_revenue_cents"))
            .sort("gross_revenue_cents", descending=True)
            .row(0)
        )
        tenant, venue = busiest[0], busiest[1]

        def get(url, **kw):
            tok = mint_token(settings, tenant_id=tenant, **({"venue_id": venue} | kw))
            r = client.get(url, headers={"Authorization": f"Bearer {tok}"})
            assert r.status_code == 200, (url, r.text)
            return r.json()["data"]

        mine = va.filter((pl.col("tenant_id") == tenant) & (pl.col("venue_id") == venue))
        summary = get(f"/v1/revenue/summary?{RANGE}")[0]
        for col in ("gross_revenue_cents", "net_revenue_cents", "refunds_cents", "tickets_sold", "orders"):
            assert summary[col] == mine[col].sum(), col
        rbc = wh.read_table("revenue_by_channel").filter(
            (pl.col("tenant_id") == tenant) & (pl.col("venue_id") == venue)
        )
        by_channel = get(f"/v1/revenue/by-channel?{RANGE}")
        assert {r["revenue_line"]: r["gross_revenue_cents"] for r in by_channel} == dict(
            rbc.group_by("revenue_line").agg(pl.sum("gross_revenue_cents")).iter_rows()
        )
        assert sum(r["gross_revenue_cents"] for r in by_channel) == summary["gross_revenue_cents"] + sum(
            rbc.filter(pl.col("source") == "resale")["gross_revenue_cents"]
        )
        daily = get(f"/v1/venues/daily?{RANGE}&limit=1000")
        assert len(daily) == mine.height
        trends = get(f"/v1/sales/trends?{RANGE}")
        assert sum(d["tickets_sold"] for d in trends) == mine["tickets_sold"].sum()
        for gran in ("day", "week", "month"):
            assert get(f"/v1/sales/metrics?granularity={gran}&{RANGE}"), gran
        by_cat = get(f"/v1/revenue/by-category?{RANGE}")
        assert (
            sum(r["gross_revenue_cents"] for r in by_cat)
            == wh.read_table("revenue_by_category")
            .filter((pl.col("tenant_id") == tenant) & (pl.col("venue_id") == venue))["gross_revenue_cents"]
            .sum()
        )
        get("/v1/events/no-shows")  # 200 (rows only for events that ended in the window)
        assert get("/v1/revenue/projections")
        assert get("/v1/sales/seasonality")
        perf = get("/v1/events/performance?limit=1000")
        top = get("/v1/events/top?limit=3")
        assert top == sorted(perf, key=lambda e: (-e["gross_revenue_cents"], e["event_id"]))[:3]
        assert get(f"/v1/events/{top[0]['event_id']}/price-history")
        week = "start_date=2026-10-25&end_date=2026-10-31"
        hourly = get(f"/v1/venues/hourly?{week}")
        assert sum(h["tickets_sold"] for h in hourly) == mine.filter(pl.col("day") >= pl.date(2026, 10, 25))[
            "tickets_sold"
        ].sum() and {h["venue_id"] for h in hourly} == {venue}
        ea = wh.read_table("event_analytics").filter(pl.col("event_id") == top[0]["event_id"])
        ev = get(f"/v1/events/{top[0]['event_id']}/daily?{RANGE}")
        assert [r["day"] for r in ev] == sorted(str(d) for d in ea["day"])
        assert sum(r["gross_revenue_cents"] for r in ev) == ea["gross_revenue_cents"].sum()
        ra = wh.read_table("resale_activity").filter(pl.col("venue_id") == venue)
        resale = get(f"/v1/resale/activity?{RANGE}&limit=1000")
        assert sum(r["resale_volume_cents"] for r in resale) == ra["resale_volume_cents"].sum()
        assert sum(r["resales"] for r in resale) == ra["resales"].sum()
        kpis = get("/v1/kpis", venue_id=None, role="admin")
        assert {"venues_total", "tickets_sold_24h"} <= {k["metric"] for k in kpis}
        # isolation on real data: the other tenant's venues are invisible to this tenant's admin
        other = va.filter(pl.col("tenant_id") != tenant)["venue_id"][0]
        assert get(f"/v1/venues/daily?venue_id={other}&{RANGE}", venue_id=None, role="admin") == []
        ready = client.get("/health/ready").json()
        assert ready["freshness"]["venue_analytics"] == str(va["day"].max())
        _customer_endpoints(wh, client, settings)
    finally:
        reader.close()


def _customer_endpoints(wh, client, settings):
    """The customer endpoints over the real customer marts: a venue token sees its venue's scope only; a
    customer's profile is venue-scoped (404 for a customer who never bought there)."""
    orders = wh.read_table("fct_orders").filter(pl.col("user_id").is_not_null())
    # the tenant with two venues (tiny: 3 venues, 2 tenants), and its quieter venue: every customer of it
    # also bought at the other one, and the other has customers it must not see
    tenant = orders.group_by("tenant_id").agg(pl.col("venue_id").n_unique()).sort("venue_id").row(-1)[0]
    venue = (
        orders.filter(pl.col("tenant_id") == tenant)
        .group_by("venue_id")
        .len()
        .sort("len", "venue_id")
        .row(0)[0]
    )

    def get(url, **kw):
        tok = mint_token(settings, tenant_id=tenant, **({"venue_id": venue} | kw))
        r = client.get(url, headers={"Authorization": f"Bearer {tok}"})
        assert r.status_code == 200, (url, r.text)
        return r.json()["data"]

    at_venue = set(orders.filter(pl.col("venue_id") == venue)["user_id"])
    segs = get("/v1/customers/segments")
    assert len(segs) == 11 and sum(r["customers"] for r in segs) == len(at_venue)
    assert {r["venue_id"] for r in segs} == {venue}
    rfm = get("/v1/customers/rfm?limit=1000")
    assert {r["user_id"] for r in rfm} == at_venue and {r["as_of"] for r in rfm} == {
        "2026-11-01"
    }  # the latest as-of
    assert [r["rfm_total"] for r in rfm] == sorted((r["rfm_total"] for r in rfm), reverse=True)
    older = get("/v1/customers/rfm?as_of=2026-10-25&limit=1000")
    assert {r["as_of"] for r in older} == {"2026-10-25"} and len(older) <= len(rfm)
    champions = get("/v1/customers/rfm?segment=Champions&limit=1000")
    assert {r["segment"] for r in champions} <= {"Champions"}
    assert len(champions) == next(r["customers"] for r in segs if r["segment"] == "Champions")
    clv = get("/v1/customers/lifetime-value?limit=1000")
    assert {r["user_id"] for r in clv} == at_venue and {r["venue_id"] for r in clv} == {venue}
    risk = get("/v1/customers/churn-risk?limit=1000")
    assert {r["user_id"] for r in risk} == at_venue
    cohorts = get("/v1/customers/cohorts")
    assert sum(r["cohort_customers"] for r in cohorts if r["months_since_first"] == 0) == len(at_venue)
    assert get("/v1/customers/segment-transitions")

    # the profile: venue-scoped for a venue token
    mine = sorted(at_venue)[0]
    prof = get(f"/v1/customers/{mine}")
    assert [r["venue_id"] for r in prof] == [venue] and prof[0]["user_id"] == mine
    spent = orders.filter((pl.col("user_id") == mine) & (pl.col("venue_id") == venue))[
        "gross_revenue_cents"
    ].sum()
    assert prof[0]["historic_value_cents"] == spent
    assert "spend_cents" not in prof[0] and "venues" not in prof[0]  # nothing about other venues
    tenant_orders = orders.filter(pl.col("tenant_id") == tenant)
    elsewhere = sorted(set(tenant_orders["user_id"]) - at_venue)
    assert elsewhere, "tiny data has customers of the tenant's other venues"

    def status(url, **kw):
        tok = mint_token(settings, tenant_id=tenant, **({"venue_id": venue} | kw))
        return client.get(url, headers={"Authorization": f"Bearer {tok}"}).status_code

    assert status(f"/v1/customers/{elsewhere[0]}") == 404
    # a tenant-wide admin sees the whole 360 row and every venue of the customer
    both = (
        tenant_orders.group_by("user_id")
        .agg(pl.col("venue_id").n_unique())
        .sort("venue_id", "user_id", descending=[True, False])
    )
    uid, n_venues = both.row(0)
    full = get(f"/v1/customers/{uid}", venue_id=None, role="admin")[0]
    assert full["venues"] == n_venues == len(full["venues_detail"])
    assert full["spend_cents"] == tenant_orders.filter(pl.col("user_id") == uid)["gross_revenue_cents"].sum()
    other_tenant_customer = orders.filter(pl.col("tenant_id") != tenant)["user_id"][0]
    assert status(f"/v1/customers/{other_tenant_customer}", venue_id=None, role="admin") == 404


def test_customer_endpoints_keep_tenants_apart_on_both_backends(real_wh, warehouse_url, tmp_path):
    """The real customer marts copied into either backend (PostgreSQL: the reader's RLS is on): each
    tenant's admin and venue tokens see only their own customers, and a customer of the other tenant is
    404 even by id."""
    src = open_warehouse(real_wh)
    wh = open_warehouse(warehouse_url)
    for t in CUSTOMER_MARTS:
        wh.replace_table(t, src.read_table(t))
    # customer_360 is one row per (tenant, customer): a customer of one tenant who also bought from the other
    # has a row in each, with that tenant's activity only (a row for the other tenant added here)
    full = src.read_table("customer_360")
    a, b = sorted(set(full["tenant_id"].drop_nulls()))
    both = full.filter((pl.col("tenant_id") == a) & (pl.col("orders") > 0)).sort("user_id").head(1)
    both_uid, home_spend = both["user_id"][0], both["spend_cents"][0]
    wh.replace_table(
        "customer_360",
        pl.concat(
            [
                full,
                both.with_columns(
                    pl.lit(b).alias("tenant_id"),
                    pl.lit(1, pl.Int64).alias("orders"),
                    pl.lit(12345, pl.Int64).alias("spend_cents"),
                    pl.lit(None, pl.Float64).alias("churn_probability"),
                    pl.lit(None, pl.Boolean).alias("churn_flag"),
                ),
            ]
        ),
    )
    settings = Settings(
        warehouse_url=warehouse_url, jwt_secret=SECRET, ops_url=f"sqlite:///{tmp_path / 'ops.db'}"
    )
    reader = open_reader(warehouse_url)
    try:
        client = TestClient(create_app(settings, reader=reader))
        c360 = wh.read_table("customer_360").filter(pl.col("orders") > 0)
        for tenant, spend in ((a, home_spend), (b, 12345)):
            admin = {"Authorization": "Bearer " + mint_token(settings, tenant_id=tenant, role="admin")}
            prof = client.get(f"/v1/customers/{both_uid}", headers=admin).json()["data"]
            assert [(r["tenant_id"], r["spend_cents"]) for r in prof] == [(tenant, spend)]
        clv = src.read_table("customer_lifetime_value")
        tenants = sorted(set(c360["tenant_id"]))
        assert len(tenants) == 2
        for tenant in tenants:
            admin = {"Authorization": "Bearer " + mint_token(settings, tenant_id=tenant, role="admin")}
            mine = set(c360.filter(pl.col("tenant_id") == tenant)["user_id"])
            theirs = sorted(set(c360["user_id"]) - mine)
            risk = client.get("/v1/customers/churn-risk?limit=1000", headers=admin).json()["data"]
            assert {r["user_id"] for r in risk} == mine
            assert client.get(f"/v1/customers/{theirs[0]}", headers=admin).status_code == 404
            assert client.get(f"/v1/customers/{sorted(mine)[0]}", headers=admin).status_code == 200
            segs = client.get("/v1/customers/segments", headers=admin).json()["data"]
            assert sum(r["customers"] for r in segs) == len(
                mine - ({both_uid} if tenant == b else set())
            )  # added
            for venue in sorted(set(clv.filter(pl.col("tenant_id") == tenant)["venue_id"])):
                h = {"Authorization": "Bearer " + mint_token(settings, tenant_id=tenant, venue_id=venue)}
                rows = client.get("/v1/customers/lifetime-value?limit=1000", headers=h).json()["data"]
                assert {r["user_id"] for r in rows} == set(clv.filter(pl.col("venue_id") == venue)["user_id"])
                # another tenant's venue named in the query: 403, never its rows
                other = clv.filter(pl.col("tenant_id") != tenant)["venue_id"][0]
                assert client.get(f"/v1/customers/rfm?venue_id={other}", headers=h).status_code == 403
    finally:
        reader.close()
