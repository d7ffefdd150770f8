"""The marketing what-if (issue 10/16): a spend change per channel -> expected extra conversions and revenue,
from the data-driven attribution model's fitted incremental effects (attribution_channel_effects).

Model: a channel's exposed journeys scale with its spend as (1 + change) ** response (response = 1:
proportional reach; < 1: diminishing returns), and each extra exposed journey converts with the channel's
estimated incremental probability (negative estimates count as 0). Extra revenue = extra conversions x the
average recognized order revenue. Figures are per `period_days` (the training window's exposure counts are
rescaled to it). The fitted effects are averages over the training window: a change far outside the
observed spend (say +300%) is an extrapolation, which the result's `extrapolated` flag says."""

from __future__ import annotations

import polars as pl


def marketing_whatif(
    effects: pl.DataFrame,
    spend_change: dict[str, float],
    avg_order_revenue_cents: int,
    period_days: int = 30,
    response: float = 1.0,
) -> pl.DataFrame:
    """One row per channel of `effects` (one tenant's rows of attribution_channel_effects) and a 'total'
    row: baseline exposures in the period, the change, extra exposures, extra conversions, extra revenue."""
    known = set(effects["channel"].to_list())
    unknown = sorted(set(spend_change) - known)
    if unknown:
        raise ValueError(f"unknown channel(s) {unknown}: choose from {sorted(known)}")
    if any(v < -1 for v in spend_change.values()):
        raise ValueError("a spend change below -100% is impossible")
    if effects["tenant_id"].n_unique() > 1:
        raise ValueError("effects of one tenant expected")
    if not 0 < response <= 1.5:
        raise ValueError("response must be in (0, 1.5]")
    training = (effects["training_last"][0] - effects["training_first"][0]).days + 1
    change = pl.col("channel").replace_strict(spend_change, default=0.0, return_dtype=pl.Float64)
    out = (
        effects.select(
            "channel",
            "incremental_effect",
            exposures=pl.col("exposed_paths") * period_days / training,
            spend_change=change,
        )
        .with_columns(extra_exposures=pl.col("exposures") * ((1 + pl.col("spend_change")) ** response - 1))
        .with_columns(
            extra_conversions=pl.col("extra_exposures") * pl.col("incremental_effect").clip(lower_bound=0.0),
            extrapolated=pl.col("spend_change").abs() > 1.0,
        )
        .with_columns(
            extra_revenue_cents=(pl.col("extra_conversions") * avg_order_revenue_cents).round().cast(pl.Int64)
        )
    )
    total = out.select(
        channel=pl.lit("total"),
        incremental_effect=pl.lit(None, pl.Float64),
        exposures=pl.col("exposures").sum(),
        spend_change=pl.lit(None, pl.Float64),
        extra_exposures=pl.col("extra_exposures").sum(),
        extra_conversions=pl.col("extra_conversions").sum(),
        extrapolated=pl.col("extrapolated").any(),
        extra_revenue_cents=pl.col("extra_revenue_cents").sum(),
    )
    return pl.concat([out, total])
