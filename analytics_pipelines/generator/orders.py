"""Build demand and orders: purchase times, baskets, orders and items, refunds, BG/NBD users."""

from __future__ import annotations

import numpy as np

from analytics_pipelines.generator.planted_pricing import price_acceptance
from analytics_pipelines.generator.primitives import (
    _choice,
    _curve_draw,
    _dow,
    _group_starts,
    _Ids,
    _new_ids,
    _split_baskets,
    _Streams,
    _within_group_cumsum,
)
from analytics_pipelines.generator.reference import (
    _BASKET_P,
    _BASKET_SIZES,
    _CANCELLED,
    _CHANNEL_P,
    _CITY_OFFSET,
    _CITY_TAX,
    _CITY_WEIGHT,
    _CURVE,
    _EARLY_BIRD,
    _EARLY_BIRD_CURVE,
    _EMAIL_DOMAINS,
    _EXPIRED,
    _FIRST_NAMES,
    _LAST_NAMES,
    _ORD,
    _PAYMENT_P,
    _PENDING,
    _PURCHASE_DOW,
    _PURCHASE_HOUR,
    _REFUND_REASONS,
    _SOLD,
    _USR,
    DAY,
    HOUR,
    MINUTE,
    Scale,
)
from analytics_pipelines.generator.world import (
    _Clock,
    _Events,
    _Items,
    _Orders,
    _Refunds,
    _Types,
    _Users,
    _Venues,
)


def _purchase_times(
    rng: np.random.Generator, types: _Types, type_offset: np.ndarray, tier_type: np.ndarray
) -> np.ndarray:
    """Purchase times on the type's sales curve, with weekday and local hour-of-day purchase patterns."""
    n = tier_type.size
    lo, hi = types.sale_start[tier_type], types.sale_end[tier_type] - MINUTE
    offset = type_offset[tier_type]
    early = types.tier[tier_type] == _EARLY_BIRD
    t = np.zeros(n, np.int64)
    pending = np.ones(n, bool)
    for _ in range(3):  # weekday pattern by rejection: three rounds, then keep the last draw
        idx = np.flatnonzero(pending)
        u = np.where(
            early[idx], _curve_draw(rng, _EARLY_BIRD_CURVE, idx.size), _curve_draw(rng, _CURVE, idx.size)
        )
        raw = lo[idx] + (u * (hi[idx] - lo[idx])).astype(np.int64)
        local = raw + offset[idx]
        tod = _choice(rng, _PURCHASE_HOUR, idx.size) * HOUR + rng.integers(0, HOUR, idx.size)
        cand = np.clip(local // DAY * DAY + tod - offset[idx], lo[idx], hi[idx])
        t[idx] = cand
        accept = rng.random(idx.size) < _PURCHASE_DOW[_dow(cand + offset[idx])] / _PURCHASE_DOW.max()
        pending[idx[accept]] = False
    return t


def _make_baskets(
    rs: _Streams, clock: _Clock, venues: _Venues, events: _Events, types: _Types
) -> tuple[np.ndarray, ...]:
    """Baskets (future order items) of every class: (type, quantity, time, class)."""
    rng = rs("demand")
    boost = 1.0 if types.boost is None else types.boost  # compensates the price response's thinning
    demand_tickets = np.round(types.quantity * types.demand * boost).astype(np.int64)
    btype, bqty = _split_baskets(rng, demand_tickets)
    type_offset = np.array(_CITY_OFFSET)[venues.city[events.venue[types.event]]] * HOUR
    bt = _purchase_times(rng, types, type_offset, btype)
    # demand responds to price: keep a basket with probability (p(t) / p_min)^elasticity (planted_pricing)
    bought = rs("demand.price_response").random(btype.size) < price_acceptance(types, btype, bt)
    btype, bqty, bt = btype[bought], bqty[bought], bt[bought]
    ev = types.event[btype]
    alive = ~(events.cancelled[ev] & (bt >= events.cancel_time[ev]))
    btype, bqty, bt = btype[alive], bqty[alive], bt[alive]
    # capacity cut in time order: a sell-out stops sales; then only what was sold before now
    order = np.lexsort((bt, btype))
    btype, bqty, bt = btype[order], bqty[order], bt[order]
    prev = _within_group_cumsum(bqty, btype, len(types.ids)) - bqty
    keep = prev < types.quantity[btype]
    bqty = np.minimum(bqty, types.quantity[btype] - prev)
    keep &= bt <= clock.now - 15 * MINUTE
    btype, bqty, bt = btype[keep], bqty[keep], bt[keep]
    # failed checkouts: retries of real baskets a little earlier, which never became tickets
    rng = rs("failed_checkouts")
    n_failed = round(0.06 * btype.size)
    src = rng.choice(btype.size, n_failed, replace=False) if btype.size else np.zeros(0, np.int64)
    ftype = btype[src]
    ft = np.maximum(bt[src] - rng.exponential(1.5 * DAY, n_failed).astype(np.int64), types.sale_start[ftype])
    fcls = np.where(rng.random(n_failed) < 0.55, _CANCELLED, _EXPIRED)
    # pending carts: open checkouts in the last minutes before now, on types still on sale
    sold_per_type = np.bincount(btype, weights=bqty, minlength=len(types.ids))
    on_sale = np.flatnonzero(
        (types.sale_start <= clock.now - HOUR)
        & (types.sale_end > clock.now)
        & ~events.cancelled[types.event]
        & (sold_per_type < types.quantity)
    )
    n_pending = min(on_sale.size, max(1, round(0.002 * btype.size))) if on_sale.size else 0
    ptype = rng.choice(on_sale, n_pending) if n_pending else np.zeros(0, np.int64)
    pqty = _BASKET_SIZES[_choice(rng, _BASKET_P, n_pending)]
    pt = clock.now - rng.integers(MINUTE, 14 * MINUTE, n_pending)
    return (
        np.concatenate([btype, ftype, ptype]),
        np.concatenate([bqty, bqty[src], pqty]),
        np.concatenate([bt, ft, pt]),
        np.concatenate([np.full(btype.size, _SOLD), fcls, np.full(n_pending, _PENDING)]),
    )


def _make_orders(
    rs: _Streams,
    clock: _Clock,
    venues: _Venues,
    events: _Events,
    types: _Types,
    baskets: tuple[np.ndarray, ...],
) -> tuple[_Orders, _Items]:
    """Group baskets into orders (some two-tier orders), time-sort them, and price them in cents."""
    rng = rs("orders")
    btype, bqty, bt, bcls = baskets
    ev = types.event[btype]
    order = np.lexsort((bt, ev))
    btype, bqty, bt, bcls, ev = btype[order], bqty[order], bt[order], bcls[order], ev[order]
    n = btype.size
    pos = np.arange(n)
    run_start = np.maximum.accumulate(np.where(np.r_[True, ev[1:] != ev[:-1]], pos, 0))
    rank = pos - run_start
    prev = np.maximum(pos - 1, 0)
    merge = (
        (rank % 2 == 1)
        & (bcls == bcls[prev])
        & (btype != btype[prev])
        & (rng.random(n) < 0.35)
        & (bt[prev] >= types.sale_start[btype])
        & (bt[prev] <= types.sale_end[btype] - MINUTE)
        # the moved basket keeps the price it was bought at (the price response stays where it was planted)
        & (types.price_at(btype, bt[prev]) == types.price_at(btype, bt))
    )
    order_of = np.cumsum(~merge) - 1
    heads = np.flatnonzero(~merge)
    o_time = bt[heads]
    rank_of = np.empty(heads.size, np.int64)
    rank_of[np.lexsort((heads, o_time))] = np.arange(heads.size)
    item_order = rank_of[order_of]
    isort = np.lexsort((pos, item_order))
    item_order, btype, bqty = item_order[isort], btype[isort], bqty[isort]
    n_orders = heads.size
    o_sorted = np.empty(n_orders, np.int64)
    o_sorted[rank_of] = np.arange(n_orders)
    head_of = heads[o_sorted]
    created = bt[head_of]
    cls = bcls[head_of]
    event = ev[head_of]
    sold = cls == _SOLD
    confirmed = np.where(sold, created + rng.integers(20, 600, n_orders), -1)
    cancelled_at = np.where(cls == _CANCELLED, created + rng.integers(MINUTE, 14 * MINUTE, n_orders), -1)
    # unit price: the tier's price in effect when the order was confirmed (or created, if it never was)
    price_time = np.where(sold, confirmed, created)[item_order]
    unit = types.price_at(btype, price_time)
    subtotal = np.bincount(item_order, weights=unit * bqty, minlength=n_orders).astype(np.int64)
    quantity = np.bincount(item_order, weights=bqty, minlength=n_orders).astype(np.int64)
    venue = events.venue[event]
    platform_fee = np.round(subtotal * venues.service_fee[venue]).astype(np.int64)
    tax = np.round(subtotal * np.array(_CITY_TAX)[venues.city[venue]]).astype(np.int64)
    discount = np.where(
        rng.random(n_orders) < 0.07, np.round(subtotal * rng.choice([0.1, 0.15, 0.2], n_orders)), 0
    ).astype(np.int64)
    processing_fee = (np.round(0.029 * (subtotal + platform_fee + tax - discount)) + 30).astype(np.int64)
    total = subtotal + platform_fee + processing_fee + tax - discount
    orders = _Orders(
        ids=_Ids(_new_ids(rng, n_orders)),
        event=event,
        tenant=events.tenant[event],
        cls=cls,
        created=created,
        confirmed=confirmed,
        cancelled_at=cancelled_at,
        refunded_at=np.full(n_orders, -1, np.int64),
        created_null=sold & (rng.random(n_orders) < 0.01),
        status=np.zeros(n_orders, np.int64),
        quantity=quantity,
        subtotal=subtotal,
        platform_fee=platform_fee,
        processing_fee=processing_fee,
        tax=tax,
        discount=discount,
        total=total,
        user=np.zeros(n_orders, np.int64),
        channel=np.zeros(n_orders, np.int64),
        payment=np.zeros(n_orders, np.int64),
    )
    items = _Items(
        ids=_Ids(_new_ids(rng, item_order.size)),
        order=item_order,
        type=btype,
        quantity=bqty,
        unit=unit,
        created=created[item_order],
    )
    return orders, items


def _refund(rs: _Streams, clock: _Clock, events: _Events, orders: _Orders) -> _Refunds:
    """Refund every paid order of a cancelled event and ~1.8% of the others; set order statuses."""
    rng = rs("refunds")
    n = len(orders.ids)
    sold = orders.cls == _SOLD
    ev_cancelled = events.cancelled[orders.event] & sold
    lo = orders.confirmed + HOUR
    hi = np.minimum(events.starts[orders.event], clock.now) - MINUTE
    random_refund = sold & ~ev_cancelled & (hi - lo > 2 * HOUR) & (rng.random(n) < 0.018)
    refunded_at = np.where(random_refund, lo + (rng.random(n) * (hi - lo)).astype(np.int64), -1)
    after_cancel = events.cancel_time[orders.event] + rng.integers(HOUR, 48 * HOUR, n)
    refunded_at = np.where(ev_cancelled, np.minimum(after_cancel, clock.now - MINUTE), refunded_at)
    orders.refunded_at = refunded_at
    refunded = refunded_at >= 0
    recent = orders.confirmed > clock.now - 2 * DAY
    status = np.full(n, _ORD["COMPLETED"])
    status[sold & (recent | (rng.random(n) < 0.08))] = _ORD["CONFIRMED"]
    status[refunded] = _ORD["REFUNDED"]
    status[orders.cls == _CANCELLED] = _ORD["CANCELLED"]
    status[orders.cls == _EXPIRED] = _ORD["EXPIRED"]
    status[orders.cls == _PENDING] = _ORD["PENDING"]
    orders.status = status
    idx = np.flatnonzero(refunded)
    k = idx.size
    partial = ~ev_cancelled[idx] & (rng.random(k) < 0.3)  # partial: the platform keeps its fees
    kept_fees = orders.platform_fee[idx] + orders.processing_fee[idx]
    created = refunded_at[idx]
    pending = created > clock.now - 3 * DAY
    reason = np.where(ev_cancelled[idx], 0, rng.integers(1, len(_REFUND_REASONS), k))
    return _Refunds(
        ids=_Ids(_new_ids(rng, k)),
        order=idx,
        amount=orders.total[idx] - np.where(partial, kept_fees, 0),
        reason=reason,
        status=np.where(pending, 0, 1),
        refund_type=np.where(partial, 1, 0),
        created=created,
        updated=np.where(
            pending, created, np.minimum(created + rng.integers(MINUTE, 2 * DAY, k), clock.now - 1)
        ),
    )


def _bgnbd_owners(rng: np.random.Generator, n_users: int, order_times: np.ndarray, now: int) -> np.ndarray:
    """Which of n_users placed each of the (time-sorted) orders, under a BG/NBD buy-till-you-die process.

    Buyers (85% of users, at most one per order) make a first purchase, then repeat purchases at a
    Poisson rate lambda ~ Gamma(0.75) and drop out after each repeat with probability p ~ Beta(0.8, 2.6).
    The common rate scale is chosen so that the repeats before `now` are exactly the orders left over;
    purchase times are then rank-matched to the order times, so counts and order are the process's own.
    """
    n_orders = order_times.size
    if n_orders == 0:
        return np.zeros(0, np.int64)
    n_buyers = max(1, min(round(0.85 * n_users), n_orders))
    buyers = rng.permutation(n_users)[:n_buyers]
    lam = rng.gamma(0.75, 1.0, n_buyers) + 1e-6
    p = rng.beta(0.8, 2.6, n_buyers)
    max_repeats = np.minimum(rng.geometric(p), 200)
    t0 = order_times[rng.integers(0, n_orders, n_buyers)].astype(np.float64)
    exposure = np.maximum(now - t0, 1.0)
    owner = np.repeat(np.arange(n_buyers), max_repeats)
    gaps = _within_group_cumsum(rng.exponential(1.0, owner.size), owner, n_buyers)
    ratio = gaps / (lam[owner] * exposure[owner])
    needed = n_orders - n_buyers
    if needed > ratio.size:
        raise RuntimeError("BG/NBD calibration: not enough potential repeat purchases for the orders")
    chosen = np.argpartition(ratio, needed - 1)[:needed] if needed else np.zeros(0, np.int64)
    scale = ratio[chosen].max() if needed else 1.0
    times = np.concatenate([t0, t0[owner[chosen]] + gaps[chosen] / (lam[owner[chosen]] * scale)])
    who = np.concatenate([np.arange(n_buyers), owner[chosen]])
    return buyers[who[np.lexsort((who, times))]]


def _make_users(rs: _Streams, scale: Scale, clock: _Clock, venues: _Venues, orders: _Orders) -> _Users:
    rng = rs("users")
    n_tenants = scale.tenants
    per_tenant = np.bincount(orders.tenant, minlength=n_tenants).astype(float)
    weight = per_tenant + per_tenant.sum() * 0.01 + 1
    quota = weight / weight.sum() * scale.users
    counts = np.floor(quota).astype(np.int64)
    counts[np.argsort(-(quota - counts), kind="stable")[: scale.users - counts.sum()]] += 1
    offsets = _group_starts(counts)
    tenant = np.repeat(np.arange(n_tenants), counts)
    n = scale.users
    for t in range(n_tenants):  # a handful of tenants; the body is vectorised
        idx = np.flatnonzero(orders.tenant == t)  # orders are time-sorted
        owner = offsets[t] + _bgnbd_owners(rs(f"bgnbd.{t}"), int(counts[t]), orders.created[idx], clock.now)
        orders.user[idx] = owner
    # orders are time-sorted: a user's first order is their first row, the last their last row
    first_order = np.full(n, -1, np.int64)
    last_order = np.full(n, -1, np.int64)
    buyer, first_row = np.unique(orders.user, return_index=True)
    first_order[buyer] = orders.created[first_row]
    buyer, last_row = np.unique(orders.user[::-1], return_index=True)
    last_order[buyer] = orders.created[::-1][last_row]
    has = first_order >= 0
    # channel and payment-method habits: each user has a preferred channel used for ~80% of orders
    pref_channel = _choice(rng, _CHANNEL_P, n)
    pref_payment = _choice(rng, _PAYMENT_P, n)
    k = len(orders.ids)
    orders.channel = np.where(rng.random(k) < 0.8, pref_channel[orders.user], _choice(rng, _CHANNEL_P, k))
    orders.payment = np.where(rng.random(k) < 0.8, pref_payment[orders.user], _choice(rng, _PAYMENT_P, k))
    signup = np.where(
        has,
        first_order - rng.exponential(7 * DAY, n).astype(np.int64),
        clock.launch + (rng.random(n) * (clock.now - HOUR - clock.launch)).astype(np.int64),
    )
    created = np.clip(signup, clock.launch - 30 * DAY, np.where(has, first_order, clock.now - HOUR))
    # contract.USER_STATUSES: PENDING, ACTIVE, SUSPENDED, DELETED; only users who never bought are PENDING
    status = np.where(
        has,
        _choice(rng, np.array([0.0, 0.975, 0.02, 0.005]), n),
        _choice(rng, np.array([0.12, 0.80, 0.03, 0.05]), n),
    )
    deleted = status == _USR["DELETED"]
    start = np.maximum(created, last_order) + DAY
    deleted_at = np.where(
        deleted & (start < clock.now), start + (rng.random(n) * (clock.now - start)).astype(np.int64), -1
    )
    status[deleted & (deleted_at < 0)] = _USR["ACTIVE"]
    updated = np.maximum(created + (rng.random(n) * (clock.now - created)).astype(np.int64), deleted_at)
    venue_city = venues.city[rng.integers(0, len(venues.ids), n)]
    city = np.where(rng.random(n) < 0.7, venue_city, _choice(rng, np.array(_CITY_WEIGHT, float), n))
    phone = np.where(rng.random(n) < 0.7, rng.integers(0, 10_000_000, n), -1)
    return _Users(
        ids=_Ids(_new_ids(rng, n)),
        tenant=tenant,
        first=rng.integers(0, len(_FIRST_NAMES), n),
        last=rng.integers(0, len(_LAST_NAMES), n),
        domain=rng.integers(0, len(_EMAIL_DOMAINS), n),
        phone=phone,
        city=city,
        status=status,
        consent=rng.random(n) < 0.45,
        created=created,
        updated=updated,
        deleted=deleted_at,
        tenant_offset=offsets,
        tenant_count=counts,
    )
