"""Build tickets and scans, resale (listings, transfers, fees) and the sold-dependent statuses."""

from __future__ import annotations

import numpy as np

from analytics_pipelines.generator.planted_pricing import category_names
from analytics_pipelines.generator.primitives import _choice, _Ids, _new_ids, _Streams
from analytics_pipelines.generator.reference import (
    _EV,
    _LST,
    _SCANNERS_PER_GATE,
    _SCH,
    _SECTIONS,
    _SOLD,
    _TIER_SECTION,
    _TKT,
    _TRF,
    DAY,
    HOUR,
    MINUTE,
)
from analytics_pipelines.generator.world import (
    _Clock,
    _Events,
    _Items,
    _Orders,
    _Resale,
    _Tickets,
    _Types,
    _Users,
    _Venues,
)


def _make_tickets(
    rs: _Streams, clock: _Clock, events: _Events, types: _Types, orders: _Orders, items: _Items
) -> _Tickets:
    """One ticket per unit of a paid order's items (scans and "used" statuses: _check_in, after resale)."""
    rng = rs("tickets")
    paid = np.flatnonzero(orders.cls[items.order] == _SOLD)
    item = np.repeat(paid, items.quantity[paid])
    n = item.size
    order, ttype = items.order[item], items.type[item].astype(np.int32)
    event = types.event[ttype].astype(np.int32)
    purchased = orders.confirmed[order]
    refunded = orders.refunded_at[order] >= 0
    section = np.array([_SECTIONS.index(s) if s else -1 for s in _TIER_SECTION])[types.tier[ttype]]
    lettered = section < 0
    section[lettered] = rng.integers(3, len(_SECTIONS), int(lettered.sum()))
    status = np.where(refunded, _TKT["refunded"], _TKT["active"])
    status_changed = np.where(refunded, orders.refunded_at[order], purchased)
    return _Tickets(
        ids=_Ids(_new_ids(rng, n)),
        order=order,
        type=ttype,
        event=event,
        purchased=purchased,
        holder=orders.user[order].astype(np.int32),
        price=items.unit[item],
        section=section.astype(np.int8),
        status=status.astype(np.int8),
        checked_in=np.full(n, -1, np.int64),
        status_changed=status_changed,
        scan_ids=_Ids(_new_ids(rng, 0)),  # scans: _check_in, once resale has settled who holds the ticket
        scan_ticket=np.zeros(0, np.int64),
        scan_time=np.zeros(0, np.int64),
        scan_result=np.zeros(0, np.int8),
        scan_device=np.zeros(0, np.int8),
    )


#: the planted no-show model (truth["no_show"]): logit P(no-show) = intercept + category offset + coefficients
#: x features; reliability is a latent per-user N(0, 1) trait that shows in the holder's earlier tickets
_NS_INTERCEPT = -5.4
_NS_COEF = {
    "log1p_lead_days": 0.7,  # purchase to event start, days
    "log_price_ratio": -1.5,  # log(price paid / mean price of the event's tickets)
    "holder_reliability": -1.4,  # latent; observable through the holder's past attendance
    "transferred": 0.7,  # resold on the marketplace: the buyer attends
}
_NS_CATEGORY = (0.0, -0.5, -0.7, 0.2, 0.5, 0.8, 0.45, -0.3, -0.45, 0.9)  # _CAT_SLUG order


def _check_in(rs: _Streams, clock: _Clock, events: _Events, types: _Types, n_users: int, t: _Tickets) -> dict:
    """Decide who shows up (the planted logistic no-show model), write scans and 'used' statuses; the truth."""
    rng = rs("check_in")
    n = len(t.ids)
    event = t.event
    reliability = rs("no_show.reliability").standard_normal(n_users)
    lead_days = np.maximum(events.starts[event] - t.purchased, 0) / DAY
    mean_price = np.bincount(event, weights=t.price, minlength=len(events.ids)) / np.maximum(
        np.bincount(event, minlength=len(events.ids)), 1
    )
    transferred = t.status == _TKT["transferred"]
    logit = (
        _NS_INTERCEPT
        + np.array(_NS_CATEGORY)[events.category[event]]
        + _NS_COEF["log1p_lead_days"] * np.log1p(lead_days)
        + _NS_COEF["log_price_ratio"] * np.log(np.maximum(t.price, 1) / np.maximum(mean_price[event], 1))
        + _NS_COEF["holder_reliability"] * reliability[t.holder]
        + _NS_COEF["transferred"] * transferred
    )
    p_no_show = 1 / (1 + np.exp(-logit))
    doors, starts = events.doors[event], events.starts[event]
    scan_time = doors + (rng.beta(2.0, 3.0, n) * (starts + 45 * MINUTE - doors)).astype(np.int64)
    refunded = t.status == _TKT["refunded"]
    scanned = ~events.cancelled[event] & ~refunded & (rng.random(n) >= p_no_show) & (scan_time < clock.now)
    result = np.where(scanned, _choice(rng, np.array([0.975, 0.015, 0.01]), n), -1)  # valid, invalid, dup
    valid = result == 0
    used = valid & (t.status == _TKT["active"])  # a transferred ticket stays 'transferred' when scanned
    t.status[used] = _TKT["used"]
    t.status_changed[used] = scan_time[used]
    t.checked_in = np.where(valid, scan_time, -1)
    gate = np.where(
        types.tier[t.type] == 1, 4, np.array([0, 1, 2, 3, 5])[_choice(rng, np.array([4, 2, 2, 1, 1.0]), n)]
    )
    device = gate * _SCANNERS_PER_GATE + rng.integers(0, _SCANNERS_PER_GATE, n)
    rows = np.flatnonzero(scanned)
    rows = rows[np.argsort(scan_time[rows], kind="stable")]
    t.scan_ids = _Ids(_new_ids(rng, rows.size))
    t.scan_ticket, t.scan_time = rows, scan_time[rows]
    t.scan_result, t.scan_device = result[rows].astype(np.int8), device[rows].astype(np.int8)
    attended = ~events.cancelled[event] & ~refunded & (events.ends[event] < clock.now)
    return {
        "model": "logistic: logit P(no-show) = intercept + category_offset[category] + sum(coef * feature)",
        "intercept": _NS_INTERCEPT,
        "coefficients": dict(_NS_COEF),
        "category_offsets": dict(zip(category_names(), _NS_CATEGORY, strict=True)),
        "features": {
            "log1p_lead_days": "log(1 + days from purchase (tickets.purchased_at) to event start)",
            "log_price_ratio": "log(ticket price / mean price of all tickets of the event)",
            "holder_reliability": "latent per-user N(0, 1) trait of the ticket's holder at the event; shows in "
            "the holder's past attendance (their tickets of earlier events)",
            "transferred": "1 if the ticket was resold on the marketplace (status 'transferred')",
        },
        "no_show": "a paid, non-refunded ticket of a non-cancelled event without any scan",
        "mean_probability_ended_events": float(p_no_show[attended].mean()) if attended.any() else None,
        "realised_rate_ended_events": float(1 - scanned[attended].mean()) if attended.any() else None,
    }


def _pick_buyer(
    rng: np.random.Generator, users: _Users, tenant: np.ndarray, seller: np.ndarray, when: np.ndarray
) -> np.ndarray:
    """A random other user of the same tenant, signed up and not deleted at `when` (-1 if three draws fail)."""
    count, offset = users.tenant_count[tenant], users.tenant_offset[tenant]
    buyer = np.full(tenant.size, -1, np.int64)
    for _ in range(3):
        todo = np.flatnonzero((buyer < 0) & (count > 1))
        local = seller[todo] - offset[todo]
        cand = offset[todo] + (local + 1 + rng.integers(0, np.maximum(count[todo] - 1, 1))) % count[todo]
        deleted = users.deleted[cand]
        ok = (users.created[cand] < when[todo] - HOUR) & ((deleted < 0) | (deleted > when[todo]))
        buyer[todo[ok]] = cand[ok]
    return buyer


def _make_resale(
    rs: _Streams,
    clock: _Clock,
    venues: _Venues,
    events: _Events,
    types: _Types,
    users: _Users,
    orders: _Orders,
    tickets: _Tickets,
    tenant_fee: np.ndarray,
) -> _Resale:
    """~4.5% of resellable tickets listed (more for sold-out tiers), ~70% of listings sold, some failed tries."""
    rng = rs("resale")
    n = len(tickets.ids)
    ev = tickets.event
    window_end = np.minimum(events.starts[ev] - 3 * HOUR, clock.now - MINUTE)
    sold_out = np.bincount(tickets.type, minlength=len(types.ids)) >= types.quantity
    listed = (
        (tickets.status != _TKT["refunded"])
        & ~events.cancelled[ev]
        & (window_end - tickets.purchased > 2 * HOUR)
        & (rng.random(n) < 0.03 + 0.05 * sold_out[tickets.type])
    )
    lt = np.flatnonzero(listed)
    k = lt.size
    start, end = tickets.purchased[lt], window_end[lt]
    listed_at = start + (rng.uniform(0.05, 0.9, k) * (end - start)).astype(np.int64)
    order = np.argsort(listed_at, kind="stable")
    lt, start, end, listed_at = lt[order], start[order], end[order], listed_at[order]
    face = tickets.price[lt]
    price = np.round(face * np.clip(rng.lognormal(0.25, 0.25, k), 0.9, 4.0)).astype(np.int64)
    seller = orders.user[tickets.order[lt]]
    tenant = events.tenant[ev[lt]]
    sold_at = listed_at + (rng.uniform(0.02, 1.0, k) * (end - listed_at)).astype(np.int64)
    buyer = _pick_buyer(rng, users, tenant, seller, sold_at)
    sells = (rng.random(k) < 0.7) & (buyer >= 0)
    cancel = ~sells & (rng.random(k) < 0.25)
    expired = ~sells & ~cancel & (events.starts[ev[lt]] <= clock.now)
    status = np.full(k, _LST["active"])
    status[~sells & ~cancel & ~expired & (rng.random(k) < 0.05)] = _LST["pending_approval"]
    status[sells], status[cancel], status[expired] = _LST["sold"], _LST["cancelled"], _LST["expired"]
    cancelled_at = np.where(cancel, listed_at + (rng.random(k) * (end - listed_at)).astype(np.int64), -1)
    sold_at = np.where(sells, sold_at, -1)
    # transfers: one completed per sold listing, plus failed attempts on ~6% of listings
    done = np.flatnonzero(sells)
    att = np.flatnonzero(rng.random(k) < 0.06)
    att_end = np.where(sells[att], sold_at[att] - 15 * MINUTE, end[att])  # a failed try precedes a sale
    room = att_end > listed_at[att] + MINUTE
    att, att_end = att[room], att_end[room]
    att_init = listed_at[att] + (rng.random(att.size) * (att_end - listed_at[att])).astype(np.int64)
    att_buyer = _pick_buyer(rng, users, tenant[att], seller[att], att_init)
    ok = att_buyer >= 0
    att, att_init, att_buyer = att[ok], att_init[ok], att_buyer[ok]
    done_init = np.maximum(sold_at[done] - rng.integers(MINUTE, 10 * MINUTE, done.size), listed_at[done])
    t_listing = np.concatenate([done, att])
    t_init = np.concatenate([done_init, att_init])
    t_order = np.argsort(t_init, kind="stable")
    t_listing, t_init = t_listing[t_order], t_init[t_order]
    completed = np.concatenate([np.ones(done.size, bool), np.zeros(att.size, bool)])[t_order]
    t_buyer = np.concatenate([buyer[done], att_buyer])[t_order]
    m = t_listing.size
    crypto = rng.random(m) < 0.3
    fail_time = np.minimum(t_init + rng.integers(MINUTE, 10 * MINUTE, m), clock.now - 1)
    # the resale buyer holds the ticket now
    resold = lt[done]
    tickets.holder[resold] = buyer[done]
    tickets.status[resold] = _TKT["transferred"]
    tickets.status_changed[resold] = sold_at[done]
    fee_transfer = np.flatnonzero(completed)
    fee_order = np.argsort(sold_at[t_listing[fee_transfer]], kind="stable")
    fee_transfer = fee_transfer[fee_order]
    sale = price[t_listing[fee_transfer]]
    venue = events.venue[ev[lt[t_listing[fee_transfer]]]]
    return _Resale(
        listing_ids=_Ids(_new_ids(rng, k)),
        ticket=lt,
        price=price,
        face=face,
        status=status,
        listed=listed_at,
        sold=sold_at,
        expires=events.starts[ev[lt]],
        cancelled=cancelled_at,
        transfer_ids=_Ids(_new_ids(rng, m)),
        transfer_listing=t_listing,
        buyer=t_buyer,
        transfer_status=np.where(completed, _TRF["completed"], _TRF["failed"]),
        crypto=crypto,
        currency=np.where(crypto, (rng.random(m) < 0.3).astype(np.int64), -1),
        initiated=t_init,
        completed=np.where(completed, sold_at[t_listing], -1),
        failed=np.where(completed, -1, fail_time),
        fee_ids=_Ids(_new_ids(rng, fee_transfer.size)),
        fee_transfer=fee_transfer,
        platform_fee=np.round(sale * tenant_fee[tenant[t_listing[fee_transfer]]]).astype(np.int64),
        venue_fee=np.round(sale * venues.resale_fee[venue]).astype(np.int64),
    )


def _finish(
    rs: _Streams, clock: _Clock, venues: _Venues, events: _Events, types: _Types, tickets: _Tickets
) -> None:
    """Denormalised counters and life-cycle statuses that depend on what was sold."""
    rng = rs("finish")
    n_ev = len(events.ids)
    live = np.isin(tickets.status, [_TKT["active"], _TKT["used"], _TKT["transferred"]])
    types.sold = np.bincount(tickets.type, weights=live, minlength=len(types.ids)).astype(np.int64)
    sold_out = (
        np.bincount(tickets.event, minlength=n_ev)  # every seat was issued at some point
        >= np.bincount(types.event, weights=types.quantity, minlength=n_ev)
    )
    last_sale = np.full(n_ev, -1, np.int64)
    ev_rev, row_rev = np.unique(tickets.event[::-1], return_index=True)  # tickets are in purchase order
    last_sale[ev_rev] = tickets.purchased[::-1][row_rev]
    since = np.minimum(np.maximum(events.sale_start, events.created), clock.now - HOUR)
    postponed_at = since + (rng.random(n_ev) * (clock.now - since)).astype(np.int64)
    rules = [  # first matching rule wins: (condition, event status, schedule status, status changed at)
        (events.cancelled, "CANCELLED", "CANCELLED", events.cancel_time),
        (events.ends < clock.now, "COMPLETED", "COMPLETED", events.ends),
        (events.starts < clock.now, "IN_PROGRESS", "IN_PROGRESS", events.starts),
        (events.postponed, "POSTPONED", "POSTPONED", postponed_at),
        (events.sale_start > clock.now, "PUBLISHED", "SCHEDULED", events.created),
        (sold_out & (last_sale >= 0), "SOLD_OUT", "CONFIRMED", last_sale),
        (np.ones(n_ev, bool), "ON_SALE", "CONFIRMED", events.sale_start),
    ]
    events.status = np.select([r[0] for r in rules], [_EV[r[1]] for r in rules])
    events.schedule_status = np.select([r[0] for r in rules], [_SCH[r[2]] for r in rules])
    events.status_changed = np.select([r[0] for r in rules], [r[3] for r in rules])
    n_v = len(venues.ids)
    first_event = np.full(n_v, np.iinfo(np.int64).max)
    order = np.lexsort((events.created, events.venue))
    v_first, row = np.unique(events.venue[order], return_index=True)
    first_event[v_first] = events.created[order][row]
    venues.created = np.where(
        first_event < np.iinfo(np.int64).max,
        first_event - rng.integers(1, 31, n_v) * DAY,
        clock.launch - rng.integers(1, 91, n_v) * DAY,
    )
    venues.updated = venues.created + (rng.random(n_v) * (clock.now - venues.created)).astype(np.int64)
