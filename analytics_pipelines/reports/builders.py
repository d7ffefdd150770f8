"""Report builders over the marts (docs/marts.md): the daily venue report, the executive report for a week
(or any period, compared with the period before it); the export types are in reports/export_types.py. Pure
functions of a Warehouse; nothing here knows about Dagster or the ops tables."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import polars as pl

from analytics_pipelines.registry.cubes import VENUE_ANALYTICS
from analytics_pipelines.reports.filters import require_tables
from analytics_pipelines.reports.model import ChartSpec, Report, Section
from analytics_pipelines.warehouse import Warehouse

TOP_EVENTS = 10
#: venue_analytics' measure columns (the query layer's cube lists the mart's columns once)
KPI_COLUMNS = [c for c in VENUE_ANALYTICS.columns if c not in ("tenant_id", "venue_id", "day")]
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


def _days(first: date, last: date) -> pl.DataFrame:
    return pl.DataFrame({"day": pl.date_range(first, last, "1d", eager=True)})


EVENT_COLUMNS = [
    "event_id",
    "day",
    "tickets_sold",
    "orders",
    "gross_revenue_cents",
    "refunds_cents",
    "net_revenue_cents",
    "sell_through_pct",
]
#: what the daily venue report reads from each mart (besides tenant_id and venue_id)
DAILY_TABLES = {
    "venue_analytics": ["day", *KPI_COLUMNS],
    "venue_analytics_hourly": ["local_hour", "tickets_sold", "orders", "gross_revenue_cents"],
    "revenue_by_channel": ["revenue_line", "source", "channel", "transactions", "tickets", *MONEY_FLOW],
    "revenue_by_category": [
        "category_name",
        "orders",
        "tickets",
        "gross_revenue_cents",
        "refunds_cents",
        "net_revenue_cents",
    ],
    "event_analytics": EVENT_COLUMNS,
}
#: what the executive report reads (venue_analytics over the previous period too)
EXECUTIVE_TABLES = {
    "venue_analytics": ["day", *ADDITIVE, "unique_customers"],
    "revenue_by_channel": ["revenue_line", "transactions", "tickets", *MONEY_FLOW],
    "event_analytics": EVENT_COLUMNS,
}


@dataclass(frozen=True)
class Marts:
    """The marts a report reads for one period, for one venue or for every venue at once: a batch of reports
    (every venue of a day) reads each mart once, not once per venue."""

    frames: dict[str, pl.DataFrame]
    event_names: pl.DataFrame
    venue_names: dict[str, str]

    def venue(self, table: str, tenant_id: str | None, venue_id: str) -> pl.DataFrame:
        df = self.frames[table]
        cond = pl.col("venue_id") == venue_id
        if tenant_id:
            cond = cond & (pl.col("tenant_id") == tenant_id)
        return df.filter(cond).drop("tenant_id", "venue_id")

    def venues(self) -> pl.DataFrame:
        """(tenant_id, venue_id) of every venue with a venue_analytics row in the period (the mart
        zero-fills venues without sales, so every venue that existed then gets its report)."""
        return (
            self.frames["venue_analytics"]
            .select("tenant_id", "venue_id")
            .unique()
            .sort(["tenant_id", "venue_id"])
        )


def _event_names(wh: Warehouse, event_ids: list[str], present: list[str] | None = None) -> pl.DataFrame:
    schema = {"event_id": pl.Utf8, "event_name": pl.Utf8}
    if not event_ids or "event_performance" not in (present if present is not None else wh.tables()):
        return pl.DataFrame(schema=schema)
    where = f"event_id IN ({', '.join(['%s'] * len(event_ids))})"
    return wh.read_table("event_performance", where, event_ids, ["event_id", "event_name"]).unique("event_id")


def load_marts(
    wh: Warehouse,
    tables: dict[str, list[str]],
    ranges: dict[str, tuple[date, date]],
    venue_id: str | None = None,
    tenant_id: str | None = None,
) -> Marts:
    """Each table's columns over its day range, for one venue (venue_id) or every venue; the names of the
    events and venues in them."""
    scope, sparams = ("", [])
    if venue_id is not None:
        scope, sparams = (
            ("tenant_id = %s AND venue_id = %s AND ", [tenant_id, venue_id])
            if tenant_id
            else ("venue_id = %s AND ", [venue_id])
        )
    frames = {
        t: wh.read_table(
            t, f"{scope}day >= %s AND day <= %s", [*sparams, *ranges[t]], ["tenant_id", "venue_id", *cols]
        )
        for t, cols in tables.items()
    }
    present = wh.tables()
    event_ids = (
        frames["event_analytics"]["event_id"].unique().to_list() if "event_analytics" in frames else []
    )
    names = _event_names(wh, event_ids, present)
    venue_ids = (
        [venue_id] if venue_id is not None else frames["venue_analytics"]["venue_id"].unique().to_list()
    )
    venue_names: dict[str, str] = {}
    if venue_ids and "stg_venues" in present:
        where = f"id IN ({', '.join(['%s'] * len(venue_ids))})"
        v = wh.read_table("stg_venues", where, venue_ids, ["id", "name"]).filter(
            pl.col("name").is_not_null() & (pl.col("name") != "")
        )
        venue_names = dict(zip(v["id"].to_list(), v["name"].cast(pl.Utf8).to_list(), strict=True))
    return Marts(frames, names, venue_names)


def venue_name(wh: Warehouse, venue_id: str) -> str:
    """The venue's name from stg_venues, else its id."""
    if "stg_venues" in wh.tables():
        df = wh.read_table("stg_venues", "id = %s", [venue_id], ["name"])
        if df.height and df["name"][0]:
            return str(df["name"][0])
    return venue_id


def _top_events(ea: pl.DataFrame, names: pl.DataFrame, n: int = TOP_EVENTS) -> pl.DataFrame:
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
    return top.join(names, on="event_id", how="left").select(
        "event_id", pl.col("event_name").fill_null(pl.col("event_id")), pl.exclude("event_id", "event_name")
    )


def daily_venue_report(
    wh: Warehouse, venue_id: str, day: date, tenant_id: str | None = None, now: datetime | None = None
) -> Report:
    """KPIs (venue_analytics), sales by local hour (venue_analytics_hourly), revenue by channel and by
    category, and the day's top events (event_analytics) for one venue and UTC day."""
    require_tables(wh, *DAILY_TABLES)
    marts = load_marts(wh, DAILY_TABLES, dict.fromkeys(DAILY_TABLES, (day, day)), venue_id, tenant_id)
    return daily_venue_report_from(marts, venue_id, day, tenant_id, now)


def daily_venue_reports(
    wh: Warehouse, day: date, now: datetime | None = None
) -> Iterator[tuple[str, str, Report]]:
    """(tenant_id, venue_id, report) for every venue of the day, reading each mart once for all of them."""
    require_tables(wh, *DAILY_TABLES)
    marts = load_marts(wh, DAILY_TABLES, dict.fromkeys(DAILY_TABLES, (day, day)))
    for tenant_id, venue_id in marts.venues().iter_rows():
        yield tenant_id, venue_id, daily_venue_report_from(marts, venue_id, day, tenant_id, now)


def daily_venue_report_from(
    marts: Marts, venue_id: str, day: date, tenant_id: str | None, now: datetime | None = None
) -> Report:
    """The daily venue report from loaded marts (pure)."""
    kpi = marts.venue("venue_analytics", tenant_id, venue_id)
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
    hourly = marts.venue("venue_analytics_hourly", tenant_id, venue_id)
    hourly = (
        pl.DataFrame({"local_hour": pl.int_range(0, 24, eager=True).cast(hourly.schema["local_hour"])})
        .join(hourly.group_by("local_hour").agg(pl.all().sum()), on="local_hour", how="left")
        .fill_null(0)
        .sort("local_hour")
    )
    channels = marts.venue("revenue_by_channel", tenant_id, venue_id).sort(
        ["gross_revenue_cents", "revenue_line"], descending=[True, False]
    )
    categories = marts.venue("revenue_by_category", tenant_id, venue_id).sort(
        ["gross_revenue_cents", "category_name"], descending=[True, False]
    )
    ea = marts.venue("event_analytics", tenant_id, venue_id)
    name = marts.venue_names.get(venue_id, venue_id)
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
            Section("Top events", _top_events(ea, marts.event_names)),
        ),
    )


def _change_pct(cur: int | float, prev: int | float) -> float | None:
    return None if not prev else round((cur - prev) / abs(prev) * 100, 1)


def _periods(first: date, last: date, previous: tuple[date, date] | None) -> tuple[int, date, date]:
    if last < first:
        raise ValueError(f"period ends ({last}) before it starts ({first})")
    length = (last - first).days + 1
    prev_first, prev_last = previous or (first - timedelta(days=length), first - timedelta(days=1))
    if prev_last >= first or prev_last < prev_first:
        raise ValueError(f"the previous period {prev_first}..{prev_last} must end before {first}")
    return length, prev_first, prev_last


def _executive_ranges(first: date, last: date, prev_first: date) -> dict[str, tuple[date, date]]:
    return {
        "venue_analytics": (prev_first, last),
        "revenue_by_channel": (first, last),
        "event_analytics": (first, last),
    }


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
    require_tables(wh, *EXECUTIVE_TABLES)
    _, prev_first, _ = _periods(first, last, previous)
    marts = load_marts(wh, EXECUTIVE_TABLES, _executive_ranges(first, last, prev_first), venue_id, tenant_id)
    return executive_report_from(marts, venue_id, first, last, tenant_id, now, previous)


def executive_reports(
    wh: Warehouse, first: date, last: date, now: datetime | None = None
) -> Iterator[tuple[str, str, Report]]:
    """(tenant_id, venue_id, report) for every venue with a venue_analytics row in first..last, each mart
    read once for all of them."""
    require_tables(wh, *EXECUTIVE_TABLES)
    _, prev_first, _ = _periods(first, last, None)
    marts = load_marts(wh, EXECUTIVE_TABLES, _executive_ranges(first, last, prev_first))
    current = marts.frames["venue_analytics"].filter(pl.col("day") >= first)
    for tenant_id, venue_id in (
        current.select("tenant_id", "venue_id").unique().sort(["tenant_id", "venue_id"]).iter_rows()
    ):
        yield tenant_id, venue_id, executive_report_from(marts, venue_id, first, last, tenant_id, now)


def executive_report_from(
    marts: Marts,
    venue_id: str,
    first: date,
    last: date,
    tenant_id: str | None,
    now: datetime | None = None,
    previous: tuple[date, date] | None = None,
) -> Report:
    """The executive report from loaded marts (pure)."""
    length, prev_first, prev_last = _periods(first, last, previous)
    va = marts.venue("venue_analytics", tenant_id, venue_id)

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
    ea = marts.venue("event_analytics", tenant_id, venue_id)
    channels = (
        marts.venue("revenue_by_channel", tenant_id, venue_id)
        .group_by("revenue_line")
        .agg(pl.all().sum())
        .sort(["gross_revenue_cents", "revenue_line"], descending=[True, False])
    )
    name = marts.venue_names.get(venue_id, venue_id)
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
            Section("Top events", _top_events(ea, marts.event_names)),
            Section("Refunds, fees and net by revenue line", channels),
        ),
    )
