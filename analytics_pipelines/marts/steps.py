"""The marts' registry hooks: builders that need more than a day range, their checks and their metadata.

Every function takes the BuildContext (and, for checks and summaries, the Built the builder returned) and
nothing of Dagster: tests call them directly; analytics_pipelines/assets/factory.py wires them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl

from analytics_pipelines.marts import build as B
from analytics_pipelines.marts import checks, reconcile
from analytics_pipelines.marts import whole as W
from analytics_pipelines.marts.projections import BASELINE, MODEL, platform_backtest, project
from analytics_pipelines.registry.context import BuildContext, Built, md_table

MONEY = (
    "gross_revenue_cents",
    "net_revenue_cents",
    "refund_cents",
    "refunds_cents",
    "sale_cents",
    "resale_volume_cents",
)


def through(wh) -> str:
    """The last day with recognized sales (whole-table marts cover history up to it)."""
    d = wh.read("SELECT max(day) AS d FROM fct_orders")["d"][0]
    return (d or datetime.now(UTC).date()).isoformat() if not isinstance(d, str) else d


def control(wh, first: str | None = None, last: str | None = None) -> pl.DataFrame:
    if first is None:
        return wh.read_table("control_totals")
    return wh.read_partitions("control_totals", "day", first, last)


def daily_summary(ctx: BuildContext, built: Built) -> dict:
    """Money totals (the UI plots them across materializations) and a per-day table of the last days."""
    df = built.frames[ctx.table.name]
    meta = {}
    money = [c for c in MONEY if c in df.columns]
    for c in money:
        meta[f"total_{c}"] = int(df[c].sum() or 0)
    if df.height and "day" in df.columns:
        agg = [pl.len().alias("rows")] + [pl.sum(c) for c in money[:3]]
        meta["last_days"] = md_table(df.group_by("day").agg(agg).sort("day").tail(14), 14)
    return meta


# -- checks of the daily tables --------------------------------------------------------------------
def check_control_non_negative(ctx: BuildContext, built: Built) -> reconcile.CheckOutcome:
    negative = reconcile.non_negative(built.frames["control_totals"], reconcile.MEASURES)
    return reconcile.CheckOutcome(not negative, {f"negative_{k}": v for k, v in negative.items()})


def check_daily(ctx: BuildContext, built: Built) -> reconcile.CheckOutcome:
    """Per day, the mart's totals against control_totals (independent SQL over staging), to the cent."""
    return reconcile.check_daily(
        ctx.table.name, control(ctx.wh, ctx.first, ctx.last), built.frames[ctx.table.name]
    )


# -- whole-table marts -----------------------------------------------------------------------------
def sales_metrics(ctx: BuildContext) -> Built:
    wh = ctx.wh
    last = through(wh)
    since = None
    if not ctx.full_refresh:
        changed = ctx.changed_since_last("fct_orders")
        since = None if changed is None else min([*changed, last])
    previous = wh.read_table("sales_metrics") if since and "sales_metrics" in wh.tables() else None
    ctx.log.info(f"sales_metrics: {'full rebuild' if previous is None else f'periods from {since} on'}")
    df = W.sales_metrics(wh, last, since=since, previous=previous)
    by_grain = df.group_by("granularity").agg(pl.len().alias("rows"), pl.sum("gross_revenue_cents"))
    months = (
        df.filter(pl.col("granularity") == "month")
        .group_by("period_start")
        .agg(pl.sum("tickets_sold", "gross_revenue_cents"))
        .sort("period_start")
        .tail(12)
    )
    return Built(
        {"sales_metrics": df},
        metadata={
            "through": last,
            "mode": "full" if previous is None else f"incremental from {since}",
            "by_granularity": md_table(by_grain.sort("granularity")),
            "last_months": md_table(months, 12),
        },
    )


def check_totals(ctx: BuildContext, built: Built) -> reconcile.CheckOutcome:
    name = ctx.table.name
    return reconcile.check_totals(name, control(ctx.wh), built.frames[name])


def event_performance(ctx: BuildContext) -> Built:
    df = W.event_performance(ctx.wh)
    top = df.filter(pl.col("revenue_rank") == 1).sort("gross_revenue_cents", descending=True)
    return Built(
        {"event_performance": df},
        metadata={
            "top_event_per_venue": md_table(
                top.select(
                    "venue_id",
                    "event_name",
                    "tickets_sold",
                    "gross_revenue_cents",
                    "capacity_utilization_pct",
                ),
                10,
            )
        },
    )


def venue_seasonality(ctx: BuildContext) -> Built:
    last = through(ctx.wh)
    df = W.venue_seasonality(ctx.wh, last)
    summary = (
        df.group_by("month")
        .agg(
            pl.col("season").filter(pl.col("season") == "Peak").len().alias("peak_venues"),
            pl.col("avg_tickets").mean().round(1),
        )
        .sort("month")
    )
    return Built(
        {"venue_seasonality": df}, extras={"through": last}, metadata={"by_month": md_table(summary, 12)}
    )


def check_seasonality_reconciles(ctx: BuildContext, built: Built) -> reconcile.CheckOutcome:
    last = built.extras["through"]
    return checks.check_venue_seasonality(
        built.frames["venue_seasonality"], **checks.venue_seasonality_inputs(ctx.wh, last), through=last
    )


def check_valid_seasons(ctx: BuildContext, built: Built) -> reconcile.CheckOutcome:
    df = built.frames["venue_seasonality"]
    bad = df.filter(
        ~pl.col("month").is_between(1, 12) | ~pl.col("season").is_in(["Peak", "Normal", "Off Season"])
    )
    dup = df.height - df.select("venue_id", "month").unique().height
    return reconcile.CheckOutcome(
        bad.height == 0 and dup == 0, {"invalid_rows": bad.height, "duplicate_venue_months": dup}
    )


def revenue_projections(ctx: BuildContext, horizon: int | None = None) -> Built:
    wh = ctx.wh
    last = date.fromisoformat(through(wh))
    va = B.fact_history(
        wh, "venue_analytics", ["tenant_id", "venue_id", "day", "net_revenue_cents"], last.isoformat()
    )
    horizon = horizon or ctx.settings.projection_days
    result = project(va, last, horizon=horizon)
    overall = platform_backtest(result.backtest)
    p = result.projections
    return Built(
        {"revenue_projections": p, "revenue_projection_backtest": result.backtest},
        extras={"horizon": horizon},
        metadata={
            "as_of": last.isoformat(),
            "backtest": md_table(overall),
            "next_30_days_projected_cents": int(p["projected_net_revenue_cents"].sum() or 0),
        },
    )


def check_beats_old_rule(ctx: BuildContext, built: Built) -> reconcile.CheckOutcome:
    overall = platform_backtest(built.frames["revenue_projection_backtest"])
    err = dict(zip(overall["model"], overall["mean_total_abs_error_cents"], strict=True))
    mae = dict(zip(overall["model"], overall["mae_daily_cents"], strict=True))
    meta = {
        "model_mean_total_abs_error_cents": float(err.get(MODEL, 0)),
        "old_rule_mean_total_abs_error_cents": float(err.get(BASELINE, 0)),
        "model_mae_daily_cents": float(mae.get(MODEL, 0)),
        "old_rule_mae_daily_cents": float(mae.get(BASELINE, 0)),
        "origins": int(overall["origins"].max() or 0) if overall.height else 0,
    }
    if not err:
        return reconcile.CheckOutcome(
            True, meta, skipped="not enough history to backtest (needs 4 weeks + the horizon)"
        )
    return reconcile.CheckOutcome(err[MODEL] < err[BASELINE], meta)


def check_intervals(ctx: BuildContext, built: Built) -> reconcile.CheckOutcome:
    p = built.frames["revenue_projections"]
    outside = p.filter(
        (pl.col("lower_cents") > pl.col("projected_net_revenue_cents"))
        | (pl.col("upper_cents") < pl.col("projected_net_revenue_cents"))
    ).height
    return reconcile.CheckOutcome(outside == 0, {"rows_outside": outside})


def check_projection_invariants(ctx: BuildContext, built: Built) -> reconcile.CheckOutcome:
    return checks.check_revenue_projections(
        built.frames["revenue_projections"],
        horizon=built.extras["horizon"],
        venues=ctx.wh.read_table("stg_venues", columns=["id", "tenant_id"]),
    )


def ticket_type_price_snapshots(ctx: BuildContext) -> Built:
    """A snapshot can only be taken of the present: written under the run's last day, and only when that
    day is yesterday or later (a backfill of old days leaves old snapshots untouched)."""
    last = ctx.last
    if date.fromisoformat(last) < ctx.now.date() - timedelta(days=1):
        ctx.log.info(
            f"run ends {last}, before yesterday: no snapshot (it would stamp today's prices on the past)"
        )
        empty = W.ticket_type_price_snapshot(ctx.wh, last).clear()
        return Built(
            {"ticket_type_price_snapshots": empty},
            written={"ticket_type_price_snapshots": []},
            metadata={"snapshot_day": "none (historical range)"},
        )
    df = W.ticket_type_price_snapshot(ctx.wh, last)
    return Built(
        {"ticket_type_price_snapshots": df},
        written={"ticket_type_price_snapshots": [last]},
        metadata={"snapshot_day": last},
    )


def check_one_row_per_ticket_type(ctx: BuildContext, built: Built) -> reconcile.CheckOutcome:
    written = built.written.get("ticket_type_price_snapshots") or []
    if not written:
        return reconcile.CheckOutcome(
            True,
            {
                "rows": 0,
                "note": "no snapshot taken for a historical range: nothing "
                "was written, so nothing can be wrong",
            },
        )
    rows = ctx.wh.read_partitions(
        "ticket_type_price_snapshots", "day", written[0], written[0], columns=["ticket_type_id"]
    )
    expected = ctx.wh.count("stg_ticket_types")
    ok = rows.height == expected and rows["ticket_type_id"].n_unique() == expected
    return reconcile.CheckOutcome(ok, {"rows": rows.height, "ticket_types": expected})


def price_history(ctx: BuildContext) -> Built:
    from analytics_pipelines.pricing import history as H

    platform = W.price_history(ctx.wh)
    summary = W.event_price_summary(platform)
    # approved pricing recommendations (ops store) as 'recommendation' rows beside the platform's intervals
    approved = H.approved_changes(ctx.settings.ops_url)
    df = H.with_recommendations(
        platform,
        approved,
        ctx.wh.read_table("stg_ticket_types", columns=["id", "name"]),
        ctx.wh.read_table(
            "stg_ticket_price_history", columns=["id", "ticket_type_id", "new_price_cents", "changed_at"]
        ),
    )
    return Built(
        {"price_history": df, "event_price_summary": summary},
        extras={"approved": approved},
        metadata={
            "by_source": md_table(df.group_by("source").len().sort("source")),
            "event_price_summary_rows": summary.height,
        },
    )


def check_price_history(ctx: BuildContext, built: Built) -> reconcile.CheckOutcome:
    from analytics_pipelines.pricing import history as H

    df = built.frames["price_history"]
    intervals = checks.check_price_history(H.platform_rows(df), **checks.price_history_inputs(ctx.wh))
    approved = built.extras.get("approved")
    if approved is None:
        approved = H.approved_changes(ctx.settings.ops_url)
    recs = H.check_recommendation_rows(df, approved)
    return reconcile.CheckOutcome(
        intervals.passed and recs.passed, {**intervals.metadata, **recs.metadata}, intervals.differences
    )


def check_event_price_summary(ctx: BuildContext, built: Built) -> reconcile.CheckOutcome:
    from analytics_pipelines.pricing import history as H

    history = H.platform_rows(built.frames["price_history"])
    return checks.check_event_price_summary(
        built.frames["event_price_summary"], **checks.event_price_summary_inputs(ctx.wh, history)
    )


def no_shows(ctx: BuildContext) -> Built:
    wh = ctx.wh
    previous = None if ctx.full_refresh or "no_shows" not in wh.tables() else wh.read_table("no_shows")
    result = W.no_shows(wh, ctx.now, previous)
    df = result.rows
    rate = float(df["no_shows"].sum() / df["tickets_sold"].sum() * 100) if df.height else None
    return Built(
        {"no_shows": df},
        extras={"result": result},
        metadata={
            "overall_no_show_pct": rate,
            "mode": "full" if result.events is None else "incremental",
            "events_recomputed": df.height if result.events is None else len(result.events),
        },
    )


def check_no_shows(ctx: BuildContext, built: Built) -> reconcile.CheckOutcome:
    return reconcile.check_no_shows(ctx.wh, built.extras["result"], ctx.now)


# -- hourly KPI snapshots --------------------------------------------------------------------------
def hour_of(key: str) -> datetime:
    return datetime.strptime(key, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC)


def kpi_snapshots(wh, first: str, last: str, keys: list[str] | None = None) -> pl.DataFrame:
    start, end = hour_of(first), hour_of(last)
    hours = [start + timedelta(hours=h) for h in range(int((end - start).total_seconds() // 3600) + 1)]
    return W.kpi_snapshots(wh, hours)


def kpi_summary(ctx: BuildContext, built: Built) -> dict:
    df = built.frames["kpi_snapshots"]
    latest = df.filter((pl.col("hour_key") == ctx.last) & pl.col("venue_id").is_null())
    return {
        "hours": len(ctx.partition_keys),
        "latest": md_table(latest.select("tenant_id", "metric", "value"), 30),
    }


def check_kpis(ctx: BuildContext, built: Built) -> reconcile.CheckOutcome:
    """Tenant tickets and revenue of the last 24 h, counted from staging orders and items directly."""
    wh, df, key = ctx.wh, built.frames["kpi_snapshots"], ctx.last
    at = hour_of(key) + timedelta(hours=1)
    lo, hi = (at - timedelta(days=2)).date().isoformat(), at.date().isoformat()
    orders = wh.read_partitions(
        "stg_orders",
        "_partition",
        lo,
        hi,
        columns=["id", "tenant_id", "status", "confirmed_at", "created_at", "total_cents"],
    )
    items = wh.read_partitions("stg_order_items", "_partition", lo, hi, columns=["order_id", "quantity"])
    ts = pl.coalesce("confirmed_at", "created_at")
    paid = orders.filter(
        pl.col("status").is_in(["confirmed", "completed", "refunded"])
        & (ts > at - timedelta(hours=24))
        & (ts <= at)
    )
    qty = items.group_by("order_id").agg(pl.sum("quantity").alias("q"))
    exp = (
        paid.join(qty, left_on="id", right_on="order_id", how="left")
        .group_by("tenant_id")
        .agg(
            pl.col("q").fill_null(0).sum().alias("tickets_sold_24h"),
            pl.sum("total_cents").alias("gross_revenue_24h_cents"),
        )
    )
    got = df.filter(
        (pl.col("hour_key") == key)
        & pl.col("venue_id").is_null()
        & pl.col("metric").is_in(["tickets_sold_24h", "gross_revenue_24h_cents"])
    ).pivot(on="metric", index="tenant_id", values="value")
    for c in ("tickets_sold_24h", "gross_revenue_24h_cents"):
        if c not in got.columns:
            got = got.with_columns(pl.lit(0.0).alias(c))
    return reconcile.compare(exp, got, ["tenant_id"], ["tickets_sold_24h", "gross_revenue_24h_cents"])
