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
from analytics_pipelines.noshow import history as H
from analytics_pipelines.noshow.history import NO_HOLDER, utc
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
    #: ticket ids with a scan whose result is one of ATTENDED_RESULTS (the holder came; a ticket scanned more
    #: than once is listed more than once: a look-up needs no distinct ids, and at `large` making them
    #: distinct was a ~1 CPU-s hash of 8M UUID strings)
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
        valid_scans=scans.filter(pl.col("result").is_in(ATTENDED_RESULTS)).select("ticket_id"),
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


def event_phases(events: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """event_dim rows with `phase`, the first that applies: cancelled_or_postponed, no_schedule, ended (ends
    before now), deleted, in_progress (started, not ended), upcoming (starts after now)."""
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    ev = events.with_columns(utc("starts_at", events.schema), utc("ends_at", events.schema))
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


#: the first columns of features (one row per described ticket)
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
#: seed of the 64-bit hash of a ticket id: the key of the label's look-up in the scans and of the plan's
#: subset-stable sample (plan.describe_plan)
TICKET_HASH_SEED = 20261206


def _events(events: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """One row per event (its position is the event's index `e` in the ticket keys): the ids as
    pl.Categorical, start, end, phase and the cutoff = min(start, now)."""
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    ev = event_phases(events, now).select(
        *(pl.col(c).cast(pl.Categorical) for c in ("tenant_id", "venue_id", "event_id", "category_id")),
        "starts_at",
        "ends_at",
        "phase",
        pl.min_horizontal(pl.col("starts_at"), pl.lit(now).dt.cast_time_unit("us")).alias("cutoff"),
    )
    if ev["event_id"].drop_nulls().is_duplicated().any():
        raise ValueError("no-show features: an event_id repeats in the events (one row per event expected)")
    return ev


def _ticket_keys(inp: Inputs, ev: pl.DataFrame) -> pl.DataFrame:
    """One row per sold ticket (the no_shows mart's statuses) of a known event, in the tickets' order, with
    only integer and categorical columns: `idx` (its row in inp.tickets), `e` (its event's row in `ev`),
    `holder_id` (user_id after any transfer, else original_purchaser_id; pl.Categorical), `no_show` (ended
    events: no scan at all, ATTENDED_RESULTS), price_cents, `ticket_hash` and `pair` (the (event, holder)
    key: e x 2^32 + the holder's code).

    At `large` (10M tickets) every UUID string is hashed once and never joined, sorted or copied: the label
    matches 64-bit hashes of the ids (exact when the tickets' hashes are distinct, which is checked: else the
    ids themselves are matched; a scan of an id that is no sold ticket could only collide with one at a
    chance of ~10^-12)."""
    t = inp.tickets
    keys = (
        t.select(pl.col("event_id").cast(pl.Categorical))
        .with_row_index("idx")
        .filter(t["status"].is_in(SOLD_STATUSES))
        .join(
            ev.select("event_id", pl.int_range(pl.len(), dtype=pl.UInt32).alias("e")),
            on="event_id",
            how="inner",
            maintain_order="left",
        )
    )
    idx, e = keys["idx"], keys["e"]
    holder = t.select(  # = coalesce(user_id, original_purchaser_id), without copying the strings
        pl.when(pl.col("user_id").is_null())
        .then(pl.col("original_purchaser_id"))
        .otherwise(pl.col("user_id"))
        .cast(pl.Categorical)
    ).to_series()
    holder = holder.gather(idx).alias("holder_id")
    hashed = t["id"].hash(TICKET_HASH_SEED).gather(idx).alias("ticket_hash")
    if hashed.n_unique() == hashed.len():
        attended = hashed.is_in(inp.valid_scans["ticket_id"].hash(TICKET_HASH_SEED).implode())
    else:  # two ticket ids with one hash (or a repeated id): the ids themselves
        attended = t["id"].gather(idx).is_in(inp.valid_scans["ticket_id"].implode())
    ended = (ev["phase"] == "ended").gather(e)
    return pl.DataFrame([idx, e, holder, hashed]).with_columns(
        pl.when(ended).then(~attended).otherwise(None).alias("no_show"),
        t["price_cents"].gather(idx).alias("price_cents"),
        (
            pl.col("e").cast(pl.UInt64) * 2**32
            + pl.col("holder_id").to_physical().cast(pl.UInt64).fill_null(NO_HOLDER)
        ).alias("pair"),
    )


def _aligned(side: pl.DataFrame, height: int, what: str) -> pl.DataFrame:
    if side.height != height:  # a left join on a unique key keeps every row once, in order
        raise ValueError(f"no-show features: {what} changed the row count ({side.height} != {height})")
    return side


#: features' `plan`: from the events (one row per event: event_id, starts_at, ends_at, phase and
#: event_tickets, its labelled tickets) and every sold ticket (in order: `e`, its event's row, and
#: `ticket_hash`), a frame of boolean columns in the tickets' order: `describe` and the samples to carry
#: (plan.describe_plan: fit_sample, holdout_sample and the fits' drawn rows, plan.DRAWS)
Plan = Callable[[pl.DataFrame, pl.DataFrame], pl.DataFrame]


def features(inp: Inputs, now: datetime, plan: Plan | None = None) -> pl.DataFrame:
    """One row per sold ticket of a known event (in the tickets' order; with `plan`, only those it
    describes): ROW_COLUMNS, the model's features (NUMERIC, `category_id`) and the seed rule's probability.
    Missing values stay NULL (the classifier handles them; no table stores them).

    Cost: what needs every ticket (the label, the event's mean price, the holder's tickets of the event, the
    holders' histories) runs on integer keys (`_ticket_keys`); the histories and the seed rule's profile are
    running totals looked up per (event, holder) pair of the described tickets (`history.before`), not per ticket;
    the wide columns (ids, prices, times) are gathered for the described tickets only.

    `plan` (plan.describe_plan): describe only the tickets it selects. What depends on other tickets is
    computed over every ticket first, so a described ticket's features are the same as without a plan; two
    kinds of columns are added: `event_tickets` (the event's labelled tickets, all of them) and the plan's
    sample columns (fit_sample, holdout_sample, the fits' drawn rows)."""
    ev, t = _events(inp.events, now), inp.tickets
    keys = _ticket_keys(inp, ev)
    per_event = keys.group_by("e").agg(
        pl.len().cast(pl.Int64).alias("_tickets"),
        pl.col("price_cents").cast(pl.Float64).mean().alias("_event_mean_price"),
    )
    # every (event, holder) pair's tickets and no-shows, over every ticket
    stats = keys.group_by("pair").agg(
        pl.len().cast(pl.Int64).alias("n"), pl.col("no_show").sum().cast(pl.Int64).alias("k")
    )
    # the highest price of the event's types (the tier): of every type with a sold ticket, described or not
    keys = keys.with_columns(
        t["ticket_type_id"].cast(pl.Categorical).gather(keys["idx"]).alias("ticket_type_id")
    )
    types = inp.type_prices.unique("ticket_type_id", keep="first").with_columns(
        pl.col("ticket_type_id").cast(pl.Categorical)
    )
    ev_max = (
        keys.select("e", "ticket_type_id")
        .unique()
        .join(types, on="ticket_type_id", how="left")
        .group_by("e")
        .agg(pl.max("max_price_cents").alias("event_max_price_cents"))
    )
    ev = (
        ev.with_row_index("e")
        .join(per_event, on="e", how="left", maintain_order="left")
        .join(ev_max, on="e", how="left", maintain_order="left")
        .drop("e")
    )
    planned, carried = plan is not None, []
    if planned:
        ev = ev.with_columns(
            pl.when(pl.col("phase") == "ended").then(pl.col("_tickets").fill_null(0)).alias("event_tickets")
        )
        chosen = plan(
            ev.select("event_id", "starts_at", "ends_at", "phase", "event_tickets"),
            keys.select("e", "ticket_hash"),
        )
        carried = [c for c in chosen.columns if c != "describe"]
        keys = keys.hstack(chosen.get_columns()).filter(pl.col("describe")).drop("describe")
    n = keys.height
    # per (event, holder) pair of the described tickets: the holder's tickets of the event, the holder's
    # history and the seed rule's profile as of the event's cutoff
    pairs = keys.select("pair").unique().join(stats, on="pair", how="left")
    pairs = pairs.join(H.prior(stats, ev, pairs), on="pair", how="left").join(
        H.profile(inp.orders, ev, pairs), on="pair", how="left"
    )
    idx = keys["idx"]
    at = ev.select(
        "tenant_id",
        "venue_id",
        "event_id",
        "category_id",
        "starts_at",
        "ends_at",
        "phase",
        "cutoff",
        "_event_mean_price",
        "event_max_price_cents",
        *(["event_tickets"] if planned else []),
    )[keys["e"]]
    rows = pl.DataFrame(
        [
            t["id"].gather(idx).alias("ticket_id"),
            keys["ticket_type_id"],
            keys["holder_id"],
            t.select(
                (
                    pl.col("user_id").is_not_null()
                    & pl.col("original_purchaser_id").is_not_null()
                    & (pl.col("user_id") != pl.col("original_purchaser_id"))
                )
                .cast(pl.Float64)
                .alias("transferred")
            )
            .to_series()
            .gather(idx),
            t["price_cents"].gather(idx),
            t["currency"].gather(idx),
            t.select(utc("purchased_at", t.schema)).to_series().gather(idx),
            t["transfer_count"].gather(idx),
            keys["no_show"],
            *(keys[c] for c in carried),
        ]
    ).hstack(at.get_columns())
    resold = (
        inp.resales.with_columns(utc("completed_at", inp.resales.schema))
        .group_by("ticket_id")
        .agg(pl.min("completed_at").alias("resold_at"))
    )
    side = _aligned(
        rows.select("ticket_id", "ticket_type_id")
        .join(types, on="ticket_type_id", how="left", maintain_order="left")
        .join(resold, on="ticket_id", how="left", maintain_order="left")
        .select("type_currency", "min_price_cents", "max_price_cents", "resold_at"),
        n,
        "the price and resale look-ups",
    )
    holder_side = _aligned(
        keys.select("pair")
        .join(pairs, on="pair", how="left", maintain_order="left")
        .select(
            pl.col("n").cast(pl.Float64).alias("_holder_event_tickets"),
            "prior_tickets",
            "prior_no_shows",
            "prior_events",
            "recognized_at",
            "seed_orders",
            "seed_spent_cents",
        ),
        n,
        "the holder look-ups",
    )
    base = rows.hstack(side.get_columns()).hstack(holder_side.get_columns())
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
