"""Reconciliation: re-derive each mart's totals from staging by independent SQL (sql/checks/, portable
across DuckDB and PostgreSQL, reading every staging partition) and compare them to the cent.

Each function returns a CheckOutcome; the Dagster asset checks are thin wrappers around them. A check
fails on any difference, on negative counts, or on an impossible percentage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import polars as pl

from analytics_pipelines.marts.shared import shared_in_this_run
from analytics_pipelines.marts.sqlrun import run
from analytics_pipelines.paths import read_sql
from analytics_pipelines.warehouse import Warehouse


@dataclass
class CheckOutcome:
    passed: bool
    metadata: dict = field(default_factory=dict)
    differences: pl.DataFrame | None = None
    #: the check could not be evaluated (why): reported as a warning, never as a pass that proves something
    skipped: str | None = None


def staging_query(wh: Warehouse, name: str, *params, shared: bool = False) -> pl.DataFrame:
    """Run sql/checks/<name>.sql (portable SQL, %s placeholders) on the warehouse; numeric columns as Int64.
    shared: within a run (marts/shared.py), a query already run in that run is answered from its first answer."""

    def query() -> pl.DataFrame:
        df = wh.read(read_sql(f"checks/{name}.sql"), list(params))
        return df.with_columns(
            pl.col(c).cast(pl.Int64) for c, t in df.schema.items() if t.is_numeric() and c != "day"
        )

    return shared_in_this_run(("staging_query", wh.location(), name, params), query) if shared else query()


#: how a NULL key value reads in compare()'s differences
NULL_KEY = "(null)"


def compare(expected: pl.DataFrame, actual: pl.DataFrame, keys: list[str], values: list[str]) -> CheckOutcome:
    """Full outer join on `keys` (no keys: grand totals); every value must match exactly (missing = 0)."""
    if not keys:
        expected, actual = (f.with_columns(pl.lit("all").alias("total")) for f in (expected, actual))
        keys = ["total"]

    def totals(df: pl.DataFrame) -> pl.DataFrame:
        # summed per key as it is typed, then the keys as text (and summed again, should two values read
        # alike): a few thousand casts instead of one per row of a 4M-row fact
        sums = df.group_by(keys).agg(pl.col(v).cast(pl.Int64).sum() for v in values)
        # a NULL key (a row without tenant) is a key of its own, equal on both sides
        return (
            sums.with_columns(pl.col(k).cast(pl.String).fill_null(NULL_KEY) for k in keys)
            .group_by(keys)
            .agg(pl.sum(v) for v in values)
        )

    exp, act = totals(expected), totals(actual)
    joined = exp.join(act, on=keys, how="full", coalesce=True, suffix="_mart").fill_null(0)
    diff = joined.filter(pl.any_horizontal(pl.col(v) != pl.col(f"{v}_mart") for v in values)).sort(keys)
    totals = {f"staging_{v}": int(joined[v].sum()) for v in values} | {
        f"mart_{v}": int(joined[f"{v}_mart"].sum()) for v in values
    }
    return CheckOutcome(
        diff.height == 0, {"keys_compared": joined.height, "keys_different": diff.height, **totals}, diff
    )


def non_negative(df: pl.DataFrame, columns: list[str]) -> dict[str, int]:
    """Number of negative values per column (counts must never be negative)."""
    return {c: int((df[c] < 0).sum()) for c in columns if c in df.columns and int((df[c] < 0).sum())}


def _combine(
    *outcomes: CheckOutcome, extra_failures: dict | None = None, metadata: dict | None = None
) -> CheckOutcome:
    meta, diffs = dict(metadata or {}), []
    for o in outcomes:
        meta.update(o.metadata)
        if o.differences is not None and o.differences.height:
            diffs.append(o.differences)
    failures = {k: v for k, v in (extra_failures or {}).items() if v}
    meta.update({f"violations_{k}": v for k, v in failures.items()})
    passed = all(o.passed for o in outcomes) and not failures
    return CheckOutcome(passed, meta, diffs[0] if diffs else None)


#: a sale is confirmed within minutes of its creation on the platform; the control totals read order
#: partitions from 31 days before the range (four times the marts' own 7-day lookback), so an order the
#: marts missed because it was confirmed late shows up as a difference
CONTROL_LOOKBACK_DAYS = 31
MEASURES = [
    "orders",
    "tickets",
    "gross_revenue_cents",
    "ticket_revenue_cents",
    "fees_cents",
    "refunds",
    "refunds_cents",
    "resales",
    "resale_volume_cents",
    "platform_fees_cents",
    "venue_fees_cents",
    "listings_created",
]


def control_totals(wh: Warehouse, first: str, last: str) -> pl.DataFrame:
    """Per day, tenant and revenue line, every measure the marts report, re-derived from staging by the
    independent SQL of sql/checks/ (its own joins and filters, not the marts' SQL). The tenant is the order's
    (a refund: its order's, else its own; a resale: the transfer's; a listing: its own). Listings use
    revenue_line 'marketplace:listings'. One row per (day, tenant_id, revenue_line) with every measure (0
    when absent)."""
    d0, d1 = date.fromisoformat(first), date.fromisoformat(last)
    lo, hi = (d0 - timedelta(days=CONTROL_LOOKBACK_DAYS)).isoformat(), (d1 + timedelta(days=1)).isoformat()

    def stg(table, a=None, b=None, columns=None):
        name = f"stg_{table}"
        return (
            wh.read_table(name, columns=columns)
            if a is None
            else wh.read_partitions(name, "_partition", a, b, columns=columns)
        )

    refunds = stg(
        "order_refunds",
        first,
        last,
        ["order_id", "tenant_id", "refund_amount_cents", "refund_status", "created_at"],
    )
    transfers = stg(
        "marketplace_transfers",
        lo,
        hi,
        ["id", "tenant_id", "usd_value_cents", "status", "payment_method", "completed_at"],
    )
    orders = stg(
        "orders",
        lo,
        hi,
        [
            "id",
            "tenant_id",
            "status",
            "channel",
            "total_cents",
            "subtotal_cents",
            "discount_cents",
            "platform_fee_cents",
            "processing_fee_cents",
            "confirmed_at",
            "created_at",
        ],
    )
    frames = {
        "stg_orders": orders,
        "stg_order_items": stg("order_items", lo, hi, ["order_id", "quantity"]),
        "stg_order_refunds": refunds,
        "stg_marketplace_transfers": transfers,
        "stg_platform_fees": stg(
            "platform_fees", lo, hi, ["transfer_id", "platform_fee_amount_cents", "venue_fee_amount_cents"]
        ),
        "stg_marketplace_listings": stg("marketplace_listings", first, last, ["tenant_id", "listed_at"]),
    }
    params = {"first": d0, "last": d1}
    parts = [run("checks/orders_by_day", frames, **params)]
    # a refund's order may be older than any window: look its channel up by key
    frames["stg_orders"] = stg("orders", columns=["id", "tenant_id", "channel"]).join(
        refunds.select(pl.col("order_id").alias("id")).unique(), on="id", how="semi"
    )
    parts += [
        run("checks/refunds_by_day", frames, **params),
        run("checks/resales_by_day", frames, **params),
        run("checks/listings_by_day", frames, **params).with_columns(
            pl.lit("marketplace:listings").alias("revenue_line")
        ),
    ]
    out = pl.concat(parts, how="diagonal_relaxed")
    out = out.with_columns(
        pl.col(m).cast(pl.Int64) if m in out.columns else pl.lit(0, pl.Int64).alias(m) for m in MEASURES
    ).fill_null(0)
    keys = ["day", "tenant_id", "revenue_line"]
    return out.group_by(keys).agg(pl.sum(m) for m in MEASURES).sort(keys, nulls_last=True)


def _lines(control: pl.DataFrame, prefix: str) -> pl.DataFrame:
    return control.filter(pl.col("revenue_line").str.starts_with(prefix))


#: the keys the daily marts are compared on
DAY_TENANT = ["day", "tenant_id"]


def check_daily(mart: str, control: pl.DataFrame, df: pl.DataFrame) -> CheckOutcome:
    """The reconciliation of one daily mart's rows `df` against the control totals of the same days, per day
    and tenant (every daily mart has tenant_id): a sale attributed to the wrong tenant is a difference."""
    o = r = _lines(control, "primary:")  # primary lines carry both the sales and their refunds
    x = _lines(control, "resale:")
    counts = [
        "tickets_sold",
        "orders",
        "tickets",
        "transactions",
        "unique_customers",
        "events_active",
        "listings_created",
        "resales",
        "cumulative_tickets_sold",
    ]
    negative = sum(non_negative(df, counts).values())
    if mart == "fct_orders":
        return _combine(
            compare(
                o,
                df.with_columns(pl.lit(1).alias("orders")),
                DAY_TENANT,
                ["orders", "tickets", "gross_revenue_cents", "ticket_revenue_cents", "fees_cents"],
            ),
            extra_failures={"negative": sum(non_negative(df, ["tickets", "gross_revenue_cents"]).values())},
        )
    if mart == "fct_refunds":
        return compare(
            r,
            df.with_columns(pl.lit(1).alias("refunds"), pl.col("refund_cents").alias("refunds_cents")),
            DAY_TENANT,
            ["refunds", "refunds_cents"],
        )
    if mart == "fct_resales":
        return compare(
            x,
            df.with_columns(
                pl.lit(1).alias("resales"),
                pl.col("sale_cents").alias("resale_volume_cents"),
                pl.col("platform_fee_cents").alias("platform_fees_cents"),
                pl.col("venue_fee_cents").alias("venue_fees_cents"),
            ),
            DAY_TENANT,
            ["resales", "resale_volume_cents", "platform_fees_cents", "venue_fees_cents"],
        )
    if mart == "venue_analytics":
        pct = df["capacity_sold_pct"].drop_nulls()
        return _combine(
            compare(
                o, df, DAY_TENANT, ["orders", "gross_revenue_cents", "ticket_revenue_cents", "fees_cents"]
            ),
            compare(o.rename({"tickets": "tickets_sold"}), df, DAY_TENANT, ["tickets_sold"]),
            compare(r, df, DAY_TENANT, ["refunds_cents"]),
            compare(
                x.rename({"resales": "resale_sales"}), df, DAY_TENANT, ["resale_sales", "resale_volume_cents"]
            ),
            extra_failures={
                "negative_counts": negative,
                "capacity_pct_out_of_range": int(((pct < 0) | (pct > 100)).sum()),
                "net_not_gross_minus_refunds": int(
                    (df["net_revenue_cents"] != df["gross_revenue_cents"] - df["refunds_cents"]).sum()
                ),
            },
        )
    if mart == "venue_analytics_hourly":
        return _combine(
            compare(
                o.rename({"tickets": "tickets_sold"}),
                df,
                DAY_TENANT,
                ["orders", "tickets_sold", "gross_revenue_cents"],
            ),
            extra_failures={
                "negative_counts": negative,
                "local_hour_out_of_range": int(((df["local_hour"] < 0) | (df["local_hour"] > 23)).sum()),
            },
        )
    if mart == "event_analytics":
        st = df["sell_through_pct"].drop_nulls()
        return _combine(
            compare(
                o.rename({"tickets": "tickets_sold"}),
                df,
                DAY_TENANT,
                ["orders", "tickets_sold", "gross_revenue_cents"],
            ),
            compare(r, df, DAY_TENANT, ["refunds_cents"]),
            extra_failures={
                "negative_counts": negative,
                "sell_through_negative": int((st < 0).sum()),
                "cumulative_below_daily": int((df["cumulative_tickets_sold"] < df["tickets_sold"]).sum()),
            },
        )
    if mart == "revenue_by_channel":
        prim = o.select(
            *DAY_TENANT,
            "revenue_line",
            "gross_revenue_cents",
            "fees_cents",
            "tickets",
            "refunds_cents",
            pl.col("orders").alias("transactions"),
        )
        res = x.select(
            *DAY_TENANT,
            "revenue_line",
            pl.col("resale_volume_cents").alias("gross_revenue_cents"),
            (pl.col("platform_fees_cents") + pl.col("venue_fees_cents")).alias("fees_cents"),
            pl.col("resales").alias("tickets"),
            "refunds_cents",
            pl.col("resales").alias("transactions"),
        )
        return _combine(
            compare(
                pl.concat([prim, res]),
                df,
                [*DAY_TENANT, "revenue_line"],
                ["gross_revenue_cents", "fees_cents", "tickets", "transactions", "refunds_cents"],
            ),
            extra_failures={"negative_counts": negative},
        )
    if mart == "revenue_by_category":
        return _combine(
            compare(o, df, DAY_TENANT, ["orders", "tickets", "gross_revenue_cents", "refunds_cents"]),
            extra_failures={"negative_counts": negative},
        )
    if mart == "resale_activity":
        return _combine(
            compare(
                x,
                df,
                DAY_TENANT,
                ["resales", "resale_volume_cents", "platform_fees_cents", "venue_fees_cents"],
            ),
            compare(_lines(control, "marketplace:listings"), df, DAY_TENANT, ["listings_created"]),
            extra_failures={"negative_counts": negative},
        )
    raise KeyError(f"no reconciliation for {mart}")


def check_totals(mart: str, control: pl.DataFrame, df: pl.DataFrame) -> CheckOutcome:
    """Reconciliation of a whole-table mart against the control totals of every day it covers, per tenant."""
    o = _lines(control, "primary:")
    if mart == "sales_metrics":
        outcomes = [
            compare(
                o.rename({"tickets": "tickets_sold"}),
                df.filter(pl.col("granularity") == g),
                ["tenant_id"],
                ["orders", "tickets_sold", "gross_revenue_cents"],
            )
            for g in ("day", "week", "month")
        ]
        for g, oc in zip(("day", "week", "month"), outcomes, strict=True):
            oc.metadata = {f"{g}_{k}": v for k, v in oc.metadata.items()}
        return _combine(
            *outcomes,
            extra_failures={
                "negative_counts": sum(
                    non_negative(df, ["tickets_sold", "orders", "unique_customers"]).values()
                )
            },
        )
    if mart == "event_performance":
        exp = o.rename({"tickets": "tickets_sold"}).with_columns(
            (pl.col("gross_revenue_cents") - pl.col("refunds_cents")).alias("net_revenue_cents")
        )
        return _combine(
            compare(exp, df, ["tenant_id"], ["tickets_sold", "gross_revenue_cents", "net_revenue_cents"]),
            extra_failures={
                "negative_counts": sum(
                    non_negative(df, ["tickets_sold", "capacity", "capacity_utilization_pct"]).values()
                ),
                "rank_gaps": int(
                    df.group_by("venue_id")
                    .agg((pl.col("revenue_rank").max() != pl.len()).alias("g"))["g"]
                    .sum()
                ),
            },
        )
    raise KeyError(f"no reconciliation for {mart}")


def check_no_shows(wh: Warehouse, result, now: datetime) -> CheckOutcome:
    """`result` (whole.NoShows): the recomputed rows' sold tickets and no-shows against an independent count
    (sql/checks/no_shows_total.sql) over the staging rows of the same events (every event after a full
    rebuild); the whole table's counts never negative, no-shows never above sold. The query runs in memory
    over the staging frames the build already read, cut to the recomputed events here, by the check."""
    df, events = result.recomputed, result.events
    tickets, scans = result.tickets, result.scans
    if events is not None:
        tickets = tickets.join(
            pl.DataFrame({"event_id": events}, schema={"event_id": pl.String}), on="event_id", how="semi"
        )
        scans = scans.join(tickets.select(pl.col("id").alias("ticket_id")), on="ticket_id", how="semi")
    exp = run(
        "checks/no_shows_total",
        {
            "stg_tickets": tickets,
            "stg_ticket_scans": scans,
            "stg_events": wh.read_table("stg_events", columns=["id", "status", "start_date"]),
            "stg_event_schedules": wh.read_table(
                "stg_event_schedules", columns=["event_id", "starts_at", "ends_at", "status", "deleted_at"]
            ),
        },
        now=now,
    )
    return _combine(
        compare(exp, df, [], ["tickets_sold", "no_shows"]),
        extra_failures={
            "negative_counts": sum(non_negative(result.rows, ["no_shows", "tickets_scanned"]).values()),
            "no_shows_above_sold": int((result.rows["no_shows"] > result.rows["tickets_sold"]).sum()),
        },
        metadata={"events_recomputed": len(events) if events is not None else "all"},
    )
