"""The prediction routes on both warehouse backends: the stored demand forecast of an event (404 unknown,
403 another venue's, 422 malformed), model performance (analytics.admin only), and what-if scenarios (bounded
inputs, marketing from the attribution model, elasticity missing or insufficient, results equal to the what-if arithmetic)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
from api_helpers import SECRET
from demand_frames import elasticity_frame
from fastapi.testclient import TestClient

from analytics_pipelines.api import Settings, create_app
from analytics_pipelines.api.auth import mint_token
from analytics_pipelines.predictions import whatif as W
from analytics_pipelines.warehouse import open_warehouse
from analytics_pipelines.warehouse.reader import api_tables
from analytics_pipelines.warehouse.readers import open_reader

T1, T2 = str(uuid.uuid4()), str(uuid.uuid4())
V1, V2, V3 = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
E1, E2, E3, E_PAST = (str(uuid.uuid4()) for _ in range(4))
TT1, TT2, TT3 = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
CAT = str(uuid.uuid4())
D0 = date(2026, 11, 1)


def _forecast_rows(tenant, venue, event, tt, days=10, p50=4.0, price=5000, left=100):
    return [
        {
            "tenant_id": tenant,
            "venue_id": venue,
            "event_id": event,
            "ticket_type_id": tt,
            "day": D0 + timedelta(days=i),
            "horizon_day": i + 1,
            "tickets_p50": p50,
            "tickets_p10": p50 / 2,
            "tickets_p90": p50 * 2,
            "model_version": "demand-hgbq-test",
            "trained_at": datetime(2026, 10, 31, 6, tzinfo=UTC),
            "as_of": D0 - timedelta(days=1),
            "category_id": CAT,
            "price_cents": price,
            "currency": "USD",
            "remaining_tickets": left,
            "capacity": 200,
        }
        for i in range(days)
    ]


EFFECTS = pl.DataFrame(
    {
        "tenant_id": [T1, T1],
        "channel": ["email", "display"],
        "incremental_effect": [0.2, 0.02],
        "exposed_paths": [300, 3000],
        "training_first": [D0 - timedelta(days=180)] * 2,
        "training_last": [D0 - timedelta(days=1)] * 2,
        "day": [D0 - timedelta(days=1)] * 2,
    }
)


def _write(wh, with_elasticity=True):
    # the data-driven attribution model of T1 (an older fit first) and attributed orders at V1 only
    older = EFFECTS.with_columns(pl.col("day") - timedelta(days=1), incremental_effect=pl.lit(0.9))
    wh.replace_table("attribution_channel_effects", pl.concat([older, EFFECTS]))
    wh.replace_table(
        "campaign_attribution",
        pl.DataFrame(
            {
                "tenant_id": [T1] * 3,
                "venue_id": [V1] * 3,
                "order_id": ["o1", "o1", "o2"],
                "model": ["linear"] * 3,
                "channel": ["email", "display", "email"],
                "campaign_id": ["c1", "c2", "c1"],
                "revenue_cents": [10000, 10000, 20000],
                "day": [D0 - timedelta(days=3)] * 3,
            }
        ),
    )
    fc = pl.DataFrame(
        _forecast_rows(T1, V1, E1, TT1)
        + _forecast_rows(T1, V1, E1, TT2, p50=2.0, price=9000)
        + _forecast_rows(T1, V2, E2, TT3)
    )
    wh.replace_table("demand_forecast", fc)
    wh.replace_table(
        "demand_forecast_reasons",
        pl.DataFrame(
            [
                {
                    "tenant_id": T1,
                    "venue_id": V1,
                    "event_id": E_PAST,
                    "ticket_type_id": str(uuid.uuid4()),
                    "as_of": D0,
                    "reason": "past",
                    "detail": "the event started",
                },
                {
                    "tenant_id": T2,
                    "venue_id": V3,
                    "event_id": E3,
                    "ticket_type_id": None,
                    "as_of": D0,
                    "reason": "no_ticket_types",
                    "detail": "none",
                },
            ],
            schema_overrides={"ticket_type_id": pl.String},
        ),
    )
    wh.replace_table(
        "model_performance",
        pl.DataFrame(
            {
                "model_family": ["demand", "demand", "churn"],
                "model": ["hist_gradient_boosting_quantile", "seasonal_naive", "logistic_regression"],
                "evaluation": ["out_of_time"] * 3,
                "metric": ["mase", "mase", "roc_auc"],
                "bucket": [None, None, None],
                "value": [0.8, 1.1, 0.75],
                "n": [100, 100, 50],
            },
            schema_overrides={"bucket": pl.String},
        ),
    )
    if with_elasticity:
        wh.replace_table(
            "price_elasticity",
            pl.concat(
                [
                    elasticity_frame(T1, CAT, None),
                    elasticity_frame(
                        T2, CAT, None, status="insufficient_data", reason="one change", n_price_changes=1
                    ),
                ]
            ),
        )


@pytest.fixture
def client(warehouse_url, tmp_path):
    wh = open_warehouse(warehouse_url)
    _write(wh)
    settings = Settings(
        warehouse_url=warehouse_url, jwt_secret=SECRET, ops_url=f"sqlite:///{tmp_path / 'ops.sqlite'}"
    )
    reader = open_reader(warehouse_url, tables=(*api_tables(), "price_elasticity"))
    c = TestClient(create_app(settings, reader=reader))
    c.settings = settings
    yield c
    reader.close()


def _h(c, tenant=T1, venue=V1, role="user", perms=("analytics.read",)):
    tok = mint_token(c.settings, tenant_id=tenant, venue_id=venue, role=role, permissions=list(perms))
    return {"Authorization": f"Bearer {tok}"}


def test_demand_forecast_route_scoping(client):
    r = client.get(f"/v1/predictions/demand/{E1}?days_ahead=5", headers=_h(client))
    assert r.status_code == 200, r.text
    body = r.json()["data"]
    assert body["venue_id"] == V1 and body["model_version"] == "demand-hgbq-test"
    assert len(body["forecast"]) == 10  # two ticket types x 5 days
    totals = {t["ticket_type_id"]: t for t in body["totals"]}
    assert totals[TT1]["p50"] == pytest.approx(20.0) and totals[TT2]["p90"] == pytest.approx(20.0)
    # an event with reasons only
    r = client.get(f"/v1/predictions/demand/{E_PAST}", headers=_h(client))
    assert r.status_code == 200 and r.json()["data"]["reasons"][0]["reason"] == "past"
    assert r.json()["data"]["forecast"] == []
    # another venue's event: 403; an admin of the tenant reads it; another tenant's: 404; unknown: 404
    assert client.get(f"/v1/predictions/demand/{E2}", headers=_h(client)).status_code == 403
    admin = _h(client, venue=None, role="admin")
    assert client.get(f"/v1/predictions/demand/{E2}", headers=admin).status_code == 200
    assert client.get(f"/v1/predictions/demand/{E3}", headers=_h(client)).status_code == 404
    assert client.get(f"/v1/predictions/demand/{uuid.uuid4()}", headers=_h(client)).status_code == 404
    for bad in ("not-a-uuid", f"{E1}?days_ahead=0", f"{E1}?days_ahead=366"):
        assert client.get(f"/v1/predictions/demand/{bad}", headers=_h(client)).status_code == 422, bad
    assert client.get(f"/v1/predictions/demand/{E1}").status_code == 401


def test_model_performance_is_for_admins(client):
    assert client.get("/v1/predictions/model-performance", headers=_h(client)).status_code == 403
    admin = _h(client, venue=None, perms=("analytics.read", "analytics.admin"))
    r = client.get("/v1/predictions/model-performance", headers=admin)
    assert r.status_code == 200, r.text
    assert {row["model_family"] for row in r.json()["data"]} == {"demand", "churn"}
    r = client.get("/v1/predictions/model-performance?family=demand", headers=admin)
    assert {row["model"] for row in r.json()["data"]} == {"hist_gradient_boosting_quantile", "seasonal_naive"}
    assert client.get("/v1/predictions/model-performance?family=DROP", headers=admin).status_code == 422


def _post(c, body, **kw):
    return c.post("/v1/predictions/what-if", json=body, headers=_h(c, **kw))


def test_what_if_pricing_and_capacity(client, warehouse_url):
    body = {
        "event_id": E1,
        "scenario": {"type": "pricing", "price_changes": [{"ticket_type_id": TT1, "price_change_pct": 10}]},
    }
    r = _post(client, body)
    assert r.status_code == 200, r.text
    fc = pl.DataFrame(_forecast_rows(T1, V1, E1, TT1) + _forecast_rows(T1, V1, E1, TT2, p50=2.0, price=9000))
    expected = W.pricing(fc, elasticity_frame(T1, CAT, None), {TT1: 10.0})
    got = r.json()["data"]
    assert got["total"]["revenue_cents"] == expected["total"]["revenue_cents"]
    by_type = {t["ticket_type_id"]: t for t in got["ticket_types"]}
    assert by_type[TT1]["tickets"]["p50"] == pytest.approx(40 * 1.1**-1.2)
    assert by_type[TT2]["tickets"]["p50"] == pytest.approx(20.0)  # unchanged price: unchanged demand
    assert _post(client, body).json() == r.json()  # reproducible
    r = _post(client, {"event_id": E1, "scenario": {"type": "capacity", "capacity_change": -150}})
    assert r.status_code == 200, r.text
    cap = r.json()["data"]
    assert cap["baseline"]["tickets_left"] == 200 and cap["scenario"]["tickets_left"] == 50
    assert cap["scenario"]["sell_out_probability"] > cap["baseline"]["sell_out_probability"]
    # another tenant whose elasticity is insufficient: 422 with the reason and the count
    bad_tenant = {
        "event_id": E3,
        "scenario": {"type": "pricing", "price_changes": [{"ticket_type_id": TT1, "price_change_pct": 5}]},
    }
    assert _post(client, bad_tenant, tenant=T2, venue=V3).status_code == 422  # no forecast for E3
    r = _post(client, {**body, "event_id": E2}, venue=None, role="admin")
    assert r.status_code == 422 and "without a demand forecast" in r.json()["detail"]


def test_what_if_bounds_and_422s(client):
    base = {"event_id": E1}
    cases = [
        {
            "scenario": {
                "type": "pricing",
                "price_changes": [{"ticket_type_id": TT1, "price_change_pct": 500}],
            }
        },
        {
            "scenario": {
                "type": "pricing",
                "price_changes": [{"ticket_type_id": TT1, "price_change_pct": -95}],
            }
        },
        {"scenario": {"type": "pricing", "price_changes": []}},
        {"scenario": {"type": "pricing", "price_changes": [{"ticket_type_id": "x", "price_change_pct": 5}]}},
        {"scenario": {"type": "capacity", "capacity_change": 10**9}},
        {"scenario": {"type": "capacity", "capacity_change": 5, "extra": 1}},
        {"scenario": {"type": "weather"}},
        {"scenario": {"type": "pricing"}},
    ]
    for c in cases:
        r = _post(client, {**base, **c})
        assert r.status_code == 422, (c, r.text)
    for bad in ({"email": 600}, {}, {"email": -101}):
        r = _post(client, {**base, "scenario": {"type": "marketing", "spend_change_pct": bad}})
        assert r.status_code == 422, (bad, r.text)
    assert (
        _post(
            client, {"event_id": "nope", "scenario": {"type": "capacity", "capacity_change": 1}}
        ).status_code
        == 422
    )
    r = _post(client, {"event_id": str(uuid.uuid4()), "scenario": {"type": "capacity", "capacity_change": 1}})
    assert r.status_code == 404
    r = _post(client, {"event_id": E2, "scenario": {"type": "capacity", "capacity_change": 1}})
    assert r.status_code == 403


def test_what_if_marketing_from_the_attribution_model(client):
    from analytics_pipelines.behavior.whatif import marketing_whatif

    body = {
        "event_id": E1,
        "scenario": {"type": "marketing", "spend_change_pct": {"email": 50}, "period_days": 30},
    }
    r = _post(client, body)
    assert r.status_code == 200, r.text
    got = r.json()["data"]
    assert got["avg_order_revenue_cents"] == 15000  # o1 10,000 (two channels' rows, one order), o2 20,000
    expected = marketing_whatif(EFFECTS, {"email": 0.5}, 15000, period_days=30)  # the latest fit only
    rows = {c["channel"]: c for c in got["channels"]}
    assert rows["email"]["extra_conversions"] == pytest.approx(
        expected.row(0, named=True)["extra_conversions"]
    )
    assert (
        rows["total"]["extra_revenue_cents"]
        == expected.filter(pl.col("channel") == "total")["extra_revenue_cents"].item()
    )
    assert rows["display"]["extra_conversions"] == 0
    assert _post(client, body).json() == r.json()  # reproducible
    unknown = {**body, "scenario": {"type": "marketing", "spend_change_pct": {"fax": 10}}}
    assert _post(client, unknown).status_code == 422
    # another venue's event, read by an admin: that venue has no attributed orders -> 422 with why
    r = _post(client, {**body, "event_id": E2}, venue=None, role="admin")
    assert r.status_code == 422 and "no attributed orders" in r.json()["detail"]
    # a venue token asking for another venue's event: 403
    assert _post(client, {**body, "event_id": E2}).status_code == 403


def test_what_if_pricing_without_elasticities(warehouse_url, tmp_path):
    wh = open_warehouse(warehouse_url)
    _write(wh, with_elasticity=False)
    settings = Settings(
        warehouse_url=warehouse_url, jwt_secret=SECRET, ops_url=f"sqlite:///{tmp_path / 'ops.sqlite'}"
    )
    reader = open_reader(warehouse_url, tables=(*api_tables(), "price_elasticity"))
    try:
        c = TestClient(create_app(settings, reader=reader))
        c.settings = settings
        body = {
            "event_id": E1,
            "scenario": {
                "type": "pricing",
                "price_changes": [{"ticket_type_id": TT1, "price_change_pct": 10}],
            },
        }
        r = _post(c, body)
        assert r.status_code == 503 and "price_elasticity" in r.json()["detail"]
        # capacity needs no elasticity
        assert (
            _post(c, {"event_id": E1, "scenario": {"type": "capacity", "capacity_change": 3}}).status_code
            == 200
        )
    finally:
        reader.close()
