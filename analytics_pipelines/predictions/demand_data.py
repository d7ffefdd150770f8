"""The demand model's data: daily ticket sales per ticket type (zero-filled over its sale window) and the
feature rows (series, origin T, target day d = T + h) built from them, vectorized in polars.

A series is one ticket type of one event. Its sale window runs from the first day it could sell (its
sale_start day, or its first sale when earlier) to its last selling day (the earlier of sale_end and the
event's start, or the last sale when later). Tickets on a day = the quantities of the recognized orders'
(fct_orders) items of that type, on the order's recognition day. Everything a feature row holds about the
series is known at the end of its origin day T: sales through T, the price in effect on T, the calendar and
the event's date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl

from analytics_pipelines.marts import build as B
from analytics_pipelines.warehouse import Warehouse

#: the features of one row, in matrix order; CATEGORICAL are integer codes (HistGradientBoosting categories)
NUMERIC = [
    "horizon_day",
    "days_to_event",
    "days_to_event_at_origin",
    "days_open",
    "weekday",
    "month",
    "day_of_year",
    "log_price",
    "price_ratio",
    "log_quantity",
    "sold_share",
    "remaining",
    "last7",
    "last28",
    "rate_since_open",
    "same_weekday_last_week",
    "window_days",
    "venue_capacity",
]
CATEGORICAL = ["category_code", "venue_code", "venue_type_code", "tier_code"]
FEATURES = NUMERIC + CATEGORICAL
#: HistGradientBoosting takes at most 255 categories per feature; rarer values share the last code
MAX_CODES = 250


@dataclass
class DemandInputs:
    #: one row per series: tenant_id, venue_id, event_id, ticket_type_id, category_id, tier, quantity,
    #: price_cents, currency, first_day, last_day, event_day, status, cancelled_or_postponed, deleted,
    #: is_active, venue_type, venue_capacity
    series: pl.DataFrame
    #: ticket_type_id, day, tickets (days with sales only)
    sales: pl.DataFrame
    #: ticket_type_id, day, price_cents (the last price set on or before that day, days with a change)
    prices: pl.DataFrame
    #: events without ticket types (no series): tenant_id, venue_id, event_id, status flags
    events: pl.DataFrame


def read_inputs(wh: Warehouse) -> DemandInputs:
    """Everything the demand model reads, from the warehouse (facts, staging dimensions, price_history)."""
    orders = B.fact_history(wh, "fct_orders", ["order_id", "day", "event_id"])
    items = wh.read_table("stg_order_items", columns=["order_id", "ticket_type_id", "quantity"])
    types = wh.read_table(
        "stg_ticket_types",
        columns=[
            "id",
            "tenant_id",
            "event_id",
            "category",
            "price_cents",
            "currency",
            "quantity",
            "sale_start",
            "sale_end",
            "is_active",
        ],
    )
    venues = wh.read_table("stg_venues", columns=["id", "venue_type", "max_capacity"])
    prices = (
        wh.read_table("price_history", columns=["ticket_type_id", "price_cents", "valid_from"])
        if "price_history" in wh.tables()
        else pl.DataFrame(
            schema={"ticket_type_id": pl.String, "price_cents": pl.Int64, "valid_from": pl.Datetime}
        )
    )
    return assemble(orders, items, types, B.event_dim(wh), venues, prices)


def assemble(
    orders: pl.DataFrame,
    items: pl.DataFrame,
    types: pl.DataFrame,
    events: pl.DataFrame,
    venues: pl.DataFrame,
    prices: pl.DataFrame,
) -> DemandInputs:
    """The inputs from plain frames (tests build them by hand)."""
    sales = (
        orders.select("order_id", "day")
        .join(items.select("order_id", "ticket_type_id", "quantity"), on="order_id")
        .group_by("ticket_type_id", "day")
        .agg(pl.col("quantity").sum().cast(pl.Int64).alias("tickets"))
        .filter(pl.col("tickets") > 0)
    )
    span = sales.group_by("ticket_type_id").agg(
        pl.col("day").min().alias("first_sale"), pl.col("day").max().alias("last_sale")
    )
    ev = events.select(
        "event_id",
        "venue_id",
        "category_id",
        "status",
        "cancelled_or_postponed",
        "deleted",
        pl.col("starts_at").dt.date().alias("event_day"),
    )
    series = (
        types.rename({"id": "ticket_type_id", "category": "tier"})
        .join(ev, on="event_id", how="inner")
        .join(span, on="ticket_type_id", how="left")
        .join(
            venues.select(
                pl.col("id").alias("venue_id"), "venue_type", pl.col("max_capacity").alias("venue_capacity")
            ),
            on="venue_id",
            how="left",
        )
        .with_columns(
            pl.min_horizontal(pl.col("sale_start").dt.date(), pl.col("first_sale")).alias("first_day"),
            pl.max_horizontal(
                pl.min_horizontal(pl.col("sale_end").dt.date(), pl.col("event_day")), pl.col("last_sale")
            ).alias("last_day"),
            pl.col("quantity").fill_null(0).cast(pl.Int64),
            pl.col("price_cents").fill_null(0).cast(pl.Int64),
            pl.col("is_active").fill_null(True),
            pl.col("venue_capacity").fill_null(0).cast(pl.Int64),
        )
        .with_columns(
            pl.col("first_day").fill_null(pl.col("event_day")),
            pl.col("last_day").fill_null(pl.col("event_day")),
        )
        .drop("sale_start", "sale_end", "first_sale", "last_sale")
        .sort("ticket_type_id")
    )
    price_days = (
        prices.filter(pl.col("price_cents").is_not_null() & pl.col("valid_from").is_not_null())
        .with_columns(pl.col("valid_from").dt.date().alias("day"))
        .sort("ticket_type_id", "valid_from")
        .group_by("ticket_type_id", "day", maintain_order=True)
        .agg(pl.col("price_cents").last().cast(pl.Int64))
    )
    no_types = events.join(types.select(pl.col("event_id")).unique(), on="event_id", how="anti")
    return DemandInputs(series, sales, price_days, no_types)


def daily_grid(inp: DemandInputs, through: date) -> pl.DataFrame:
    """One row per series and day of its sale window up to `through`: tickets (0 on days without sales),
    cumulative tickets through the day, the 7/28-day sums ending that day, the price in effect (the last
    change on or before it; before the first recorded price, the first one), days since the window opened."""
    s = inp.series.filter(pl.col("first_day") <= through).select(
        "ticket_type_id",
        pl.date_ranges("first_day", pl.min_horizontal("last_day", pl.lit(through))).alias("day"),
    )
    g = (
        s.explode("day", empty_as_null=True)
        .drop_nulls("day")
        .join(inp.sales, on=["ticket_type_id", "day"], how="left")
        .join(inp.prices, on=["ticket_type_id", "day"], how="left")
        .with_columns(pl.col("tickets").fill_null(0))
        .sort("ticket_type_id", "day")
    )
    by = "ticket_type_id"
    return g.with_columns(
        pl.col("tickets").cum_sum().over(by).alias("cum_tickets"),
        pl.col("tickets").rolling_sum(7, min_samples=1).over(by).alias("last7"),
        pl.col("tickets").rolling_sum(28, min_samples=1).over(by).alias("last28"),
        pl.col("tickets").shift(6).over(by).fill_null(0).alias("lag6"),
        pl.col("price_cents").forward_fill().backward_fill().over(by).alias("price_cents"),
        pl.int_range(pl.len()).over(by).alias("days_open"),
    )


def _codes(values: pl.Series) -> dict[str, int]:
    """Stable integer codes for a categorical column: the most frequent MAX_CODES values by name."""
    counts = values.drop_nulls().value_counts(sort=True).head(MAX_CODES)
    names = sorted(counts[values.name].cast(pl.String).to_list())
    return {v: i for i, v in enumerate(names)}


def category_codes(series: pl.DataFrame) -> dict[str, dict[str, int]]:
    return {
        "category_code": _codes(series["category_id"]),
        "venue_code": _codes(series["venue_id"]),
        "venue_type_code": _codes(series["venue_type"]),
        "tier_code": _codes(series["tier"]),
    }


def _code_expr(column: str, codes: dict[str, int]) -> pl.Expr:
    other = len(codes)
    return (
        pl.col(column)
        .cast(pl.String)
        .replace_strict(codes, default=other, return_dtype=pl.Int64)
        .fill_null(other)
    )


SOURCE_OF = {
    "category_code": "category_id",
    "venue_code": "venue_id",
    "venue_type_code": "venue_type",
    "tier_code": "tier",
}


def feature_rows(
    inp: DemandInputs,
    grid: pl.DataFrame,
    origins: list[date],
    horizon: int,
    codes: dict[str, dict[str, int]],
    observed_through: date | None = None,
    keys: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Feature rows for every series open at each origin T (its window holds T and a later day) and every
    target day d in (T, min(T + horizon, last_day)]; `tickets` is the target when d <= observed_through
    (else NULL: a forecast row). State at T (sales through T, price on T) comes from the grid. `keys`
    (ticket_type_id, origin, horizon_day): only those rows (a training sample), the others never built."""
    state = grid.filter(pl.col("day").is_in(origins)).rename({"day": "origin"})
    # the days any row can look up (its origin's last week, its target day): the grid's other days are never
    # joined, and at `large` a test or forecast origin needs ~5 % of a grid of millions of rows
    near = (
        grid.filter(
            pl.col("day").is_between(min(origins) - timedelta(days=7), max(origins) + timedelta(days=horizon))
        )
        if origins
        else grid.clear()
    )
    first_price = inp.series.select("ticket_type_id", pl.col("price_cents").alias("type_price"))
    # the type's first price: the grid's price is filled forward and backward within a type, so the first
    # day's (days_open 0) is its first recorded one (a scan, not a group-by over the whole grid per call)
    init = grid.filter(pl.col("days_open") == 0).select(
        "ticket_type_id", pl.col("price_cents").alias("first_price")
    )
    last = inp.series.select("ticket_type_id", "last_day")
    if keys is None:
        keys = (
            state.select("ticket_type_id", "origin")
            .join(last, on="ticket_type_id")
            .filter(pl.col("last_day") > pl.col("origin"))
            .select(
                "ticket_type_id",
                "origin",
                pl.int_ranges(
                    1, pl.min_horizontal((pl.col("last_day") - pl.col("origin")).dt.total_days(), horizon) + 1
                ).alias("horizon_day"),
            )
            .explode("horizon_day", empty_as_null=True)
            .drop_nulls("horizon_day")
        )
    rows = (
        keys.select("ticket_type_id", "origin", pl.col("horizon_day").cast(pl.Int64))
        .join(state, on=["ticket_type_id", "origin"])
        .join(
            inp.series.select(
                "ticket_type_id",
                "tenant_id",
                "venue_id",
                "event_id",
                "category_id",
                "venue_type",
                "tier",
                "quantity",
                "venue_capacity",
                "first_day",
                "last_day",
                "event_day",
            ),
            on="ticket_type_id",
        )
        .join(first_price, on="ticket_type_id", how="left")
        .join(init, on="ticket_type_id", how="left")
        .with_columns((pl.col("origin") + pl.duration(days=pl.col("horizon_day"))).alias("day"))
    )
    # the same weekday in the last observed week (the seasonal-naive forecast is built from it)
    lag_day = pl.col("origin") - pl.duration(days=6 - ((pl.col("horizon_day") - 1) % 7))
    week = near.select(
        "ticket_type_id", pl.col("day").alias("lag_day"), pl.col("tickets").alias("same_weekday_last_week")
    )
    rows = rows.with_columns(lag_day.alias("lag_day")).join(
        week, on=["ticket_type_id", "lag_day"], how="left"
    )
    price = pl.coalesce("price_cents", "type_price").fill_null(0)
    rows = rows.with_columns(
        (pl.col("event_day") - pl.col("day")).dt.total_days().alias("days_to_event"),
        (pl.col("event_day") - pl.col("origin")).dt.total_days().alias("days_to_event_at_origin"),
        ((pl.col("day") - pl.col("first_day")).dt.total_days()).alias("days_open"),
        pl.col("day").dt.weekday().alias("weekday"),
        pl.col("day").dt.month().alias("month"),
        pl.col("day").dt.ordinal_day().alias("day_of_year"),
        (price.cast(pl.Float64) / 100 + 1).log().alias("log_price"),
        (price.cast(pl.Float64) / pl.col("first_price").cast(pl.Float64))
        .fill_nan(1.0)
        .fill_null(1.0)
        .clip(0, 10)
        .alias("price_ratio"),
        price.alias("origin_price_cents"),
        (pl.col("quantity").cast(pl.Float64) + 1).log().alias("log_quantity"),
        (pl.col("cum_tickets") / pl.col("quantity").clip(lower_bound=1)).clip(0, 1).alias("sold_share"),
        (pl.col("quantity") - pl.col("cum_tickets")).clip(lower_bound=0).alias("remaining"),
        (pl.col("cum_tickets") / (pl.col("origin") - pl.col("first_day")).dt.total_days().add(1)).alias(
            "rate_since_open"
        ),
        (pl.col("last_day") - pl.col("first_day")).dt.total_days().alias("window_days"),
        pl.col("same_weekday_last_week").fill_null(0),
        *[_code_expr(SOURCE_OF[c], codes[c]).alias(c) for c in CATEGORICAL],
    )
    target = near.select("ticket_type_id", "day", pl.col("tickets").alias("target"))
    out = rows.drop("tickets").join(target, on=["ticket_type_id", "day"], how="left")
    if observed_through is not None:
        out = out.with_columns(
            pl.when(pl.col("day") <= observed_through).then(pl.col("target").fill_null(0)).alias("target")
        )
    return out.sort("origin", "ticket_type_id", "day")


def origins_between(first: date, last: date, step_days: int) -> list[date]:
    """Origins every `step_days` ending at `last` (inclusive), none before `first`."""
    out, d = [], last
    while d >= first:
        out.append(d)
        d -= timedelta(days=step_days)
    return sorted(out)
