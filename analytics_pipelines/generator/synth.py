"""Deterministic synthetic TicketToken platform data, fully vectorised with numpy and polars.

`generate_frames(scale, seed, as_of)` yields typed polars frames table by table in `contract.TABLE_ORDER`
(big fact tables in chunks of at most `CHUNK_ROWS` rows), with exactly the contract's columns in contract
order and the platform's own units and vocabularies (see sql/source/ and the schema reference). The same
seed, scale and as_of always give byte-identical frames: every random draw comes from a named numpy stream
derived from the seed, ids are formatted from seeded random 128-bit values (never uuid4()).

How the world is built (the only Python loops run over tenants, at most a handful, and output chunks):
1. Tenants; venues with heavy-tailed (lognormal) capacities, a city and a venue type; events with start dates
   spread from `as_of - history_days` to `as_of + future_days` following weekly and yearly seasonality and a
   growth trend, a category that depends on the venue type, and an event_schedules row each.
2. Ticket types: 2-4 tiers per event (General Admission always; VIP, Early Bird, Reserved Seating, Balcony,
   Student), quantities splitting the event's capacity, prices in cents and a chain of price changes
   (ticket_price_history; reactive ones: increases for high-demand tiers, discounts for slow ones; exogenous
   ones of random direction and size; all at times independent of demand). Each category has a true price
   elasticity (planted_pricing; truth["pricing"]) and events a demand seasonality.
3. Demand: for every ticket type a full-window demand in tickets, split into baskets (order items) of 1-6
   tickets, each timed on a sales curve (an early rush when sales open, a steady middle, a last-minute
   spike; weekday and hour-of-day purchase patterns), thinned by the price response (p(t) / p_min)^elasticity
   with the volume compensated, cut at the type's quantity in time order (a sell-out
   stops sales early) and cut at `now` (a future event has only sold what it sold so far). Venue capacities
   are calibrated so that the sold tickets hit the scale's target.
4. Orders: ~6% extra failed checkouts (CANCELLED/EXPIRED, no tickets), a few PENDING carts in the last
   minutes; some baskets merge with a basket of another tier of the same event into one two-item order.
   Money in integer cents: unit price = the tier's price in effect when the order is confirmed.
5. Users: per tenant, a BG/NBD buy-till-you-die process (gamma-distributed purchase rates, beta-distributed
   dropout after each repeat purchase), calibrated to exactly the tenant's number of orders, then
   rank-matched in time to the orders: each user's purchase count and ordering follow the process.
6. Refunds (~1.8% of paid orders plus every paid order of a cancelled event), tickets (one per unit of a
   paid order's items), resale (listings, completed and failed marketplace transfers, platform fees), then
   check-in scans: a planted logistic no-show model per ticket (lead time, price paid relative to the event's
   tickets, the holder's latent reliability, category, resale; truth["no_show"]; ~9% overall).

Conventions downstream code can rely on:
- `now` is midnight UTC at the start of `as_of`: everything that happened is strictly before it (deadlines
  such as orders.expires_at / listings.expires_at and future schedules may lie after it). Timestamps are whole
  seconds. Facts never precede `as_of - history_days` (the platform's launch); dimension rows (categories,
  venues, events, users) may have been created up to 120 days before it.
- Ticket status priority: 'refunded' (order refunded) > 'transferred' (resold; the scan, if any, still sets
  checked_in_at) > 'used' (valid scan) > 'active' (upcoming, no-show, or an invalid/duplicate scan).
  ticket_types.sold_quantity counts active + used + transferred tickets; refunded seats go back to
  available_quantity and are not resold.
- Orders: unit_price_cents = the tier's price at confirmed_at (created_at if never confirmed);
  total = subtotal + platform fee + processing fee + tax - discount. A PARTIAL refund returns the total
  minus the platform and processing fees; a FULL refund the total. tickets.created_at = purchased_at =
  the order's confirmed_at; tickets.price_cents holds cents in a decimal column (the platform's wart).
- Resale: marketplace_transfers.payment_currency is USDC/SOL for crypto, NULL for fiat; platform_fees only for
  completed transfers. A deleted user's email is scrubbed to deleted_<id>@removed.com after 30 days.

Modules: reference (scales, vocabularies), primitives (random streams, ids, helpers), world (the entities'
state), dimensions (steps 1-2), orders (steps 3-5 and refunds), tickets (tickets, scans, resale, statuses),
frames (rendering to typed frames); this module builds the world and is the public entry point.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import numpy as np
import polars as pl

from analytics_pipelines.generator import planted_anomalies, planted_insights
from analytics_pipelines.generator.behavior import behavior_chunks, behavior_documents
from analytics_pipelines.generator.dimensions import (
    _calibrate_capacity,
    _cancel_and_postpone,
    _make_events,
    _make_types,
    _make_venues,
)
from analytics_pipelines.generator.frames import (
    _category_frames,
    _event_frames,
    _price_history_frames,
    _scan_frames,
    _schedule_frames,
    _ticket_frames,
    _type_frames,
    _user_frames,
    _venue_frames,
)
from analytics_pipelines.generator.orders import _make_baskets, _make_orders, _make_users, _refund
from analytics_pipelines.generator.planted_fraud import plant_fraud, plant_fraud_resale
from analytics_pipelines.generator.planted_pricing import plant_pricing
from analytics_pipelines.generator.planted_sales import plant_sales, sales_truth
from analytics_pipelines.generator.primitives import _Ids, _new_ids, _Streams
from analytics_pipelines.generator.reference import (
    _CATEGORIES,
    DAY,
    DEFAULT_AS_OF,
    DEFAULT_TENANT,
    SCALES,
    Scale,
)
from analytics_pipelines.generator.sales_frames import (
    _fee_frames,
    _item_frames,
    _listing_frames,
    _order_frames,
    _refund_frames,
    _transfer_frames,
)
from analytics_pipelines.generator.tickets import _check_in, _finish, _make_resale, _make_tickets
from analytics_pipelines.generator.world import _Clock, _World
from analytics_pipelines.source import contract

#: the frame renderer of each table, in contract order
_BUILDERS = {
    "venues": _venue_frames,
    "event_categories": _category_frames,
    "users": _user_frames,
    "events": _event_frames,
    "event_schedules": _schedule_frames,
    "ticket_types": _type_frames,
    "tickets": _ticket_frames,
    "ticket_scans": _scan_frames,
    "ticket_price_history": _price_history_frames,
    "orders": _order_frames,
    "order_items": _item_frames,
    "order_refunds": _refund_frames,
    "marketplace_listings": _listing_frames,
    "marketplace_transfers": _transfer_frames,
    "platform_fees": _fee_frames,
}


def _build(
    scale: Scale, seed: int, as_of: date, with_behavior: bool = True, plant_insights: bool = False
) -> _World:
    rs = _Streams(seed)
    now = int(datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC).timestamp())
    clock = _Clock(now=now, launch=now - scale.history_days * DAY, horizon=now + scale.future_days * DAY)
    rng = rs("tenants")
    tenant_raw = _new_ids(rng, scale.tenants)
    tenant_raw[0] = np.frombuffer(bytes.fromhex(DEFAULT_TENANT.replace("-", "")), np.uint8)
    tenant_fee = rng.uniform(0.05, 0.10, scale.tenants)
    venues = _make_venues(rs, scale, clock)
    events = _make_events(rs, scale, clock, venues)
    types = _make_types(rs, clock, events)
    truth = {"pricing": plant_pricing(rs, clock, events, types)}
    _calibrate_capacity(scale, clock, venues, events, types)
    _cancel_and_postpone(rs, clock, events)
    baskets, sales_plan = plant_sales(
        rs, clock, events, types, _make_baskets(rs, clock, venues, events, types)
    )
    baskets = planted_anomalies.plant_sales(rs, clock, venues, events, types, baskets, truth)
    if plant_insights:  # opt-in (issue 21): its own random stream, so nothing else changes when off
        baskets = planted_insights.plant(rs, clock, venues, events, types, baskets, truth)
    orders, items = _make_orders(rs, clock, venues, events, types, baskets)
    refunds = _refund(rs, clock, events, orders)
    refunds = planted_anomalies.plant_refunds(rs, clock, venues, events, orders, refunds, truth)
    users = _make_users(rs, scale, clock, venues, orders)
    if plant_insights:  # the customer wave: a venue's recent orders go to its lapsed one-time customers
        planted_insights.plant_customers(clock, venues, events, orders, users, truth)
    fraud = plant_fraud(rs, clock, venues, events, types, orders, items, refunds, users)
    tickets = _make_tickets(rs, clock, events, types, orders, items)
    resale = _make_resale(rs, clock, venues, events, types, users, orders, tickets, tenant_fee)
    plant_fraud_resale(rs, clock, venues, events, users, orders, tickets, resale, tenant_fee, fraud)
    truth["fraud"] = fraud.truth
    truth["no_show"] = _check_in(rs, clock, events, types, len(users.ids), tickets)
    _finish(rs, clock, venues, events, types, tickets)
    planted_anomalies.finish_truth(truth, _Ids(tenant_raw))
    world = _World(
        clock=clock,
        tenant_ids=_Ids(tenant_raw),
        category_ids=_Ids(_new_ids(rs("categories"), len(_CATEGORIES))),
        operator_ids=_Ids(_new_ids(rs("operators"), 8 * scale.tenants)),
        venues=venues,
        events=events,
        types=types,
        users=users,
        orders=orders,
        items=items,
        refunds=refunds,
        tickets=tickets,
        resale=resale,
        truth=truth,
    )
    world.truth.setdefault("monitoring", {})["sales"] = sales_truth(sales_plan, world)
    if with_behavior:  # the documents are large (Python objects): built only when asked for; their random
        # streams are their own, so the relational tables are the same either way
        world.behavior = behavior_documents(rs, world)
    return world


# -- public API -------------------------------------------------------------------------------------------------
def generate_frames(
    scale: str = "small",
    seed: int = 42,
    as_of: date = DEFAULT_AS_OF,
    truth: dict | None = None,
    behavior: dict | None = None,
    behavior_stream: list | None = None,
    plant_insights: bool = False,
) -> Iterator[tuple[str, pl.DataFrame]]:
    """Yield (table, typed frame) chunks in contract.TABLE_ORDER; big fact tables come in several chunks.

    Deterministic: the same scale, seed and as_of give byte-identical frames. `truth`, when given, is
    filled with the planted truth (generator.truth) once the world is built. `behavior`: filled with the
    behavioral documents (all in memory); `behavior_stream`: gets the iterator of their slices instead
    (generator.behavior.behavior_chunks: rendered when iterated, after the tables; what `generate` writes).
    `plant_insights`: also plant the venue-insight truth (generator.planted_insights; off by default).
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}: choose one of {', '.join(SCALES)}")
    world = _build(
        SCALES[scale], seed, as_of, with_behavior=behavior is not None, plant_insights=plant_insights
    )
    if behavior_stream is not None:
        behavior_stream.append(behavior_chunks(_Streams(seed), world))
    if truth is not None:
        truth.update(world.truth)
    if behavior is not None:  # the MongoDB collections (generator.behavior_docs writes them)
        behavior.update(world.behavior)
    for table in contract.TABLE_ORDER:
        for frame in _BUILDERS[table](world):
            yield table, frame


def generate_tables(
    scale: str = "tiny", seed: int = 42, as_of: date = DEFAULT_AS_OF
) -> dict[str, pl.DataFrame]:
    """Every table as one frame (chunks concatenated): for tests and small scales."""
    parts: dict[str, list[pl.DataFrame]] = {t: [] for t in contract.TABLE_ORDER}
    for table, frame in generate_frames(scale, seed, as_of):
        parts[table].append(frame)
    return {t: pl.concat(frames) for t, frames in parts.items()}
