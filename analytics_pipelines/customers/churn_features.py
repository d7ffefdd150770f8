"""Churn features: one row per customer as of a cutoff, for the churn model (analytics_pipelines.customers.churn).

Features as of a cutoff (only data up to the end of the cutoff day): recency, frequency (orders),
purchase days, orders in the last 90 and 365 days, monetary and average order value (log), tickets, tenure
(days since the first purchase), account age (days since users.created_at), venues, completed refunds
(count and share of spend), tickets of ended events and the no-show rate, marketplace purchases and sales,
and the favourite category (most tickets; one-hot over the ten most common favourites, else 'other').
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from analytics_pipelines.customers import keys as K

NUMERIC = [
    "recency_days",
    "frequency",
    "purchase_days",
    "orders_90d",
    "orders_365d",
    "log_monetary",
    "log_aov",
    "tickets",
    "tenure_days",
    "account_age_days",
    "venues",
    "refunds",
    "refund_share",
    "tickets_ended",
    "no_show_rate",
    "resales_bought",
    "resales_sold",
]


@dataclass(frozen=True)
class Inputs:
    """Frames the features come from (all history; features filter by the cutoff themselves).

    orders: fct_orders (user_id, tenant_id, venue_id, category_id, day, tickets, gross_revenue_cents);
    refunds: fct_refunds (user_id, day, refund_cents); resales: fct_resales (buyer_id, seller_id, day);
    attendance: per user and day an event ended (user_id, ended_day, tickets_ended, no_shows);
    users: stg_users (id, created_at)."""

    orders: pl.DataFrame
    refunds: pl.DataFrame
    resales: pl.DataFrame
    attendance: pl.DataFrame
    users: pl.DataFrame


def features(inp: Inputs, cutoff: date) -> pl.DataFrame:
    """One row per customer with an order on or before `cutoff`: the model's features (see module doc)."""
    return features_at(inp, [cutoff])[0]


def features_at(inp: Inputs, dates: list[date]) -> list[pl.DataFrame]:
    """`features(inp, d)` for each of `dates`, in one pass over the inputs: each group-by and join runs once
    for all dates (per customer, the aggregates of the rows up to each date), not once per date.

    The latest date's aggregates are plain ones over the rows up to it; an earlier date's are the same
    aggregates over the rows up to that date (the other rows' values nulled, which sums, minima and maxima
    skip) and a customer is in its frame when they have an order up to it, so the frames equal separate
    computations row for row."""
    last = max(dates)
    o = inp.orders.filter((pl.col("day") <= last) & pl.col("user_id").is_not_null())
    sfx = {d: "" if d == last else f"@{d.isoformat()}" for d in dates}
    earlier = [d for d in dates if d != last]

    def upto(col: str, d: date, day: str = "day") -> pl.Expr:
        return pl.col(col) if d == last else pl.when(pl.col(day) <= d).then(pl.col(col))

    def distinct(col: str, d: date) -> pl.Expr:  # n_unique (NULL counts as a value) of the rows up to d
        return pl.col(col).n_unique() if d == last else pl.col(col).filter(pl.col("day") <= d).n_unique()

    aggs = []
    for d in dates:
        days_before = (pl.lit(d) - pl.col("day")).dt.total_days()
        within = pl.lit(True) if d == last else pl.col("day") <= d
        aggs += [
            (pl.first("tenant_id") if d == last else pl.col("tenant_id").filter(within).first()).alias(
                "tenant_id"
            ),
            upto("day", d).max().alias("last_day"),
            upto("day", d).min().alias("first_day"),
            (pl.len() if d == last else within.sum()).alias("frequency"),
            distinct("day", d).alias("purchase_days"),
            ((days_before < 90) & within).sum().alias("orders_90d"),
            ((days_before < 365) & within).sum().alias("orders_365d"),
            upto("gross_revenue_cents", d).sum().alias("monetary_cents"),
            upto("tickets", d).sum().alias("tickets"),
            distinct("venue_id", d).alias("venues"),
        ]
        aggs[-10:] = [a.name.suffix(sfx[d]) for a in aggs[-10:]]
    per = _per_user_sorted(o, dates, sfx)  # rows in user_id order (None: the group-by, in no order)
    in_order = per is not None
    if per is None:
        per = o.group_by("user_id").agg(aggs)
    extras = [favourite_categories(o, dates, sfx)]
    refunds = (
        inp.refunds.filter(pl.col("day") <= last)
        .group_by("user_id")
        .agg(
            *[
                a
                for d in dates
                for a in (
                    (pl.len() if d == last else (pl.col("day") <= d).sum()).alias("refunds" + sfx[d]),
                    upto("refund_cents", d).sum().alias("refund_cents" + sfx[d]),
                )
            ]
        )
    )
    # a customer without refunds up to an earlier date has NULL refunds there, as if absent from the group-by
    extras.append(
        refunds.with_columns(
            pl.when(pl.col("refunds" + sfx[d]) > 0).then(pl.col(c + sfx[d])).name.keep()
            for d in earlier
            for c in ("refunds", "refund_cents")
        )
    )
    res = inp.resales.filter(pl.col("day") <= last)
    for who, name in (("buyer_id", "resales_bought"), ("seller_id", "resales_sold")):
        extras.append(
            res.group_by(pl.col(who).alias("user_id")).agg(
                (pl.len() if d == last else (pl.col("day") <= d).sum()).alias(name + sfx[d]) for d in dates
            )
        )
    extras.append(
        inp.attendance.filter(pl.col("ended_day") <= last)
        .group_by("user_id")
        .agg(
            upto(c, d, "ended_day").sum().alias(c + sfx[d])
            for d in dates
            for c in ("tickets_ended", "no_shows")
        )
    )
    extras.append(
        inp.users.select(pl.col("id").alias("user_id"), pl.col("created_at").dt.date().alias("signed_up"))
    )
    wide = per
    for extra in extras:
        wide = wide.join(extra, on="user_id", how="left", maintain_order="left" if in_order else None)
    # sorted by user_id: already so on the sorted path (flagged, then the sort is free)
    wide = (wide.with_columns(pl.col("user_id").set_sorted()) if in_order else wide).sort("user_id")
    columns = [c for c in wide.columns if "@" not in c]
    out = []
    for d in dates:
        df = wide if d == last else wide.filter(pl.col("frequency" + sfx[d]) > 0)
        out.append(
            _derived(
                df.select(pl.col(c + sfx[d] if c + sfx[d] in wide.columns else c).alias(c) for c in columns),
                d,
            )
        )
    return out


def _per_user_sorted(o: pl.DataFrame, dates: list[date], sfx: dict[date, str]) -> pl.DataFrame | None:
    """features_at's per-customer group-by without hashing customer ids, in user_id order: the orders
    sorted by customer code (a dense rank, in user_id order) and day, each customer a run of rows, an
    earlier date's rows a prefix of the run; the distinct
    venues from a group-by of integer (customer, venue) codes. Only a customer's figures at the dates
    where they have an order are the group-by's (the others are dropped by features_at). None where it
    does not apply (other column types, NULL tickets or cents, no rows)."""
    schema = o.schema
    if (
        o.height == 0
        or schema["day"] != pl.Date
        or schema["tickets"] != pl.Int64
        or schema["gross_revenue_cents"] != pl.Int64
        or o.select(pl.sum_horizontal(pl.col("tickets", "gross_revenue_cents").null_count())).item()
    ):
        return None
    user, n_users = K.user_codes(o)
    day_all = o["day"].to_physical().to_numpy().astype(np.int64)
    order = K.sort_by_key(user, day_all)
    if order is None:
        return None
    n = order.size
    u, day = user[order], day_all[order]
    starts = K.run_starts(u)
    runs = K.run_lengths(starts, n)
    run_of_row = np.repeat(np.arange(starts.size), runs)
    tickets, cents = o["tickets"].to_numpy()[order], o["gross_revenue_cents"].to_numpy()[order]
    day_starts = K.run_starts(u, day)  # one per customer and purchase day
    venue, _ = K.dense_codes(o["venue_id"])
    pairs = (
        pl.DataFrame({"u": u, "v": venue[order], "day": day}).group_by("u", "v").agg(pl.min("day")).sort("u")
    )
    pair_user, pair_first = pairs["u"].to_numpy(), pairs["day"].to_numpy()
    pair_run = np.searchsorted(u[starts], pair_user)
    tenant = o["tenant_id"]
    columns: dict[str, pl.Series] = {"user_id": o["user_id"].gather(order[starts])}
    epoch = date(1970, 1, 1)
    for d in dates:
        limit = (d - epoch).days
        upto = day <= limit
        count = np.add.reduceat(upto.astype(np.int64), starts)
        present = count > 0
        # the first order in the frame's order among the rows up to d (polars' first of the group)
        first_row = np.minimum.reduceat(np.where(upto, order, n), starts)
        last_day = np.maximum.reduceat(np.where(upto, day, np.iinfo(np.int64).min), starts)
        before = limit - day

        def total(values: np.ndarray, upto: np.ndarray = upto) -> np.ndarray:
            return np.add.reduceat(np.where(upto, values, 0), starts)

        def as_date(days: np.ndarray, present: np.ndarray = present) -> pl.Series:
            return (
                pl.Series(np.where(present, days, 0).astype(np.int32))
                .cast(pl.Date)
                .set(pl.Series(~present), None)
                if (~present).any()
                else pl.Series(days.astype(np.int32)).cast(pl.Date)
            )

        purchase_days = np.bincount(run_of_row[day_starts], weights=upto[day_starts], minlength=starts.size)
        venues = np.bincount(pair_run, weights=pair_first <= limit, minlength=starts.size)
        values = {
            "tenant_id": tenant.gather(np.minimum(first_row, n - 1)).set(pl.Series(~present), None)
            if (~present).any()
            else tenant.gather(first_row),
            "last_day": as_date(last_day),
            "first_day": as_date(day[starts]),
            "frequency": pl.Series(count, dtype=pl.UInt32),
            "purchase_days": pl.Series(purchase_days, dtype=pl.UInt32),
            "orders_90d": pl.Series(total((before < 90).astype(np.int64)), dtype=pl.UInt32),
            "orders_365d": pl.Series(total((before < 365).astype(np.int64)), dtype=pl.UInt32),
            "monetary_cents": pl.Series(total(cents), dtype=pl.Int64),
            "tickets": pl.Series(total(tickets), dtype=pl.Int64),
            "venues": pl.Series(venues, dtype=pl.UInt32),
        }
        columns |= {name + sfx[d]: v.alias(name + sfx[d]) for name, v in values.items()}
    return pl.DataFrame(list(columns.values()))


def _derived(df: pl.DataFrame, cutoff: date) -> pl.DataFrame:
    tenure = (pl.lit(cutoff) - pl.col("first_day")).dt.total_days()
    return (
        df.with_columns(
            (pl.lit(cutoff) - pl.col("last_day")).dt.total_days().alias("recency_days"),
            tenure.alias("tenure_days"),
            pl.max_horizontal(
                (pl.lit(cutoff) - pl.col("signed_up")).dt.total_days().fill_null(tenure), tenure
            ).alias("account_age_days"),
            pl.col("monetary_cents").log1p().alias("log_monetary"),
            (pl.col("monetary_cents") / pl.col("frequency")).log1p().alias("log_aov"),
            pl.col("refunds").fill_null(0),
            pl.col("resales_bought").fill_null(0),
            pl.col("resales_sold").fill_null(0),
            pl.col("tickets_ended").fill_null(0),
            pl.col("no_shows").fill_null(0),
            (pl.col("refund_cents").fill_null(0) / pl.max_horizontal(pl.col("monetary_cents"), pl.lit(1)))
            .clip(0, 1)
            .alias("refund_share"),
        )
        .with_columns(
            pl.when(pl.col("tickets_ended") > 0)
            .then(pl.col("no_shows") / pl.col("tickets_ended"))
            .otherwise(0.0)
            .alias("no_show_rate")
        )
        .with_columns(pl.col(c).cast(pl.Float64) for c in NUMERIC)
    )


def favourite_category(orders: pl.DataFrame) -> pl.DataFrame:
    """user_id, favourite_category_id: the category of most tickets, then most spend, then the smallest id."""
    fast = _favourites_sorted(orders, [None], ["favourite_category_id"])
    if fast is not None:
        return fast
    return _favourite(
        orders.filter(pl.col("category_id").is_not_null())
        .group_by("user_id", "category_id")
        .agg(pl.sum("tickets").alias("t"), pl.sum("gross_revenue_cents").alias("c")),
        "t",
        "c",
    )


def _favourite(pairs: pl.DataFrame, t: str, c: str, name: str = "favourite_category_id") -> pl.DataFrame:
    """Per user the category_id of the pair row with the most `t`, then `c`, then the smallest id: one sort
    of all pairs and the first row per user (a user's pairs have distinct ids, so the order is total)."""
    return (
        pairs.sort([t, c, "category_id"], descending=[True, True, False])
        .group_by("user_id")
        .agg(pl.first("category_id").alias(name))
    )


def favourite_categories(orders: pl.DataFrame, dates: list[date], sfx: dict[date, str]) -> pl.DataFrame:
    """favourite_category(orders up to d) for each date (columns favourite_category_id + sfx[d]), from one
    aggregation of the orders up to the latest date; a category counts for an earlier date when the customer
    bought it up to then."""
    last = max(dates)
    ordered = [last, *[d for d in dates if d != last]]
    fast = _favourites_sorted(
        orders,
        [None if d == last else d for d in ordered],
        ["favourite_category_id" + sfx[d] for d in ordered],
    )
    if fast is not None:
        return fast
    pairs = (
        orders.filter(pl.col("category_id").is_not_null())
        .group_by("user_id", "category_id")
        .agg(
            *[
                a
                for d in dates
                for a in (
                    (pl.col("tickets") if d == last else pl.when(pl.col("day") <= d).then(pl.col("tickets")))
                    .sum()
                    .alias("t" + sfx[d]),
                    (
                        pl.col("gross_revenue_cents")
                        if d == last
                        else pl.when(pl.col("day") <= d).then(pl.col("gross_revenue_cents"))
                    )
                    .sum()
                    .alias("c" + sfx[d]),
                )
            ],
            *[(pl.col("day") <= d).sum().alias("n" + sfx[d]) for d in dates if d != last],
        )
    )
    out = _favourite(pairs, "t", "c")
    for d in ordered[1:]:
        fav = _favourite(
            pairs.filter(pl.col("n" + sfx[d]) > 0),
            "t" + sfx[d],
            "c" + sfx[d],
            "favourite_category_id" + sfx[d],
        )
        out = out.join(fav, on="user_id", how="left", nulls_equal=True)
    return out


def _favourites_sorted(
    orders: pl.DataFrame, dates: list[date | None], names: list[str]
) -> pl.DataFrame | None:
    """user_id and per date (None: all rows; the first one must be None) the favourite category over the
    orders up to it, without string group-bys: the orders with a category sorted by integer (user,
    category) codes, the categories coded in their sort order, the tickets and spend per pair summed over
    runs of rows and each user's best pair picked with numpy. The users are those with a category.
    None where it does not apply (other column types, NULL tickets or cents, no rows): then the group-bys
    run."""
    o = orders.filter(pl.col("category_id").is_not_null())
    if (
        o.height == 0
        or o.schema["tickets"] != pl.Int64
        or o.schema["gross_revenue_cents"] != pl.Int64
        or (any(d is not None for d in dates) and o.schema["day"] != pl.Date)
        or o.select(pl.sum_horizontal(pl.col("tickets", "gross_revenue_cents").null_count())).item()
    ):
        return None
    u, nu = K.user_codes(o)
    c, nc, categories = K.ordered_codes(o["category_id"])
    key = K.combined_key([(u, nu), (c, nc)])
    if key is None:
        return None
    order = K.sort_by_key(key)
    key = key[order]
    starts = K.run_starts(key)  # one per (user, category) pair, a user's pairs in category order
    pair_user, pair_category = key[starts] // np.uint64(nc + 1), key[starts] % np.uint64(nc + 1)
    tickets, cents = o["tickets"].to_numpy()[order], o["gross_revenue_cents"].to_numpy()[order]
    first_pair = K.run_starts(pair_user)
    users = pair_user[first_pair]
    out = o.select("user_id")[pl.Series(order[starts[first_pair]])]
    day = o["day"].to_physical().to_numpy()[order] if any(d is not None for d in dates) else None
    for d, name in zip(dates, names, strict=True):
        if d is None:
            present = np.arange(starts.size)
            t, spend = np.add.reduceat(tickets, starts), np.add.reduceat(cents, starts)
        else:
            upto = day <= (d - date(1970, 1, 1)).days
            present = np.flatnonzero(np.add.reduceat(upto.astype(np.int64), starts) > 0)
            t = np.add.reduceat(np.where(upto, tickets, 0), starts)[present]
            spend = np.add.reduceat(np.where(upto, cents, 0), starts)[present]
        best = present[K.first_of_best(pair_user[present], t, spend)]
        fav = np.zeros(users.size, dtype=np.int64)
        fav[np.searchsorted(users, pair_user[best])] = pair_category[best]
        out = out.with_columns(categories.gather(fav).alias(name))
    return out
