"""The query layer over the real marts (tiny data materialized through the real jobs, embedded warehouse):
every summed measure of every cube equals a hand-written sum over the mart for the busiest tenant, and every
measure (formulas included) answers at every granularity of the cube's time -- the declarations fit the
marts' real column types, not only the samples'."""

from __future__ import annotations

import pytest
from api_helpers import SECRET
from fastapi.testclient import TestClient

from analytics_pipelines.api import Settings, create_app
from analytics_pipelines.api.auth import mint_token
from analytics_pipelines.registry import default_registry
from analytics_pipelines.warehouse import open_warehouse
from analytics_pipelines.warehouse.readers import open_reader

RANGE = ["2026-06-01", "2026-10-31"]


def test_every_cube_answers_over_the_real_marts(materialized, tmp_path):
    url = materialized.warehouse_url
    wh = open_warehouse(url)
    tenant = wh.read(
        "SELECT tenant_id FROM venue_analytics GROUP BY 1 ORDER BY sum(gross_revenue_cents) DESC LIMIT 1"
    )["tenant_id"][0]
    settings = Settings(warehouse_url=url, jwt_secret=SECRET, ops_url=f"sqlite:///{tmp_path / 'ops.db'}")
    reader = open_reader(url)
    headers = {"Authorization": "Bearer " + mint_token(settings, tenant_id=tenant, role="admin")}
    checked = 0
    try:
        client = TestClient(create_app(settings, reader=reader))
        for name, cube in default_registry().cubes().items():
            if name not in wh.tables():
                pytest.fail(f"{name} was not materialized")
            body = {"measures": [f"{name}.{m.name}" for m in cube.measures]}
            cond, params = ["tenant_id = %s"], [tenant]
            cond += [f"{c} = %s" for c, _ in cube.fixed]
            params += [v for _, v in cube.fixed]
            if cube.time:
                body["time_dimension"] = {"dimension": f"{name}.{cube.time}", "date_range": RANGE}
                col = cube.dimension(cube.time).column
                cond.append(f"CAST({col} AS DATE) BETWEEN DATE '{RANGE[0]}' AND DATE '{RANGE[1]}'")
            if cube.grain_column:
                cond.append(f"{cube.grain_column} = %s")
                params.append(cube.grain_for(None))
            r = client.post("/v1/query", headers=headers, json=body)
            assert r.status_code == 200, (name, r.text)
            row = r.json()["data"][0]
            for m in cube.measures:
                if m.agg != "sum" or m.when:
                    continue
                want = wh.read(f"SELECT sum({m.column}) AS s FROM {name} WHERE {' AND '.join(cond)}", params)[
                    "s"
                ][0]
                got = row[f"{name}.{m.name}"]
                assert got == pytest.approx(float(want or 0) if want is not None else None) or (
                    got is None and want is None
                ), (name, m.name, got, want)
                checked += 1
            for g in cube.dimension(cube.time).granularities if cube.time else ():
                body["time_dimension"]["granularity"] = g
                r = client.post("/v1/query", headers=headers, json={**body, "dimensions": [f"{name}.venue"]})
                assert r.status_code == 200, (name, g, r.text)
    finally:
        reader.close()
    assert checked >= 40
