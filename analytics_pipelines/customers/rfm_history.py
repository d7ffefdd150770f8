"""The daily RFM history from the warehouse: customer_rfm_scores for a run's days from the stored settled
state (customer_rfm_state) and the last days' fct_orders partitions only (rfm_daily's pure functions), or
from all of fct_orders on the first run, without a usable stored state, or on `full_refresh`.

A run over days D1..Dn (one day on the daily schedule, a range in a single-run backfill):

- the **base** state is the stored settled state of the latest day s <= D1 - 9 (SETTLE_DAYS + 1), unless
  `full` or a fct_orders partition of day <= s was rewritten since the last build (a backfill of old orders),
  then rfm_daily.rfm_state_full over all of fct_orders up to D1 - 9;
- per day D: the settled state is caught up to D - 8 (the orders of D - 8 are final: fct_orders' lookback is
  7 days), the current state of D is the settled one plus the orders of D - 7 .. D in one merge (late orders
  included), and D's scores come from it: the rows of rfm.rfm_scores(all orders, D), whatever the path;
- the settled state of Dn - 8 is written (one customer_rfm_state partition); of the older ones only the
  newest stays (a re-run of Dn starts from it; the table is never left empty, which would cost the embedded
  backend a catalog refresh). A day's run reads one state and nine days of fct_orders partitions.

Retention (rfm_daily.retained_days): the scores of the last RETAIN_DAYS days and of every Sunday are kept;
older partitions of other days are emptied in the same run (`dropped`; the run's own days are kept). No Dagster here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import polars as pl

from analytics_pipelines.customers import build as CB
from analytics_pipelines.customers import rfm_daily as D
from analytics_pipelines.marts.build import LOOKBACK_DAYS
from analytics_pipelines.warehouse import Warehouse

SCORES, STATE = "customer_rfm_scores", "customer_rfm_state"
#: the state of D - SETTLE_DAYS is final on day D: fct_orders rewrites its last LOOKBACK_DAYS + 1 partitions
SETTLE_DAYS = LOOKBACK_DAYS + 1
RETAIN_DAYS = 35


@dataclass
class History:
    scores: dict[date, pl.DataFrame]
    #: the settled state to store (of the last day - SETTLE_DAYS)
    state: pl.DataFrame
    state_day: date
    mode: str
    #: stored state partitions this run makes obsolete: those before the newest one older than its own
    obsolete_states: list[date] = field(default_factory=list)
    orders_read: int = 0


def stored_state_days(wh: Warehouse) -> list[date]:
    if STATE not in wh.tables():
        return []
    return sorted(wh.read(f"SELECT DISTINCT state_day FROM {STATE}")["state_day"].to_list())


def _orders(wh: Warehouse, first: date, last: date) -> pl.DataFrame:
    return wh.read_partitions(
        "fct_orders", "day", first.isoformat(), last.isoformat(), columns=D.ORDER_COLUMNS
    )


def build_history(
    wh: Warehouse, days: list[date], full: bool = False, orders_changed: list[str] | None = None
) -> History:
    """customer_rfm_scores of `days` (sorted) and the settled state to store. `orders_changed`: the fct_orders
    partitions rewritten since this asset's last build (None: unknown, then a stored state is still used:
    its days were final when it was written)."""
    first, last = days[0], days[-1]
    base_day = first - timedelta(days=SETTLE_DAYS + 1)
    stored = [] if full else [d for d in stored_state_days(wh) if d <= base_day]
    reason = "full_refresh" if full else "no stored state before the run" if not stored else None
    if stored and orders_changed and min(orders_changed) <= stored[-1].isoformat():
        reason, stored = (
            f"fct_orders rewritten from {min(orders_changed)} (on or before the stored state)",
            [],
        )
    if stored:
        s = stored[-1]
        state = wh.read_partitions(STATE, "state_day", s.isoformat(), s.isoformat()).select(D.STATE_COLUMNS)
        orders = _orders(wh, s + timedelta(days=1), last)
        mode = f"incremental (state of {s}, fct_orders {s + timedelta(days=1)}..{last})"
    else:
        orders = CB.orders(wh, last)  # all the history, customer codes for rfm.customer_base's fast path
        state = D.rfm_state_full(orders, base_day)
        mode = f"full ({reason})"
    state = D.rfm_state_catch_up(state, orders, base_day)
    scores = {}
    for day in days:
        state = D.rfm_state_catch_up(state, orders, day - timedelta(days=SETTLE_DAYS))
        scores[day] = D.rfm_scores_from_state(D.rfm_state_catch_up(state, orders, day), day)
    state_day = last - timedelta(days=SETTLE_DAYS)
    older = [d for d in stored_state_days(wh) if d < state_day]
    obsolete = older[:-1]  # the newest older state stays: a re-run of the same day starts from it
    return History(
        scores,
        state.with_columns(pl.lit(state_day).alias("state_day")),
        state_day,
        mode,
        obsolete,
        orders.height,
    )


def to_drop(existing: list[date], run_days: list[date], today: date) -> list[date]:
    """Score partitions retention removes: the existing days that are neither within the last RETAIN_DAYS
    days of `today` nor a Sunday. The run's own days are written whatever their age (a backfill of an old
    day shows its rows); a later run drops them when they fall outside."""
    days = sorted(set(existing) - set(run_days))
    keep = set(D.retained_days(days, today, RETAIN_DAYS))
    return [d for d in days if d not in keep]
