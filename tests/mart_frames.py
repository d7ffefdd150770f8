"""Deterministic mart frames with exactly the columns of docs/marts.md, written to a warehouse, for report
and export tests (the real marts are built on another branch; test_exports switches to them when present)."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import polars as pl

T1, T2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
V1 = "aaaaaaaa-0000-4000-8000-000000000001"  # non-Latin name
V2 = "aaaaaaaa-0000-4000-8000-000000000002"
V3 = "aaaaaaaa-0000-4000-8000-000000000003"  # another tenant
VENUES = {V1: (T1, "Театр «Мир» · Ελληνικό Θέατρο"), V2: (T1, "Harbour Hall"), V3: (T2, "Other Tenant Arena")}
CATEGORIES = {
    "cccccccc-0000-4000-8000-000000000001": "Concerts",
    "cccccccc-0000-4000-8000-000000000002": "Théâtre",
}
FIRST, LAST = date(2026, 11, 2), date(2026, 11, 15)  # two ISO weeks, Monday to Sunday
DAYS = [FIRST + timedelta(days=i) for i in range((LAST - FIRST).days + 1)]
CHANNELS = ("web", "mobile_app", "box_office")
USERS = [f"uuuuuuuu-0000-4000-8000-{i:012d}" for i in range(1, 41)]


def events() -> dict[str, tuple[str, str, str]]:
    """event_id -> (venue_id, category_id, name)."""
    out, cats = {}, list(CATEGORIES)
    for vi, v in enumerate(VENUES):
        for e in range(3):
            out[f"eeeeeeee-000{vi}-4000-8000-00000000000{e}"] = (v, cats[e % 2], f"Event {vi}.{e} – Ünïcødé")
    return out


def build(seed: int = 1) -> dict[str, pl.DataFrame]:
    rnd = random.Random(seed)
    ev = events()
    orders, refunds = [], []
    n = 0
    for d in DAYS:
        for eid, (vid, cid, _) in ev.items():
            for _ in range(rnd.randint(0, 4)):
                n += 1
                tickets = rnd.randint(1, 4)
                sub = tickets * rnd.choice((2500, 4999, 7550))
                disc = rnd.choice((0, 0, 500))
                pf, pr, tax = sub // 20, sub // 33, sub // 10
                ch = rnd.choice(CHANNELS)
                ts = datetime(d.year, d.month, d.day, rnd.randint(0, 23), rnd.randint(0, 59), tzinfo=UTC)
                oid = f"oooooooo-0000-4000-8000-{n:012d}"
                user = rnd.choice(USERS)
                status = rnd.choice(("confirmed", "completed", "completed", "refunded"))
                orders.append(
                    dict(
                        order_id=oid,
                        tenant_id=VENUES[vid][0],
                        venue_id=vid,
                        event_id=eid,
                        category_id=cid,
                        user_id=user,
                        status=status,
                        channel=ch,
                        payment_method="card",
                        revenue_line=f"primary:{ch}",
                        recognized_at=ts,
                        day=d,
                        tickets=tickets,
                        ticket_revenue_cents=sub - disc,
                        platform_fee_cents=pf,
                        processing_fee_cents=pr,
                        fees_cents=pf + pr,
                        tax_cents=tax,
                        discount_cents=disc,
                        gross_revenue_cents=sub - disc + pf + pr + tax,
                        currency="USD",
                    )
                )
                if status == "refunded":
                    rd = min(d + timedelta(days=rnd.randint(0, 2)), LAST)
                    refunds.append(
                        dict(
                            refund_id=f"rrrrrrrr-0000-4000-8000-{n:012d}",
                            order_id=oid,
                            tenant_id=VENUES[vid][0],
                            venue_id=vid,
                            event_id=eid,
                            category_id=cid,
                            user_id=user,
                            channel=ch,
                            revenue_line=f"primary:{ch}",
                            refunded_at=datetime(rd.year, rd.month, rd.day, 12, tzinfo=UTC),
                            day=rd,
                            refund_type="full",
                            refund_cents=sub - disc + pf + pr + tax,
                            currency="USD",
                        )
                    )
    fo = pl.DataFrame(orders, schema_overrides={"recognized_at": pl.Datetime("us", "UTC")})
    fr = pl.DataFrame(refunds, schema_overrides={"refunded_at": pl.Datetime("us", "UTC")})
    money = ["gross_revenue_cents", "ticket_revenue_cents", "fees_cents", "tax_cents"]
    r_by = lambda keys: fr.group_by(keys).agg(pl.col("refund_cents").sum().alias("refunds_cents"))  # noqa: E731

    va = (
        fo.group_by("tenant_id", "venue_id", "day")
        .agg(
            pl.col("tickets").sum().alias("tickets_sold"),
            pl.len().cast(pl.Int64).alias("orders"),
            *[pl.col(c).sum() for c in money],
            pl.col("user_id").n_unique().cast(pl.Int64).alias("unique_customers"),
            pl.col("event_id").n_unique().cast(pl.Int64).alias("events_active"),
        )
        .join(r_by(["tenant_id", "venue_id", "day"]), on=["tenant_id", "venue_id", "day"], how="left")
        .with_columns(pl.col("refunds_cents").fill_null(0))
        .with_columns(
            (pl.col("gross_revenue_cents") - pl.col("refunds_cents")).alias("net_revenue_cents"),
            (pl.col("tickets_sold") / 10.0).alias("capacity_sold_pct"),
            (pl.col("ticket_revenue_cents") // pl.col("tickets_sold")).alias("avg_ticket_price_cents"),
            pl.lit(0, pl.Int64).alias("resale_sales"),
            pl.lit(0, pl.Int64).alias("resale_volume_cents"),
        )
        .select(
            "tenant_id",
            "venue_id",
            "day",
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
        )
    )
    hourly = (
        fo.with_columns(pl.col("recognized_at").dt.truncate("1h").alias("hour_utc"))
        .group_by("tenant_id", "venue_id", "day", "hour_utc")
        .agg(
            pl.col("tickets").sum().alias("tickets_sold"),
            pl.len().cast(pl.Int64).alias("orders"),
            pl.col("gross_revenue_cents").sum(),
            pl.col("user_id").n_unique().cast(pl.Int64).alias("unique_customers"),
        )
        .with_columns(((pl.col("hour_utc").dt.hour().cast(pl.Int32) + 1) % 24).alias("local_hour"))
        .select(
            "tenant_id",
            "venue_id",
            "day",
            "hour_utc",
            "local_hour",
            "tickets_sold",
            "orders",
            "gross_revenue_cents",
            "unique_customers",
        )
    )
    ea = (
        fo.group_by("tenant_id", "venue_id", "event_id", "day")
        .agg(
            pl.col("tickets").sum().alias("tickets_sold"),
            pl.len().cast(pl.Int64).alias("orders"),
            pl.col("gross_revenue_cents").sum(),
        )
        .join(
            r_by(["tenant_id", "venue_id", "event_id", "day"]),
            on=["tenant_id", "venue_id", "event_id", "day"],
            how="left",
        )
        .with_columns(pl.col("refunds_cents").fill_null(0))
        .with_columns(
            (pl.col("gross_revenue_cents") - pl.col("refunds_cents")).alias("net_revenue_cents"),
            pl.lit(500, pl.Int64).alias("capacity"),
        )
        .sort("day")
        .with_columns(pl.col("tickets_sold").cum_sum().over("event_id").alias("cumulative_tickets_sold"))
        .with_columns(
            (pl.col("cumulative_tickets_sold") / 5.0).alias("sell_through_pct"),
            (pl.lit(date(2026, 12, 1)) - pl.col("day")).dt.total_days().cast(pl.Int64).alias("days_to_event"),
        )
    )
    rc = (
        fo.group_by("tenant_id", "venue_id", "day", "revenue_line", "channel")
        .agg(
            pl.col("tickets").sum(),
            pl.len().cast(pl.Int64).alias("transactions"),
            pl.col("gross_revenue_cents").sum(),
            pl.col("fees_cents").sum(),
        )
        .join(
            r_by(["tenant_id", "venue_id", "day", "revenue_line"]),
            on=["tenant_id", "venue_id", "day", "revenue_line"],
            how="left",
        )
        .with_columns(pl.col("refunds_cents").fill_null(0), pl.lit("primary").alias("source"))
        .with_columns((pl.col("gross_revenue_cents") - pl.col("refunds_cents")).alias("net_revenue_cents"))
        .select(
            "tenant_id",
            "venue_id",
            "day",
            "revenue_line",
            "source",
            "channel",
            "tickets",
            "transactions",
            "gross_revenue_cents",
            "refunds_cents",
            "fees_cents",
            "net_revenue_cents",
        )
    )
    rcat = (
        fo.group_by("tenant_id", "venue_id", "day", "category_id")
        .agg(
            pl.col("tickets").sum(),
            pl.len().cast(pl.Int64).alias("orders"),
            pl.col("gross_revenue_cents").sum(),
        )
        .join(
            r_by(["tenant_id", "venue_id", "day", "category_id"]),
            on=["tenant_id", "venue_id", "day", "category_id"],
            how="left",
        )
        .with_columns(
            pl.col("refunds_cents").fill_null(0),
            pl.col("category_id").replace_strict(CATEGORIES).alias("category_name"),
        )
        .with_columns((pl.col("gross_revenue_cents") - pl.col("refunds_cents")).alias("net_revenue_cents"))
        .select(
            "tenant_id",
            "venue_id",
            "day",
            "category_id",
            "category_name",
            "tickets",
            "orders",
            "gross_revenue_cents",
            "refunds_cents",
            "net_revenue_cents",
        )
    )
    per_event = ea.group_by("event_id").agg(
        pl.col("tickets_sold", "gross_revenue_cents", "net_revenue_cents").sum()
    )
    ep = pl.DataFrame(
        [
            dict(
                tenant_id=VENUES[v][0],
                venue_id=v,
                event_id=e,
                event_name=name,
                category_name=CATEGORIES[c],
                starts_at=datetime(2026, 11, 3 + i * 3, 20, tzinfo=UTC),
                status="on_sale",
            )
            for i, (e, (v, c, name)) in enumerate(ev.items())
        ],
        schema_overrides={"starts_at": pl.Datetime("us", "UTC")},
    )
    ep = (
        ep.join(per_event, on="event_id", how="left")
        .with_columns(
            pl.col("tickets_sold", "gross_revenue_cents", "net_revenue_cents").fill_null(0),
            pl.lit(500, pl.Int64).alias("capacity"),
        )
        .with_columns(
            (pl.col("tickets_sold") / 5.0).alias("capacity_utilization_pct"),
            pl.col("gross_revenue_cents")
            .rank("ordinal", descending=True)
            .over("venue_id")
            .cast(pl.Int64)
            .alias("revenue_rank"),
        )
        .with_columns((pl.col("revenue_rank") <= 10).alias("is_top_10"))
        .select(
            "tenant_id",
            "venue_id",
            "event_id",
            "event_name",
            "category_name",
            "starts_at",
            "status",
            "tickets_sold",
            "gross_revenue_cents",
            "net_revenue_cents",
            "capacity",
            "capacity_utilization_pct",
            "revenue_rank",
            "is_top_10",
        )
    )
    venues = pl.DataFrame(
        [dict(id=v, tenant_id=t, name=name, timezone="Europe/Berlin") for v, (t, name) in VENUES.items()]
    )
    return {
        "fct_orders": fo,
        "fct_refunds": fr,
        "venue_analytics": va,
        "venue_analytics_hourly": hourly,
        "event_analytics": ea,
        "revenue_by_channel": rc,
        "revenue_by_category": rcat,
        "event_performance": ep,
        "stg_venues": venues,
    }


def write(wh, frames: dict[str, pl.DataFrame]) -> None:
    for table, df in frames.items():
        if "day" in df.columns and table != "stg_venues":
            wh.write_partitions(table, df, ["day"], [(str(d),) for d in DAYS])
        else:
            wh.replace_table(table, df)
