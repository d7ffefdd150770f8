"""Bad-row injection into the landing shape (all-text frames, as `db.render_text` prints them).

`inject(frames_text, seed, rate)` returns new frames and a manifest. Every kind below is injected at a known
count: max(1, round(rate * rows)) rows per (kind, table), fewer only if a table has too few eligible rows.
Each injected row carries exactly one kind (target rows are disjoint across kinds), so a staging layer's
quarantine can be reconciled kind by kind. What each kind hits:

| kind                       | table.column                                   | what the row looks like                        |
|----------------------------|------------------------------------------------|------------------------------------------------|
| null_key                   | order_refunds.id, ticket_scans.id,             | id NULL (even positions) or '' (odd positions) |
|                            | platform_fees.id, order_items.id               | (leaf tables only: nothing references them)    |
| negative_money             | orders.total_cents, order_refunds.refund_amount_cents, tickets.price | value negated ('-4550', '-45.50') |
| nan_money                  | ticket_types.price, tickets.price, order_items.total_price_cents | 'NaN'                       |
| money_in_dollars           | order_items.unit_price_cents (+ total_price_cents) | the type's dollar price ('45.50'), 100x too small; total = quantity x that ('91.00') |
| unknown_status             | orders.status, tickets.status, marketplace_listings.status | a value outside the vocabulary in any case ('ON_HOLD', 'lost', 'delisted') |
| duplicate_key_conflict     | orders (status), tickets (status), order_refunds (refund_amount_cents) | an appended copy of a row: same id, same created-at day, a different valid status / amount + 100; the copy is the bad row |
| orphan_reference           | tickets.event_id, orders.user_id               | a random id that no event / user has           |
| future_timestamp           | tickets.created_at (tickets without scans or listings), ticket_scans.scanned_at, order_refunds.created_at | year set to 2099 (the partition timestamp; 02-29 becomes 02-28) |
| timestamp_without_timezone | orders.confirmed_at (orders with created_at set), tickets.purchased_at | the '+00' offset dropped: '2026-01-01 10:00:00' (not a partition column: the row stays in its day) |
| control_characters         | events.name, order_refunds.refund_reason       | ESC sequence, zero-width space, combining accent (not NFC), BEL, right-to-left override or BOM added. No NUL: PostgreSQL text cannot store '\\x00' |
| absurd_magnitude           | order_items.quantity, orders.ticket_quantity   | '1000000000'                                   |
| mixed_case_status          | orders.status, tickets.status                  | a vocabulary value in the wrong case ('Completed', 'cOnFiRmEd', 'Active', 'USED') |
| empty_day                  | every fact table                               | every row whose partition day (contract partition_time) is the chosen day is removed |

Manifest: `{kind: {table: count}}` for every kind in `KINDS` (for empty_day: rows removed per table), plus
- `keys`: `{kind: {table: [ids]}}`, the affected rows' ids before injection (empty_day: the removed ids);
- `empty_day_date`: the removed day ('YYYY-MM-DD');
- `empty_day_orphans`: `{table: count}`, rows on other days whose parent (contract.references) was removed with
  the empty day: the side effect of a missing day, not an injected kind (no injected row is one of them);
- `seed`, `rate`.
The same frames, seed and rate always give the same output and manifest.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np
import polars as pl

from analytics_pipelines.generator.primitives import random_uuids
from analytics_pipelines.source import contract

KINDS = (
    "null_key",
    "negative_money",
    "nan_money",
    "money_in_dollars",
    "unknown_status",
    "duplicate_key_conflict",
    "orphan_reference",
    "future_timestamp",
    "timestamp_without_timezone",
    "control_characters",
    "absurd_magnitude",
    "mixed_case_status",
    "empty_day",
)

# (kind, table, column) in injection order; empty_day is applied first, separately.
TARGETS: tuple[tuple[str, str, str], ...] = (
    ("null_key", "order_refunds", "id"),
    ("null_key", "ticket_scans", "id"),
    ("null_key", "platform_fees", "id"),
    ("null_key", "order_items", "id"),
    ("negative_money", "orders", "total_cents"),
    ("negative_money", "order_refunds", "refund_amount_cents"),
    ("negative_money", "tickets", "price"),
    ("nan_money", "ticket_types", "price"),
    ("nan_money", "tickets", "price"),
    ("nan_money", "order_items", "total_price_cents"),
    ("money_in_dollars", "order_items", "unit_price_cents"),
    ("unknown_status", "orders", "status"),
    ("unknown_status", "tickets", "status"),
    ("unknown_status", "marketplace_listings", "status"),
    ("duplicate_key_conflict", "orders", "status"),
    ("duplicate_key_conflict", "tickets", "status"),
    ("duplicate_key_conflict", "order_refunds", "refund_amount_cents"),
    ("orphan_reference", "tickets", "event_id"),
    ("orphan_reference", "orders", "user_id"),
    ("future_timestamp", "tickets", "created_at"),
    ("future_timestamp", "ticket_scans", "scanned_at"),
    ("future_timestamp", "order_refunds", "created_at"),
    ("timestamp_without_timezone", "orders", "confirmed_at"),
    ("timestamp_without_timezone", "tickets", "purchased_at"),
    ("control_characters", "events", "name"),
    ("control_characters", "order_refunds", "refund_reason"),
    ("absurd_magnitude", "order_items", "quantity"),
    ("absurd_magnitude", "orders", "ticket_quantity"),
    ("mixed_case_status", "orders", "status"),
    ("mixed_case_status", "tickets", "status"),
)

ABSURD_QUANTITY = "1000000000"
FUTURE_YEAR = "2099"
UNKNOWN_STATUSES = {
    "orders": ("ON_HOLD", "FRAUD_REVIEW", "AWAITING_PAYMENT", "UNKNOWN"),
    "tickets": ("lost", "voided", "pending_mint", "unknown"),
    "marketplace_listings": ("delisted", "archived", "flagged"),
}
# (prefix, suffix) pairs: control characters and odd unicode
CONTROL_VARIANTS = (
    ("", "\x1b[31m"),  # ANSI escape sequence
    ("\u200b", ""),  # zero-width space
    ("", " Cafe\u0301"),  # combining acute accent: NFC would compose it
    ("", "\x07"),  # BEL
    ("\u202e", ""),  # right-to-left override
    ("\ufeff", ""),  # byte-order mark
)
# a duplicate's conflicting content: another valid status
CONFLICTING_STATUS = {
    "orders": {
        "COMPLETED": "REFUNDED",
        "CONFIRMED": "CANCELLED",
        "REFUNDED": "COMPLETED",
        "CANCELLED": "CONFIRMED",
        "EXPIRED": "CANCELLED",
        "PENDING": "CANCELLED",
        "RESERVED": "CANCELLED",
    },
    "tickets": {s: ("used" if s == "active" else "active") for s in contract.TICKET_STATUSES},
}


def inject(
    frames_text: dict[str, pl.DataFrame], seed: int, rate: float = 0.01
) -> tuple[dict[str, pl.DataFrame], dict]:
    """Inject every kind of bad row into all-text frames; return (new frames, manifest)."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, zlib.crc32(b"dirty")])))
    frames = dict(frames_text)
    manifest: dict = {kind: {} for kind in KINDS}
    keys: dict = {kind: {} for kind in KINDS}
    day = _empty_day(frames, rng, manifest, keys)
    used = {t: np.zeros(df.height, bool) for t, df in frames.items()}
    orphans = _side_effect_orphans(frames)
    for table, mask in orphans.items():
        used[table] |= mask
    copies: dict[str, list[pl.DataFrame]] = {}
    for kind, table, column in TARGETS:
        df = frames[table]
        eligible = ~used[table] & _eligible(kind, table, column, df, frames)
        n = min(max(1, round(rate * df.height)), int(eligible.sum()))
        idx = np.sort(rng.choice(np.flatnonzero(eligible), n, replace=False)) if n else np.zeros(0, np.int64)
        used[table][idx] = True
        manifest[kind][table] = n
        keys[kind][table] = df["id"].gather(idx).to_list()
        if kind == "duplicate_key_conflict":
            copies.setdefault(table, []).append(_conflicting_copy(df[idx], table, column))
        else:
            frames[table] = _APPLY[kind](df, table, column, idx, rng)
    for table, extra in copies.items():
        frames[table] = pl.concat([frames[table], *extra])
    manifest.update(
        keys=keys,
        empty_day_date=day,
        seed=seed,
        rate=rate,
        empty_day_orphans={t: int(m.sum()) for t, m in orphans.items() if m.any()},
    )
    return frames, manifest


# -- empty day --------------------------------------------------------------------------------------------
def partition_day(table: str, df: pl.DataFrame) -> pl.Series:
    """The 'YYYY-MM-DD' a landing row is partitioned on: the first non-empty partition_time column."""
    cols = contract.table(table).partition_time or ()
    expr = pl.coalesce([pl.when(pl.col(c) != "").then(pl.col(c)) for c in cols]).str.slice(0, 10)
    return df.select(expr.alias("day")).to_series()


def _empty_day(frames: dict[str, pl.DataFrame], rng: np.random.Generator, manifest: dict, keys: dict) -> str:
    """Remove every fact row of one day picked in the middle half of the orders' history."""
    days = partition_day("orders", frames["orders"]).drop_nulls().unique().sort()
    middle = days.slice(days.len() // 4, max(days.len() // 2, 1))
    day = middle[int(rng.integers(0, middle.len()))]
    for table in contract.fact_tables():
        df = frames[table]
        hit = (partition_day(table, df) == day).fill_null(False)
        manifest["empty_day"][table] = int(hit.sum())
        keys["empty_day"][table] = df.filter(hit)["id"].to_list()
        frames[table] = df.filter(~hit)
    return day


def _side_effect_orphans(frames: dict[str, pl.DataFrame]) -> dict[str, np.ndarray]:
    """Rows whose contract parent is gone (only the empty day removes parents before injection)."""
    out = {}
    for table, spec in contract.tables().items():
        mask = np.zeros(frames[table].height, bool)
        for column, parent in spec.references.items():
            value = frames[table][column]
            mask |= (value.is_not_null() & ~value.is_in(frames[parent]["id"].implode())).to_numpy()
        out[table] = mask
    return out


# -- per-kind eligibility and application ----------------------------------------------------------------------
def _eligible(
    kind: str, table: str, column: str, df: pl.DataFrame, frames: dict[str, pl.DataFrame]
) -> np.ndarray:
    ok = df[column].is_not_null() & (df[column] != "")
    if kind == "future_timestamp" and table == "tickets":
        # only tickets no scan or listing points at: moving a parent would strand its children
        referenced = pl.concat(
            [frames["ticket_scans"]["ticket_id"], frames["marketplace_listings"]["ticket_id"]]
        )
        ok &= ~df["id"].is_in(referenced.implode())
    if kind == "timestamp_without_timezone" and table == "orders":
        ok &= df["created_at"].is_not_null()  # else confirmed_at is the partition timestamp
    return ok.fill_null(False).to_numpy()


def _set(df: pl.DataFrame, column: str, idx: np.ndarray, values: pl.Series) -> pl.DataFrame:
    s = df[column].clone()
    s.scatter(idx, values.cast(pl.String))
    return df.with_columns(s)


def _cycle(values: tuple[str, ...], n: int) -> pl.Series:
    """values repeated in turn to length n."""
    return pl.Series(values, dtype=pl.String).gather(np.arange(n) % len(values))


def _null_key(
    df: pl.DataFrame, table: str, column: str, idx: np.ndarray, rng: np.random.Generator
) -> pl.DataFrame:
    odd = pl.Series(np.arange(idx.size) % 2 == 1)
    return _set(df, column, idx, pl.select(pl.when(pl.lit(odd)).then(pl.lit(""))).to_series())


def _negative(
    df: pl.DataFrame, table: str, column: str, idx: np.ndarray, rng: np.random.Generator
) -> pl.DataFrame:
    return _set(df, column, idx, "-" + df[column].gather(idx))


def _nan(
    df: pl.DataFrame, table: str, column: str, idx: np.ndarray, rng: np.random.Generator
) -> pl.DataFrame:
    return _set(df, column, idx, pl.repeat("NaN", idx.size, eager=True))


def _as_dollars(cents: pl.Series) -> pl.Series:
    return pl.select(
        pl.concat_str(
            [
                (pl.lit(cents) // 100).cast(pl.String),
                pl.lit("."),
                (pl.lit(cents) % 100).cast(pl.String).str.zfill(2),
            ]
        )
    ).to_series()


def _in_dollars(
    df: pl.DataFrame, table: str, column: str, idx: np.ndarray, rng: np.random.Generator
) -> pl.DataFrame:
    unit = df[column].gather(idx).cast(pl.Int64)
    quantity = df["quantity"].gather(idx).cast(pl.Int64)
    df = _set(df, column, idx, _as_dollars(unit))
    return _set(df, "total_price_cents", idx, _as_dollars(unit * quantity))


def _unknown_status(
    df: pl.DataFrame, table: str, column: str, idx: np.ndarray, rng: np.random.Generator
) -> pl.DataFrame:
    return _set(df, column, idx, _cycle(UNKNOWN_STATUSES[table], idx.size))


def _orphan(
    df: pl.DataFrame, table: str, column: str, idx: np.ndarray, rng: np.random.Generator
) -> pl.DataFrame:
    return _set(df, column, idx, random_uuids(rng, idx.size))


def _future(
    df: pl.DataFrame, table: str, column: str, idx: np.ndarray, rng: np.random.Generator
) -> pl.DataFrame:
    moved = pl.select(
        pl.concat_str([pl.lit(FUTURE_YEAR), pl.lit(df[column].gather(idx)).str.slice(4)]).str.replace(
            f"^{FUTURE_YEAR}-02-29", f"{FUTURE_YEAR}-02-28"
        )
    ).to_series()
    return _set(df, column, idx, moved)


def _no_timezone(
    df: pl.DataFrame, table: str, column: str, idx: np.ndarray, rng: np.random.Generator
) -> pl.DataFrame:
    return _set(df, column, idx, df[column].gather(idx).str.strip_suffix("+00"))


def _control(
    df: pl.DataFrame, table: str, column: str, idx: np.ndarray, rng: np.random.Generator
) -> pl.DataFrame:
    prefix = _cycle(tuple(v[0] for v in CONTROL_VARIANTS), idx.size)
    suffix = _cycle(tuple(v[1] for v in CONTROL_VARIANTS), idx.size)
    values = pl.select(
        pl.concat_str([pl.lit(prefix), pl.lit(df[column].gather(idx)), pl.lit(suffix)])
    ).to_series()
    return _set(df, column, idx, values)


def _absurd(
    df: pl.DataFrame, table: str, column: str, idx: np.ndarray, rng: np.random.Generator
) -> pl.DataFrame:
    return _set(df, column, idx, pl.repeat(ABSURD_QUANTITY, idx.size, eager=True))


def _alternating_case(value: str) -> str:
    return "".join(c.lower() if i % 2 == 0 else c.upper() for i, c in enumerate(value))


def _mixed_case(
    df: pl.DataFrame, table: str, column: str, idx: np.ndarray, rng: np.random.Generator
) -> pl.DataFrame:
    vocabulary = contract.table(table).statuses[column]
    title = {s: s.title() for s in vocabulary}
    other = {s: (_alternating_case(s) if s.isupper() else s.upper()) for s in vocabulary}
    current = df[column].gather(idx)
    titled = current.replace_strict(title, return_dtype=pl.String)
    alternated = current.replace_strict(other, return_dtype=pl.String)
    even = pl.Series(np.arange(idx.size) % 2 == 0)
    return _set(
        df,
        column,
        idx,
        pl.select(pl.when(pl.lit(even)).then(pl.lit(titled)).otherwise(pl.lit(alternated))).to_series(),
    )


def _conflicting_copy(rows: pl.DataFrame, table: str, column: str) -> pl.DataFrame:
    if column == "status":
        return rows.with_columns(
            pl.col(column).replace_strict(CONFLICTING_STATUS[table], return_dtype=pl.String)
        )
    return rows.with_columns((pl.col(column).cast(pl.Int64) + 100).cast(pl.String))


_APPLY: dict[str, Callable[[pl.DataFrame, str, str, np.ndarray, np.random.Generator], pl.DataFrame]] = {
    "null_key": _null_key,
    "negative_money": _negative,
    "nan_money": _nan,
    "money_in_dollars": _in_dollars,
    "unknown_status": _unknown_status,
    "orphan_reference": _orphan,
    "future_timestamp": _future,
    "timestamp_without_timezone": _no_timezone,
    "control_characters": _control,
    "absurd_magnitude": _absurd,
    "mixed_case_status": _mixed_case,
}
