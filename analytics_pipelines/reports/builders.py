"""Report builders over the marts (docs/marts.md): the daily venue report, the executive report for a week
(or any period, compared with the period before it), and the export types of the old service with real
data. Pure functions of a Warehouse; nothing here knows about Dagster or the ops tables."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl

from analytics_pipelines.privacy import key_id
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

TOP_EVENTS = 10
KPI_COLUMNS = [
    "tickets_sold",
    "orders",
    "gross_revenue_cents",
    "ticket_revenue_cents",
    "refunds_cents",
    "fees_cents",
    "tax_cents",
    "net_revenue_cents",
    "unique_customers",
    "events_active",
    "capacity_sold_pct",
    "avg_ticket_price_cents",
    "resale_sales",
    "resale_volume_cents",
]
#: summable venue_analytics columns (a week's total is their sum)
ADDITIVE = [
    "tickets_sold",
    "orders",
    "gross_revenue_cents",
    "ticket_revenue_cents",
    "refunds_cents",
    "fees_cents",
    "tax_cents",
    "net_revenue_cents",
    "resale_sales",
    "resale_volume_cents",
]
MONEY_FLOW = ["gross_revenue_cents", "refunds_cents", "fees_cents", "net_revenue_cents"]


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def _scope(tenant_id: str | None, venue_id: str) -> tuple[str, list]:
    if tenant_id:
        return "tenant_id = %s AND venue_id = %s", [tenant_id, venue_id]
    return "venue_id = %s", [venue_id]


def _days(first: date, last: date) -> pl.DataFrame:
    return pl.DataFrame({"day": pl.date_range(first, last, "1d", eager=True)})


def venue_name(wh: Warehouse, venue_id: str) -> str:
    """The venue's name from stg_venues, else its id."""
    if "stg_venues" in wh.tables():
        df = wh.read_table("stg_venues", "id = %s", [venue_id], ["name"])
        if df.height and df["name"][0]:
            return str(df["name"][0])
    return venue_id


def venues_with_activity(wh: Warehouse, first: date, last: date) -> pl.DataFrame:
    """(tenant_id, venue_id) of venues with a venue_analytics row in first..last: every venue that existed
    then (the mart zero-fills venues without sales), so each gets its report."""
    if "venue_analytics" not in wh.tables():
        return pl.DataFrame(schema={"tenant_id": pl.Utf8, "venue_id": pl.Utf8})
    df = wh.read_table("venue_analytics", "day >= %s AND day <= %s", [first, last], ["tenant_id", "venue_id"])
    return df.unique().sort(["tenant_id", "venue_id"])


def _event_names(wh: Warehouse, event_ids: list[str]) -> pl.DataFrame:
    schema = {"event_id": pl.Utf8, "event_name": pl.Utf8}
    if not event_ids or "event_performance" not in wh.tables():
        return pl.DataFrame(schema=schema)
    where = f"event_id IN ({', '.join(['%s'] * len(event_ids))})"
    return wh.read_table("event_performance", where, event_ids, ["event_id", "event_name"]).unique("event_id")


def _top_events(wh: Warehouse, ea: pl.DataFrame, n: int = TOP_EVENTS) -> pl.DataFrame:
    """event_analytics rows summed per event, the n best by gross revenue, with names."""
    top = (
        ea.group_by("event_id")
        .agg(
            pl.col(
                "tickets_sold", "orders", "gross_revenue_cents", "refunds_cents", "net_revenue_cents"
            ).sum(),
            pl.col("sell_through_pct").sort_by("day").last(),
        )
        .sort(["gross_revenue_cents", "event_id"], descending=[True, False])
        .head(n)
    )
    names = _event_names(wh, top["event_id"].to_list())
    return top.join(names, on="event_id", how="left").select(
        "event_id", pl.col("event_name").fill_null(pl.col("event_id")), pl.exclude("event_id", "event_name")
    )


def daily_venue_report(
    wh: Warehouse, venue_id: str, day: date, tenant_id: str | None = None, now: datetime | None = None
) -> Report:
    """KPIs (venue_analytics), sales by local hour (venue_analytics_hourly), revenue by channel and by
    category, and the day's top events (event_analytics) for one venue and UTC day."""
    require_tables(
        wh,
        "venue_analytics",
        "venue_analytics_hourly",
        "revenue_by_channel",
        "revenue_by_category",
        "event_analytics",
    )
    scope, params = _scope(tenant_id, venue_id)
    where, params = f"{scope} AND day = %s", [*params, day]
    kpi = wh.read_table("venue_analytics", where, params, ["day", *KPI_COLUMNS])
    kpi_note = (
        "No sales were recorded for this venue on this day." if int(kpi["orders"].sum() or 0) == 0 else ""
    )
    if kpi.height == 0:
        kpi = pl.DataFrame(
            [{"day": day, **{c: 0 for c in KPI_COLUMNS}}],
            schema={
                "day": pl.Date,
                **{c: (pl.Float64 if c.endswith("_pct") else pl.Int64) for c in KPI_COLUMNS},
            },
        )
    hourly = wh.read_table(
        "venue_analytics_hourly",
        where,
        params,
        ["local_hour", "tickets_sold", "orders", "gross_revenue_cents"],
    )
    hourly = (
        pl.DataFrame({"local_hour": pl.int_range(0, 24, eager=True).cast(hourly.schema["local_hour"])})
        .join(hourly.group_by("local_hour").agg(pl.all().sum()), on="local_hour", how="left")
        .fill_null(0)
        .sort("local_hour")
    )
    channels = wh.read_table(
        "revenue_by_channel",
        where,
        params,
        ["revenue_line", "source", "channel", "transactions", "tickets", *MONEY_FLOW],
    ).sort(["gross_revenue_cents", "revenue_line"], descending=[True, False])
    categories = wh.read_table(
        "revenue_by_category",
        where,
        params,
        ["category_name", "orders", "tickets", "gross_revenue_cents", "refunds_cents", "net_revenue_cents"],
    ).sort(["gross_revenue_cents", "category_name"], descending=[True, False])
    ea = wh.read_table(
        "event_analytics",
        where,
        params,
        [
            "event_id",
            "day",
            "tickets_sold",
            "orders",
            "gross_revenue_cents",
            "refunds_cents",
            "net_revenue_cents",
            "sell_through_pct",
        ],
    )
    name = venue_name(wh, venue_id)
    return Report(
        title="Daily venue report",
        subtitle=name,
        period_start=day,
        period_end=day,
        generated_at=_now(now),
        metadata={"report": "daily_venue", "venue_id": venue_id, "venue_name": name, "tenant_id": tenant_id},
        sections=(
            Section("Key figures", kpi, layout="kv", note=kpi_note),
            Section(
                "Sales by local hour",
                hourly,
                ChartSpec("bar", "local_hour", ("tickets_sold",), "Tickets sold by local hour"),
            ),
            Section("Revenue by channel", channels),
            Section("Revenue by category", categories),
            Section("Top events", _top_events(wh, ea)),
        ),
    )


def _change_pct(cur: int | float, prev: int | float) -> float | None:
    return None if not prev else round((cur - prev) / abs(prev) * 100, 1)


def executive_report(
    wh: Warehouse,
    venue_id: str,
    first: date,
    last: date,
    tenant_id: str | None = None,
    now: datetime | None = None,
    previous: tuple[date, date] | None = None,
) -> Report:
    """A venue's period (a week for the weekly executive report) against `previous` (default: the period of
    the same length just before it; a calendar month passes the previous calendar month): totals and changes,
    the daily trend, top events, and gross/refunds/fees/net by revenue line."""
    require_tables(wh, "venue_analytics", "revenue_by_channel", "event_analytics")
    if last < first:
        raise ValueError(f"period ends ({last}) before it starts ({first})")
    length = (last - first).days + 1
    prev_first, prev_last = previous or (first - timedelta(days=length), first - timedelta(days=1))
    if prev_last >= first or prev_last < prev_first:
        raise ValueError(f"the previous period {prev_first}..{prev_last} must end before {first}")
    scope, sparams = _scope(tenant_id, venue_id)
    va = wh.read_table(
        "venue_analytics",
        f"{scope} AND day >= %s AND day <= %s",
        [*sparams, prev_first, last],
        ["day", *ADDITIVE, "unique_customers"],
    )

    def totals(a: date, b: date, label: str) -> dict:
        part = va.filter(pl.col("day").is_between(a, b))
        return {
            "period": label,
            "first_day": a,
            "last_day": b,
            **{c: int(part[c].sum() or 0) for c in ADDITIVE},
        }

    rows = [totals(first, last, "current"), totals(prev_first, prev_last, "previous")]
    schema = {"period": pl.Utf8, "first_day": pl.Date, "last_day": pl.Date, **{c: pl.Int64 for c in ADDITIVE}}
    totals_df = pl.DataFrame(rows, schema=schema)
    change = pl.DataFrame(
        [{f"{c.removesuffix('_cents')}_change_pct": _change_pct(rows[0][c], rows[1][c]) for c in ADDITIVE}],
        schema={f"{c.removesuffix('_cents')}_change_pct": pl.Float64 for c in ADDITIVE},
    )
    trend = (
        _days(first, last)
        .join(
            va.filter(pl.col("day") >= first).select(
                "day",
                "tickets_sold",
                "orders",
                "gross_revenue_cents",
                "refunds_cents",
                "fees_cents",
                "net_revenue_cents",
            ),
            on="day",
            how="left",
        )
        .fill_null(0)
        .sort("day")
    )
    where, params = f"{scope} AND day >= %s AND day <= %s", [*sparams, first, last]
    ea = wh.read_table(
        "event_analytics",
        where,
        params,
        [
            "event_id",
            "day",
            "tickets_sold",
            "orders",
            "gross_revenue_cents",
            "refunds_cents",
            "net_revenue_cents",
            "sell_through_pct",
        ],
    )
    channels = (
        wh.read_table(
            "revenue_by_channel", where, params, ["revenue_line", "transactions", "tickets", *MONEY_FLOW]
        )
        .group_by("revenue_line")
        .agg(pl.all().sum())
        .sort(["gross_revenue_cents", "revenue_line"], descending=[True, False])
    )
    name = venue_name(wh, venue_id)
    kind = "Weekly executive report" if length == 7 else "Executive report"
    return Report(
        title=kind,
        subtitle=name,
        period_start=first,
        period_end=last,
        generated_at=_now(now),
        metadata={
            "report": "weekly_executive",
            "venue_id": venue_id,
            "venue_name": name,
            "tenant_id": tenant_id,
            "previous_period": {"start": prev_first.isoformat(), "end": prev_last.isoformat()},
        },
        sections=(
            Section("Totals vs previous period", totals_df),
            Section(
                "Change vs previous period",
                change,
                layout="kv",
                note="Percent change of each total; empty where the previous period had none.",
            ),
            Section(
                "Daily trend",
                trend,
                ChartSpec("line", "day", ("gross_revenue_cents", "net_revenue_cents"), "Revenue per day"),
            ),
            Section("Top events", _top_events(wh, ea)),
            Section("Refunds, fees and net by revenue line", channels),
        ),
    )


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


EXPORT_BUILDERS = {
    "analytics_report": _analytics_report,
    "customer_list": _customer_list,
    "transaction_history": _transaction_history,
    "event_summary": _event_summary,
    "financial_report": _financial_report,
    "raw_data": _raw_data,
}


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
