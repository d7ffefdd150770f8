"""Attribution of recognized orders to marketing touchpoints: five models over the same paths.

Paths. A conversion is a `conversion` touchpoint with an order id; its path is the customer's touches
(impression, click, visit) at the same venue in the lookback window before it and after the customer's
previous conversion there (each touch goes to the first conversion that follows it: a touch after a
conversion never counts for it). A conversion with no touch is its own `direct` path. Revenue is the
order's gross revenue in `fct_orders` (the source of truth): a conversion whose order is not recognized there
is not attributed and is listed in `campaign_attribution_exclusions` with its reason.

Models (credit per touch, summed per channel and campaign): first_touch, last_touch, linear (1/n),
time_decay (2^(-days before the conversion / 7), normalized) and data_driven (behavior.shapley: the order's
credit split by the Shapley values of its channels in a conversion-rate game fitted per tenant on the
training window's converting and non-converting paths; a channel's credit is shared equally by its
touches). Money: attributed revenue in integer cents, largest-remainder rounding per order and model, so
it sums exactly to the order's revenue.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import polars as pl

from analytics_pipelines.behavior import shapley as S
from analytics_pipelines.behavior.normalize import CHANNELS as _ALL

MODELS = ("first_touch", "last_touch", "linear", "time_decay", "data_driven")
CHANNELS = tuple(c for c in _ALL if c != "direct")
MODEL_VERSION = "shapley-v1"
#: the seed's fixed "data-driven" weights (analytics-service L4754-4972), for comparison only
SEED_WEIGHTS = {"organic_search": 0.3, "paid_search": 0.25, "social": 0.2, "email": 0.15, "direct": 0.1}
SEED_OTHER = 0.1
_TOUCH = ("impression", "click", "visit")
HALF_LIFE_DAYS = 7.0


def assign(touches: pl.DataFrame, lookback_days: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(path touches with their conversion, conversions, touches that did not convert in the lookback)."""
    keys = ["customer_hash", "venue_id"]
    t = touches.filter(pl.col("action").is_in(_TOUCH) & pl.col("customer_hash").is_not_null()).sort(
        "event_time"
    )
    conv = (
        touches.filter((pl.col("action") == "conversion") & pl.col("order_id").is_not_null())
        .select(*keys, "tenant_id", conv_id="doc_id", conv_time="event_time", order_id="order_id")
        .sort("conv_time")
    )
    joined = t.join_asof(
        conv.select(*keys, "conv_id", "conv_time", "order_id"),
        left_on="event_time",
        right_on="conv_time",
        by=keys,
        strategy="forward",
        check_sortedness=False,
    )
    within = pl.col("conv_time").is_not_null() & (
        pl.col("conv_time") - pl.col("event_time") <= pl.duration(days=lookback_days)
    )
    return joined.filter(within), conv, joined.filter(~within)


def fit(path_touches: pl.DataFrame, conv: pl.DataFrame, open_touches: pl.DataFrame) -> dict[str, dict]:
    """Per tenant: the game v, the Shapley shares per channel set, effects and the seed's ranking."""
    k = len(CHANNELS)
    out = {}
    for tenant in conv["tenant_id"].unique().sort().to_list():
        cp = (
            conv.filter(pl.col("tenant_id") == tenant)
            .join(
                path_touches.group_by("conv_id").agg(channels=pl.col("channel").unique()),
                on="conv_id",
                how="left",
            )
            .with_columns(pl.col("channels").fill_null(pl.lit([], pl.List(pl.String))))
        )
        nc = (
            open_touches.filter(pl.col("tenant_id") == tenant)
            .group_by("customer_hash", "venue_id")
            .agg(channels=pl.col("channel").unique())
        )
        mask = np.r_[S.masks(cp, CHANNELS), S.masks(nc, CHANNELS)]
        converted = np.r_[np.ones(cp.height), np.zeros(nc.height)]
        keep = mask > 0  # a path with no touch is only visible when it converts: v(empty) comes from the fit
        v, stats = S.fit_game(mask[keep], converted[keep], k)
        stats["holdout"] = S.holdout_metrics(
            np.r_[cp["conv_id"].hash(7).to_numpy(), nc["customer_hash"].hash(7).to_numpy()][keep],
            mask[keep],
            converted[keep],
            k,
        )
        phi = S.shapley_table(v, k)
        full = phi[2**k - 1]
        exposed = [int(((mask >> i) & 1).sum()) for i in range(k)]
        out[tenant] = {
            "v": v,
            "shares": S.shares(phi, k),
            "effect": full,
            "exposed": exposed,
            "stats": stats,
            "converting_paths": int(cp.height),
        }
    return out


def credits(path_touches: pl.DataFrame, conv: pl.DataFrame, models: dict[str, dict]) -> pl.DataFrame:
    """Credit per (conversion, model, channel, campaign): fractions that sum to 1 per conversion and model."""
    k = len(CHANNELS)
    p = path_touches.with_columns(
        n=pl.len().over("conv_id"),
        pos=pl.int_range(pl.len()).over("conv_id", order_by=["event_time", "doc_id"]),
        age=(pl.col("conv_time") - pl.col("event_time")).dt.total_seconds() / 86400.0,
        bit=pl.col("channel").replace_strict({c: 1 << i for i, c in enumerate(CHANNELS)}, default=0),
        cidx=pl.col("channel").replace_strict({c: i for i, c in enumerate(CHANNELS)}, default=0),
    )
    p = p.with_columns(
        mask=pl.col("bit").unique().sum().over("conv_id"), n_c=pl.len().over("conv_id", "channel")
    )
    tenants = conv.select("conv_id", "tenant_id")
    p = p.join(tenants, on="conv_id", how="left", suffix="_c")
    share = np.zeros(len(p))
    tenant_col, mask_col, cidx = p["tenant_id_c"].to_numpy(), p["mask"].to_numpy(), p["cidx"].to_numpy()
    for tenant, m in models.items():
        sel = tenant_col == tenant
        share[sel] = m["shares"][mask_col[sel], cidx[sel]]
    decay = pl.lit(2.0) ** (-pl.col("age") / HALF_LIFE_DAYS)
    p = p.with_columns(
        first_touch=(pl.col("pos") == 0).cast(pl.Float64),
        last_touch=(pl.col("pos") == pl.col("n") - 1).cast(pl.Float64),
        linear=1.0 / pl.col("n"),
        time_decay=decay / decay.sum().over("conv_id"),
        data_driven=pl.Series(share) / pl.col("n_c"),
    )
    touch = p.unpivot(
        index=["conv_id", "channel", "campaign_id"],
        on=list(MODELS),
        variable_name="model",
        value_name="credit",
    )
    touch = touch.group_by("conv_id", "model", "channel", "campaign_id").agg(
        pl.col("credit").sum(), touches=pl.len()
    )
    direct = conv.join(p.select("conv_id").unique(), on="conv_id", how="anti").select("conv_id")
    direct = direct.join(pl.DataFrame({"model": list(MODELS)}), how="cross").with_columns(
        channel=pl.lit("direct"),
        campaign_id=pl.lit(None, pl.String),
        credit=pl.lit(1.0),
        touches=pl.lit(0, pl.UInt32),
    )
    del k
    return pl.concat([touch, direct.select(touch.columns)], how="vertical_relaxed")


def allocate(credit: pl.DataFrame) -> pl.DataFrame:
    """Integer cents per row, largest remainder per (conversion, model): sums exactly to revenue_cents."""
    c = credit.with_columns(raw=pl.col("credit") * pl.col("revenue_cents"))
    c = c.with_columns(base=pl.col("raw").floor().cast(pl.Int64))
    c = c.with_columns(
        rem=(pl.col("revenue_cents") - pl.col("base").sum().over("conv_id", "model")),
        rank=pl.int_range(pl.len()).over(
            "conv_id",
            "model",
            order_by=[pl.col("raw") - pl.col("base"), "channel", "campaign_id"],
            descending=True,
        ),
    )
    return c.with_columns(
        attributed_revenue_cents=pl.col("base") + (pl.col("rank") < pl.col("rem")).cast(pl.Int64)
    ).drop("raw", "base", "rem", "rank")


def attribute(
    touches: pl.DataFrame,
    orders: pl.DataFrame,
    first: str,
    last: str,
    lookback_days: int = 30,
    training_days: int = 180,
    trained_at: datetime | None = None,
) -> dict[str, pl.DataFrame]:
    """campaign_attribution for conversions on days [first, last], the fitted channel effects, and the
    exclusions. `touches` must cover [first - training_days - lookback_days, last]."""
    d0, d1 = date.fromisoformat(first), date.fromisoformat(last)
    path, conv, open_t = assign(touches, lookback_days)
    t_lo = d1 - timedelta(days=training_days)
    in_training = pl.col("conv_time").dt.date().is_between(t_lo, d1)
    models = fit(
        path.filter(in_training),
        conv.filter(in_training),
        open_t.filter(pl.col("event_time").dt.date().is_between(t_lo, d1)),
    )
    conv_r = conv.filter(pl.col("conv_time").dt.date().is_between(d0, d1))
    recognized = orders.select("order_id", "day", "event_id", "revenue_cents")
    matched = conv_r.join(recognized, on="order_id", how="inner").unique(
        "order_id", keep="first", maintain_order=True
    )
    excluded = conv_r.join(matched.select("conv_id"), on="conv_id", how="anti").with_columns(
        day=pl.col("conv_time").dt.date(),
        reason=pl.when(pl.col("order_id").is_in(recognized["order_id"].implode()))
        .then(pl.lit("duplicate_conversion"))
        .otherwise(pl.lit("order_not_recognized")),
    )
    cr = credits(path.filter(pl.col("conv_id").is_in(matched["conv_id"].implode())), matched, models)
    cr = cr.join(
        matched.select("conv_id", "tenant_id", "venue_id", "day", "order_id", "event_id", "revenue_cents"),
        on="conv_id",
    )
    out = (
        allocate(cr)
        .with_columns(lookback_days=pl.lit(lookback_days), model_version=pl.lit(MODEL_VERSION))
        .select(
            "tenant_id",
            "venue_id",
            "day",
            "order_id",
            "event_id",
            "model",
            "channel",
            "campaign_id",
            "credit",
            "attributed_revenue_cents",
            "revenue_cents",
            "touches",
            "lookback_days",
            "model_version",
        )
        .sort("day", "order_id", "model", "channel", "campaign_id", nulls_last=True)
    )
    effects = effects_table(
        models, path.filter(in_training), conv.filter(in_training), t_lo, d1, lookback_days, trained_at
    )
    return {
        "campaign_attribution": out,
        "attribution_channel_effects": effects,
        "attribution_model_performance": performance_table(models, t_lo, d1, lookback_days, trained_at),
        "campaign_attribution_exclusions": excluded.select(
            "tenant_id", "venue_id", "day", "order_id", conversion_doc_id="conv_id", reason="reason"
        ),
    }


def seed_credit(path_touches: pl.DataFrame, conv: pl.DataFrame) -> pl.DataFrame:
    """The seed's fixed-weight 'data-driven' model: per conversion, each channel of the path gets its fixed
    weight, normalized; conversions per channel and tenant."""
    w = pl.col("channel").replace_strict(SEED_WEIGHTS, default=SEED_OTHER, return_dtype=pl.Float64)
    per = path_touches.select("conv_id", "channel").unique().with_columns(w=w)
    per = per.with_columns(credit=pl.col("w") / pl.col("w").sum().over("conv_id"))
    return (
        per.join(conv.select("conv_id", "tenant_id"), on="conv_id")
        .group_by("tenant_id", "channel")
        .agg(seed_conversions=pl.col("credit").sum())
    )


def effects_table(models, path, conv, t_lo, t_hi, lookback_days, trained_at) -> pl.DataFrame:
    seed = seed_credit(path, conv)
    rows = []
    for tenant, m in models.items():
        for i, c in enumerate(CHANNELS):
            rows.append(
                (
                    tenant,
                    c,
                    float(m["effect"][i]),
                    m["exposed"][i],
                    m["converting_paths"],
                    float(m["v"][0]),
                    m["stats"]["paths"],
                    m["stats"]["cells_from_data"],
                )
            )
    df = pl.DataFrame(
        rows or None,
        schema={
            "tenant_id": pl.String,
            "channel": pl.String,
            "incremental_effect": pl.Float64,
            "exposed_paths": pl.Int64,
            "converting_paths": pl.Int64,
            "baseline_conversion": pl.Float64,
            "training_paths": pl.Int64,
            "cells_from_data": pl.Int64,
        },
        orient="row",
    )
    df = df.join(seed, on=["tenant_id", "channel"], how="left").with_columns(
        pl.col("seed_conversions").fill_null(0.0),
        seed_weight=pl.col("channel").replace_strict(
            SEED_WEIGHTS, default=SEED_OTHER, return_dtype=pl.Float64
        ),
    )
    return df.with_columns(
        effect_rank=pl.col("incremental_effect")
        .rank("ordinal", descending=True)
        .over("tenant_id")
        .cast(pl.Int64),
        seed_rank=pl.col("seed_conversions")
        .rank("ordinal", descending=True)
        .over("tenant_id")
        .cast(pl.Int64),
        day=pl.lit(t_hi),
        training_first=pl.lit(t_lo),
        training_last=pl.lit(t_hi),
        lookback_days=pl.lit(lookback_days),
        model_version=pl.lit(MODEL_VERSION),
        trained_at=pl.lit(trained_at or datetime.now()),
    ).sort("tenant_id", "effect_rank")


def performance_table(models: dict, t_lo: date, t_hi: date, lookback_days: int, trained_at) -> pl.DataFrame:
    """attribution_model_performance: per tenant (`bucket`), the data-driven game's holdout Brier score and
    ROC AUC beside the constant-rate baseline's (the model_performance layout), in the partition of the
    training day `t_hi` (`day`; model_performance drops it and keeps the latest day)."""
    rows = []
    for tenant, m in models.items():
        h = m["stats"]["holdout"]
        if "brier" not in h:
            continue
        for model, brier, auc in (
            ("data_driven_shapley", h["brier"], h["roc_auc"]),
            ("constant_rate_baseline", h["baseline_brier"], h["baseline_roc_auc"]),
        ):
            rows += [(model, "brier", tenant, brier, h["n"]), (model, "roc_auc", tenant, auc, h["n"])]
    df = pl.DataFrame(
        rows or None,
        schema={
            "model": pl.String,
            "metric": pl.String,
            "bucket": pl.String,
            "value": pl.Float64,
            "n": pl.Int64,
        },
        orient="row",
    )
    return df.select(
        model_family=pl.lit("attribution"),
        model="model",
        as_of=pl.lit(t_hi),
        cutoff=pl.lit(t_hi),
        horizon_days=pl.lit(lookback_days, pl.Int64),
        evaluation=pl.lit("in_time_holdout"),
        metric="metric",
        bucket="bucket",
        value="value",
        n="n",
        model_version=pl.lit(MODEL_VERSION),
        trained_at=pl.lit(trained_at or datetime.now()),
        training_first=pl.lit(t_lo),
        training_last=pl.lit(t_hi),
        features=pl.lit(",".join(CHANNELS)),
        day=pl.lit(t_hi),
    )


def gate(performance: pl.DataFrame) -> tuple[bool, pl.DataFrame, int]:
    """The blocking gate over attribution_model_performance: (passed, the tenants whose data-driven holdout
    Brier score is not below the constant-rate baseline's, tenants evaluated). A tenant with too few held-out
    paths to evaluate has no rows: it is not counted against the model."""
    brier = performance.filter(pl.col("metric") == "brier")
    if brier.is_empty():
        return True, pl.DataFrame({"bucket": []}, schema={"bucket": pl.String}), 0
    wide = brier.pivot(on="model", index="bucket", values="value")
    worse = wide.filter(pl.col("data_driven_shapley") >= pl.col("constant_rate_baseline"))
    return worse.is_empty(), worse, wide.height
