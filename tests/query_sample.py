"""The marts the query layer declares cubes on that tests/api_sample.py does not write: revenue_by_category,
event_analytics, customer_rfm_scores, customer_segments and conversion_funnel (and, by metrics_sample.py,
custom_metrics and sales_velocity), for the same tenants, venues,
events and days (deterministic, the columns of docs/marts.md, docs/customers.md and docs/behavior.md).
The customer marts also hold tenant-scope rows (venue_id NULL), which the cubes' fixed `scope = 'venue'` must
leave out."""

from __future__ import annotations

import uuid
from datetime import timedelta

import numpy as np
import polars as pl
from api_sample import SampleMarts
from metrics_sample import build_metric_marts

from analytics_pipelines.registry.cubes_customers import SEGMENTS

CATEGORIES = {
    "Concert": "c0000000-0000-4000-8000-000000000001",
    "Sports": "c0000000-0000-4000-8000-000000000002",
    "Theatre": "c0000000-0000-4000-8000-000000000003",
}
FUNNEL_CHANNELS = ("organic", "social", "direct")
DEVICES = ("desktop", "mobile")


def build_query_marts(wh, marts: SampleMarts, seed: int = 11, rfm_days: int = 3) -> None:
    rng = np.random.default_rng(seed)
    days = [marts.first_day + timedelta(days=i) for i in range((marts.last_day - marts.first_day).days + 1)]
    keys = [(d.isoformat(),) for d in days]
    venues = [(t, v) for t, vs in marts.tenants.items() for v in vs]

    # revenue_by_category (daily)
    rows = [(t, v, d, cid, name) for t, v in venues for d in days for name, cid in CATEGORIES.items()]
    n = len(rows)
    g = rng.integers(0, 400_000, n)
    rf = (g * rng.uniform(0, 0.08, n)).astype(np.int64)
    orders = rng.integers(0, 60, n)
    orders[::7] = 0  # days without orders: AOV must be NULL there, not an error
    rc = pl.DataFrame(
        rows, orient="row", schema=["tenant_id", "venue_id", "day", "category_id", "category_name"]
    ).with_columns(
        tickets=pl.Series(orders * 2, dtype=pl.Int64),
        orders=pl.Series(orders, dtype=pl.Int64),
        gross_revenue_cents=pl.Series(np.where(orders == 0, 0, g), dtype=pl.Int64),
        refunds_cents=pl.Series(np.where(orders == 0, 0, rf), dtype=pl.Int64),
    )
    rc = rc.with_columns(net_revenue_cents=pl.col("gross_revenue_cents") - pl.col("refunds_cents"))
    wh.write_partitions("revenue_by_category", rc, ["day"], keys)

    # event_analytics (daily)
    rows = [(t, v, e, d) for t, v in venues for e in marts.events[v] for d in days]
    n = len(rows)
    tickets = rng.integers(0, 50, n)
    g = tickets * rng.integers(2_000, 8_000, n)
    rf = (g * rng.uniform(0, 0.1, n)).astype(np.int64)
    ea = pl.DataFrame(rows, orient="row", schema=["tenant_id", "venue_id", "event_id", "day"]).with_columns(
        tickets_sold=pl.Series(tickets, dtype=pl.Int64),
        orders=pl.Series((tickets + 1) // 2, dtype=pl.Int64),
        gross_revenue_cents=pl.Series(g, dtype=pl.Int64),
        refunds_cents=pl.Series(rf, dtype=pl.Int64),
        net_revenue_cents=pl.Series(g - rf, dtype=pl.Int64),
        capacity=pl.lit(5_000, dtype=pl.Int64),
        sell_through_pct=pl.Series(rng.uniform(0, 100, n)),
        days_to_event=pl.Series(rng.integers(0, 60, n), dtype=pl.Int32),
    )
    ea = ea.with_columns(cumulative_tickets_sold=pl.col("tickets_sold").cum_sum().over("event_id"))
    wh.write_partitions("event_analytics", ea, ["day"], keys)

    # conversion_funnel (daily)
    rows = [
        (t, v, e, d, ch, dev)
        for t, v in venues
        for e in marts.events[v][:2]
        for d in days[-7:]
        for ch in FUNNEL_CHANNELS
        for dev in DEVICES
    ]
    n = len(rows)
    sessions = rng.integers(0, 40, n)
    views = (sessions * rng.uniform(0.5, 1, n)).astype(np.int64)
    carts = (views * rng.uniform(0.2, 0.8, n)).astype(np.int64)
    checkouts = (carts * rng.uniform(0.3, 0.9, n)).astype(np.int64)
    purchases = (checkouts * rng.uniform(0.3, 1, n)).astype(np.int64)
    cf = pl.DataFrame(
        rows, orient="row", schema=["tenant_id", "venue_id", "event_id", "day", "channel", "device"]
    ).with_columns(
        sessions=pl.Series(sessions, dtype=pl.Int64),
        event_page_views=pl.Series(views, dtype=pl.Int64),
        carts=pl.Series(carts, dtype=pl.Int64),
        checkouts=pl.Series(checkouts, dtype=pl.Int64),
        purchases=pl.Series(purchases, dtype=pl.Int64),
    )
    cf = cf.with_columns(
        conversion_rate=pl.when(pl.col("sessions") > 0).then(pl.col("purchases") / pl.col("sessions"))
    )
    wh.write_partitions("conversion_funnel", cf, ["day"], keys[-7:])

    users = [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(30)]

    # fct_orders (daily): recognized orders with buyers from one pool (distinct counts across venues)
    fo = []
    for t, v in venues:
        for d in days:
            for _ in range(int(rng.integers(0, 6))):
                tickets, sub = int(rng.integers(1, 5)), int(rng.integers(2_000, 9_000))
                gross = tickets * sub
                fo.append(
                    (
                        str(uuid.UUID(bytes=rng.bytes(16), version=4)),
                        t,
                        v,
                        marts.events[v][int(rng.integers(0, len(marts.events[v])))],
                        list(CATEGORIES.values())[int(rng.integers(0, 3))],
                        users[int(rng.integers(0, len(users)))],
                        ("confirmed", "completed", "refunded")[int(rng.integers(0, 3))],
                        ("web", "mobile_app", "box_office")[int(rng.integers(0, 3))],
                        "fiat",
                        d,
                        tickets,
                        gross,
                        gross // 10,
                        gross // 20,
                        gross,
                    )
                )
    orders_df = pl.DataFrame(
        fo,
        orient="row",
        schema=[
            "order_id",
            "tenant_id",
            "venue_id",
            "event_id",
            "category_id",
            "user_id",
            "status",
            "channel",
            "payment_method",
            "day",
            "tickets",
            "ticket_revenue_cents",
            "fees_cents",
            "discount_cents",
            "gross_revenue_cents",
        ],
    ).with_columns(
        revenue_line="primary:" + pl.col("channel"),
        recognized_at=pl.col("day").cast(pl.Datetime("us", "UTC"))
        + pl.duration(minutes=pl.col("tickets") * 137),
        currency=pl.lit("USD"),
    )
    wh.write_partitions("fct_orders", orders_df, ["day"], keys)

    # customer_rfm_scores (daily by as_of): per venue scope and the tenant scope
    rfm = []
    as_ofs = days[-rfm_days:]
    for a in as_ofs:
        for t, v in venues:
            for u in users[: int(rng.integers(8, 20))]:
                rfm.append(_rfm_row(rng, a, "venue", v, t, v, u))
        for t in marts.tenants:
            for u in users[:20]:
                rfm.append(_rfm_row(rng, a, "tenant", t, t, None, u))
    rs = pl.DataFrame(rfm, orient="row", schema=RFM_SCHEMA)
    wh.write_partitions("customer_rfm_scores", rs, ["as_of"], [(a.isoformat(),) for a in as_ofs])

    # customer_segments (whole table, latest as-of): every segment per venue and per tenant
    seg = []
    for t, v in venues:
        seg += [_segment_row(rng, marts.last_day, "venue", v, t, v, s) for s in SEGMENTS]
    for t in marts.tenants:
        seg += [_segment_row(rng, marts.last_day, "tenant", t, t, None, s) for s in SEGMENTS]
    wh.replace_table("customer_segments", pl.DataFrame(seg, orient="row", schema=SEGMENT_SCHEMA))
    build_metric_marts(wh, marts)  # custom_metrics, sales_velocity


RFM_SCHEMA = {
    "as_of": pl.Date,
    "scope": pl.String,
    "scope_id": pl.String,
    "tenant_id": pl.String,
    "venue_id": pl.String,
    "user_id": pl.String,
    "recency_days": pl.Int64,
    "frequency": pl.Int64,
    "monetary_cents": pl.Int64,
    "tickets": pl.Int64,
    "currency": pl.String,
    "r_score": pl.Int32,
    "f_score": pl.Int32,
    "m_score": pl.Int32,
    "rfm_code": pl.String,
    "rfm_total": pl.Int32,
    "segment": pl.String,
}
SEGMENT_SCHEMA = {
    "as_of": pl.Date,
    "scope": pl.String,
    "scope_id": pl.String,
    "tenant_id": pl.String,
    "venue_id": pl.String,
    "segment": pl.String,
    "customers": pl.Int64,
    "revenue_cents": pl.Int64,
    "orders": pl.Int64,
    "avg_order_value_cents": pl.Int64,
    "avg_purchase_frequency": pl.Float64,
}


def _rfm_row(rng, as_of, scope, scope_id, tenant, venue, user):
    r, f, m = (int(x) for x in rng.integers(1, 6, 3))
    freq = int(rng.integers(1, 9))
    return (
        as_of,
        scope,
        scope_id,
        tenant,
        venue,
        user,
        int(rng.integers(0, 400)),
        freq,
        int(rng.integers(1_000, 90_000)) * freq,
        freq * 2,
        "USD",
        r,
        f,
        m,
        f"{r}{f}{m}",
        r + f + m,
        SEGMENTS[int(rng.integers(0, len(SEGMENTS)))],
    )


def _segment_row(rng, as_of, scope, scope_id, tenant, venue, segment):
    customers = int(rng.integers(0, 40))
    orders = customers * int(rng.integers(1, 4))
    revenue = orders * int(rng.integers(2_000, 9_000))
    return (
        as_of,
        scope,
        scope_id,
        tenant,
        venue,
        segment,
        customers,
        revenue,
        orders,
        revenue // orders if orders else None,
        orders / customers if customers else None,
    )
