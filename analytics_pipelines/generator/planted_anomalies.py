"""Planted KPI anomalies (issue 17): spikes, drops and level shifts in some venues' hourly sales and refund
spikes, at known hours, on top of the generator's weekday x hour seasonality (which is not anomalous).

Every anomaly is made of real rows, so the marts reconcile as before:
- `spike` (1-2 h) and `level_shift_up` (24-72 h): extra paid baskets of the venue's events on sale at that
  time (within the ticket types' remaining capacity and sale windows);
- `drop` (12-36 h, all sales gone: a checkout outage) and `level_shift_down` (48-96 h, ~85 % of sales gone):
  paid baskets removed, placed only where the venue's normal sales over the window are high enough for a
  missing day to mean something (a venue selling two orders a day cannot visibly drop);
- only ticket types whose price never changes get or lose sales (the pricing truth of issue 16 is estimated
  from sales between price changes), so a drop is placed where such types hold >= 60 % of the window's sales
  and `magnitude` is the share of the venue's sales left;
- `refund_spike` (1-3 h): paid orders of the venue's upcoming events refunded in full in that window.

Truth: world.truth["monitoring"]["anomalies"], one dict per anomaly: tenant_id, venue_id, metric (the KPI
metric it shows in: hourly_orders or hourly_refunds), start_hour / end_hour (ISO UTC, end exclusive), kind,
magnitude (the factor of the venue's normal level: > 1 up, < 1 down) and delta (orders or refunds added,
negative when removed). Deterministic: streams "anomalies.plan" and "anomalies.refunds".
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from analytics_pipelines.generator.primitives import _Ids, _new_ids, _Streams
from analytics_pipelines.generator.reference import _ORD, _REFUND_REASONS, _SOLD, DAY, HOUR, MINUTE
from analytics_pipelines.generator.world import _Clock, _Events, _Orders, _Refunds, _Types, _Venues

#: anomalies of one venue are at least this far apart (so that each one is a separate episode)
GAP = 7 * DAY
#: no anomaly in the first weeks (a detector needs a baseline) nor in the last two days
WARMUP = 28 * DAY
SALES_KINDS = ("spike", "spike", "level_shift_up", "drop", "level_shift_down")


def _iso(t: int) -> str:
    return datetime.fromtimestamp(int(t), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hourly(venue: np.ndarray, t: np.ndarray, n_venues: int, t0: int, n_hours: int) -> np.ndarray:
    """(venue, hour) counts of events at times t (seconds) from t0."""
    h = (t - t0) // HOUR
    ok = (h >= 0) & (h < n_hours)
    return np.bincount(venue[ok] * n_hours + h[ok], minlength=n_venues * n_hours).reshape(n_venues, n_hours)


def plant_sales(
    rs: _Streams,
    clock: _Clock,
    venues: _Venues,
    events: _Events,
    types: _Types,
    baskets: tuple[np.ndarray, ...],
    truth: dict,
) -> tuple[np.ndarray, ...]:
    """Baskets with the sales anomalies planted; the anomalies appended to truth["monitoring"]."""
    rng = rs("anomalies.plan")
    btype, bqty, bt, bcls = baskets
    n_v = len(venues.ids)
    t0 = clock.now - ((clock.now - clock.launch) // HOUR) * HOUR
    n_hours = (clock.now - t0) // HOUR
    sold = bcls == _SOLD
    bvenue = events.venue[types.event[btype]]
    counts = _hourly(bvenue[sold], bt[sold], n_v, t0, n_hours)
    # only ticket types whose price never changes are touched: the pricing truth (issue 16) is estimated
    # from sales between price changes, which added or removed sales would bias
    fixed = types.n_changes == 0
    movable = sold & fixed[btype]
    cum_fixed = np.cumsum(_hourly(bvenue[movable], bt[movable], n_v, t0, n_hours), axis=1)
    lo_h, hi_h = WARMUP // HOUR, n_hours - 2 * DAY // HOUR
    out: list[dict] = truth.setdefault("monitoring", {}).setdefault("anomalies", [])
    if hi_h - lo_h < 4 * DAY // HOUR or not sold.any():
        return baskets
    n_plan = int(np.clip(round(n_v * (clock.now - clock.launch) / DAY / 120), 3, 400))
    weight = counts.sum(axis=1).astype(float) + 1.0
    busy = np.quantile(counts[:, lo_h:hi_h], 0.99, axis=1)
    cum = np.cumsum(counts, axis=1)
    taken: dict[int, list[int]] = {}
    remove = np.zeros(btype.size, bool)
    add_type, add_qty, add_t = [], [], []
    sold_per_type = np.bincount(btype[sold], weights=bqty[sold], minlength=len(types.ids))
    for _ in range(n_plan * 10):
        if len(out) >= n_plan:
            break
        v = int(rng.choice(n_v, p=weight / weight.sum()))
        kind = SALES_KINDS[int(rng.integers(0, len(SALES_KINDS)))]
        dur = {
            "spike": int(rng.integers(1, 3)),
            "level_shift_up": int(rng.integers(24, 73)),
            "drop": int(rng.integers(12, 37)),
            "level_shift_down": int(rng.integers(48, 97)),
        }[kind]
        if kind in ("drop", "level_shift_down"):
            # where the venue normally sells enough over the window for its absence to be visible
            win = cum[v, dur:] - cum[v, :-dur]
            win_fixed = cum_fixed[v, dur:] - cum_fixed[v, :-dur]
            starts = np.arange(win.size)
            ok = (
                (starts >= lo_h)
                & (starts + dur <= hi_h)
                & (win_fixed >= max(30, dur))
                & (win_fixed >= 0.6 * win)  # most of the window's sales can go
            )
            if not ok.any():
                continue
            h = int(rng.choice(starts[ok]))
        else:
            h = int(rng.integers(lo_h, hi_h - dur))
        if any(abs(h - o) * HOUR < GAP for o in taken.get(v, [])):
            continue
        a, b = t0 + h * HOUR, t0 + (h + dur) * HOUR
        normal = float(counts[v, h - 28 * 24 : h].mean())  # the venue's level over the 4 weeks before
        if kind in ("drop", "level_shift_down"):
            frac = 1.0 if kind == "drop" else float(rng.uniform(0.8, 0.9))
            inside = np.flatnonzero(movable & (bvenue == v) & (bt >= a) & (bt < b) & ~remove)
            gone = inside[rng.random(inside.size) < frac]
            remove[gone] = True
            everything = int(np.sum(sold & (bvenue == v) & (bt >= a) & (bt < b)))
            delta, magnitude = -int(gone.size), round(1.0 - gone.size / max(everything, 1), 3)
        else:
            per_hour = (
                np.ceil(rng.uniform(2.5, 4.0) * (busy[v] + 2))
                if kind == "spike"
                else np.maximum(1, rng.poisson(rng.uniform(2.5, 4.0) * (normal + 0.5), dur))
            )
            n_add = int(np.sum(per_hour)) if np.ndim(per_hour) else int(per_hour * dur)
            when = a + rng.integers(0, b - a, n_add)
            when = np.minimum(when, clock.now - 15 * MINUTE)
            cand = np.flatnonzero(fixed & (events.venue[types.event] == v) & ~events.cancelled[types.event])
            live = cand[(types.sale_start[cand] <= a) & (types.sale_end[cand] - MINUTE > b)]
            live = live[events.starts[types.event[live]] > b]
            room = np.maximum(types.quantity[live] - sold_per_type[live], 0).astype(float)
            if live.size == 0 or room.sum() < 3 * n_add:
                continue
            tt = rng.choice(live, n_add, p=room / room.sum())
            qty = rng.choice(np.array([1, 2, 2, 3, 4]), n_add)
            # never beyond a type's capacity: baskets past it are dropped
            o = np.argsort(tt, kind="stable")
            tt, qty, when = tt[o], qty[o], when[o]
            csum = np.cumsum(qty)
            start_of = np.r_[0, np.flatnonzero(tt[1:] != tt[:-1]) + 1]
            base = np.repeat(csum[start_of] - qty[start_of], np.diff(np.r_[start_of, tt.size]))
            fits = csum - base <= types.quantity[tt] - sold_per_type[tt]
            tt, qty, when = tt[fits], qty[fits], when[fits]
            n_add = int(tt.size)
            if n_add == 0:
                continue
            np.add.at(sold_per_type, tt, qty)
            add_type.append(tt)
            add_qty.append(qty)
            add_t.append(when)
            delta = n_add
            magnitude = round((normal * dur + n_add) / max(normal * dur, 1.0), 3)
        taken.setdefault(v, []).append(h)
        out.append(
            dict(
                venue_id=venues.ids.take(np.array([v]))[0],
                tenant_index=int(venues.tenant[v]),
                metric="hourly_orders",
                start_hour=_iso(a),
                end_hour=_iso(b),
                kind=kind,
                magnitude=magnitude,
                delta=delta,
            )
        )
    keep = ~remove
    if add_type:
        at = np.concatenate(add_type)
        return (
            np.concatenate([btype[keep], at]),
            np.concatenate([bqty[keep], np.concatenate(add_qty)]),
            np.concatenate([bt[keep], np.concatenate(add_t)]),
            np.concatenate([bcls[keep], np.full(at.size, _SOLD)]),
        )
    return btype[keep], bqty[keep], bt[keep], bcls[keep]


def plant_refunds(
    rs: _Streams,
    clock: _Clock,
    venues: _Venues,
    events: _Events,
    orders: _Orders,
    refunds: _Refunds,
    truth: dict,
) -> _Refunds:
    """Refund spikes: some venues' paid orders refunded in full within 1-3 hours; refunds returned."""
    rng = rs("anomalies.refunds")
    out: list[dict] = truth.setdefault("monitoring", {}).setdefault("anomalies", [])
    n_v = len(venues.ids)
    lo, hi = clock.launch + WARMUP, clock.now - 4 * DAY  # refunds of the last 3 days are still pending
    if hi - lo < 4 * DAY:
        return refunds
    n_plan = int(np.clip(round(n_v * (clock.now - clock.launch) / DAY / 360), 2, 150))
    ovenue = events.venue[orders.event]
    refundable = (orders.cls == _SOLD) & (orders.refunded_at < 0)
    new_idx, new_t = [], []
    taken: dict[int, list[int]] = {}
    for _ in range(n_plan * 4):
        if len(out) and sum(a["metric"] == "hourly_refunds" for a in out) >= n_plan:
            break
        v = int(rng.integers(0, n_v))
        dur = int(rng.integers(1, 4))
        a = lo + int(rng.integers(0, (hi - lo) // HOUR)) * HOUR
        b = a + dur * HOUR
        if any(abs(a - o) < GAP for o in taken.get(v, [])):
            continue
        pool = np.flatnonzero(
            refundable
            & (ovenue == v)
            & (orders.confirmed < a - HOUR)
            & (events.starts[orders.event] > b)
            & ~events.cancelled[orders.event]
        )
        n = int(rng.integers(5, 12))
        if pool.size < n:
            continue
        idx = rng.choice(pool, n, replace=False)
        refundable[idx] = False
        new_idx.append(idx)
        new_t.append(a + rng.integers(0, b - a, n))
        taken.setdefault(v, []).append(a)
        out.append(
            dict(
                venue_id=venues.ids.take(np.array([v]))[0],
                tenant_index=int(venues.tenant[v]),
                metric="hourly_refunds",
                start_hour=_iso(a),
                end_hour=_iso(b),
                kind="refund_spike",
                magnitude=float(n),
                delta=n,
            )
        )
    if not new_idx:
        return refunds
    idx, t = np.concatenate(new_idx), np.concatenate(new_t)
    orders.refunded_at[idx] = t
    orders.status[idx] = _ORD["REFUNDED"]
    k = idx.size
    pending = t > clock.now - 3 * DAY
    order = np.concatenate([refunds.order, idx])
    sort = np.argsort(order, kind="stable")

    def cat(old: np.ndarray, new: np.ndarray) -> np.ndarray:
        return np.concatenate([old, new])[sort]

    return _Refunds(
        ids=_Ids(np.concatenate([refunds.ids.raw, _new_ids(rng, k)])[sort]),
        order=order[sort],
        amount=cat(refunds.amount, orders.total[idx]),
        reason=cat(refunds.reason, rng.integers(1, len(_REFUND_REASONS), k)),
        status=cat(refunds.status, np.where(pending, 0, 1)),
        refund_type=cat(refunds.refund_type, np.zeros(k, refunds.refund_type.dtype)),
        created=cat(refunds.created, t),
        updated=cat(
            refunds.updated,
            np.where(pending, t, np.minimum(t + rng.integers(MINUTE, 2 * DAY, k), clock.now - 1)),
        ),
    )


def finish_truth(truth: dict, tenant_ids: _Ids) -> None:
    """Tenant ids (known once the world's tenants are) in place of the planting's tenant indexes."""
    for a in truth.get("monitoring", {}).get("anomalies", []):
        if "tenant_index" in a:
            a["tenant_id"] = tenant_ids.take(np.array([a.pop("tenant_index")]))[0]
