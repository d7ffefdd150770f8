"""The table registry: a mart added through it alone appears in Definitions, the warehouse catalog and the
API; the registry refuses inconsistent entries; docs/marts.md's index is the registry's; every served mart
is tenant-isolated on both warehouse backends; no plain sha256 of personal data anywhere after a full run."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
from api_helpers import SECRET
from fastapi.testclient import TestClient
from materialized import environment
from privacy_scan import assert_no_plain_values

from analytics_pipelines.api import Settings, create_app
from analytics_pipelines.api.auth import mint_token
from analytics_pipelines.assets.factory import mart_asset
from analytics_pipelines.definitions import build_definitions
from analytics_pipelines.registry import Registry, Table, default_registry
from analytics_pipelines.resources import WarehouseResource
from analytics_pipelines.settings import Settings as ProjectSettings
from analytics_pipelines.source.db import SourceDB
from analytics_pipelines.warehouse import open_warehouse
from analytics_pipelines.warehouse.readers import open_reader

ROOT = Path(__file__).resolve().parent.parent

THROWAWAY_SQL = """-- a throw-away mart: orders and gross revenue per venue and day
SELECT tenant_id, venue_id, day, count(*) AS orders, sum(gross_revenue_cents) AS gross_revenue_cents
FROM fct_orders WHERE day BETWEEN CAST($first AS DATE) AND CAST($last AS DATE)
GROUP BY ALL
"""


def _copy(url: str, dst: Path) -> str:
    src = Path(url.removeprefix("duckdb://"))
    shutil.copytree(src, dst / "warehouse")
    return f"duckdb:///{dst / 'warehouse'}"


def test_a_mart_added_through_the_registry_alone_is_everywhere(materialized, tmp_path):
    """One SQL file + one registry entry: the asset and its key check in Definitions, the table in the
    warehouse's DuckDB catalog and in `table_catalog`, the rows in the API, scoped to the token's tenant."""
    sql = tmp_path / "throwaway_venue_orders.sql"
    sql.write_text(THROWAWAY_SQL)
    entry = Table(
        name="throwaway_venue_orders",
        group="marts",
        description="Orders and revenue per venue and day (a throw-away mart of the registry test).",
        grain="one row per venue and day",
        keys=("venue_id", "day"),
        partitioning="daily",
        partition_column="day",
        upstream=("fct_orders",),
        sql=str(sql),
        serve=True,
        venue_column="venue_id",
    )
    registry = default_registry().with_tables(entry)
    with environment(materialized.env):
        defs = build_definitions(registry, ProjectSettings.from_env())
    graph = defs.resolve_asset_graph()
    node = graph.get(dg.AssetKey("throwaway_venue_orders"))
    assert node.group_name == "marts" and {k.name for k in node.check_keys} == {"unique_key"}
    assert {k.to_user_string() for k in node.parent_keys} == {"fct_orders"}

    url = _copy(materialized.warehouse_url, tmp_path)
    resources = {"warehouse": WarehouseResource(url=url)}
    with environment(materialized.env):
        settings = ProjectSettings.from_env()
        mart = mart_asset(registry, entry, settings)
        catalog = mart_asset(registry, registry.table("table_catalog"), settings)
        fct = dg.AssetSpec("fct_orders", partitions_def=mart.partitions_def)
        for day in ("2026-10-30", "2026-10-31"):
            res = dg.materialize([mart, fct], partition_key=day, resources=resources, selection=[mart])
            assert res.success
            [check] = res.get_asset_check_evaluations()
            assert check.passed and check.check_name == "unique_key"
        assert dg.materialize([catalog], resources=resources).success
    wh = open_warehouse(url)
    rows = wh.read_table("throwaway_venue_orders")
    fct_rows = wh.read("SELECT sum(gross_revenue_cents) AS g FROM fct_orders WHERE day >= DATE '2026-10-30'")
    assert rows["gross_revenue_cents"].sum() == fct_rows["g"][0] and rows["day"].n_unique() == 2
    with duckdb.connect(str(wh.catalog_path), read_only=True) as conn:  # the analysts' catalog
        assert conn.execute("SELECT count(*) FROM throwaway_venue_orders").fetchone()[0] == rows.height
        listed = conn.execute(
            "SELECT grain, served_by_api FROM table_catalog WHERE name = 'throwaway_venue_orders'"
        ).fetchall()
    assert listed == [("one row per venue and day", True)]

    api_settings = Settings(warehouse_url=url, jwt_secret=SECRET, ops_url=f"sqlite:///{tmp_path / 'ops.db'}")
    reader = open_reader(url, tables=[t.name for t in registry.servable()])
    try:
        client = TestClient(create_app(api_settings, reader=reader, registry=registry))
        tenant, venue = (
            rows.sort("gross_revenue_cents", descending=True).select("tenant_id", "venue_id").row(0)
        )
        admin = {"Authorization": "Bearer " + mint_token(api_settings, tenant_id=tenant, role="admin")}
        listed = client.get("/v1/marts", headers=admin).json()["data"]
        assert "throwaway_venue_orders" in {m["name"] for m in listed}
        got = client.get("/v1/marts/throwaway_venue_orders?limit=1000", headers=admin).json()["data"]
        assert got and {r["tenant_id"] for r in got} == {tenant}
        assert len(got) == rows.filter(pl.col("tenant_id") == tenant).height
        venue_token = {
            "Authorization": "Bearer " + mint_token(api_settings, tenant_id=tenant, venue_id=venue)
        }
        mine = client.get("/v1/marts/throwaway_venue_orders", headers=venue_token).json()["data"]
        assert mine and {r["venue_id"] for r in mine} == {venue}
        # without the entry the same API does not know the table
        plain = TestClient(create_app(api_settings, reader=reader))
        assert plain.get("/v1/marts/throwaway_venue_orders", headers=admin).status_code == 404
    finally:
        reader.close()


def test_the_registry_refuses_inconsistent_entries():
    base = dict(group="marts", description="d" * 30, grain="g", keys=("k",))
    with pytest.raises(ValueError, match="upstream nope is not registered"):
        Registry((Table(name="a", upstream=("nope",), build="m:f", **base),))
    with pytest.raises(ValueError, match="no tenant column and no reason"):
        Registry((Table(name="a", tenant_column=None, build="m:f", **base),))
    with pytest.raises(ValueError, match="declared twice"):
        Registry((Table(name="a", build="m:f", **base), Table(name="a", build="m:f", **base)))
    with pytest.raises(ValueError, match="cycle"):
        Registry(
            (
                Table(name="a", upstream=("b",), build="m:f", **base),
                Table(name="b", upstream=("a",), build="m:f", **base),
            )
        )
    with pytest.raises(ValueError, match="neither `build` nor `sql`"):
        Registry((Table(name="a", **base),))
    # a multi-asset mixing daily and unpartitioned outputs: Dagster's backfill cannot plan it (tests/test_backfill.py)
    with pytest.raises(ValueError, match="b: partitioned not but its producer a daily"):
        Registry(
            (
                Table(
                    name="a",
                    build="m:f",
                    produces=("b",),
                    partitioning="daily",
                    partition_column="day",
                    **base,
                ),
                Table(name="b", produced_by="a", **base),
            )
        )


def test_the_registry_refuses_bad_cubes():
    """A query-layer declaration over a column, measure, granularity or mart that does not exist fails the
    registry's load (default_registry() at import), naming the mart and member."""
    from dataclasses import replace

    from analytics_pipelines.registry.semantic import Dimension, Join, Measure

    registry = default_registry()
    va = registry.table("venue_analytics")

    def load(**changes):
        bad = replace(va, cube=replace(va.cube, **changes))
        return Registry(tuple(bad if t.name == va.name else t for t in registry.tables))

    m = va.cube.measures
    money = dict(unit="cents", description="d")
    cases = [
        (
            "venue_analytics: measure gross reads unknown column 'gross_cents'",
            dict(measures=(*m, Measure("gross", "sum", "gross_cents", **money))),
        ),
        (
            "formula uses unknown measure 'nope'",
            dict(measures=(*m, Measure("r", "formula", formula="gross_revenue / nope", **money))),
        ),
        (
            "Call is not allowed",
            dict(measures=(*m, Measure("r", "formula", formula="__import__('os')", **money))),
        ),
        (
            "formula cycle",
            dict(
                measures=(
                    *m,
                    Measure("a", "formula", formula="b + 1", **money),
                    Measure("b", "formula", formula="a * 2", **money),
                )
            ),
        ),
        ("member orders declared twice", dict(measures=(*m, Measure("orders", "count", **money)))),
        (
            "dimension venue2 reads unknown column 'venue'",
            dict(dimensions=(*va.cube.dimensions, Dimension("venue2", "venue"))),
        ),
        (
            "unknown granularities ['minute']",
            dict(dimensions=(Dimension("day", "day", "date", ("minute", "day")),)),
        ),
        ("a date has no hours", dict(dimensions=(Dimension("day", "day", "date", ("hour", "day")),))),
        ("join to fct_refunds, which has no cube", dict(joins=(Join("fct_refunds", ("venue_id",)),))),
        ("join to event_performance on 'day'", dict(joins=(Join("event_performance", ("day",)),))),
        ("time 'venue' is not a time dimension", dict(time="venue")),
    ]
    for message, changes in cases:
        with pytest.raises(ValueError, match=re.escape(message)):
            load(**changes)
    assert load().cubes()["venue_analytics"] == va.cube  # the unchanged declaration loads


def test_docs_table_index_is_the_registrys():
    doc = (ROOT / "docs" / "marts.md").read_text()
    start, end = "<!-- registry index: begin -->\n", "<!-- registry index: end -->"
    assert start in doc and end in doc, "docs/marts.md lost its generated index markers"
    index = doc[doc.index(start) + len(start) : doc.index(end)]
    assert index == default_registry().markdown_index(), (
        "docs/marts.md's table index is stale: regenerate it with "
        "`python -m analytics_pipelines.registry.docs` (see docs/adding-a-mart.md)"
    )


def test_docs_query_catalogue_is_the_registrys():
    from analytics_pipelines.registry.docs import CUBES_BEGIN, CUBES_END
    from analytics_pipelines.registry.semantic import cubes_markdown

    doc = (ROOT / "docs" / "query.md").read_text()
    assert CUBES_BEGIN in doc and CUBES_END in doc, "docs/query.md lost its generated catalogue markers"
    catalogue = doc[doc.index(CUBES_BEGIN) + len(CUBES_BEGIN) : doc.index(CUBES_END)]
    assert catalogue == cubes_markdown(default_registry().cubes()), (
        "docs/query.md's catalogue is stale: regenerate it with `python -m analytics_pipelines.registry.docs`"
    )


def test_every_declared_table_was_materialized_with_its_declared_columns(materialized):
    wh = open_warehouse(materialized.warehouse_url)
    present = set(wh.tables())
    for t in default_registry().tables:
        if t.stored != "table" or (t.factory == "none" and t.name not in present):
            continue
        assert t.name in present, t.name
        columns = set(wh.read(f"SELECT * FROM {t.name} LIMIT 0").columns)
        assert set(t.keys) <= columns, (t.name, set(t.keys) - columns)
        if t.tenant_column:
            assert t.tenant_column in columns, t.name
        if t.venue_column:
            assert t.venue_column in columns, t.name
        if t.cube is not None:  # the query layer's declared columns are the mart's
            assert set(t.cube.columns) <= columns, (t.name, set(t.cube.columns) - columns)


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def served_warehouse(request, materialized, tmp_path_factory):
    """The session's materialized marts on each backend (copied table by table into PostgreSQL)."""
    if request.param == "duckdb":
        return materialized.warehouse_url
    url = request.getfixturevalue("pg_database_module")
    src, dst = open_warehouse(materialized.warehouse_url), open_warehouse(url)
    for t in default_registry().servable():
        if t.name in src.tables():
            dst.replace_table(t.name, src.read_table(t.name))
    return url


def test_no_served_mart_leaks_another_tenants_rows(served_warehouse, tmp_path):
    """A tenant admin walks every mart the API serves, page by page: every row is its tenant's, and it
    gets all of them; a mart without a tenant column is refused to a non-admin."""
    registry = default_registry()
    wh = open_warehouse(served_warehouse)
    tenants = wh.read("SELECT DISTINCT tenant_id FROM venue_analytics ORDER BY 1")["tenant_id"].to_list()
    assert len(tenants) >= 2
    settings = Settings(
        warehouse_url=served_warehouse, jwt_secret=SECRET, ops_url=f"sqlite:///{tmp_path / 'ops.db'}"
    )
    reader = open_reader(served_warehouse)
    walked = 0
    try:
        client = TestClient(create_app(settings, reader=reader))
        for tenant in tenants[:2]:
            headers = {
                "Authorization": "Bearer "
                + mint_token(settings, tenant_id=tenant, role="admin", permissions=["analytics.read"])
            }
            for t in registry.servable():
                if t.tenant_column is None:
                    user = {
                        "Authorization": "Bearer " + mint_token(settings, tenant_id=tenant, venue_id=tenant)
                    }
                    assert client.get(f"/v1/marts/{t.name}", headers=user).status_code == 403, t.name
                    continue
                rows, offset = [], 0
                while True:
                    r = client.get(f"/v1/marts/{t.name}?limit=1000&offset={offset}", headers=headers)
                    assert r.status_code == 200, (t.name, r.text)
                    page = r.json()["data"]
                    rows += page
                    if len(page) < 1000:
                        break
                    offset += 1000
                assert {row[t.tenant_column] for row in rows} <= {tenant}, t.name
                expected = wh.read(
                    f"SELECT count(*) AS n FROM {t.name} WHERE {t.tenant_column} = %s", [tenant]
                )
                assert len(rows) == int(expected["n"][0]), t.name
                walked += 1
    finally:
        reader.close()
    assert walked >= 2 * 10


def test_no_plain_sha256_of_personal_data_after_a_full_run(materialized):
    """Every table of a warehouse that every job has materialized: no e-mail, phone or name of a real
    (generated) user in clear, nor its plain sha256."""
    src = SourceDB(materialized.source_url)
    user = src.query(
        "SELECT email, phone, first_name, last_name FROM users WHERE email IS NOT NULL "
        "AND phone IS NOT NULL LIMIT 1"
    ).row(0)
    email, phone, first, last = user
    assert_no_plain_values(open_warehouse(materialized.warehouse_url), [email, phone], words=[first, last])


def test_table_catalog_lists_every_table_and_its_check_catches_a_gap():
    from analytics_pipelines.registry.catalog import check_catalog, table_catalog
    from analytics_pipelines.registry.context import BuildContext, Built

    class NoTables:
        def tables(self):
            return []

    registry = default_registry()
    ctx = BuildContext(NoTables(), registry.table("table_catalog"), registry=registry)
    built = table_catalog(ctx)
    assert built.frames["table_catalog"].height == len(registry.tables) and check_catalog(ctx, built).passed
    df = built.frames["table_catalog"]
    short = df.with_columns(
        pl.when(pl.col("name") == "fct_orders")
        .then(pl.lit("short"))
        .otherwise(pl.col("description"))
        .alias("description")
    )
    assert not check_catalog(ctx, Built({"table_catalog": short})).passed
    assert not check_catalog(ctx, Built({"table_catalog": df.filter(pl.col("name") != "no_shows")})).passed


def test_unique_key_counts_every_row_whose_key_another_row_shares():
    """The unique_key check counts the rows in duplicated keys (both copies; NULL keys equal each other),
    over the key columns present, and fails when a key column is missing."""
    from analytics_pipelines.assets.factory import unique_key

    table = Table("t", "marts", "d", "one row per a and b", keys=("a", "b"))
    df = pl.DataFrame({"a": [1, 1, None, None, 2, 2], "b": ["x", "x", None, None, "y", "z"], "v": range(6)})
    out = unique_key(table, df)
    assert not out.passed and out.metadata["duplicate_rows"] == 4
    assert unique_key(table, df.slice(4)).passed
    assert unique_key(table, df.clear()).metadata["duplicate_rows"] == 0
    missing = unique_key(Table("t", "marts", "d", "g", keys=("a", "c")), df.slice(4))
    assert not missing.passed and missing.metadata["missing_key_columns"] == "c"
