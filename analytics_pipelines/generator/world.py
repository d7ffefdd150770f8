"""The synthetic world's state: one dataclass of numpy columns per entity (see synth)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from analytics_pipelines.generator.primitives import _group_starts, _Ids


# -- the world ---------------------------------------------------------------------------------------------
@dataclass
class _Clock:
    now: int
    launch: int  # the platform's first day of history: nothing is sold before it
    horizon: int  # last possible event start


@dataclass
class _Venues:
    ids: _Ids
    tenant: np.ndarray
    city: np.ndarray
    vtype: np.ndarray
    place: np.ndarray
    capacity_raw: np.ndarray
    capacity: np.ndarray
    status: np.ndarray
    created: np.ndarray
    updated: np.ndarray
    service_fee: np.ndarray  # primary orders: platform fee as a fraction of the subtotal
    resale_fee: np.ndarray  # resale: venue fee as a fraction of the sale price


@dataclass
class _Events:
    ids: _Ids
    schedule_ids: _Ids
    venue: np.ndarray
    tenant: np.ndarray
    category: np.ndarray
    name: np.ndarray  # (n, 3): adjective, noun, suffix codes
    starts: np.ndarray
    ends: np.ndarray
    doors: np.ndarray
    sale_start: np.ndarray
    sale_open: np.ndarray  # when sales would have opened had the platform existed (before launch: clipped)
    created: np.ndarray
    capacity_frac: np.ndarray
    capacity: np.ndarray
    fill: np.ndarray
    price: np.ndarray  # base price in cents
    event_type: np.ndarray
    visibility: np.ndarray
    override: np.ndarray  # capacity_override set?
    cancelled: np.ndarray
    cancel_time: np.ndarray
    postponed: np.ndarray
    noshow: np.ndarray
    status: np.ndarray
    schedule_status: np.ndarray
    status_changed: np.ndarray


@dataclass
class _Types:
    ids: _Ids
    event: np.ndarray
    tier: np.ndarray
    share: np.ndarray
    demand: np.ndarray  # full-window demand as a multiple of quantity
    quantity: np.ndarray
    sale_start: np.ndarray
    sale_end: np.ndarray
    chain: np.ndarray  # prices in cents: each type's initial price then one per change
    chain_start: np.ndarray
    n_changes: np.ndarray
    change_time: np.ndarray  # sorted by (type, time)
    change_type: np.ndarray
    change_ids: _Ids
    change_reason: np.ndarray
    change_by: np.ndarray
    sold: np.ndarray  # non-refunded tickets
    # the price response (generator.planted_pricing): per type elasticity, lowest price, volume compensation
    elasticity: np.ndarray | None = None
    p_min: np.ndarray | None = None
    boost: np.ndarray | None = None

    @property
    def price(self) -> np.ndarray:
        return self.chain[self.chain_start + self.n_changes]

    def price_at(self, tier_type: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Price in cents of ticket type `tier_type` in effect at time t (price history applies)."""
        keys = self.change_type.astype(np.int64) * 2**32 + self.change_time
        first_change = _group_starts(self.n_changes)
        count = (
            np.searchsorted(keys, tier_type.astype(np.int64) * 2**32 + t, side="right")
            - first_change[tier_type]
        )
        return self.chain[self.chain_start[tier_type] + count]


@dataclass
class _Orders:
    ids: _Ids
    event: np.ndarray
    tenant: np.ndarray
    cls: np.ndarray
    created: np.ndarray
    confirmed: np.ndarray
    cancelled_at: np.ndarray
    refunded_at: np.ndarray
    created_null: np.ndarray
    status: np.ndarray
    quantity: np.ndarray
    subtotal: np.ndarray
    platform_fee: np.ndarray
    processing_fee: np.ndarray
    tax: np.ndarray
    discount: np.ndarray
    total: np.ndarray
    user: np.ndarray
    channel: np.ndarray
    payment: np.ndarray


@dataclass
class _Items:
    ids: _Ids
    order: np.ndarray
    type: np.ndarray
    quantity: np.ndarray
    unit: np.ndarray
    created: np.ndarray


@dataclass
class _Refunds:
    ids: _Ids
    order: np.ndarray
    amount: np.ndarray
    reason: np.ndarray
    status: np.ndarray
    refund_type: np.ndarray
    created: np.ndarray
    updated: np.ndarray


@dataclass
class _Users:
    ids: _Ids
    tenant: np.ndarray
    first: np.ndarray
    last: np.ndarray
    domain: np.ndarray
    phone: np.ndarray
    city: np.ndarray
    status: np.ndarray
    consent: np.ndarray
    created: np.ndarray
    updated: np.ndarray
    deleted: np.ndarray
    tenant_offset: np.ndarray  # users are stored tenant by tenant: [offset, offset + count)
    tenant_count: np.ndarray


@dataclass
class _Tickets:
    ids: _Ids
    order: np.ndarray
    type: np.ndarray
    event: np.ndarray
    purchased: np.ndarray
    holder: np.ndarray
    price: np.ndarray
    section: np.ndarray
    status: np.ndarray
    checked_in: np.ndarray
    status_changed: np.ndarray
    # scans, in scan-time order: the ticket row scanned, when, the result code and the scanner
    scan_ids: _Ids
    scan_ticket: np.ndarray
    scan_time: np.ndarray
    scan_result: np.ndarray
    scan_device: np.ndarray


@dataclass
class _Resale:
    listing_ids: _Ids
    ticket: np.ndarray
    price: np.ndarray
    face: np.ndarray
    status: np.ndarray
    listed: np.ndarray
    sold: np.ndarray
    expires: np.ndarray
    cancelled: np.ndarray
    transfer_ids: _Ids
    transfer_listing: np.ndarray
    buyer: np.ndarray
    transfer_status: np.ndarray
    crypto: np.ndarray
    currency: np.ndarray
    initiated: np.ndarray
    completed: np.ndarray
    failed: np.ndarray
    fee_ids: _Ids
    fee_transfer: np.ndarray
    platform_fee: np.ndarray
    venue_fee: np.ndarray


@dataclass
class _World:
    clock: _Clock
    tenant_ids: _Ids
    category_ids: _Ids
    operator_ids: _Ids  # staff who change prices: 8 per tenant
    venues: _Venues
    events: _Events
    types: _Types
    users: _Users
    orders: _Orders
    items: _Items
    refunds: _Refunds
    tickets: _Tickets
    resale: _Resale
    # the planted truth (generator.truth): what models must find, by domain; models never read it
    truth: dict = field(default_factory=dict)
