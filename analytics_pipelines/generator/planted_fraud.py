"""Planted fraud (issue 17): four behaviours, each by a few tenths of a percent of the users, recorded in
`world.truth["fraud"]` (the scoring never reads it; tests and benchmarks compare against it).

- bot_burst: one account places 6-15 paid orders of one ticket type seconds apart (2-20 s gaps);
- scalper: a new account (created minutes to hours before its first purchase) buys the per-order maximum
  (`PER_ORDER_MAX` = 10 tickets, the platform's ticket_types.max_purchase default) of high-demand (sold-out)
  types in 2-4 orders, then lists most of those tickets soon after at a 40-150 % markup;
- refund_abuse: an account buys 4-8 times and has nearly all of those orders refunded;
- card_testing: an account places 8-25 checkouts within minutes that all fail (CANCELLED/EXPIRED), 1 ticket
  each, cycling through payment methods.

The platform has no device fingerprint column (sql/source/create_tables.sql: no user agent, IP or device on
orders; ticket_scans.device_id is venue equipment), so bursts are planted per account only.

Planting keeps every generator invariant: the fraudsters' accounts are users who had bought nothing; paid
orders are re-used, never added (scalper orders consolidate consecutive orders of the same type, so sold
tickets never exceed a type's quantity); re-timed or re-sized orders are re-priced at the price in effect
and their totals recomputed; orders stay time-sorted (items and refunds re-indexed). Every draw comes from the
named streams "fraud.*".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from analytics_pipelines.generator.planted_fraud_rows import _accounts, _append, _reorder, _reprice, _runs
from analytics_pipelines.generator.primitives import _group_starts, _Ids, _new_ids, _Streams, _uuid_text
from analytics_pipelines.generator.reference import (
    _CANCELLED,
    _EXPIRED,
    _LST,
    _ORD,
    _SOLD,
    _TKT,
    _TRF,
    _USR,
    DAY,
    HOUR,
    MINUTE,
)
from analytics_pipelines.generator.tickets import _pick_buyer
from analytics_pipelines.generator.world import (
    _Clock,
    _Events,
    _Items,
    _Orders,
    _Refunds,
    _Resale,
    _Tickets,
    _Types,
    _Users,
    _Venues,
)

#: share of users planted per pattern (at least MIN_PER_PATTERN)
FRAUD_RATE = 0.003
MIN_PER_PATTERN = 1
PER_ORDER_MAX = 10
PATTERNS = ("bot_burst", "scalper", "refund_abuse", "card_testing")
BOT, SCALPER, REFUND, CARD = range(4)


@dataclass
class FraudPlan:
    """What plant_fraud did: the pattern of every order (-1: none) for the resale step, and the truth."""

    order_pattern: np.ndarray
    truth: dict


# -- planting --------------------------------------------------------------------------------------------------
def plant_fraud(
    rs: _Streams,
    clock: _Clock,
    venues: _Venues,
    events: _Events,
    types: _Types,
    orders: _Orders,
    items: _Items,
    refunds: _Refunds,
    users: _Users,
) -> FraudPlan:
    """Plant the four behaviours into the built orders (after users are assigned, before tickets)."""
    rng = rs("fraud")
    n_per = max(MIN_PER_PATTERN, int(FRAUD_RATE * len(users.ids)))
    n = len(orders.ids)
    n_items = np.bincount(items.order, minlength=n)
    first_item = _group_starts(n_items)
    sold = orders.cls == _SOLD
    eligible = (
        sold
        & (orders.refunded_at < 0)
        & (n_items == 1)
        & ~orders.created_null
        & ~events.cancelled[orders.event]
        & (orders.confirmed < clock.now - 3 * DAY)
    )
    el = np.flatnonzero(eligible)
    el_item = first_item[el]
    el_type = items.type[el_item]
    # high demand: types that sold at least 90 % of their quantity (else the best-selling fifth)
    sold_t = np.bincount(
        items.type[sold[items.order]], weights=items.quantity[sold[items.order]], minlength=len(types.ids)
    )
    fill = sold_t / np.maximum(types.quantity, 1)
    high = fill >= min(0.9, np.quantile(fill, 0.8))
    buyer = np.zeros(len(users.ids), bool)
    buyer[orders.user] = True
    free = ~buyer & (users.deleted < 0)
    pattern = np.full(n, -1, np.int64)
    owner = np.full(n, -1, np.int64)
    # by type, then time: the position lists runs are drawn from
    by_type = np.lexsort((orders.created[el], el_type))
    used = np.zeros(el.size, bool)
    # 1. bot bursts: consecutive orders of one type, re-timed seconds apart (never later than they were)
    sizes = rng.integers(6, 16, n_per)
    for pos in _runs(rs("fraud.bot"), el_type[by_type], used, n_per, sizes):
        o = el[by_type[pos]]
        gaps = np.r_[0, rng.integers(2, 21, o.size - 1)]
        new = np.minimum(orders.created[o[0]] + np.cumsum(gaps), orders.created[o])
        delta = new - orders.created[o]
        # an order keeps its time where the move would cross a price change (the planted price response)
        t_type = items.type[first_item[o]]
        same = types.price_at(t_type, orders.confirmed[o] + delta) == types.price_at(
            t_type, orders.confirmed[o]
        )
        delta = np.where(same, delta, 0)
        new = orders.created[o] + delta
        orders.created[o], orders.confirmed[o] = new, orders.confirmed[o] + delta
        pattern[o], owner[o] = BOT, o[0]
        orders.channel[o], orders.payment[o] = 0, rng.integers(0, 4)
    # 2. scalpers: consecutive orders of a high-demand type consolidated into one of PER_ORDER_MAX tickets
    hi_pos = np.flatnonzero(high[el_type[by_type]])
    n_orders_s = rng.integers(2, 5, n_per)
    scalp_heads, drop, resized = [], [], []
    key = el_type[by_type][hi_pos]
    qty = items.quantity[el_item[by_type[hi_pos]]]
    tries = rs("fraud.scalper").permutation(hi_pos.size)[: 40 * n_per]
    for p in tries:
        if len(scalp_heads) >= int(n_orders_s.sum()):
            break
        j, acc = p, 0
        while j < hi_pos.size and key[j] == key[p] and not used[hi_pos[j]] and acc < PER_ORDER_MAX:
            acc += qty[j]
            j += 1
        if acc < PER_ORDER_MAX:
            continue
        run = by_type[hi_pos[p:j]]
        used[hi_pos[p:j]] = True
        o = el[run]
        head, last = o[0], o[-1]
        items.quantity[first_item[head]] = PER_ORDER_MAX
        rest = acc - PER_ORDER_MAX  # the last consumed order keeps what the scalper did not take
        if rest > 0 and last != head:
            items.quantity[first_item[last]] = rest
            resized.append(last)
            drop += list(o[1:-1])
        else:
            drop += list(o[1:])
        scalp_heads.append(head)
    resized += scalp_heads
    scalp_heads = np.array(sorted(scalp_heads, key=lambda h: (orders.tenant[h], orders.created[h])), np.int64)
    # group a tenant's consecutive scalper orders into accounts of 2-4 orders
    acct, i = np.full(scalp_heads.size, -1, np.int64), 0
    for s, size in enumerate(n_orders_s):
        take = scalp_heads[i : i + size]
        if take.size == 0:
            break
        same = orders.tenant[take] == orders.tenant[take[0]]
        acct[i : i + int(same.sum())] = s
        i += int(same.sum())
    keep = acct >= 0
    scalp_heads, acct = scalp_heads[keep], acct[keep]
    heads_of = {}
    for h, a in zip(scalp_heads.tolist(), acct.tolist(), strict=True):
        heads_of.setdefault(a, h)
    pattern[scalp_heads] = SCALPER
    owner[scalp_heads] = np.array([heads_of[a] for a in acct.tolist()], np.int64)
    # 3. refund abuse: every few orders of one tenant's eligible orders, refunded
    lo = orders.confirmed + HOUR
    hi = np.minimum(events.starts[orders.event], clock.now) - MINUTE
    by_time = np.lexsort((orders.created[el], orders.tenant[el]))
    refundable = (hi - lo > 2 * HOUR)[el[by_time]]
    rused = used[np.argsort(by_type)][by_time] | ~refundable
    sizes = rng.integers(4, 9, n_per)
    ref_orders = []
    for pos in _runs(rs("fraud.refund"), orders.tenant[el[by_time]], rused, n_per, sizes, stride=7):
        o = el[by_time[pos]]
        pattern[o], owner[o] = REFUND, o[0]
        ref_orders.append(o[: o.size - int(rng.random() < 0.3)])  # nearly all refunded
    _refund_more(
        rs("fraud.refund_rows"),
        clock,
        orders,
        refunds,
        np.concatenate(ref_orders or [np.zeros(0, np.int64)]),
        lo,
        hi,
    )
    # accounts for the re-used orders (same tenant, had bought nothing)
    heads = np.flatnonzero((owner >= 0) & (owner == np.arange(n)))
    acc_of = np.full(n, -1, np.int64)
    acc_of[heads] = _accounts(rng, users, free, orders.tenant[heads])
    has = owner >= 0
    orders.user[has] = np.where(acc_of[owner[has]] >= 0, acc_of[owner[has]], orders.user[has])
    pattern[has & (acc_of[np.maximum(owner, 0)] < 0)] = -1
    # 4. card testing: new failed checkouts, seconds to minutes apart, cycling through payment methods
    new_pattern, new_user = _card_testing(
        rs("fraud.card"), clock, venues, events, types, orders, items, el, el_type, n_per, users, free
    )
    bot_o = np.flatnonzero(pattern == BOT)
    _reprice(venues, events, types, orders, items, np.unique(np.r_[bot_o, np.array(resized, np.int64)]))
    # drop consumed orders, re-sort everything by time
    pattern = np.concatenate([pattern, new_pattern])
    keep_rows = np.ones(len(orders.ids), bool)
    keep_rows[np.array(drop, np.int64)] = False
    sel = np.flatnonzero(keep_rows)
    sel = sel[np.argsort(orders.created[sel], kind="stable")]
    (pattern,) = _reorder(orders, items, refunds, sel, pattern)
    _fix_accounts(rs("fraud.accounts"), clock, users, orders, pattern)
    return FraudPlan(order_pattern=pattern, truth=_truth(users, orders, pattern))


def _refund_more(
    rng: np.random.Generator, clock: _Clock, orders: _Orders, refunds: _Refunds, idx, lo, hi
) -> None:
    """Refund orders idx (FULL, a customer reason) soon after purchase; append their refund rows."""
    k = idx.size
    at = lo[idx] + (rng.uniform(0.02, 0.5, k) * (hi[idx] - lo[idx])).astype(np.int64)
    orders.refunded_at[idx] = at
    orders.status[idx] = _ORD["REFUNDED"]
    pending = at > clock.now - 3 * DAY
    _append(
        refunds,
        {
            "ids": _new_ids(rng, k),
            "order": idx,
            "amount": orders.total[idx],
            "reason": rng.integers(1, 3, k),  # "Customer request", "Unable to attend"
            "status": np.where(pending, 0, 1),
            "refund_type": np.zeros(k, np.int64),
            "created": at,
            "updated": np.where(
                pending, at, np.minimum(at + rng.integers(MINUTE, 2 * DAY, k), clock.now - 1)
            ),
        },
    )


def _card_testing(rng, clock, venues, events, types, orders, items, el, el_type, n_per, users, free):
    """Append n_per accounts' bursts of failed 1-ticket checkouts; returns (pattern, user) of the new orders."""
    anchor = el[rng.choice(el.size, n_per, replace=el.size < n_per)] if el.size else np.zeros(0, np.int64)
    acct = _accounts(rng, users, free, orders.tenant[anchor])
    anchor = anchor[acct >= 0]
    acct = acct[acct >= 0]
    k = rng.integers(8, 26, anchor.size)
    who = np.repeat(np.arange(anchor.size), k)
    ttype = items.type[_group_starts(np.bincount(items.order, minlength=len(orders.ids)))[anchor]][who]
    gaps = np.where(np.r_[True, who[1:] != who[:-1]], 0, rng.integers(20, 181, who.size))
    offset = np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[_group_starts(k)], k)
    span = np.repeat(np.bincount(who, weights=gaps, minlength=anchor.size).astype(np.int64), k)
    latest = np.minimum(types.sale_end[ttype] - MINUTE, clock.now - HOUR) - span
    t0 = np.clip(np.repeat(orders.created[anchor], k) - DAY, types.sale_start[ttype], latest)
    created = np.maximum(t0 + offset, clock.launch)
    m = who.size
    cls = np.where(rng.random(m) < 0.7, _CANCELLED, _EXPIRED)
    z = np.zeros(m, np.int64)
    ev = types.event[ttype]
    base = len(orders.ids)
    _append(
        orders,
        {
            "ids": _new_ids(rng, m),
            "event": ev,
            "tenant": events.tenant[ev],
            "cls": cls,
            "created": created,
            "confirmed": z - 1,
            "cancelled_at": np.where(cls == _CANCELLED, created + rng.integers(MINUTE, 14 * MINUTE, m), -1),
            "refunded_at": z - 1,
            "created_null": np.zeros(m, bool),
            "status": np.where(cls == _CANCELLED, _ORD["CANCELLED"], _ORD["EXPIRED"]),
            "quantity": z + 1,
            "subtotal": z,
            "platform_fee": z,
            "processing_fee": z,
            "tax": z,
            "discount": z,
            "total": z,
            "user": acct[who],
            "channel": z,
            "payment": rng.integers(0, 4, m),
        },
    )
    new = base + np.arange(m)
    _append(
        items,
        {
            "ids": _new_ids(rng, m),
            "order": new,
            "type": ttype,
            "quantity": z + 1,
            "unit": z,
            "created": created,
        },
    )
    _reprice(venues, events, types, orders, items, new)
    return np.full(m, CARD, np.int64), acct[who]


def _fix_accounts(rng: np.random.Generator, clock: _Clock, users: _Users, orders: _Orders, pattern) -> None:
    """Fraud accounts: active, never deleted, created before their first order (scalpers: just before)."""
    f = pattern >= 0
    u = orders.user[f]
    first = np.full(len(users.ids), np.iinfo(np.int64).max)
    np.minimum.at(first, u, orders.created[f])
    pat = np.full(len(users.ids), -1)
    pat[u] = pattern[f]
    acc = np.unique(u)
    before = np.where(
        pat[acc] == SCALPER,
        rng.integers(5 * MINUTE, 36 * HOUR, acc.size),
        rng.integers(DAY, 90 * DAY, acc.size),
    )
    users.created[acc] = np.maximum(first[acc] - before, clock.launch - 30 * DAY)
    users.status[acc] = _USR["ACTIVE"]
    users.deleted[acc] = -1
    users.updated[acc] = np.maximum(users.updated[acc], users.created[acc])


def _truth(users: _Users, orders: _Orders, pattern: np.ndarray) -> dict:
    f = np.flatnonzero(pattern >= 0)
    df = pl.DataFrame(
        {"user": orders.user[f], "tenant": orders.tenant[f], "pattern": pattern[f], "t": orders.created[f]}
    )
    per = (
        df.group_by("user")
        .agg(
            pl.first("tenant"),
            pl.first("pattern"),
            pl.min("t").alias("start"),
            pl.max("t").alias("end"),
            pl.len().alias("orders"),
        )
        .sort("user")
    )
    ids = _uuid_text(users.ids.raw[per["user"].to_numpy()])
    iso = lambda c: pl.from_epoch(per[c], time_unit="s").dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_list()  # noqa: E731
    fraudsters = [
        {"user_id": u, "pattern": PATTERNS[p], "behaviour_start": s, "behaviour_end": e, "orders": k}
        for u, p, s, e, k in zip(
            ids.to_list(),
            per["pattern"].to_list(),
            iso("start"),
            iso("end"),
            per["orders"].to_list(),
            strict=True,
        )
    ]
    counts = {p: sum(1 for x in fraudsters if x["pattern"] == p) for p in PATTERNS}
    return {
        "fraudsters": fraudsters,
        "counts": counts,
        "rate_per_pattern": FRAUD_RATE,
        "per_order_max": PER_ORDER_MAX,
    }


def plant_fraud_resale(
    rs: _Streams,
    clock: _Clock,
    venues: _Venues,
    events: _Events,
    users: _Users,
    orders: _Orders,
    tickets: _Tickets,
    resale: _Resale,
    tenant_fee: np.ndarray,
    plan: FraudPlan,
) -> None:
    """Scalpers list ~80 % of their tickets within hours of buying, at a 40-150 % markup; most sell."""
    rng = rs("fraud.resale")
    mine = plan.order_pattern[tickets.order] == SCALPER
    markup = rng.uniform(1.4, 2.5, len(tickets.ids))
    listed = np.zeros(len(tickets.ids), bool)
    listed[resale.ticket] = True  # tickets the ordinary resale step listed keep their listing
    ev = tickets.event
    end = np.minimum(events.starts[ev] - 3 * HOUR, clock.now - MINUTE)
    lt = np.flatnonzero(
        mine
        & ~listed
        & (tickets.status != _TKT["refunded"])
        & (end - tickets.purchased > 4 * HOUR)
        & (rng.random(len(tickets.ids)) < 0.8)
    )
    k = lt.size
    if k == 0:
        return
    start, end = tickets.purchased[lt], end[lt]
    listed_at = start + np.minimum(rng.integers(HOUR, 48 * HOUR, k), (end - start) // 2)
    sold_at = listed_at + (rng.uniform(0.02, 0.6, k) * (end - listed_at)).astype(np.int64)
    tenant = events.tenant[ev[lt]]
    buyer = _pick_buyer(rng, users, tenant, orders.user[tickets.order[lt]], sold_at)
    sells = (rng.random(k) < 0.85) & (buyer >= 0)
    status = np.where(
        sells, _LST["sold"], np.where(events.starts[ev[lt]] <= clock.now, _LST["expired"], _LST["active"])
    )
    base_l, base_t = len(resale.listing_ids), len(resale.transfer_ids)
    face = tickets.price[lt]
    price = np.round(face * markup[lt]).astype(np.int64)
    listing_cols = (
        "listing_ids",
        "ticket",
        "price",
        "face",
        "status",
        "listed",
        "sold",
        "expires",
        "cancelled",
    )
    for name, add in zip(
        listing_cols,
        (
            _new_ids(rng, k),
            lt,
            price,
            face,
            status,
            listed_at,
            np.where(sells, sold_at, -1),
            events.starts[ev[lt]],
            np.full(k, -1),
        ),
        strict=True,
    ):
        cur = getattr(resale, name)
        setattr(
            resale,
            name,
            _Ids(np.concatenate([cur.raw, add]))
            if isinstance(cur, _Ids)
            else np.concatenate([cur, add.astype(cur.dtype)]),
        )
    done = np.flatnonzero(sells)
    m = done.size
    crypto = rng.random(m) < 0.3
    transfer = {
        "transfer_ids": _new_ids(rng, m),
        "transfer_listing": base_l + done,
        "buyer": buyer[done],
        "transfer_status": np.full(m, _TRF["completed"]),
        "crypto": crypto,
        "currency": np.where(crypto, (rng.random(m) < 0.3).astype(np.int64), -1),
        "initiated": np.maximum(sold_at[done] - rng.integers(MINUTE, 10 * MINUTE, m), listed_at[done]),
        "completed": sold_at[done],
        "failed": np.full(m, -1),
        "fee_ids": _new_ids(rng, m),
        "fee_transfer": base_t + np.arange(m),
        "platform_fee": np.round(price[done] * tenant_fee[tenant[done]]).astype(np.int64),
        "venue_fee": np.round(price[done] * venues.resale_fee[events.venue[ev[lt[done]]]]).astype(np.int64),
    }
    for name, add in transfer.items():
        cur = getattr(resale, name)
        setattr(
            resale,
            name,
            _Ids(np.concatenate([cur.raw, add]))
            if isinstance(cur, _Ids)
            else np.concatenate([cur, add.astype(cur.dtype)]),
        )
    moved = lt[done]
    tickets.holder[moved] = buyer[done]
    tickets.status[moved] = _TKT["transferred"]
    tickets.status_changed[moved] = sold_at[done]
