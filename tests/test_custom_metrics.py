"""Custom metrics (issue 21): recorded through the API into the ops store (idempotent, all or nothing,
validated against the seed's whitelist with bounds), turned into the custom_metrics mart by the sensor and its
job -- never written to a mart by the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl
import pytest
import sqlalchemy as sa
from api_helpers import make_api

from analytics_pipelines.metrics.custom import hourly, point_error
from analytics_pipelines.ops.custom_metrics import custom_metric_points, custom_metric_requests
from analytics_pipelines.ops.db import ops_engine
from analytics_pipelines.warehouse import open_warehouse

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
EARLIEST = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "metric, value, at, field",
    [
        ("tickets", 1, NOW, "metric_type"),
        ("sales", -1, NOW, "value"),
        ("sales", 2.5, NOW, "value"),  # a count is whole
        ("conversion", 100.5, NOW, "value"),
        ("revenue", float("nan"), NOW, "value"),
        ("sales", 1, NOW + timedelta(minutes=6), "timestamp"),
        ("sales", 1, EARLIEST - timedelta(seconds=1), "timestamp"),
    ],
)
def test_point_errors_name_the_field(metric, value, at, field):
    err = point_error(metric, value, at, NOW, EARLIEST)
    assert err is not None and err.startswith(f"{field}: ")


def test_point_accepts_the_bounds():
    assert point_error("conversion", 37.5, NOW + timedelta(minutes=4), NOW, EARLIEST) is None
    assert point_error("revenue", 1e12, EARLIEST, NOW, EARLIEST) is None


def test_hourly_aggregation():
    t0 = datetime(2026, 12, 6, 10, 5, tzinfo=UTC)
    pts = pl.DataFrame(
        {
            "id": [1, 2, 3, 4, 5],
            "tenant_id": ["t"] * 5,
            "venue_id": ["v", "v", "v", "v", "w"],
            "metric_type": ["sales", "sales", "sales", "sales", "sales"],
            "value": [3.0, 5.0, 7.0, 1.0, 9.0],
            # 3 and 5 in 10:xx (5 is later), 7 and 1 at the same instant in 11:xx (1 has the higher id)
            "recorded_at": [t0, t0 + timedelta(minutes=50), t0 + timedelta(hours=1)] * 1
            + [t0 + timedelta(hours=1), t0],
        }
    )
    out = hourly(pts).sort("venue_id", "hour")
    assert out.select("venue_id", "points", "value_sum", "value_min", "value_max", "value_last").rows() == [
        ("v", 2, 8.0, 3.0, 5.0, 5.0),
        ("v", 2, 8.0, 1.0, 7.0, 1.0),
        ("w", 1, 9.0, 9.0, 9.0, 9.0),
    ]
    assert out["value_avg"].to_list() == [4.0, 4.0, 9.0]
    assert out["unit"].unique().to_list() == ["count"]
    assert out["day"].unique().to_list() == [t0.date()]


@pytest.fixture
def api(tmp_path, ops_url):
    a, reader = make_api(f"duckdb:///{tmp_path / 'warehouse'}", tmp_path)
    a.settings.__dict__["ops_url"] = ops_url  # frozen dataclass: the app reads it on first ops use
    yield a
    reader.close()


def _writer(a, tenant, venue=None, role="user"):
    return a.headers(tenant, venue, role=role, permissions=("analytics.read", "analytics.write"))


def _count(url: str) -> tuple[int, int]:
    with ops_engine(url).connect() as conn:
        return (
            conn.execute(sa.select(sa.func.count()).select_from(custom_metric_requests)).scalar_one(),
            conn.execute(sa.select(sa.func.count()).select_from(custom_metric_points)).scalar_one(),
        )


def test_record_is_idempotent_validated_and_scoped(api):
    t = api.marts.tenant_ids()[0]
    v, other = api.marts.tenants[t][0], api.marts.tenants[t][1]
    url = api.settings.ops_url
    h = _writer(api, t, v)
    body = {"metric_type": "sales", "value": 12, "dimensions": {"channel": "box_office"}}
    first = api.client.post("/v1/metrics", json=body, headers={**h, "Idempotency-Key": "k-1"})
    assert first.status_code == 201, first.text
    again = api.client.post("/v1/metrics", json=body, headers={**h, "Idempotency-Key": "k-1"})
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["data"]["request_id"] == first.json()["data"]["request_id"]
    assert _count(url) == (1, 1)
    changed = api.client.post(
        "/v1/metrics", json={**body, "value": 13}, headers={**h, "Idempotency-Key": "k-1"}
    )
    assert changed.status_code == 422 and "Idempotency-Key" in changed.json()["detail"]
    # without a key every request records
    assert api.client.post("/v1/metrics", json=body, headers=h).status_code == 201
    assert _count(url) == (2, 2)
    # bulk: all or nothing, the point at fault named
    bad = [{"metric_type": "sales", "value": 1}, {"metric_type": "conversion", "value": 50.5}]
    bad.append({"metric_type": "attendance", "value": 2.5})
    r = api.client.post("/v1/metrics/bulk", json={"metrics": bad}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "metrics.2.value", r.text
    assert _count(url) == (2, 2)
    good = api.client.post("/v1/metrics/bulk", json={"metrics": bad[:2]}, headers=h)
    assert good.status_code == 201 and good.json()["data"]["points"] == 2
    assert _count(url) == (3, 4)
    # scope and permission
    assert api.client.post("/v1/metrics", json={**body, "venue_id": other}, headers=h).status_code == 403
    reader_only = api.headers(t, v)
    assert api.client.post("/v1/metrics", json=body, headers=reader_only).status_code == 403
    admin = _writer(api, t, role="admin")
    r = api.client.post("/v1/metrics", json=body, headers=admin)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "venue_id"
    assert api.client.post("/v1/metrics", json={**body, "venue_id": other}, headers=admin).status_code == 201
    # unknown type, future time, unknown field: 422 naming it; nothing recorded
    for payload, field in (
        ({"metric_type": "tickets", "value": 1}, "metric_type"),
        ({"metric_type": "sales", "value": 1, "timestamp": "2999-01-01T00:00:00Z"}, "timestamp"),
        ({"metric_type": "sales", "value": 1, "extra": 1}, "extra"),
        ({"metric_type": "sales", "value": 1, "dimensions": {"Bad Key": "x"}}, "dimensions.Bad Key"),
    ):
        r = api.client.post("/v1/metrics", json=payload, headers=h)
        assert r.status_code == 422 and r.json()["errors"][0]["field"].startswith(field), (payload, r.text)
    assert _count(url) == (4, 5)
    # every point is in the ops store with its venue and tenant, never in the warehouse
    with ops_engine(url).connect() as conn:
        venues = sorted(r.venue_id for r in conn.execute(sa.select(custom_metric_points.c.venue_id)))
    assert venues == sorted([v] * 4 + [other])
    assert "custom_metrics" not in open_warehouse(api.warehouse_url).tables()


def test_sensor_and_job_build_the_mart(tmp_path, monkeypatch, ops_url):
    """Points recorded through the API -> custom_metrics_sensor -> custom_metrics_job for that day -> the mart,
    equal to a hand aggregation, its reconciliation check passing; a re-run gives the same rows."""
    from analytics_pipelines.definitions import defs
    from analytics_pipelines.resources import OpsResource

    wh_url = f"duckdb:///{tmp_path / 'warehouse'}"
    a, reader = make_api(wh_url, tmp_path)
    a.settings.__dict__["ops_url"] = ops_url
    monkeypatch.setenv("TT_OPS_URL", ops_url)
    monkeypatch.setenv("TT_WAREHOUSE_URL", wh_url)
    t = a.marts.tenant_ids()[0]
    v = a.marts.tenants[t][0]
    now = datetime.now(UTC).replace(microsecond=0)
    at = [now - timedelta(minutes=m) for m in (1, 2, 3)]
    pts = [
        {"metric_type": "sales", "value": 4, "timestamp": at[0].isoformat()},
        {"metric_type": "sales", "value": 6, "timestamp": at[1].isoformat()},
        {"metric_type": "conversion", "value": 12.5, "timestamp": at[2].isoformat()},
    ]
    r = a.client.post("/v1/metrics/bulk", json={"metrics": pts}, headers=_writer(a, t, v))
    assert r.status_code == 201, r.text
    reader.close()

    sensor = defs.resolve_sensor_def("custom_metrics_sensor")
    repo = defs.get_repository_def()
    with dg.DagsterInstance.ephemeral() as instance:
        with dg.build_sensor_context(
            instance=instance, repository_def=repo, resources={"ops": OpsResource(url=ops_url)}
        ) as ctx:
            result = sensor.evaluate_tick(ctx)
            cursor = ctx.cursor
        days = sorted({p.astimezone(UTC).date().isoformat() for p in at})
        assert sorted(rr.partition_key for rr in result.run_requests) == days
        with dg.build_sensor_context(
            instance=instance, repository_def=repo, cursor=cursor, resources={"ops": OpsResource(url=ops_url)}
        ) as ctx:
            assert not sensor.evaluate_tick(ctx).run_requests  # nothing new since the cursor
        job = defs.resolve_job_def("custom_metrics_job")
        for _ in range(2):  # a re-run of the same day rewrites the same rows
            for day in days:
                run = job.execute_in_process(partition_key=day, instance=instance)
                assert run.success
                checks = [
                    e.asset_check_evaluation_data
                    for e in run.all_events
                    if e.event_type_value == "ASSET_CHECK_EVALUATION"
                ]
                assert checks and all(c.passed for c in checks)
            mart = open_warehouse(wh_url).read_table("custom_metrics")
            got = {
                (row["metric_type"], row["hour"]): (row["points"], row["value_sum"])
                for row in mart.iter_rows(named=True)
            }
            want: dict = {}
            for p, ts in zip(pts, at, strict=True):
                key = (p["metric_type"], ts.replace(minute=0, second=0))
                n, s = want.get(key, (0, 0.0))
                want[key] = (n + 1, s + p["value"])
            assert got == want
            assert set(mart["venue_id"]) == {v} and set(mart["tenant_id"]) == {t}
