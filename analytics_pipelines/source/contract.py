"""The source contract: the platform tables the analytics read, parsed from sql/source/create_tables.sql.

The SQL file is the single source of truth for table and column names and types; this module adds what
SQL cannot say: each table's key, the timestamp that places a row in a daily partition, money units and
status vocabularies (used by the generator and by staging alike).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache

from analytics_pipelines.paths import read_sql

_TABLE_RE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*?)\n\);", re.S)
_COLUMN_RE = re.compile(r"^\s+(\w+) ([a-z]+(?:\(\d+(?:,\d+)?\))?),?\s*$")


@dataclass(frozen=True)
class Column:
    name: str
    pg_type: str

    @property
    def base_type(self) -> str:
        return self.pg_type.split("(")[0]

    @property
    def duckdb_type(self) -> str:
        return {"jsonb": "VARCHAR", "text": "VARCHAR", "timestamptz": "TIMESTAMPTZ"}.get(
            self.base_type, self.pg_type.upper()
        )


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[Column, ...]
    key: str = "id"
    # SQL expression (over source columns) giving the timestamp that places a row in a daily partition.
    # None for dimension tables, which are ingested as whole snapshots.
    partition_time: tuple[str, ...] | None = None
    description: str = ""
    # money columns -> unit in the source ("cents" or "dollars")
    money: dict[str, str] = field(default_factory=dict)
    # status column -> allowed values in the platform's own case
    statuses: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # timestamp columns that must not be far in the future (creation-like facts)
    not_future: tuple[str, ...] = ()
    # references: column -> parent table (checked in staging; orphans are quarantined)
    references: dict[str, str] = field(default_factory=dict)
    # free-text columns cleaned of control characters / odd unicode
    text: tuple[str, ...] = ()
    # integer counts with a sane upper bound
    quantities: tuple[str, ...] = ()

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def partitioned(self) -> bool:
        return self.partition_time is not None

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name}.{name} is not in the source contract")

    @property
    def timestamp_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.base_type == "timestamptz"]


EVENT_STATUSES = (
    "DRAFT",
    "REVIEW",
    "APPROVED",
    "PUBLISHED",
    "ON_SALE",
    "SOLD_OUT",
    "IN_PROGRESS",
    "COMPLETED",
    "CANCELLED",
    "POSTPONED",
)
SCHEDULE_STATUSES = (
    "SCHEDULED",
    "CONFIRMED",
    "IN_PROGRESS",
    "COMPLETED",
    "CANCELLED",
    "POSTPONED",
    "RESCHEDULED",
)
TICKET_STATUSES = (
    "available",
    "reserved",
    "sold",
    "minted",
    "active",
    "transferred",
    "checked_in",
    "used",
    "revoked",
    "refunded",
    "expired",
    "cancelled",
)
ORDER_STATUSES = ("PENDING", "RESERVED", "CONFIRMED", "COMPLETED", "CANCELLED", "EXPIRED", "REFUNDED")
REFUND_STATUSES = ("PENDING", "COMPLETED", "FAILED")
REFUND_TYPES = ("FULL", "PARTIAL", "ITEM")
SCAN_RESULTS = ("valid", "invalid", "duplicate", "expired", "already_used")
LISTING_STATUSES = ("active", "sold", "cancelled", "expired", "pending_approval")
TRANSFER_STATUSES = ("initiated", "pending", "completed", "failed", "disputed")
VENUE_STATUSES = ("active", "inactive", "pending", "suspended")
USER_STATUSES = ("PENDING", "ACTIVE", "SUSPENDED", "DELETED")

# The revenue-channel convention (the platform has no channel column): see docs/source-contract.md.
ORDER_CHANNELS = ("web", "mobile_app", "box_office", "partner")
PAYMENT_METHODS = ("card", "apple_pay", "google_pay", "paypal")

_EXTRA: dict[str, dict] = {
    "venues": dict(
        description="Venues (venue-service). Dimension: ingested as a full snapshot.",
        statuses={"status": VENUE_STATUSES},
        text=("name", "city"),
        quantities=("max_capacity",),
    ),
    "event_categories": dict(
        description="Global event categories (event-service). Dimension.", text=("name",)
    ),
    "events": dict(
        description="Events (event-service). Dimension: events change status over their life.",
        statuses={"status": EVENT_STATUSES, "event_type": ("single", "recurring", "series")},
        references={"venue_id": "venues"},
        text=("name",),
    ),
    "event_schedules": dict(
        description="Event schedules: the only place an event's end time lives. Dimension.",
        statuses={"status": SCHEDULE_STATUSES},
        references={"event_id": "events"},
        quantities=("capacity_override",),
    ),
    "ticket_types": dict(
        description="Ticket tiers that orders reference; price in decimal dollars. Dimension.",
        money={"price": "dollars"},
        references={"event_id": "events"},
        text=("name",),
        quantities=("quantity", "sold_quantity"),
    ),
    "users": dict(
        description="Platform users (auth-service). Dimension; names, emails and phones never leave staging.",
        statuses={"status": USER_STATUSES},
        text=("city",),
    ),
    "tickets": dict(
        description="Issued tickets; price and face_value in decimal dollars; no order key.",
        partition_time=("created_at",),
        money={"price": "dollars", "face_value": "dollars"},
        statuses={"status": TICKET_STATUSES},
        not_future=("created_at", "purchased_at"),
        references={"event_id": "events", "ticket_type_id": "ticket_types"},
    ),
    "ticket_scans": dict(
        description="Check-in scans; at most one per ticket and event.",
        partition_time=("scanned_at",),
        statuses={"result": SCAN_RESULTS},
        not_future=("scanned_at",),
        references={"ticket_id": "tickets", "event_id": "events"},
        text=("location",),
    ),
    "ticket_price_history": dict(
        description="Ticket-type price changes, decimal dollars, app-filled.",
        partition_time=("changed_at",),
        money={"old_price": "dollars", "new_price": "dollars"},
        not_future=("changed_at",),
        references={"ticket_type_id": "ticket_types"},
        text=("reason",),
    ),
    "orders": dict(
        description="Orders (order-service), integer cents; created_at is nullable on the platform.",
        partition_time=("created_at", "confirmed_at", "cancelled_at"),
        money={
            c: "cents"
            for c in (
                "subtotal_cents",
                "platform_fee_cents",
                "processing_fee_cents",
                "tax_cents",
                "discount_cents",
                "total_cents",
            )
        },
        statuses={"status": ORDER_STATUSES},
        not_future=("created_at", "confirmed_at"),
        references={"user_id": "users", "event_id": "events"},
        quantities=("ticket_quantity",),
    ),
    "order_items": dict(
        description="Order lines, integer cents; no ticket link.",
        partition_time=("created_at",),
        money={"unit_price_cents": "cents", "total_price_cents": "cents"},
        not_future=("created_at",),
        references={"order_id": "orders", "ticket_type_id": "ticket_types"},
        quantities=("quantity",),
    ),
    "order_refunds": dict(
        description="Order refunds, integer cents; no completion timestamp on the platform.",
        partition_time=("created_at",),
        money={"refund_amount_cents": "cents"},
        statuses={"refund_status": REFUND_STATUSES, "refund_type": REFUND_TYPES},
        not_future=("created_at",),
        references={"order_id": "orders"},
        text=("refund_reason",),
    ),
    "marketplace_listings": dict(
        description="Resale listings, integer cents.",
        partition_time=("listed_at",),
        money={"price": "cents", "original_face_value": "cents"},
        statuses={"status": LISTING_STATUSES},
        not_future=("listed_at",),
        references={"event_id": "events", "venue_id": "venues"},
    ),
    "marketplace_transfers": dict(
        description="Resale sales (listing -> buyer), integer cents; crypto or fiat.",
        partition_time=("initiated_at",),
        money={"usd_value": "cents"},
        statuses={"status": TRANSFER_STATUSES, "payment_method": ("crypto", "fiat")},
        not_future=("initiated_at",),
        references={"listing_id": "marketplace_listings", "event_id": "events", "venue_id": "venues"},
    ),
    "platform_fees": dict(
        description="Fees on completed resale transfers, integer cents.",
        partition_time=("created_at",),
        money={
            c: "cents" for c in ("sale_price", "platform_fee_amount", "venue_fee_amount", "seller_payout")
        },
        not_future=("created_at",),
        references={"transfer_id": "marketplace_transfers"},
    ),
}

# Dimensions first, then facts in dependency order.
TABLE_ORDER = (
    "venues",
    "event_categories",
    "users",
    "events",
    "event_schedules",
    "ticket_types",
    "tickets",
    "ticket_scans",
    "ticket_price_history",
    "orders",
    "order_items",
    "order_refunds",
    "marketplace_listings",
    "marketplace_transfers",
    "platform_fees",
)


@cache
def tables() -> dict[str, TableSpec]:
    """Every contract table, in dependency order."""
    parsed: dict[str, TableSpec] = {}
    for name, body in _TABLE_RE.findall(read_sql("source/create_tables.sql")):
        cols = []
        for line in body.strip("\n").splitlines():
            m = _COLUMN_RE.match(line)
            if not m:
                raise ValueError(f"create_tables.sql: cannot parse column line {line!r} of {name}")
            cols.append(Column(m.group(1), m.group(2)))
        parsed[name] = TableSpec(name=name, columns=tuple(cols), **_EXTRA.get(name, {}))
    missing = set(TABLE_ORDER) ^ set(parsed)
    if missing:
        raise ValueError(f"source contract and TABLE_ORDER disagree on {sorted(missing)}")
    return {n: parsed[n] for n in TABLE_ORDER}


def table(name: str) -> TableSpec:
    return tables()[name]


def dimension_tables() -> list[str]:
    return [n for n, t in tables().items() if not t.partitioned]


def fact_tables() -> list[str]:
    return [n for n, t in tables().items() if t.partitioned]


def ddl(dialect: str, landing: bool = False) -> list[str]:
    """CREATE TABLE statements for 'postgres' or 'duckdb'. landing=True makes every column text."""
    out = []
    for t in tables().values():
        cols = []
        for c in t.columns:
            if landing:
                typ = "text" if dialect == "postgres" else "VARCHAR"
            else:
                typ = c.pg_type if dialect == "postgres" else c.duckdb_type
            cols.append(f"    {c.name} {typ}")
        out.append(f"CREATE TABLE IF NOT EXISTS {t.name} (\n" + ",\n".join(cols) + "\n)")
    return out


def constraint_statements() -> list[str]:
    text = read_sql("source/add_constraints.sql")
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]
