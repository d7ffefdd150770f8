"""Sales velocity, sell-out ETA and their planted truth (issue 17; docs/monitoring.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from analytics_pipelines.generator.synth import generate_tables
from analytics_pipelines.generator.truth import planted_truth
from analytics_pipelines.monitoring import calibration as K
from analytics_pipelines.monitoring import curves as C
from analytics_pipelines.monitoring import sellout as S
from analytics_pipelines.monitoring import velocity as V
from analytics_pipelines.monitoring.inputs import TS, event_windows
from analytics_pipelines.settings import VelocitySettings

T0 = datetime(2026, 10, 31, 12, 0, tzinfo=UTC)


def _events(**over) -> pl.DataFrame:
    row = {
        "tenant_id": "t1",
        "venue_id": "v1",
        "event_id": "e1",
        "category_id": "c1",
        "capacity": 100,
        "capacity_reason": None,
        "sale_start": T0 - timedelta(hours=1),
        "sale_end": T0 + timedelta(days=5),
        "starts_at": T0 + timedelta(days=5),
        "cancelled_at": None,
        "status": "published",
    }
    row.update(over)
    return pl.DataFrame([row]).cast(
        {
            "sale_start": TS,
            "sale_end": TS,
            "starts_at": TS,
            "cancelled_at": TS,
            "capacity": pl.Int64,
            "capacity_reason": pl.String,
        }
    )


def _sales(event: str, times: list[datetime]) -> pl.DataFrame:
    return pl.DataFrame({"event_id": [event] * len(times), "created_at": times}).cast(
        {"event_id": pl.String, "created_at": TS}
    )


def _run(sales, events, before=None, start=T0, end=T0 + timedelta(hours=2), **settings):
    before = (
        before
        if before is not None
        else pl.DataFrame(schema={"event_id": pl.String, "sold_before": pl.Int64})
    )
    return V.velocity(sales, events, before, start, end, VelocitySettings(**settings))


# -- velocity: the numbers ------------------------------------------------------------------------------
def test_rates_acceleration_trend_flags_and_remaining_are_the_seeds_rules_at_five_minutes():
    # 2 tickets/min for 30 minutes, then 12/min for 15 minutes, then nothing
    slow = [T0 + timedelta(seconds=30 * i) for i in range(60)]
    fast = [T0 + timedelta(minutes=30, seconds=5 * i) for i in range(180)]
    df, left = _run(_sales("e1", slow + fast), _events(capacity=300), high_per_minute=10.0)
    assert left == {"sales_of_unknown_events": 0, "sales_off_sale": 0, "sales_in_window": 240}
    row = {r["bucket_start"]: r for r in df.iter_rows(named=True)}
    steady = row[T0 + timedelta(minutes=20)]
    assert steady["tickets"] == 10 and steady["per_minute_5m"] == 2.0 and steady["per_minute_15m"] == 2.0
    assert steady["acceleration"] == 0.0 and steady["trend"] == "steady" and not steady["high_velocity"]
    first_fast = row[T0 + timedelta(minutes=30)]
    assert first_fast["per_minute_5m"] == 12.0 and first_fast["high_velocity"]
    assert first_fast["acceleration"] == pytest.approx(12 - (10 + 10 + 60) / 15)
    assert first_fast["trend"] == "accelerating"  # mean of (0, 0, 6.67) > 0.5
    after = row[T0 + timedelta(minutes=50)]  # 5 minutes without a sale after the burst
    assert after["tickets"] == 0 and after["per_minute_5m"] == 0 and after["trend"] == "decelerating"
    assert after["tickets_sold"] == 240 and after["remaining"] == 60
    # the trailing hour: rows stop 55 minutes after the last sale
    assert df["bucket_start"].max() == T0 + timedelta(minutes=40 + 55)
    assert df["tickets"].sum() == 240 and df["tickets_sold"].is_sorted()
    imminent = row[T0 + timedelta(minutes=40)]  # 60 left at 12/min over 15 minutes: 5 min < 60 min
    assert imminent["sellout_imminent"] and imminent["eta_linear_minutes"] == pytest.approx(5.0)


def test_sold_before_the_window_counts_and_sell_out_ends_the_rows():
    times = [T0 + timedelta(minutes=i) for i in range(20)]
    before = pl.DataFrame({"event_id": ["e1"], "sold_before": [90]})
    df, _ = _run(_sales("e1", times), _events(capacity=100), before=before)
    assert df["tickets_sold"].to_list() == [95, 100]  # buckets 12:00 and 12:05; none after the sell-out
    assert df["sold_out"].to_list() == [False, True] and df["remaining"].to_list() == [5, 0]


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"capacity": None, "capacity_reason": "capacity_unknown"}, "capacity_unknown"),
        ({"capacity": None, "capacity_reason": "capacity_zero"}, "capacity_zero"),
    ],
)
def test_unknown_or_zero_capacity_gives_null_remaining_with_a_reason(over, reason):
    df, _ = _run(_sales("e1", [T0 + timedelta(minutes=i) for i in range(30)]), _events(**over))
    assert df.height and df["remaining"].null_count() == df.height
    assert set(df["capacity_reason"]) == {reason} and not df["sellout_imminent"].any()
    assert df.select(pl.col(pl.Float64).is_nan().any()).row(0) == (False,) * 5


def test_bad_input_oversold_out_of_order_clock_cancelled_and_unknown_event_never_crash():
    start_sale = T0 + timedelta(hours=1)  # sales before the sale start (clocks out of order) still count
    sales = pl.concat(
        [
            _sales("e1", [T0 + timedelta(minutes=i) for i in range(0, 40)]),
            _sales("e2", [T0 + timedelta(minutes=i) for i in range(0, 60)]),  # cancelled at 12:30
            _sales("ghost", [T0 + timedelta(minutes=3)]),  # no such event
            pl.DataFrame({"event_id": ["e1"], "created_at": [None]}).cast({"created_at": TS}),
        ]
    )
    events = pl.concat(
        [
            _events(capacity=10, sale_start=start_sale),  # 40 sold of 10: oversold
            _events(event_id="e2", cancelled_at=T0 + timedelta(minutes=30), status="cancelled"),
        ]
    )
    df, left = _run(sales, events)
    e1, e2 = df.filter(pl.col("event_id") == "e1"), df.filter(pl.col("event_id") == "e2")
    assert e1.height == 2 and e1["remaining"].to_list() == [5, 0]  # sold out in its 2nd bucket, clipped at 0
    assert e2["bucket_start"].max() < T0 + timedelta(minutes=30)
    assert left["sales_of_unknown_events"] == 1
    assert left["sales_off_sale"] == 30 + 30  # e1 after its sell-out bucket, e2 after the cancellation
    assert df["tickets"].sum() + left["sales_of_unknown_events"] + left["sales_off_sale"] == 101
    assert not df.select(pl.col(pl.Float64).is_nan().any()).row(0).count(True)


def test_only_complete_buckets_up_to_now_and_empty_input():
    now = T0 + timedelta(minutes=17)
    start, end = V.window("2026-10-31", "2026-10-31", now)
    assert end == T0 + timedelta(minutes=15) and start == datetime(2026, 10, 31, tzinfo=UTC)
    empty, left = _run(_sales("e1", []), _events(), start=start, end=end)
    assert empty.is_empty() and left["sales_in_window"] == 0 and empty.schema == pl.Schema(V.SCHEMA)


def test_event_windows_capacity_reasons_and_cancellation_time():
    dim = pl.DataFrame(
        {
            "tenant_id": ["t"] * 3,
            "venue_id": ["v"] * 3,
            "event_id": ["a", "b", "c"],
            "category_id": ["x"] * 3,
            "capacity": [0, 0, 50],
            "starts_at": [T0] * 3,
            "status": ["published", "published", "cancelled"],
        }
    ).cast({"starts_at": TS})
    types = pl.DataFrame(
        {"event_id": ["b", "c"], "quantity": [0, 40], "sale_start": [T0, T0], "sale_end": [T0, T0]}
    ).cast({"sale_start": TS, "sale_end": TS})
    changed = pl.DataFrame({"id": ["c"], "status_changed_at": [T0 - timedelta(hours=2)]}).cast(
        {"status_changed_at": TS}
    )
    ev = event_windows(dim, types, changed).sort("event_id")
    assert ev["capacity"].to_list() == [None, None, 40]
    assert ev["capacity_reason"].to_list() == ["capacity_zero", "capacity_zero", None]
    assert ev["cancelled_at"].to_list()[2] == T0 - timedelta(hours=2)


# -- the planted truth -----------------------------------------------------------------------------------
def test_nothing_is_planted_in_a_short_history():
    """tiny (120 days): the revenue projections' recent backtest would have to absorb the bursts' spikes."""
    truth = planted_truth("tiny", 7)["monitoring"]["sales"]
    assert truth["bursts"] == [] and truth["stalls"] == []


@pytest.mark.parametrize(("scale", "seed"), [("small", 42)])
def test_planted_bursts_sell_out_when_the_truth_says_and_stalls_stall(scale, seed):
    truth = planted_truth(scale, seed)["monitoring"]["sales"]
    assert truth == planted_truth(scale, seed)["monitoring"]["sales"]  # deterministic
    assert len(truth["bursts"]) >= 30 and truth["stalls"]
    assert any(b["kind"] == "live_burst" for b in truth["bursts"])
    tickets = generate_tables(scale, seed)["tickets"].select("event_id", "created_at")
    for b in truth["bursts"]:
        mine = tickets.filter(pl.col("event_id") == b["event_id"])
        assert mine.height == b["tickets_sold"]
        if b["sold_out"]:
            assert mine.height == b["capacity"]
            assert mine["created_at"].max().isoformat() == b["sellout_at"]
            start = datetime.fromisoformat(b["burst_start"])
            took = (datetime.fromisoformat(b["sellout_at"]) - start).total_seconds() / 3600
            assert took <= 4 * b["sellout_scale_hours"] + 0.5  # sells out after about S
    for s in truth["stalls"]:
        mine = tickets.filter(pl.col("event_id") == s["event_id"])
        stall_at = datetime.fromisoformat(s["stall_at"])
        late = mine.filter(pl.col("created_at") > stall_at + timedelta(minutes=15)).height
        # a trickle of ~3 % of the baskets after the stall (a basket holds up to 6 tickets)
        assert late <= max(6, 0.15 * mine.height) and s["tickets_sold"] < s["capacity"]


# -- the sell-out model ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_tables():
    return generate_tables("small", 42)


@pytest.fixture(scope="module")
def small_backtest(small_tables):
    """The model's out-of-time backtest on `small` generator data (tickets and ticket types as generated)."""
    t = small_tables
    e = t["events"]
    dim = e.select(
        "tenant_id",
        "venue_id",
        pl.col("id").alias("event_id"),
        pl.col("primary_category_id").alias("category_id"),
        pl.lit(None, pl.Int64).alias("capacity"),
        pl.col("start_date").alias("starts_at"),
        pl.col("status").str.to_lowercase(),
    )
    events = event_windows(
        dim,
        t["ticket_types"].select("event_id", "quantity", "sale_start", "sale_end"),
        e.select("id", "status_changed_at"),
    )
    sales = t["tickets"].select("event_id", pl.col("created_at").cast(TS))
    library = C.curves(sales, events)
    return library, S.backtest(library, sales), planted_truth("small", 42)["monitoring"]["sales"]


def test_library_sell_out_times_match_the_planted_truth(small_backtest):
    library, _, truth = small_backtest
    sold = {k: v["sellout_at"] for k, v in truth["sold_out"].items()}
    got = {r["event_id"]: r["sellout_at"].isoformat() for r in library.iter_rows(named=True)}
    assert got == sold


def test_eta_beats_the_seeds_linear_rule_at_50_percent_sold_with_an_ordered_interval(small_backtest):
    _, bt, _ = small_backtest
    scores = S.score(bt)
    mid = scores[0.5]
    assert mid["n"] >= 30
    assert mid["model_mae"] < mid["linear_mae"], scores
    has = bt.filter(pl.col("eta_p50").is_not_null())
    assert (has["eta_p10"] <= has["eta_p50"]).all() and (has["eta_p50"] <= has["eta_p90"]).all()
    perf = S.performance_rows(scores, "v", T0, "w")
    from analytics_pipelines.customers.checks import check_model_performance

    assert check_model_performance(perf).passed


def test_calibrated_80_percent_interval_covers_70_to_90_percent_out_of_time(small_backtest):
    """Split-conformal in log-time, per fraction-sold bucket: calibrated only on checkpoints whose sell-out
    was known before the held-out (latest 40 %) checkpoints were queried."""
    _, bt, _ = small_backtest
    cov = K.holdout_coverage(bt)
    overall = cov[K.POOLED]
    assert overall["n"] >= 40 and overall["n_calibration"] >= 40, cov
    assert 0.70 <= overall["coverage"] <= 0.90, cov
    # the neighbours' own p10..p90 (uncalibrated) on the same held-out rows covers far less
    hold = bt.filter(pl.col("eta_p50").is_not_null()).sort("as_of").tail(overall["n"])
    raw = hold.select(
        ((pl.col("truth") >= pl.col("eta_p10")) & (pl.col("truth") <= pl.col("eta_p90"))).mean()
    )
    assert raw.item() < overall["coverage"]
    perf = S.performance_rows(S.score(bt), "v", T0, "w", cov)
    row = perf.filter((pl.col("metric") == K.COVERAGE_METRIC) & pl.col("bucket").is_null())
    assert row["value"].item() == overall["coverage"] and row["evaluation"].item() == "out_of_time"


def test_calibration_widens_in_log_time_keeps_order_and_falls_back_when_history_is_short():
    rng = np.random.default_rng(3)
    n = 60
    truth = np.exp(rng.normal(5, 1, n))
    bt = pl.DataFrame(
        {
            "fraction": np.repeat([0.25, 0.5, 0.75], n // 3),
            "eta_p50": np.full(n, 150.0),
            "eta_p10": np.full(n, 140.0),
            "eta_p90": np.full(n, 160.0),
            "truth": truth,
            "t0": [T0] * n,
            "sellout_minutes": truth + 100,
            "as_of": [T0 + timedelta(minutes=100)] * n,
        }
    ).cast({"t0": TS, "as_of": TS})
    cal = K.calibration_frame(bt)
    assert (cal["method"] == K.METHOD).all() and (cal["q_lo"] < 0).all() and (cal["q_hi"] > 0).all()
    pred = pl.DataFrame(
        {"fraction": [0.3, 0.9, None], "eta_p10": [140.0, 140.0, None], "eta_p50": [150.0] * 2 + [None]}
    ).with_columns(pl.col("eta_p10").alias("eta_p90") + 20)
    got = K.apply(pred, cal)
    assert got["eta_p10"][0] < 140 and got["eta_p90"][0] > 160  # wider than the neighbours' spread
    assert (got["eta_p10"].head(2) <= 150).all() and (got["eta_p90"].head(2) >= 150).all()
    assert got["interval_method"].to_list() == [K.METHOD, K.METHOD, None]
    few = K.calibration_frame(bt.head(5))  # too few checkpoints: the neighbours' interval stays
    kept = K.apply(pred, few)
    assert kept["eta_p10"][0] == 140 and kept["interval_method"][0] == "neighbours"


def test_forecast_reasons_for_bad_input_and_an_eta_for_a_live_sale(small_backtest):
    library = small_backtest[0]
    now = T0
    rows = [
        ("live", 200, None, "published", None),
        ("nocap", None, "capacity_unknown", "published", None),
        ("zero", None, "capacity_zero", "published", None),
        ("over", 10, None, "published", None),
        ("cancel", 200, None, "cancelled", now - timedelta(hours=1)),
        ("stall", 200, None, "published", None),
        ("early", 2000, None, "published", None),
    ]
    events = pl.concat(
        [
            _events(
                event_id=e,
                capacity=c,
                capacity_reason=r,
                status=s,
                cancelled_at=x,
                sale_start=now - timedelta(days=3),
            )
            for e, c, r, s, x in rows
        ]
    )
    live = [now - timedelta(minutes=i) for i in range(1, 121)]
    sales = pl.concat(
        [
            _sales("live", live),
            _sales("nocap", live[:20]),
            _sales("zero", live[:20]),
            _sales("over", live[:15]),
            _sales("cancel", live[:20]),
            _sales("stall", [now - timedelta(days=2, minutes=i) for i in range(50)]),
            _sales("early", live[:20]),
        ]
    )
    fc = S.forecast(library, sales, events, now, "v").sort("event_id")
    got = dict(zip(fc["event_id"], fc["reason"], strict=True))
    assert got["live"] is None and got["nocap"] == "capacity_unknown" and got["zero"] == "capacity_zero"
    assert got["over"] == "sold_out" and got["cancel"] == "cancelled" and got["stall"].startswith("stalled")
    assert got["early"].startswith("less than 5 %")
    live_row = fc.filter(pl.col("event_id") == "live").row(0, named=True)
    assert 0 <= live_row["eta_minutes_p10"] <= live_row["eta_minutes_p50"] <= live_row["eta_minutes_p90"]
    assert live_row["sellout_at_p50"] > now and live_row["neighbours"] >= C.MIN_LIBRARY
    assert fc.select(pl.col(pl.Float64).is_nan().any()).row(0).count(True) == 0
    assert fc.filter(pl.col("eta_minutes_p50").is_null() & pl.col("reason").is_null()).is_empty()


# -- anomalies on velocity ------------------------------------------------------------------------------
def test_velocity_anomalies_find_planted_bursts_and_stalls_better_than_the_seed_z_score(
    small_tables, tmp_path
):
    """The venues' tickets-per-hour series on `small`: the robust weekday x hour detector finds the planted
    on-sale bursts and stalls (truth["monitoring"]["sales"]) at <= 1 false alert per venue-week, better than
    the seed's z-score rule on both, and through the alert engine one instance per episode (deduplicated)."""
    import sqlalchemy as sa

    from analytics_pipelines.alerting import notifier as N
    from analytics_pipelines.anomalies import alerts as AL
    from analytics_pipelines.anomalies import detector as D
    from analytics_pipelines.monitoring import velocity_anomalies as VA
    from analytics_pipelines.ops.alerts import alert_instances, alert_rules
    from analytics_pipelines.ops.db import ops_engine
    from analytics_pipelines.settings import AnomalySettings

    cfg = AnomalySettings()
    ev = small_tables["events"].select(pl.col("id").alias("event_id"), "tenant_id", "venue_id")
    sales = small_tables["tickets"].select("event_id", pl.col("created_at").cast(TS))
    start = sales["created_at"].min().replace(minute=0, second=0, microsecond=0)
    last = sales["created_at"].max().replace(minute=0, second=0, microsecond=0)
    first = start + timedelta(weeks=cfg.min_weeks + 1)
    found = VA.detect(sales, ev, cfg, first, last)
    assert found.height and found.select(pl.col(pl.Float64).is_nan().any()).row(0).count(True) == 0
    series = VA.hourly_series(sales, ev, start, last)
    scored, _ = D.detect(series, cfg, first, last)
    episodes = D.episodes(scored, cfg)
    planted = VA.planted_windows(planted_truth("small", 42), ev)
    venues = ev["venue_id"].n_unique()
    res = VA.score_planted(episodes, planted, first, last, venues)
    flagged = D.seed_zscore(series, first).filter("flagged")
    seed = VA.score_planted(
        flagged.select(
            "venue_id",
            pl.col("hour").alias("opened"),
            (pl.col("hour") + pl.duration(hours=1)).alias("resolved"),
        ),
        planted,
        first,
        last,
        venues,
    )
    print("velocity anomalies, small:", res, "seed z-score:", seed)
    assert res["planted"] >= 30 and res["recall"] >= 0.85, res
    assert res["by_kind"]["burst"]["found"] >= 0.85 * res["by_kind"]["burst"]["planted"]
    assert res["false_per_venue_week"] <= 1.0 and res["alerts_opened_per_planted_max"] == 1
    assert res["recall"] > seed["recall"] and res["false_per_venue_week"] < seed["false_per_venue_week"]
    # through the alert engine (persisted instances): one instance per episode, none duplicated
    busiest = episodes.group_by("venue_id").len().sort("len", descending=True)["venue_id"].head(3)
    mine = found.filter(pl.col("venue_id").is_in(busiest.implode()))
    eng = ops_engine(f"sqlite:///{tmp_path / 'ops.sqlite'}")
    hours = sorted(scored.filter(pl.col("venue_id").is_in(busiest.implode()))["hour"].unique().to_list())
    venue_rows = (
        ev.select("tenant_id", "venue_id").unique().filter(pl.col("venue_id").is_in(busiest.implode()))
    )
    AL.evaluate_velocity_anomaly_alerts(eng, mine, venue_rows, hours, cfg, N.Notifier(sleep=lambda s: None))
    with eng.connect() as conn:
        n = conn.execute(
            sa.select(sa.func.count())
            .select_from(alert_instances.join(alert_rules, alert_rules.c.id == alert_instances.c.rule_id))
            .where(alert_rules.c.name == "velocity_anomaly")
        ).scalar()
    assert n == episodes.filter(pl.col("venue_id").is_in(busiest.implode())).height


def test_velocity_anomaly_series_bad_input_one_hour_unknown_event_no_crash():
    from analytics_pipelines.monitoring import velocity_anomalies as VA
    from analytics_pipelines.settings import AnomalySettings

    events = pl.DataFrame({"event_id": ["e1"], "tenant_id": ["t"], "venue_id": ["v"]})
    sales = pl.concat([_sales("e1", [T0, T0 + timedelta(minutes=5)]), _sales("ghost", [T0])])
    s = VA.hourly_series(sales, events, T0, T0)
    assert s["value"].to_list() == [2.0]  # the unknown event's sale is not a venue's
    got = VA.detect(sales, events, AnomalySettings(), T0, T0)  # one hour of history: nothing scored
    assert got.is_empty() and got.schema == pl.Schema(VA.ANOMALY_SCHEMA)
