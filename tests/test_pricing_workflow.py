"""The pricing workflow end to end on the shared tiny dataset (materialized through the real jobs, pricing_job
included): the assets' checks, the lifecycle pending -> approved | rejected | expired | superseded through the
API and the CLI on both ops stores (SQLite and PostgreSQL), 409 on an expired change, the webhook received,
the approved change in price_history, and GET /v1/predictions/pricing/{event_id} with its scoping."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from api_helpers import SECRET
from fastapi.testclient import TestClient
from notify_servers import http_server

from analytics_pipelines.api import Settings, create_app
from analytics_pipelines.api.auth import mint_token
from analytics_pipelines.ops import pricing as ops
from analytics_pipelines.ops.db import ops_engine
from analytics_pipelines.pricing import webhook
from analytics_pipelines.warehouse import open_warehouse
from analytics_pipelines.warehouse.readers import open_reader


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ops_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ops.sqlite'}"
    return request.getfixturevalue("pg_database")


def test_pricing_assets_ran_with_their_checks(materialized):
    checks = {
        (c.asset_key.to_user_string(), c.check_name): c.passed
        for c in materialized.checks()
        if c.asset_key.to_user_string().startswith(("price_elasticity", "pricing_"))
    }
    assert checks == {
        ("price_elasticity", "valid_estimates"): True,
        # tiny: fewer than 20 held-out price changes, the comparison is skipped (a warning, not a pass)
        ("price_elasticity", "no_worse_than_baseline"): False,
        ("price_elasticity", "unique_key"): True,
        ("pricing_exclusions", "unique_key"): True,
        ("pricing_model_performance", "unique_key"): True,
        ("pricing_recommendations", "within_guard_rails"): True,
        ("pricing_recommendations", "unique_key"): True,
    }
    assert ("price_elasticity", "no_worse_than_baseline", "WARN") in materialized.failed_checks()
    wh = open_warehouse(materialized.warehouse_url)
    el = wh.read_table("price_elasticity")
    assert set(el["scope"]) == {"category", "category_venue"} and el.height > 0
    assert el.filter(pl.col("status") == "insufficient_data")["reason"].null_count() == 0
    perf = wh.read_table("model_performance")
    assert "pricing" in set(perf["model_family"])  # collected by the customers_job's model_performance


def _sample(wh) -> dict:
    """Three real ticket types of one tenant of the tiny data, with their events' tenant and venue."""
    from analytics_pipelines.marts.build import event_dim

    types = wh.read_table("stg_ticket_types", columns=["id", "event_id", "price_cents"])
    ev = event_dim(wh).select("event_id", "tenant_id", "venue_id")
    joined = types.join(ev, on="event_id").sort("id")
    return joined.filter(pl.col("tenant_id") == joined["tenant_id"][0]).head(3).to_dicts()


def _row(t: dict, price: int, now: datetime, expires: timedelta = timedelta(hours=24)) -> dict:
    return dict(
        tenant_id=t["tenant_id"],
        venue_id=t["venue_id"],
        event_id=t["event_id"],
        ticket_type_id=t["id"],
        currency="USD",
        current_price_cents=t["price_cents"],
        recommended_price_cents=price,
        expected_revenue_change_cents=1000,
        expected_revenue_change_low_cents=200,
        expected_revenue_change_high_cents=1800,
        demand_score=40.0,
        confidence=0.7,
        elasticity=-0.5,
        elasticity_ci_low=-0.8,
        elasticity_ci_high=-0.2,
        reasoning={"inputs": {"elasticity": -0.5}, "model_version": "test"},
        model_version="test",
        expires_at=now + expires,
    )


def _client(materialized, ops_url, webhook=None) -> TestClient:
    settings = Settings(
        warehouse_url=materialized.warehouse_url,
        jwt_secret=SECRET,
        ops_url=ops_url,
        pricing_webhook_url=webhook,
    )
    return TestClient(
        create_app(settings, reader=open_reader(materialized.warehouse_url, refresh_seconds=3600))
    ), settings


def test_lifecycle_through_the_api_with_audit_trail_webhook_409_and_price_history(materialized, ops_url):
    wh = open_warehouse(materialized.warehouse_url)
    a, b, c = _sample(wh)
    engine = ops_engine(ops_url)
    now = datetime.now(UTC)
    first, second = ops.publish(engine, [_row(a, a["price_cents"] + 100, now)], now)[0], None
    [second] = ops.publish(engine, [_row(a, a["price_cents"] + 200, now)], now)  # supersedes the first
    [stale] = ops.publish(
        engine,
        [_row(b, b["price_cents"] + 50, now - timedelta(hours=2), timedelta(hours=1))],
        now - timedelta(hours=2),
    )
    [rejectable] = ops.publish(engine, [_row(c, c["price_cents"] + 50, now)], now)
    assert ops.get(engine, first).status == "superseded" and ops.get(engine, first).superseded_by == second
    with http_server([200]) as (url, received):
        client, settings = _client(materialized, ops_url, webhook=url)

        def h(tenant, venue=None, perms=("analytics.read",), user="ana"):
            return {
                "Authorization": "Bearer "
                + mint_token(
                    settings, tenant_id=tenant, venue_id=venue, user_id=user, permissions=list(perms)
                )
            }

        admin = h(a["tenant_id"], perms=("analytics.read", "analytics.admin"), user="pricing-admin")
        # listing: venue scoped
        listed = client.get("/v1/pricing/changes", headers=h(a["tenant_id"], a["venue_id"])).json()["data"]
        assert {r["id"] for r in listed} >= {first, second} and all(
            r["venue_id"] == a["venue_id"] for r in listed
        )
        other_venue = str(uuid.uuid4())
        assert client.get("/v1/pricing/changes", headers=h(a["tenant_id"], other_venue)).json()["data"] == []
        # permission, tenant, state
        assert (
            client.post(
                f"/v1/pricing/changes/{second}/approve", headers=h(a["tenant_id"], a["venue_id"])
            ).status_code
            == 403
        )
        assert (
            client.post(
                f"/v1/pricing/changes/{second}/approve",
                headers=h(str(uuid.uuid4()), perms=("analytics.admin",)),
            ).status_code
            == 404
        )
        assert (
            client.post(f"/v1/pricing/changes/{first}/approve", headers=admin).status_code == 409
        )  # superseded
        r = client.post(f"/v1/pricing/changes/{stale}/approve", headers=admin)
        assert r.status_code == 409 and "expired" in r.json()["detail"]
        assert ops.get(engine, stale).status == "expired"
        assert client.post("/v1/pricing/changes/abc/approve", headers=admin).status_code == 422
        r = client.post(f"/v1/pricing/changes/{second}/approve", headers=admin, json={"note": "go"})
        assert r.status_code == 200, r.text
        body = r.json()["data"]
        assert (
            body["status"] == "approved"
            and body["decided_by"] == "pricing-admin"
            and body["decision_note"] == "go"
        )
        assert body["decided_at"] and body["webhook_status"] == "sent"
        assert client.post(f"/v1/pricing/changes/{second}/approve", headers=admin).status_code == 409  # once
        r = client.post(f"/v1/pricing/changes/{rejectable}/reject", headers=admin, json={"note": "too high"})
        assert r.status_code == 200 and r.json()["data"]["status"] == "rejected"
    assert len(received) == 1
    sent = received[0]["body"]
    assert sent["change_id"] == second and sent["new_price_cents"] == a["price_cents"] + 200
    assert sent["ticket_type_id"] == a["id"] and sent["approved_by"] == "pricing-admin"
    # the approved change in price_history (source 'recommendation'), its reconciliation still passing
    from analytics_pipelines.marts import steps
    from analytics_pipelines.registry import default_registry
    from analytics_pipelines.registry.context import BuildContext
    from analytics_pipelines.settings import Settings as ProjectSettings

    project = ProjectSettings.from_env({"TT_OPS_URL": ops_url, "TT_DATA_DIR": str(materialized.data_dir)})
    reg = default_registry()
    ctx = BuildContext(wh, reg.table("price_history"), now=now, settings=project, registry=reg)
    built = steps.price_history(ctx)
    rec = built.frames["price_history"].filter(pl.col("source") == "recommendation")
    assert rec.select("ticket_type_id", "price_cents", "change_id").rows() == [
        (a["id"], a["price_cents"] + 200, second)
    ]
    outcome = steps.check_price_history(ctx, built)
    assert outcome.passed, outcome.metadata
    assert outcome.metadata["recommendation_rows"] == 1
    assert steps.check_event_price_summary(ctx, built).passed


def test_cli_list_approve_reject_and_expired(materialized, ops_url, monkeypatch, capsys):
    from analytics_pipelines.cli import main

    wh = open_warehouse(materialized.warehouse_url)
    a, b, _ = _sample(wh)
    engine = ops_engine(ops_url)
    now = datetime.now(UTC)
    [pending] = ops.publish(engine, [_row(a, a["price_cents"] + 100, now)], now)
    [stale] = ops.publish(
        engine,
        [_row(b, b["price_cents"] + 100, now - timedelta(hours=3), timedelta(hours=1))],
        now - timedelta(hours=3),
    )
    monkeypatch.setenv("TT_OPS_URL", ops_url)
    monkeypatch.delenv("TT_PRICING_WEBHOOK_URL", raising=False)
    assert main(["pricing", "list", "--json", "--status", "pending"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in out] == [pending]  # the stale one expired on listing
    assert main(["pricing", "approve", str(stale), "--user", "ops-lead"]) == 3
    assert "expired" in capsys.readouterr().out
    assert main(["pricing", "approve", str(pending), "--user", "ops-lead", "--note", "ok"]) == 0
    assert "approved by ops-lead" in capsys.readouterr().out
    row = ops.get(engine, pending)
    assert (row.status, row.decided_by, row.decision_note, row.webhook_status) == (
        "approved",
        "ops-lead",
        "ok",
        "not_configured",
    )
    assert main(["pricing", "reject", str(pending), "--user", "ops-lead"]) == 3
    assert main(["pricing", "reject", "999999", "--user", "ops-lead"]) == 2


def test_event_pricing_prediction_route_scoping(materialized, tmp_path):
    wh = open_warehouse(materialized.warehouse_url)
    ep = wh.read_table("event_performance", columns=["tenant_id", "venue_id", "event_id"]).sort("event_id")
    recs = wh.read_table("pricing_recommendations")
    event = recs["event_id"][0] if recs.height else ep["event_id"][0]
    row = ep.filter(pl.col("event_id") == event).row(0, named=True)
    other = ep.filter((pl.col("tenant_id") == row["tenant_id"]) & (pl.col("venue_id") != row["venue_id"]))
    client, settings = _client(materialized, f"sqlite:///{tmp_path / 'ops.sqlite'}")

    def get(path, venue, tenant=row["tenant_id"]):
        token = mint_token(settings, tenant_id=tenant, venue_id=venue, permissions=["analytics.read"])
        return client.get(path, headers={"Authorization": f"Bearer {token}"})

    r = get(f"/v1/predictions/pricing/{event}", row["venue_id"])
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["event_id"] == event and {e["scope"] for e in data["elasticity"]} <= {
        "category",
        "category_venue",
    }
    assert data["elasticity"], "the event's category has an elasticity row (estimated or insufficient_data)"
    for e in data["elasticity"]:
        assert e["status"] in ("estimated", "insufficient_data") and (e["status"] == "estimated") == (
            e["reason"] is None
        )
    assert len(data["recommendations"]) == recs.filter(pl.col("event_id") == event).height
    for rec in data["recommendations"]:
        assert rec["status"] in ("recommended", "no_change") and "approval" in rec
    assert get(f"/v1/predictions/pricing/{uuid.uuid4()}", row["venue_id"]).status_code == 404
    assert (
        get(f"/v1/predictions/pricing/{event}", row["venue_id"], tenant=str(uuid.uuid4())).status_code == 404
    )
    if other.height:
        assert get(f"/v1/predictions/pricing/{event}", other["venue_id"][0]).status_code == 403
    assert get("/v1/predictions/pricing/not-a-uuid", row["venue_id"]).status_code == 422


def _one_pending(materialized, ops_url):
    """(a ticket type, the ops engine, now, a pending change of it, a transport trying once, no sleep)."""
    from analytics_pipelines import outbox

    a, _, _ = _sample(open_warehouse(materialized.warehouse_url))
    engine = ops_engine(ops_url)
    now = datetime.now(UTC).replace(microsecond=0)
    [change] = ops.publish(engine, [_row(a, a["price_cents"] + 100, now)], now)
    return a, engine, now, change, outbox.Transport(webhook_retries=0, backoff_s=0, sleep=lambda s: None)


def test_a_failed_webhook_is_kept_and_retried_with_backoff_by_the_sweeper_until_sent(
    materialized, ops_url, monkeypatch, capsys
):
    """The platform's webhook (a real local HTTP server) answers 500, 500, then 200: the approval records
    the failure with its next attempt, the delivery sweep (delivery_sweep_job's function) retries it only
    when due, with a doubling backoff, until it is sent, always with the same Idempotency-Key; the state
    shows in GET /v1/pricing/changes and the CLI's list at every step."""
    from analytics_pipelines import outbox
    from analytics_pipelines.cli import main

    a, engine, now, change, transport = _one_pending(materialized, ops_url)
    monkeypatch.setenv("TT_OPS_URL", ops_url)

    def cli_state() -> dict:
        assert main(["pricing", "list", "--json", "--status", "approved"]) == 0
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        return next(r for r in rows if r["id"] == change)

    with http_server([500, 500]) as (url, received):
        client, settings = _client(materialized, ops_url, webhook=url)
        token = mint_token(
            settings, tenant_id=a["tenant_id"], venue_id=a["venue_id"], permissions=["analytics.read"]
        )

        def api_state() -> dict:
            r = client.get(
                "/v1/pricing/changes",
                params={"status": "approved"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 200, r.text
            return next(x for x in r.json()["data"] if x["id"] == change)

        row = webhook.deliver(
            engine, ops.decide(engine, change, "approved", "ana", None), url, transport, now
        )
        assert (row.webhook_status, row.webhook_attempts) == ("retrying", 1) and "500" in row.webhook_error
        first_retry = now + outbox.RETRY_BASE
        state = api_state()
        assert state["webhook_status"] == "retrying" and state["webhook_attempts"] == 1
        assert datetime.fromisoformat(state["webhook_next_attempt_at"]) == first_retry
        assert cli_state()["webhook_status"] == "retrying"
        # not due yet: nothing is sent
        outbox.sweep_deliveries(engine, now + timedelta(minutes=1), transport)
        assert len(received) == 1
        # due: sent again, fails again, the next attempt twice as far
        swept = outbox.sweep_deliveries(engine, first_retry, transport)
        assert len(received) == 2 and len(swept.failed) == 1
        state = api_state()
        assert (state["webhook_status"], state["webhook_attempts"]) == ("retrying", 2)
        second_retry = datetime.fromisoformat(state["webhook_next_attempt_at"])
        assert second_retry == first_retry + 2 * outbox.RETRY_BASE
        swept = outbox.sweep_deliveries(engine, second_retry, transport)
        assert len(received) == 3 and len(swept.resent) == 1
        state = api_state()
        assert (state["webhook_status"], state["webhook_attempts"], state["webhook_error"]) == (
            "sent",
            3,
            None,
        )
        assert state["webhook_next_attempt_at"] is None
        cli = cli_state()
        assert cli["webhook_status"] == "sent" and cli["webhook_next_attempt_at"] is None
        # sent once is never sent again
        outbox.sweep_deliveries(engine, second_retry + timedelta(days=1), transport)
        assert len(received) == 3
    keys = {r["headers"]["Idempotency-Key"] for r in received}
    assert len(keys) == 1 and all(r["body"]["change_id"] == change for r in received)


def test_a_webhook_that_keeps_failing_gives_up_after_the_last_attempt(materialized, ops_url):
    from analytics_pipelines import outbox

    a, engine, now, change, transport = _one_pending(materialized, ops_url)
    with http_server([], default=503) as (url, received):
        webhook.deliver(engine, ops.decide(engine, change, "approved", "ana", None), url, transport, now)
        at = now
        for _ in range(ops.WEBHOOK_MAX_ATTEMPTS + 2):
            at += timedelta(days=1)
            outbox.sweep_deliveries(engine, at, transport)
    row = ops.get(engine, change)
    assert len(received) == ops.WEBHOOK_MAX_ATTEMPTS
    assert (row.webhook_status, row.webhook_attempts) == ("failed", ops.WEBHOOK_MAX_ATTEMPTS)
    assert "503" in row.webhook_error and ops.webhook_next_attempts(engine, [change]) == {change: None}
