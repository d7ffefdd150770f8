"""The API over real marts: tiny generated data ingested and built by the marts pipeline; every mart
endpoint answers, and its figures equal the marts'. Embedded warehouse only (ingest + build cost ~20 s per
backend on this machine); the PostgreSQL reader and RLS are covered on marts of the same columns in
test_api.py."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
from api_helpers import SECRET
from fastapi.testclient import TestClient

from analytics_pipelines import ingestion
from analytics_pipelines.api import Settings, create_app
from analytics_pipelines.api.auth import mint_token
from analytics_pipelines.api.reader import open_reader
from analytics_pipelines.generator.run import generate
from analytics_pipelines.marts.pipeline import build_everything
from analytics_pipelines.source.db import SourceDB
from analytics_pipelines.warehouse import open_warehouse

FIRST, LAST = "2026-10-22", "2026-10-31"
NOW = datetime(2026, 11, 1, tzinfo=UTC)
RANGE = f"start_date={FIRST}&end_date={LAST}"


def test_endpoints_over_real_marts(tmp_path):
    warehouse_url = f"duckdb:///{tmp_path / 'warehouse'}"
    src = f"duckdb:///{tmp_path / 'source.duckdb'}"
    generate(src, scale="tiny", seed=7, progress=False)
    wh = open_warehouse(warehouse_url)
    ingestion.ingest_everything(SourceDB(src), wh, FIRST, LAST, now=NOW)
    build_everything(wh, FIRST, LAST, NOW, kpi_hours=2)

    settings = Settings(warehouse_url=warehouse_url, jwt_secret=SECRET, ops_url=f"sqlite:///{tmp_path / 'ops.db'}")
    reader = open_reader(warehouse_url)
    try:
        client = TestClient(create_app(settings, reader=reader))
        va = wh.read_table("venue_analytics")
        busiest = va.group_by("tenant_id", "venue_id").agg(pl.sum("gross_revenue_cents")).sort(
            "gross_revenue_cents", descending=True).row(0)
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
            (pl.col("tenant_id") == tenant) & (pl.col("venue_id") == venue))
        by_channel = get(f"/v1/revenue/by-channel?{RANGE}")
        assert {r["revenue_line"]: r["gross_revenue_cents"] for r in by_channel} == dict(
            rbc.group_by("revenue_line").agg(pl.sum("gross_revenue_cents")).iter_rows())
        assert sum(r["gross_revenue_cents"] for r in by_channel) == summary["gross_revenue_cents"] + sum(
            rbc.filter(pl.col("source") == "resale")["gross_revenue_cents"])
        daily = get(f"/v1/venues/daily?{RANGE}&limit=1000")
        assert len(daily) == mine.height
        trends = get(f"/v1/sales/trends?{RANGE}")
        assert sum(d["tickets_sold"] for d in trends) == mine["tickets_sold"].sum()
        for gran in ("day", "week", "month"):
            assert get(f"/v1/sales/metrics?granularity={gran}&{RANGE}"), gran
        by_cat = get(f"/v1/revenue/by-category?{RANGE}")
        assert sum(r["gross_revenue_cents"] for r in by_cat) == wh.read_table("revenue_by_category").filter(
            (pl.col("tenant_id") == tenant) & (pl.col("venue_id") == venue))["gross_revenue_cents"].sum()
        get("/v1/events/no-shows")  # 200 (rows only for events that ended in the window)
        assert get("/v1/revenue/projections")
        assert get("/v1/sales/seasonality")
        perf = get("/v1/events/performance?limit=1000")
        top = get("/v1/events/top?limit=3")
        assert top == sorted(perf, key=lambda e: (-e["gross_revenue_cents"], e["event_id"]))[:3]
        assert get(f"/v1/events/{top[0]['event_id']}/price-history")
        kpis = get("/v1/kpis", venue_id=None, role="admin")
        assert {"venues_total", "tickets_sold_24h"} <= {k["metric"] for k in kpis}
        # isolation on real data: the other tenant's venues are invisible to this tenant's admin
        other = va.filter(pl.col("tenant_id") != tenant)["venue_id"][0]
        assert get(f"/v1/venues/daily?venue_id={other}&{RANGE}", venue_id=None, role="admin") == []
        ready = client.get("/health/ready").json()
        assert ready["freshness"]["venue_analytics"] == str(va["day"].max())
    finally:
        reader.close()
