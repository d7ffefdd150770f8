"""Fraud scoring (docs/fraud.md): the planted behaviours in the generated data, the rules and the events'
deduplication as pure functions, the tables built by fraud_job in the shared tiny run (checks passed,
planted fraudsters of every pattern found), rerun idempotence, the route and the Grafana annotations."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from api_helpers import SECRET
from fastapi.testclient import TestClient

from analytics_pipelines.fraud import scoring
from analytics_pipelines.fraud.evaluation import evaluate
from analytics_pipelines.fraud.features import FEATURES
from analytics_pipelines.generator import synth
from analytics_pipelines.generator.planted_fraud import PATTERNS, PER_ORDER_MAX
from analytics_pipelines.generator.truth import planted_truth
from analytics_pipelines.warehouse import open_warehouse

SEED = 7  # the shared fixture's seed (tests/materialized.py)
T0 = datetime(2026, 10, 10, 12, tzinfo=UTC)


def _max_in_window(t: pl.Series, seconds: int) -> int:
    s = t.sort().dt.epoch("s").to_numpy()
    return int((np.arange(s.size) - np.searchsorted(s, s - seconds, side="left") + 1).max())


@pytest.fixture(scope="module")
def tiny():
    return synth.generate_tables("tiny", seed=SEED), planted_truth("tiny", SEED)["fraud"]


# -- the generator plants what the issue describes ------------------------------------------------------------
def test_every_pattern_is_planted_and_visible_in_the_source(tiny) -> None:
    t, truth = tiny
    assert set(truth["counts"]) == set(PATTERNS) and min(truth["counts"].values()) >= 1
    f = pl.DataFrame(truth["fraudsters"])
    o = t["orders"].with_columns(pl.coalesce("created_at", "confirmed_at").alias("t"))
    for pattern, check in (
        (
            "bot_burst",
            lambda g: g["t"].sort().diff().dt.total_seconds().drop_nulls().max() <= 20 and g.height >= 6,
        ),
        ("card_testing", lambda g: g.height >= 8 and g["status"].is_in(["CANCELLED", "EXPIRED"]).all()),
        ("refund_abuse", lambda g: (g["status"] == "REFUNDED").sum() >= 3),
    ):
        for user in f.filter(pl.col("pattern") == pattern)["user_id"]:
            assert check(o.filter(pl.col("user_id") == user)), (pattern, user)
    scalpers = f.filter(pl.col("pattern") == "scalper")["user_id"].implode()
    bulk = (
        t["order_items"]
        .join(t["orders"].select(pl.col("id").alias("order_id"), "user_id"), on="order_id")
        .filter(pl.col("user_id").is_in(scalpers))
    )
    assert (bulk["quantity"] == PER_ORDER_MAX).all() and bulk.height >= 2 * len(scalpers[0])
    resold = t["marketplace_listings"].filter(pl.col("seller_id").is_in(scalpers))
    # most at a markup (a few were listed by the ordinary resale step, at its ordinary prices)
    assert resold.height > 0 and (resold["price"] > 1.3 * resold["original_face_value"]).mean() >= 0.7
    created = t["users"].filter(pl.col("id").is_in(scalpers)).select("id", "created_at")
    first = (
        t["orders"].filter(pl.col("user_id").is_in(scalpers)).group_by("user_id").agg(pl.min("created_at"))
    )
    age = created.join(first, left_on="id", right_on="user_id")
    assert ((age["created_at_right"] - age["created_at"]) < timedelta(hours=36)).all()
    # legitimate baskets never reach the per-order maximum
    assert t["order_items"].filter(pl.col("quantity") >= PER_ORDER_MAX).height == bulk.height


# -- pure functions ---------------------------------------------------------------------------------------------
def _day(**kw) -> dict:
    row = {f: 0 for f in FEATURES} | {
        "min_account_age_h": 1000.0,
        "burst_gap_std_s": None,
        "bulk_account_age_h": None,
    }
    row |= {"tenant_id": "t", "user_id": "u", "day": T0.date(), "venue_id": "v"}
    row |= {k: None for k in ("first_order_at", "first_activity_at", "first_bulk_30d", "first_refund_90d")}
    row |= {"first_order_at": T0, "first_activity_at": T0, "last_activity_at": T0 + timedelta(minutes=5)}
    return row | kw


def _frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, infer_schema_length=None).with_columns(
        pl.col(c).cast(pl.Datetime("us", "UTC"))
        for c in (
            "first_order_at",
            "first_activity_at",
            "last_activity_at",
            "first_bulk_30d",
            "first_refund_90d",
        )
    )


def test_rules_score_each_pattern_and_a_normal_day_scores_low() -> None:
    days = _frame(
        [
            _day(user_id="normal", orders=1),
            _day(user_id="bot", orders=9, max_orders_10m=9, max_orders_60s=4, burst_gap_std_s=4.0),
            _day(
                user_id="scalper",
                bulk_orders=2,
                bulk_orders_30d=2,
                bulk_account_age_h=3.0,
                listings_30d=12,
                resale_markup_30d=0.8,
                min_hours_to_resale_30d=20.0,
            ),
            _day(user_id="card", orders=12, failed_orders=12, failed_ratio=1.0, payment_methods=4),
            _day(user_id="refunds", refunds_90d=5, paid_orders_90d=6, refund_ratio_90d=0.83),
        ]
    )
    out, note = scoring.score(days, days, 50, T0)
    assert "skipped" in note  # 5 rows are too few to fit the forest: rules only, and it says so
    got = {r["user_id"]: r for r in out.iter_rows(named=True)}
    assert got["normal"]["risk_score"] == 0 and got["normal"]["risk_level"] == "low"
    for user, pattern in (
        ("bot", "bot_burst"),
        ("scalper", "scalper"),
        ("card", "card_testing"),
        ("refunds", "refund_abuse"),
    ):
        assert got[user]["pattern"] == pattern and got[user]["risk_score"] >= 50, got[user]
        assert got[user]["reasons"] and got[user]["risk_level"] in ("high", "critical")
    assert out["risk_score"].is_between(0, 100).all()


def _flagged(user: str, day: int, start_h: float, end_h: float, risk: int = 60) -> dict:
    return {
        "tenant_id": "t",
        "venue_id": "v",
        "user_id": user,
        "pattern": "refund_abuse",
        "risk_score": risk,
        "risk_level": "high",
        "reasons": "r",
        "evidence": "{}",
        "model_version": "m",
        "day": date(2026, 10, day),
        "behaviour_start": T0 + timedelta(hours=start_h),
        "behaviour_end": T0 + timedelta(hours=end_h),
    }


def test_a_behaviour_is_one_event_and_is_not_flagged_again_on_rerun() -> None:
    rows = [_flagged("a", 11, 0, 2), _flagged("a", 12, 1, 30, risk=80), _flagged("a", 20, 200, 210)]
    first = scoring.events(pl.DataFrame(rows), None, T0)
    assert first.height == 2  # days 11-12 overlap: one behaviour; day 20 is new behaviour
    one = first.filter(pl.col("first_flagged_day") == date(2026, 10, 11)).row(0, named=True)
    assert (
        one["flagged_days"] == 2
        and one["risk_score"] == 80
        and one["behaviour_end"] == T0 + timedelta(hours=30)
    )
    later = T0 + timedelta(days=1)
    again = scoring.events(pl.DataFrame([*rows, _flagged("a", 13, 5, 40)]), first, later)
    assert again.height == 2 and (again["scored_at"] == T0).all()  # same behaviour: first flag time kept
    new = scoring.events(pl.DataFrame([*rows, _flagged("b", 13, 5, 6)]), first, later)
    assert new.filter(pl.col("user_id") == "b")["scored_at"].to_list() == [later]


def test_hourly_fraud_pct_counts_orders_inside_the_flagged_window() -> None:
    orders = pl.DataFrame(
        {
            "id": ["1", "2", "3", "4"],
            "tenant_id": ["t"] * 4,
            "user_id": ["a", "a", "b", "a"],
            "venue_id": ["v"] * 4,
            "t": [T0, T0 + timedelta(minutes=10), T0 + timedelta(minutes=20), T0 + timedelta(days=3)],
        }
    ).with_columns(pl.col("t").cast(pl.Datetime("us", "UTC")))
    ev = pl.DataFrame([_flagged("a", 11, 0, 1)])
    h = scoring.hourly(orders, ev)
    first = h.filter(pl.col("hour") == T0).row(0, named=True)
    assert (first["orders"], first["flagged_orders"], first["fraud_pct"]) == (3, 2, 66.67)
    assert h.filter(pl.col("hour") != T0)["flagged_orders"].to_list() == [0]


# -- the real job on the shared tiny run -------------------------------------------------------------------------
def _fraud_checks(materialized) -> list:
    return [c for c in materialized.checks() if c.asset_key.to_user_string().startswith("fraud_")]


def test_fraud_job_builds_the_tables_and_its_checks_pass(materialized) -> None:
    checks = _fraud_checks(materialized)
    assert {c.asset_key.to_user_string() for c in checks} == {
        "fraud_scores",
        "fraud_events",
        "fraud_metrics_hourly",
    }
    assert all(c.passed for c in checks), [
        (c.asset_key, c.check_name, c.metadata) for c in checks if not c.passed
    ]
    wh = open_warehouse(materialized.warehouse_url)
    scores = wh.read_table("fraud_scores")
    assert scores.height > 0 and scores["risk_score"].is_between(0, 100).all()
    assert not scores.select(pl.col(pl.Float64).is_nan().any()).row(0).count(True)
    metrics = wh.read_table("fraud_metrics_hourly")
    assert {"tenant_id", "venue_id", "hour", "orders", "flagged_orders", "fraud_pct"} <= set(metrics.columns)


def test_planted_fraudsters_of_every_pattern_are_found(materialized) -> None:
    truth = planted_truth("tiny", SEED)["fraud"]  # fraud_job scored tiny's whole history (FRAUD_DAYS)
    result = evaluate(open_warehouse(materialized.warehouse_url), truth, k=len(truth["fraudsters"]))
    assert result["recall"] >= 0.7 and result["precision_at_k"] >= 0.8, result
    assert all(p["found"] >= 1 for p in result["per_pattern"].values()), result
    assert result["precision_all_flags"] >= 0.6, result


def test_rerun_flags_nothing_again(materialized) -> None:
    wh = open_warehouse(materialized.warehouse_url)
    before = wh.read_table("fraud_events").sort("event_id")
    result = materialized.rerun("fraud_job", "2026-10-25", "2026-10-31")
    assert result.success
    after = wh.read_table("fraud_events").sort("event_id")
    assert after.select("event_id", "scored_at").equals(before.select("event_id", "scored_at"))


# -- the route and the annotations ------------------------------------------------------------------------------
@pytest.fixture
def client(materialized, tmp_path):
    from analytics_pipelines.api import Settings, create_app
    from analytics_pipelines.api.auth import mint_token
    from analytics_pipelines.warehouse.readers import open_reader

    settings = Settings(
        warehouse_url=materialized.warehouse_url,
        jwt_secret=SECRET,
        ops_url=f"sqlite:///{tmp_path / 'ops.sqlite'}",
        export_dir=(tmp_path / "exports").resolve(),
    )
    app = create_app(settings, reader=open_reader(materialized.warehouse_url, refresh_seconds=3600))

    def headers(tenant, venue=None, permissions=("analytics.read", "analytics.admin"), role="user"):
        token = mint_token(
            settings, tenant_id=tenant, venue_id=venue, role=role, permissions=list(permissions)
        )
        return {"Authorization": f"Bearer {token}"}

    with TestClient(app) as c:
        yield c, headers


def test_fraud_route_is_admin_only_and_venue_scoped(client, materialized) -> None:
    c, headers = client
    ev = open_warehouse(materialized.warehouse_url).read_table("fraud_events")
    tenant, venue = ev.row(0, named=True)["tenant_id"], ev.row(0, named=True)["venue_id"]
    r = c.get("/v1/monitoring/fraud", headers=headers(tenant))
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data and {d["tenant_id"] for d in data} == {tenant}
    assert data[0]["risk_score"] >= data[-1]["risk_score"] and "behaviour_start" in data[0]
    one = c.get(f"/v1/monitoring/fraud?venue_id={venue}", headers=headers(tenant)).json()["data"]
    assert one and {d["venue_id"] for d in one} == {venue}
    assert (
        c.get("/v1/monitoring/fraud", headers=headers(tenant, venue, ("analytics.read",))).status_code == 403
    )
    other = [t for t in ev["tenant_id"].unique() if t != tenant]
    if other:
        stranger = ev.filter(pl.col("tenant_id") == other[0])["venue_id"][0]
        assert (
            c.get(
                f"/v1/monitoring/fraud?venue_id={stranger}",
                headers=headers(tenant, venue, ("analytics.read",)),
            ).status_code
            == 403
        )
    assert c.get("/v1/monitoring/fraud?venue_id=not-a-uuid", headers=headers(tenant)).status_code == 422
    # the generic mart route serves fraud_events to admins only, too
    reader = headers(tenant, venue, ("analytics.read",))
    assert c.get("/v1/marts/fraud_events", headers=reader).status_code == 403
    assert "fraud_events" not in {m["name"] for m in c.get("/v1/marts", headers=reader).json()["data"]}
    assert c.get("/v1/marts/fraud_events", headers=headers(tenant)).status_code == 200
    since = c.get("/v1/monitoring/fraud?since=2026-10-01", headers=headers(tenant)).json()["data"]
    assert all(d["behaviour_end"] >= "2026-10-01" for d in since)
    assert c.get("/v1/monitoring/fraud?pattern=nope", headers=headers(tenant)).status_code == 422


def test_grafana_annotations_include_fraud_hours_above_5_pct(client, materialized) -> None:
    c, headers = client
    m = (
        open_warehouse(materialized.warehouse_url)
        .read_table("fraud_metrics_hourly")
        .filter(pl.col("fraud_pct") > 5)
    )
    assert m.height > 0
    tenant = m["tenant_id"][0]
    body = {"range": {"from": "2026-06-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"}}
    r = c.post("/grafana/annotations", json=body, headers=headers(tenant))
    assert r.status_code == 200, r.text
    fraud = [a for a in r.json() if "fraud" in a["tags"]]
    assert len(fraud) == m.filter(pl.col("tenant_id") == tenant).height
    assert all(a["text"].startswith("Value: ") for a in fraud)


def test_daily_schedule_scores_yesterday_and_make_run_includes_the_job() -> None:
    import dagster as dg

    from analytics_pipelines.definitions import defs

    sched = defs.resolve_schedule_def("fraud_daily_schedule")
    assert sched.job_name == "fraud_job" and sched.cron_schedule == "30 5 * * *"
    req = sched(dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 2, 5, 30, tzinfo=UTC)))
    assert req.partition_key == "2026-11-01" and req.run_key == "fraud:2026-11-01"
    main = {k.to_user_string() for k in defs.resolve_job_def("main_job").asset_layer.executable_asset_keys}
    assert not main & {"fraud_scores", "fraud_events", "fraud_metrics_hourly"}
    import inspect

    from analytics_pipelines import runner

    assert '"fraud_job"' in inspect.getsource(runner.everything_else)


def test_grafana_fraud_series(client, materialized) -> None:
    c, headers = client
    m = open_warehouse(materialized.warehouse_url).read_table("fraud_metrics_hourly")
    tenant = m.filter(pl.col("flagged_orders") > 0)["tenant_id"][0]
    assert "fraud.fraud_pct" in c.post("/grafana/search", json={}, headers=headers(tenant)).json()
    body = {
        "range": {"from": "2026-06-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"},
        "targets": [{"target": "fraud.flagged_orders"}, {"target": "fraud.fraud_pct"}],
    }
    r = c.post("/grafana/query", json=body, headers=headers(tenant))
    assert r.status_code == 200, r.text
    flagged, pct = r.json()
    mine = m.filter(pl.col("tenant_id") == tenant)
    assert sum(v for v, _ in flagged["datapoints"]) == mine["flagged_orders"].sum()
    assert all(0 <= v <= 100 for v, _ in pct["datapoints"] if v is not None)


def test_bad_input_scores_without_crash_or_nan() -> None:
    from analytics_pipelines.fraud.features import Inputs, user_days

    ts = pl.Datetime("us", "UTC")
    t = [T0, T0, None, T0 - timedelta(days=2), T0 + timedelta(seconds=5)]  # equal clocks, a missing one
    orders = pl.DataFrame(
        {
            "id": ["o1", "o2", "o3", "o4", "o5"],
            "tenant_id": ["t"] * 5,
            "user_id": ["u1", "u1", "u2", None, "ghost"],  # no user; a user missing from users
            "event_id": ["e1", "missing-event", "e1", "e1", "e1"],
            "status": ["completed", "cancelled", "refunded", "completed", "expired"],
            "t": t,
            "payment_method": ["card", None, "card", "card", "paypal"],
            "channel": ["web"] * 5,
        },
        schema_overrides={"t": ts},
    )
    inp = Inputs(
        orders=orders,
        items=pl.DataFrame({"order_id": ["o1", "o1"], "quantity": [10, 2]}),
        users=pl.DataFrame(
            {"id": ["u1", "u2"], "created_at": [T0 + timedelta(days=1), T0]},
            schema_overrides={"created_at": ts},
        ),
        events=pl.DataFrame({"id": ["e1"], "venue_id": ["v"]}),
        refunds=pl.DataFrame(
            {"order_id": ["o3", "nope"], "created_at": [T0, T0]}, schema_overrides={"created_at": ts}
        ),
        listings=pl.DataFrame(
            {
                "tenant_id": ["t", "t"],
                "seller_id": ["u1", "u1"],
                "ticket_id": ["k1", "k2"],
                "venue_id": ["v", "v"],
                "price_cents": [100, 50],
                "original_face_value_cents": [0, 40],
                "listed_at": [T0, None],
            },
            schema_overrides={"listed_at": ts},
        ),
        tickets=pl.DataFrame(
            {"id": ["k1"], "purchased_at": [T0 + timedelta(hours=1)]}, schema_overrides={"purchased_at": ts}
        ),
    )
    days = user_days(inp)
    # the order without a user is not attributable; u2's order has no time but its refund does
    assert set(days["user_id"]) == {"u1", "u2", "ghost"}
    out, _ = scoring.score(days, days, 50, T0)
    floats = [c for c, d in out.schema.items() if d.is_float()]
    assert not any(out[c].is_nan().any() for c in floats)
    assert out["risk_score"].is_between(0, 100).all() and out["pattern"].is_in(scoring.PATTERNS).all()


@pytest.mark.slow
def test_acceptance_on_small_precision_at_100_and_recall() -> None:
    """The scoring's pure functions on generated `small` (seed 42), the whole history as a backfill scores it
    (no ingestion: inputs_from_source shapes the clean source as staging does). Issue 17's goals:
    precision@100 >= 0.8 and recall >= 0.7, every pattern found. The `medium` figure: docs/fraud.md."""
    from analytics_pipelines.fraud.evaluation import inputs_from_source, rank_against_truth
    from analytics_pipelines.fraud.features import user_days

    days = user_days(inputs_from_source(synth.generate_tables("small", seed=42)))
    scored, _ = scoring.score(days, days, 50, T0)
    ev = scoring.events(scored.filter(pl.col("risk_score") >= 50), None, T0)
    r = rank_against_truth(ev, planted_truth("small", 42)["fraud"])
    assert r["precision_at_k"] >= 0.8 and r["recall"] >= 0.7, r
    assert all(
        p["recall"] >= 0.5 and p["same_pattern"] >= 0.5 * p["planted"] for p in r["per_pattern"].values()
    ), r
