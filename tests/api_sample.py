"""Synthetic marts with exactly the columns of docs/marts.md, for the API's tests and benchmark.

Deterministic (numpy seed). Written through the warehouse interface like the real assets: daily marts by
`day`, kpi_snapshots by `snapshot_hour`, the rest whole. Used only until/besides the real marts built from
the generator; nothing here is served as data by the API itself."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

from analytics_pipelines.warehouse import Warehouse

KPI_METRICS = (
    "venues_total",
    "venues_active",
    "events_published",
    "events_on_sale",
    "tickets_sold_24h",
    "gross_revenue_24h_cents",
    "refunds_24h_cents",
    "refund_rate_24h_pct",
    "resale_volume_24h_cents",
    "hourly_revenue_cents",
    "hourly_revenue_change_pct",
)
CHANNELS = ("web", "mobile_app", "box_office", "partner")


def _uuid(rng: np.random.Generator) -> str:
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


@dataclass
class SampleMarts:
    tenants: dict[str, list[str]]  # tenant_id -> venue_ids
    events: dict[str, list[str]]  # venue_id -> event_ids
    first_day: date
    last_day: date

    def venue_of(self, tenant: str, i: int = 0) -> str:
        return self.tenants[tenant][i]

    def tenant_ids(self) -> list[str]:
        return list(self.tenants)


def build_sample_marts(
    wh: Warehouse,
    tenants: int = 2,
    venues: int = 3,
    days: int = 30,
    events_per_venue: int = 4,
    kpi_hours: int = 48,
    last_day: date = date(2026, 10, 31),
    seed: int = 7,
) -> SampleMarts:
    """Write every API-facing mart for `tenants` x `venues` over `days` days ending at `last_day`."""
    rng = np.random.default_rng(seed)
    tmap = {_uuid(rng): [_uuid(rng) for _ in range(venues)] for _ in range(tenants)}
    emap = {v: [_uuid(rng) for _ in range(events_per_venue)] for vs in tmap.values() for v in vs}
    first_day = last_day - timedelta(days=days - 1)
    day_list = [first_day + timedelta(days=i) for i in range(days)]
    pairs = [(t, v) for t, vs in tmap.items() for v in vs]
    n = len(pairs) * days

    # venue_analytics (daily)
    tv = pl.DataFrame({"tenant_id": [t for t, _ in pairs], "venue_id": [v for _, v in pairs]})
    va = tv.join(pl.DataFrame({"day": day_list}), how="cross")
    tickets = rng.integers(0, 400, n)
    price = rng.integers(2_000, 9_000, n)
    gross = tickets * price
    refunds = (gross * rng.uniform(0, 0.05, n)).astype(np.int64)
    va = va.with_columns(
        tickets_sold=pl.Series(tickets, dtype=pl.Int64),
        orders=pl.Series(tickets // 2, dtype=pl.Int64),
        gross_revenue_cents=pl.Series(gross, dtype=pl.Int64),
        ticket_revenue_cents=pl.Series((gross * 0.85).astype(np.int64), dtype=pl.Int64),
        refunds_cents=pl.Series(refunds, dtype=pl.Int64),
        fees_cents=pl.Series((gross * 0.1).astype(np.int64), dtype=pl.Int64),
        tax_cents=pl.Series((gross * 0.05).astype(np.int64), dtype=pl.Int64),
        net_revenue_cents=pl.Series(gross - refunds, dtype=pl.Int64),
        unique_customers=pl.Series(tickets // 3, dtype=pl.Int64),
        events_active=pl.Series(rng.integers(0, events_per_venue + 1, n), dtype=pl.Int64),
        capacity_sold_pct=pl.Series(rng.uniform(0, 100, n), dtype=pl.Float64),
        avg_ticket_price_cents=pl.Series(price, dtype=pl.Int64),
        resale_sales=pl.Series(rng.integers(0, 20, n), dtype=pl.Int64),
        resale_volume_cents=pl.Series(rng.integers(0, 200_000, n), dtype=pl.Int64),
    )
    keys = [(d.isoformat(),) for d in day_list]
    wh.write_partitions("venue_analytics", va, ["day"], keys)

    # revenue_by_channel (daily): one row per venue, day and primary channel + one resale line
    lines = [("primary:" + c, "primary", c) for c in CHANNELS] + [("resale:fiat", "resale", "fiat")]
    rbc = va.select("tenant_id", "venue_id", "day").join(
        pl.DataFrame(
            {
                "revenue_line": [x[0] for x in lines],
                "source": [x[1] for x in lines],
                "channel": [x[2] for x in lines],
            }
        ),
        how="cross",
    )
    m = rbc.height
    g = rng.integers(0, 300_000, m)
    rf = (g * rng.uniform(0, 0.05, m)).astype(np.int64)
    rbc = rbc.with_columns(
        tickets=pl.Series(rng.integers(0, 100, m), dtype=pl.Int64),
        transactions=pl.Series(rng.integers(0, 50, m), dtype=pl.Int64),
        gross_revenue_cents=pl.Series(g, dtype=pl.Int64),
        refunds_cents=pl.Series(rf, dtype=pl.Int64),
        fees_cents=pl.Series((g * 0.1).astype(np.int64), dtype=pl.Int64),
        net_revenue_cents=pl.Series(g - rf, dtype=pl.Int64),
    )
    wh.write_partitions("revenue_by_channel", rbc, ["day"], keys)

    # sales_metrics (whole table): day/week/month from venue_analytics, hour for the last 2 days
    per = []
    for gran, every in (("day", "1d"), ("week", "1w"), ("month", "1mo")):
        s = (
            va.with_columns(period_start=pl.col("day").cast(pl.Datetime("us", "UTC")).dt.truncate(every))
            .group_by("tenant_id", "venue_id", "period_start")
            .agg(
                pl.sum("tickets_sold"),
                pl.sum("orders"),
                pl.sum("gross_revenue_cents"),
                pl.sum("unique_customers"),
            )
            .with_columns(granularity=pl.lit(gran))
        )
        per.append(s)
    hours = [
        datetime.combine(last_day - timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=h)
        for h in range(48)
    ]
    hs = tv.join(
        pl.DataFrame({"period_start": pl.Series(hours, dtype=pl.Datetime("us", "UTC"))}), how="cross"
    )
    k = hs.height
    ht = rng.integers(0, 30, k)
    per.append(
        hs.with_columns(
            tickets_sold=pl.Series(ht, dtype=pl.Int64),
            orders=pl.Series(ht // 2, dtype=pl.Int64),
            gross_revenue_cents=pl.Series(ht * 5_000, dtype=pl.Int64),
            unique_customers=pl.Series(ht // 3, dtype=pl.Int64),
            granularity=pl.lit("hour"),
        )
    )
    sm = pl.concat(per, how="diagonal_relaxed").sort("tenant_id", "venue_id", "granularity", "period_start")
    sm = sm.with_columns(
        avg_ticket_price_cents=pl.when(pl.col("tickets_sold") > 0)
        .then(pl.col("gross_revenue_cents") // pl.col("tickets_sold"))
        .otherwise(None)
        .cast(pl.Int64),
        tickets_growth_pct=(pl.col("tickets_sold").cast(pl.Float64).pct_change() * 100).over(
            "tenant_id", "venue_id", "granularity"
        ),
        revenue_growth_pct=(pl.col("gross_revenue_cents").cast(pl.Float64).pct_change() * 100).over(
            "tenant_id", "venue_id", "granularity"
        ),
    ).select(
        "tenant_id",
        "venue_id",
        "granularity",
        "period_start",
        "tickets_sold",
        "orders",
        "gross_revenue_cents",
        "unique_customers",
        "avg_ticket_price_cents",
        "tickets_growth_pct",
        "revenue_growth_pct",
    )
    sm = sm.with_columns(pl.col("tickets_growth_pct", "revenue_growth_pct").fill_nan(None))
    wh.replace_table("sales_metrics", sm)

    # event_performance (whole)
    ev = [(t, v, e, i) for t, vs in tmap.items() for v in vs for i, e in enumerate(emap[v])]
    ne = len(ev)
    eg = rng.integers(0, 5_000_000, ne)
    ep = pl.DataFrame(
        {
            "tenant_id": [x[0] for x in ev],
            "venue_id": [x[1] for x in ev],
            "event_id": [x[2] for x in ev],
            "event_name": [f"Event {x[3] + 1}" for x in ev],
            "category_name": [("Concert", "Sports", "Theatre")[x[3] % 3] for x in ev],
            "starts_at": pl.Series(
                [datetime.combine(last_day, datetime.min.time(), UTC) + timedelta(days=x[3] * 7) for x in ev],
                dtype=pl.Datetime("us", "UTC"),
            ),
            "status": ["on_sale"] * ne,
            "tickets_sold": pl.Series(rng.integers(0, 5_000, ne), dtype=pl.Int64),
            "gross_revenue_cents": pl.Series(eg, dtype=pl.Int64),
            "net_revenue_cents": pl.Series((eg * 0.97).astype(np.int64), dtype=pl.Int64),
            "capacity": pl.Series(np.full(ne, 5_000), dtype=pl.Int64),
            "capacity_utilization_pct": pl.Series(rng.uniform(0, 100, ne), dtype=pl.Float64),
        }
    )
    ep = ep.with_columns(
        revenue_rank=pl.col("gross_revenue_cents")
        .rank("ordinal", descending=True)
        .over("tenant_id", "venue_id")
        .cast(pl.Int64)
    )
    ep = ep.with_columns(is_top_10=pl.col("revenue_rank") <= 10)
    wh.replace_table("event_performance", ep)

    # venue_seasonality (whole)
    vs_ = tv.join(pl.DataFrame({"month": pl.Series(range(1, 13), dtype=pl.Int32)}), how="cross")
    q = vs_.height
    ratio = rng.uniform(0.5, 1.6, q)
    wh.replace_table(
        "venue_seasonality",
        vs_.with_columns(
            avg_tickets=pl.Series(rng.uniform(0, 300, q)),
            avg_revenue_cents=pl.Series(rng.uniform(0, 1e6, q)),
            avg_event_days=pl.Series(rng.uniform(0, 20, q)),
            stddev_tickets=pl.Series(rng.uniform(0, 50, q)),
            volatility_pct=pl.Series(rng.uniform(0, 80, q)),
            seasonality_ratio=pl.Series(ratio),
            season=pl.Series(np.where(ratio > 1.2, "Peak", np.where(ratio < 0.8, "Off Season", "Normal"))),
        ),
    )

    # revenue_projections (whole): 30-day horizon from last_day
    pj = tv.join(pl.DataFrame({"horizon_day": pl.Series(range(1, 31), dtype=pl.Int32)}), how="cross")
    r = pj.height
    proj = rng.integers(100_000, 2_000_000, r)
    wh.replace_table(
        "revenue_projections",
        pj.with_columns(
            as_of=pl.lit(last_day),
            day=pl.lit(last_day) + pl.duration(days=pl.col("horizon_day")),
            projected_net_revenue_cents=pl.Series(proj, dtype=pl.Int64),
            lower_cents=pl.Series((proj * 0.8).astype(np.int64), dtype=pl.Int64),
            upper_cents=pl.Series((proj * 1.2).astype(np.int64), dtype=pl.Int64),
            model=pl.lit("seasonal_naive"),
        ).select(
            "tenant_id",
            "venue_id",
            "as_of",
            "day",
            "horizon_day",
            "projected_net_revenue_cents",
            "lower_cents",
            "upper_cents",
            "model",
        ),
    )

    # price_history (whole): two prices per event's single ticket type
    ph_rows = []
    for t, v, e, i in ev:
        tt = _uuid(rng)
        start = datetime.combine(first_day, datetime.min.time(), UTC)
        ph_rows.append(
            (t, v, e, tt, "General", 5_000 + i * 100, start, start + timedelta(days=5), "generator")
        )
        ph_rows.append(
            (t, v, e, tt, "General", 5_500 + i * 100, start + timedelta(days=5), None, "generator")
        )
    wh.replace_table(
        "price_history",
        pl.DataFrame(
            ph_rows,
            orient="row",
            schema={
                "tenant_id": pl.String,
                "venue_id": pl.String,
                "event_id": pl.String,
                "ticket_type_id": pl.String,
                "ticket_type_name": pl.String,
                "price_cents": pl.Int64,
                "valid_from": pl.Datetime("us", "UTC"),
                "valid_to": pl.Datetime("us", "UTC"),
                "source": pl.String,
            },
        ),
    )

    # kpi_snapshots (hourly by snapshot_hour): tenant-wide (venue_id null) and per venue
    end = datetime.combine(last_day, datetime.min.time(), UTC) + timedelta(hours=23)
    snap = [end - timedelta(hours=h) for h in range(kpi_hours)][::-1]
    scopes = pl.DataFrame(
        {
            "tenant_id": [t for t in tmap] + [t for t, _ in pairs],
            "venue_id": [None] * len(tmap) + [v for _, v in pairs],
        },
        schema={"tenant_id": pl.String, "venue_id": pl.String},
    )
    kp = scopes.join(pl.DataFrame({"metric": list(KPI_METRICS)}), how="cross").join(
        pl.DataFrame({"snapshot_hour": pl.Series(snap, dtype=pl.Datetime("us", "UTC"))}), how="cross"
    )
    kp = kp.with_columns(
        value=pl.Series(rng.uniform(0, 1000, kp.height)),
        hour_key=pl.col("snapshot_hour").dt.strftime("%Y-%m-%d-%H:00"),  # the real mart's partition key
    ).select("hour_key", "snapshot_hour", "tenant_id", "venue_id", "metric", "value")
    # the real mart is partitioned by snapshot_hour; readers do not care, so the sample writes it whole
    wh.replace_table("kpi_snapshots", kp)
    return SampleMarts(tenants=tmap, events=emap, first_day=first_day, last_day=last_day)
