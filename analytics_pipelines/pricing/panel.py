"""The daily panel the elasticity model is fitted on: one row per ticket type and full UTC day it was on sale
(not sold out, before the event, before today), with the tickets sold that day, the price in effect all day
and the controls (days to event, share of the sales window elapsed, the type's tier (ticket_types.category:
early bird, general, VIP...; each tier has its own sales curve over the window), weekday). Pure polars.

Ticket types that cannot enter the model get a reason row instead (never a silent drop):
- `event_cancelled_or_postponed`: the event's sales are not normal demand;
- `currency_differs_from_venue`: its price is not comparable with the venue's other prices;
- `free_ticket`: every price is 0 (no log price);
- `price_change_to_zero`: the days at price 0 are left out (the type's other days stay);
- `no_sale_window` / `no_observed_day`: no full day on sale before today (or the event) to learn from;
- `one_price`: never changed price while observed: it informs the controls only (no price evidence).
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

#: days-to-event bins (upper bounds, days): the last bin is everything beyond
DTE_BINS = (1, 2, 3, 5, 7, 10, 14, 21, 30, 45, 60, 90, 120)
#: share-of-sales-window bins (upper bounds): 2.5 % wide, finer at both ends, where sales curves are steepest
#: (launch spike, last-minute surge); coarser bins leave curve inside a bin that price changes correlate with
WINDOW_EDGES = (
    (0.01, 0.02, 0.035, 0.05, 0.075, 0.1)
    + tuple(round(0.125 + 0.025 * i, 3) for i in range(31))
    + (0.9, 0.925, 0.95, 0.965, 0.98, 0.99)
)

EXCLUSION_SCHEMA = {
    "tenant_id": pl.String,
    "venue_id": pl.String,
    "event_id": pl.String,
    "ticket_type_id": pl.String,
    "reason": pl.String,
    "detail": pl.String,
}


def venue_currency(orders: pl.DataFrame) -> pl.DataFrame:
    """A venue's currency: the one most of its recognized orders are in (ties: alphabetical)."""
    return (
        orders.drop_nulls(["venue_id", "currency"])
        .group_by("venue_id", "currency")
        .len()
        .sort(["venue_id", "len", "currency"], descending=[False, True, False])
        .group_by("venue_id", maintain_order=True)
        .first()
        .select("venue_id", pl.col("currency").alias("venue_currency"))
    )


def daily_sales(items: pl.DataFrame, orders: pl.DataFrame) -> pl.DataFrame:
    """Tickets per ticket type and day: recognized orders' (fct_orders) items (stg_order_items)."""
    return (
        items.join(orders.select("order_id", "day"), left_on="order_id", right_on="order_id", how="inner")
        .group_by("ticket_type_id", "day")
        .agg(pl.col("quantity").sum().cast(pl.Int64).alias("tickets"))
    )


def _exclusions(frame: pl.DataFrame, reason: str, detail: pl.Expr | str | None = None) -> pl.DataFrame:
    d = pl.lit(detail) if isinstance(detail, str) or detail is None else detail
    return frame.select(
        "tenant_id",
        "venue_id",
        "event_id",
        pl.col("ticket_type_id"),
        pl.lit(reason).alias("reason"),
        d.cast(pl.String).alias("detail"),
    )


def daily_panel(
    types: pl.DataFrame,
    events: pl.DataFrame,
    sales: pl.DataFrame,
    prices: pl.DataFrame,
    currencies: pl.DataFrame,
    today: date,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(panel, exclusions). types: stg_ticket_types (id, event_id, currency, quantity, sale_start,
    sale_end); events: event_dim (event_id, tenant_id, venue_id, category_id, starts_at,
    cancelled_or_postponed); sales: daily_sales; prices: price_history rows (ticket_type_id, price_cents,
    valid_from; 'recommendation' rows are decisions, not prices, and are ignored); currencies:
    venue_currency."""
    t = (
        types.rename({"id": "ticket_type_id"})
        .with_columns(
            (pl.col("category") if "category" in types.columns else pl.lit(None, pl.String))
            .fill_null("(none)")
            .alias("tier")
        )
        .join(events, on="event_id", how="inner")
        .join(currencies, on="venue_id", how="left")
    )
    # an integer per ticket type in id order: the days (millions of rows) are joined, grouped and sorted by
    # it instead of by the 36-character id, which the panel keeps
    t = t.with_columns(pl.col("ticket_type_id").rank("dense").cast(pl.Int64).alias("tcode"))
    codes = t.select("ticket_type_id", "tcode").unique()
    prices = prices.filter(pl.col("source") != "recommendation") if "source" in prices.columns else prices
    pr = prices.select(
        "ticket_type_id",
        pl.col("valid_from").dt.convert_time_zone("UTC").dt.cast_time_unit("us").alias("at"),
        "price_cents",
    ).sort("at")
    out: list[pl.DataFrame] = []
    cancelled = pl.col("cancelled_or_postponed").fill_null(False)
    out.append(_exclusions(t.filter(cancelled), "event_cancelled_or_postponed"))
    t = t.filter(~cancelled)
    other = pl.col("venue_currency").is_not_null() & (pl.col("currency") != pl.col("venue_currency"))
    out.append(
        _exclusions(
            t.filter(other),
            "currency_differs_from_venue",
            pl.format("{} vs venue {}", pl.col("currency"), pl.col("venue_currency")),
        )
    )
    t = t.filter(~other)
    top = pr.group_by("ticket_type_id").agg(pl.col("price_cents").max().alias("max_price"))
    t = t.join(top, on="ticket_type_id", how="left")
    free = pl.col("max_price").fill_null(0) <= 0
    out.append(_exclusions(t.filter(free), "free_ticket", "every price is 0"))
    t = t.filter(~free)
    first = (pl.col("sale_start").dt.convert_time_zone("UTC").dt.date() + timedelta(days=1)).alias("first")
    last = pl.min_horizontal(
        pl.col("sale_end").dt.convert_time_zone("UTC").dt.date() - timedelta(days=1),
        pl.col("starts_at").dt.convert_time_zone("UTC").dt.date() - timedelta(days=1),
        pl.lit(today - timedelta(days=1)),
    ).alias("last")
    t = t.with_columns(first, last)
    window = (
        pl.col("first").is_not_null() & pl.col("last").is_not_null() & (pl.col("first") <= pl.col("last"))
    )
    out.append(_exclusions(t.filter(~window), "no_sale_window", "no full day on sale before today"))
    t = t.filter(window)
    ids = ["tenant_id", "venue_id", "event_id", "category_id", "ticket_type_id", "tier"]
    days = (
        t.select(
            # the ids ride along as categoricals (4-byte codes through the sorts and joins), strings again
            # in the panel
            *[pl.col(c).cast(pl.Categorical) for c in ids],
            "tcode",
            "quantity",
            "starts_at",
            "sale_start",
            "sale_end",
            pl.date_ranges("first", "last", "1d").alias("day"),
        )
        .explode("day", empty_as_null=True)
        .drop_nulls("day")
    )
    day_start = pl.col("day").cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    days = days.with_columns(
        day_start.alias("at"), (day_start + pl.duration(days=1) - pl.duration(microseconds=1)).alias("at_end")
    ).sort("at")
    pr = pr.join(codes, on="ticket_type_id", how="inner").select("tcode", "at", "price_cents").sort("at")
    days = days.join_asof(pr, on="at", by="tcode", strategy="backward", check_sortedness=False).rename(
        {"price_cents": "p0"}
    )
    days = (
        days.sort("at_end")
        .join_asof(
            pr.rename({"at": "at_end"}), on="at_end", by="tcode", strategy="backward", check_sortedness=False
        )
        .rename({"price_cents": "p1"})
    )
    # whole-day price only: a day the price changed mixes two prices
    days = days.filter(pl.col("p0").is_not_null() & (pl.col("p0") == pl.col("p1")))
    zero = days.filter(pl.col("p0") <= 0)
    out.append(
        _exclusions(
            zero.group_by("tenant_id", "venue_id", "event_id", "ticket_type_id").len(),
            "price_change_to_zero",
            pl.format("{} days at price 0 left out", pl.col("len")),
        )
    )
    days = days.filter(pl.col("p0") > 0)
    sales = sales.join(codes, on="ticket_type_id", how="inner").select("tcode", "day", "tickets")
    days = days.join(sales, on=["tcode", "day"], how="left").with_columns(pl.col("tickets").fill_null(0))
    # a sold-out type cannot sell: its days from the sell-out on are censored, not demand
    cum = (
        sales.sort("day")
        .with_columns(pl.col("tickets").cum_sum().over("tcode").alias("cum"))
        .join(t.select("tcode", "quantity"), on="tcode", how="inner")
        .filter(pl.col("quantity").is_not_null() & (pl.col("cum") >= pl.col("quantity")))
        .group_by("tcode")
        .agg(pl.col("day").min().alias("sold_out_day"))
    )
    days = days.join(cum, on="tcode", how="left").filter(
        pl.col("sold_out_day").is_null() | (pl.col("day") < pl.col("sold_out_day"))
    )
    observed = days.select("tcode").unique()
    out.append(
        _exclusions(
            t.join(observed, on="tcode", how="anti"),
            "no_observed_day",
            "no full day on sale with a positive price before a sell-out",
        )
    )
    span = (pl.col("sale_end") - pl.col("sale_start")).dt.total_seconds()
    dte = (pl.col("starts_at").dt.convert_time_zone("UTC").dt.date() - pl.col("day")).dt.total_days()
    elapsed = (pl.col("at") + pl.duration(hours=12) - pl.col("sale_start")).dt.total_seconds()
    # the tiers' dense ranks (their index among the panel's tiers in order) without ranking every row
    tiers = pl.Enum(days["tier"].unique().drop_nulls().cast(pl.String).sort())
    same_type = pl.col("tcode") == pl.col("tcode").shift(1)
    panel = (
        days.sort("tcode", "day")
        .with_columns(pl.col(ids).cast(pl.String))
        .with_columns(
            pl.col("p0").alias("price_cents"),
            dte.alias("days_to_event"),
            pl.col("day").dt.weekday().sub(1).cast(pl.Int64).alias("weekday"),
            (elapsed / pl.when(span > 0).then(span).otherwise(None)).clip(0, 0.999).alias("window_share"),
        )
        .with_columns(
            # the panel is in type and day order: a change from the type's day before
            ((pl.col("price_cents") != pl.col("price_cents").shift(1)) & same_type)
            .fill_null(False)
            .cast(pl.Int64)
            .alias("price_change"),
            pl.col("days_to_event").cut(list(DTE_BINS)).to_physical().cast(pl.Int64).alias("dte_bin"),
            (
                pl.col("tier").cast(tiers).to_physical().cast(pl.Int64) * (len(WINDOW_EDGES) + 1)
                + pl.col("window_share").fill_null(0.5).cut(list(WINDOW_EDGES)).to_physical().cast(pl.Int64)
            ).alias("curve_bin"),
        )
        .select(
            "tenant_id",
            "venue_id",
            "event_id",
            "category_id",
            "ticket_type_id",
            "tier",
            "day",
            "tickets",
            "price_cents",
            "price_change",
            "days_to_event",
            "dte_bin",
            "weekday",
            "curve_bin",
        )
    )
    changes = panel.group_by("ticket_type_id").agg(pl.col("price_change").sum().alias("n"))
    one = panel.join(changes.filter(pl.col("n") == 0), on="ticket_type_id", how="semi")
    out.append(
        _exclusions(
            one.group_by("tenant_id", "venue_id", "event_id", "ticket_type_id").len(),
            "one_price",
            pl.format("one price over {} observed days: informs the controls only", pl.col("len")),
        )
    )
    exclusions = pl.concat(
        [e.select(list(EXCLUSION_SCHEMA)).cast(EXCLUSION_SCHEMA) for e in out], how="vertical"
    ).sort("tenant_id", "ticket_type_id", "reason", nulls_last=True)
    return panel, exclusions
