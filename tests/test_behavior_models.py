"""The data-driven attribution model against the planted truth (generated `small` data through the real
file ingestion): it recovers each channel's incremental effect and ranks the channels in the planted order,
the seed's fixed-weight model does not; the marketing what-if built on it predicts the planted effect of
removing a channel. (The `medium` figure: benchmarks/behavior.py, docs/behavior.md.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from analytics_pipelines.behavior.attribution import assign, attribute
from analytics_pipelines.behavior.ingest import ingest
from analytics_pipelines.behavior.source import FileSource
from analytics_pipelines.behavior.whatif import marketing_whatif
from analytics_pipelines.generator.behavior import _journeys, _since_previous, _touches
from analytics_pipelines.generator.behavior_docs import write_files
from analytics_pipelines.generator.behavior_params import CHANNELS
from analytics_pipelines.generator.primitives import _Streams
from analytics_pipelines.generator.reference import DAY, DEFAULT_AS_OF, SCALES
from analytics_pipelines.generator.synth import _build


def _day(seconds: int) -> str:
    return pl.select(pl.from_epoch(pl.lit(seconds), "s").dt.date()).item().isoformat()


def fitted_effects(scale: str, tmp: Path) -> tuple[pl.DataFrame, dict, pl.DataFrame]:
    w = _build(SCALES[scale], 42, DEFAULT_AS_OF)
    write_files({"campaign_touchpoints": w.behavior["campaign_touchpoints"]}, tmp)
    venues = pl.DataFrame(
        {
            "id": w.venues.ids.take(np.arange(len(w.venues.ids))),
            "tenant_id": w.tenant_ids.take(w.venues.tenant),
        }
    )
    first, last = _day(w.clock.launch), _day(w.clock.now - DAY)
    tp = ingest(FileSource(tmp), first, last, venues, 720, kinds=("touchpoints",))["raw_campaign_touchpoints"]
    o = w.orders
    paid = np.isin(o.status, (2, 3, 6))
    t = np.where(o.confirmed >= 0, o.confirmed, o.created)[paid]
    orders = pl.DataFrame(
        {
            "order_id": o.ids.take(np.flatnonzero(paid)),
            "day": pl.from_epoch(pl.Series(t), "s").dt.date(),
            "event_id": w.events.ids.take(o.event[paid]),
            "revenue_cents": o.total[paid],
        }
    )
    out = attribute(tp, orders, last, last, 30, training_days=SCALES[scale].history_days)
    return out["attribution_channel_effects"], w.truth["behavior"], out["campaign_attribution"]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return fitted_effects("small", tmp_path_factory.mktemp("small") / "mongo")


def test_data_driven_model_ranks_channels_in_the_planted_order(small):
    effects, truth, _ = small
    planted = truth["planted_order"]
    for tenant, rows in effects.group_by("tenant_id"):
        rows = rows.sort("effect_rank")
        assert rows["channel"].to_list() == planted, tenant
        # and the effects themselves are close to the planted ones
        est = dict(zip(rows["channel"], rows["incremental_effect"], strict=True))
        for c, true in truth["incremental_effect"].items():
            assert est[c] == pytest.approx(true, abs=0.02), (tenant, c)
        seed = rows.sort("seed_rank")["channel"].to_list()
        assert seed != planted  # the seed's fixed weights follow frequency, not effect
        rho = np.corrcoef(rows.sort("channel")["effect_rank"], rows.sort("channel")["seed_rank"])[0, 1]
        assert rho < 0.5


def test_marketing_whatif_predicts_the_planted_effect(small):
    effects, truth, attribution = small
    tenant = (
        effects.group_by("tenant_id")
        .agg(pl.col("exposed_paths").sum())
        .sort("exposed_paths")["tenant_id"][-1]
    )
    eff = effects.filter(pl.col("tenant_id") == tenant)
    days = (eff["training_last"][0] - eff["training_first"][0]).days + 1
    aov = int(attribution.group_by("order_id").agg(pl.col("revenue_cents").first())["revenue_cents"].mean())
    none = marketing_whatif(eff, {}, aov, period_days=days)
    assert none["extra_conversions"].abs().max() == 0
    # cutting email entirely loses (planted effect x exposed journeys) conversions, within the noise
    cut = marketing_whatif(eff, {"email": -1.0}, aov, period_days=days)
    email = cut.filter(pl.col("channel") == "email").row(0, named=True)
    expected = -truth["incremental_effect"]["email"] * email["exposures"]
    assert email["extra_conversions"] == pytest.approx(expected, rel=0.1)
    assert (
        cut.filter(pl.col("channel") == "total")["extra_revenue_cents"].item() == email["extra_revenue_cents"]
    )
    up = marketing_whatif(eff, {"email": 0.5, "display": 0.5}, aov, period_days=30)
    rows = {r["channel"]: r for r in up.iter_rows(named=True)}
    assert rows["email"]["extra_conversions"] > 3 * rows["display"]["extra_conversions"] > 0
    with pytest.raises(ValueError, match="unknown channel"):
        marketing_whatif(eff, {"tv": 0.1}, aov)
    with pytest.raises(ValueError):
        marketing_whatif(eff, {"email": -1.5}, aov)


def test_planted_journeys_are_the_paths_attribution_sees():
    """Every converting journey's planted channel set is exactly the path attribution builds from its touches
    (a customer's touches before an earlier conversion at the same venue would go to that one, merging two
    journeys: the bias that once pushed every estimated effect up and the baseline down)."""
    w = _build(SCALES["tiny"], 42, DEFAULT_AS_OF)
    rs = _Streams(42)  # the generator's named streams: the same draws as _build's
    j = _journeys(rs, w)
    tp = _touches(rs, w, j)
    conv = np.flatnonzero(j["converted"])
    gap = _since_previous(
        w, j["order"][conv], np.where(w.orders.confirmed >= 0, w.orders.confirmed, w.orders.created)
    )
    assert (gap < 14 * DAY).sum() > 0  # the world has repeat buyers at a venue within a journey's span
    who = np.where(j["converted"], j["user"], -1 - np.arange(len(j["order"])))
    frame = pl.DataFrame(
        {
            "customer_hash": who[tp["journey"]].astype(str),
            "venue_id": j["venue"][tp["journey"]].astype(str),
            "tenant_id": j["tenant"][tp["journey"]].astype(str),
            "event_time": pl.from_epoch(pl.Series(tp["time"]), "s"),
            "action": pl.Series(["impression", "click", "visit", "conversion"]).gather(tp["action"]),
            "channel": pl.Series([*CHANNELS, "direct"]).gather(np.where(tp["channel"] < 0, 8, tp["channel"])),
            "doc_id": np.arange(len(tp["time"])).astype(str),
            "order_id": np.where(tp["action"] == 3, j["order"][tp["journey"]], -1).astype(str),
        }
    )
    path, conversions, _ = assign(frame, 30)
    seen = conversions.select("conv_id", "order_id").join(
        path.group_by("conv_id").agg(pl.col("channel").unique().sort()), on="conv_id", how="left"
    )
    seen = dict(zip(seen["order_id"].cast(pl.Int64), seen["channel"].fill_null([]).to_list(), strict=True))
    same_second = set(j["order"][conv][gap == 0].tolist())  # indistinguishable: one conversion takes both
    wrong = [
        o
        for o, x in zip(j["order"][conv], j["x"][conv], strict=True)
        if o not in same_second and seen[o] != sorted(CHANNELS[i] for i in np.flatnonzero(x))
    ]
    assert len(conv) > 500 and not wrong, f"{len(wrong)} of {len(conv)} journeys"
