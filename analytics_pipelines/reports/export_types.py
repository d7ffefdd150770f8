"""The export types of the old service with real data (analytics_report, customer_list, transaction_history,
event_summary, financial_report, raw_data): build_export turns one export request into a Report, with
customer ids replaced by keyed pseudonyms. Pure functions of a Warehouse; nothing here knows about Dagster
or the ops tables."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from analytics_pipelines.privacy import key_id
from analytics_pipelines.reports.builders import MONEY_FLOW, _days, _event_names, _now
from analytics_pipelines.reports.filters import (
    CUSTOMER_MART,
    ExportRequestError,
    Filters,
    read_filtered,
    require_tables,
    segment_members,
    table_columns,
)
from analytics_pipelines.reports.model import ChartSpec, Report, Section
from analytics_pipelines.reports.pseudonyms import pseudonymize
from analytics_pipelines.warehouse import Warehouse

# --- export types -----------------------------------------------------------------------------------------

#: tables raw_data may export (marts and facts; never raw/staging, which hold personal data)
RAW_DATA_TABLES = (
    "fct_orders",
    "fct_refunds",
    "fct_resales",
    "venue_analytics",
    "venue_analytics_hourly",
    "event_analytics",
    "revenue_by_channel",
    "revenue_by_category",
    "resale_activity",
    "sales_metrics",
    "event_performance",
    "venue_seasonality",
    "revenue_projections",
    "price_history",
    "no_shows",
    "kpi_snapshots",
)
#: customer id columns replaced by keyed pseudonyms wherever they appear
CUSTOMER_ID_COLUMNS = {
    "user_id": "customer",
    "buyer_id": "buyer",
    "seller_id": "seller",
    "customer_id": "customer",
}


def _needs_key(export_type: str, options: dict) -> bool:
    return export_type in ("customer_list", "transaction_history") or (
        export_type == "raw_data" and options.get("table") in ("fct_orders", "fct_refunds", "fct_resales")
    )


def needs_pseudonym_key(export_type: str, options: dict | None = None) -> bool:
    """Whether an export carries customer ids (and so needs TT_EXPORT_PSEUDONYM_KEY)."""
    return _needs_key(export_type, options or {})


def _orders_and_refunds(wh: Warehouse, f: Filters, window) -> tuple[pl.DataFrame, pl.DataFrame]:
    require_tables(wh, "fct_orders", "fct_refunds")
    members = segment_members(wh, f)
    orders = read_filtered(wh, "fct_orders", f, window, user_ids=members)
    refunds = read_filtered(wh, "fct_refunds", f, window, user_ids=members)
    return orders, refunds


def _analytics_report(wh, f, window, options, key):
    orders, refunds = _orders_and_refunds(wh, f, window)
    daily_o = orders.group_by("day").agg(
        pl.len().alias("orders"),
        pl.col("tickets").sum(),
        pl.col("gross_revenue_cents", "fees_cents").sum(),
        pl.col("user_id").n_unique().alias("unique_customers"),
    )
    daily_r = refunds.group_by("day").agg(pl.col("refund_cents").sum().alias("refunds_cents"))
    daily = (
        _days(*window)
        .join(daily_o, on="day", how="left")
        .join(daily_r, on="day", how="left")
        .with_columns(
            pl.col("orders", "tickets", "unique_customers").fill_null(0).cast(pl.Int64),
            pl.col("gross_revenue_cents", "fees_cents", "refunds_cents").fill_null(0).cast(pl.Int64),
        )
        .with_columns((pl.col("gross_revenue_cents") - pl.col("refunds_cents")).alias("net_revenue_cents"))
        .select(
            "day",
            "orders",
            "tickets",
            "unique_customers",
            "gross_revenue_cents",
            "fees_cents",
            "refunds_cents",
            "net_revenue_cents",
        )
        .sort("day")
    )
    by_channel = (
        orders.group_by("channel")
        .agg(pl.len().alias("orders"), pl.col("tickets").sum(), pl.col("gross_revenue_cents").sum())
        .join(
            refunds.group_by("channel").agg(pl.col("refund_cents").sum().alias("refunds_cents")),
            on="channel",
            how="full",
            coalesce=True,
        )
        .fill_null(0)
        .with_columns((pl.col("gross_revenue_cents") - pl.col("refunds_cents")).alias("net_revenue_cents"))
        .sort(["gross_revenue_cents", "channel"], descending=[True, False])
    )
    by_event = (
        orders.group_by("event_id")
        .agg(pl.len().alias("orders"), pl.col("tickets").sum(), pl.col("gross_revenue_cents").sum())
        .sort(["gross_revenue_cents", "event_id"], descending=[True, False])
        .head(options.get("top", 20))
    )
    names = _event_names(wh, by_event["event_id"].to_list())
    by_event = by_event.join(names, on="event_id", how="left").select(
        "event_id", "event_name", "orders", "tickets", "gross_revenue_cents"
    )
    return "Analytics report", (
        Section(
            "Daily sales",
            daily,
            ChartSpec("line", "day", ("gross_revenue_cents", "net_revenue_cents"), "Revenue per day"),
        ),
        Section("By sales channel", by_channel),
        Section("Top events", by_event),
    )


def _customer_list(wh, f, window, options, key):
    orders, refunds = _orders_and_refunds(wh, f, window)
    per = (
        orders.group_by("user_id")
        .agg(
            pl.col("day").min().alias("first_purchase"),
            pl.col("day").max().alias("last_purchase"),
            pl.len().alias("orders"),
            pl.col("tickets").sum().alias("tickets"),
            pl.col("gross_revenue_cents").sum().alias("total_spent_cents"),
            pl.col("venue_id").n_unique().alias("venues"),
            pl.col("event_id").n_unique().alias("events"),
        )
        .join(
            refunds.group_by("user_id").agg(pl.col("refund_cents").sum().alias("refunded_cents")),
            on="user_id",
            how="left",
        )
        .with_columns(pl.col("refunded_cents").fill_null(0).cast(pl.Int64))
        .with_columns((pl.col("total_spent_cents") - pl.col("refunded_cents")).alias("net_spent_cents"))
        .filter(pl.col("user_id").is_not_null())
    )
    if CUSTOMER_MART in wh.tables() and "segment" in table_columns(wh, CUSTOMER_MART):
        seg = read_filtered(
            wh, CUSTOMER_MART, Filters(tenant_id=f.tenant_id), None, apply=(), columns=["user_id", "segment"]
        )
        per = per.join(seg.unique("user_id"), on="user_id", how="left")
    per = per.sort(["total_spent_cents", "user_id"], descending=[True, False])
    per = pseudonymize(per, key, f.tenant_id, {"user_id": "customer"})
    per = per.select("customer", pl.exclude("customer"))
    summary = pl.DataFrame(
        [
            {
                "customers": per.height,
                "new_customers": per.filter(pl.col("first_purchase") >= window[0]).height,
                "orders": int(per["orders"].sum() or 0),
                "total_spent_cents": int(per["total_spent_cents"].sum() or 0),
                "refunded_cents": int(per["refunded_cents"].sum() or 0),
            }
        ],
        schema={
            "customers": pl.Int64,
            "new_customers": pl.Int64,
            "orders": pl.Int64,
            "total_spent_cents": pl.Int64,
            "refunded_cents": pl.Int64,
        },
    )
    keyed_by = f", key {key_id(key)}" if key else ""
    note = (
        f"Customers are keyed pseudonyms (HMAC-SHA256{keyed_by}); no names or emails. First/last "
        "purchase are within the exported date range."
    )
    return "Customer list", (Section("Summary", summary, layout="kv"), Section("Customers", per, note=note))


def _transaction_history(wh, f, window, options, key):
    orders, refunds = _orders_and_refunds(wh, f, window)
    orders = pseudonymize(
        orders.sort(["recognized_at", "order_id"]), key, f.tenant_id, {"user_id": "customer"}
    )
    refunds = pseudonymize(
        refunds.sort(["refunded_at", "refund_id"]), key, f.tenant_id, {"user_id": "customer"}
    )
    return "Transaction history", (Section("Orders", orders), Section("Refunds", refunds))


def _event_summary(wh, f, window, options, key):
    require_tables(wh, "event_performance")
    if f.segments:
        raise ExportRequestError("the segments filter does not apply to event_summary")
    ep = read_filtered(wh, "event_performance", f, window).sort(["starts_at", "event_id"])
    keep = [
        c
        for c in (
            "event_id",
            "event_name",
            "category_name",
            "venue_id",
            "starts_at",
            "status",
            "tickets_sold",
            "capacity",
            "capacity_utilization_pct",
            "gross_revenue_cents",
            "net_revenue_cents",
            "revenue_rank",
        )
        if c in ep.columns
    ]
    return "Event summary", (Section("Events starting in the period", ep.select(keep)),)


def _financial_report(wh, f, window, options, key):
    require_tables(wh, "revenue_by_channel")
    if f.segments:
        raise ExportRequestError("the segments filter does not apply to financial_report")
    rc = read_filtered(wh, "revenue_by_channel", f, window)
    cols = ["transactions", "tickets", *MONEY_FLOW]
    daily = (
        _days(*window)
        .join(rc.group_by("day").agg(pl.col(cols).sum()), on="day", how="left")
        .with_columns(pl.col(cols).fill_null(0).cast(pl.Int64))
        .sort("day")
    )
    by_line = rc.group_by("day", "revenue_line").agg(pl.col(cols).sum()).sort(["day", "revenue_line"])
    totals = rc.group_by("revenue_line").agg(pl.col(cols).sum()).sort("revenue_line")
    summary = pl.DataFrame([{c: int(rc[c].sum() or 0) for c in cols}], schema={c: pl.Int64 for c in cols})
    return "Financial report", (
        Section(
            "Summary",
            summary,
            layout="kv",
            note="net = gross − refunds; fees are the platform and processing fees inside gross.",
        ),
        Section(
            "Per day",
            daily,
            ChartSpec(
                "line",
                "day",
                ("gross_revenue_cents", "refunds_cents", "net_revenue_cents"),
                "Gross, refunds and net per day",
            ),
        ),
        Section("By revenue line", totals),
        Section("Per day and revenue line", by_line),
    )


def _raw_data(wh, f, window, options, key):
    table = options.get("table")
    if table not in RAW_DATA_TABLES:
        raise ExportRequestError(
            f"raw_data needs options.table, one of {', '.join(RAW_DATA_TABLES)}; got {table!r}"
        )
    require_tables(wh, table)
    members = segment_members(wh, f)
    use_window = window if (f.date_from or f.date_to or "day" in table_columns(wh, table)) else None
    df = read_filtered(wh, table, f, use_window, user_ids=members)
    if key is not None:
        df = pseudonymize(df, key, f.tenant_id, CUSTOMER_ID_COLUMNS)
    return f"Raw data: {table}", (Section(table, df),)


@dataclass(frozen=True)
class ExportSpec:
    """What one export type is: its builder, the tables it reads, the filters it honours (enforced by
    `check_export`, listed by GET /v1/reports/templates) and its options."""

    builder: Callable
    title: str
    description: str
    tables: tuple[str, ...]
    filters: tuple[str, ...]
    options: tuple[str, ...] = ("top",)


_ALL = ("date_from", "date_to", "venue_ids", "event_ids", "category_ids", "segments")
EXPORT_SPECS = {
    "analytics_report": ExportSpec(
        _analytics_report,
        "Analytics report",
        "Daily sales, sales by channel and the top events (orders and refunds).",
        ("fct_orders", "fct_refunds"),
        _ALL,
    ),
    "customer_list": ExportSpec(
        _customer_list,
        "Customer list",
        "Per-customer aggregates under keyed pseudonyms (segment when the customer marts exist).",
        ("fct_orders", "fct_refunds"),
        _ALL,
        (),
    ),
    "transaction_history": ExportSpec(
        _transaction_history,
        "Transaction history",
        "Every order and refund in the range, customers as keyed pseudonyms.",
        ("fct_orders", "fct_refunds"),
        _ALL,
        (),
    ),
    "event_summary": ExportSpec(
        _event_summary,
        "Event summary",
        "Events starting in the range: tickets sold, capacity, revenue, rank.",
        ("event_performance",),
        ("date_from", "date_to", "venue_ids", "event_ids"),
        (),
    ),
    "financial_report": ExportSpec(
        _financial_report,
        "Financial report",
        "Gross, refunds, fees and net: summary, per day, per revenue line.",
        ("revenue_by_channel",),
        ("date_from", "date_to", "venue_ids"),
        (),
    ),
    "raw_data": ExportSpec(
        _raw_data,
        "Raw data",
        "One mart or fact table by allow-list (options.table); a filter applies where the table has its "
        "column (checked when the export runs).",
        RAW_DATA_TABLES,
        _ALL,
        ("table",),
    ),
}
EXPORT_BUILDERS = {name: spec.builder for name, spec in EXPORT_SPECS.items()}


def check_export(export_type: str, f: Filters, options: dict) -> None:
    """ExportRequestError unless the export type honours every given filter and option (EXPORT_SPECS)."""
    spec = EXPORT_SPECS.get(export_type)
    if spec is None:
        raise ExportRequestError(
            f"unknown export type {export_type!r}; expected one of {', '.join(EXPORT_SPECS)}"
        )
    given = [k for k, v in f.to_json().items() if v]
    refused = [k for k in given if k not in spec.filters]
    if refused:
        raise ExportRequestError(
            f"the filter(s) {', '.join(refused)} does not apply to {export_type}; "
            f"it takes {', '.join(spec.filters)}"
        )
    extra = sorted(set(options) - set(spec.options))
    if extra:
        raise ExportRequestError(
            f"{export_type} takes no option(s) {', '.join(extra)}"
            + (f"; its options: {', '.join(spec.options)}" if spec.options else "")
        )
    if export_type == "raw_data" and options.get("table") not in RAW_DATA_TABLES:
        raise ExportRequestError(f"raw_data needs options.table, one of {', '.join(RAW_DATA_TABLES)}")


def build_export(
    wh: Warehouse,
    export_type: str,
    filters: Filters,
    options: dict | None = None,
    pseudonym_key: bytes | None = None,
    now: datetime | None = None,
) -> Report:
    """The Report of one export request. Customer ids are replaced by keyed pseudonyms (the key is required
    for the exports that carry them)."""
    options = dict(options or {})
    if export_type not in EXPORT_BUILDERS:
        raise ExportRequestError(
            f"unknown export type {export_type!r}; expected one of {', '.join(EXPORT_BUILDERS)}"
        )
    if needs_pseudonym_key(export_type, options) and pseudonym_key is None:
        raise ExportRequestError(f"{export_type} carries customer ids and needs a pseudonym key")
    now = _now(now)
    window = filters.window(now.date())
    title, sections = EXPORT_BUILDERS[export_type](wh, filters, window, options, pseudonym_key)
    return Report(
        title=title,
        subtitle=f"tenant {filters.tenant_id}",
        period_start=window[0],
        period_end=window[1],
        sections=sections,
        generated_at=now,
        metadata={"export_type": export_type, "filters": filters.to_json(), "options": options},
    )
