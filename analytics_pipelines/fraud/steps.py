"""Builders and checks of the fraud tables (registry/fraud.py): what the Dagster assets run, callable
without Dagster over a BuildContext."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from analytics_pipelines.fraud import scoring
from analytics_pipelines.fraud.features import REFUND_DAYS, RESALE_DAYS, Inputs, user_days
from analytics_pipelines.marts.reconcile import CheckOutcome
from analytics_pipelines.registry.context import BuildContext, Built

#: days of user-day features the IsolationForest is fitted on (ending with the run's last day)
FIT_DAYS = 30
LOOKBACK_DAYS = max(REFUND_DAYS, RESALE_DAYS) + FIT_DAYS
ORDER_COLS = [
    "id",
    "tenant_id",
    "user_id",
    "event_id",
    "status",
    "created_at",
    "confirmed_at",
    "cancelled_at",
    "payment_method",
    "channel",
]


def _days(first: str, back: int) -> str:
    return (date.fromisoformat(first) - timedelta(days=back)).isoformat()


def _part(ctx: BuildContext, table: str, first: str, last: str, columns: list[str]) -> pl.DataFrame:
    t = ctx.registry.table(table) if ctx.registry is not None else None
    column = t.partition_column if t is not None and t.partition_column else "_partition"
    if table not in ctx.wh.tables():
        return pl.DataFrame()
    return ctx.wh.read_partitions(table, column, first, last, columns=columns)


def read_orders(ctx: BuildContext, first: str, last: str) -> pl.DataFrame:
    o = _part(ctx, "stg_orders", first, last, ORDER_COLS)
    return o.with_columns(pl.coalesce("created_at", "confirmed_at", "cancelled_at").alias("t"))


def read_inputs(ctx: BuildContext, first: str, last: str) -> Inputs:
    orders = read_orders(ctx, first, last)
    ids = orders.select("id")
    items = _part(ctx, "stg_order_items", first, last, ["order_id", "quantity"]).join(
        ids, left_on="order_id", right_on="id", how="semi"
    )
    listings = _part(
        ctx,
        "stg_marketplace_listings",
        first,
        last,
        [
            "tenant_id",
            "seller_id",
            "ticket_id",
            "venue_id",
            "price_cents",
            "original_face_value_cents",
            "listed_at",
        ],
    )
    tickets = _part(ctx, "stg_tickets", first, last, ["id", "purchased_at"]).join(
        listings.select(pl.col("ticket_id").alias("id")), on="id", how="semi"
    )
    return Inputs(
        orders=orders,
        items=items,
        users=ctx.wh.read_table("stg_users", columns=["id", "created_at"]),
        events=ctx.wh.read_table("stg_events", columns=["id", "venue_id"]),
        refunds=_part(ctx, "stg_order_refunds", first, last, ["order_id", "created_at"]),
        listings=listings,
        tickets=tickets,
    )


# -- fraud_scores (daily) --------------------------------------------------------------------------------
def fraud_scores(ctx: BuildContext) -> Built:
    """Score every user-day of the run's range; fit the IsolationForest on the FIT_DAYS before and in it."""
    first, last = ctx.first, ctx.last
    lo, hi = date.fromisoformat(_days(first, FIT_DAYS)), date.fromisoformat(last)
    inputs = read_inputs(ctx, _days(first, LOOKBACK_DAYS), last)
    days = user_days(inputs, active_from=lo)
    unscorable = inputs.orders.filter(pl.col("user_id").is_null() | pl.col("t").is_null()).height
    fit = days.filter(pl.col("day").is_between(lo, hi))
    todo = days.filter(pl.col("day").is_between(date.fromisoformat(first), hi))
    scored, note = scoring.score(todo, fit, ctx.settings.fraud_flag_score, ctx.now)
    flagged = scored.filter(pl.col("risk_score") >= ctx.settings.fraud_flag_score)
    return Built(
        {"fraud_scores": scored},
        metadata={
            "user_days_scored": scored.height,
            "orders_read": inputs.orders.height,
            # no user or no timestamp: not attributable to an account (still counted in fraud_metrics_hourly
            # when they have a time)
            "orders_not_scorable": unscorable,
            "flagged_user_days": flagged.height,
            "model": note,
            "flag_score": ctx.settings.fraud_flag_score,
            **{f"flagged_{p}": int((flagged["pattern"] == p).sum()) for p in scoring.PATTERNS},
        },
    )


def check_scores(ctx: BuildContext, built: Built) -> CheckOutcome:
    df = built.frames["fraud_scores"]
    bad_score = df.filter(~pl.col("risk_score").is_between(0, 100) | pl.col("risk_score").is_null()).height
    bad_anomaly = df.filter(~pl.col("anomaly").is_between(0.0, 1.0) | pl.col("anomaly").is_nan()).height
    bad_level = df.filter(
        scoring.level(pl.col("risk_score"), ctx.settings.fraud_flag_score) != pl.col("risk_level")
    ).height
    bad_pattern = df.filter(~pl.col("pattern").is_in(scoring.PATTERNS)).height
    window = df.filter(pl.col("behaviour_start") > pl.col("behaviour_end")).height
    floats = [c for c, t in df.schema.items() if t.is_float()]
    nan = (
        int(df.select(pl.sum_horizontal(pl.col(c).is_nan().sum() for c in floats)).item())
        if floats and df.height
        else 0
    )
    return CheckOutcome(
        bad_score + bad_anomaly + bad_level + bad_pattern + window + nan == 0,
        {
            "nan_values": nan,
            "rows": df.height,
            "risk_outside_0_100": bad_score,
            "anomaly_outside_0_1": bad_anomaly,
            "level_mismatch": bad_level,
            "unknown_pattern": bad_pattern,
            "window_reversed": window,
        },
    )


# -- fraud_events (whole table) --------------------------------------------------------------------------
def fraud_events(ctx: BuildContext) -> pl.DataFrame:
    """Every flagged user-day so far, merged into one event per behaviour; first-flag times kept."""
    flag = ctx.settings.fraud_flag_score
    tables = ctx.wh.tables()
    if "fraud_scores" not in tables:
        return scoring.events(pl.DataFrame(), None, ctx.now)
    cols = [
        "tenant_id",
        "venue_id",
        "user_id",
        "day",
        "pattern",
        "risk_score",
        "risk_level",
        "reasons",
        "evidence",
        "model_version",
        "behaviour_start",
        "behaviour_end",
    ]
    flagged = ctx.wh.read_table("fraud_scores", "risk_score >= %s", [flag], columns=cols)
    previous = (
        ctx.wh.read_table("fraud_events", columns=["event_id", "scored_at"])
        if "fraud_events" in tables
        else None
    )
    return scoring.events(flagged, previous, ctx.now)


def check_events(ctx: BuildContext, built: Built) -> CheckOutcome:
    ev = built.frames["fraud_events"]
    g = ["tenant_id", "user_id", "pattern"]
    overlap = (
        ev.sort([*g, "behaviour_start"])
        .with_columns(pl.col("behaviour_end").shift(1).over(g).alias("_prev"))
        .filter(pl.col("behaviour_start") <= pl.col("_prev"))
        .height
    )
    reversed_ = ev.filter(pl.col("behaviour_start") > pl.col("behaviour_end")).height
    below = ev.filter(pl.col("risk_score") < ctx.settings.fraud_flag_score).height
    return CheckOutcome(
        overlap + reversed_ + below == 0,
        {
            "events": ev.height,
            "overlapping_events_of_one_behaviour": overlap,
            "window_reversed": reversed_,
            "below_flag_score": below,
        },
    )


# -- fraud_metrics_hourly (daily) ------------------------------------------------------------------------
def fraud_metrics_hourly(ctx: BuildContext) -> pl.DataFrame:
    orders = read_orders(ctx, ctx.first, ctx.last).join(
        ctx.wh.read_table("stg_events", columns=["id", "venue_id"]).rename({"id": "event_id"}),
        on="event_id",
        how="left",
    )
    ev = (
        ctx.wh.read_table("fraud_events")
        if "fraud_events" in ctx.wh.tables()
        else scoring.events(pl.DataFrame(), None, ctx.now)
    )
    return scoring.hourly(orders, ev)


def check_metrics(ctx: BuildContext, built: Built) -> CheckOutcome:
    """Orders per day equal an independent count of stg_orders (by the partition the orders sit in)."""
    m = built.frames["fraud_metrics_hourly"]
    got = m.group_by("day").agg(pl.sum("orders")).rename({"orders": "got"})
    o = read_orders(ctx, ctx.first, ctx.last).filter(pl.col("t").is_not_null())
    want = o.group_by(pl.col("t").dt.date().alias("day")).len().rename({"len": "want"})
    diff = (
        want.join(got, on="day", how="full", coalesce=True)
        .fill_null(0)
        .filter(pl.col("want") != pl.col("got"))
    )
    bad = m.filter(
        (pl.col("flagged_orders") > pl.col("orders")) | ~pl.col("fraud_pct").is_between(0, 100)
    ).height
    return CheckOutcome(
        diff.height == 0 and bad == 0,
        {"days_differing": diff.height, "rows_out_of_range": bad},
        differences=diff if diff.height else None,
    )
