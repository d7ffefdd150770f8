"""Planted venue insights (issue 21), OPT-IN (`generate(..., plant_insights=True)`, CLI `--plant-insights`):
the truth the `venue_insights` asset must find. Off by default, so no existing dataset changes.

Two hooks in synth._build. `plant`, after the other sales plants (baskets = type, quantity, time, class):
- `event_stall`: the upcoming event with the most orders in days -28..-7 (at least 21) loses every sold
  basket of the last 7 days (its sales stop);
- `venue_jump`: the venue with the most sold tickets in the 8 weeks before gets its sold baskets of the last
  complete ISO week before `now` copied FACTOR - 1 times (a few minutes later, within the types' sale
  windows and capacity; copies that do not fit are dropped; no copy of the stalled event's inside its stall):
  its tickets of that week x about FACTOR.
`plant_customers`, after the users are made (orders carry their buyers):
- `customer_wave` (a segment shift): the sold orders of the last WAVE_DAYS days at the venue with the most of
  them (at least WAVE_MIN_ORDERS) are bought by the venue's lapsed one-time customers instead (one order
  there, before the window, still active), one order each, the most recent orders to the longest gone,
  while there are such customers; older orders keep their buyers. The venue's regulars stayed away and its
  one-time customers came back: sales are unchanged (the same orders, other buyers), the regulars are no
  longer recent, so Champions (recent and frequent) empties: a move far beyond 28 days' drift (at tiny,
  seed 7: 34 of 301 -> 2 of 307, z = -5.6; other venues' largest moves |z| <= 1.5).

Not planted (docs/insights.md): year-over-year (tiny has 120 days of history, the rule needs 61 weeks) and
churn_risk_rising (RFM scores are ranks within the venue and orders are never taken back, so in 7 days the
at-risk share can rise only by others buying; a buying wave adds customers outside the at-risk segments and
dilutes it: at tiny's 70-340 customers a venue would need +11 to +23 points in a week).

Truth: world.truth["insights"] = {"venue_jump": {venue_id, week_start, week_end, factor, baskets_before,
baskets_added, tickets_before, tickets_added}, "event_stall": {venue_id, event_id, base_orders,
removed_orders} or None, "customer_wave": {venue_id, first_day, last_day, orders, buyers_displaced,
lapsed_returned} or None}. Deterministic (stream "planted_insights"; the wave draws nothing). The asset never
reads the truth.

Why FACTOR = 6 and not +60 %: the generated venues' weekly sales swing by 35-100 % from week to week (1.4826 x
the median absolute log change of their last 12 weeks is 0.2-1.0 at tiny and at 20 000 tickets), so a +60 %
week is within their own noise and a detector that reported it would also report noise; at tiny (seed 7) x4
scores z ~ 2.7 on the busiest venue, x6 about 3.8 (docs/insights.md).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from analytics_pipelines.generator.primitives import _Streams
from analytics_pipelines.generator.reference import _SOLD, _USR, DAY, MINUTE
from analytics_pipelines.generator.world import _Clock, _Events, _Orders, _Types, _Users, _Venues

FACTOR = 6
STALL_MIN_BASE_ORDERS = 21
#: the customer wave: the last 28 days' orders (segment_shift compares days 28 apart), when 60 or more
WAVE_DAYS, WAVE_MIN_ORDERS = 28, 60


def _iso_day(t: int) -> str:
    return datetime.fromtimestamp(int(t), UTC).date().isoformat()


def last_complete_week(now: int) -> tuple[int, int]:
    """[Monday 00:00, next Monday 00:00) of the last ISO week that ended by the day before `now`."""
    last_day = datetime.fromtimestamp(now, UTC) - timedelta(days=1)
    sunday = last_day - timedelta(days=(last_day.weekday() + 1) % 7)
    monday = sunday.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=6)
    start = int(monday.timestamp())
    return start, start + 7 * DAY


def plant(
    rs: _Streams,
    clock: _Clock,
    venues: _Venues,
    events: _Events,
    types: _Types,
    baskets: tuple[np.ndarray, ...],
    truth: dict,
) -> tuple[np.ndarray, ...]:
    rng = rs("planted_insights")
    btype, bqty, bt, bcls = baskets
    sold = bcls == _SOLD
    bevent = types.event[btype]
    bvenue = events.venue[bevent]
    out: dict = {"venue_jump": None, "event_stall": None}
    truth["insights"] = out
    a, b = last_complete_week(clock.now)
    # the stall first: the upcoming event with the most orders in days -28..-7 (21 or more: a Poisson
    # expectation of 7 orders a week, the least for which 0 orders is a p <= 0.001 event)
    recent, base_lo = clock.now - 7 * DAY, clock.now - 28 * DAY
    cand = sold & (events.starts[bevent] > clock.now + 3 * DAY) & ~events.cancelled[bevent]
    base = np.bincount(bevent[cand & (bt >= base_lo) & (bt < recent)], minlength=len(events.ids))
    keep = np.ones(btype.size, bool)
    stalled = -1
    if base.max(initial=0) >= STALL_MIN_BASE_ORDERS:
        stalled = int(np.argmax(base))
        gone = sold & (bevent == stalled) & (bt >= recent) & (bt < clock.now)
        keep &= ~gone
        out["event_stall"] = {
            "venue_id": venues.ids.take(np.array([int(events.venue[stalled])]))[0],
            "event_id": events.ids.take(np.array([stalled]))[0],
            "base_orders": int(base[stalled]),
            "removed_orders": int(gone.sum()),
        }
    # the jump: the busiest venue of the 8 weeks before the week (the stalled event's baskets not copied)
    before = sold & keep & (bt >= a - 56 * DAY) & (bt < a)
    per_venue = np.bincount(bvenue[before], weights=bqty[before], minlength=len(venues.ids))
    if per_venue.sum() == 0:
        return btype[keep], bqty[keep], bt[keep], bcls[keep]
    v = int(np.argmax(per_venue))
    inside = np.flatnonzero(sold & keep & (bvenue == v) & (bt >= a) & (bt < b))
    copyable = inside
    sold_per_type = np.bincount(btype[sold & keep], weights=bqty[sold & keep], minlength=len(types.ids))
    add_type, add_qty, add_t = [], [], []
    for _ in range(FACTOR - 1):
        when = bt[copyable] + rng.integers(1, 30 * MINUTE, copyable.size)
        tt, qty = btype[copyable], bqty[copyable]
        ok = (
            (when < b)
            & (when < clock.now - 15 * MINUTE)
            & (when < types.sale_end[tt])
            & (when < events.starts[types.event[tt]])
            & ((types.event[tt] != stalled) | (when < recent))  # the stall stays a stall
        )
        for i in np.flatnonzero(ok):
            if sold_per_type[tt[i]] + qty[i] <= types.quantity[tt[i]]:
                sold_per_type[tt[i]] += qty[i]
                add_type.append(tt[i])
                add_qty.append(qty[i])
                add_t.append(when[i])
    out["venue_jump"] = {
        "venue_id": venues.ids.take(np.array([v]))[0],
        "week_start": _iso_day(a),
        "week_end": _iso_day(b - DAY),
        "factor": FACTOR,
        "baskets_before": int(inside.size),
        "baskets_added": len(add_type),
        "tickets_before": int(bqty[inside].sum()),
        "tickets_added": int(np.sum(add_qty)) if add_qty else 0,
    }
    return (
        np.concatenate([btype[keep], np.array(add_type, btype.dtype)]),
        np.concatenate([bqty[keep], np.array(add_qty, bqty.dtype)]),
        np.concatenate([bt[keep], np.array(add_t, bt.dtype)]),
        np.concatenate([bcls[keep], np.full(len(add_type), _SOLD, bcls.dtype)]),
    )


def plant_customers(
    clock: _Clock, venues: _Venues, events: _Events, orders: _Orders, users: _Users, truth: dict
) -> None:
    """`customer_wave` (in place; see the module doc): the sold orders of the last WAVE_DAYS days at the venue
    with the most of them go to its lapsed one-time customers."""
    out = truth.setdefault("insights", {})  # plant() made it
    out["customer_wave"] = None
    lo = clock.now - WAVE_DAYS * DAY
    venue = events.venue[orders.event]
    recent = (orders.cls == _SOLD) & (orders.created >= lo) & (orders.created < clock.now)
    per_venue = np.bincount(venue[recent], minlength=int(venue.max(initial=0)) + 1)
    if per_venue.max(initial=0) < WAVE_MIN_ORDERS:
        return
    w = int(np.argmax(per_venue))
    wave = np.flatnonzero(recent & (venue == w))
    # the venue's lapsed one-time customers (one order there, before the window), the longest gone first
    before_w = np.flatnonzero((venue == w) & (orders.cls == _SOLD) & (orders.created < lo))
    n_at = np.bincount(orders.user[(venue == w) & ~recent], minlength=len(users.ids))
    once = before_w[n_at[orders.user[before_w]] == 1]
    active = (users.status[orders.user[once]] == _USR["ACTIVE"]) & (users.deleted[orders.user[once]] < 0)
    once = once[active]
    lapsed = orders.user[once[np.argsort(orders.created[once], kind="stable")]]
    # one order each, the window's most recent orders to the longest lapsed; older orders keep their buyers
    wave = wave[np.argsort(-orders.created[wave], kind="stable")][: lapsed.size]
    before = np.unique(orders.user[wave])
    orders.user[wave] = lapsed[: wave.size]
    out["customer_wave"] = {
        "venue_id": venues.ids.take(np.array([w]))[0],
        "first_day": _iso_day(lo),
        "last_day": _iso_day(clock.now - 1),
        "orders": int(wave.size),
        "buyers_displaced": int(before.size),
        "lapsed_returned": int(wave.size),
    }
