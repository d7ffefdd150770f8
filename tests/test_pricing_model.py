"""The pricing model on synthetic frames: the estimator recovers a known elasticity (and its interval covers
it), the evidence rule, the daily panel's reason rows on bad input, the recommendations' guard rails."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from analytics_pipelines.pricing import evaluation as ev
from analytics_pipelines.pricing.estimator import fit_ppml
from analytics_pipelines.pricing.model import estimate, warm_slopes
from analytics_pipelines.pricing.panel import daily_panel
from analytics_pipelines.pricing.recommend import GuardRails, match_applied, recommend

NOW = datetime(2026, 11, 1, tzinfo=UTC)
TRUE = {"cat-a": -0.6, "cat-b": -1.4, "cat-c": -2.2}


def synthetic_panel(seed: int, types_per_cat: int = 120, days: int = 50) -> pl.DataFrame:
    """A panel in daily_panel's shape whose demand follows the model: type level x a sales curve x weekday x
    (price / first price) ^ the category's elasticity, sold in baskets of 1-3 (overdispersed)."""
    rng = np.random.default_rng(seed)
    cats = np.repeat(list(TRUE), types_per_cat)
    n = cats.size
    level = rng.lognormal(0.0, 0.7, n) * 1.5
    p0 = rng.integers(20, 120, n) * 100
    change_day = rng.integers(10, days - 10, n)
    factor = rng.choice([0.8, 0.9, 1.1, 1.25], n)
    changes = rng.random(n) < 0.6
    rows = []
    t = np.arange(days)
    for i in range(n):
        price = np.where(changes[i] & (t >= change_day[i]), np.round(p0[i] * factor[i]), p0[i]).astype(
            np.int64
        )
        curve = 0.4 + 1.6 * ((t * 10 // days) / 10) ** 3  # a step per curve_bin: the controls can express it
        weekday = (t + i) % 7
        mu = level[i] * curve * (1 + 0.3 * (weekday >= 5)) * (price / p0[i]) ** TRUE[cats[i]]
        baskets = rng.poisson(mu / 2)
        tickets = np.array([rng.integers(1, 4, k).sum() if k else 0 for k in baskets])
        rows.append(
            pl.DataFrame(
                {
                    "tenant_id": "t1",
                    "venue_id": f"v{i % 3}",
                    "event_id": f"e{i // 4}-{cats[i]}",
                    "category_id": cats[i],
                    "ticket_type_id": f"tt{i}",
                    "tier": "general",
                    "day": [date(2026, 1, 1) + timedelta(days=int(d)) for d in t],
                    "tickets": tickets,
                    "price_cents": price,
                    "price_change": np.r_[0, (np.diff(price) != 0).astype(np.int64)],
                    "days_to_event": days - t,
                    "dte_bin": np.minimum((days - t) // 7, 7),
                    "weekday": weekday,
                    "curve_bin": t * 10 // days,
                }
            )
        )
    return pl.concat(rows)


def test_ppml_recovers_a_known_coefficient_with_fixed_effects():
    rng = np.random.default_rng(3)
    n_types, days = 300, 40
    ty = np.repeat(np.arange(n_types), days)
    x = rng.normal(0, 0.3, ty.size)
    y = rng.poisson(np.exp(rng.normal(0, 1, n_types)[ty] - 1.3 * x))
    fit = fit_ppml(y, x[:, None], ty, ty // 3)
    lo, hi = fit.ci()
    assert fit.converged and abs(fit.beta[0] + 1.3) < 0.15 and lo[0] <= -1.3 <= hi[0]


@pytest.mark.parametrize("seed", [1, 2])
def test_estimator_recovers_planted_elasticities_and_the_interval_covers_them(seed):
    panel = synthetic_panel(seed)
    table = estimate(panel, "category", 5, "test", NOW).table
    assert table["status"].to_list() == ["estimated"] * 3
    for row in table.iter_rows(named=True):
        truth = TRUE[row["category"]]
        assert row["ci_low"] <= truth <= row["ci_high"], row
        assert abs(row["elasticity"] - truth) < 0.5, row
        assert row["ci_high"] - row["ci_low"] < 1.5  # informative, not a wide net
    # the elastic and the inelastic category are told apart
    e = dict(zip(table["category"], table["elasticity"], strict=True))
    assert e["cat-a"] > e["cat-b"] > e["cat-c"]


def test_insufficient_evidence_says_so_with_the_count():
    panel = synthetic_panel(1, types_per_cat=30)
    # category a keeps its price changes in one event only; b keeps one change; c none
    one_event = (pl.col("category_id") == "cat-a") & (pl.col("event_id") != "e0-cat-a")
    first_b = panel.filter((pl.col("category_id") == "cat-b") & (pl.col("price_change") == 1))[
        "ticket_type_id"
    ][0]
    other_b = (pl.col("category_id") == "cat-b") & (pl.col("ticket_type_id") != first_b)
    keep = one_event | other_b | (pl.col("category_id") == "cat-c")
    flat = panel.with_columns(
        pl.when(keep)
        .then(pl.col("price_cents").first().over("ticket_type_id"))
        .otherwise(pl.col("price_cents"))
        .alias("price_cents"),
        pl.when(keep).then(0).otherwise(pl.col("price_change")).alias("price_change"),
    )
    table = estimate(flat, "category", 2, "test", NOW).table.sort("category")
    assert table["status"].to_list() == ["insufficient_data"] * 3
    assert table["elasticity"].null_count() == 3
    reasons = dict(zip(table["category"], table["reason"], strict=True))
    assert "all in one event" in reasons["cat-a"]
    assert reasons["cat-b"].startswith("insufficient data: 1 price changes observed, at least 2")
    assert reasons["cat-c"].startswith("insufficient data: 0 price changes")


def test_holdout_evaluation_beats_the_fixed_baseline_when_demand_is_inelastic():
    panel = synthetic_panel(4)
    kw = dict(min_changes=5, version="test", trained_at=NOW, names=None)
    perf = ev.cross_fit(panel, estimate(panel, "category", **kw), kw, date(2026, 1, 1), date(2026, 2, 19))
    ok, verdict = ev.beats_baseline(perf)
    assert verdict["changes"] > 50 and ok, verdict
    assert verdict["model_wape"] < verdict["baseline_wape"]
    assert perf["value"].is_finite().all()
    # every event is held out once: each change predicted by a fit that never saw its event
    folds = ev.event_folds(panel["event_id"])
    assert folds.n_unique() == ev.FOLDS
    assert (
        panel.with_columns(folds.alias("f")).group_by("event_id").agg(pl.col("f").n_unique())["f"].max() == 1
    )


def test_a_warm_started_fit_reaches_the_cold_fit():
    panel = synthetic_panel(2, types_per_cat=60)
    cold = estimate(panel, "category", 5, "test", NOW)
    part = panel.filter(pl.col("ticket_type_id").str.slice(2).cast(pl.Int64) % 5 != 0)
    a = estimate(part, "category", 5, "test", NOW).table
    b = estimate(part, "category", 5, "test", NOW, warm=cold).table
    assert np.allclose(a["elasticity"], b["elasticity"], atol=1e-5)
    assert np.allclose(a["std_error"], b["std_error"], atol=1e-5)


def test_a_fold_fit_on_the_whole_panels_rows_equals_a_refit_of_the_fold():
    """cross_fit fits each fold on a row subset of the whole panel's category fit (fold_fit) instead of
    estimating the fold's training panel afresh: the same eligible groups, elasticities, standard errors
    and control coefficients. The panel has a category eligible in the whole panel but not in every fold
    (its changes in two events, in different folds: its changed types leave those folds' fits) and one
    never eligible (too few changes: its changed types never enter, its one-price types do)."""
    panel = synthetic_panel(2, types_per_cat=60)
    c = (
        panel.filter(pl.col("category_id") == "cat-c")
        .group_by("event_id")
        .agg(pl.col("price_change").sum().alias("n"))
        .sort("n", "event_id", descending=[True, False])
    )
    c = c.with_columns(ev.event_folds(c["event_id"]).alias("fold"))
    two = [c["event_id"][0], c.filter(pl.col("fold") != c["fold"][0])["event_id"][0]]
    b_changed = panel.filter((pl.col("category_id") == "cat-b") & (pl.col("price_change") == 1))
    flat = ((pl.col("category_id") == "cat-c") & ~pl.col("event_id").is_in(list(two))) | (
        (pl.col("category_id") == "cat-b")
        & ~pl.col("ticket_type_id").is_in(b_changed["ticket_type_id"][:3].to_list())
    )
    panel = panel.with_columns(
        pl.when(flat).then(pl.col("price_cents").first().over("ticket_type_id")).otherwise("price_cents"),
        pl.when(flat).then(0).otherwise("price_change").alias("price_change"),
    ).with_columns(pl.col("ticket_type_id", "event_id").cast(pl.Categorical))
    kw = dict(min_changes=4, version="test", trained_at=NOW, names=None)
    full = estimate(panel, "category", **kw)
    assert full.table.filter(pl.col("status") == "estimated")["category"].sort().to_list() == [
        "cat-a",
        "cat-c",
    ]
    folds = ev.event_folds(panel["event_id"])
    row_fold = ev.event_folds(full.rows.event_id).to_numpy()
    init = warm_slopes(full.rows.eligible, full, "category")
    c_left_out = 0
    for k in range(ev.FOLDS):
        refit = estimate(panel.filter(folds != k), "category", warm=full, **kw)
        shared = ev.fold_fit(full.rows, row_fold == k, kw["min_changes"], init, full.deltas)
        a = refit.table.filter(pl.col("status") == "estimated").sort("category")
        b = shared.table.filter(pl.col("status") == "estimated").sort("category")
        assert a["category"].to_list() == b["category"].to_list()
        assert np.allclose(a["elasticity"], b["elasticity"], rtol=0, atol=1e-9)
        assert np.allclose(a["std_error"], b["std_error"], rtol=0, atol=1e-9)
        assert len(refit.deltas) == len(shared.deltas) == 3
        for d, e in zip(refit.deltas, shared.deltas, strict=True):
            assert d.shape == e.shape and np.allclose(d, e, rtol=0, atol=1e-9)
        c_left_out += "cat-c" not in b["category"].to_list()
    assert c_left_out >= 2  # the premise: cat-c is not eligible in the folds of its two events


def _change_windows_by_joins(panel: pl.DataFrame, deltas: list, window: int = ev.WINDOW) -> pl.DataFrame:
    """The former per-fold change windows (polars joins of every change with its type's days): the
    reference ChangeWindows must reproduce."""
    from analytics_pipelines.pricing.model import control_effect

    p = panel.sort("ticket_type_id", "day")
    p = p.with_columns(
        pl.Series("w", np.exp(control_effect(p, deltas))),
        pl.col("price_change").cum_sum().over("ticket_type_id").alias("spell"),
        pl.int_range(pl.len()).over("ticket_type_id").alias("pos"),
    )
    changes = p.filter(pl.col("price_change") == 1).select(
        "ticket_type_id", "category_id", "tenant_id", pl.col("spell"), pl.col("pos").alias("at")
    )
    j = p.select("ticket_type_id", "pos", "spell", "tickets", "w", "price_cents").join(
        changes, on="ticket_type_id", how="inner", suffix="_c"
    )
    pre = j.filter((pl.col("spell") == pl.col("spell_c") - 1) & (pl.col("pos") >= pl.col("at") - window))
    post = j.filter((pl.col("spell") == pl.col("spell_c")) & (pl.col("pos") < pl.col("at") + window))
    agg = [
        pl.col("tickets").sum().alias("tickets"),
        pl.col("w").sum().alias("w"),
        pl.col("price_cents").first().alias("price"),
        pl.len().alias("days"),
    ]
    k = ["tenant_id", "category_id", "ticket_type_id", "at"]
    return (
        pre.group_by(k)
        .agg(agg)
        .join(post.group_by(k).agg(agg), on=k, suffix="_post")
        .filter((pl.col("days") >= 3) & (pl.col("days_post") >= 3))
        .filter((pl.col("w") > 1e-6) & (pl.col("w_post") > 1e-6))
    )


def test_change_windows_located_once_equal_the_per_fold_joins():
    """cross_fit locates every change's windows once (runs of the sorted panel) and sums each fold's
    controls over them: the same windows, tickets, prices, days and expected demand as the joins per fold,
    with several changes per type (short spells between them), a window cut at 28 days and an event
    without a category (no window, as before)."""
    panel = synthetic_panel(3, types_per_cat=20, days=90)
    n = pl.int_range(pl.len()).over("ticket_type_id")
    i = pl.col("ticket_type_id").str.slice(2).cast(pl.Int64)
    price = (
        pl.when((i % 3 == 0) & (n >= 70))
        .then(pl.col("price_cents") * 11 // 10)
        .when((i % 4 == 0) & (n >= 45) & (n < 47))
        .then(pl.col("price_cents") + 100)
        .otherwise(pl.col("price_cents"))
    )
    panel = (
        panel.with_columns(price.alias("price_cents"))
        .with_columns(
            (pl.col("price_cents") != pl.col("price_cents").shift(1).over("ticket_type_id"))
            .fill_null(False)
            .cast(pl.Int64)
            .alias("price_change"),
            pl.when(pl.col("event_id") == "e0-cat-a")
            .then(None)
            .otherwise("category_id")
            .alias("category_id"),
        )
        .sample(fraction=1.0, shuffle=True, seed=1)  # any row order
    )
    assert panel.group_by("ticket_type_id").agg(pl.col("price_change").sum())["price_change"].max() >= 3
    deltas = estimate(panel, "category", 5, "test", NOW).deltas
    folds = ev.event_folds(panel["event_id"])
    located = ev.ChangeWindows(panel)
    cols = ["at", "tickets", "price", "days", "tickets_post", "price_post", "days_post"]
    total = 0
    for k in range(ev.FOLDS):
        for d in (deltas, []):
            a = _change_windows_by_joins(panel.filter(folds == k), d)
            b = located.for_fold(k, d)
            a, b = (
                f.with_columns(pl.col("ticket_type_id").cast(pl.String), pl.col(cols).cast(pl.Int64)).sort(
                    "ticket_type_id", "at"
                )
                for f in (a, b)
            )
            assert a.select("ticket_type_id", *cols).equals(b.select("ticket_type_id", *cols))
            assert np.allclose(a["w"], b["w"], rtol=1e-12, atol=0)
            assert np.allclose(a["w_post"], b["w_post"], rtol=1e-12, atol=0)
            total += a.height
    # the premises: windows in the folds, types with two windows, windows cut at 28 days and shorter ones
    assert total == 2 * located.frame.height >= 2 * 40
    assert located.frame.group_by("ticket_type_id").len()["len"].max() >= 2
    assert located.frame["days"].max() == ev.WINDOW and located.frame["days_post"].min() < ev.WINDOW


def test_on_generated_small_data_with_every_planting_the_model_beats_the_fixed_elasticity():
    """Issue 16's gate on generator data (`small`, seed 42: the pricing truth plus the on-sale bursts, KPI
    anomalies and fraud plantings of issue 17), the pure functions over the source as staging holds it
    clean: the cross-fitted holdout's WAPE is below the seed's fixed -1.5 over hundreds of changes."""
    from analytics_pipelines.generator import synth

    x = ev.inputs_from_source(synth.generate_tables("small", seed=42))
    panel, _ = daily_panel(
        x["types"], x["events"], x["sales"], x["prices"], x["currencies"], x["sales"]["day"].max()
    )
    kw = dict(min_changes=5, version="test", trained_at=NOW, names=None)
    perf = ev.cross_fit(panel, estimate(panel, "category", **kw), kw, None, None)
    ok, verdict = ev.beats_baseline(perf)
    assert verdict["changes"] >= 300, verdict
    assert ok and verdict["model_wape"] < verdict["baseline_wape"], verdict


# -- the daily panel's reason rows --------------------------------------------------------------------
def _ts(d: str) -> datetime:
    return datetime.fromisoformat(d).replace(tzinfo=UTC)


def bad_input_frames():
    types = pl.DataFrame(
        {
            "id": ["ok", "free", "zero", "cancel", "eur", "flat"],
            "event_id": ["e1", "e1", "e1", "e2", "e1", "e1"],
            "category": ["general"] * 6,
            "price_cents": [2000, 0, 1500, 3000, 2500, 1000],
            "currency": ["USD", "USD", "USD", "USD", "EUR", "USD"],
            "quantity": [1000] * 6,
            "sale_start": [_ts("2026-09-01")] * 6,
            "sale_end": [_ts("2026-10-25")] * 6,
            "is_active": [True] * 6,
        }
    )
    events = pl.DataFrame(
        {
            "event_id": ["e1", "e2"],
            "tenant_id": ["t1", "t1"],
            "venue_id": ["v1", "v1"],
            "category_id": ["c1", "c1"],
            "starts_at": [_ts("2026-10-26"), _ts("2026-10-26")],
            "cancelled_or_postponed": [False, True],
        }
    )
    prices = pl.DataFrame(
        {
            "ticket_type_id": ["ok", "ok", "free", "zero", "zero", "cancel", "eur", "flat"],
            "price_cents": [1800, 2000, 0, 1500, 0, 3000, 2500, 1000],
            "valid_from": [
                _ts(d)
                for d in (
                    "2026-08-01",
                    "2026-10-01 12:00",
                    "2026-08-01",
                    "2026-08-01",
                    "2026-10-10 09:00",
                    "2026-08-01",
                    "2026-08-01",
                    "2026-08-01",
                )
            ],
            "source": [
                "initial",
                "price_history",
                "initial",
                "initial",
                "price_history",
                "initial",
                "initial",
                "initial",
            ],
        }
    )
    days = pl.date_range(date(2026, 9, 2), date(2026, 10, 24), eager=True)
    sales = pl.concat(
        [
            pl.DataFrame({"ticket_type_id": t, "day": days, "tickets": 2})
            for t in ("ok", "zero", "eur", "flat")
        ]
    ).with_columns(pl.col("tickets").cast(pl.Int64))
    currencies = pl.DataFrame({"venue_id": ["v1"], "venue_currency": ["USD"]})
    return types, events, sales, prices, currencies


def test_bad_input_gets_reason_rows_never_a_crash_or_nan():
    types, events, sales, prices, currencies = bad_input_frames()
    panel, excl = daily_panel(types, events, sales, prices, currencies, date(2026, 11, 1))
    reasons = {(r["ticket_type_id"], r["reason"]) for r in excl.iter_rows(named=True)}
    assert ("free", "free_ticket") in reasons
    assert ("cancel", "event_cancelled_or_postponed") in reasons
    assert ("eur", "currency_differs_from_venue") in reasons
    assert ("zero", "price_change_to_zero") in reasons
    assert ("flat", "one_price") in reasons
    assert set(panel["ticket_type_id"].unique()) == {"ok", "zero", "flat"}
    assert (panel["price_cents"] > 0).all()
    assert not panel.filter(pl.col("ticket_type_id") == "zero")["day"].is_in([date(2026, 10, 10)]).any()
    assert panel.filter(pl.col("ticket_type_id") == "ok")["price_change"].sum() == 1
    assert excl["reason"].null_count() == 0
    table = estimate(panel, "category", 5, "test", NOW).table
    assert table["status"].to_list() == ["insufficient_data"]
    assert not table.select(pl.col(pl.Float64).is_nan().any()).row(0)[0] if table.height else True


# -- recommendations ------------------------------------------------------------------------------------
def _elasticity(e: float, lo: float, hi: float) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "tenant_id": ["t1"],
            "scope": ["category"],
            "category": ["c1"],
            "venue_id": pl.Series([None], dtype=pl.String),
            "elasticity": [e],
            "ci_low": [lo],
            "ci_high": [hi],
            "status": ["estimated"],
            "model_version": ["m/1"],
        }
    )


def _rec_inputs(price: int = 2400, face: int = 2000, doors: str = "2026-11-20"):
    types = pl.DataFrame(
        {
            "id": ["a"],
            "event_id": ["e1"],
            "category": ["general"],
            "price_cents": [price],
            "currency": ["USD"],
            "quantity": [500],
            "sale_start": [_ts("2026-09-01")],
            "sale_end": [_ts("2026-11-19")],
            "is_active": [True],
        }
    )
    events = pl.DataFrame(
        {
            "event_id": ["e1"],
            "tenant_id": ["t1"],
            "venue_id": ["v1"],
            "category_id": ["c1"],
            "starts_at": [_ts("2026-11-20 20:00")],
            "cancelled_or_postponed": [False],
        }
    )
    doors_df = pl.DataFrame({"event_id": ["e1"], "doors_open_at": [_ts(doors)]})
    prices = pl.DataFrame(
        {
            "ticket_type_id": ["a", "a"],
            "price_cents": [face, price],
            "valid_from": [_ts("2026-08-01"), _ts("2026-10-01")],
            "source": ["initial", "price_history"],
        }
    )
    days = pl.date_range(date(2026, 10, 1), date(2026, 10, 31), eager=True)
    sales = pl.DataFrame({"ticket_type_id": "a", "day": days, "tickets": 5}).with_columns(
        pl.col("tickets").cast(pl.Int64)
    )
    currencies = pl.DataFrame({"venue_id": ["v1"], "venue_currency": ["USD"]})
    return types, events, doors_df, prices, sales, currencies


def _one(elasticity, now=NOW, **kw):
    t, e, d, p, s, c = _rec_inputs(**kw)
    return recommend(t, e, d, p, s, elasticity, c, now, GuardRails()).row(0, named=True)


def test_elastic_demand_lowers_the_price_within_the_daily_step_and_never_below_face_value():
    r = _one(_elasticity(-2.0, -2.6, -1.4))
    assert r["status"] == "recommended" and r["recommended_price_cents"] == 2160  # -10 %
    assert (
        r["expected_revenue_change_low_cents"]
        <= r["expected_revenue_change_cents"]
        <= r["expected_revenue_change_high_cents"]
    )
    assert r["expected_revenue_change_cents"] > 0
    assert r["confidence"] == pytest.approx(1 - 1.2 / 4)
    near_face = _one(_elasticity(-2.0, -2.6, -1.4), price=2100)
    assert near_face["recommended_price_cents"] == 2000  # the face value is the floor
    at_face = _one(_elasticity(-2.0, -2.6, -1.4), price=2000)
    assert at_face["status"] == "no_change" and "guard rail" in at_face["reason"]


def test_inelastic_demand_raises_the_price_up_to_the_ceiling():
    r = _one(_elasticity(-0.5, -0.8, -0.2))
    assert r["status"] == "recommended" and r["recommended_price_cents"] == 2640
    capped = _one(_elasticity(-0.5, -0.8, -0.2), price=3900)
    assert capped["recommended_price_cents"] == 4000  # 2 x face value
    assert '"model_version":"m/1"' in r["reasoning"] and '"elasticity":-0.5' in r["reasoning"]


def test_no_direction_no_doors_no_estimate_mean_no_change_with_a_reason():
    wide = _one(_elasticity(-1.1, -1.9, -0.3))
    assert wide["status"] == "no_change" and "contains -1" in wide["reason"]
    doors = _one(
        _elasticity(-2.0, -2.6, -1.4), now=datetime(2026, 11, 18, 12, tzinfo=UTC), doors="2026-11-18"
    )
    assert doors["status"] == "no_change" and "doors open" in doors["reason"]
    none = _one(_elasticity(-2.0, -2.6, -1.4).with_columns(pl.lit("insufficient_data").alias("status")))
    assert none["status"] == "no_change" and "insufficient" in none["reason"] and none["confidence"] == 0.0


def test_a_platform_change_after_the_approval_to_the_same_price_is_linked():
    approved = pl.DataFrame(
        {
            "id": [1, 2],
            "ticket_type_id": ["a", "b"],
            "recommended_price_cents": [2160, 900],
            "decided_at": [_ts("2026-11-01 10:00"), _ts("2026-11-01 10:00")],
        }
    )
    platform = pl.DataFrame(
        {
            "id": ["p0", "p1", "p2"],
            "ticket_type_id": ["a", "a", "b"],
            "new_price_cents": [2160, 2160, 950],
            "changed_at": [_ts("2026-10-31"), _ts("2026-11-01 11:00"), _ts("2026-11-02")],
        }
    )
    links = match_applied(approved, platform)
    assert links.rows() == [(1, _ts("2026-11-01 11:00"), "p1")]


def test_a_price_below_face_value_is_never_recommended_and_the_daily_step_still_binds():
    # inelastic, the platform discounted below face value: +10 % does not reach it -> no recommendation
    far = _one(_elasticity(-0.5, -0.8, -0.2), price=1500, face=2000)
    assert far["status"] == "no_change" and "outside the face-value rails" in far["reason"]
    # close enough: one step brings it to the face value at most
    near = _one(_elasticity(-0.5, -0.8, -0.2), price=1900, face=2000)
    assert near["status"] == "recommended" and near["recommended_price_cents"] == 2090
    # elastic and below face value: the rails would push it up, against the revenue direction -> no change
    elastic = _one(_elasticity(-2.0, -2.6, -1.4), price=1500, face=2000)
    assert elastic["status"] == "no_change"
