"""Render the built world's orders, order items, refunds, marketplace listings and transfers and platform
fees as typed polars frames (the catalog, users and tickets are rendered in generator/frames.py)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import polars as pl

from analytics_pipelines.generator.frames import _concat, _const, _latest, _numbered, _typed
from analytics_pipelines.generator.primitives import _chunks, _pick, _ts
from analytics_pipelines.generator.reference import _PAYMENT_STATUS, _REFUND_REASONS, MINUTE
from analytics_pipelines.generator.world import _World
from analytics_pipelines.source import contract

_ORDER_PAYMENT_STATUS = tuple(_PAYMENT_STATUS.get(s, "pending") for s in contract.ORDER_STATUSES)


def _order_frames(w: _World) -> Iterator[pl.DataFrame]:
    o = w.orders
    for sl in _chunks(len(o.ids)):
        n = sl.stop - sl.start
        created = o.created[sl]
        metadata = _concat(
            '{"channel": "',
            _pick(contract.ORDER_CHANNELS, o.channel[sl]),
            '", "payment_method": "',
            _pick(contract.PAYMENT_METHODS, o.payment[sl]),
            '"}',
        )
        yield _typed(
            "orders",
            {
                "id": o.ids.slice(sl),
                "tenant_id": w.tenant_ids.take(o.tenant[sl]),
                "user_id": w.users.ids.take(o.user[sl]),
                "event_id": w.events.ids.take(o.event[sl]),
                "order_number": _numbered("ORD-", sl.start, n, 9),
                "status": _pick(contract.ORDER_STATUSES, o.status[sl]),
                "subtotal_cents": pl.Series(o.subtotal[sl]),
                "platform_fee_cents": pl.Series(o.platform_fee[sl]),
                "processing_fee_cents": pl.Series(o.processing_fee[sl]),
                "tax_cents": pl.Series(o.tax[sl]),
                "discount_cents": pl.Series(o.discount[sl]),
                "total_cents": pl.Series(o.total[sl]),
                "currency": _const("USD", n),
                "payment_status": _pick(_ORDER_PAYMENT_STATUS, o.status[sl]),
                "ticket_quantity": pl.Series(o.quantity[sl]),
                "metadata": metadata,
                "created_at": _ts(np.where(o.created_null[sl], -1, created)),
                "updated_at": _ts(_latest(created, o.confirmed[sl], o.cancelled_at[sl], o.refunded_at[sl])),
                "expires_at": _ts(created + 15 * MINUTE),
                "confirmed_at": _ts(o.confirmed[sl]),
                "cancelled_at": _ts(o.cancelled_at[sl]),
                "refunded_at": _ts(o.refunded_at[sl]),
            },
        )


def _item_frames(w: _World) -> Iterator[pl.DataFrame]:
    it = w.items
    for sl in _chunks(len(it.ids)):
        order = it.order[sl]
        yield _typed(
            "order_items",
            {
                "id": it.ids.slice(sl),
                "tenant_id": w.tenant_ids.take(w.orders.tenant[order]),
                "order_id": w.orders.ids.take(order),
                "ticket_type_id": w.types.ids.take(it.type[sl]),
                "quantity": pl.Series(it.quantity[sl]),
                "unit_price_cents": pl.Series(it.unit[sl]),
                "total_price_cents": pl.Series(it.unit[sl] * it.quantity[sl]),
                "created_at": _ts(it.created[sl]),
            },
        )


def _refund_frames(w: _World) -> Iterator[pl.DataFrame]:
    r = w.refunds
    o = np.argsort(r.created, kind="stable")
    order = r.order[o]
    yield _typed(
        "order_refunds",
        {
            "id": r.ids.take(o),
            "tenant_id": w.tenant_ids.take(w.orders.tenant[order]),
            "order_id": w.orders.ids.take(order),
            "refund_amount_cents": pl.Series(r.amount[o]),
            "refund_reason": _pick(_REFUND_REASONS, r.reason[o]),
            "refund_status": _pick(contract.REFUND_STATUSES, r.status[o]),
            "refund_type": _pick(contract.REFUND_TYPES, r.refund_type[o]),
            "created_at": _ts(r.created[o]),
            "updated_at": _ts(r.updated[o]),
        },
    )


def _listing_frames(w: _World) -> Iterator[pl.DataFrame]:
    r, t = w.resale, w.tickets
    for sl in _chunks(r.ticket.size):
        ticket = r.ticket[sl]
        ev = t.event[ticket]
        yield _typed(
            "marketplace_listings",
            {
                "id": r.listing_ids.slice(sl),
                "tenant_id": w.tenant_ids.take(w.events.tenant[ev]),
                "ticket_id": t.ids.take(ticket),
                "seller_id": w.users.ids.take(w.orders.user[t.order[ticket]]),
                "event_id": w.events.ids.take(ev),
                "venue_id": w.venues.ids.take(w.events.venue[ev]),
                "price": pl.Series(r.price[sl]),
                "original_face_value": pl.Series(r.face[sl]),
                "status": _pick(contract.LISTING_STATUSES, r.status[sl]),
                "listed_at": _ts(r.listed[sl]),
                "sold_at": _ts(r.sold[sl]),
                "expires_at": _ts(r.expires[sl]),
                "cancelled_at": _ts(r.cancelled[sl]),
                "created_at": _ts(r.listed[sl]),
            },
        )


def _transfer_frames(w: _World) -> Iterator[pl.DataFrame]:
    r, t = w.resale, w.tickets
    for sl in _chunks(r.transfer_listing.size):
        listing = r.transfer_listing[sl]
        ticket = r.ticket[listing]
        ev = t.event[ticket]
        yield _typed(
            "marketplace_transfers",
            {
                "id": r.transfer_ids.slice(sl),
                "tenant_id": w.tenant_ids.take(w.events.tenant[ev]),
                "listing_id": r.listing_ids.take(listing),
                "buyer_id": w.users.ids.take(r.buyer[sl]),
                "seller_id": w.users.ids.take(w.orders.user[t.order[ticket]]),
                "event_id": w.events.ids.take(ev),
                "venue_id": w.venues.ids.take(w.events.venue[ev]),
                "usd_value": pl.Series(r.price[listing]),
                "status": _pick(contract.TRANSFER_STATUSES, r.transfer_status[sl]),
                "payment_method": _pick(("fiat", "crypto"), r.crypto[sl].astype(np.int64)),
                "payment_currency": _pick(("USDC", "SOL"), r.currency[sl]),
                "initiated_at": _ts(r.initiated[sl]),
                "completed_at": _ts(r.completed[sl]),
                "failed_at": _ts(r.failed[sl]),
                "created_at": _ts(r.initiated[sl]),
            },
        )


def _fee_frames(w: _World) -> Iterator[pl.DataFrame]:
    r = w.resale
    for sl in _chunks(r.fee_transfer.size):
        transfer = r.fee_transfer[sl]
        listing = r.transfer_listing[transfer]
        sale = r.price[listing]
        ev = w.tickets.event[r.ticket[listing]]
        yield _typed(
            "platform_fees",
            {
                "id": r.fee_ids.slice(sl),
                "tenant_id": w.tenant_ids.take(w.events.tenant[ev]),
                "transfer_id": r.transfer_ids.take(transfer),
                "sale_price": pl.Series(sale),
                "platform_fee_amount": pl.Series(r.platform_fee[sl]),
                "venue_fee_amount": pl.Series(r.venue_fee[sl]),
                "seller_payout": pl.Series(sale - r.platform_fee[sl] - r.venue_fee[sl]),
                "created_at": _ts(r.completed[transfer]),
            },
        )
