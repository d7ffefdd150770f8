"""Every mart for a day range without Dagster (tests, benchmarks): what main_job's mart assets do."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

from analytics_pipelines.marts import build as B
from analytics_pipelines.marts import reconcile
from analytics_pipelines.marts.projections import project
from analytics_pipelines.warehouse import Warehouse


def build_everything(wh: Warehouse, first: str, last: str, now: datetime, kpi_hours: int = 0,
                     incremental: bool = False) -> tuple[dict[str, reconcile.CheckOutcome], dict[str, float]]:
    """Build daily marts for first..last, then the whole-table marts (and `kpi_hours` hourly KPI snapshots
    ending with the last hour of `last`). `incremental`: the whole-table marts that can, update their
    previous rows (as a scheduled daily run does) instead of recomputing all of them (as the first run or
    a `full_refresh` does). Returns each mart's reconciliation outcome and seconds taken. Every staging and
    fact table is read once (Warehouse.shared_reads): the marts after the first take their columns from
    memory."""
    with wh.shared_reads():
        return _build_everything(wh, first, last, now, kpi_hours, incremental)


def _build_everything(wh: Warehouse, first: str, last: str, now: datetime, kpi_hours: int,
                      incremental: bool) -> tuple[dict[str, reconcile.CheckOutcome], dict[str, float]]:
    outcomes, seconds = {}, {}
    keys = [(d,) for d in B.days_between(first, last)]
    t = time.perf_counter()
    control = reconcile.control_totals(wh, first, last)
    wh.write_partitions("control_totals", control, ["day"], keys)
    seconds["control_totals"] = time.perf_counter() - t
    for mart in B.DAILY_MARTS:
        t = time.perf_counter()
        df = mart.build(wh, first, last)
        wh.write_partitions(mart.name, df, ["day"], keys)
        seconds[mart.name] = time.perf_counter() - t
        outcomes[mart.name] = reconcile.check_daily(mart.name, control, df)
    all_control = wh.read_table("control_totals")
    through = last
    t = time.perf_counter()
    previous = wh.read_table("sales_metrics") if incremental and "sales_metrics" in wh.tables() else None
    df = B.sales_metrics(wh, through, since=first, previous=previous)
    wh.replace_table("sales_metrics", df)
    seconds["sales_metrics"] = time.perf_counter() - t
    outcomes["sales_metrics"] = reconcile.check_totals("sales_metrics", all_control, df)
    t = time.perf_counter()
    df = B.event_performance(wh)
    wh.replace_table("event_performance", df)
    seconds["event_performance"] = time.perf_counter() - t
    outcomes["event_performance"] = reconcile.check_totals("event_performance", all_control, df)
    t = time.perf_counter()
    wh.replace_table("venue_seasonality", B.venue_seasonality(wh, through))
    seconds["venue_seasonality"] = time.perf_counter() - t
    t = time.perf_counter()
    va = B.fact_history(wh, "venue_analytics", ["tenant_id", "venue_id", "day", "net_revenue_cents"], through)
    proj = project(va, date.fromisoformat(through))
    wh.replace_table("revenue_projections", proj.projections)
    wh.replace_table("revenue_projection_backtest", proj.backtest)
    seconds["revenue_projections"] = time.perf_counter() - t
    t = time.perf_counter()
    snap = B.ticket_type_price_snapshot(wh, last)
    wh.write_partitions("ticket_type_price_snapshots", snap, ["day"], [(last,)])
    history = B.price_history(wh)
    wh.replace_table("price_history", history)
    wh.replace_table("event_price_summary", B.event_price_summary(history))
    seconds["price_history"] = time.perf_counter() - t
    outcomes["price_history"] = reconcile.check_price_history(wh, history)
    t = time.perf_counter()
    previous = wh.read_table("no_shows") if incremental and "no_shows" in wh.tables() else None
    result = B.no_shows(wh, now, previous)
    wh.replace_table("no_shows", result.rows)
    seconds["no_shows"] = time.perf_counter() - t
    outcomes["no_shows"] = reconcile.check_no_shows(wh, result, now)
    if kpi_hours:
        t = time.perf_counter()
        end = datetime.fromisoformat(last).replace(tzinfo=UTC) + timedelta(hours=23)
        kpi = B.kpi_snapshots(wh, [end - timedelta(hours=h) for h in range(kpi_hours)])
        wh.write_partitions("kpi_snapshots", kpi, ["hour_key"], [(k,) for k in kpi["hour_key"].unique().to_list()])
        seconds["kpi_snapshots"] = time.perf_counter() - t
    return outcomes, seconds
