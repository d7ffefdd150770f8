"""GET /v1/monitoring/velocity, /v1/monitoring/sellout/{event_id} and the Grafana velocity series, on both
warehouse backends: venue scoping (403), unknown ids (404), malformed ids (422)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from api_helpers import SECRET
from fastapi.testclient import TestClient

from analytics_pipelines.api import Settings, create_app
from analytics_pipelines.api.auth import mint_token
from analytics_pipelines.monitoring import sellout as S
from analytics_pipelines.monitoring import velocity as V
from analytics_pipelines.warehouse import open_warehouse
from analytics_pipelines.warehouse.readers import open_reader

T1, T2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
V1, V2, V3 = (f"{i}{i}{i}{i}0000-0000-4000-8000-000000000000" for i in (3, 4, 5))
E1, E2, E3 = (f"{i}{i}{i}{i}0000-0000-4000-8000-00000000000{i}" for i in (6, 7, 8))
START = datetime(2026, 10, 31, 18, 0, tzinfo=UTC)


def _velocity() -> pl.DataFrame:
    rows = []
    for tenant, venue, event, rate in ((T1, V1, E1, 12.0), (T1, V2, E2, 2.0), (T2, V3, E3, 1.0)):
        for k in range(6):
            b = START + timedelta(minutes=5 * k)
            rows.append(
                {
                    "tenant_id": tenant,
                    "venue_id": venue,
                    "event_id": event,
                    "bucket_start": b,
                    "day": b.date(),
                    "tickets": int(rate * 5),
                    "per_minute_5m": rate,
                    "per_minute_15m": rate,
                    "per_minute_60m": rate / 2,
                    "acceleration": 0.0,
                    "tickets_sold": int(rate * 5) * (k + 1),
                    "capacity": 1000,
                    "remaining": 1000 - int(rate * 5) * (k + 1),
                    "trend": "steady",
                    "high_velocity": rate > 10,
                    "sellout_imminent": False,
                    "sold_out": False,
                    "oversold": False,
                    "eta_linear_minutes": None,
                    "capacity_reason": None,
                }
            )
    return pl.DataFrame(rows).cast(V.SCHEMA)


def _forecast() -> pl.DataFrame:
    now = START + timedelta(minutes=30)
    rows = []
    for tenant, venue, event, eta in ((T1, V1, E1, 60.0), (T1, V2, E2, None), (T2, V3, E3, 30.0)):
        rows.append(
            {
                "tenant_id": tenant,
                "venue_id": venue,
                "event_id": event,
                "as_of": now,
                "tickets_sold": 300,
                "capacity": 1000,
                "fraction_sold": 0.3,
                "elapsed_minutes": 30.0,
                "eta_minutes_p10": None if eta is None else eta / 2,
                "eta_minutes_p50": eta,
                "eta_minutes_p90": None if eta is None else eta * 2,
                "sellout_at_p10": None,
                "sellout_at_p50": None if eta is None else now + timedelta(minutes=eta),
                "sellout_at_p90": None,
                "starts_at": now + timedelta(days=3),
                "expected_before_event": eta is not None,
                "sellout_imminent": eta is not None and eta <= 60,
                "eta_linear_minutes": 20.0,
                "neighbours": 7 if eta else 0,
                "interval_method": "split_conformal_log_time" if eta else None,
                "reason": None if eta else "stalled: no sale in the last 24 hours",
                "model_version": "curve_knn-1-test",
                "trained_at": now,
            }
        )
    return pl.DataFrame(rows).cast(S.FORECAST_SCHEMA)


@pytest.fixture
def client(warehouse_url, tmp_path):
    wh = open_warehouse(warehouse_url)
    v = _velocity()
    wh.write_partitions("sales_velocity", v, ["day"], [("2026-10-31",)])
    wh.replace_table("sellout_forecast", _forecast())
    settings = Settings(
        warehouse_url=warehouse_url, jwt_secret=SECRET, ops_url=f"sqlite:///{tmp_path / 'o.db'}"
    )
    reader = open_reader(warehouse_url)
    try:
        yield TestClient(create_app(settings, reader=reader)), settings
    finally:
        reader.close()


def _h(settings, tenant, venue=None, role="user"):
    token = mint_token(settings, tenant_id=tenant, venue_id=venue, role=role, permissions=["analytics.read"])
    return {"Authorization": f"Bearer {token}"}


def test_velocity_is_venue_scoped_with_404_403_422(client):
    c, s = client
    r = c.get(f"/v1/monitoring/velocity?event_id={E1}", headers=_h(s, T1, V1))
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert len(data) == 6 and {d["event_id"] for d in data} == {E1}
    assert data[0]["bucket_start"] > data[-1]["bucket_start"] and data[0]["high_velocity"] is True
    # the venue's token sees only its venue without event_id
    r = c.get("/v1/monitoring/velocity", headers=_h(s, T1, V1))
    assert {d["venue_id"] for d in r.json()["data"]} == {V1}
    # the tenant admin sees both venues of the tenant, never the other tenant's
    r = c.get("/v1/monitoring/velocity", headers=_h(s, T1, role="admin"))
    assert {d["event_id"] for d in r.json()["data"]} == {E1, E2}
    assert c.get(f"/v1/monitoring/velocity?event_id={E2}", headers=_h(s, T1, V1)).status_code == 403
    assert c.get(f"/v1/monitoring/velocity?event_id={E3}", headers=_h(s, T1, V1)).status_code == 404
    assert c.get("/v1/monitoring/velocity?event_id=nope", headers=_h(s, T1, V1)).status_code == 422
    assert c.get(f"/v1/monitoring/velocity?event_id={E1}").status_code == 401


def test_sellout_eta_or_reason_with_404_403_422(client):
    c, s = client
    r = c.get(f"/v1/monitoring/sellout/{E1}", headers=_h(s, T1, V1))
    assert r.status_code == 200, r.text
    [row] = r.json()["data"]
    assert row["eta_minutes_p50"] == 60.0 and row["eta_minutes_p10"] <= 60.0 <= row["eta_minutes_p90"]
    assert row["reason"] is None and row["sellout_imminent"] is True
    [row] = c.get(f"/v1/monitoring/sellout/{E2}", headers=_h(s, T1, V2)).json()["data"]
    assert row["eta_minutes_p50"] is None and row["reason"].startswith("stalled")
    assert c.get(f"/v1/monitoring/sellout/{E2}", headers=_h(s, T1, V1)).status_code == 403
    assert c.get(f"/v1/monitoring/sellout/{E3}", headers=_h(s, T1, role="admin")).status_code == 404
    assert c.get("/v1/monitoring/sellout/not-a-uuid", headers=_h(s, T1, V1)).status_code == 422


def test_grafana_velocity_series_scoped_to_the_token(client):
    c, s = client
    names = c.post("/grafana/search", headers=_h(s, T1, V1), json={"target": "velocity"}).json()
    assert "velocity.per_minute_5m" in names
    body = {
        "range": {"from": "2026-10-31T17:00:00Z", "to": "2026-10-31T20:00:00Z"},
        "targets": [{"target": "velocity.tickets"}, {"target": f"velocity.per_minute_5m.{E1}"}],
    }
    out = c.post("/grafana/query", headers=_h(s, T1, V1), json=body).json()
    assert [p[0] for p in out[0]["datapoints"]] == [60.0] * 6  # venue V1 only: E1's 12/min x 5
    assert [p[0] for p in out[1]["datapoints"]] == [12.0] * 6
    admin = c.post("/grafana/query", headers=_h(s, T1, role="admin"), json=body).json()
    assert [p[0] for p in admin[0]["datapoints"]] == [70.0] * 6  # both venues of T1, not T2's
    bad = {**body, "targets": [{"target": "velocity.nope"}]}
    assert c.post("/grafana/query", headers=_h(s, T1, V1), json=bad).status_code == 400
