"""The demand forecast: the model on hand-built data and on the materialized tiny data (shape, no NaN,
ordered intervals, every ticket type forecast or given a reason), the backtest's figures against independent
code on a toy series, the gate refusing a worse model (the previous forecast stays), the what-if arithmetic."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from demand_frames import elasticity_frame, toy_inputs

from analytics_pipelines.predictions import backtest as BT
from analytics_pipelines.predictions import demand_data as D
from analytics_pipelines.predictions import demand_model as M
from analytics_pipelines.predictions import steps
from analytics_pipelines.predictions import whatif as W
from analytics_pipelines.registry import default_registry
from analytics_pipelines.registry.context import BuildContext
from analytics_pipelines.settings import Settings
from analytics_pipelines.warehouse import open_warehouse

NOW = datetime(2026, 9, 1, 12, tzinfo=UTC)
Q = ["tickets_p10", "tickets_p50", "tickets_p90"]


@pytest.fixture(scope="module")
def toy():
    inp, through = toy_inputs()
    return inp, through, steps.run(inp, through, 30, NOW)


def _valid_forecast(fc: pl.DataFrame, days: int) -> None:
    assert fc.height > 0
    assert fc.select(pl.any_horizontal(~pl.col(c).is_finite() for c in Q).sum()).item() == 0
    assert fc.filter(pl.col("tickets_p10") < 0).height == 0
    assert fc.filter(pl.col("tickets_p10") > pl.col("tickets_p50")).height == 0
    assert fc.filter(pl.col("tickets_p50") > pl.col("tickets_p90")).height == 0
    assert fc["horizon_day"].min() >= 1 and fc["horizon_day"].max() <= days
    assert fc.select("ticket_type_id", "day").is_duplicated().sum() == 0
    assert (
        fc.null_count().select(["tenant_id", "venue_id", "event_id", "day", *Q]).sum_horizontal().item() == 0
    )


def test_toy_forecast_shape_reasons_and_gate(toy):
    inp, through, run = toy
    fc, rs = run.forecast, run.reasons
    _valid_forecast(fc, 30)
    assert (fc["day"] > through).all() and (fc["as_of"] == through).all()
    # every ticket type in exactly one of the forecast and the reasons
    forecast_types = set(fc["ticket_type_id"].unique().to_list())
    reason_types = set(rs["ticket_type_id"].drop_nulls().to_list())
    assert not forecast_types & reason_types
    assert forecast_types | reason_types == set(inp.series["ticket_type_id"].to_list())
    by_event = dict(rs.select("event_id", "reason").unique().iter_rows())
    assert (
        by_event["e007"] == "cancelled"
        and by_event["e-none"] == "no_ticket_types"
        and by_event["e000"] == "past"
    )
    # events on sale at `through` (k >= 38: they start after it) are forecast up to their start
    on_sale = inp.series.filter((pl.col("event_day") > through) & (pl.col("first_day") <= through))
    assert set(on_sale["ticket_type_id"].to_list()) == forecast_types
    last = fc.join(inp.series.select("ticket_type_id", "last_day"), on="ticket_type_id")
    assert (last["day"] <= last["last_day"]).all()
    # the planted ramp and weekly pattern are learnable: the model beats both baselines
    passed, facts = BT.gate(run.backtest)
    assert passed, facts
    assert 0.6 <= run.backtest.metrics[M.MODEL_NAME]["coverage_80"] <= 0.95


def test_forecast_is_reproducible(toy):
    inp, through, run = toy
    again = steps.run(inp, through, 30, NOW)
    assert again.model_version == run.model_version
    assert again.forecast.equals(run.forecast)


def test_backtest_figures_equal_independent_code():
    """MASE, coverage and the seasonal-naive feature recomputed by plain loops on a toy series."""
    inp, through = toy_inputs(events=3, days=130, seed=11)
    grid = D.daily_grid(inp, through)
    tid = "e001-t0"
    ys = {r["day"]: r["tickets"] for r in grid.filter(pl.col("ticket_type_id") == tid).iter_rows(named=True)}
    origin = min(ys) + timedelta(days=30)
    rows = D.feature_rows(inp, grid, [origin], 14, D.category_codes(inp.series), observed_through=through)
    mine = rows.filter(pl.col("ticket_type_id") == tid).sort("day")
    for r in mine.iter_rows(named=True):
        h = r["horizon_day"]
        expected = ys.get(origin - timedelta(days=7) + timedelta(days=(h - 1) % 7 + 1), 0)
        assert r["same_weekday_last_week"] == expected
        assert r["target"] == ys.get(r["day"], 0)
        assert r["days_to_event"] == (r["event_day"] - r["day"]).days
    # the scale: mean |y_t - y_(t-7)| over days up to the origin that have a t-7
    days = sorted(d for d in ys if d <= origin)
    diffs = [abs(ys[d] - ys[d - timedelta(days=7)]) for d in days if d - timedelta(days=7) in ys]
    scale = M.mase_scale(grid, [tid], origin)
    assert scale == pytest.approx(sum(diffs) / len(diffs))
    actual = mine["target"].cast(pl.Float64).to_numpy()
    fc = pl.DataFrame({"tickets_p10": actual - 1.0, "tickets_p50": actual + 0.5, "tickets_p90": actual - 0.5})
    e = M.errors(actual, fc, scale)
    assert e["mae"] == pytest.approx(0.5)
    assert e["mase"] == pytest.approx(0.5 / scale)
    assert e["coverage_80"] == 0.0  # every actual is above p90
    naive = M.baselines(mine)["seasonal_naive"]["tickets_p50"].to_numpy()
    manual = sum(abs(a - n) for a, n in zip(actual, naive, strict=True)) / len(actual)
    assert M.errors(actual, M.baselines(mine)["seasonal_naive"], scale)["mase"] == pytest.approx(
        manual / scale
    )


class _Worse:
    """A 'model' that always forecasts 500 tickets a day: the backtest must refuse it."""

    model = None
    alpha = 0.0
    features = D.FEATURES

    def predict(self, rows):
        v = np.full(rows.height, 500.0)
        return pl.DataFrame({"tickets_p10": v, "tickets_p50": v, "tickets_p90": v})


def _earlier(inp: D.DemandInputs, last: date) -> D.DemandInputs:
    """The same platform as it stood at the end of `last` (sales after it not yet made)."""
    return D.DemandInputs(inp.series, inp.sales.filter(pl.col("day") <= last), inp.prices, inp.events)


def test_a_worse_model_is_refused_and_the_previous_forecast_stays(tmp_path, monkeypatch):
    """Two accepted runs leave two versions (the later serving, the earlier retired); a refused model adds a
    `refused` version and neither replaces the served forecast nor the serving version."""
    inp, through = toy_inputs()
    wh = open_warehouse(f"duckdb:///{tmp_path / 'warehouse'}")
    table = default_registry().table("demand_forecast")
    settings = Settings.from_env({"TT_DATA_DIR": str(tmp_path)})

    def build(data, day):
        monkeypatch.setattr(D, "read_inputs", lambda _wh: data)
        ctx = BuildContext(wh, table, now=datetime.combine(day, datetime.min.time(), UTC), settings=settings)
        built = steps.demand_forecast(ctx)
        assert steps.check_forecast(ctx, built).passed, steps.check_forecast(ctx, built).metadata
        for name, df in built.frames.items():
            if name not in built.already_written:
                wh.replace_table(name, df)
        return ctx, built

    first_day = through - timedelta(days=14)
    _, first = build(_earlier(inp, first_day), first_day)
    assert first.extras["gate"]
    ctx, good = build(inp, through)
    assert good.extras["gate"] and steps.check_beats_baselines(ctx, good).passed
    assert list((tmp_path / "models" / "demand").glob("demand-hgbnb-*.joblib"))
    versions = wh.read_table("demand_model_versions").sort("trained_at")
    first_v = first.frames["demand_forecast"]["model_version"][0]
    good_v = good.frames["demand_forecast"]["model_version"][0]
    assert first_v != good_v
    assert versions["model_version"].to_list() == [first_v, good_v]
    assert versions["status"].to_list() == ["retired", "serving"]
    assert versions["in_use"].to_list() == [False, True]
    assert versions["as_of"].to_list() == [first_day, through]
    assert versions["passed_gate"].to_list() == [True, True]
    assert versions.filter(pl.col("window_end") > pl.col("as_of")).height == 0
    metrics = json.loads(versions["metrics"][1])
    assert metrics[M.MODEL_NAME]["mase"] == pytest.approx(versions["gate_value"][1])
    assert set(metrics) >= {M.MODEL_NAME, *M.BASELINES}
    assert wh.read_table("demand_forecast")["model_version"].unique().to_list() == [good_v]

    monkeypatch.setattr(M, "fit", lambda rows, **kw: _Worse())
    bad = steps.demand_forecast(ctx)
    outcome = steps.check_beats_baselines(ctx, bad)
    assert not outcome.passed and outcome.skipped is None  # a refusal, blocking
    assert set(bad.already_written) == {"demand_forecast", "demand_forecast_reasons"}
    assert bad.frames["demand_forecast"].equals(wh.read_table("demand_forecast"))
    perf = bad.frames["demand_model_performance"]
    gate_row = perf.filter((pl.col("metric") == "passed_gate") & pl.col("bucket").is_null())
    assert gate_row["value"].to_list() == [0.0]
    assert set(perf["model"].unique()) == {M.MODEL_NAME, *M.BASELINES}
    assert perf.filter(pl.col("role") == "candidate")["model_version"].str.starts_with("demand-hgbnb-").all()
    # the refusal is on record as a third version; the second stays the one in use
    for name in ("demand_model_performance", "demand_model_versions"):
        wh.replace_table(name, bad.frames[name])
    versions = wh.read_table("demand_model_versions").sort("trained_at", "model_version")
    bad_v = perf.filter(pl.col("role") == "candidate")["model_version"][0]
    assert versions.height == 3 and bad_v not in (first_v, good_v)
    status = dict(zip(versions["model_version"], versions["status"], strict=True))
    assert status == {first_v: "retired", good_v: "serving", bad_v: "refused"}
    assert versions.filter(pl.col("in_use"))["model_version"].to_list() == [good_v]
    assert wh.read_table("demand_forecast")["model_version"].unique().to_list() == [good_v]
    assert steps.check_forecast(ctx, bad).passed
    # a forecast published under another version than the serving one fails the check
    forged = bad.frames["demand_forecast"].with_columns(pl.lit(bad_v).alias("model_version"))
    bad.frames["demand_forecast"] = forged
    outcome = steps.check_forecast(ctx, bad)
    assert not outcome.passed and outcome.metadata["violations_published_not_serving"] == 1


def test_too_little_history_is_a_warning_not_a_crash():
    inp, through = toy_inputs(events=1, days=12)
    with pytest.raises(BT.NotEnoughHistory):
        steps.run(inp, through, 30, NOW)


# -- what-if ------------------------------------------------------------------------------------------
def _forecast(price=4000, left=100, p=(10.0, 20.0, 30.0), days=5, tt="tt1", category="c1", venue="v1"):
    d0 = date(2026, 11, 1)
    return pl.DataFrame(
        {
            "ticket_type_id": [tt] * days,
            "venue_id": [venue] * days,
            "category_id": [category] * days,
            "price_cents": [price] * days,
            "currency": ["USD"] * days,
            "remaining_tickets": [left] * days,
            "day": [d0 + timedelta(days=i) for i in range(days)],
            "tickets_p10": [p[0] / days] * days,
            "tickets_p50": [p[1] / days] * days,
            "tickets_p90": [p[2] / days] * days,
        }
    )


def test_pricing_what_if_follows_the_elasticity():
    fc = _forecast()
    el = pl.concat(
        [
            elasticity_frame("t", "c1", None),
            elasticity_frame("t", "c1", "v1", elasticity=-2.0, ci_low=-2.5, ci_high=-1.5),
        ]
    )
    out = W.pricing(fc, el, {"tt1": 10.0})
    t = out["ticket_types"][0]
    assert t["elasticity"] == -2.0 and t["elasticity_scope"] == "category_venue"  # the venue's own first
    assert t["tickets"]["p50"] == pytest.approx(20 * 1.1**-2.0)
    assert t["tickets"]["p10"] == pytest.approx(10 * 1.1**-2.5)
    assert t["tickets"]["p90"] == pytest.approx(30 * 1.1**-1.5)
    assert t["new_price_cents"] == 4400
    assert t["revenue_cents"]["p50"] == round(20 * 1.1**-2.0 * 4400)
    assert out["total"]["baseline_revenue_cents"] == 20 * 4000
    # a price cut never sells more than what is left
    capped = W.pricing(_forecast(left=21), el, {"tt1": -50.0})["ticket_types"][0]
    assert capped["tickets"]["p90"] == 21
    # insufficient data: the reason, with the count
    weak = elasticity_frame(
        "t", "c1", None, status="insufficient_data", reason="one price change", n_price_changes=1
    )
    with pytest.raises(W.WhatIfUnavailable, match="insufficient_data.*1 price changes"):
        W.pricing(fc, weak, {"tt1": 10.0})
    with pytest.raises(W.WhatIfUnavailable, match="no price elasticity"):
        W.pricing(fc, elasticity_frame("t", "other", None), {"tt1": 10.0})


def test_capacity_what_if_sell_out_probability():
    fc = _forecast(left=20, p=(10.0, 20.0, 30.0))
    out = W.capacity(fc, 0)
    assert out["baseline"]["sell_out_probability"] == pytest.approx(0.5)
    more = W.capacity(fc, 10)  # 30 left: the p90
    assert more["scenario"]["sell_out_probability"] == pytest.approx(0.1)
    assert more["scenario"]["revenue_cents"]["p90"] == 30 * 4000
    assert W.capacity(fc, -20)["scenario"]["sell_out_probability"] == 1.0
    probs = [W.exceed_probability(10, 20, 30, x) for x in range(0, 45)]
    assert (
        all(a >= b for a, b in zip(probs, probs[1:], strict=False)) and probs[0] == 1.0 and probs[-1] == 0.0
    )


def test_materialized_forecast_through_the_jobs(materialized):
    """The predictions_job of the shared fixture wrote the forecast, its reasons and its performance rows,
    and model_performance (customers_job, after it) holds the demand family."""
    wh = open_warehouse(materialized.warehouse_url)
    fc = wh.read_table("demand_forecast")
    rs = wh.read_table("demand_forecast_reasons")
    _valid_forecast(fc, Settings.from_env(materialized.env).demand_forecast_days)
    types = wh.read_table("stg_ticket_types", columns=["id"])["id"].to_list()
    covered = set(fc["ticket_type_id"].to_list()) | set(rs["ticket_type_id"].drop_nulls().to_list())
    assert covered == set(types)
    perf = wh.read_table("model_performance")
    demand = perf.filter(pl.col("model_family") == "demand")
    assert set(demand["model"].unique()) == {M.MODEL_NAME, *M.BASELINES}
    failed = [
        c for c in materialized.failed_checks() if c[0].startswith("demand") or c[0] == "model_performance"
    ]
    assert failed == [], failed


def test_predictions_schedule_requests_one_run_a_day():
    import dagster as dg

    from analytics_pipelines.jobs import predictions_job
    from analytics_pipelines.schedules.predictions import PREDICTIONS_CRON, make_schedules

    (schedule,) = make_schedules(predictions_job)
    assert schedule.cron_schedule == PREDICTIONS_CRON and schedule.job_name == "predictions_job"
    when = datetime(2026, 11, 2, 5, 30, tzinfo=UTC)
    ctx = dg.build_schedule_context(scheduled_execution_time=when)
    (request,) = list(schedule.evaluate_tick(ctx).run_requests)
    assert request.run_key == "predictions:2026-11-02"


def test_version_history_rules():
    """models/versions.py on its own: accepted versions retire the serving one, a refused one leaves it in
    use, re-fitting the same version replaces its row, NaN metrics are stored as null."""
    from analytics_pipelines.models import versions as V

    def rec(prev, version, day, accepted, passed=None):
        return V.record(
            prev,
            family="demand",
            model="m",
            version=version,
            trained_at=datetime.combine(day, datetime.min.time(), UTC),
            as_of=day,
            window=(day - timedelta(days=30), day),
            features=["a", "b"],
            metrics={"m": {"mase": float("nan"), "mae": 1.5}},
            gate_metric="mase",
            gate_value=float("nan"),
            passed_gate=accepted if passed is None else passed,
            accepted=accepted,
        )

    d = date(2026, 10, 1)
    h = rec(None, "v1", d, True)
    h = rec(h, "v2", d + timedelta(days=1), True)
    h = rec(h, "v3", d + timedelta(days=2), False)
    assert h["status"].to_list() == ["retired", "serving", "refused"]
    assert V.serving(h) == "v2" and h["in_use"].to_list() == [False, True, False]
    assert json.loads(h["metrics"][0]) == {"m": {"mae": 1.5, "mase": None}} and h["gate_value"][0] is None
    assert not any(V.problems(h, ["v2"]).values())
    assert V.problems(h, ["v3"])["published_not_serving"] == 1
    again = rec(h, "v2", d + timedelta(days=3), True)  # the same version fitted again: one row, serving
    assert again.height == 3 and V.serving(again) == "v2"
    assert again.filter(pl.col("model_version") == "v2")["as_of"].to_list() == [d + timedelta(days=3)]
    # predictions published before the history existed: their version serves until a better one comes
    old = V.published("demand", "m", "v0", datetime(2026, 9, 1, tzinfo=UTC), date(2026, 9, 1), ["a"], "mase")
    after = rec(old, "v9", d, False)
    assert V.serving(after) == "v0" and after["status"].to_list() == ["serving", "refused"]
    broken = h.with_columns(pl.lit("serving").alias("status"))
    assert V.problems(broken)["more_than_one_serving"] == 2 and V.problems(broken)["in_use_not_serving"] == 2


@pytest.mark.parametrize("alpha", [0.0, 0.05, 0.4, 2.0])
def test_quantile_walk_equals_scipy(alpha):
    """The vectorized pmf walk gives scipy's ppf exactly, over small and large means (the latter via scipy)."""
    rng = np.random.default_rng(3)
    mu = np.concatenate([rng.gamma(0.7, 4.0, 20_000), rng.uniform(0, 2 * M.WALK_MAX_MEAN, 500), [0.0, 1e4]])
    qs = list(M.QUANTILES.values())
    expected = np.column_stack([M.nb_quantile(q, mu, alpha) for q in qs])
    assert np.array_equal(M.nb_quantiles(qs, mu, alpha), expected)
