"""The planted pricing truth (issue 16): demand responds to price with a true elasticity per category.

The sales rate of a ticket type at time t (u = its position in the type's sales window) is

    rate(t) ∝ curve(u) · weekday(t) · hour(t) · season(event) · (p(t) / p_min)^e(category)

where p(t) is the price in effect (ticket_price_history applies), p_min the type's lowest price and e the
category's elasticity, drawn once from the named stream "pricing.elasticity" in [-2.5, -0.4]. `_make_baskets`
draws baskets on the curve for `boost ×` the type's demand and keeps each with probability (p(t)/p_min)^e;
`boost` is the inverse of the expected acceptance over the whole window, so the expected full-window volume
(and the scale's ticket target, see `_calibrate_capacity`) is what it was without the price response.

Price changes (dimensions._make_types) are partly reactive (high-demand tiers go up, slow tiers get
discounts) and partly exogenous (random direction and size, independent of demand); their times are uniform
in the window, so within a ticket type the price is independent of the demand shocks: a log-log model with
ticket-type fixed effects and a days-to-event control identifies e.
"""

from __future__ import annotations

import numpy as np

from analytics_pipelines.generator.primitives import _curve_cdf, _day_of_year, _group_starts, _Streams
from analytics_pipelines.generator.reference import (
    _CAT_SLUG,
    _CURVE,
    _EARLY_BIRD,
    _EARLY_BIRD_CURVE,
    _EVENT_DOW,
    _PURCHASE_DOW,
    _PURCHASE_HOUR,
    _TIER_DEMAND,
    _TIER_NAME,
    DAY,
    MINUTE,
)
from analytics_pipelines.generator.world import _Clock, _Events, _Types

ELASTICITY_RANGE = (-2.5, -0.4)
#: demand seasonality of an event (on top of the seasonal count of events): 1 + A cos(2π (doy - peak) / 365.25)
SEASON_AMPLITUDE = 0.15
SEASON_PEAK_DOY = 196
#: share of price changes that are exogenous (random direction and size, independent of demand)
EXOGENOUS_SHARE = 0.45
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def category_names() -> list[str]:
    """Category names as in event_categories.name."""
    return [s.title() for s in _CAT_SLUG.tolist()]


def season_factor(starts: np.ndarray) -> np.ndarray:
    doy = _day_of_year(starts // DAY)
    return 1 + SEASON_AMPLITUDE * np.cos(2 * np.pi * (doy - SEASON_PEAK_DOY) / 365.25)


def _segments(types: _Types) -> tuple[np.ndarray, ...]:
    """Price segments of every type: (type, price, start u, end u) with u in [0, 1] of the sales window."""
    n = len(types.ids)
    seg_type = np.repeat(np.arange(n), types.n_changes + 1)
    pos = np.arange(seg_type.size) - _group_starts(types.n_changes + 1)[seg_type]
    price = types.chain[types.chain_start[seg_type] + pos]
    lo, hi = types.sale_start[seg_type], types.sale_end[seg_type] - MINUTE
    # the k-th change (k >= 1) starts segment k; change arrays are sorted by (type, time)
    change_time = np.r_[types.change_time, 0]  # padded: the lookups of a type without changes are masked
    change_row = _group_starts(types.n_changes)[seg_type] + pos - 1
    start = np.where(pos > 0, change_time[np.maximum(change_row, 0)], lo)
    end = np.where(pos == types.n_changes[seg_type], hi, change_time[change_row + 1])
    span = np.maximum(hi - lo, 1)
    u0 = np.clip((start - lo) / span, 0, 1)
    u1 = np.clip((end - lo) / span, 0, 1)
    return seg_type, price, u0, u1


def _cdf(types: _Types, seg_type: np.ndarray, u: np.ndarray) -> np.ndarray:
    early = types.tier[seg_type] == _EARLY_BIRD
    return np.where(early, _curve_cdf(_EARLY_BIRD_CURVE, u), _curve_cdf(_CURVE, u))


def plant_pricing(rs: _Streams, clock: _Clock, events: _Events, types: _Types) -> dict:
    """Draw the elasticities, apply the demand seasonality, set each type's acceptance scale; the truth."""
    rng = rs("pricing.elasticity")
    by_category = rng.uniform(*ELASTICITY_RANGE, _CAT_SLUG.size)
    n = len(types.ids)
    category = events.category[types.event]
    types.elasticity = by_category[category]
    types.demand = types.demand * season_factor(events.starts)[types.event]
    seg_type, price, u0, u1 = _segments(types)
    types.p_min = np.minimum.reduceat(price, _group_starts(types.n_changes + 1)) if n else np.zeros(0)
    accept = (price / types.p_min[seg_type]) ** types.elasticity[seg_type]
    mass = _cdf(types, seg_type, u1) - _cdf(types, seg_type, u0)
    expected = np.bincount(seg_type, weights=accept * mass, minlength=n)
    types.boost = np.where(expected > 1e-9, 1 / np.maximum(expected, 1e-9), 1.0)
    changes = np.bincount(category[types.change_type], minlength=_CAT_SLUG.size)
    names = category_names()
    return {
        "elasticity_by_category": dict(zip(names, by_category.round(6).tolist(), strict=True)),
        "elasticity_range": list(ELASTICITY_RANGE),
        "demand_model": (
            "rate(t) ∝ curve(u) * purchase_weekday(t) * purchase_hour(t) * season(event start)"
            " * (price(t) / min price of the type)^elasticity(category); u = (t - sales start) /"
            " (sales end - sales start) of the ticket type; full-window demand = quantity * type demand"
        ),
        "sales_curve": {
            "kind": "mixture of beta densities over u in [0, 1] (weight, a, b)",
            "general": [list(c) for c in _CURVE],
            "early_bird": [list(c) for c in _EARLY_BIRD_CURVE],
        },
        "purchase_weekday_weights": dict(zip(_WEEKDAYS, _PURCHASE_DOW.tolist(), strict=True)),
        "purchase_hour_weights": _PURCHASE_HOUR.tolist(),
        "seasonality": {
            "demand": {
                "formula": "1 + amplitude * cos(2 pi (day_of_year(event start) - peak_day) / 365.25)",
                "amplitude": SEASON_AMPLITUDE,
                "peak_day_of_year": SEASON_PEAK_DOY,
            },
            "event_start_weekday_weights": dict(zip(_WEEKDAYS, _EVENT_DOW.tolist(), strict=True)),
            "event_start_yearly": "1 + 0.3 cos(2 pi (doy - 196) / 365.25), x (1 + 0.25 exp(-((doy - 350) / 12)^2))",
        },
        "tier_demand": dict(zip(_TIER_NAME, _TIER_DEMAND, strict=True)),
        "price_changes": {
            "total": int(types.change_type.size),
            "by_category": dict(zip(names, changes.tolist(), strict=True)),
            "exogenous_share": EXOGENOUS_SHARE,
            "timing": "uniform in [sales start + 1 h, min(sales end, now - 1 h)], independent of demand",
        },
    }


def priced_sold_fraction(types: _Types, elapsed: np.ndarray) -> np.ndarray:
    """Expected share of a type's full-window demand sold by `elapsed` (u per type), price response included."""
    if types.boost is None:
        n = len(types.ids)
        return _cdf(types, np.arange(n), elapsed)
    seg_type, price, u0, u1 = _segments(types)
    accept = (price / types.p_min[seg_type]) ** types.elasticity[seg_type]
    cut = elapsed[seg_type]
    mass = _cdf(types, seg_type, np.minimum(u1, cut)) - _cdf(types, seg_type, np.minimum(u0, cut))
    return types.boost * np.bincount(seg_type, weights=accept * mass, minlength=len(types.ids))


def price_acceptance(types: _Types, btype: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Probability that a basket of type `btype` drawn at time t is bought: (p(t) / p_min)^e (1 if unplanted)."""
    if types.boost is None:
        return np.ones(btype.size)
    return (types.price_at(btype, t) / types.p_min[btype]) ** types.elasticity[btype]
