"""What the monitoring builders read from the warehouse: per-event sale windows and capacities, and ticket
sale times. Everything else in monitoring/ is pure polars over these frames.

A sale = a ticket row's `created_at` (the order's confirmation; refunded tickets count where they were sold:
a refund puts the seat back later, it does not undo the sale's place on the curve). stg_tickets is
partitioned by the day of created_at: a ticket without one is quarantined by staging (reason recorded), so
every staged ticket has a sale time.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from analytics_pipelines.warehouse.base import Warehouse

#: stg_tickets' partition column (the UTC day of created_at)
PARTITION = "_partition"

TS = pl.Datetime("us", "UTC")

EVENT_SCHEMA = {
    "tenant_id": pl.String,
    "venue_id": pl.String,
    "event_id": pl.String,
    "category_id": pl.String,
    "capacity": pl.Int64,
    "capacity_reason": pl.String,
    "sale_start": TS,
    "sale_end": TS,
    "starts_at": TS,
    "cancelled_at": TS,
    "status": pl.String,
}


def event_windows(event_dim: pl.DataFrame, ticket_types: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
    """One row per event: tenant, venue, category, capacity (the ticket types' quantities; else the
    schedule's capacity override; NULL with a reason when unknown or 0), the sale window (earliest type
    sale_start .. latest type sale_end, else the event start), and when it was cancelled (status
    'cancelled': its status_changed_at, else the event start)."""
    tiers = (
        ticket_types.group_by("event_id").agg(
            pl.col("quantity").cast(pl.Int64).sum().alias("quantity"),
            pl.col("sale_start").cast(TS).min().alias("sale_start"),
            pl.col("sale_end").cast(TS).max().alias("sale_end"),
        )
        if ticket_types.height
        else pl.DataFrame(
            schema={"event_id": pl.String, "quantity": pl.Int64, "sale_start": TS, "sale_end": TS}
        )
    )
    changed = events.select(
        pl.col("id").alias("event_id"), pl.col("status_changed_at").cast(TS).alias("status_changed_at")
    )
    raw_cap = pl.when(pl.col("quantity") > 0).then(pl.col("quantity")).otherwise(pl.col("capacity"))
    df = (
        event_dim.select(
            "tenant_id",
            "venue_id",
            "event_id",
            "category_id",
            pl.col("capacity").cast(pl.Int64),
            pl.col("starts_at").cast(TS),
            "status",
        )
        .join(tiers, on="event_id", how="left")
        .join(changed, on="event_id", how="left")
        .with_columns(raw_cap.alias("raw_capacity"))
    )
    return df.select(
        "tenant_id",
        "venue_id",
        "event_id",
        "category_id",
        pl.when(pl.col("raw_capacity") > 0).then(pl.col("raw_capacity")).alias("capacity"),
        pl.when(pl.col("raw_capacity").is_null())
        .then(pl.lit("capacity_unknown"))
        .when(pl.col("raw_capacity") <= 0)
        .then(pl.lit("capacity_zero"))
        .alias("capacity_reason"),
        "sale_start",
        pl.coalesce("sale_end", "starts_at").alias("sale_end"),
        "starts_at",
        pl.when(pl.col("status") == "cancelled")
        .then(pl.coalesce("status_changed_at", "starts_at"))
        .alias("cancelled_at"),
        "status",
    ).cast(EVENT_SCHEMA)


def load_events(wh: Warehouse) -> pl.DataFrame:
    from analytics_pipelines.marts.build import event_dim

    return event_windows(
        event_dim(wh),
        wh.read_table("stg_ticket_types", columns=["event_id", "quantity", "sale_start", "sale_end"]),
        wh.read_table("stg_events", columns=["id", "status_changed_at"]),
    )


def load_sales(wh: Warehouse, since: datetime | None, until: datetime) -> pl.DataFrame:
    """Ticket sale times in [since, until) (all history when since is None): event_id, created_at. Reads only
    the daily partitions of the range (stg_tickets is partitioned by the day of created_at)."""
    if since is None:
        df = wh.read_table("stg_tickets", columns=["event_id", "created_at"])  # whole table: the fast path
    else:
        df = wh.read_partitions(
            "stg_tickets",
            PARTITION,
            since.date().isoformat(),
            until.date().isoformat(),
            columns=["event_id", "created_at"],
        )
    df = df.select(pl.col("event_id").cast(pl.String), pl.col("created_at").cast(TS))
    keep = pl.col("created_at") < until
    if since is not None:
        keep &= pl.col("created_at") >= since
    return df.filter(keep)


def sold_before(wh: Warehouse, before: datetime) -> pl.DataFrame:
    """Tickets sold per event before `before` (event_id, sold_before): the partitions of earlier days by
    their key (one column read), plus the rows of `before`'s own day that precede it."""
    day = before.date().isoformat()
    older = (
        wh.read_table("stg_tickets", columns=["event_id", PARTITION])
        .filter(pl.col(PARTITION).cast(pl.String) < day)
        .group_by("event_id")
        .agg(pl.len().alias("n"))
    )
    same = (
        load_sales(wh, datetime.combine(before.date(), datetime.min.time(), before.tzinfo), before)
        .group_by("event_id")
        .agg(pl.len().alias("n"))
    )
    return (
        pl.concat([older, same])
        .group_by("event_id")
        .agg(pl.col("n").sum().cast(pl.Int64).alias("sold_before"))
    )
