"""Channel performance and campaign ROI with real spend (campaign_performance), attributed conversions and
revenue per model (campaign_attribution). ROI = (revenue - spend) / spend x 100, CPA = spend / conversions,
ROAS = revenue / spend; a zero (or missing) spend or zero conversions gives NULL, never a division error.
Spend of a multi_channel campaign is split evenly across its channels (the remainder cent to the first)."""

from __future__ import annotations

import polars as pl


def _ratios(rev: str, spend: str, conv: str) -> list[pl.Expr]:
    s, r, c = pl.col(spend), pl.col(rev), pl.col(conv)
    return [
        pl.when(s > 0).then((r - s) / s * 100.0).alias("roi_pct"),
        pl.when((s > 0) & (c > 0)).then(s / c).alias("cpa_cents"),
        pl.when(s > 0).then(r / s).alias("roas"),
    ]


def campaign_tables(
    attribution: pl.DataFrame, performance: pl.DataFrame, campaigns: pl.DataFrame
) -> dict[str, pl.DataFrame]:
    perf = performance.group_by("tenant_id", "venue_id", "campaign_id").agg(
        pl.col(
            "spend_cents", "impressions", "clicks", "platform_conversions", "platform_revenue_cents"
        ).sum(),
        first_day=pl.col("day").min(),
        last_day=pl.col("day").max(),
    )
    attr = (
        attribution.filter(pl.col("campaign_id").is_not_null())
        .group_by("campaign_id", "model")
        .agg(
            attributed_conversions=pl.col("credit").sum(),
            attributed_revenue_cents=pl.col("attributed_revenue_cents").sum(),
        )
    )
    models = pl.DataFrame({"model": attribution["model"].unique().sort().to_list() or ["data_driven"]})
    base = campaigns.select(
        "tenant_id", "venue_id", "campaign_id", "name", "campaign_type", "status", "budget_cents", "channels"
    ).join(perf.drop("tenant_id", "venue_id"), on="campaign_id", how="left")
    roi = (
        base.join(models, how="cross")
        .join(attr, on=["campaign_id", "model"], how="left")
        .with_columns(
            pl.col(
                "spend_cents",
                "impressions",
                "clicks",
                "platform_conversions",
                "platform_revenue_cents",
                "attributed_revenue_cents",
            ).fill_null(0),
            pl.col("attributed_conversions").fill_null(0.0),
        )
        .with_columns(*_ratios("attributed_revenue_cents", "spend_cents", "attributed_conversions"))
        .sort("tenant_id", "venue_id", "campaign_id", "model")
    )
    # spend per channel: a campaign's spend split evenly over its channels
    ch = campaigns.select("campaign_id", channel=pl.col("channels").str.split(",")).explode(
        "channel", empty_as_null=True
    )
    ch = ch.with_columns(n=pl.len().over("campaign_id"), i=pl.int_range(pl.len()).over("campaign_id"))
    spend = (
        performance.join(ch, on="campaign_id", how="inner")
        .with_columns(
            spend_cents=pl.col("spend_cents") // pl.col("n")
            + pl.when(pl.col("i") == 0).then(pl.col("spend_cents") % pl.col("n")).otherwise(0)
        )
        .group_by("tenant_id", "venue_id", "channel")
        .agg(pl.col("spend_cents").sum(), pl.col("impressions").sum() // 1)
    )
    by_channel = attribution.group_by("tenant_id", "venue_id", "model", "channel").agg(
        conversions=pl.col("credit").sum(),
        attributed_revenue_cents=pl.col("attributed_revenue_cents").sum(),
        orders=pl.col("order_id").n_unique(),
    )
    channels = (
        by_channel.join(spend.drop("impressions"), on=["tenant_id", "venue_id", "channel"], how="left")
        .with_columns(pl.col("spend_cents").fill_null(0))
        .with_columns(*_ratios("attributed_revenue_cents", "spend_cents", "conversions"))
        .sort("tenant_id", "venue_id", "model", "channel")
    )
    return {"campaign_roi": roi, "campaign_channels": channels}
