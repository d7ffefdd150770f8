"""Row surgery on the built world for the planted fraud (generator/planted_fraud.py): keep/permute/append
rows of the entity dataclasses with their ids, re-index orders with their items and refunds, re-price orders
at the price in effect, draw accounts and disjoint runs of rows. Vectorised; loops only over planted rows."""

from __future__ import annotations

import dataclasses

import numpy as np

from analytics_pipelines.generator.primitives import _group_starts, _Ids
from analytics_pipelines.generator.reference import _CITY_TAX
from analytics_pipelines.generator.world import _Events, _Items, _Orders, _Refunds, _Types, _Users, _Venues


def _take(obj, sel: np.ndarray) -> None:
    """Keep/permute the rows of a dataclass of columns in place (ids included)."""
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, _Ids):
            setattr(obj, f.name, _Ids(v.raw[sel]))
        elif isinstance(v, np.ndarray):
            setattr(obj, f.name, v[sel])


def _append(obj, extra: dict) -> None:
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        add = extra[f.name]
        if isinstance(v, _Ids):
            setattr(obj, f.name, _Ids(np.concatenate([v.raw, add])))
        else:
            setattr(obj, f.name, np.concatenate([v, np.asarray(add).astype(v.dtype)]))


def _reorder(orders: _Orders, items: _Items, refunds: _Refunds, sel: np.ndarray, *extra: np.ndarray):
    """Orders `sel` (old indices, in their new order); items/refunds of dropped orders are dropped."""
    inv = np.full(len(orders.ids), -1, np.int64)
    inv[sel] = np.arange(sel.size)
    _take(orders, sel)
    new = inv[items.order]
    keep = np.flatnonzero(new >= 0)
    keep = keep[np.lexsort((keep, new[keep]))]
    _take(items, keep)
    items.order = inv[items.order]
    rkeep = np.flatnonzero(inv[refunds.order] >= 0)
    _take(refunds, rkeep)
    refunds.order = inv[refunds.order]
    return tuple(e[sel] for e in extra)


def _reprice(venues: _Venues, events: _Events, types: _Types, orders: _Orders, items: _Items, idx) -> None:
    """Unit prices at the price in effect, then subtotal, fees, tax, discount and total of orders `idx`."""
    n = len(orders.ids)
    mine = np.zeros(n, bool)
    mine[idx] = True
    it = np.flatnonzero(mine[items.order])
    o = items.order[it]
    at = np.where(orders.confirmed[o] >= 0, orders.confirmed[o], orders.created[o])
    items.unit[it] = types.price_at(items.type[it], at)
    items.created[it] = orders.created[o]
    sub = np.bincount(o, weights=items.unit[it] * items.quantity[it], minlength=n).astype(np.int64)[idx]
    qty = np.bincount(o, weights=items.quantity[it], minlength=n).astype(np.int64)[idx]
    frac = np.round(orders.discount[idx] / np.maximum(orders.subtotal[idx], 1), 2)
    venue = events.venue[orders.event[idx]]
    fee = np.round(sub * venues.service_fee[venue]).astype(np.int64)
    tax = np.round(sub * np.array(_CITY_TAX)[venues.city[venue]]).astype(np.int64)
    disc = np.round(sub * frac).astype(np.int64)
    proc = (np.round(0.029 * (sub + fee + tax - disc)) + 30).astype(np.int64)
    orders.subtotal[idx], orders.quantity[idx], orders.platform_fee[idx] = sub, qty, fee
    orders.tax[idx], orders.discount[idx], orders.processing_fee[idx] = tax, disc, proc
    orders.total[idx] = sub + fee + proc + tax - disc


def _accounts(rng: np.random.Generator, users: _Users, free: np.ndarray, tenants: np.ndarray) -> np.ndarray:
    """One distinct free user of each requested tenant (-1 when the tenant has none left)."""
    pool = np.flatnonzero(free)
    pool = pool[np.lexsort((rng.random(pool.size), users.tenant[pool]))]
    n_t = len(users.tenant_count)
    have = np.bincount(users.tenant[pool], minlength=n_t)
    start = _group_starts(have)
    order = np.argsort(tenants, kind="stable")
    rank = np.empty(tenants.size, np.int64)
    rank[order] = np.arange(tenants.size) - _group_starts(np.bincount(tenants, minlength=n_t))[tenants[order]]
    ok = rank < have[tenants]
    out = np.full(tenants.size, -1, np.int64)
    out[ok] = pool[start[tenants[ok]] + rank[ok]]
    free[out[ok]] = False
    return out


def _runs(
    rng: np.random.Generator, key: np.ndarray, used: np.ndarray, n: int, size: np.ndarray, stride: int = 1
) -> list[np.ndarray]:
    """Up to n disjoint runs of positions p, p+stride, ... (len size[i]) with one key and nothing used."""
    out: list[np.ndarray] = []
    if key.size == 0:
        return out
    for p in rng.permutation(key.size)[: 20 * n]:  # a bounded number of tries over planted rows only
        if len(out) == n:
            break
        pos = p + stride * np.arange(size[len(out)])
        if pos[-1] < key.size and (key[pos] == key[p]).all() and not used[pos].any():
            used[pos] = True
            out.append(pos)
    return out
