"""Daily RFM history, computed incrementally (pure polars; no warehouse, no Dagster).

A full RFM computation as of day D aggregates every order up to D (rfm.customer_base: ~4 M orders at
`large`) and then scores. The aggregates it ranks are cumulative: per (scope, customer) the first and last
purchase, the last purchase day, orders, tickets and monetary cents. So they are kept as a **state**, one
frame per day (`STATE_COLUMNS`: rfm.customer_base's columns without recency, plus `state_day`), and day D's
state is day D-1's merged with day D's orders only:

- :func:`rfm_state_advance` (prev_state, orders_of_day, day): the customers with an order on `day` have
  their rows merged (min/max/sum), the others are copied; no order of an earlier day is read;
- :func:`rfm_scores_from_state` (state, as_of): recency = as_of - last purchase day, then rfm.score: the
  rows of rfm.rfm_scores(all orders, as_of), exactly (integer sums, minima and maxima do not depend on the
  order of the rows; row order is not meaningful in either);
- :func:`rfm_state_full` (orders, day): the state from all orders up to `day` (the first day, or a rebuild);
- :func:`rfm_state_replay` (state, orders, through): advance day by day (late orders, catching up).

Late orders. fct_orders partitions are rebuilt with a 7-day lookback (marts.build.LOOKBACK_DAYS): an order
recognized late lands in one of the last 8 days' partitions, older ones are final. A daily run for D keeps
two states: the **settled** one (as of D - 8, all its orders final), advanced by one day per run
(rfm_state_advance with the orders of D - 8), and the **current** one, rfm_state_catch_up(settled, the
orders of D - 7 .. D, D): one merge, whatever was late. Both read only the last days' partitions. A
rewrite of an older partition (a backfill) needs rfm_state_full.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from analytics_pipelines.customers import rfm

KEY = ["scope", "scope_id", "tenant_id", "venue_id", "user_id"]
VALUES = [
    "first_purchase_at",
    "last_purchase_at",
    "last_day",
    "orders",
    "tickets",
    "monetary_cents",
    "currency",
]
STATE_COLUMNS = ["state_day", *KEY, *VALUES]
#: the fct_orders columns the state is computed from
ORDER_COLUMNS = [
    "tenant_id",
    "venue_id",
    "user_id",
    "recognized_at",
    "day",
    "tickets",
    "gross_revenue_cents",
    "currency",
]
_MERGE = [
    pl.min("first_purchase_at"),
    pl.max("last_purchase_at"),
    pl.max("last_day"),
    pl.sum("orders"),
    pl.sum("tickets"),
    pl.sum("monetary_cents"),
    pl.min("currency"),
    pl.max("currency").alias("_max_currency"),
]


def _state(base: pl.DataFrame, day: date) -> pl.DataFrame:
    return base.select(pl.lit(day).alias("state_day"), *KEY, *VALUES)


def rfm_state_full(orders: pl.DataFrame, day: date) -> pl.DataFrame:
    """The state as of the end of `day` from fct_orders rows (all history up to it; later rows ignored)."""
    return _state(rfm.customer_base(orders, day), day)


def rfm_state_advance(
    prev_state: pl.DataFrame | None, orders_of_day: pl.DataFrame, day: date
) -> pl.DataFrame:
    """The state as of the end of `day`: `prev_state` (the state of day - 1; None on the first day of the
    history) merged with `orders_of_day` (the fct_orders rows of `day`, all of them, nothing else).

    Raises ValueError when `orders_of_day` holds another day's rows, when `prev_state` is not the previous
    day's (a skipped day's orders would be lost: use rfm_state_replay), or when a scope would mix
    currencies (as rfm.customer_base does)."""
    if orders_of_day.height and orders_of_day.filter(pl.col("day") != day).height:
        raise ValueError(f"orders_of_day must be the fct_orders rows of {day} only")
    if prev_state is not None and prev_state.height:
        prev_day = prev_state["state_day"][0]
        if prev_day != day - timedelta(days=1) or prev_state["state_day"].n_unique() != 1:
            raise ValueError(
                f"the state advanced to {day} must be that of {day - timedelta(days=1)}, got {prev_day}"
            )
    return _merge(prev_state, orders_of_day, day)


def rfm_state_catch_up(prev_state: pl.DataFrame, orders: pl.DataFrame, through: date) -> pl.DataFrame:
    """The state as of the end of `through` from `prev_state` and the rows of `orders` after its day up to
    `through` (earlier and later rows ignored), in one merge: what several rfm_state_advance calls give,
    without the intermediate states (the daily run's current state from its settled one)."""
    after = prev_state["state_day"][0] if prev_state.height else None
    rows = orders.filter(pl.col("day") <= through)
    return _merge(prev_state, rows if after is None else rows.filter(pl.col("day") > after), through)


def _merge(prev_state: pl.DataFrame | None, orders: pl.DataFrame, day: date) -> pl.DataFrame:
    new = rfm.customer_base(orders, day).drop("recency_days")
    if prev_state is None or prev_state.height == 0:
        return _state(new, day)
    if new.height == 0:  # a day without orders: the same aggregates (recency moves at scoring)
        return prev_state.with_columns(pl.lit(day).alias("state_day"))
    # only the rows of the day's customers change: pick them by user (one hash per state row), merge those few
    active = prev_state["user_id"].is_in(new["user_id"].unique().implode())
    touched, rest = prev_state.filter(active), prev_state.filter(~active)
    merged = pl.concat([touched.select(*KEY, *VALUES), new.select(*KEY, *VALUES)]).group_by(KEY).agg(_MERGE)
    _check_currencies(rest, merged)
    return pl.concat(
        [
            rest.with_columns(pl.lit(day).alias("state_day")),
            merged.drop("_max_currency").select(pl.lit(day).alias("state_day"), *KEY, *VALUES),
        ]
    )


def _check_currencies(rest: pl.DataFrame, merged: pl.DataFrame) -> None:
    """rfm.customer_base's rule: one currency per scope. Cheap when everything is in one currency."""
    mixed = merged.filter(pl.col("currency") != pl.col("_max_currency"))
    if mixed.height == 0:
        currencies = set(merged["currency"].drop_nulls().unique()) | set(
            rest["currency"].drop_nulls().unique()
        )
        if len(currencies) <= 1:
            return
        cols = ["scope", "scope_id", "currency"]
        both = pl.concat([rest.select(cols), merged.select(cols)])
        mixed = both.group_by(cols[:2]).agg(pl.col("currency").n_unique().alias("n")).filter(pl.col("n") > 1)
    if mixed.height:
        raise ValueError(
            f"customer analytics need one currency per scope; mixed currencies in {mixed.height} "
            f"scope/customer rows, e.g. {mixed.head(3).to_dicts()}"
        )


def rfm_state_replay(
    state: pl.DataFrame | None, orders: pl.DataFrame, through: date, first_day: date | None = None
) -> dict[date, pl.DataFrame]:
    """The states of every day after `state`'s (or from `first_day` when `state` is None) up to `through`,
    each advanced from the one before with that day's rows of `orders` (rows of other days ignored)."""
    if state is None and first_day is None:
        raise ValueError("rfm_state_replay needs a state or a first day")
    day = first_day if state is None or state.height == 0 else state["state_day"][0] + timedelta(days=1)
    in_range = orders.filter(pl.col("day").is_between(day, through))
    by_day = (
        {k[0]: part for k, part in in_range.partition_by("day", as_dict=True).items()}
        if in_range.height
        else {}
    )
    out = {}
    while day <= through:
        state = rfm_state_advance(state, by_day.get(day, orders.clear()), day)
        out[day] = state
        day += timedelta(days=1)
    return out


def rfm_scores_from_state(state: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """customer_rfm_scores rows as of `as_of` from the state of that day: the rows rfm.rfm_scores gives
    from all the orders up to `as_of`."""
    if state.height and state["state_day"][0] != as_of:
        raise ValueError(f"scores as of {as_of} need the state of that day, got {state['state_day'][0]}")
    base = state.drop("state_day").with_columns(
        (pl.lit(as_of) - pl.col("last_day")).dt.total_days().alias("recency_days")
    )
    return rfm.score(base, as_of)


def orders_digest(orders_of_day: pl.DataFrame) -> int:
    """A fingerprint of a day's orders as the state sees them (ORDER_COLUMNS, row order free): a daily run
    that stored the digest of each day it merged knows whether a lookback day's partition changed (a late
    order) and needs the catch-up from the settled state, or not (advance yesterday's current state)."""
    if orders_of_day.height == 0:
        return 0
    return int(orders_of_day.select(ORDER_COLUMNS).hash_rows(seed=20261206).cast(pl.UInt64).sum()) & (
        2**63 - 1
    )


def retained_days(days: list[date], today: date, daily_days: int = 35) -> list[date]:
    """The daily RFM partitions to keep as of `today`: every day of the last `daily_days`, plus every
    Sunday (the weekly history kept forever)."""
    return [d for d in days if (today - d).days < daily_days or d.weekday() == 6]
