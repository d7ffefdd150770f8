"""Render the built world as typed polars frames, table by table in contract order: the shared frame helpers
and the catalog, users, tickets, scans and price history (orders and marketplace: generator/sales_frames.py;
the table -> renderer map: generator/synth.py)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import polars as pl
import pyarrow as pa

from analytics_pipelines.generator.primitives import _chunks, _dollars, _group_starts, _int, _pick, _slug, _ts
from analytics_pipelines.generator.reference import (
    _CAT_SLUG,
    _CAT_SUFFIX,
    _CATEGORIES,
    _CITY_COUNTRY,
    _CITY_NAME,
    _CITY_STATE,
    _CITY_TZ,
    _EMAIL_DOMAINS,
    _FIRST_NAMES,
    _GATE_SLUG,
    _GATES,
    _LAST_NAMES,
    _NAME_ADJ,
    _NAME_NOUN,
    _PRICE_REASONS,
    _SCANNERS_PER_GATE,
    _SECTIONS,
    _TIER_CATEGORY,
    _TIER_NAME,
    _TKT,
    _VENUE_PLACE,
    _VENUE_TYPES,
    _VENUE_WORD,
    DAY,
)
from analytics_pipelines.generator.world import _World
from analytics_pipelines.source import contract

# -- frames ----------------------------------------------------------------------------------------------------
_POLARS_TYPES: dict[str, pl.DataType] = {
    "uuid": pl.String(),
    "varchar": pl.String(),
    "text": pl.String(),
    "jsonb": pl.String(),
    "timestamptz": pl.Datetime("us", "UTC"),
    "numeric": pl.Float64(),
    "integer": pl.Int32(),
    "bigint": pl.Int64(),
    "boolean": pl.Boolean(),
}


def _typed(table: str, columns: dict[str, pl.Series]) -> pl.DataFrame:
    """Exactly the contract's columns, in contract order, with the contract's polars types."""
    spec = contract.table(table)
    if list(columns) != spec.column_names:
        raise AssertionError(f"{table}: columns {list(columns)} differ from the contract {spec.column_names}")
    return pl.DataFrame(
        [columns[c.name].alias(c.name).cast(_POLARS_TYPES[c.base_type]) for c in spec.columns]
    )


def _const(value: str, n: int) -> pl.Series:
    return pl.repeat(value, n, dtype=pl.String, eager=True)


def _concat(*parts: pl.Series | str, separator: str = "") -> pl.Series:
    return pl.select(pl.concat_str([pl.lit(p) for p in parts], separator=separator)).to_series()


def _numbered(prefix: str, start: int, n: int, width: int) -> pl.Series:
    """prefix + zero-padded 1-based sequence numbers (order and ticket numbers)."""
    return _concat(prefix, pl.Series(np.arange(start + 1, start + n + 1)).cast(pl.String).str.zfill(width))


def _latest(*times: np.ndarray) -> np.ndarray:
    return np.maximum.reduce(times)


_SUFFIXES = tuple(s for row in _CAT_SUFFIX for s in row)
_DEVICES = tuple(f"scanner-{g}-{k + 1:02d}" for g in _GATE_SLUG for k in range(_SCANNERS_PER_GATE))


def _venue_frames(w: _World) -> Iterator[pl.DataFrame]:
    v = w.venues
    n = len(v.ids)
    name = _concat(_pick(_VENUE_PLACE, v.place), _pick(_VENUE_WORD, v.vtype), separator=" ")
    city = _pick(_CITY_NAME, v.city)
    slug = pl.select(
        pl.concat_str(
            [
                _slug(pl.lit(name)),
                _slug(pl.lit(city)),
                pl.lit(pl.Series(np.arange(1, n + 1))).cast(pl.String),
            ],
            separator="-",
        )
    ).to_series()
    yield _typed(
        "venues",
        {
            "id": v.ids.slice(),
            "tenant_id": w.tenant_ids.take(v.tenant),
            "name": name,
            "slug": slug,
            "email": _concat("hello@", slug, ".example.com"),
            "city": city,
            "state_province": _pick(_CITY_STATE, v.city),
            "country_code": _pick(_CITY_COUNTRY, v.city),
            "timezone": _pick(_CITY_TZ, v.city),
            "venue_type": _pick(_VENUE_TYPES, v.vtype),
            "max_capacity": pl.Series(v.capacity),
            "status": _pick(contract.VENUE_STATUSES, v.status),
            "created_at": _ts(v.created),
            "updated_at": _ts(v.updated),
            "deleted_at": _ts(np.full(n, -1)),
        },
    )


def _category_frames(w: _World) -> Iterator[pl.DataFrame]:
    n = len(_CATEGORIES)
    yield _typed(
        "event_categories",
        {
            "id": w.category_ids.slice(),
            "name": pl.Series([s.title() for s in _CAT_SLUG.tolist()]),
            "slug": pl.Series(_CAT_SLUG.tolist()),
            "created_at": _ts(np.full(n, w.clock.launch - 120 * DAY)),
        },
    )


def _user_frames(w: _World) -> Iterator[pl.DataFrame]:
    u = w.users
    for sl in _chunks(len(u.ids)):
        ids = u.ids.slice(sl)
        first, last = _pick(_FIRST_NAMES, u.first[sl]), _pick(_LAST_NAMES, u.last[sl])
        number = pl.Series(np.arange(sl.start + 1, sl.stop + 1)).cast(pl.String)
        email = _concat(
            first, ".", last, ".", number, "@", _pick(_EMAIL_DOMAINS, u.domain[sl])
        ).str.to_lowercase()
        # the platform scrubs a deleted user's email 30 days after deletion
        scrubbed = pl.Series((u.deleted[sl] >= 0) & (u.deleted[sl] < w.clock.now - 30 * DAY))
        email = pl.select(
            pl.when(pl.lit(scrubbed))
            .then(pl.concat_str([pl.lit("deleted_"), pl.lit(ids), pl.lit("@removed.com")]))
            .otherwise(pl.lit(email))
        ).to_series()
        phone = pl.Series(u.phone[sl]).cast(pl.String).str.zfill(7)
        phone = pl.select(
            pl.when(pl.lit(pl.Series(u.phone[sl] >= 0))).then(pl.concat_str([pl.lit("+1555"), pl.lit(phone)]))
        ).to_series()
        yield _typed(
            "users",
            {
                "id": ids,
                "tenant_id": w.tenant_ids.take(u.tenant[sl]),
                "email": email,
                "first_name": first,
                "last_name": last,
                "phone": phone,
                "country_code": _pick(_CITY_COUNTRY, u.city[sl]),
                "city": _pick(_CITY_NAME, u.city[sl]),
                "timezone": _pick(_CITY_TZ, u.city[sl]),
                "status": _pick(contract.USER_STATUSES, u.status[sl]),
                "marketing_consent": pl.Series(u.consent[sl]),
                "created_at": _ts(u.created[sl]),
                "updated_at": _ts(u.updated[sl]),
                "deleted_at": _ts(u.deleted[sl]),
            },
        )


def _event_frames(w: _World) -> Iterator[pl.DataFrame]:
    e = w.events
    n = len(e.ids)
    name = _concat(
        _pick(_NAME_ADJ, e.name[:, 0]),
        _pick(_NAME_NOUN, e.name[:, 1]),
        _pick(_SUFFIXES, e.category * 4 + e.name[:, 2]),
        separator=" ",
    )
    slug = pl.select(
        pl.concat_str(
            [_slug(pl.lit(name)), pl.lit(pl.Series(np.arange(1, n + 1))).cast(pl.String)], separator="-"
        )
    ).to_series()
    yield _typed(
        "events",
        {
            "id": e.ids.slice(),
            "tenant_id": w.tenant_ids.take(e.tenant),
            "venue_id": w.venues.ids.take(e.venue),
            "primary_category_id": w.category_ids.take(e.category),
            "name": name,
            "slug": slug,
            "event_type": _pick(("single", "recurring", "series"), e.event_type),
            "status": _pick(contract.EVENT_STATUSES, e.status),
            "visibility": _pick(("PUBLIC", "PRIVATE", "UNLISTED"), e.visibility),
            "start_date": _ts(e.starts),
            "status_changed_at": _ts(e.status_changed),
            "created_at": _ts(e.created),
            "updated_at": _ts(e.status_changed),
            "deleted_at": _ts(np.full(n, -1)),
        },
    )


def _schedule_frames(w: _World) -> Iterator[pl.DataFrame]:
    e = w.events
    n = len(e.ids)
    yield _typed(
        "event_schedules",
        {
            "id": e.schedule_ids.slice(),
            "tenant_id": w.tenant_ids.take(e.tenant),
            "event_id": e.ids.slice(),
            "starts_at": _ts(e.starts),
            "ends_at": _ts(e.ends),
            "doors_open_at": _ts(e.doors),
            "timezone": _pick(_CITY_TZ, w.venues.city[e.venue]),
            "status": _pick(contract.SCHEDULE_STATUSES, e.schedule_status),
            "capacity_override": _int(e.capacity, pa.int32(), null=~e.override),
            "created_at": _ts(e.created),
            "updated_at": _ts(e.status_changed),
            "deleted_at": _ts(np.full(n, -1)),
        },
    )


def _type_frames(w: _World) -> Iterator[pl.DataFrame]:
    t, e = w.types, w.events
    created = e.created[t.event]
    last_change = np.full(len(t.ids), -1, np.int64)
    has = t.n_changes > 0
    last_change[has] = t.change_time[(_group_starts(t.n_changes) + t.n_changes - 1)[has]]
    yield _typed(
        "ticket_types",
        {
            "id": t.ids.slice(),
            "tenant_id": w.tenant_ids.take(e.tenant[t.event]),
            "event_id": e.ids.take(t.event),
            "name": _pick(_TIER_NAME, t.tier),
            "category": _pick(_TIER_CATEGORY, t.tier),
            "price": _dollars(t.price),
            "quantity": pl.Series(t.quantity),
            "available_quantity": pl.Series(t.quantity - t.sold),
            "sold_quantity": pl.Series(t.sold),
            "sale_start": _ts(t.sale_start),
            "sale_end": _ts(t.sale_end),
            "is_active": pl.Series(~e.cancelled[t.event] & (t.sale_end > w.clock.now)),
            "created_at": _ts(created),
            "updated_at": _ts(np.maximum(created, last_change)),
        },
    )


def _ticket_frames(w: _World) -> Iterator[pl.DataFrame]:
    t = w.tickets
    for sl in _chunks(len(t.ids)):
        n = sl.stop - sl.start
        ev, price, status = t.event[sl], t.price[sl], t.status[sl]
        purchased, checked_in = t.purchased[sl], t.checked_in[sl]
        yield _typed(
            "tickets",
            {
                "id": t.ids.slice(sl),
                "tenant_id": w.tenant_ids.take(w.events.tenant[ev]),
                "event_id": w.events.ids.take(ev),
                "ticket_type_id": w.types.ids.take(t.type[sl]),
                "user_id": w.users.ids.take(t.holder[sl]),
                "original_purchaser_id": w.users.ids.take(w.orders.user[t.order[sl]]),
                "ticket_number": _numbered("TKT-", sl.start, n, 10),
                "price_cents": pl.Series(price.astype(np.float64)),
                "price": _dollars(price),
                "face_value": _dollars(price),
                "section": _pick(_SECTIONS, t.section[sl]),
                "status": _pick(contract.TICKET_STATUSES, status),
                "is_validated": pl.Series(checked_in >= 0),
                "transfer_count": pl.Series((status == _TKT["transferred"]).astype(np.int32)),
                "purchased_at": _ts(purchased),
                "validated_at": _ts(checked_in),
                "checked_in_at": _ts(checked_in),
                "status_changed_at": _ts(t.status_changed[sl]),
                "created_at": _ts(purchased),
                "updated_at": _ts(_latest(purchased, checked_in, t.status_changed[sl])),
                "deleted_at": _ts(np.full(n, -1)),
            },
        )


def _scan_frames(w: _World) -> Iterator[pl.DataFrame]:
    t = w.tickets
    for sl in _chunks(t.scan_ticket.size):
        rows = t.scan_ticket[sl]
        yield _typed(
            "ticket_scans",
            {
                "id": t.scan_ids.slice(sl),
                "ticket_id": t.ids.take(rows),
                "event_id": w.events.ids.take(t.event[rows]),
                "scanned_at": _ts(t.scan_time[sl]),
                "device_id": _pick(_DEVICES, t.scan_device[sl]),
                "location": _pick(_GATES, t.scan_device[sl] // _SCANNERS_PER_GATE),
                "result": _pick(contract.SCAN_RESULTS, t.scan_result[sl]),
                "created_at": _ts(t.scan_time[sl]),
            },
        )


def _price_history_frames(w: _World) -> Iterator[pl.DataFrame]:
    t = w.types
    ty = t.change_type
    current = t.chain_start[ty] + np.arange(ty.size) - _group_starts(t.n_changes)[ty] + 1
    o = np.argsort(t.change_time, kind="stable")
    tenant = w.events.tenant[t.event[ty[o]]]
    yield _typed(
        "ticket_price_history",
        {
            "id": t.change_ids.take(o),
            "ticket_type_id": t.ids.take(ty[o]),
            "old_price": _dollars(t.chain[current - 1][o]),
            "new_price": _dollars(t.chain[current][o]),
            "changed_by": w.operator_ids.take(tenant * 8 + t.change_by[o]),
            "reason": _pick(_PRICE_REASONS, t.change_reason[o]),
            "changed_at": _ts(t.change_time[o]),
        },
    )
