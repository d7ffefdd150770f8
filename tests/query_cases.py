"""Query-layer requests and the hand-written SQL each must equal (tests/test_query_layer.py). `who`: "admin"
(the whole first tenant) or "venue" (its first venue's token); hand SQL takes %s for the tenant, then the
venue when `who` is "venue"; `ordered`: compare in order (else as sorted lists)."""

from __future__ import annotations

from dataclasses import dataclass

R = ["2026-10-12", "2026-10-31"]
IN_R = "day >= DATE '2026-10-12' AND day <= DATE '2026-10-31'"


@dataclass
class Case:
    id: str
    request: dict
    sql: str
    who: str = "admin"
    ordered: bool = False


def td(dimension: str, granularity: str | None = None, date_range=R) -> dict:
    return {"dimension": dimension, "granularity": granularity, "date_range": date_range}


VA = "venue_analytics"
RBC = "revenue_by_channel"
CAT = "revenue_by_category"
EA = "event_analytics"
EP = "event_performance"
KPI = "kpi_snapshots"
SM = "sales_metrics"
RFM = "customer_rfm_scores"
SEG = "customer_segments"
CF = "conversion_funnel"
FO = "fct_orders"

CASES = [
    Case(
        "va_totals",
        {
            "measures": [f"{VA}.gross_revenue", f"{VA}.net_revenue", f"{VA}.refunds", f"{VA}.tickets_sold"],
            "time_dimension": td(f"{VA}.day"),
        },
        f"SELECT sum(gross_revenue_cents), sum(net_revenue_cents), sum(refunds_cents), sum(tickets_sold) FROM {VA} WHERE tenant_id = %s AND {IN_R}",
    ),
    Case(
        "va_ratios_by_venue",
        {
            "measures": [f"{VA}.gross_revenue", f"{VA}.average_order_value", f"{VA}.refund_rate"],
            "dimensions": [f"{VA}.venue"],
            "time_dimension": td(f"{VA}.day"),
        },
        f"SELECT venue_id, sum(gross_revenue_cents), sum(gross_revenue_cents) * 1.0 / nullif(sum(orders), 0), "
        f"100.0 * sum(refunds_cents) / nullif(sum(gross_revenue_cents), 0) FROM {VA} WHERE tenant_id = %s AND {IN_R} GROUP BY venue_id",
    ),
    Case(
        "va_weekly",
        {"measures": [f"{VA}.gross_revenue", f"{VA}.orders"], "time_dimension": td(f"{VA}.day", "week")},
        f"SELECT CAST(date_trunc('week', day) AS DATE) AS w, sum(gross_revenue_cents), sum(orders) FROM {VA} "
        f"WHERE tenant_id = %s AND {IN_R} GROUP BY 1",
    ),
    Case(
        "va_monthly_ticket_price_venue_token",
        {"measures": [f"{VA}.average_ticket_price"], "time_dimension": td(f"{VA}.day", "month")},
        f"SELECT CAST(date_trunc('month', day) AS DATE), sum(ticket_revenue_cents) * 1.0 / nullif(sum(tickets_sold), 0) "
        f"FROM {VA} WHERE tenant_id = %s AND venue_id = %s AND {IN_R} GROUP BY 1",
        who="venue",
    ),
    Case(
        "va_days_with_a_venue_filter",
        {
            "measures": [f"{VA}.orders", f"{VA}.days"],
            "filters": [{"member": f"{VA}.venue", "operator": "equals", "values": ["{venue}"]}],
            "time_dimension": td(f"{VA}.day"),
        },
        f"SELECT sum(orders), count(*) FROM {VA} WHERE tenant_id = %s AND venue_id = %s AND {IN_R}",
        who="admin-venue-filter",
    ),
    Case(
        "va_having_a_measure_filter",
        {
            "measures": [f"{VA}.gross_revenue"],
            "dimensions": [f"{VA}.venue"],
            "time_dimension": td(f"{VA}.day", "day"),
            "filters": [{"member": f"{VA}.gross_revenue", "operator": "gt", "values": [1_000_000]}],
            "limit": 1000,
        },
        f"SELECT day, venue_id, sum(gross_revenue_cents) FROM {VA} WHERE tenant_id = %s AND {IN_R} GROUP BY 1, 2 HAVING sum(gross_revenue_cents) > 1000000",
    ),
    Case(
        "rbc_by_channel",
        {
            "measures": [f"{RBC}.gross_revenue", f"{RBC}.refund_rate", f"{RBC}.average_transaction_value"],
            "dimensions": [f"{RBC}.channel"],
            "time_dimension": td(f"{RBC}.day"),
        },
        f"SELECT channel, sum(gross_revenue_cents), 100.0 * sum(refunds_cents) / nullif(sum(gross_revenue_cents), 0), "
        f"sum(gross_revenue_cents) * 1.0 / nullif(sum(transactions), 0) FROM {RBC} WHERE tenant_id = %s AND {IN_R} GROUP BY 1",
    ),
    Case(
        "rbc_primary_lines",
        {
            "measures": [f"{RBC}.tickets"],
            "dimensions": [f"{RBC}.revenue_line"],
            "filters": [{"member": f"{RBC}.source", "operator": "equals", "values": ["primary"]}],
            "time_dimension": td(f"{RBC}.day"),
        },
        f"SELECT revenue_line, sum(tickets) FROM {RBC} WHERE tenant_id = %s AND {IN_R} AND source = 'primary' GROUP BY 1",
    ),
    Case(
        "rbc_not_web_starting_primary",
        {
            "measures": [f"{RBC}.transactions", f"{RBC}.net_revenue"],
            "dimensions": [f"{RBC}.channel"],
            "filters": [
                {"member": f"{RBC}.channel", "operator": "notEquals", "values": ["web"]},
                {"member": f"{RBC}.revenue_line", "operator": "startsWith", "values": ["primary:"]},
            ],
            "time_dimension": td(f"{RBC}.day"),
        },
        f"SELECT channel, sum(transactions), sum(net_revenue_cents) FROM {RBC} WHERE tenant_id = %s AND {IN_R} "
        "AND channel <> 'web' AND revenue_line LIKE 'primary:%%' GROUP BY 1",
    ),
    Case(
        "rbc_venue_token",
        {
            "measures": [f"{RBC}.gross_revenue"],
            "dimensions": [f"{RBC}.revenue_line"],
            "time_dimension": td(f"{RBC}.day"),
        },
        f"SELECT revenue_line, sum(gross_revenue_cents) FROM {RBC} WHERE tenant_id = %s AND venue_id = %s AND {IN_R} GROUP BY 1",
        who="venue",
    ),
    Case(
        "rbc_dimensions_only",
        {"dimensions": [f"{RBC}.source", f"{RBC}.channel"], "time_dimension": td(f"{RBC}.day")},
        f"SELECT DISTINCT source, channel FROM {RBC} WHERE tenant_id = %s AND {IN_R}",
    ),
    Case(
        "category_names",
        {
            "measures": [f"{CAT}.orders", f"{CAT}.average_order_value"],
            "dimensions": [f"{CAT}.category_name"],
            "time_dimension": td(f"{CAT}.day"),
        },
        f"SELECT category_name, sum(orders), sum(gross_revenue_cents) * 1.0 / nullif(sum(orders), 0) FROM {CAT} "
        f"WHERE tenant_id = %s AND {IN_R} GROUP BY 1",
    ),
    Case(
        "category_daily_venue_token",
        {
            "measures": [f"{CAT}.net_revenue", f"{CAT}.average_order_value", f"{CAT}.refund_rate"],
            "dimensions": [f"{CAT}.category"],
            "time_dimension": td(f"{CAT}.day", "day"),
        },
        f"SELECT day, category_id, sum(net_revenue_cents), sum(gross_revenue_cents) * 1.0 / nullif(sum(orders), 0), "
        f"100.0 * sum(refunds_cents) / nullif(sum(gross_revenue_cents), 0) FROM {CAT} WHERE tenant_id = %s AND venue_id = %s AND {IN_R} GROUP BY 1, 2",
        who="venue",
    ),
    Case(
        "events_daily_sales",
        {
            "measures": [f"{EA}.tickets_sold", f"{EA}.refund_rate"],
            "dimensions": [f"{EA}.event"],
            "time_dimension": td(f"{EA}.day"),
        },
        f"SELECT event_id, sum(tickets_sold), 100.0 * sum(refunds_cents) / nullif(sum(gross_revenue_cents), 0) FROM {EA} "
        f"WHERE tenant_id = %s AND {IN_R} GROUP BY 1",
    ),
    Case(
        "events_joined_names",
        {
            "measures": [f"{EA}.gross_revenue"],
            "dimensions": [f"{EP}.event_name"],
            "time_dimension": td(f"{EA}.day"),
        },
        f"SELECT p.event_name, sum(e.gross_revenue_cents) FROM {EA} e LEFT JOIN {EP} p ON p.tenant_id = e.tenant_id "
        f"AND p.event_id = e.event_id WHERE e.tenant_id = %s AND e.{IN_R} GROUP BY 1",
    ),
    Case(
        "events_joined_category_filter",
        {
            "measures": [f"{EA}.orders"],
            "dimensions": [f"{EP}.category_name"],
            "filters": [{"member": f"{EP}.category_name", "operator": "contains", "values": ["on"]}],
            "time_dimension": td(f"{EA}.day", "week"),
        },
        f"SELECT CAST(date_trunc('week', e.day) AS DATE), p.category_name, sum(e.orders) FROM {EA} e JOIN {EP} p ON p.tenant_id = e.tenant_id "
        f"AND p.event_id = e.event_id WHERE e.tenant_id = %s AND e.{IN_R} AND p.category_name LIKE '%%on%%' GROUP BY 1, 2",
    ),
    Case(
        "event_performance_by_category",
        {
            "measures": [f"{EP}.events", f"{EP}.capacity_utilization", f"{EP}.revenue_per_ticket"],
            "dimensions": [f"{EP}.category_name"],
        },
        f"SELECT category_name, count(*), 100.0 * sum(tickets_sold) / nullif(sum(capacity), 0), "
        f"sum(gross_revenue_cents) * 1.0 / nullif(sum(tickets_sold), 0) FROM {EP} WHERE tenant_id = %s GROUP BY 1",
    ),
    Case(
        "event_performance_top10_by_month",
        {
            "measures": [f"{EP}.events", f"{EP}.gross_revenue"],
            "filters": [{"member": f"{EP}.is_top_10", "operator": "equals", "values": ["true"]}],
            "time_dimension": td(f"{EP}.starts_at", "month", ["2026-10-31", "2026-11-30"]),
        },
        f"SELECT date_trunc('month', starts_at), count(*), sum(gross_revenue_cents) FROM {EP} WHERE tenant_id = %s AND is_top_10 "
        "AND starts_at >= TIMESTAMPTZ '2026-10-31 00:00:00+00' AND starts_at < TIMESTAMPTZ '2026-12-01 00:00:00+00' GROUP BY 1",
    ),
    Case(
        "kpi_tenant_hourly_revenue",
        {
            "measures": [f"{KPI}.value_avg", f"{KPI}.value_max"],
            "filters": [
                {"member": f"{KPI}.metric", "operator": "equals", "values": ["hourly_revenue_cents"]},
                {"member": f"{KPI}.venue", "operator": "notSet"},
            ],
            "time_dimension": td(f"{KPI}.snapshot_hour", "hour", ["2026-10-31", "2026-10-31"]),
        },
        f"SELECT snapshot_hour, avg(value), max(value) FROM {KPI} WHERE tenant_id = %s AND venue_id IS NULL AND metric = 'hourly_revenue_cents' "
        "AND snapshot_hour >= TIMESTAMPTZ '2026-10-31 00:00:00+00' AND snapshot_hour < TIMESTAMPTZ '2026-11-01 00:00:00+00' GROUP BY 1",
    ),
    Case(
        "kpi_conditional_measure_by_venue",
        {
            "measures": [f"{KPI}.hourly_revenue", f"{KPI}.snapshots"],
            "dimensions": [f"{KPI}.venue"],
            "time_dimension": td(f"{KPI}.snapshot_hour", "day", ["2026-10-30", "2026-10-31"]),
        },
        f"SELECT CAST(date_trunc('day', snapshot_hour) AS TIMESTAMPTZ), venue_id, sum(CASE WHEN metric = 'hourly_revenue_cents' THEN value END), count(*) FROM {KPI} "
        "WHERE tenant_id = %s AND snapshot_hour >= TIMESTAMPTZ '2026-10-30 00:00:00+00' AND snapshot_hour < TIMESTAMPTZ '2026-11-01 00:00:00+00' GROUP BY 1, 2",
    ),
    Case(
        "sales_weekly_rows",
        {
            "measures": [f"{SM}.gross_revenue", f"{SM}.orders"],
            "time_dimension": td(f"{SM}.period_start", "week"),
        },
        f"SELECT date_trunc('week', period_start), sum(gross_revenue_cents), sum(orders) FROM {SM} WHERE tenant_id = %s AND granularity = 'week' "
        "AND period_start >= TIMESTAMPTZ '2026-10-12 00:00:00+00' AND period_start < TIMESTAMPTZ '2026-11-01 00:00:00+00' GROUP BY 1",
    ),
    Case(
        "sales_quarter_from_months",
        {
            "measures": [f"{SM}.tickets_sold", f"{SM}.average_ticket_price"],
            "time_dimension": td(f"{SM}.period_start", "quarter", ["2026-10-01", "2026-10-31"]),
        },
        f"SELECT date_trunc('quarter', period_start), sum(tickets_sold), sum(gross_revenue_cents) * 1.0 / nullif(sum(tickets_sold), 0) FROM {SM} "
        "WHERE tenant_id = %s AND granularity = 'month' AND period_start >= TIMESTAMPTZ '2026-10-01 00:00:00+00' "
        "AND period_start < TIMESTAMPTZ '2026-11-01 00:00:00+00' GROUP BY 1",
    ),
    Case(
        "sales_hourly_venue_token",
        {
            "measures": [f"{SM}.average_order_value"],
            "time_dimension": td(f"{SM}.period_start", "hour", ["2026-10-30", "2026-10-31"]),
        },
        f"SELECT period_start, sum(gross_revenue_cents) * 1.0 / nullif(sum(orders), 0) FROM {SM} WHERE tenant_id = %s AND venue_id = %s "
        "AND granularity = 'hour' AND period_start >= TIMESTAMPTZ '2026-10-30 00:00:00+00' AND period_start < TIMESTAMPTZ '2026-11-01 00:00:00+00' GROUP BY 1",
        who="venue",
    ),
    Case(
        "rfm_customers_by_segment",
        {
            "measures": [f"{RFM}.customers", f"{RFM}.monetary"],
            "dimensions": [f"{RFM}.segment"],
            "time_dimension": td(f"{RFM}.as_of", "day", ["2026-10-31", "2026-10-31"]),
        },
        f"SELECT as_of, segment, count(DISTINCT user_id), sum(monetary_cents) FROM {RFM} WHERE tenant_id = %s AND scope = 'venue' "
        "AND as_of = DATE '2026-10-31' GROUP BY 1, 2",
    ),
    Case(
        "rfm_weekly_recent_customers",
        {
            "measures": [
                f"{RFM}.avg_recency_days",
                f"{RFM}.customers",
                f"{RFM}.customer_venues",
                f"{RFM}.monetary_per_customer_venue",
            ],
            "filters": [{"member": f"{RFM}.r_score", "operator": "gte", "values": ["4"]}],
            "time_dimension": td(f"{RFM}.as_of", "week"),
        },
        f"SELECT CAST(date_trunc('week', as_of) AS DATE), avg(recency_days), count(DISTINCT user_id), count(*), sum(monetary_cents) * 1.0 / count(*) "
        f"FROM {RFM} WHERE tenant_id = %s AND scope = 'venue' AND r_score >= 4 AND as_of >= DATE '2026-10-12' AND as_of <= DATE '2026-10-31' GROUP BY 1",
    ),
    Case(
        "segments",
        {
            "measures": [
                f"{SEG}.customers",
                f"{SEG}.revenue",
                f"{SEG}.average_order_value",
                f"{SEG}.orders_per_customer",
            ],
            "dimensions": [f"{SEG}.segment"],
        },
        f"SELECT segment, sum(customers), sum(revenue_cents), sum(revenue_cents) * 1.0 / nullif(sum(orders), 0), "
        f"sum(orders) * 1.0 / nullif(sum(customers), 0) FROM {SEG} WHERE tenant_id = %s AND scope = 'venue' GROUP BY 1",
    ),
    Case(
        "funnel_conversion_by_channel",
        {
            "measures": [f"{CF}.sessions", f"{CF}.purchases", f"{CF}.conversion_rate"],
            "dimensions": [f"{CF}.channel"],
            "time_dimension": td(f"{CF}.day"),
        },
        f"SELECT channel, sum(sessions), sum(purchases), sum(purchases) * 1.0 / nullif(sum(sessions), 0) FROM {CF} WHERE tenant_id = %s AND {IN_R} GROUP BY 1",
    ),
    Case(
        "ordered_page",
        {
            "measures": [f"{VA}.gross_revenue"],
            "dimensions": [f"{VA}.venue"],
            "time_dimension": td(f"{VA}.day", "day"),
            "order": {f"{VA}.gross_revenue": "desc"},
            "limit": 5,
            "offset": 3,
        },
        f"SELECT day, venue_id, sum(gross_revenue_cents) AS g FROM {VA} WHERE tenant_id = %s AND {IN_R} GROUP BY 1, 2 "
        "ORDER BY g DESC, day, venue_id LIMIT 5 OFFSET 3",
        ordered=True,
    ),
    Case(
        "orders_by_channel",
        {
            "measures": [
                f"{FO}.orders",
                f"{FO}.customers",
                f"{FO}.average_order_value",
                f"{FO}.tickets_per_order",
            ],
            "dimensions": [f"{FO}.channel"],
            "time_dimension": td(f"{FO}.day"),
        },
        f"SELECT channel, count(*), count(DISTINCT user_id), sum(gross_revenue_cents) * 1.0 / count(*), sum(tickets) * 1.0 / count(*) "
        f"FROM {FO} WHERE tenant_id = %s AND {IN_R} GROUP BY 1",
    ),
    Case(
        "orders_weekly_buyers_venue_token",
        {
            "measures": [f"{FO}.customers", f"{FO}.orders_per_customer"],
            "filters": [{"member": f"{FO}.status", "operator": "notEquals", "values": ["refunded"]}],
            "time_dimension": td(f"{FO}.day", "week"),
        },
        f"SELECT CAST(date_trunc('week', day) AS DATE), count(DISTINCT user_id), count(*) * 1.0 / count(DISTINCT user_id) FROM {FO} "
        f"WHERE tenant_id = %s AND venue_id = %s AND status <> 'refunded' AND {IN_R} GROUP BY 1",
        who="venue",
    ),
    Case(
        "orders_by_hour_with_event_names",
        {
            "measures": [f"{FO}.gross_revenue"],
            "dimensions": [f"{EP}.event_name"],
            "time_dimension": td(f"{FO}.recognized_at", "hour", ["2026-10-30", "2026-10-31"]),
        },
        f"SELECT date_trunc('hour', o.recognized_at), p.event_name, sum(o.gross_revenue_cents) FROM {FO} o LEFT JOIN {EP} p ON p.tenant_id = o.tenant_id "
        "AND p.event_id = o.event_id WHERE o.tenant_id = %s AND o.recognized_at >= TIMESTAMPTZ '2026-10-30 00:00:00+00' "
        "AND o.recognized_at < TIMESTAMPTZ '2026-11-01 00:00:00+00' GROUP BY 1, 2",
    ),
]
