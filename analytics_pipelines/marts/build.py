"""Build each mart for a date range: read exactly the inputs it needs from the warehouse, run its SQL.

Every function takes the warehouse and the inclusive day range (ISO strings, UTC days) and returns the
mart rows for that range; the caller replaces those partitions. Whole-table marts take `through` (the last
day of data) instead. Reads are columnar and partition-pruned: a one-day run reads a handful of staging
partitions plus the small dimensions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import polars as pl

from analytics_pipelines.marts import sales
from analytics_pipelines.marts.sqlrun import run
from analytics_pipelines.warehouse import Warehouse

#: an order is recognized at confirmed_at but partitioned by created_at: a run over days first..last reads
#: the order partitions from first - LOOKBACK (the reconciliation check proves nothing older was missed)
LOOKBACK_DAYS = 7
PARTITION = "_partition"


def _d(day: str) -> date:
    return date.fromisoformat(day)


def _shift(day: str, days: int) -> str:
    return (_d(day) + timedelta(days=days)).isoformat()


def days_between(first: str, last: str) -> list[str]:
    n = (_d(last) - _d(first)).days
    return [_shift(first, i) for i in range(n + 1)]


def _stg(
    wh: Warehouse,
    table: str,
    first: str | None = None,
    last: str | None = None,
    columns: list[str] | None = None,
) -> pl.DataFrame:
    name = f"stg_{table}"
    if first is None:
        return wh.read_table(name, columns=columns)
    return wh.read_partitions(name, PARTITION, first, last, columns=columns)


# -- shared inputs ---------------------------------------------------------------------------------
def event_dim(wh: Warehouse) -> pl.DataFrame:
    """One row per event with venue, category, schedule window and capacity (sql/marts/event_dim.sql)."""
    return run(
        "event_dim",
        {
            "stg_events": _stg(
                wh,
                "events",
                columns=[
                    "id",
                    "tenant_id",
                    "venue_id",
                    "primary_category_id",
                    "name",
                    "status",
                    "start_date",
                    "deleted_at",
                ],
            ),
            "stg_event_schedules": _stg(
                wh,
                "event_schedules",
                columns=["event_id", "starts_at", "ends_at", "capacity_override", "status", "deleted_at"],
            ),
            "stg_ticket_types": _stg(wh, "ticket_types", columns=["event_id", "quantity", "sold_quantity"]),
            "stg_event_categories": _stg(wh, "event_categories", columns=["id", "name"]),
        },
    )


def _events(wh: Warehouse) -> pl.DataFrame:
    return _stg(wh, "events", columns=["id", "venue_id", "primary_category_id"])


def _venues(wh: Warehouse) -> pl.DataFrame:
    return _stg(wh, "venues", columns=["id", "tenant_id", "timezone", "status", "created_at", "deleted_at"])


def fact_history(wh: Warehouse, table: str, columns: list[str], last: str | None = None) -> pl.DataFrame:
    """Columns of a daily fact/mart over all its partitions (up to `last`)."""
    if table not in wh.tables():
        raise LookupError(f"{table} has not been materialized yet")
    if last is None:
        return wh.read_table(table, columns=columns)
    return wh.read_partitions(table, "day", "0001-01-01", last, columns=columns)


# -- facts -----------------------------------------------------------------------------------------
ORDER_COLUMNS = [
    "id",
    "tenant_id",
    "user_id",
    "event_id",
    "status",
    "channel",
    "payment_method",
    "subtotal_cents",
    "platform_fee_cents",
    "processing_fee_cents",
    "tax_cents",
    "discount_cents",
    "total_cents",
    "currency",
    "created_at",
    "confirmed_at",
]


def fct_orders_inputs(wh: Warehouse, first: str, last: str) -> dict[str, pl.DataFrame]:
    lo = _shift(first, -LOOKBACK_DAYS)
    return {
        "stg_orders": _stg(wh, "orders", lo, last, ORDER_COLUMNS),
        "stg_order_items": _stg(wh, "order_items", lo, last, ["order_id", "quantity"]),
        "stg_events": _events(wh),
    }


def fct_orders(wh: Warehouse, first: str, last: str) -> pl.DataFrame:
    """sql/marts/fct_orders.sql (the rule's reference, which a test runs on the same inputs and compares)
    in polars, sorted by day, order_id: DuckDB took 2.5x the CPU at 4M orders, most of it handing 21 mostly
    string columns back to polars."""
    inputs = fct_orders_inputs(wh, first, last)
    recognized = pl.coalesce("confirmed_at", "created_at")
    paid = (
        inputs["stg_orders"]
        .lazy()
        .filter(
            pl.col("status").is_in(["confirmed", "completed", "refunded"])
            & recognized.dt.date().is_between(_d(first), _d(last))
        )
    )
    items = (
        inputs["stg_order_items"].lazy().group_by("order_id").agg(pl.col("quantity").sum().alias("tickets"))
    )
    events = (
        inputs["stg_events"]
        .lazy()
        .select(
            pl.col("id").alias("event_id"), "venue_id", pl.col("primary_category_id").alias("category_id")
        )
    )

    def zero(c: str) -> pl.Expr:
        return pl.col(c).fill_null(0)

    return (
        paid.join(items, left_on="id", right_on="order_id", how="left")
        .join(events, on="event_id", how="left")
        .select(
            pl.col("id").alias("order_id"),
            "tenant_id",
            "venue_id",
            "event_id",
            "category_id",
            "user_id",
            "status",
            "channel",
            "payment_method",
            (pl.lit("primary:") + pl.col("channel")).alias("revenue_line"),
            recognized.alias("recognized_at"),
            recognized.dt.date().alias("day"),
            zero("tickets").cast(pl.Int64).alias("tickets"),
            (pl.col("subtotal_cents") - zero("discount_cents")).alias("ticket_revenue_cents"),
            zero("platform_fee_cents").alias("platform_fee_cents"),
            zero("processing_fee_cents").alias("processing_fee_cents"),
            (zero("platform_fee_cents") + zero("processing_fee_cents")).alias("fees_cents"),
            zero("tax_cents").alias("tax_cents"),
            zero("discount_cents").alias("discount_cents"),
            pl.col("total_cents").alias("gross_revenue_cents"),
            "currency",
        )
        .sort("day", "order_id")
        .collect()
    )


def fct_refunds(wh: Warehouse, first: str, last: str) -> pl.DataFrame:
    refunds = _stg(
        wh,
        "order_refunds",
        first,
        last,
        [
            "id",
            "tenant_id",
            "order_id",
            "refund_amount_cents",
            "refund_status",
            "refund_type",
            "created_at",
            "currency",
        ],
    )
    orders = _stg(wh, "orders", columns=["id", "tenant_id", "user_id", "event_id", "channel"])
    orders = orders.join(refunds.select(pl.col("order_id").alias("id")).unique(), on="id", how="semi")
    return run(
        "fct_refunds",
        {"stg_order_refunds": refunds, "orders": orders, "stg_events": _events(wh)},
        first=_d(first),
        last=_d(last),
    )


def fct_resales(wh: Warehouse, first: str, last: str) -> pl.DataFrame:
    lo = _shift(first, -LOOKBACK_DAYS)
    transfers = _stg(
        wh,
        "marketplace_transfers",
        lo,
        last,
        [
            "id",
            "tenant_id",
            "listing_id",
            "buyer_id",
            "seller_id",
            "event_id",
            "venue_id",
            "usd_value_cents",
            "status",
            "payment_method",
            "completed_at",
            "currency",
        ],
    )
    listings = _stg(
        wh, "marketplace_listings", columns=["id", "ticket_id", "price_cents", "original_face_value_cents"]
    )
    listings = listings.join(transfers.select(pl.col("listing_id").alias("id")).unique(), on="id", how="semi")
    fees = _stg(
        wh,
        "platform_fees",
        lo,
        _shift(last, LOOKBACK_DAYS),
        ["transfer_id", "platform_fee_amount_cents", "venue_fee_amount_cents", "seller_payout_cents"],
    )
    return run(
        "fct_resales",
        {
            "stg_marketplace_transfers": transfers,
            "listings": listings,
            "fees": fees,
            "stg_events": _events(wh),
        },
        first=_d(first),
        last=_d(last),
    )


# -- daily marts -----------------------------------------------------------------------------------
_KEY = ["tenant_id", "venue_id", "day"]


def _facts(
    wh: Warehouse,
    first: str,
    last: str,
    orders: list[str] | None,
    refunds: list[str] | None = None,
    resales: list[str] | None = None,
) -> dict[str, pl.DataFrame]:
    """The facts of first..last, only the columns the mart's SQL uses (a column it names but that is left
    out here fails loudly in DuckDB's binder): handing a frame to DuckDB converts every column it has."""
    wanted = {"fct_orders": orders, "fct_refunds": refunds, "fct_resales": resales}
    return {
        t: wh.read_partitions(t, "day", first, last, columns=[*_KEY, *c])
        for t, c in wanted.items()
        if c is not None
    }


def venue_analytics(wh: Warehouse, first: str, last: str) -> pl.DataFrame:
    facts = _facts(
        wh,
        first,
        last,
        orders=[
            "tickets",
            "gross_revenue_cents",
            "ticket_revenue_cents",
            "fees_cents",
            "tax_cents",
            "user_id",
            "event_id",
        ],
        refunds=["refund_cents"],
        resales=["sale_cents"],
    )
    return run(
        "venue_analytics",
        {**facts, "stg_venues": _venues(wh), "event_dim": event_dim(wh)},
        first=_d(first),
        last=_d(last),
    )


def with_local_hour(df: pl.DataFrame, utc: str = "hour_utc", zone: str = "venue_timezone") -> pl.DataFrame:
    """Add `local_hour` (0-23) of the UTC timestamp `utc` in each row's IANA zone `zone` (vectorized per
    zone: a handful of zones, not rows); drops `zone`."""
    parts = [
        p.with_columns(
            pl.col(utc).dt.convert_time_zone(z).dt.hour().cast(pl.Int32).alias("local_hour")
        ).with_columns(pl.col(utc).dt.convert_time_zone("UTC"))
        for (z,), p in df.partition_by(zone, as_dict=True).items()
    ]
    if not parts:
        return df.with_columns(pl.lit(None, pl.Int32).alias("local_hour")).drop(zone)
    cols = [c if c != zone else "local_hour" for c in df.columns]
    return pl.concat(parts).select(cols)


def venue_analytics_hourly_inputs(wh: Warehouse, first: str, last: str) -> dict[str, pl.DataFrame]:
    return {"fct_orders": wh.read_partitions("fct_orders", "day", first, last), "stg_venues": _venues(wh)}


def venue_analytics_hourly(wh: Warehouse, first: str, last: str) -> pl.DataFrame:
    """sql/marts/venue_analytics_hourly.sql (the reference, compared by a test) in polars, half the CPU of
    DuckDB's distinct-customer hash aggregate at 1.8M venue-hours; then local_hour, sorted by hour_utc,
    venue_id."""
    inputs = venue_analytics_hourly_inputs(wh, first, last)

    def total(c: str) -> pl.Expr:  # SQL sum(): NULL when every value is NULL
        return pl.when(pl.col(c).is_not_null().any()).then(pl.col(c).sum())

    hourly = (
        inputs["fct_orders"]
        .lazy()
        .filter(pl.col("venue_id").is_not_null())
        .group_by("tenant_id", "venue_id", "day", pl.col("recognized_at").dt.truncate("1h").alias("hour_utc"))
        .agg(
            total("tickets").cast(pl.Int64).alias("tickets_sold"),
            pl.len().cast(pl.Int64).alias("orders"),
            total("gross_revenue_cents").cast(pl.Int64).alias("gross_revenue_cents"),
            pl.col("user_id").drop_nulls().n_unique().cast(pl.Int64).alias("unique_customers"),
        )
        .join(
            inputs["stg_venues"]
            .lazy()
            .select(pl.col("id").alias("venue_id"), pl.col("timezone").alias("venue_timezone")),
            on="venue_id",
            how="left",
        )
        .select(
            "tenant_id",
            "venue_id",
            "day",
            "hour_utc",
            pl.col("venue_timezone").fill_null("UTC"),
            "tickets_sold",
            "orders",
            "gross_revenue_cents",
            "unique_customers",
        )
        .collect()
    )
    return with_local_hour(hourly).sort("hour_utc", "venue_id")


def event_analytics(wh: Warehouse, first: str, last: str) -> pl.DataFrame:
    """The cumulative counts need each event's whole order history, but only of the events with sales or
    refunds in first..last: the history is cut to those events before the SQL's window functions."""
    history = fact_history(wh, "fct_orders", ["event_id", "day", "tickets", "gross_revenue_cents"], last)
    refunds = wh.read_partitions("fct_refunds", "day", first, last)
    active = pl.concat([history.filter(pl.col("day") >= _d(first))["event_id"], refunds["event_id"]]).unique()
    history = history.join(active.to_frame(), on="event_id", how="semi").with_columns(
        pl.lit(1, pl.Int64).alias("orders")
    )
    return run(
        "event_analytics",
        {"order_history": history, "fct_refunds": refunds, "event_dim": event_dim(wh)},
        first=_d(first),
        last=_d(last),
    )


def revenue_by_channel(wh: Warehouse, first: str, last: str) -> pl.DataFrame:
    line = ["revenue_line"]
    return run(
        "revenue_by_channel",
        _facts(
            wh,
            first,
            last,
            orders=[*line, "channel", "tickets", "gross_revenue_cents", "fees_cents"],
            refunds=[*line, "channel", "refund_cents"],
            resales=[*line, "payment_method", "sale_cents", "platform_fee_cents", "venue_fee_cents"],
        ),
    )


def revenue_by_category(wh: Warehouse, first: str, last: str) -> pl.DataFrame:
    facts = _facts(
        wh,
        first,
        last,
        orders=["category_id", "tickets", "gross_revenue_cents"],
        refunds=["category_id", "refund_cents"],
    )
    return run(
        "revenue_by_category",
        {**facts, "stg_event_categories": _stg(wh, "event_categories", columns=["id", "name"])},
    )


def resale_activity(wh: Warehouse, first: str, last: str) -> pl.DataFrame:
    return run(
        "resale_activity",
        {
            "listings_in_range": _stg(wh, "marketplace_listings", first, last, ["event_id", "listed_at"]),
            **_facts(
                wh,
                first,
                last,
                orders=None,
                resales=[
                    "event_id",
                    "sale_cents",
                    "face_value_cents",
                    "markup_pct",
                    "platform_fee_cents",
                    "venue_fee_cents",
                ],
            ),
            "event_dim": event_dim(wh),
        },
        first=_d(first),
        last=_d(last),
    )


# -- whole-table marts ------------------------------------------------------------------------------
def _end_of(day: str) -> datetime:
    return datetime.combine(_d(day) + timedelta(days=1), time(), UTC)


HOURLY_DAYS = 14


def sales_metrics(
    wh: Warehouse,
    through: str,
    hourly_days: int = HOURLY_DAYS,
    since: str | None = None,
    previous: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Hour grain for the last `hourly_days` days up to `through`; day, week and month for all history.
    With `previous` and `since` (the first day whose fct_orders partitions changed since `previous` was
    built), only the periods from `since`'s on are recomputed (marts/sales.py) and fct_orders is read from
    the start of `since`'s month or week, or the hour grain's first day, whichever is earliest."""
    end = _end_of(through)
    hour_since = end - timedelta(days=hourly_days)
    columns = [
        "tenant_id",
        "venue_id",
        "recognized_at",
        "tickets",
        "gross_revenue_cents",
        "ticket_revenue_cents",
        "user_id",
    ]
    if previous is None or since is None:
        history = fact_history(wh, "fct_orders", columns, through)
        since_t = None
    else:
        s = _d(since)
        lo = min(s.replace(day=1), s - timedelta(days=s.weekday()), hour_since.date())
        history = wh.read_partitions("fct_orders", "day", lo.isoformat(), through, columns=columns)
        since_t = datetime.combine(s, time(), UTC)
    return sales.sales_metrics(
        history,
        hour_since=hour_since,
        through=end - timedelta(microseconds=1),
        previous=previous,
        since=since_t,
    )


def event_performance(wh: Warehouse) -> pl.DataFrame:
    return run(
        "event_performance",
        {
            "order_history": fact_history(wh, "fct_orders", ["event_id", "tickets", "gross_revenue_cents"]),
            "refund_history": fact_history(wh, "fct_refunds", ["event_id", "refund_cents"]),
            "event_dim": event_dim(wh),
        },
    )


def venue_seasonality(wh: Warehouse, through: str) -> pl.DataFrame:
    va = fact_history(
        wh, "venue_analytics", ["tenant_id", "venue_id", "day", "tickets_sold", "net_revenue_cents"], through
    )
    return run("venue_seasonality", {"va": va}, through=_d(through))


#: an ended event's no-show count is taken as final this many days after it ended (late scan uploads have
#: settled); an incremental run recomputes only the events that ended more recently, plus any ended event
#: the previous table lacks or holds with another end time
NO_SHOW_SETTLE_DAYS = 7


@dataclass
class NoShows:
    rows: pl.DataFrame  # the whole table
    recomputed: pl.DataFrame  # the rows this run computed
    events: list[str] | None  # the events it recomputed (None: every event)
    tickets: pl.DataFrame  # stg_tickets and stg_ticket_scans as read (all rows), for the check
    scans: pl.DataFrame


def no_shows(
    wh: Warehouse, now: datetime, previous: pl.DataFrame | None = None, settle_days: int = NO_SHOW_SETTLE_DAYS
) -> NoShows:
    """Per ended event: sold tickets, scanned, no-shows (sql/marts/no_shows.sql). With `previous` (the
    table as it is), rows of events that ended more than `settle_days` ago are kept as they are and only
    the others are recomputed: the SQL's join then runs over the tickets of a few hundred events instead of
    every ticket. A kept row whose event was cancelled or postponed since is dropped."""
    ed = event_dim(wh)
    tickets = _stg(wh, "tickets", columns=["id", "event_id", "status"])
    scans = _stg(wh, "ticket_scans", columns=["ticket_id", "result"])
    if previous is None:
        rows = run("no_shows", {"tickets": tickets, "scans": scans, "event_dim": ed}, now=now)
        return NoShows(rows, rows, None, tickets, scans)
    ended = ed.filter((pl.col("ends_at") < now) & ~pl.col("cancelled_or_postponed")).select(
        "event_id", "ends_at"
    )
    settled = ended.filter(pl.col("ends_at") < now - timedelta(days=settle_days))
    keep = previous.join(
        settled, left_on=["event_id", "ended_at"], right_on=["event_id", "ends_at"], how="semi"
    )
    redo = ended.join(keep.select("event_id"), on="event_id", how="anti")["event_id"]
    # semi joins (hash), not is_in: is_in of 10M strings against a list took seconds
    some_tickets = tickets.join(redo.to_frame(), on="event_id", how="semi")
    some_scans = scans.join(some_tickets.select(pl.col("id").alias("ticket_id")), on="ticket_id", how="semi")
    fresh = run("no_shows", {"tickets": some_tickets, "scans": some_scans, "event_dim": ed}, now=now)
    rows = pl.concat([keep.select(fresh.columns), fresh], how="vertical_relaxed").sort(
        "venue_id", "ended_at", "event_id", nulls_last=True
    )
    return NoShows(rows, fresh, redo.to_list(), tickets, scans)


def event_tenants(wh: Warehouse) -> pl.DataFrame:
    """event_id -> tenant_id (stg_events), one row per event: also what gives snapshots written before
    ticket_type_price_snapshots had tenant_id theirs (join on event_id, rewrite the partitions)."""
    return _stg(wh, "events", columns=["id", "tenant_id"]).unique("id").rename({"id": "event_id"})


def ticket_type_price_snapshot(wh: Warehouse, snapshot_date: str) -> pl.DataFrame:
    """Today's ticket_types.price per type, as the snapshot of `snapshot_date`, with the tenant of the type's
    event (NULL only for a type whose event is not in staging). One row per ticket type."""
    tt = _stg(wh, "ticket_types", columns=["id", "event_id", "price_cents", "currency"])
    return tt.join(event_tenants(wh), on="event_id", how="left").select(
        pl.lit(_d(snapshot_date)).alias("day"),
        "tenant_id",
        pl.col("id").alias("ticket_type_id"),
        "event_id",
        "price_cents",
        "currency",
    )


def price_history(wh: Warehouse) -> pl.DataFrame:
    snaps = (
        wh.read_table("ticket_type_price_snapshots", columns=["day", "ticket_type_id", "price_cents"]).rename(
            {"day": "snapshot_date"}
        )
        if "ticket_type_price_snapshots" in wh.tables()
        else pl.DataFrame(
            schema={"snapshot_date": pl.Date, "ticket_type_id": pl.String, "price_cents": pl.Int64}
        )
    )
    return run(
        "price_history",
        {
            "price_changes": _stg(
                wh,
                "ticket_price_history",
                columns=["ticket_type_id", "old_price_cents", "new_price_cents", "changed_at"],
            ),
            "stg_ticket_types": _stg(
                wh,
                "ticket_types",
                columns=["id", "event_id", "name", "price_cents", "created_at", "currency"],
            ),
            "snapshots": snaps,
            "event_dim": event_dim(wh),
        },
    )


def event_price_summary(history: pl.DataFrame) -> pl.DataFrame:
    return run("event_price_summary", {"price_history": history})


# -- hourly KPI snapshots ---------------------------------------------------------------------------
def kpi_inputs(wh: Warehouse, first_hour: datetime, last_hour: datetime) -> dict[str, pl.DataFrame]:
    """Everything the KPI snapshots of the hours first_hour..last_hour need, read once."""
    lo = (first_hour - timedelta(days=2)).date().isoformat()
    hi = (last_hour + timedelta(hours=1)).date().isoformat()
    window = {t: wh.read_partitions(t, "day", lo, hi) for t in ("fct_orders", "fct_refunds", "fct_resales")}
    return {
        "stg_venues": _venues(wh),
        "stg_events": _stg(wh, "events", columns=["id", "tenant_id", "status", "created_at", "deleted_at"]),
        "stg_ticket_types": _stg(
            wh, "ticket_types", columns=["event_id", "is_active", "sale_start", "sale_end"]
        ),
        "orders_window": window["fct_orders"],
        "refunds_window": window["fct_refunds"],
        "resales_window": window["fct_resales"],
    }


def kpi_snapshots(wh: Warehouse, hour_starts: list[datetime]) -> pl.DataFrame:
    """KPIs as of the end of each hour in `hour_starts` (UTC), with `hour_key` = the Dagster partition key."""
    if not hour_starts:
        raise ValueError("no hours to snapshot")
    inputs = kpi_inputs(wh, min(hour_starts), max(hour_starts))
    frames = [
        run("kpi_snapshots", inputs, at=h + timedelta(hours=1)).with_columns(
            pl.lit(h.strftime("%Y-%m-%d-%H:%M")).alias("hour_key")
        )
        for h in hour_starts
    ]
    return pl.concat(frames, how="vertical_relaxed")
