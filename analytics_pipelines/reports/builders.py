"""Report builders over the marts (docs/marts.md): the daily venue report, the executive report for a week
(or any period, compared with the period before it); the export types are in reports/export_types.py. Pure
functions of a Warehouse; nothing here knows about Dagster or the ops tables."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl

from analytics_pipelines.reports.filters import require_tables
from analytics_pipelines.reports.model import ChartSpec, Report, Section
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
