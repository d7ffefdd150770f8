"""Behavioral analytics through the real jobs (the shared `tiny` fixture runs behavior_job over its range):
ingestion tables, the funnel reconciled to fct_orders, five attribution models summing exactly to order
revenue, campaign ROI with NULL ratios, the checks; and the pure functions on generated data."""

from __future__ import annotations

import polars as pl
import pytest

from analytics_pipelines.behavior import attribution as A
from analytics_pipelines.behavior.campaigns import campaign_tables
from analytics_pipelines.warehouse import open_warehouse

BEHAVIOR_TABLES = (
    "raw_behavior_events",
    "raw_campaign_touchpoints",
    "raw_campaign_performance",
    "behavior_quarantine",
    "behavior_ledger",
    "raw_campaigns",
    "conversion_funnel",
    "funnel_order_reconciliation",
    "campaign_attribution",
    "attribution_channel_effects",
    "attribution_model_performance",
    "campaign_attribution_exclusions",
    "campaign_roi",
    "campaign_channels",
)


@pytest.fixture(scope="module")
def wh(materialized):
    return open_warehouse(materialized.warehouse_url)


def test_behavior_job_builds_every_table_and_passes_its_checks(materialized, wh):
    assert materialized.results["behavior_job"].success
    for t in BEHAVIOR_TABLES:
        assert t in wh.tables(), t
    for t in ("raw_behavior_events", "raw_campaign_touchpoints", "conversion_funnel", "campaign_attribution"):
        assert wh.count(t) > 0, t
    behavior_checks = [
        f for f in materialized.failed_checks() if f[0] in BEHAVIOR_TABLES and f[1] != "behavior_fresh"
    ]
    assert behavior_checks == []


def test_attribution_sums_exactly_for_all_five_models(wh):
    a = wh.read_table("campaign_attribution")
    assert set(a["model"].unique()) == set(A.MODELS)
    per = a.group_by("order_id", "model").agg(
        pl.col("attributed_revenue_cents").sum(), pl.col("revenue_cents").first()
    )
    assert per.filter(pl.col("attributed_revenue_cents") != pl.col("revenue_cents")).is_empty()
    assert per.group_by("order_id").len()["len"].unique().to_list() == [5]
    # every attributed order is a recognized order of fct_orders with that revenue
    orders = wh.read_table("fct_orders").select("order_id", "gross_revenue_cents")
    j = per.join(orders, on="order_id", how="left")
    assert (j["revenue_cents"] == j["gross_revenue_cents"]).all()
    assert "direct" in a["channel"].unique().to_list() or a.filter(pl.col("touches") == 0).is_empty()


def test_attribution_model_beats_the_constant_rate_baseline_and_joins_model_performance(wh):
    perf = wh.read_table("attribution_model_performance")
    brier = perf.filter(pl.col("metric") == "brier").pivot(on="model", index="bucket", values="value")
    assert brier.height >= 1
    assert (brier["data_driven_shapley"] < brier["constant_rate_baseline"]).all()
    assert set(perf["evaluation"]) == {"in_time_holdout"} and perf["value"].is_between(0, 1).all()


def test_funnel_reconciles_with_the_orders_mart(wh):
    f = wh.read_table("conversion_funnel")
    r = wh.read_table("funnel_order_reconciliation")
    for a, b in zip(
        ("sessions", "event_page_views", "carts", "checkouts"),
        ("event_page_views", "carts", "checkouts", "purchases"),
        strict=True,
    ):
        assert f.filter(pl.col(a) < pl.col(b)).is_empty()
    assert (r["matched"] + r["untracked_orders"] == r["paid_online_orders"]).all()
    assert (r["matched"] + r["unmatched_purchase_events"] == r["tracked_purchases"]).all()
    online = wh.read_table("fct_orders").filter(pl.col("channel").is_in(["web", "mobile_app"]))
    assert r["paid_online_orders"].sum() == online.height
    coverage = r["matched"].sum() / r["paid_online_orders"].sum()
    assert 0.9 < coverage < 1.0  # ~3% of purchases are never reported by the client (planted)
    assert r["unmatched_purchase_events"].sum() > 0  # failed checkouts whose client reported a purchase


def test_campaign_roi_has_real_spend_and_null_ratios(wh):
    roi = wh.read_table("campaign_roi")
    assert roi["spend_cents"].sum() > 0
    zero = roi.filter(pl.col("spend_cents") <= 0)
    assert not zero.is_empty() and zero["roi_pct"].is_null().all() and zero["roas"].is_null().all()
    noconv = roi.filter(pl.col("attributed_conversions") == 0)
    assert noconv["cpa_cents"].is_null().all()
    paid = roi.filter((pl.col("spend_cents") > 0) & (pl.col("attributed_conversions") > 0))
    assert not paid.is_empty()
    assert not any(roi[c].is_nan().any() for c in ("roi_pct", "cpa_cents", "roas"))
    assert set(wh.read_table("raw_campaigns")["campaign_type"].unique()) == {
        "email",
        "sms",
        "push",
        "social",
        "display",
        "search",
        "multi_channel",
    }


def test_campaign_tables_division_edge_cases():
    attribution = pl.DataFrame(
        {
            "tenant_id": ["t"] * 2,
            "venue_id": ["v"] * 2,
            "order_id": ["o1", "o2"],
            "model": ["linear"] * 2,
            "channel": ["email", "display"],
            "campaign_id": ["c1", "c2"],
            "credit": [1.0, 1.0],
            "attributed_revenue_cents": [1000, 500],
        }
    )
    perf = pl.DataFrame(
        {
            "tenant_id": ["t"] * 3,
            "venue_id": ["v"] * 3,
            "campaign_id": ["c1", "c2", "c3"],
            "day": [None] * 3,
            "impressions": [10, 10, 10],
            "clicks": [1, 1, 1],
            "platform_conversions": [1, 0, 0],
            "spend_cents": [400, 0, 700],
            "platform_revenue_cents": [1000, 0, 0],
        },
        schema_overrides={"day": pl.Date},
    )
    camps = pl.DataFrame(
        {
            "tenant_id": ["t"] * 4,
            "venue_id": ["v"] * 4,
            "campaign_id": ["c1", "c2", "c3", "c4"],
            "name": ["a", "b", "c", "d"],
            "campaign_type": ["email", "display", "sms", "multi_channel"],
            "status": ["active"] * 4,
            "budget_cents": [1, 1, 1, 1],
            "channels": ["email", "display", "sms", "email,social,display"],
        }
    )
    out = campaign_tables(attribution, perf, camps)["campaign_roi"].sort("campaign_id")
    c1, c2, c3, c4 = out.iter_rows(named=True)
    assert c1["roi_pct"] == pytest.approx(150.0) and c1["cpa_cents"] == 400 and c1["roas"] == 2.5
    assert c2["roi_pct"] is None and c2["roas"] is None and c2["cpa_cents"] is None  # zero spend
    assert c3["cpa_cents"] is None and c3["roi_pct"] == pytest.approx(-100.0)  # spend, no conversions
    assert c4["spend_cents"] == 0 and c4["roi_pct"] is None  # no performance rows at all


def test_largest_remainder_rounding_is_exact():
    credit = pl.DataFrame(
        {
            "conv_id": ["a"] * 3 + ["b"] * 2,
            "model": ["linear"] * 5,
            "channel": ["x", "y", "z", "x", "y"],
            "campaign_id": [None] * 5,
            "credit": [1 / 3] * 3 + [0.5, 0.5],
            "revenue_cents": [100] * 3 + [1] * 2,
        }
    )
    out = A.allocate(credit)
    assert out.group_by("conv_id").agg(pl.col("attributed_revenue_cents").sum()).sort("conv_id")[
        "attributed_revenue_cents"
    ].to_list() == [100, 1]
    assert sorted(out.filter(pl.col("conv_id") == "a")["attributed_revenue_cents"].to_list()) == [33, 33, 34]


def test_touchpoints_after_a_conversion_and_direct_conversions():
    from datetime import datetime, timedelta

    t0 = datetime(2026, 5, 1, 12)
    rows = [  # customer, channel, action, time offset (h), order
        ("c1", "email", "click", -30, None),
        ("c1", "social", "impression", -5, None),
        ("c1", "email", "conversion", 0, "o1"),
        ("c1", "display", "impression", 1, None),  # after the conversion: never in o1's path
        ("c2", "direct", "conversion", 0, "o2"),  # no touch: its own direct path
    ]
    touches = pl.DataFrame(
        {
            "tenant_id": ["t"] * 5,
            "venue_id": ["v"] * 5,
            "doc_id": [f"d{i}" for i in range(5)],
            "customer_hash": [r[0] for r in rows],
            "channel": [r[1] for r in rows],
            "campaign_id": [None] * 5,
            "action": [r[2] for r in rows],
            "event_time": [t0 + timedelta(hours=r[3]) for r in rows],
            "order_id": [r[4] for r in rows],
        }
    )
    orders = pl.DataFrame(
        {
            "order_id": ["o1", "o2", "o3"],
            "day": [t0.date()] * 3,
            "event_id": ["e"] * 3,
            "revenue_cents": [1001, 500, 7],
        }
    )
    out = A.attribute(touches, orders, "2026-05-01", "2026-05-01", lookback_days=30, training_days=30)
    a = out["campaign_attribution"]
    o1 = a.filter(pl.col("order_id") == "o1")
    assert set(o1["channel"]) == {"email", "social"}
    assert (
        o1.filter(pl.col("model") == "first_touch")
        .filter(pl.col("channel") == "email")["attributed_revenue_cents"]
        .item()
        == 1001
    )
    assert (
        o1.filter(pl.col("model") == "last_touch")
        .filter(pl.col("channel") == "social")["attributed_revenue_cents"]
        .item()
        == 1001
    )
    td = o1.filter(pl.col("model") == "time_decay").sort("channel")
    w_email, w_social = 2 ** (-30 / 24 / 7), 2 ** (-5 / 24 / 7)
    assert td["credit"].to_list() == pytest.approx(
        [w_email / (w_email + w_social), w_social / (w_email + w_social)]
    )
    o2 = a.filter(pl.col("order_id") == "o2")
    assert o2["channel"].unique().to_list() == ["direct"] and o2.height == 5
    assert o2["attributed_revenue_cents"].to_list() == [500] * 5
    # a lookback of one day drops the email click 30 h before
    short = A.attribute(touches, orders, "2026-05-01", "2026-05-01", lookback_days=1, training_days=30)
    assert set(short["campaign_attribution"].filter(pl.col("order_id") == "o1")["channel"]) == {"social"}


def test_behavior_routes_are_venue_scoped_and_equal_the_marts(materialized, wh, tmp_path):
    from api_helpers import SECRET
    from fastapi.testclient import TestClient
    from materialized import FIRST, LAST

    from analytics_pipelines.api import Settings, create_app
    from analytics_pipelines.api.auth import mint_token
    from analytics_pipelines.warehouse.readers import open_reader

    settings = Settings(
        warehouse_url=materialized.warehouse_url,
        jwt_secret=SECRET,
        ops_url=f"sqlite:///{tmp_path / 'ops.db'}",
    )
    reader = open_reader(materialized.warehouse_url)
    rng = f"start_date={FIRST}&end_date={LAST}"
    try:
        client = TestClient(create_app(settings, reader=reader))
        f = wh.read_table("conversion_funnel")
        tenant, venue = (
            f.group_by("tenant_id", "venue_id").agg(pl.sum("sessions")).sort("sessions").row(-1)[:2]
        )

        def call(url, **kw):
            tok = mint_token(settings, tenant_id=tenant, **({"venue_id": venue} | kw))
            return client.get(url, headers={"Authorization": f"Bearer {tok}"})

        def get(url, **kw):
            r = call(url, **kw)
            assert r.status_code == 200, (url, r.text)
            return r.json()

        mine = f.filter(
            (pl.col("venue_id") == venue)
            & pl.col("day").is_between(pl.date(2026, 6, 1), pl.date(2026, 10, 31))
        )
        funnel = get(f"/v1/conversions/funnel?{rng}")
        assert sum(r["sessions"] for r in funnel["data"]) == mine["sessions"].sum()
        assert sum(r["purchases"] for r in funnel["data"]) == mine["purchases"].sum()
        a = wh.read_table("campaign_attribution").filter(pl.col("venue_id") == venue)
        for model in A.MODELS:
            rows = get(f"/v1/campaigns/attribution?model={model}&{rng}")["data"]
            assert (
                sum(r["attributed_revenue_cents"] for r in rows)
                == a.filter(pl.col("model") == model)["attributed_revenue_cents"].sum()
            )
        roi = get("/v1/campaigns/roi?model=linear")["data"]
        assert roi and {r["venue_id"] for r in roi} == {venue}
        assert get("/v1/campaigns/channels")["data"]
        perf = get(f"/v1/campaigns/performance?{rng}")["data"]
        assert perf and {r["venue_id"] for r in perf} == {venue}
        # malformed model 422; another tenant's venue is invisible; another venue of the tenant is 403
        assert call("/v1/campaigns/attribution?model=fixed_weights").status_code == 422
        other_venue = f.filter((pl.col("tenant_id") == tenant) & (pl.col("venue_id") != venue))["venue_id"]
        if other_venue.len():
            assert call(f"/v1/campaigns/roi?venue_id={other_venue[0]}").status_code == 403
        foreign = f.filter(pl.col("tenant_id") != tenant)["venue_id"]
        if foreign.len():
            r = call(f"/v1/campaigns/roi?venue_id={foreign[0]}", venue_id=None, role="admin")
            assert r.status_code in (403, 404) or r.json()["data"] == []
    finally:
        reader.close()


def test_behavior_schedule_runs_the_two_days_before_today():
    from datetime import UTC, datetime

    import dagster as dg

    from analytics_pipelines.jobs import behavior_job
    from analytics_pipelines.partitions import RANGE_END_TAG, RANGE_START_TAG
    from analytics_pipelines.schedules.behavior import make_schedules

    [sched] = make_schedules(behavior_job)
    assert sched.cron_schedule == "30 4 * * *" and sched.execution_timezone == "UTC"
    ctx = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 22, 4, 30, tzinfo=UTC))
    req = sched(ctx)
    assert (req.tags[RANGE_START_TAG], req.tags[RANGE_END_TAG]) == ("2026-11-20", "2026-11-21")


def _campaign_world(seed: int, effect: dict[str, float], day: str, n: int = 4000):
    """Touchpoints (two days before `day`) and recognized orders (on `day`) of one venue: every customer is
    exposed to each channel with probability .5 and converts with probability .3 + the sum of `effect`
    over its channels."""
    from datetime import datetime, timedelta

    import numpy as np

    rng = np.random.default_rng(seed)
    k = len(A.CHANNELS)
    x = rng.random((n, k)) < 0.5
    p = 0.3 + x @ np.array([effect.get(c, 0.0) for c in A.CHANNELS])
    conv = rng.random(n) < p
    t_day = datetime.fromisoformat(day)
    cust, ch = np.nonzero(x)
    rows = {
        "customer_hash": [f"c{seed}-{i}" for i in cust] + [f"c{seed}-{i}" for i in np.flatnonzero(conv)],
        "channel": [A.CHANNELS[c] for c in ch] + ["direct"] * int(conv.sum()),
        "action": ["visit"] * len(cust) + ["conversion"] * int(conv.sum()),
        "event_time": [t_day - timedelta(days=2) + timedelta(seconds=int(i)) for i in cust]
        + [t_day + timedelta(hours=12) for _ in range(int(conv.sum()))],
        "order_id": [None] * len(cust) + [f"o{seed}-{i}" for i in np.flatnonzero(conv)],
    }
    m = len(rows["channel"])
    touches = pl.DataFrame(rows).with_columns(
        tenant_id=pl.lit("t1"),
        venue_id=pl.lit("v1"),
        day=pl.col("event_time").dt.date(),
        doc_id=pl.Series([f"d{seed}-{i}" for i in range(m)]),
        campaign_id=pl.lit(None, pl.String),
    )
    orders = pl.DataFrame({"order_id": [f"o{seed}-{i}" for i in np.flatnonzero(conv)]}).with_columns(
        tenant_id=pl.lit("t1"),
        venue_id=pl.lit("v1"),
        event_id=pl.lit("e1"),
        day=pl.lit(t_day.date()),
        channel=pl.lit("web"),
        gross_revenue_cents=pl.lit(5000, pl.Int64),
    )
    return touches, orders


def test_a_refused_attribution_model_leaves_the_stored_partitions_readable(tmp_path):
    """When beats_constant_rate_baseline fails, the run rewrites none of the attribution's partitions (the
    ones stored before stay readable, like the pricing and demand gates' previous tables); the refused
    model's evaluation is written, so the refusal is on record."""
    from datetime import UTC, datetime, timedelta

    from analytics_pipelines.assets.factory import write
    from analytics_pipelines.behavior import steps
    from analytics_pipelines.registry import default_registry
    from analytics_pipelines.registry.context import BuildContext
    from analytics_pipelines.settings import Settings

    day = "2026-05-10"
    keys = [day, (datetime.fromisoformat(day) - timedelta(days=2)).date().isoformat()]
    wh = open_warehouse(f"duckdb:///{tmp_path / 'warehouse'}")
    registry = default_registry()
    ctx = BuildContext(
        wh,
        registry.table("campaign_attribution"),
        partition_keys=[day],
        now=datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(days=1),
        settings=Settings.from_env({"TT_DATA_DIR": str(tmp_path)}),
        registry=registry,
    )

    def load(touches, orders):
        wh.write_partitions("raw_campaign_touchpoints", touches, ["day"], [(d,) for d in keys])
        wh.write_partitions("fct_orders", orders, ["day"], [(day,)])

    load(*_campaign_world(1, {"email": 0.3, "sms": 0.2, "push": 0.1}, day))
    good = steps.attribution(ctx)
    assert good.extras["gate"] and steps.check_beats_baseline(ctx, good).passed
    assert not good.already_written
    write(ctx, registry, good)
    stored = {t: wh.read_partitions(t, "day", day, day).sort(pl.all()) for t in steps.KEPT_ON_REFUSAL}
    assert stored["campaign_attribution"].height > 0

    # conversion independent of every channel, ~45 paths in each of the 256 channel sets: the game's cell
    # rates only fit noise, and do worse on the held-out fifth than the constant rate
    load(*_campaign_world(2, {}, day, n=12000))
    bad = steps.attribution(ctx)
    outcome = steps.check_beats_baseline(ctx, bad)
    assert not bad.extras["gate"] and not outcome.passed and outcome.skipped is None
    assert outcome.metadata["kept_previous_attribution"] is True
    assert set(bad.already_written) == set(steps.KEPT_ON_REFUSAL)
    assert bad.frames["campaign_attribution"]["order_id"].str.starts_with("o2-").all()  # a new candidate
    write(ctx, registry, bad)
    for t, before in stored.items():
        assert wh.read_partitions(t, "day", day, day).sort(pl.all()).equals(before), t
    perf = wh.read_table("attribution_model_performance")
    assert perf.sort(pl.all()).equals(bad.frames["attribution_model_performance"].sort(pl.all()))
