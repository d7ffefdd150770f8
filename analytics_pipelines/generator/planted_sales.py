"""Planted on-sale bursts and stalls (issue 17): the truth the sales-velocity and sell-out models must find.

Two hooks in synth._build, nothing else of the generator changes:
- `plant_sales(rs, clock, events, types, baskets)` after `_make_baskets`: for a few events, replaces the
  SOLD baskets from their burst start on by an on-sale burst (demand well above the capacity, timed on a
  front-loaded power curve: cumulative fraction sold f(t) = (t / S)^(1/p), so the event sells out after
  about S; S and p differ per event), or, for a few others, stalls their sales (almost nothing sold after a
  stall time). A few bursts start in the last hours before `now`: they are on sale "today".
- `sales_truth(plan, world)` once the world is built: per planted event its kind and parameters, and for
  every event that sold out (planted or not) the sell-out time = the confirmation time (tickets.created_at)
  of the order that sold the last seat.

Bursts only where no price change falls in the burst window, stalls and live bursts only in events without
price changes (issue 16's elasticity is identified from sales around price changes; a burst or a stall
there would bias it). Deterministic (stream "planted_sales"),
works at every scale (nothing planted when no event qualifies).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics_pipelines.generator.primitives import _split_baskets, _Streams, _within_group_cumsum
from analytics_pipelines.generator.reference import _SOLD, DAY, HOUR, MINUTE
from analytics_pipelines.generator.world import _Clock, _Events, _Types

#: share of the eligible events that get a burst / a stall; live bursts (started in the last hours)
BURST_SHARE, STALL_SHARE, LIVE_SHARE = 0.15, 0.05, 0.03
#: past bursts and stalls only this long before now, live bursts only with at least LIVE_HISTORY of history:
#: a burst moves an event's revenue into one day, a spike the revenue projections' rolling backtest over the
#: recent weeks (marts) must not have to absorb; with a short history (tiny) nothing is planted
RECENT, LIVE_HISTORY = 120 * DAY, 180 * DAY


@dataclass
class SalesPlan:
    burst: np.ndarray  # event indices
    burst_start: np.ndarray  # seconds
    sellout_scale: np.ndarray  # S: seconds from burst start to (about) the sell-out
    shape: np.ndarray  # p
    live: np.ndarray  # bool per burst: started in the last hours before now
    stall: np.ndarray  # event indices
    stall_at: np.ndarray  # seconds


def _empty() -> SalesPlan:
    z, zf = np.zeros(0, np.int64), np.zeros(0)
    return SalesPlan(z, z, zf, zf, np.zeros(0, bool), z, z)


def plan_sales(rs: _Streams, clock: _Clock, events: _Events, types: _Types) -> SalesPlan:
    rng = rs("planted_sales")
    n = events.starts.size
    if n == 0:
        return _empty()
    # every event's candidate burst: start (its sale start; live: a few hours before now), S and p
    live_start = np.maximum(clock.now - rng.integers(2 * HOUR, 7 * HOUR, n), events.sale_start)
    scale_all = np.clip(np.exp(rng.normal(np.log(4 * HOUR), 0.9, n)), 20 * MINUTE, 4 * DAY)
    shape_all = rng.uniform(1.3, 2.6, n)
    # issue 16's price response is identified from the sales around price changes on the base sales curve:
    # a burst or a stall there would bias the planted elasticity. So a burst only where no price change
    # falls before it is over (3 S after its start) and every ticket type is on sale until then (a type
    # the burst cannot sell out would keep later segments without sales); stalls only in events without
    # price changes.
    first_change = np.full(n, np.iinfo(np.int64).max)
    if types.change_time.size:
        np.minimum.at(first_change, types.event[types.change_type], types.change_time)
    type_end = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(type_end, types.event, types.sale_end)
    ok = ~events.cancelled & (events.starts - events.sale_start > 3 * DAY)

    def covered(start: np.ndarray) -> np.ndarray:
        done = start + 3 * scale_all.astype(np.int64)
        return (first_change > done) & (type_end > done) & (events.starts > done)

    past_ok = ok & covered(events.sale_start) & (events.sale_start < clock.now - RECENT)
    past = np.flatnonzero(past_ok)
    live_ok = np.flatnonzero(
        ok
        & (clock.now - clock.launch >= LIVE_HISTORY)
        & covered(live_start)
        & (first_change > clock.now)
        & (events.sale_start < clock.now - 2 * HOUR)
        & (events.starts > clock.now + DAY)
    )
    n_live = min(live_ok.size, max(1, round(LIVE_SHARE * n)))
    live = rng.choice(live_ok, n_live, replace=False) if n_live else np.zeros(0, np.int64)
    quiet = np.flatnonzero(ok & (first_change > clock.now) & (events.sale_start < clock.now - 2 * RECENT))
    rest = np.setdiff1d(quiet, live)
    n_stall = min(rest.size, max(1, round(STALL_SHARE * n)))
    stall = np.sort(rng.choice(rest, n_stall, replace=False)) if n_stall else np.zeros(0, np.int64)
    rest = np.setdiff1d(past, np.concatenate([live, stall]))
    n_burst = min(rest.size, max(2, round(BURST_SHARE * n)))
    # the fewest price changes first (random among equals): the least price-response data is set aside
    changes = np.bincount(types.event, weights=types.n_changes, minlength=n)
    rest = rest[rng.permutation(rest.size)]
    burst_past = np.sort(rest[np.argsort(changes[rest], kind="stable")[:n_burst]])
    burst = np.concatenate([burst_past, live])
    is_live = np.r_[np.zeros(burst_past.size, bool), np.ones(live.size, bool)]
    start = np.where(is_live, live_start[burst], events.sale_start[burst])
    window = np.minimum(events.starts[stall], clock.now) - events.sale_start[stall]
    stall_at = events.sale_start[stall] + (rng.uniform(0.15, 0.4, stall.size) * window).astype(np.int64)
    stall_at = np.minimum(stall_at, clock.now - RECENT)
    order = np.argsort(burst, kind="stable")
    return SalesPlan(
        burst[order],
        start[order].astype(np.int64),
        scale_all[burst][order],
        shape_all[burst][order],
        is_live[order],
        stall,
        stall_at.astype(np.int64),
    )


def plant_sales(
    rs: _Streams, clock: _Clock, events: _Events, types: _Types, baskets: tuple[np.ndarray, ...]
) -> tuple[tuple[np.ndarray, ...], SalesPlan]:
    """The baskets with the planted bursts and stalls, and the plan (for the truth)."""
    plan = plan_sales(rs, clock, events, types)
    btype, bqty, bt, bcls = baskets
    if plan.burst.size + plan.stall.size == 0:
        return baskets, plan
    rng = rs("planted_sales_baskets")
    n_events = events.starts.size
    burst_of = np.full(n_events, -1)
    burst_of[plan.burst] = np.arange(plan.burst.size)
    stall_at = np.full(n_events, np.iinfo(np.int64).max)
    stall_at[plan.stall] = plan.stall_at
    ev = types.event[btype]
    b = burst_of[ev]
    sold = bcls == _SOLD
    # bursts: the SOLD baskets from the burst start on are replaced; stalls: a trickle after the stall time
    drop = sold & (b >= 0) & (bt >= np.where(b >= 0, plan.burst_start[np.maximum(b, 0)], 0))
    drop |= sold & (bt >= stall_at[ev]) & (rng.random(bt.size) > 0.03)
    keep = ~drop
    btype, bqty, bt, bcls = btype[keep], bqty[keep], bt[keep], bcls[keep]
    # remaining seats per type of a burst event at its burst start
    n_types = types.event.size
    sold_before = np.bincount(btype[bcls == _SOLD], weights=bqty[bcls == _SOLD], minlength=n_types)
    tb = burst_of[types.event]
    in_burst = np.flatnonzero(tb >= 0)
    remaining = np.maximum(types.quantity[in_burst] - sold_before[in_burst].astype(np.int64), 0)
    mult = rng.uniform(1.4, 2.2, plan.burst.size)
    demand = np.ceil(remaining * mult[tb[in_burst]]).astype(np.int64)
    group, qty = _split_baskets(rng, demand)
    ntype = in_burst[group]
    k = tb[ntype]
    u = rng.random(group.size)
    t = plan.burst_start[k] + (plan.sellout_scale[k] * (u * mult[k]) ** plan.shape[k]).astype(np.int64)
    ok = (t < types.sale_end[ntype] - MINUTE) & (t < events.starts[types.event[ntype]])
    ntype, qty, t = ntype[ok], qty[ok], t[ok]
    # capacity cut in time order per type, then only what was sold before now (as _make_baskets does)
    order = np.lexsort((t, ntype))
    ntype, qty, t = ntype[order], qty[order], t[order]
    left = types.quantity - sold_before.astype(np.int64)
    prev = _within_group_cumsum(qty, ntype, n_types) - qty
    fits = prev < left[ntype]
    qty = np.minimum(qty, left[ntype] - prev)
    fits &= t <= clock.now - 15 * MINUTE
    ntype, qty, t = ntype[fits], qty[fits], t[fits]
    out = (
        np.concatenate([btype, ntype]),
        np.concatenate([bqty, qty]),
        np.concatenate([bt, t]),
        np.concatenate([bcls, np.full(ntype.size, _SOLD)]),
    )
    return out, plan


def _iso(seconds: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(int(seconds), UTC).isoformat()


def sales_truth(plan: SalesPlan, world) -> dict:
    """JSON-safe truth: planted bursts and stalls, and every event that sold out with its sell-out time."""
    events, types, orders = world.events, world.types, world.orders
    n_events = events.starts.size
    capacity = np.bincount(types.event, weights=types.quantity, minlength=n_events).astype(np.int64)
    sold_mask = orders.cls == _SOLD
    sold = np.bincount(orders.event[sold_mask], weights=orders.quantity[sold_mask], minlength=n_events)
    last = np.full(n_events, -1, np.int64)
    np.maximum.at(last, orders.event[sold_mask], orders.confirmed[sold_mask])
    first = np.full(n_events, np.iinfo(np.int64).max)
    np.minimum.at(first, orders.event[sold_mask], orders.confirmed[sold_mask])
    sold_out = (capacity > 0) & (sold >= capacity)
    text = events.ids.slice().to_list()

    def eid(i: int) -> str:
        return text[i]

    bursts = [
        {
            "event_id": eid(e),
            "kind": "live_burst" if plan.live[j] else "burst",
            "burst_start": _iso(plan.burst_start[j]),
            "sellout_scale_hours": round(float(plan.sellout_scale[j]) / HOUR, 3),
            "shape": round(float(plan.shape[j]), 3),
            "capacity": int(capacity[e]),
            "tickets_sold": int(sold[e]),
            "sold_out": bool(sold_out[e]),
            "sellout_at": _iso(last[e]) if sold_out[e] else None,
        }
        for j, e in enumerate(plan.burst.tolist())
    ]
    stalls = [
        {
            "event_id": eid(e),
            "stall_at": _iso(plan.stall_at[j]),
            "capacity": int(capacity[e]),
            "tickets_sold": int(sold[e]),
        }
        for j, e in enumerate(plan.stall.tolist())
    ]
    planted = set(plan.burst.tolist())
    sellouts = {
        eid(e): {
            "sellout_at": _iso(last[e]),
            "first_sale_at": _iso(first[e]),
            "capacity": int(capacity[e]),
            "planted": e in planted,
        }
        for e in np.flatnonzero(sold_out).tolist()
    }
    return {
        "definition": "sellout_at = created_at of the last ticket sold (order confirmation) of an event whose "
        "non-failed orders (refunded ones included) reached the sum of its ticket types' quantities",
        "bursts": bursts,
        "stalls": stalls,
        "sold_out": sellouts,
    }
