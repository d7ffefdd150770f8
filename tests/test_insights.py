"""The insight rules on hand-made frames (no Dagster, no API): a planted jump is found, plain Poisson noise
is not (false-positive rate bounded), stalls / sell-out pacing / churn-risk / anomaly / pricing findings, the
stable ids, and every finding's query compiles in the query layer."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

from analytics_pipelines.insights import events, rules
from analytics_pipelines.insights.customer import customer_findings
from analytics_pipelines.insights.findings import insight_id, last_complete_week
from analytics_pipelines.query.compile import Scope, compile_query
from analytics_pipelines.query.model import QueryRequest
from analytics_pipelines.registry import default_registry

AS_OF = date(2026, 10, 31)  # a Saturday: the last complete week is 10-19..10-25
T = "00000000-0000-0000-0000-000000000001"
EV1, EV2 = "11111111-0000-0000-0000-000000000001", "11111111-0000-0000-0000-000000000002"


def venue(v: int) -> str:
    return f"22222222-0000-0000-0000-{v:012d}"


def daily(
    venues: int, per_day: float, weeks: int = 30, seed: int = 1, jump: dict | None = None
) -> pl.DataFrame:
    """Poisson tickets per venue and day (revenue = tickets x a noisy price); `jump`: venue index -> factor
    applied to the last complete week."""
    rng = np.random.default_rng(seed)
    first = AS_OF - timedelta(days=7 * weeks)
    days = [first + timedelta(days=i) for i in range((AS_OF - first).days + 1)]
    monday, sunday = last_complete_week(AS_OF)
    rows = []
    for v in range(venues):
        for d in days:
            lam = per_day * ((jump or {}).get(v, 1.0) if monday <= d <= sunday else 1.0)
            n = int(rng.poisson(lam))
            rows.append((T, venue(v), d, n, int(n * rng.normal(5000, 300))))
    return pl.DataFrame(
        rows, schema=["tenant_id", "venue_id", "day", "tickets_sold", "net_revenue_cents"], orient="row"
    )


def test_last_complete_week():
    assert last_complete_week(date(2026, 10, 31)) == (date(2026, 10, 19), date(2026, 10, 25))
    assert last_complete_week(date(2026, 10, 25)) == (date(2026, 10, 19), date(2026, 10, 25))


def test_planted_jump_is_found_with_its_numbers():
    found = rules.sales_changes(daily(3, 30, jump={1: 1.6}), AS_OF)
    wow = [f for f in found if f["type"] == "tickets_wow"]
    assert [f["venue_id"] for f in wow] == [venue(1)]
    ev = json.loads(wow[0]["evidence"])
    assert ev["week"] == "2026-10-19" and ev["base_week"] == "2026-10-12"
    assert 40 <= ev["change_pct"] <= 90 and ev["z"] >= rules.Z_MIN
    assert "rose" in wow[0]["sentence"]
    assert {f["type"] for f in found if f["venue_id"] == venue(1)} >= {"tickets_wow", "revenue_wow"}
    # stable id: type + venue + evidence key
    assert wow[0]["insight_id"] == insight_id("tickets_wow", venue(1), "tickets:wow:2026-10-19")


def test_a_drop_is_found_too():
    found = rules.sales_changes(daily(2, 30, jump={0: 0.3}), AS_OF)
    assert any(f["type"] == "tickets_wow" and f["venue_id"] == venue(0) and f["score"] < 0 for f in found)


def test_noise_is_not_reported():
    """300 venues of plain Poisson sales: at most 1 % of the venue-metric series flagged (expected ~0)."""
    found = rules.sales_changes(daily(300, 30, seed=3), AS_OF)
    assert len(found) <= 0.01 * 300 * 2, found[:3]
    # low volume: the Poisson floor keeps small counts' swings quiet
    assert len(rules.sales_changes(daily(300, 1.5, seed=4), AS_OF)) <= 6


def test_year_over_year_needs_a_year_and_finds_a_jump():
    assert not [f for f in rules.sales_changes(daily(2, 30, weeks=30), AS_OF) if "yoy" in f["type"]]
    found = rules.sales_changes(daily(2, 30, weeks=70, jump={0: 1.8}), AS_OF)
    yoy = [f for f in found if f["type"] == "tickets_yoy"]
    assert [f["venue_id"] for f in yoy] == [venue(0)]
    assert json.loads(yoy[0]["evidence"])["base_week"] == "2025-10-20"


def _events(starts_in_days: int = 20, capacity: int = 10_000) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "tenant_id": [T],
            "venue_id": [venue(0)],
            "event_id": [EV1],
            "event_name": ["The Show"],
            "starts_at": [datetime(2026, 10, 31, 20, tzinfo=UTC) + timedelta(days=starts_in_days)],
            "status": ["on_sale"],
            "capacity": [capacity],
        }
    )


def _event_daily(rate: float, recent_rate: float, tickets_per_order: int = 2) -> pl.DataFrame:
    rows = []
    for i in range(40):
        d = AS_OF - timedelta(days=i)
        o = int(round(recent_rate if i < 7 else rate))
        rows.append((EV1, d, o, o * tickets_per_order))
    return pl.DataFrame(rows, schema=["event_id", "day", "orders", "tickets_sold"], orient="row")


def test_stall_found_and_steady_sales_not():
    stall = events.event_findings(_event_daily(3, 0), _events(), AS_OF)
    assert [f["type"] for f in stall] == ["event_stalling"]
    ev = json.loads(stall[0]["evidence"])
    assert ev["recent_orders"] == 0 and ev["expected_orders"] == 21 and ev["poisson_p"] < 1e-6
    assert events.event_findings(_event_daily(3, 3), _events(), AS_OF) == []
    # a past event is never stalling
    assert events.event_findings(_event_daily(3, 0), _events(starts_in_days=-2), AS_OF) == []


def test_sellout_pacing():
    # 40 orders x 2 tickets a day for a week = 560 tickets; 80 seats left, 20 days to go
    sold_before = _event_daily(40, 40)
    cap = int(sold_before["tickets_sold"].sum()) + 80
    found = events.event_findings(sold_before, _events(capacity=cap), AS_OF)
    assert [f["type"] for f in found] == ["event_sellout_pacing"]
    assert json.loads(found[0]["evidence"])["remaining"] == 80
    # a slow event with most seats left is not pacing
    assert events.event_findings(_event_daily(1, 1), _events(capacity=100_000), AS_OF) == []


def test_churn_share_rising():
    def rfm(day, n, risky):
        return [(T, venue(0), day, f"u{i}", "At Risk" if i < risky else "Champions") for i in range(n)]

    before = AS_OF - timedelta(days=7)
    frame = pl.DataFrame(
        rfm(AS_OF, 400, 120) + rfm(before, 400, 40),
        schema=["tenant_id", "venue_id", "as_of", "user_id", "segment"],
        orient="row",
    )
    found = events.churn_findings(frame, AS_OF)
    assert [f["type"] for f in found] == ["churn_risk_rising"]
    assert json.loads(found[0]["evidence"])["share"] == 0.3
    flat = pl.DataFrame(
        rfm(AS_OF, 400, 44) + rfm(before, 400, 40),
        schema=["tenant_id", "venue_id", "as_of", "user_id", "segment"],
        orient="row",
    )
    assert events.churn_findings(flat, AS_OF) == []


def test_anomalies_and_pricing():
    hour = datetime(2026, 10, 30, 14, tzinfo=UTC)
    a = pl.DataFrame(
        {
            "tenant_id": [T, T],
            "venue_id": [venue(0)] * 2,
            "metric": ["hourly_orders"] * 2,
            "hour": [hour, hour - timedelta(days=20)],
            "value": [40.0, 40.0],
            "baseline": [5.0, 5.0],
            "score": [7.0, 7.0],
            "severity": ["medium", "medium"],
            "direction": ["up", "up"],
        }
    )
    found = events.anomaly_findings(a, "kpi_anomaly", AS_OF)
    assert len(found) == 1 and "40 against a usual 5" in found[0]["sentence"]  # the old one is out of window
    now = datetime(2026, 11, 1, tzinfo=UTC)
    recs = pl.DataFrame(
        {
            "tenant_id": [T] * 3,
            "venue_id": [venue(0)] * 3,
            "event_id": [EV1, EV1, EV2],
            "ticket_type_id": ["tt1", "tt2", "tt3"],
            "recommended_price_cents": [3300, 5500, 1000],
            "change_pct": [10.0, 10.0, 0.0],
            "expected_revenue_change_cents": [1000, 2000, 0],
            "status": ["recommended", "recommended", "no_change"],
            "expires_at": [now + timedelta(hours=20)] * 3,
        }
    )
    found = events.pricing_findings(recs, AS_OF, now)
    assert len(found) == 1 and json.loads(found[0]["evidence"])["expected_revenue_change_cents"] == 3000


def test_every_query_compiles_in_the_query_layer():
    reg = default_registry()
    tables = {t.name: t for t in reg.tables}
    found = rules.sales_changes(daily(3, 30, jump={1: 1.6}), AS_OF)
    found += events.event_findings(_event_daily(3, 0), _events(), AS_OF)
    assert found
    for f in found:
        req = QueryRequest.model_validate(json.loads(f["query"]))
        c = compile_query(req, reg.cubes(), tables, Scope(T, f["venue_id"]), today=AS_OF)
        assert c.sql and f["venue_id"] in c.params


def test_customer_findings():
    rows = [
        {"as_of": AS_OF - timedelta(days=14), "venue_id": "v", "segment": "Champions", "recency_days": 3},
        {"as_of": AS_OF, "venue_id": "v", "segment": "At Risk", "recency_days": 90},
    ]
    found = customer_findings("u1", rows, {"as_of": AS_OF, "churn_probability": 0.85})
    assert [f["type"] for f in found] == ["churn_risk_rising", "churn_risk_high"]
    assert found[1]["severity"] == "high"
    assert customer_findings("u1", rows[1:], {"as_of": AS_OF, "churn_probability": 0.1}) == []


def test_segment_shift_found_and_drift_not():
    before = AS_OF - timedelta(days=events.SHIFT_DAYS)

    def rfm(day, counts):
        rows, i = [], 0
        for seg, n in counts.items():
            rows += [(T, venue(0), day, f"u{i + j}", seg) for j in range(n)]
            i += n
        return rows

    cols = ["tenant_id", "venue_id", "as_of", "user_id", "segment"]
    shifted = pl.DataFrame(
        rfm(AS_OF, {"Champions": 100, "Lost": 300}) + rfm(before, {"Champions": 200, "Lost": 200}),
        schema=cols,
        orient="row",
    )
    found = events.segment_findings(shifted, AS_OF)
    assert [f["type"] for f in found] == ["segment_shift"]
    ev = json.loads(found[0]["evidence"])
    assert ev["segment"] in ("Champions", "Lost") and abs(ev["share"] - ev["share_before"]) == 0.25
    drift = pl.DataFrame(
        rfm(AS_OF, {"Champions": 190, "Lost": 210}) + rfm(before, {"Champions": 200, "Lost": 200}),
        schema=cols,
        orient="row",
    )
    assert events.segment_findings(drift, AS_OF) == []
    assert events.segment_findings(drift.filter(pl.col("as_of") == AS_OF), AS_OF) == []  # no history


def test_no_anomalies_read_from_postgres_types_hour_null():
    """A PostgreSQL read of an empty anomaly table types its columns Null: no finding, no error (it failed
    insights_job on the PostgreSQL warehouse)."""
    from analytics_pipelines.insights.events import anomaly_findings

    empty = pl.DataFrame(
        schema={"tenant_id": pl.Null, "venue_id": pl.Null, "hour": pl.Null, "severity": pl.Null}
    )
    assert anomaly_findings(empty, "kpi_anomaly", date(2026, 10, 31)) == []
