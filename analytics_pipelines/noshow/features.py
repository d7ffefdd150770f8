"""Per-ticket features of the no-show model, point in time, and the old service's rule beside them.

A ticket = a sold ticket (the no_shows mart's statuses: sold, minted, active, transferred, checked_in, used)
of an event; its holder is tickets.user_id (after any transfer), else original_purchaser_id. Its label, for
an event that has ended (not cancelled or postponed): no scan at all. The no_shows mart counts tickets
without a VALID scan; an invalid or duplicate scan still means the holder came to the gate, and counting it
as a no-show adds noise the features cannot explain (2.5 % of the generated scans: out-of-time AUC 0.69
instead of 0.75 on `small`).

Point in time: every ticket has a cutoff = min(its event's start, now). A feature uses only what happened
strictly before the cutoff: the holder's past attendance counts the tickets of events that ENDED before it
(never this event, never a later one), the resale flag counts resales completed before it, the seed rule's
customer profile the orders recognized before it. Lead time and the price paid are known at purchase.
An ended event's tickets are thus described as they were when the event started; an upcoming event's as
they are now (the same features a prediction made now can see).

Everything is a polars expression or join (as-of joins for the holder's history and profile): no per-row
Python.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from analytics_pipelines.customers.build import SOLD_STATUSES
from analytics_pipelines.warehouse.base import Warehouse

#: the model's numeric features (column order of the matrix); `category_code` is added by the model
NUMERIC = [
    "lead_days",
    "log_price",
    "free",
    "price_vs_type_max",
    "price_pos_in_range",
    "price_vs_event_max",
    "log_price_vs_event_mean",
    "resold",
    "transferred",
    "transfer_count",
    "holder_event_tickets",
    "prior_tickets",
    "prior_no_shows",
    "prior_events",
    "prior_no_show_rate",
    "prior_no_show_rate_smoothed",
    "has_history",
    "event_weekday",
]
#: The seed's rule (analytics-service predictNoShow): 0.1 + 0.2 if the customer's last purchase at the venue
#: is > 180 days old + 0.1 if their average order value is < $50 + a random "weather" term w ~ U(0, 0.2) added
#: only when w > 0.1. Replaced by its expectation: P(w > 0.1) x E[w | w > 0.1] = 0.5 x 0.15 = 0.075.
SEED_BASE, SEED_INACTIVE, SEED_LOW_AOV, SEED_WEATHER = 0.1, 0.2, 0.1, 0.075
DAY_US = 86_400 * 1_000_000
#: scan results that mean the holder came: any scan (an invalid or duplicate scan is still a holder at the
#: gate). The no_shows mart counts only valid scans; docs/no-show.md says why the model differs.
ATTENDED_RESULTS = ("valid", "invalid", "duplicate")
#: the holder's smoothed past no-show rate: (no-shows + PRIOR_WEIGHT x PRIOR_RATE) / (tickets + PRIOR_WEIGHT),
#: a fixed prior (not the data's rate: a constant cannot leak the future)
PRIOR_RATE, PRIOR_WEIGHT = 0.1, 3.0


@dataclass
class Inputs:
    """What the features are computed from (read_inputs reads them from the warehouse)."""

    #: stg_tickets: id, event_id, ticket_type_id, user_id, original_purchaser_id, price_cents, status,
    #: purchased_at, transfer_count, currency (TICKET_COLUMNS; a tenant_id column is not read)
    tickets: pl.DataFrame
    #: ticket ids with a scan whose result is one of ATTENDED_RESULTS (the holder came)
    valid_scans: pl.DataFrame
    #: event_dim: tenant_id, venue_id, event_id, category_id, status, starts_at, ends_at,
    #: cancelled_or_postponed, deleted
    events: pl.DataFrame
    #: per ticket type: ticket_type_id, type_currency, min_price_cents, max_price_cents (price_history)
    type_prices: pl.DataFrame
    #: completed resales: ticket_id, completed_at
    resales: pl.DataFrame
    #: recognized orders: tenant_id, venue_id, user_id, recognized_at, gross_revenue_cents
    orders: pl.DataFrame


#: what read_inputs reads of stg_tickets (not tenant_id: the event's is used; at `large` a UUID column of
#: 10M rows is ~0.5 GB)
TICKET_COLUMNS = [
    "id",
    "event_id",
    "ticket_type_id",
    "user_id",
    "original_purchaser_id",
    "price_cents",
    "status",
    "purchased_at",
    "transfer_count",
    "currency",
]


def read_inputs(wh: Warehouse) -> Inputs:
    from analytics_pipelines.marts import build as B

    have = set(wh.tables())
    types = B._stg(wh, "ticket_types", columns=["id", "price_cents", "currency"])
    ranges = types.select(
        pl.col("id").alias("ticket_type_id"),
        pl.col("currency").alias("type_currency"),
        pl.col("price_cents").alias("min_price_cents"),
        pl.col("price_cents").alias("max_price_cents"),
    )
    if "price_history" in have:  # every price a type has had, its listed one included
        hist = wh.read_table("price_history", columns=["ticket_type_id", "price_cents"])
        ranges = (
            pl.concat(
                [
                    ranges.select("ticket_type_id", "min_price_cents"),
                    hist.rename({"price_cents": "min_price_cents"}),
                ]
            )
            .group_by("ticket_type_id")
            .agg(pl.min("min_price_cents"), pl.max("min_price_cents").alias("max_price_cents"))
            .join(ranges.select("ticket_type_id", "type_currency"), on="ticket_type_id", how="left")
        )
    resales = (
        wh.read_table("fct_resales", columns=["ticket_id", "completed_at"])
        if "fct_resales" in have
        else pl.DataFrame(schema={"ticket_id": pl.String, "completed_at": pl.Datetime("us", "UTC")})
    )
    orders = (
        wh.read_table(
            "fct_orders", columns=["tenant_id", "venue_id", "user_id", "recognized_at", "gross_revenue_cents"]
        )
        if "fct_orders" in have
        else pl.DataFrame(
            schema={
                "tenant_id": pl.String,
                "venue_id": pl.String,
                "user_id": pl.String,
                "recognized_at": pl.Datetime("us", "UTC"),
                "gross_revenue_cents": pl.Int64,
            }
        )
    )
    scans = B._stg(wh, "ticket_scans", columns=["ticket_id", "result"])
    return Inputs(
        tickets=B._stg(wh, "tickets", columns=TICKET_COLUMNS),
        valid_scans=scans.filter(pl.col("result").is_in(ATTENDED_RESULTS)).select("ticket_id").unique(),
        events=B.event_dim(wh).select(
            "tenant_id",
            "venue_id",
            "event_id",
            "category_id",
            "status",
            "starts_at",
            "ends_at",
            "cancelled_or_postponed",
            "deleted",
        ),
        type_prices=ranges,
        resales=resales,
        orders=orders,
    )


def _utc(col: str, schema: pl.Schema) -> pl.Expr:
    dt = schema[col]
    if isinstance(dt, pl.Datetime) and dt.time_zone is None:
        return pl.col(col).dt.replace_time_zone("UTC").dt.cast_time_unit("us")
    return pl.col(col).dt.convert_time_zone("UTC").dt.cast_time_unit("us")


def event_phases(events: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """event_dim rows with `phase`, the first that applies: cancelled_or_postponed, no_schedule, ended (ends
    before now), deleted, in_progress (started, not ended), upcoming (starts after now)."""
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    ev = events.with_columns(_utc("starts_at", events.schema), _utc("ends_at", events.schema))
    return ev.with_columns(
        pl.when(pl.col("cancelled_or_postponed"))
        .then(pl.lit("cancelled_or_postponed"))
        .when(pl.col("starts_at").is_null())
        .then(pl.lit("no_schedule"))
        .when(pl.col("ends_at") < now)
        .then(pl.lit("ended"))  # a deleted event that took place still counts (the no_shows mart's rule)
        .when(pl.col("deleted"))
        .then(pl.lit("deleted"))
        .when(pl.col("starts_at") <= now)
        .then(pl.lit("in_progress"))
        .otherwise(pl.lit("upcoming"))
        .alias("phase")
    )


#: the columns of ticket_rows (and the first ones of features)
ROW_COLUMNS = [
    "ticket_id",
    "tenant_id",
    "venue_id",
    "event_id",
    "ticket_type_id",
    "category_id",
    "holder_id",
    "transferred",
    "price_cents",
    "currency",
    "purchased_at",
    "transfer_count",
    "starts_at",
    "ends_at",
    "phase",
    "cutoff",
    "no_show",
]


def ticket_rows(inp: Inputs, now: datetime) -> pl.DataFrame:
    """One row per sold ticket of a known event (in the tickets' order): the event's columns, phase, cutoff,
    holder, whether it was transferred and (ended events) the label `no_show` (no scan at all:
    ATTENDED_RESULTS). Only ROW_COLUMNS: the holder replaces user_id/original_purchaser_id, so at `large`
    (10M tickets) two UUID columns and the statuses are not carried through every later step.

    The repeated ids (tenant, venue, event, category, ticket type, holder) are pl.Categorical: every join,
    group-by and as-of `by` on them hashes a 4-byte code instead of a 36-character UUID, and a column costs
    4 bytes a row (at `large`: 67 CPU-s and 11.4 GB for the features with strings). The ticket id stays a
    string (unique: nothing to share). Tables cast them back to strings (tables.PRED_SCHEMA...)."""
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    ev = event_phases(inp.events, now).select(
        *(pl.col(c).cast(pl.Categorical) for c in ("tenant_id", "venue_id", "event_id", "category_id")),
        "starts_at",
        "ends_at",
        "phase",
    )
    t = inp.tickets
    valid = inp.valid_scans["ticket_id"].implode()
    return (
        t.lazy()
        .filter(pl.col("status").is_in(SOLD_STATUSES))
        .select(
            pl.col("id").alias("ticket_id"),
            pl.col("event_id").cast(pl.Categorical),
            pl.col("ticket_type_id").cast(pl.Categorical),
            pl.coalesce("user_id", "original_purchaser_id").cast(pl.Categorical).alias("holder_id"),
            (
                pl.col("user_id").is_not_null()
                & pl.col("original_purchaser_id").is_not_null()
                & (pl.col("user_id") != pl.col("original_purchaser_id"))
            )
            .cast(pl.Float64)
            .alias("transferred"),
            "price_cents",
            "currency",
            _utc("purchased_at", t.schema),
            "transfer_count",
        )
        .join(ev.lazy(), on="event_id", how="inner", maintain_order="left")
        .with_columns(
            pl.min_horizontal(pl.col("starts_at"), pl.lit(now).dt.cast_time_unit("us")).alias("cutoff"),
            pl.when(pl.col("phase") == "ended")
            .then(~pl.col("ticket_id").is_in(valid))
            .otherwise(None)
            .alias("no_show"),
        )
        .select(ROW_COLUMNS)
        .collect()
    )


def _history(rows: pl.DataFrame) -> pl.DataFrame:
    """Per holder and ended event (ordered by the event's end): cumulative tickets, no-shows and events."""
    return (
        rows.filter(pl.col("no_show").is_not_null() & pl.col("holder_id").is_not_null())
        .group_by("tenant_id", "holder_id", "event_id")
        .agg(pl.first("ends_at"), pl.len().alias("n"), pl.col("no_show").sum().alias("k"))
        .sort("ends_at", "event_id")
        .select(
            "tenant_id",
            "holder_id",
            pl.col("ends_at").alias("history_at"),
            pl.col("n").cum_sum().over("tenant_id", "holder_id").cast(pl.Int64).alias("prior_tickets"),
            pl.col("k").cum_sum().over("tenant_id", "holder_id").cast(pl.Int64).alias("prior_no_shows"),
            (pl.int_range(pl.len()) + 1).over("tenant_id", "holder_id").cast(pl.Int64).alias("prior_events"),
        )
        .sort("history_at")
    )


def _profile(orders: pl.DataFrame) -> pl.DataFrame:
    """Per customer and venue (ordered by recognition time): cumulative orders and gross cents, the last
    purchase time (the seed's profile, with its first/last purchase swap not copied)."""
    return (
        orders.filter(pl.col("user_id").is_not_null() & pl.col("recognized_at").is_not_null())
        .with_columns(_utc("recognized_at", orders.schema))
        .sort("recognized_at")
        .select(
            pl.col("tenant_id").cast(pl.Categorical),
            pl.col("venue_id").cast(pl.Categorical),
            pl.col("user_id").cast(pl.Categorical).alias("holder_id"),
            "recognized_at",
            (pl.int_range(pl.len()) + 1)
            .over("tenant_id", "venue_id", "user_id")
            .cast(pl.Int64)
            .alias("seed_orders"),
            pl.col("gross_revenue_cents")
            .fill_null(0)
            .cum_sum()
            .over("tenant_id", "venue_id", "user_id")
            .alias("seed_spent_cents"),
        )
    )


def _aligned(side: pl.DataFrame, height: int, what: str) -> pl.DataFrame:
    if side.height != height:  # a left join on a unique key keeps every row once, in order
        raise ValueError(f"no-show features: {what} changed the row count ({side.height} != {height})")
    return side


#: features' `plan`: from ticket_id, event_id, starts_at, ends_at, phase and event_tickets of every ticket,
#: a frame of boolean columns in their order: `describe` and the samples to carry (model.describe_plan:
#: fit_sample, holdout_sample)
Plan = Callable[[pl.DataFrame], pl.DataFrame]


def features(inp: Inputs, now: datetime, plan: Plan | None = None) -> pl.DataFrame:
    """ticket_rows plus the model's features (NUMERIC, `category_id`) and the seed rule's probability, in
    ticket_rows' order. Missing values stay NULL (the classifier handles them; no table stores them).

    Memory: every join and sort runs on a narrow frame of the keys it needs (the price look-ups, the resale
    flag, the two as-of joins sorted by cutoff) whose result columns are put beside ticket_rows (hstack shares
    the columns, nothing is copied); the wide per-ticket frame is never joined, sorted or copied.

    `plan` (model.describe_plan): describe only the tickets it selects. What depends on other tickets (the
    holders' histories, the event's mean price, the holder's tickets of the event) is computed over every
    ticket first, so a described ticket's features are the same as without a plan; two columns are added:
    `event_tickets` (the event's labelled tickets, all of them) and the plan's sample columns (fit_sample,
    holdout_sample)."""
    rows = ticket_rows(inp, now)
    hist = _history(rows)
    # the features over other tickets of the event: computed on every ticket before any is left out
    rows = rows.with_columns(
        pl.col("price_cents").cast(pl.Float64).mean().over("event_id").alias("_event_mean_price"),
        pl.len().over("event_id", "holder_id").cast(pl.Float64).alias("_holder_event_tickets"),
    )
    planned, carried = plan is not None, []
    if planned:
        rows = rows.with_columns(
            pl.when(pl.col("phase") == "ended")
            .then(pl.len().over("event_id"))
            .cast(pl.Int64)
            .alias("event_tickets")
        )
        chosen = plan(rows.select("ticket_id", "event_id", "starts_at", "ends_at", "phase", "event_tickets"))
        carried = [c for c in chosen.columns if c != "describe"]
        rows = rows.hstack(chosen.get_columns()).filter(pl.col("describe")).drop("describe")
    n = rows.height
    prof = _profile(inp.orders)
    resold = (
        inp.resales.with_columns(_utc("completed_at", inp.resales.schema))
        .group_by("ticket_id")
        .agg(pl.min("completed_at").alias("resold_at"))
    )
    types = inp.type_prices.unique("ticket_type_id", keep="first").with_columns(
        pl.col("ticket_type_id").cast(pl.Categorical)
    )
    ev_max = (
        rows.select("event_id", "ticket_type_id")
        .unique()
        .join(types, on="ticket_type_id", how="left")
        .group_by("event_id")
        .agg(pl.max("max_price_cents").alias("event_max_price_cents"))
    )
    side = _aligned(
        rows.select("ticket_id", "event_id", "ticket_type_id")
        .join(types, on="ticket_type_id", how="left", maintain_order="left")
        .join(ev_max, on="event_id", how="left", maintain_order="left")
        .join(resold, on="ticket_id", how="left", maintain_order="left")
        .select("type_currency", "min_price_cents", "max_price_cents", "event_max_price_cents", "resold_at"),
        n,
        "the price and resale look-ups",
    )
    asof = _aligned(
        rows.select(
            pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row"),
            "tenant_id",
            "venue_id",
            "holder_id",
            "cutoff",
        )
        .sort("cutoff")
        .join_asof(
            hist,
            left_on="cutoff",
            right_on="history_at",
            by=["tenant_id", "holder_id"],
            strategy="backward",
            allow_exact_matches=False,
            check_sortedness=False,
        )
        .join_asof(
            prof,
            left_on="cutoff",
            right_on="recognized_at",
            by=["tenant_id", "venue_id", "holder_id"],
            strategy="backward",
            allow_exact_matches=False,
            check_sortedness=False,
        )
        .select(
            "_row",
            "prior_tickets",
            "prior_no_shows",
            "prior_events",
            "recognized_at",
            "seed_orders",
            "seed_spent_cents",
        )
        .sort("_row")
        .drop("_row"),
        n,
        "the as-of joins",
    )
    base = rows.hstack(side.get_columns()).hstack(asof.get_columns())
    price = pl.col("price_cents").cast(pl.Float64)
    same_currency = pl.col("type_currency").is_null() | (pl.col("type_currency") == pl.col("currency"))
    span = (pl.col("max_price_cents") - pl.col("min_price_cents")).cast(pl.Float64)
    days_since = (pl.col("cutoff") - pl.col("recognized_at")).dt.total_microseconds() // DAY_US
    aov_dollars = pl.col("seed_spent_cents") / pl.col("seed_orders") / 100
    # the event's mean price of the tickets sold so far (all of them once it started)
    event_mean = pl.col("_event_mean_price")
    seed = (
        pl.when(pl.col("seed_orders").is_null())
        .then(SEED_BASE + SEED_WEATHER)
        .otherwise(
            SEED_BASE
            + SEED_WEATHER
            + pl.when(days_since > 180).then(SEED_INACTIVE).otherwise(0.0)
            + pl.when(aov_dollars < 50).then(SEED_LOW_AOV).otherwise(0.0)
        )
        .clip(upper_bound=1.0)
    )
    return base.select(
        "ticket_id",
        "tenant_id",
        "venue_id",
        "event_id",
        "ticket_type_id",
        "category_id",
        "holder_id",
        "price_cents",
        "starts_at",
        "ends_at",
        "phase",
        "cutoff",
        "no_show",
        ((pl.col("starts_at") - pl.col("purchased_at")).dt.total_seconds() / 86_400)
        .clip(lower_bound=0)
        .alias("lead_days"),
        (price.clip(lower_bound=0) / 100).log1p().alias("log_price"),
        (pl.col("price_cents") == 0).cast(pl.Float64).alias("free"),
        pl.when(same_currency & (pl.col("max_price_cents") > 0))
        .then(price / pl.col("max_price_cents"))
        .alias("price_vs_type_max"),
        pl.when(same_currency & (span > 0))
        .then((price - pl.col("min_price_cents")) / span)
        .when(same_currency & (span == 0))
        .then(0.5)
        .alias("price_pos_in_range"),
        pl.when(same_currency & (pl.col("event_max_price_cents") > 0))
        .then(price / pl.col("event_max_price_cents"))
        .alias("price_vs_event_max"),
        pl.when(same_currency & (price > 0) & (event_mean > 0))
        .then((price / event_mean).log())
        .alias("log_price_vs_event_mean"),
        (pl.col("resold_at") < pl.col("cutoff")).fill_null(False).cast(pl.Float64).alias("resold"),
        "transferred",
        pl.col("transfer_count").fill_null(0).cast(pl.Float64),
        pl.col("_holder_event_tickets").alias("holder_event_tickets"),
        pl.col("prior_tickets").fill_null(0).cast(pl.Float64),
        pl.col("prior_no_shows").fill_null(0).cast(pl.Float64),
        pl.col("prior_events").fill_null(0).cast(pl.Float64),
        pl.when(pl.col("prior_tickets") > 0)
        .then(pl.col("prior_no_shows") / pl.col("prior_tickets"))
        .alias("prior_no_show_rate"),
        (
            (pl.col("prior_no_shows").fill_null(0) + PRIOR_WEIGHT * PRIOR_RATE)
            / (pl.col("prior_tickets").fill_null(0) + PRIOR_WEIGHT)
        ).alias("prior_no_show_rate_smoothed"),
        (pl.col("prior_tickets").fill_null(0) > 0).cast(pl.Float64).alias("has_history"),
        pl.col("starts_at").dt.weekday().cast(pl.Float64).alias("event_weekday"),
        days_since.alias("seed_days_since_last_purchase"),
        aov_dollars.alias("seed_avg_order_value"),
        seed.alias("seed_probability"),
        *(["event_tickets", *carried] if planned else []),
    )
