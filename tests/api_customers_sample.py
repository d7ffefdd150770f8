"""Synthetic customer marts and facts beside tests/api_sample.py's marts, for the customer routes' tests:
fct_orders, fct_refunds, fct_resales, customer_rfm_scores (venue and tenant scopes, three as-of dates),
customer_segment_transitions, customer_lifetime_value, customer_segments, customer_360 and
customer_email_keys, with the columns of docs/marts.md and docs/customers.md. Deterministic (numpy seed).

The figures are coherent where the routes combine them (RFM monetary and frequency from the orders, the
360's spend from the orders, the segments' sizes from the RFM rows, the transitions from consecutive as-of
dates); the model outputs (P(alive), CLV, churn) are random. One customer of the first tenant also buys at
the second tenant's venue (a customer of two tenants); every customer has an e-mail `customer<i>@example.com`
(keyed with privacy.landing_key() as landing does)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
from api_sample import SampleMarts

from analytics_pipelines.customers.email_keys import email_keys
from analytics_pipelines.customers.rfm import SEGMENTS
from analytics_pipelines.customers.ticket_events import ticket_event_rows
from analytics_pipelines.privacy import landing_key, pseudonymize_landing
from analytics_pipelines.warehouse import Warehouse

TS = pl.Datetime("us", "UTC")


@dataclass
class SampleCustomers:
    users: dict[str, str]  # user_id -> home tenant
    emails: dict[str, str]  # user_id -> plain e-mail (the test's knowledge; the warehouse has none)
    shared_user: str  # a customer of the first tenant who also bought at the second tenant's venue
    as_of: list[date]


def _uuid(rng) -> str:
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def build_sample_customers(wh: Warehouse, marts: SampleMarts, per_tenant: int = 10, seed: int = 11):
    rng = np.random.default_rng(seed)
    tenants = marts.tenant_ids()
    users = {_uuid(rng): t for t in tenants for _ in range(per_tenant)}
    emails = {u: f"customer{i}@example.com" for i, u in enumerate(users)}
    shared = next(u for u, t in users.items() if t == tenants[0])
    start = datetime.combine(marts.first_day, datetime.min.time(), UTC)
    span = int((marts.last_day - marts.first_day).days + 1) * 86400

    orders = []
    for u, t in users.items():
        venues = marts.tenants[t]
        for _ in range(int(rng.integers(1, 6))):
            orders.append((t, venues[int(rng.integers(0, len(venues)))], u))
        if u == shared:  # also at the other tenant
            orders.append((tenants[1], marts.tenants[tenants[1]][0], u))
            orders.append((tenants[1], marts.tenants[tenants[1]][0], u))
    n = len(orders)
    at = [start + timedelta(seconds=int(s)) for s in rng.integers(0, span, n)]
    tickets = rng.integers(1, 5, n)
    sub = tickets * rng.integers(2_000, 9_000, n)
    fees = (sub * 0.1).astype(np.int64)
    tax = (sub * 0.05).astype(np.int64)
    fo = pl.DataFrame(
        {
            "order_id": [_uuid(rng) for _ in range(n)],
            "tenant_id": [o[0] for o in orders],
            "venue_id": [o[1] for o in orders],
            "event_id": [marts.events[o[1]][int(rng.integers(0, len(marts.events[o[1]])))] for o in orders],
            "category_id": [None] * n,
            "user_id": [o[2] for o in orders],
            "status": ["completed"] * n,
            "channel": [("web", "mobile_app", "box_office")[int(i)] for i in rng.integers(0, 3, n)],
            "payment_method": ["card"] * n,
            "recognized_at": pl.Series(at, dtype=TS),
            "tickets": pl.Series(tickets, dtype=pl.Int64),
            "ticket_revenue_cents": pl.Series(sub, dtype=pl.Int64),
            "platform_fee_cents": pl.Series(fees // 2, dtype=pl.Int64),
            "processing_fee_cents": pl.Series(fees - fees // 2, dtype=pl.Int64),
            "fees_cents": pl.Series(fees, dtype=pl.Int64),
            "tax_cents": pl.Series(tax, dtype=pl.Int64),
            "discount_cents": pl.Series(np.zeros(n, np.int64), dtype=pl.Int64),
            "gross_revenue_cents": pl.Series(sub + fees + tax, dtype=pl.Int64),
            "currency": ["USD"] * n,
        },
        schema_overrides={"category_id": pl.String},
    ).with_columns(revenue_line=pl.lit("primary:") + pl.col("channel"), day=pl.col("recognized_at").dt.date())
    keys = [((marts.first_day + timedelta(days=i)).isoformat(),) for i in range(span // 86400)]
    wh.write_partitions("fct_orders", fo, ["day"], keys)

    # tickets of each order (created with it, for the buyer) and a scan of every other ticket two days later;
    # a resold ticket's holder changes below (its scan is the new holder's), through the real builder's rules
    tk = (
        fo.select(
            "tenant_id", "event_id", "user_id", "recognized_at", "tickets", "ticket_revenue_cents", "currency"
        )
        .with_columns(k=pl.int_ranges(0, pl.col("tickets")))
        .explode("k", empty_as_null=True)
    )
    tk = tk.with_columns(
        id=pl.Series([_uuid(rng) for _ in range(tk.height)]),
        original_purchaser_id=pl.col("user_id"),
        price_cents=pl.col("ticket_revenue_cents") // pl.col("tickets"),
        status=pl.lit("sold"),
        created_at=pl.col("recognized_at"),
    )
    sc = tk.gather_every(2).select(
        ticket_id="id", event_id="event_id", scanned_at=pl.col("created_at") + pl.duration(days=2)
    )
    sc = sc.filter(pl.col("scanned_at").dt.date() <= marts.last_day).with_columns(
        id=pl.Series(
            [_uuid(rng) for _ in range(sc.filter(pl.col("scanned_at").dt.date() <= marts.last_day).height)]
        ),
        result=pl.lit("valid"),
    )
    # refunds: every third order, part of it, a day later (same day partition scheme)
    rf = fo.gather_every(3).select(
        pl.col("order_id"),
        "tenant_id",
        "venue_id",
        "event_id",
        "category_id",
        "user_id",
        "channel",
        "revenue_line",
        refunded_at=pl.min_horizontal(
            pl.col("recognized_at") + pl.duration(hours=20),
            pl.lit(datetime.combine(marts.last_day, datetime.max.time(), UTC)).cast(TS),
        ),
        refund_type=pl.lit("partial"),
        refund_cents=pl.col("gross_revenue_cents") // 4,
        currency="currency",
    )
    rf = rf.with_columns(
        refund_id=pl.Series([_uuid(rng) for _ in range(rf.height)]), day=pl.col("refunded_at").dt.date()
    )
    wh.write_partitions("fct_refunds", rf, ["day"], keys)

    # resales: within each tenant, customer i sells one ticket to customer i+1 (at the order's venue)
    rs = []
    for t in tenants:
        mine = [u for u, ut in users.items() if ut == t]
        for i in range(0, len(mine) - 1, 2):
            o = fo.filter((pl.col("user_id") == mine[i]) & (pl.col("tenant_id") == t)).row(0, named=True)
            sale = int(rng.integers(3_000, 12_000))
            rs.append(
                {
                    "transfer_id": _uuid(rng),
                    "listing_id": _uuid(rng),
                    "ticket_id": tk.filter(pl.col("user_id") == mine[i])["id"][0],
                    "tenant_id": t,
                    "venue_id": o["venue_id"],
                    "event_id": o["event_id"],
                    "category_id": None,
                    "buyer_id": mine[i + 1],
                    "seller_id": mine[i],
                    "payment_method": "fiat",
                    "revenue_line": "resale:fiat",
                    "completed_at": o["recognized_at"] + timedelta(hours=30),
                    "sale_cents": sale,
                    "listing_price_cents": sale,
                    "face_value_cents": sale * 4 // 5,
                    "markup_pct": 25.0,
                    "platform_fee_cents": sale // 20,
                    "venue_fee_cents": sale // 50,
                    "seller_payout_cents": sale - sale // 20 - sale // 50,
                    "currency": "USD",
                }
            )
    rs = pl.DataFrame(rs, schema_overrides={"category_id": pl.String, "completed_at": TS})
    rs = rs.filter(pl.col("completed_at").dt.date() <= marts.last_day).with_columns(
        day=pl.col("completed_at").dt.date()
    )
    wh.write_partitions("fct_resales", rs, ["day"], keys)

    # the resold tickets now belong to their buyers (tickets.user_id), the scans to the holder
    tk = tk.with_columns(
        user_id=pl.col("id").replace_strict(
            dict(zip(rs["ticket_id"], rs["buyer_id"], strict=True)), default=pl.col("user_id")
        )
    )
    events = pl.DataFrame(
        {
            "id": [e for es in marts.events.values() for e in es],
            "venue_id": [v for v, es in marts.events.items() for _ in es],
        }
    )
    te = ticket_event_rows(tk, sc, tk, events)
    wh.write_partitions("customer_ticket_events", te, ["day"], keys)

    # RFM at three as-of dates (two Sundays and the last day), venue and tenant scopes
    as_of = [marts.last_day - timedelta(days=13), marts.last_day - timedelta(days=6), marts.last_day]
    rfm = []
    for d in as_of:
        upto = fo.filter(pl.col("day") <= d)
        for scope, keys_ in (("venue", ["tenant_id", "venue_id"]), ("tenant", ["tenant_id"])):
            g = upto.group_by([*keys_, "user_id"]).agg(
                first_purchase_at=pl.min("recognized_at"),
                last_purchase_at=pl.max("recognized_at"),
                frequency=pl.len().cast(pl.Int64),
                monetary_cents=pl.sum("gross_revenue_cents"),
                tickets=pl.sum("tickets"),
            )
            if scope == "tenant":
                g = g.with_columns(venue_id=pl.lit(None, pl.String))
            m = g.height
            r, f_, m_ = (rng.integers(1, 6, m) for _ in range(3))
            rfm.append(
                g.with_columns(
                    as_of=pl.lit(d),
                    scope=pl.lit(scope),
                    scope_id=pl.col("venue_id") if scope == "venue" else pl.col("tenant_id"),
                    recency_days=(pl.lit(d) - pl.col("last_purchase_at").dt.date()).dt.total_days(),
                    currency=pl.lit("USD"),
                    r_score=pl.Series(r, dtype=pl.Int64),
                    f_score=pl.Series(f_, dtype=pl.Int64),
                    m_score=pl.Series(m_, dtype=pl.Int64),
                    rfm_code=pl.Series([f"{a}{b}{c}" for a, b, c in zip(r, f_, m_, strict=True)]),
                    rfm_total=pl.Series(r + f_ + m_, dtype=pl.Int64),
                    segment=pl.Series([SEGMENTS[int(i)] for i in rng.integers(0, 4, m)]),
                )
            )
    cols = [
        "as_of", "scope", "scope_id", "tenant_id", "venue_id", "user_id", "first_purchase_at", "last_purchase_at",
        "recency_days", "frequency", "monetary_cents", "tickets", "currency", "r_score", "f_score", "m_score",
        "rfm_code", "rfm_total", "segment",
    ]  # fmt: skip
    rfm = pl.concat([x.select(cols) for x in rfm])
    wh.write_partitions("customer_rfm_scores", rfm, ["as_of"], [(d.isoformat(),) for d in as_of])

    # transitions between consecutive as-of dates, per scope (first purchase in between: '(new)')
    tr = []
    for a, b in zip(as_of, as_of[1:], strict=False):
        prev = rfm.filter(pl.col("as_of") == a).select("scope", "scope_id", "user_id", from_segment="segment")
        cur = rfm.filter(pl.col("as_of") == b)
        j = cur.join(prev, on=["scope", "scope_id", "user_id"], how="left").with_columns(
            pl.col("from_segment").fill_null("(new)")
        )
        tr.append(
            j.group_by("scope", "scope_id", "tenant_id", "venue_id", "from_segment", "segment")
            .agg(customers=pl.len().cast(pl.Int64), revenue_between_cents=pl.sum("monetary_cents"))
            .rename({"segment": "to_segment"})
            .with_columns(from_as_of=pl.lit(a), to_as_of=pl.lit(b))
        )
    wh.replace_table("customer_segment_transitions", pl.concat(tr))

    # CLV per customer and venue (model outputs random, history from the orders)
    cv = fo.group_by("tenant_id", "venue_id", "user_id").agg(
        first_purchase_at=pl.min("recognized_at"),
        last_purchase_at=pl.max("recognized_at"),
        orders=pl.len().cast(pl.Int64),
        historic_value_cents=pl.sum("gross_revenue_cents"),
    )
    k = cv.height
    p_alive = rng.uniform(0.05, 1, k)
    churn = rng.uniform(0, 1, k)
    clv12 = rng.integers(0, 80_000, k)
    no_fit = rng.uniform(0, 1, k) < 0.15
    cv = cv.sort("tenant_id", "venue_id", "user_id").with_columns(
        as_of=pl.lit(marts.last_day),
        frequency=pl.col("orders") - 1,
        recency_weeks=pl.lit(1.0),
        t_weeks=pl.lit(3.0),
        monetary_cents=pl.col("historic_value_cents") / pl.col("orders"),
        historic_aov_cents=pl.col("historic_value_cents") // pl.col("orders"),
        historic_segment=pl.lit("medium"),
        p_alive=pl.Series(np.where(no_fit, np.nan, p_alive)).fill_nan(None),
        expected_purchases_90d=pl.Series(np.where(no_fit, np.nan, p_alive * 0.8)).fill_nan(None),
        expected_purchases_12m=pl.Series(np.where(no_fit, np.nan, p_alive * 3.1)).fill_nan(None),
        expected_value_per_purchase_cents=pl.Series(np.where(no_fit, np.nan, clv12 / 3.0)).fill_nan(None),
        clv_12m_cents=pl.Series(
            [None if f else int(c) for f, c in zip(no_fit, clv12, strict=True)], dtype=pl.Int64
        ),
        clv_24m_cents=pl.Series(
            [None if f else 2 * int(c) for f, c in zip(no_fit, clv12, strict=True)], dtype=pl.Int64
        ),
        churn_probability=pl.Series(churn),
        fit_scope=pl.Series(np.where(no_fit, "none", "venue")),
        fit_id=pl.Series([None if f else "fit-1" for f in no_fit], dtype=pl.String),
    )
    wh.replace_table("customer_lifetime_value", cv)

    # segments at the latest as-of, per scope, all 11 (zero where empty)
    latest = rfm.filter(pl.col("as_of") == as_of[-1])
    scopes = latest.select("scope", "scope_id", "tenant_id", "venue_id").unique()
    grid = scopes.join(pl.DataFrame({"segment": list(SEGMENTS)}), how="cross")
    clv_t = cv.group_by("tenant_id", "user_id").agg(pl.sum("clv_12m_cents").alias("clv_t"))
    lat = latest.join(
        cv.select("tenant_id", "venue_id", "user_id", "clv_12m_cents"),
        on=["tenant_id", "venue_id", "user_id"],
        how="left",
    ).join(clv_t, on=["tenant_id", "user_id"], how="left")
    lat = lat.with_columns(
        clv=pl.when(pl.col("scope") == "venue").then(pl.col("clv_12m_cents")).otherwise(pl.col("clv_t"))
    )
    agg = lat.group_by("scope", "scope_id", "segment").agg(
        customers=pl.len().cast(pl.Int64),
        revenue_cents=pl.sum("monetary_cents"),
        orders=pl.sum("frequency"),
        avg_clv_12m_cents=pl.mean("clv"),
        customers_with_clv=pl.col("clv").count().cast(pl.Int64),
    )
    seg = grid.join(agg, on=["scope", "scope_id", "segment"], how="left").with_columns(
        pl.col("customers", "revenue_cents", "orders", "customers_with_clv").fill_null(0)
    )
    seg = seg.with_columns(
        as_of=pl.lit(as_of[-1]),
        avg_order_value_cents=pl.when(pl.col("orders") > 0).then(pl.col("revenue_cents") / pl.col("orders")),
        avg_purchase_frequency=pl.when(pl.col("customers") > 0).then(pl.col("orders") / pl.col("customers")),
        customers_pct=100 * pl.col("customers") / pl.sum("customers").over("scope", "scope_id"),
        revenue_pct=100 * pl.col("revenue_cents") / pl.sum("revenue_cents").over("scope", "scope_id"),
    )
    wh.replace_table("customer_segments", seg)

    # the 360: one row per (tenant, customer) with orders there
    t_rfm = latest.filter(pl.col("scope") == "tenant").select("tenant_id", "user_id", "segment", "rfm_code")
    c360 = (
        fo.group_by("tenant_id", "user_id")
        .agg(
            first_purchase_at=pl.min("recognized_at"),
            last_purchase_at=pl.max("recognized_at"),
            orders=pl.len().cast(pl.Int64),
            tickets=pl.sum("tickets"),
            spend_cents=pl.sum("gross_revenue_cents"),
        )
        .join(t_rfm, on=["tenant_id", "user_id"], how="left")
        .join(
            cv.group_by("tenant_id", "user_id").agg(
                clv_12m_cents=pl.sum("clv_12m_cents"),
                p_alive=pl.max("p_alive"),
                expected_purchases_12m=pl.sum("expected_purchases_12m"),
                churn_probability=pl.max("churn_probability"),
            ),
            on=["tenant_id", "user_id"],
            how="left",
        )
        .with_columns(segment_as_of=pl.lit(as_of[-1]), as_of=pl.lit(marts.last_day))
        .with_columns(  # the profile's other columns (the /v1/customers/{user_id} route reads them)
            account_status=pl.lit("active"),
            signed_up_at=pl.col("first_purchase_at") - pl.duration(days=30),
            tenure_days=pl.lit(30, pl.Int64),
            days_since_last_purchase=(
                pl.lit(marts.last_day) - pl.col("last_purchase_at").dt.date()
            ).dt.total_days(),
            refunds_cents=pl.lit(0, pl.Int64),
            net_spend_cents="spend_cents",
            avg_order_value_cents=pl.col("spend_cents") // pl.col("orders"),
            venues=pl.lit(1, pl.Int64),
            events=pl.lit(1, pl.Int64),
            refunds=pl.lit(0, pl.Int64),
            resales_bought=pl.lit(0, pl.Int64),
            resales_sold=pl.lit(0, pl.Int64),
            favourite_category_id=pl.lit(None, pl.String),
            favourite_category=pl.lit(None, pl.String),
            tickets_ended=pl.lit(0, pl.Int64),
            no_shows=pl.lit(0, pl.Int64),
            no_show_rate_pct=pl.lit(None, pl.Float64),
            clv_24m_cents=pl.col("clv_12m_cents") * 2,
            churn_flag=pl.col("churn_probability") >= 0.7,
        )
    )
    wh.replace_table("customer_360", c360)

    # raw_users as landing writes it (e-mails keyed), then the real builder's join
    raw_users = pseudonymize_landing(
        pl.DataFrame({"id": list(emails), "email": list(emails.values())}), "users", landing_key()
    )
    wh.replace_table("customer_email_keys", email_keys(raw_users, c360))
    return SampleCustomers(users=users, emails=emails, shared_user=shared, as_of=as_of)
