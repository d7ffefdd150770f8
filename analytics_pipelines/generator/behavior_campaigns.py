"""The campaigns collection (every CampaignType, one per venue, quarter and type) and the daily
campaign_performance documents (impressions, clicks, platform-reported last-touch conversions and revenue,
spend from the touches' costs). 1% of the performance rows carry a negative spend (a bad document)."""

from __future__ import annotations

import numpy as np
import polars as pl

from analytics_pipelines.generator.behavior_params import (
    CAMPAIGN_TYPES,
    CHANNELS,
    QUARTER,
    _n_quarters,
    date,
    object_ids,
    oid,
)
from analytics_pipelines.generator.primitives import _Streams
from analytics_pipelines.generator.reference import DAY
from analytics_pipelines.generator.world import _World

_STATUSES = ("draft", "scheduled", "active", "paused", "completed", "cancelled")


def campaign_docs(
    rs: _Streams,
    w: _World,
    j: dict,
    tp: dict,
    camp_ids: pl.Series,
    venue_ids: pl.Series,
    cpm: np.ndarray,
    cpc: np.ndarray,
    bad: dict,
) -> dict[str, list[pl.DataFrame]]:

    rng = rs("behavior.campaigns")
    paid = tp["campaign"] >= 0
    touches = pl.DataFrame(
        {
            "campaign": tp["campaign"][paid],
            "day": tp["time"][paid] // DAY,
            "impression": tp["action"][paid] == 0,
            "click": tp["action"][paid] == 1,
            "cost": np.where(tp["action"][paid] == 0, cpm[tp["channel"][paid]], cpc[tp["channel"][paid]]),
        }
    )
    # the platform's conversions: the journey's last paid touch gets the order (last-touch reporting)
    last = pl.DataFrame(
        {"journey": tp["journey"][paid], "time": tp["time"][paid], "campaign": tp["campaign"][paid]}
    ).filter(pl.Series(j["converted"][tp["journey"][paid]]))
    last = last.sort("journey", "time").group_by("journey").last()
    jj = last["journey"].to_numpy()
    convs = (
        pl.DataFrame(
            {
                "campaign": last["campaign"].to_numpy(),
                "day": j["time"][jj] // DAY,
                "revenue": w.orders.total[j["order"][jj]],
            }
        )
        .group_by("campaign", "day")
        .agg(conversions=pl.len(), revenue=pl.col("revenue").sum())
    )
    perf = (
        touches.group_by("campaign", "day")
        .agg(impressions=pl.col("impression").sum(), clicks=pl.col("click").sum(), spend=pl.col("cost").sum())
        .join(convs, on=["campaign", "day"], how="full", coalesce=True)
        .with_columns(pl.col("impressions", "clicks", "spend", "conversions", "revenue").fill_null(0))
        .sort("campaign", "day")
    )
    n = perf.height
    negative = (rng.random(n) < 0.01) & (perf["spend"].to_numpy() >= 1.0)  # a refund booked as spend
    spend = np.round(perf["spend"].to_numpy() / 100.0, 2) * np.where(negative, -1, 1)
    day_s = perf["day"].to_numpy() * DAY
    write = day_s + DAY + 2 * 3600 + rng.integers(0, 600, n)
    camp = perf["campaign"].to_numpy()
    n_q = _n_quarters(w)
    venue_of = camp // (n_q * len(CAMPAIGN_TYPES))
    metrics = pl.struct(
        pl.lit(perf["impressions"].cast(pl.Int64)).alias("impressions"),
        pl.lit(perf["clicks"].cast(pl.Int64)).alias("clicks"),
        pl.lit(perf["conversions"].cast(pl.Int64)).alias("conversions"),
        pl.lit(pl.Series(spend)).alias("spend"),
        pl.lit(pl.Series(np.round(perf["revenue"].to_numpy() / 100.0, 2))).alias("revenue"),
    )
    performance = pl.select(
        _id=oid(object_ids(rng, write)),
        venue_id=pl.lit(venue_ids.gather(venue_of)),
        campaign_id=pl.lit(camp_ids.gather(camp)),
        date=date(day_s),
        metrics=metrics,
        _write=pl.lit(pl.Series(write)),
    )
    bad["negative_spend"] = int(negative.sum())

    # campaigns: every (venue, quarter, type)
    n_c = len(camp_ids)
    idx = np.arange(n_c)
    ctype = idx % len(CAMPAIGN_TYPES)
    quarter = (idx // len(CAMPAIGN_TYPES)) % n_q
    venue = idx // (len(CAMPAIGN_TYPES) * n_q)
    start = w.clock.launch + quarter * QUARTER
    end = start + QUARTER - DAY
    total_spend = np.zeros(n_c)
    np.add.at(total_spend, camp, np.maximum(spend, 0))
    budget = np.where(
        total_spend > 0, np.round(total_spend * rng.uniform(1.0, 1.5, n_c)), rng.integers(100, 2000, n_c)
    )
    status = np.where(end < w.clock.now, 4, np.where(start <= w.clock.now, 2, 1))
    status = np.where((status == 4) & (rng.random(n_c) < 0.03), 5, status)
    status = np.where((status == 2) & (rng.random(n_c) < 0.05), 3, status)
    status = np.where((status == 1) & (rng.random(n_c) < 0.3), 0, status)
    chan_of_type = {
        "email": ["email"],
        "sms": ["sms"],
        "push": ["push"],
        "social": ["social"],
        "display": ["display"],
        "search": ["paid_search"],
        "multi_channel": ["email", "social", "display"],
    }
    channels = pl.Series([chan_of_type[t] for t in CAMPAIGN_TYPES], dtype=pl.List(pl.String)).gather(ctype)
    assert set(CHANNELS) >= {c for cs in chan_of_type.values() for c in cs}
    names = pl.Series(list(CAMPAIGN_TYPES)).gather(ctype) + " Q" + pl.Series(quarter + 1).cast(pl.String)
    created = np.maximum(start - 14 * DAY, w.clock.launch - 30 * DAY)
    campaigns = pl.select(
        _id=oid(object_ids(rng, created)),
        campaign_id=pl.lit(camp_ids),
        venueId=pl.lit(venue_ids.gather(venue)),
        name=pl.lit(names),
        type=pl.lit(pl.Series(list(CAMPAIGN_TYPES)).gather(ctype)),
        status=pl.lit(pl.Series(_STATUSES).gather(status)),
        budget=pl.lit(pl.Series(budget.astype(float))),
        channels=pl.lit(channels),
        start_date=date(start),
        end_date=date(end),
        _write=pl.lit(pl.Series(created)),
    )
    return {"campaigns": [campaigns], "campaign_performance": [performance]}
