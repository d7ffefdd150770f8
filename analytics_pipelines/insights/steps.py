"""The `venue_insights` builder and check: every rule of rules.py and events.py over the marts, as of each
partition day. A mart that is not materialized yet only silences its rules (logged), it does not fail."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import polars as pl

from analytics_pipelines.insights import events, rules
from analytics_pipelines.insights.findings import SEVERITIES, TYPES, frame
from analytics_pipelines.marts.reconcile import CheckOutcome
from analytics_pipelines.registry.context import BuildContext, Built
from analytics_pipelines.warehouse.base import Warehouse

#: days of daily history read (52 weeks + 13 for year-over-year scoring, + a week of slack)
HISTORY_DAYS = 7 * 66


def _read(wh: Warehouse, table: str, sql: str, params: list, log) -> pl.DataFrame | None:
    if table not in wh.tables():
        log.info(f"venue_insights: {table} is not materialized; its findings are skipped")
        return None
    return wh.read(sql, params)


def findings_as_of(wh: Warehouse, as_of: date, now: datetime, log) -> pl.DataFrame:
    """Every finding as of the end of `as_of` (UTC day)."""
    rows: list[dict] = []
    lo = as_of - timedelta(days=HISTORY_DAYS)
    daily = _read(
        wh,
        "venue_analytics",
        "SELECT tenant_id, venue_id, day, tickets_sold, net_revenue_cents FROM venue_analytics "
        "WHERE day BETWEEN %s AND %s",
        [lo, as_of],
        log,
    )
    if daily is not None:
        rows += rules.sales_changes(daily, as_of)
    ev_daily = _read(
        wh,
        "event_analytics",
        "SELECT event_id, day, orders, tickets_sold FROM event_analytics WHERE day <= %s",
        [as_of],
        log,
    )
    evs = _read(
        wh,
        "event_performance",
        "SELECT tenant_id, venue_id, event_id, event_name, starts_at, status, capacity FROM event_performance",
        [],
        log,
    )
    if ev_daily is not None and evs is not None:
        rows += events.event_findings(ev_daily, evs, as_of)
    since = datetime.combine(as_of - timedelta(days=events.RECENT), time(), UTC)
    for table, kind in (("kpi_anomalies", "kpi_anomaly"), ("velocity_anomalies", "velocity_anomaly")):
        a = _read(
            wh,
            table,
            f"SELECT tenant_id, venue_id, metric, hour, value, baseline, score, severity, direction "
            f"FROM {table} WHERE hour >= %s",
            [since],
            log,
        )
        if a is not None:
            rows += events.anomaly_findings(a, kind, as_of)
    recs = _read(wh, "pricing_recommendations", "SELECT * FROM pricing_recommendations", [], log)
    if recs is not None and as_of == (now - timedelta(seconds=1)).date():
        # recommendations are a snapshot of the run's time: only the partition of the day that just ended
        rows += events.pricing_findings(recs, as_of, now)
    rfm = _read(
        wh,
        "customer_rfm_scores",
        "SELECT tenant_id, venue_id, as_of, user_id, segment FROM customer_rfm_scores "
        "WHERE scope = 'venue' AND as_of IN (%s, %s, %s)",
        [as_of, as_of - timedelta(days=7), as_of - timedelta(days=events.SHIFT_DAYS)],
        log,
    )
    if rfm is not None:
        rows += events.churn_findings(rfm, as_of)
        rows += events.segment_findings(rfm, as_of)
    return frame(rows).unique("insight_id", keep="first", maintain_order=True)


def venue_insights(ctx: BuildContext) -> pl.DataFrame:
    out = [
        findings_as_of(ctx.wh, date.fromisoformat(k), ctx.now, ctx.log)
        for k in ctx.partition_keys
        if date.fromisoformat(k) < ctx.now.date() + timedelta(days=1)
    ]
    return pl.concat(out) if out else frame([])


def check_venue_insights(ctx: BuildContext, built: Built) -> CheckOutcome:
    """One row per id and day; known type and severity; a sentence, evidence and a query on every row."""
    f = built.frames["venue_insights"]
    bad = f.filter(
        ~pl.col("type").is_in(list(TYPES))
        | ~pl.col("severity").is_in(list(SEVERITIES))
        | pl.col("sentence").is_null()
        | pl.col("evidence").is_null()
        | pl.col("query").is_null()
    )
    dup = f.height - f.select("as_of", "insight_id").unique().height
    return CheckOutcome(
        bad.height == 0 and dup == 0,
        {"findings": f.height, "invalid": bad.height, "duplicates": dup},
        differences=bad if bad.height else None,
    )
