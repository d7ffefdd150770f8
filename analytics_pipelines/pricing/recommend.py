"""Pricing recommendations for the ticket types on sale, from the elasticity estimates. Pure polars.

Revenue over the next days at price p is R(p) = p q0 (p/p0)^e: with e < -1 (elastic) a lower price earns
more, with e > -1 (inelastic) a higher one, so the revenue-maximizing price within the guard rails is the
rail in that direction. A direction is taken only when the whole 95 % interval of e is on one side of -1;
otherwise the type keeps its price ('no_change', reason says why). Guard rails (Settings, TT_PRICING_*): at
most `max_change_pct` per day (and no recommendation within 24 h of the type's last price change), between
`floor_ratio` and `ceiling_ratio` times the face value (the type's first price), never below the face value
(primary sales), no change once the doors have opened (or the event started), none for a cancelled or
postponed event, a sold-out or free type.

Expected revenue change over `horizon_days`: the type's recent daily tickets (last 14 days) x horizon x
price x ((p1/p0)^(1+e) - 1); its interval evaluates the same at both ends of e's 95 % interval. Demand score
(0-100): the share of the remaining tickets the recent pace would sell before the event. Confidence:
1 - (width of e's 95 % interval) / 4, within [0, 1] (a 0.4-wide interval: 0.9; 4 wide or more: 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

RECENT_DAYS = 14


@dataclass(frozen=True)
class GuardRails:
    max_change_pct: float = 10.0
    floor_ratio: float = 1.0
    ceiling_ratio: float = 2.0
    horizon_days: int = 7
    ttl_hours: int = 24


SCHEMA = {
    "tenant_id": pl.String,
    "venue_id": pl.String,
    "event_id": pl.String,
    "ticket_type_id": pl.String,
    "category": pl.String,
    "currency": pl.String,
    "current_price_cents": pl.Int64,
    "face_value_cents": pl.Int64,
    "recommended_price_cents": pl.Int64,
    "change_pct": pl.Float64,
    "expected_revenue_change_cents": pl.Int64,
    "expected_revenue_change_low_cents": pl.Int64,
    "expected_revenue_change_high_cents": pl.Int64,
    "demand_score": pl.Float64,
    "confidence": pl.Float64,
    "elasticity": pl.Float64,
    "elasticity_ci_low": pl.Float64,
    "elasticity_ci_high": pl.Float64,
    "elasticity_scope": pl.String,
    "status": pl.String,
    "reason": pl.String,
    "reasoning": pl.String,
    "model_version": pl.String,
    "generated_at": pl.Datetime("us", "UTC"),
    "expires_at": pl.Datetime("us", "UTC"),
}


def _utc(c: str) -> pl.Expr:
    return pl.col(c).dt.convert_time_zone("UTC").dt.cast_time_unit("us")


def recommend(
    types: pl.DataFrame,
    events: pl.DataFrame,
    doors: pl.DataFrame,
    prices: pl.DataFrame,
    sales: pl.DataFrame,
    elasticity: pl.DataFrame,
    currencies: pl.DataFrame,
    now: datetime,
    rails: GuardRails,
) -> pl.DataFrame:
    """One row per ticket type on sale now (active, inside its sales window): a recommendation
    (status 'recommended') or the reason there is none (status 'no_change').
    types: stg_ticket_types; events: event_dim; doors: (event_id, doors_open_at); prices: price_history;
    sales: daily_sales; elasticity: price_elasticity; currencies: venue_currency."""
    now_e = pl.lit(now).cast(pl.Datetime("us", "UTC"))
    t = (
        types.rename({"id": "ticket_type_id"})
        .filter(
            pl.col("is_active").fill_null(True) & (_utc("sale_start") <= now_e) & (_utc("sale_end") > now_e)
        )
        .join(events, on="event_id", how="inner")
        .join(doors, on="event_id", how="left")
        .join(currencies, on="venue_id", how="left")
        .with_columns(pl.col("category_id").fill_null("(none)").alias("category"))
    )
    real = prices.filter(pl.col("source") != "recommendation") if "source" in prices.columns else prices
    hist = real.group_by("ticket_type_id").agg(
        pl.col("price_cents").sort_by("valid_from").first().alias("face_value_cents"),
        _utc("valid_from").max().alias("last_change_at"),
    )
    day = now.date()
    recent = (
        sales.filter((pl.col("day") < day) & (pl.col("day") >= day - timedelta(days=RECENT_DAYS)))
        .group_by("ticket_type_id")
        .agg((pl.col("tickets").sum() / RECENT_DAYS).alias("daily_tickets"))
    )
    sold = sales.group_by("ticket_type_id").agg(pl.col("tickets").sum().alias("sold"))
    est = elasticity.filter(pl.col("status") == "estimated")
    cv = est.filter(pl.col("scope") == "category_venue").select(
        "tenant_id",
        "category",
        "venue_id",
        *[pl.col(c).alias(f"{c}_cv") for c in ("elasticity", "ci_low", "ci_high")],
    )
    cat = est.filter(pl.col("scope") == "category").select(
        "tenant_id", "category", *[pl.col(c).alias(f"{c}_c") for c in ("elasticity", "ci_low", "ci_high")]
    )
    version = elasticity["model_version"].drop_nulls()
    version = version[0] if version.len() else "none"
    t = (
        t.join(hist, on="ticket_type_id", how="left")
        .join(recent, on="ticket_type_id", how="left")
        .join(sold, on="ticket_type_id", how="left")
        .join(cv, on=["tenant_id", "category", "venue_id"], how="left")
        .join(cat, on=["tenant_id", "category"], how="left")
    )
    use_cv = pl.col("elasticity_cv").is_not_null()
    t = t.with_columns(
        pl.col("price_cents").alias("p0"),
        pl.coalesce("face_value_cents", "price_cents").alias("face_value_cents"),
        pl.col("daily_tickets").fill_null(0.0),
        (pl.col("quantity").fill_null(0) - pl.col("sold").fill_null(0)).clip(0).alias("remaining"),
        pl.when(use_cv).then(pl.col("elasticity_cv")).otherwise(pl.col("elasticity_c")).alias("e"),
        pl.when(use_cv).then(pl.col("ci_low_cv")).otherwise(pl.col("ci_low_c")).alias("lo"),
        pl.when(use_cv).then(pl.col("ci_high_cv")).otherwise(pl.col("ci_high_c")).alias("hi"),
        pl.when(use_cv)
        .then(pl.lit("category_venue"))
        .when(pl.col("elasticity_c").is_not_null())
        .then(pl.lit("category"))
        .alias("elasticity_scope"),
        pl.coalesce(_utc("doors_open_at"), _utc("starts_at")).alias("doors"),
    )
    step = rails.max_change_pct / 100
    floor = pl.max_horizontal(pl.col("face_value_cents") * rails.floor_ratio, pl.col("face_value_cents"))
    ceiling = pl.col("face_value_cents") * rails.ceiling_ratio
    target = (
        pl.when(pl.col("hi") < -1)
        .then(pl.col("p0") * (1 - step))
        .when(pl.col("lo") > -1)
        .then(pl.col("p0") * (1 + step))
        .otherwise(pl.col("p0"))
    )
    t = t.with_columns(
        pl.min_horizontal(pl.max_horizontal(target, floor), pl.max_horizontal(ceiling, floor))
        .round(0)
        .cast(pl.Int64)
        .alias("p1")
    )
    # a price already outside the rails is not pushed further out: keep it unless the move is back inside
    # the daily step bounds every move, also one back inside the rails; a move against the revenue
    # direction (only the rails would cause it) or one that ends outside the rails is no recommendation
    t = t.with_columns(
        pl.col("p1")
        .clip((pl.col("p0") * (1 - step)).ceil(), (pl.col("p0") * (1 + step)).floor())
        .cast(pl.Int64)
        .alias("p1"),
        floor.ceil().cast(pl.Int64).alias("floor"),
        ceiling.floor().cast(pl.Int64).alias("ceiling"),
    )
    against = ((pl.col("p1") > pl.col("p0")) & (pl.col("hi") < -1)) | (
        (pl.col("p1") < pl.col("p0")) & (pl.col("lo") > -1)
    )
    outside = (pl.col("p1") < pl.col("floor")) | (pl.col("p1") > pl.col("ceiling"))
    t = t.with_columns(
        pl.when(against | outside).then(pl.col("p0")).otherwise(pl.col("p1")).alias("p1"),
        outside.fill_null(False).alias("outside_rails"),
    )
    currency_other = pl.col("venue_currency").is_not_null() & (pl.col("currency") != pl.col("venue_currency"))
    reason = (
        pl.when(pl.col("cancelled_or_postponed").fill_null(False))
        .then(pl.lit("event cancelled or postponed"))
        .when(pl.col("doors").is_null() | (pl.col("doors") <= now_e))
        .then(pl.lit("doors open (or the event started): no price change"))
        .when(pl.col("p0").fill_null(0) <= 0)
        .then(pl.lit("free ticket (price 0): no elasticity applies"))
        .when(currency_other)
        .then(pl.format("currency {} is not the venue's ({})", "currency", "venue_currency"))
        .when(pl.col("remaining") <= 0)
        .then(pl.lit("sold out"))
        .when(pl.col("e").is_null())
        .then(pl.lit("no elasticity estimate for the category (insufficient data)"))
        .when(
            pl.col("last_change_at").is_not_null()
            & (pl.col("last_change_at") > now_e - pl.duration(hours=24))
        )
        .then(pl.lit("price changed in the last 24 h (max one change per day)"))
        .when((pl.col("lo") <= -1) & (pl.col("hi") >= -1))
        .then(
            pl.format(
                "elasticity interval [{}, {}] contains -1: no revenue-raising direction",
                pl.col("lo").round(2),
                pl.col("hi").round(2),
            )
        )
        .when(pl.col("outside_rails") & (pl.col("p1") == pl.col("p0")))
        .then(
            pl.lit("current price outside the face-value rails; one day's max change cannot bring it inside")
        )
        .when(pl.col("p1") == pl.col("p0"))
        .then(pl.lit("at a guard rail (face value, floor or ceiling)"))
    )
    t = t.with_columns(reason.alias("reason"))
    ok = pl.col("reason").is_null()
    h = rails.horizon_days
    ratio = pl.col("p1") / pl.col("p0")
    base_rev = pl.col("p0") * pl.col("daily_tickets") * h

    def delta(e: str) -> pl.Expr:
        return base_rev * (ratio.pow(pl.col(e) + 1) - 1)

    days_left = ((pl.col("doors") - now_e).dt.total_seconds() / 86400).clip(0)
    t = t.with_columns(
        pl.when(ok)
        .then(delta("e"))
        .otherwise(0.0)
        .fill_nan(0.0)
        .round(0)
        .cast(pl.Int64)
        .alias("expected_revenue_change_cents"),
        pl.when(ok)
        .then(pl.min_horizontal(delta("lo"), delta("hi")))
        .otherwise(0.0)
        .fill_nan(0.0)
        .round(0)
        .cast(pl.Int64)
        .alias("expected_revenue_change_low_cents"),
        pl.when(ok)
        .then(pl.max_horizontal(delta("lo"), delta("hi")))
        .otherwise(0.0)
        .fill_nan(0.0)
        .round(0)
        .cast(pl.Int64)
        .alias("expected_revenue_change_high_cents"),
        pl.when(pl.col("remaining") > 0)
        .then((pl.col("daily_tickets") * days_left.fill_null(0) / pl.col("remaining")).clip(0, 1) * 100)
        .otherwise(100.0)
        .round(1)
        .alias("demand_score"),
        pl.when(pl.col("e").is_not_null())
        .then((1 - (pl.col("hi") - pl.col("lo")) / 4).clip(0, 1).round(3))
        .otherwise(0.0)
        .alias("confidence"),
        pl.when(ok).then(pl.col("p1")).otherwise(pl.col("p0")).alias("recommended_price_cents"),
        pl.when(ok).then(pl.lit("recommended")).otherwise(pl.lit("no_change")).alias("status"),
    )
    t = t.with_columns(
        pl.when(pl.col("p0") > 0)
        .then(((pl.col("recommended_price_cents") / pl.col("p0") - 1) * 100).round(2))
        .otherwise(0.0)
        .alias("change_pct"),
        pl.min_horizontal(now_e + pl.duration(hours=rails.ttl_hours), pl.coalesce("doors", now_e)).alias(
            "expires_at"
        ),
    )
    reasoning = pl.struct(
        pl.struct(
            pl.col("p0").alias("current_price_cents"),
            "face_value_cents",
            pl.col("daily_tickets").round(3).alias("recent_daily_tickets"),
            "remaining",
            days_left.round(2).alias("days_to_doors"),
            "elasticity_scope",
            pl.col("e").round(4).alias("elasticity"),
            pl.col("lo").round(4).alias("ci_low"),
            pl.col("hi").round(4).alias("ci_high"),
        ).alias("inputs"),
        pl.struct(*[pl.lit(v).alias(k) for k, v in rails.__dict__.items()]).alias("guard_rails"),
        pl.when(pl.col("hi") < -1)
        .then(pl.lit("elastic (e < -1): a lower price raises revenue"))
        .when(pl.col("lo") > -1)
        .then(pl.lit("inelastic (e > -1): a higher price raises revenue"))
        .alias("rule"),
        pl.lit(version).alias("model_version"),
    ).struct.json_encode()
    return (
        t.with_columns(
            reasoning.alias("reasoning"),
            pl.lit(version).alias("model_version"),
            now_e.alias("generated_at"),
            pl.col("p0").alias("current_price_cents"),
            pl.col("e").alias("elasticity"),
            pl.col("lo").alias("elasticity_ci_low"),
            pl.col("hi").alias("elasticity_ci_high"),
        )
        .select(list(SCHEMA))
        .cast(SCHEMA)
        .sort("tenant_id", "event_id", "ticket_type_id")
    )


def match_applied(approved: pl.DataFrame, platform: pl.DataFrame) -> pl.DataFrame:
    """For approved changes (id, ticket_type_id, recommended_price_cents, decided_at), the first platform
    change (stg_ticket_price_history: id, ticket_type_id, new_price_cents, changed_at) of the same type to
    the same price at or after the approval: (id, applied_at, applied_change_id)."""
    if approved.height == 0 or platform.height == 0:
        return pl.DataFrame(
            schema={"id": pl.Int64, "applied_at": pl.Datetime("us", "UTC"), "applied_change_id": pl.String}
        )
    a = approved.select(
        "id", "ticket_type_id", "recommended_price_cents", _utc("decided_at").alias("decided_at")
    )
    p = platform.select(
        "ticket_type_id",
        pl.col("new_price_cents").alias("recommended_price_cents"),
        _utc("changed_at").alias("applied_at"),
        pl.col("id").cast(pl.String).alias("applied_change_id"),
    )
    return (
        a.join(p, on=["ticket_type_id", "recommended_price_cents"], how="inner")
        .filter(pl.col("applied_at") >= pl.col("decided_at"))
        .sort("applied_at")
        .group_by("id", maintain_order=True)
        .first()
        .select(pl.col("id").cast(pl.Int64), "applied_at", "applied_change_id")
    )
