"""Fraud features per tenant, user and day (docs/fraud.md), from staging: orders (every status), order
items, users, refunds, marketplace listings and tickets. Pure polars/numpy: no per-row Python.

A row exists for every user and UTC day with an order, a refund or a resale listing. Day features describe
that day's behaviour (velocity, failed checkouts, payment methods, bulk orders, account age); window features
look back over the user's earlier days (refunds over REFUND_DAYS, resale over RESALE_DAYS).

The platform stores no device fingerprint, IP or user agent (sql/source/create_tables.sql), so velocity is
per account only; `orders.metadata` carries the payment method category and the sales channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

#: the platform's per-order maximum of one ticket type (ticket_types.max_purchase default; not in the contract)
PER_ORDER_MAX = 10
REFUND_DAYS = 90
RESALE_DAYS = 30
FAILED = ("cancelled", "expired")
PAID = ("confirmed", "completed", "refunded")

FEATURES = (
    "orders",
    "failed_orders",
    "failed_ratio",
    "max_orders_60s",
    "max_orders_10m",
    "burst_gap_std_s",
    "payment_methods",
    "max_item_quantity",
    "bulk_orders",
    "min_account_age_h",
    "bulk_orders_30d",
    "paid_orders_90d",
    "refunds_90d",
    "refund_ratio_90d",
    "listings_30d",
    "resale_markup_30d",
    "min_hours_to_resale_30d",
)


@dataclass
class Inputs:
    orders: pl.DataFrame  # id, tenant_id, user_id, event_id, status, t, payment_method, channel
    items: pl.DataFrame  # order_id, quantity
    users: pl.DataFrame  # id, created_at
    events: pl.DataFrame  # id, venue_id
    refunds: pl.DataFrame  # order_id, created_at
    listings: (
        pl.DataFrame
    )  # seller_id, ticket_id, venue_id, price_cents, original_face_value_cents, listed_at
    tickets: pl.DataFrame  # id, purchased_at


def _window_counts(user: np.ndarray, t: np.ndarray, seconds: int) -> np.ndarray:
    """For rows sorted by (user, t): how many of the user's rows fall in (t - seconds, t]."""
    key = user.astype(np.int64) * 10**11 + t
    return np.arange(key.size) - np.searchsorted(key, key - seconds, side="right") + 1


def _order_days(inp: Inputs) -> pl.DataFrame:
    items = inp.items.group_by("order_id").agg(pl.max("quantity").alias("max_item_quantity"))
    o = (
        inp.orders.filter(pl.col("user_id").is_not_null() & pl.col("t").is_not_null())
        .join(items, left_on="id", right_on="order_id", how="left")
        .join(inp.events.rename({"id": "event_id"}), on="event_id", how="left")
        .join(
            inp.users.select(pl.col("id").alias("user_id"), pl.col("created_at").alias("signup")),
            on="user_id",
            how="left",
        )
        .with_columns(
            pl.col("user_id").rank("dense").cast(pl.Int64).alias("_u"), pl.col("t").dt.epoch("s").alias("_s")
        )
        .sort("_u", "_s")
    )
    u, s = o["_u"].to_numpy(), o["_s"].to_numpy()
    paid = pl.col("status").is_in(PAID)
    o = o.with_columns(
        pl.Series("n60", _window_counts(u, s, 60)),
        pl.Series("n600", _window_counts(u, s, 600)),
        pl.col("_s").diff().over("_u").alias("gap"),
        pl.col("t").dt.date().alias("day"),
    )
    return o.group_by("tenant_id", "user_id", "day").agg(
        pl.len().alias("orders"),
        pl.col("status").is_in(FAILED).sum().alias("failed_orders"),
        pl.max("n60").alias("max_orders_60s"),
        pl.max("n600").alias("max_orders_10m"),
        pl.col("gap").filter(pl.col("gap") < 600).std().alias("burst_gap_std_s"),
        pl.col("payment_method").n_unique().alias("payment_methods"),
        pl.col("max_item_quantity").max().fill_null(0).alias("max_item_quantity"),
        (paid & (pl.col("max_item_quantity") >= PER_ORDER_MAX)).sum().alias("bulk_orders"),
        ((pl.col("t") - pl.col("signup")).dt.total_seconds() / 3600).min().alias("min_account_age_h"),
        paid.sum().alias("paid_orders"),
        pl.min("t").alias("first_order_at"),
        pl.max("t").alias("last_order_at"),
        pl.col("t")
        .filter(paid & (pl.col("max_item_quantity") >= PER_ORDER_MAX))
        .min()
        .alias("first_bulk_at"),
        pl.col("venue_id").drop_nulls().mode().first().alias("venue_id"),
        pl.col("channel").drop_nulls().mode().first().alias("channel"),
    )


def _refund_days(inp: Inputs) -> pl.DataFrame:
    r = inp.refunds.join(
        inp.orders.select(pl.col("id").alias("order_id"), "tenant_id", "user_id", "event_id"), on="order_id"
    ).join(inp.events.rename({"id": "event_id"}), on="event_id", how="left")
    return (
        r.filter(pl.col("user_id").is_not_null() & pl.col("created_at").is_not_null())
        .with_columns(pl.col("created_at").dt.date().alias("day"))
        .group_by("tenant_id", "user_id", "day")
        .agg(
            pl.len().alias("refunds"),
            pl.min("created_at").alias("first_refund_at"),
            pl.max("created_at").alias("last_refund_at"),
            pl.col("venue_id").drop_nulls().mode().first().alias("refund_venue_id"),
        )
    )


def _listing_days(inp: Inputs) -> pl.DataFrame:
    ls = inp.listings.join(inp.tickets.rename({"id": "ticket_id"}), on="ticket_id", how="left")
    return (
        ls.filter(pl.col("seller_id").is_not_null() & pl.col("listed_at").is_not_null())
        .with_columns(
            pl.col("listed_at").dt.date().alias("day"),
            pl.when(pl.col("original_face_value_cents") > 0)
            .then(pl.col("price_cents") / pl.col("original_face_value_cents") - 1)
            .alias("markup"),
            ((pl.col("listed_at") - pl.col("purchased_at")).dt.total_seconds() / 3600).alias(
                "hours_to_resale"
            ),
        )
        .group_by("tenant_id", pl.col("seller_id").alias("user_id"), "day")
        .agg(
            pl.len().alias("listings"),
            pl.col("markup").sum().alias("markup_sum"),
            pl.col("markup").count().alias("markup_n"),
            pl.min("hours_to_resale").alias("min_hours_to_resale"),
            pl.max("listed_at").alias("last_listing_at"),
            pl.col("venue_id").drop_nulls().mode().first().alias("listing_venue_id"),
        )
    )


def user_days(inp: Inputs, active_from: date | None = None) -> pl.DataFrame:
    """One row per tenant, user and day with activity: the day's features and the trailing windows. With
    `active_from`, only users active on or after that day (their earlier days feed their windows)."""
    keys = ["tenant_id", "user_id", "day"]
    a, b, c = _order_days(inp), _refund_days(inp), _listing_days(inp)
    df = a.join(b, on=keys, how="full", coalesce=True).join(c, on=keys, how="full", coalesce=True)
    zero = ["orders", "failed_orders", "bulk_orders", "paid_orders", "refunds", "listings", "markup_n"]
    df = df.with_columns([pl.col(z).fill_null(0) for z in zero] + [pl.col("markup_sum").fill_null(0.0)]).sort(
        "tenant_id", "user_id", "day"
    )
    group = ["tenant_id", "user_id"]

    def roll(days: int, aggs: list[pl.Expr]) -> pl.DataFrame:
        return df.rolling(index_column="day", period=f"{days}d", group_by=group).agg(aggs)

    r90 = roll(
        REFUND_DAYS,
        [
            pl.sum("paid_orders").alias("paid_orders_90d"),
            pl.sum("refunds").alias("refunds_90d"),
            pl.min("first_refund_at").alias("first_refund_90d"),
        ],
    )
    r30 = roll(
        RESALE_DAYS,
        [
            pl.sum("listings").alias("listings_30d"),
            pl.sum("markup_sum").alias("_ms"),
            pl.sum("markup_n").alias("_mn"),
            pl.min("min_hours_to_resale").alias("min_hours_to_resale_30d"),
            pl.sum("bulk_orders").alias("bulk_orders_30d"),
            pl.min("first_bulk_at").alias("first_bulk_30d"),
        ],
    )
    df = df.join(r90, on=keys, how="left").join(r30, on=keys, how="left")
    signup = inp.users.select(pl.col("id").alias("user_id"), pl.col("created_at").alias("_signup"))
    df = df.join(signup, on="user_id", how="left")
    return df.with_columns(
        ((pl.col("first_bulk_30d") - pl.col("_signup")).dt.total_seconds() / 3600).alias(
            "bulk_account_age_h"
        ),
        pl.coalesce("venue_id", "refund_venue_id", "listing_venue_id").alias("venue_id"),
        pl.when(pl.col("orders") > 0)
        .then(pl.col("failed_orders") / pl.col("orders"))
        .otherwise(0.0)
        .alias("failed_ratio"),
        pl.when(pl.col("paid_orders_90d") > 0)
        .then(pl.min_horizontal(pl.col("refunds_90d") / pl.col("paid_orders_90d"), pl.lit(1.0)))
        .otherwise(pl.when(pl.col("refunds_90d") > 0).then(1.0).otherwise(0.0))
        .alias("refund_ratio_90d"),
        pl.when(pl.col("_mn") > 0)
        .then(pl.col("_ms") / pl.col("_mn"))
        .otherwise(0.0)
        .alias("resale_markup_30d"),
        pl.max_horizontal("last_order_at", "last_refund_at", "last_listing_at").alias("last_activity_at"),
        pl.min_horizontal("first_order_at", "first_refund_at").alias("first_activity_at"),
    ).drop("refund_venue_id", "listing_venue_id", "_ms", "_mn", "markup_sum", "markup_n", "_signup")
