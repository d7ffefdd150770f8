"""Build the dimensions: venues, events and their ticket types, calibrated capacities, cancellations."""

from __future__ import annotations

import numpy as np

from analytics_pipelines.generator.planted_pricing import EXOGENOUS_SHARE, priced_sold_fraction
from analytics_pipelines.generator.primitives import (
    _choice,
    _curve_cdf,
    _day_of_year,
    _dow,
    _group_starts,
    _Ids,
    _new_ids,
    _row_choice,
    _Streams,
    _within_group_cumsum,
)
from analytics_pipelines.generator.reference import (
    _AFFINITY,
    _CAT_DEMAND,
    _CAT_DURATION,
    _CAT_HOUR,
    _CAT_HOUR_SD,
    _CAT_LEAD,
    _CAT_PRICE,
    _CITY_OFFSET,
    _CITY_WEIGHT,
    _CURVE,
    _EARLY_BIRD,
    _EARLY_BIRD_CURVE,
    _EVENT_DOW,
    _NAME_ADJ,
    _NAME_NOUN,
    _TIER_DEMAND,
    _TIER_PICK,
    _TIER_PRICE,
    _TIER_SHARE,
    _VENUE_PLACE,
    DAY,
    HOUR,
    MINUTE,
    Scale,
)
from analytics_pipelines.generator.world import _Clock, _Events, _Types, _Venues


# -- building -----------------------------------------------------------------------------------------------
def _make_venues(rs: _Streams, scale: Scale, clock: _Clock) -> _Venues:
    rng = rs("venues")
    n = scale.venues
    tenant_w = 1.0 / np.arange(1, scale.tenants + 1) ** 0.8
    tenant = np.concatenate(
        [np.arange(min(n, scale.tenants)), _choice(rng, tenant_w, max(n - scale.tenants, 0))]
    )
    z = rng.standard_normal(n)
    # venue type follows size: stadiums and arenas on the heavy tail, clubs and bars at the small end
    band = np.digitize(z, [-1.0, -0.3, 0.5, 1.0, 1.6])
    pairs = np.array([[6, 7], [4, 6], [4, 5], [2, 3], [1, 2], [0, 1]])
    vtype = pairs[band, (rng.random(n) < 0.5).astype(int)]
    status = _choice(rng, np.array([0.9, 0.04, 0.03, 0.03]), n)
    return _Venues(
        ids=_Ids(_new_ids(rng, n)),
        tenant=tenant,
        city=_choice(rng, np.array(_CITY_WEIGHT, float), n),
        vtype=vtype,
        place=rng.integers(0, len(_VENUE_PLACE), n),
        capacity_raw=np.exp(1.1 * z),
        capacity=np.zeros(n, np.int64),
        status=status,
        created=np.zeros(n, np.int64),
        updated=np.zeros(n, np.int64),
        service_fee=rng.choice([0.06, 0.08, 0.10, 0.12], n),
        resale_fee=rng.uniform(0.02, 0.05, n),
    )


def _make_events(rs: _Streams, scale: Scale, clock: _Clock, venues: _Venues) -> _Events:
    rng = rs("events")
    n = scale.events
    venue_w = rng.gamma(2.0, 1.0, len(venues.ids))
    venue = np.concatenate([np.arange(min(n, venue_w.size)), _choice(rng, venue_w, max(n - venue_w.size, 0))])
    category = _row_choice(rng, _AFFINITY[venues.vtype[venue]])
    # start dates: weekday pattern, a summer peak and a December bump, a growing platform
    first_day, last_day = clock.launch // DAY, clock.horizon // DAY
    days = np.arange(first_day, last_day)
    doy = _day_of_year(days)
    weight = (
        _EVENT_DOW[_dow(days * DAY)]
        * (1 + 0.3 * np.cos(2 * np.pi * (doy - 196) / 365.25))
        * (1 + 0.25 * np.exp(-(((doy - 350) / 12.0) ** 2)))
        * (1 + 0.6 * (days - first_day) / days.size)
    )
    day = days[_choice(rng, weight, n)]
    local_hour = np.clip(np.round(rng.normal(_CAT_HOUR[category], _CAT_HOUR_SD[category]) * 2) / 2, 8, 23)
    offset = np.array(_CITY_OFFSET)[venues.city[venue]] * HOUR
    starts = day * DAY + (local_hour * HOUR).astype(np.int64) - offset
    duration = (_CAT_DURATION[category] * rng.uniform(0.8, 1.3, n) * HOUR).astype(np.int64)
    multi_day = np.isin(category, [5, 7]) & (rng.random(n) < 0.3)  # conferences and festivals
    duration = np.where(multi_day, duration + rng.integers(1, 3, n) * DAY, duration)
    lead = (_CAT_LEAD[category] * rng.lognormal(0, 0.4, n) * DAY).astype(np.int64)
    sale_start = np.maximum(starts - lead, clock.launch)  # nothing was sold before the platform launched
    created = np.minimum(sale_start - rng.integers(1, 21, n) * DAY, clock.now - rng.integers(1, 49, n) * HOUR)
    created = np.maximum(created, clock.launch - 60 * DAY)
    price = np.maximum(np.round(_CAT_PRICE[category] * rng.lognormal(0, 0.35, n) * 2) / 2, 5) * 100
    return _Events(
        ids=_Ids(_new_ids(rng, n)),
        schedule_ids=_Ids(_new_ids(rng, n)),
        venue=venue,
        tenant=venues.tenant[venue],
        category=category,
        name=np.stack(
            [rng.integers(0, len(_NAME_ADJ), n), rng.integers(0, len(_NAME_NOUN), n), rng.integers(0, 4, n)],
            axis=1,
        ),
        starts=starts,
        ends=starts + duration,
        doors=starts - rng.choice([30, 60, 90], n) * MINUTE,
        sale_start=sale_start,
        sale_open=starts - lead,
        created=created,
        capacity_frac=rng.uniform(0.45, 1.0, n),
        capacity=np.zeros(n, np.int64),
        fill=rng.lognormal(np.log(0.72), 0.45, n) * _CAT_DEMAND[category],
        price=price.astype(np.int64),
        event_type=_choice(rng, np.array([0.85, 0.10, 0.05]), n),
        visibility=_choice(rng, np.array([0.9, 0.03, 0.07]), n),
        override=rng.random(n) < 0.1,
        cancelled=np.zeros(n, bool),
        cancel_time=np.full(n, -1, np.int64),
        postponed=np.zeros(n, bool),
        noshow=rng.uniform(0.04, 0.11, n),
        status=np.zeros(n, np.int64),
        schedule_status=np.zeros(n, np.int64),
        status_changed=np.zeros(n, np.int64),
    )


def _make_types(rs: _Streams, clock: _Clock, events: _Events) -> _Types:
    rng = rs("ticket_types")
    n_ev = len(events.ids)
    n_types = 2 + _choice(rng, np.array([0.4, 0.4, 0.2]), n_ev)
    # weighted sampling without replacement of the extra tiers (Efraimidis-Spirakis keys)
    pick = np.array(_TIER_PICK[1:])
    keys = rng.random((n_ev, pick.size)) ** (1.0 / pick)
    extra = np.argsort(-keys, axis=1) + 1
    take = np.arange(pick.size)[None, :] < (n_types - 1)[:, None]
    tier_matrix = np.concatenate([np.zeros((n_ev, 1), np.int64), np.where(take, extra, -1)], axis=1)
    tier_matrix.sort(axis=1)  # GA first, then tiers in a stable order
    event = np.repeat(np.arange(n_ev), tier_matrix.shape[1])
    tier = tier_matrix.reshape(-1)
    event, tier = event[tier >= 0], tier[tier >= 0]
    n = tier.size
    share = np.array(_TIER_SHARE)[tier]
    share = share / np.bincount(event, weights=share, minlength=n_ev)[event]
    demand = np.minimum(events.fill[event] * np.array(_TIER_DEMAND)[tier] * rng.lognormal(0, 0.15, n), 1.8)
    sale_start = events.sale_start[event]
    sale_end = np.where(
        tier == _EARLY_BIRD, sale_start + (events.starts[event] - sale_start) * 3 // 10, events.starts[event]
    )
    # events whose sales opened before launch lose the demand of the curve's pre-launch part (no launch spike)
    raw_start = events.sale_open[event]
    raw_end = np.where(
        tier == _EARLY_BIRD, raw_start + (events.starts[event] - raw_start) * 3 // 10, sale_end
    )
    before_launch = np.clip((clock.launch - raw_start) / np.maximum(raw_end - raw_start, 1), 0, 1)
    demand *= 1 - np.where(
        tier == _EARLY_BIRD, _curve_cdf(_EARLY_BIRD_CURVE, before_launch), _curve_cdf(_CURVE, before_launch)
    )
    # price chains: a few changes inside the sales window so far, at times independent of demand; reactive
    # changes (high demand goes up, slow tiers get discounts) and exogenous ones (random direction and size)
    n_changes = _choice(rng, np.array([0.3, 0.3, 0.25, 0.15]), n)
    window_end = np.minimum(sale_end, clock.now - HOUR)
    n_changes[window_end - sale_start < 2 * DAY] = 0
    change_type = np.repeat(np.arange(n), n_changes)
    lo, hi = sale_start[change_type] + HOUR, window_end[change_type]
    change_time = lo + (rng.random(change_type.size) * (hi - lo)).astype(np.int64)
    order = np.lexsort((change_time, change_type))
    change_type, change_time = change_type[order], change_time[order]
    up = demand[change_type] > 0.95
    factor = np.where(
        up,
        rng.choice([1.1, 1.15, 1.2, 1.25], change_type.size),
        rng.choice([0.85, 0.9, 1.1], change_type.size),
    )
    exo_rng = rs("pricing.exogenous_changes")
    exogenous = exo_rng.random(change_type.size) < EXOGENOUS_SHARE
    exo_factor = exo_rng.choice([0.7, 0.8, 0.9, 1.15, 1.3, 1.45], change_type.size)
    factor = np.where(exogenous, exo_factor, factor)
    p0 = np.maximum(np.round(events.price[event] * np.array(_TIER_PRICE)[tier] / 50) * 50, 500).astype(
        np.int64
    )
    chain_start = _group_starts(n_changes + 1)
    chain = np.zeros(n + change_type.size, np.int64)
    chain[chain_start] = p0
    # within a type, p_k = round50(p_{k-1} * f_k): a cumulative product of factors, then rounding per step
    position = np.arange(change_type.size) - _group_starts(n_changes)[change_type] + 1
    log_cum = _within_group_cumsum(np.log(factor), change_type, n)
    raw = p0[change_type] * np.exp(log_cum)
    stepped = np.maximum(np.round(raw / 50) * 50, 500).astype(np.int64)
    chain[chain_start[change_type] + position] = stepped
    # a change must change the price: nudge a step equal to its predecessor by 50 cents
    same = chain[chain_start[change_type] + position] == chain[chain_start[change_type] + position - 1]
    chain[(chain_start[change_type] + position)[same]] += 50
    return _Types(
        ids=_Ids(_new_ids(rng, n)),
        event=event,
        tier=tier,
        share=share,
        demand=demand,
        quantity=np.zeros(n, np.int64),
        sale_start=sale_start,
        sale_end=sale_end,
        chain=chain,
        chain_start=chain_start,
        n_changes=n_changes,
        change_time=change_time,
        change_type=change_type,
        change_ids=_Ids(_new_ids(rng, change_type.size)),
        change_reason=np.where(
            exogenous, np.where(factor > 1, 3, 1), np.where(up, 0, rng.choice([1, 2, 3], change_type.size))
        ),
        change_by=rng.integers(0, 8, change_type.size),
        sold=np.zeros(n, np.int64),
    )


def _calibrate_capacity(scale: Scale, clock: _Clock, venues: _Venues, events: _Events, types: _Types) -> None:
    """Scale venue capacities so that the tickets sold by `now` hit the scale's target."""
    window = np.maximum(types.sale_end - types.sale_start, 1)
    elapsed = np.clip((clock.now - types.sale_start) / window, 0, 1)
    sold_fraction = priced_sold_fraction(types, elapsed)
    per_unit = types.share * np.minimum(1.0, types.demand * sold_fraction)
    unit_event = np.bincount(types.event, weights=per_unit, minlength=len(events.ids))
    expected = (venues.capacity_raw[events.venue] * events.capacity_frac * unit_event).sum()
    factor = scale.tickets / max(expected, 1e-9)
    venues.capacity = np.maximum(np.round(venues.capacity_raw * factor), 20).astype(np.int64)
    n_types = np.bincount(types.event, minlength=len(events.ids))
    events.capacity = np.maximum(
        (venues.capacity[events.venue] * events.capacity_frac).astype(np.int64), 2 * n_types
    )
    quantity = np.maximum(np.floor(types.share * events.capacity[types.event]), 1).astype(np.int64)
    ga = types.tier == 0  # General Admission takes the remainder: tiers add up to the event's capacity
    rest = events.capacity - np.bincount(
        types.event, weights=np.where(ga, 0, quantity), minlength=len(events.ids)
    ).astype(np.int64)
    quantity[ga] = rest[types.event[ga]]
    types.quantity = quantity


def _cancel_and_postpone(rs: _Streams, clock: _Clock, events: _Events) -> None:
    """~2% of events are cancelled (after some sales), ~1% of future events postponed."""
    rng = rs("cancellations")
    n = len(events.ids)
    last_sale = np.minimum(events.starts, clock.now - 3 * DAY)
    eligible = np.flatnonzero(events.sale_start < last_sale - DAY)
    k = min(max(1, round(0.02 * n)), eligible.size)
    chosen = rng.permutation(eligible)[:k]
    events.cancelled[chosen] = True
    span = last_sale[chosen] - events.sale_start[chosen]
    events.cancel_time[chosen] = events.sale_start[chosen] + (rng.uniform(0.3, 0.9, k) * span).astype(
        np.int64
    )
    future = np.flatnonzero((events.starts > clock.now + 7 * DAY) & ~events.cancelled)
    events.postponed[rng.permutation(future)[: round(0.01 * n)]] = True
