"""Mart assets: facts, daily marts, whole-table marts and hourly KPI snapshots.

Thin wiring: each asset reads/derives through analytics_pipelines.marts.build, replaces its partitions, and
reports a reconciliation check computed by analytics_pipelines.marts.reconcile (independent SQL over
staging, to the cent). Daily assets take a whole partition range in one run (single-run backfill policy).
"""

import os
import warnings
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import polars as pl
from pydantic import Field

from analytics_pipelines.assets.metadata import frame_preview, table_metadata
from analytics_pipelines.marts import build as B
from analytics_pipelines.marts import reconcile
from analytics_pipelines.marts.projections import BASELINE, MODEL, project
from analytics_pipelines.partitions import PARTITION_START, daily_partitions
from analytics_pipelines.resources import WarehouseResource, warehouse_kind

warnings.filterwarnings("ignore", category=dg.BetaWarning)
OWNERS = ["team:analytics"]
RECONCILES = "reconciles_to_staging"
hourly_partitions = dg.HourlyPartitionsDefinition(start_date=f"{PARTITION_START}-00:00", timezone="UTC",
                                                  end_offset=1)

_MONEY = ("gross_revenue_cents", "net_revenue_cents", "refund_cents", "refunds_cents", "sale_cents",
          "resale_volume_cents")


def _daily_summary(df: pl.DataFrame) -> dict:
    """Numeric totals (the UI plots them across materializations) and a per-day table of the last days."""
    meta = {}
    money = [c for c in _MONEY if c in df.columns]
    for c in money:
        meta[f"total_{c}"] = int(df[c].sum() or 0)
    if df.height and "day" in df.columns:
        agg = [pl.len().alias("rows")] + [pl.sum(c) for c in money[:3]]
        by_day = df.group_by("day").agg(agg).sort("day").tail(14)
        meta["last_days"] = dg.MetadataValue.md(frame_preview(by_day, 14))
    return meta


def _check(outcome: reconcile.CheckOutcome, name: str = RECONCILES) -> dg.AssetCheckResult:
    meta = dict(outcome.metadata)
    if outcome.differences is not None and outcome.differences.height:
        meta["differences"] = dg.MetadataValue.md(frame_preview(outcome.differences, 10))
    return dg.AssetCheckResult(check_name=name, passed=outcome.passed, metadata=meta)


def _range(context: dg.AssetExecutionContext) -> tuple[list[str], str, str]:
    keys = sorted(context.partition_keys)
    return keys, keys[0], keys[-1]


def _dep_keys(inputs) -> list[dg.AssetDep]:
    return [dg.AssetDep(i) for i in inputs]


@dg.asset(
    name="control_totals", group_name="facts", owners=OWNERS, kinds={warehouse_kind(), "duckdb"},
    partitions_def=daily_partitions, backfill_policy=dg.BackfillPolicy.single_run(),
    deps=_dep_keys(["stg_orders", "stg_order_items", "stg_order_refunds", "stg_marketplace_transfers",
                    "stg_platform_fees", "stg_marketplace_listings"]),
    description="Control totals per day and revenue line (orders, tickets, gross/ticket revenue, fees, refunds, "
                "resales, resale fees, listings), re-derived from staging by independent SQL (sql/checks/), not "
                "by the marts' own queries. Every mart's reconciliation check compares against them to the cent.",
    metadata={"warehouse_table": "control_totals", "partitioned_by": "day"},
    check_specs=[dg.AssetCheckSpec("non_negative_measures", asset="control_totals",
                                   description="no measure is negative (refunds and fees are amounts, not signs)")],
)
def control_totals(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    keys, first, last = _range(context)
    df = reconcile.control_totals(wh, first, last).filter(pl.col("day").cast(pl.String).is_in(keys))
    wh.write_partitions("control_totals", df, ["day"], [(k,) for k in keys])
    negative = reconcile.non_negative(df, reconcile.MEASURES)
    return dg.MaterializeResult(
        metadata={**table_metadata(wh, "control_totals", df.height, preview=df), **_daily_summary(df)},
        check_results=[dg.AssetCheckResult(check_name="non_negative_measures", passed=not negative,
                                           metadata={f"negative_{k}": v for k, v in negative.items()})])


def _control(wh, first: str | None = None, last: str | None = None) -> pl.DataFrame:
    if first is None:
        return wh.read_table("control_totals")
    return wh.read_partitions("control_totals", "day", first, last)


def _daily_asset(mart: B.DailyMart) -> dg.AssetsDefinition:
    group = "facts" if mart.name.startswith("fct_") else "marts"

    @dg.asset(
        name=mart.name, group_name=group, owners=OWNERS, kinds={warehouse_kind(), "duckdb"},
        partitions_def=daily_partitions, backfill_policy=dg.BackfillPolicy.single_run(),
        deps=_dep_keys([*mart.inputs, "control_totals"]),
        check_specs=[dg.AssetCheckSpec(RECONCILES, asset=mart.name, description=(
            "Per day totals match `control_totals` (re-derived from staging by independent SQL) to the cent; "
            "counts never negative; percentages within range."))],
        description=f"{mart.description} Daily partitions by `day` (UTC); see docs/marts.md.",
        metadata={"warehouse_table": mart.name, "partitioned_by": "day"},
    )
    def _asset(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        wh = warehouse.get()
        keys, first, last = _range(context)
        df = mart.build(wh, first, last)
        df = df.filter(pl.col("day").cast(pl.String).is_in(keys))  # a non-contiguous selection
        wh.write_partitions(mart.name, df, ["day"], [(k,) for k in keys])
        outcome = reconcile.check_daily(mart.name, _control(wh, first, last), df)
        context.log.info(f"{mart.name}: {df.height} rows over {len(keys)} day(s); reconciled={outcome.passed}")
        return dg.MaterializeResult(
            metadata={**table_metadata(wh, mart.name, df.height, preview=df), "partitions": len(keys),
                      **_daily_summary(df)},
            check_results=[_check(outcome)])

    return _asset


def _through(wh) -> str:
    """The last day with recognized sales (whole-table marts cover history up to it)."""
    d = wh.read("SELECT max(day) AS d FROM fct_orders")["d"][0]
    return (d or datetime.now(UTC).date()).isoformat() if not isinstance(d, str) else d


def upstream_partitions_since(context: dg.AssetExecutionContext, asset: str, upstream: str) -> list[str] | None:
    """The partitions of `upstream` materialized since `asset` was last materialized (from the Dagster
    event log): what an incremental rebuild of `asset` must redo. None when `asset` was never materialized
    (build everything)."""
    instance = context.instance
    last = instance.get_latest_materialization_event(dg.AssetKey(asset))
    if last is None:
        return None
    keys, cursor = [], None
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(upstream), after_timestamp=last.timestamp), limit=1000,
            cursor=cursor)
        keys += [r.asset_materialization.partition for r in page.records
                 if r.asset_materialization is not None and r.asset_materialization.partition]
        if not page.has_more:
            break
        cursor = page.cursor
    return keys


def _first_changed_day(context: dg.AssetExecutionContext, asset: str, upstream: str, through: str) -> str | None:
    """The earliest daily partition of `upstream` materialized since `asset` was last materialized: what an
    incremental rebuild must start from. None when `asset` was never materialized (build everything);
    `through` when nothing upstream changed."""
    keys = upstream_partitions_since(context, asset, upstream)
    return None if keys is None else min([*keys, through])


class IncrementalConfig(dg.Config):
    """Launchpad option of the incremental whole-table marts."""

    full_refresh: bool = Field(default=False, description=(
        "Recompute every row instead of only what recent data can change (after a backfill that rewrote old "
        "staging partitions)."))


def _whole(name: str, deps: list[str], description: str, check: str | None = None, **kw):
    """Decorator factory for an unpartitioned mart asset in the marts group."""
    specs = [dg.AssetCheckSpec(check, asset=name, description=kw.pop("check_description", ""))] if check else []
    return dg.asset(name=name, group_name="marts", owners=OWNERS, kinds={warehouse_kind(), "duckdb"},
                    deps=_dep_keys(deps), check_specs=specs, description=description,
                    metadata={"warehouse_table": name}, **kw)


@_whole("sales_metrics", ["fct_orders", "control_totals"], check=RECONCILES,
        check_description="day, week and month grains each add up to staging's all-time primary sales.",
        description="Primary sales per venue at hour (last 14 days), day, week (ISO) and month grain, zero-filled, "
                    "with growth % against the previous period (NULL when the previous period is 0).")
def sales_metrics(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                  config: IncrementalConfig) -> dg.MaterializeResult:
    wh = warehouse.get()
    through = _through(wh)
    since = None if config.full_refresh else _first_changed_day(context, "sales_metrics", "fct_orders", through)
    previous = wh.read_table("sales_metrics") if since and "sales_metrics" in wh.tables() else None
    context.log.info(f"sales_metrics: {'full rebuild' if previous is None else f'periods from {since} on'}")
    df = B.sales_metrics(wh, through, since=since, previous=previous)
    wh.replace_table("sales_metrics", df)
    outcome = reconcile.check_totals("sales_metrics", _control(wh), df)
    by_grain = df.group_by("granularity").agg(pl.len().alias("rows"), pl.sum("gross_revenue_cents")).sort("granularity")
    return dg.MaterializeResult(
        metadata={**table_metadata(wh, "sales_metrics", df.height), "through": through,
                  "mode": "full" if previous is None else f"incremental from {since}",
                  "by_granularity": dg.MetadataValue.md(frame_preview(by_grain)),
                  "last_months": dg.MetadataValue.md(frame_preview(
                      df.filter(pl.col("granularity") == "month").group_by("period_start").agg(
                          pl.sum("tickets_sold", "gross_revenue_cents")).sort("period_start").tail(12), 12))},
        check_results=[_check(outcome)])


@_whole("event_performance", ["fct_orders", "fct_refunds", "stg_events", "stg_ticket_types", "control_totals"],
        check=RECONCILES,
        check_description="all-time tickets, gross and net revenue equal staging's; ranks dense per venue.",
        description="Every event with all-time tickets, gross and net revenue, capacity and utilization %, ranked "
                    "per venue by revenue (`is_top_10` = the venue's top events).")
def event_performance(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    df = B.event_performance(wh)
    wh.replace_table("event_performance", df)
    outcome = reconcile.check_totals("event_performance", _control(wh), df)
    top = df.filter(pl.col("revenue_rank") == 1).sort("gross_revenue_cents", descending=True)
    return dg.MaterializeResult(
        metadata={**table_metadata(wh, "event_performance", df.height),
                  "top_event_per_venue": dg.MetadataValue.md(frame_preview(
                      top.select("venue_id", "event_name", "tickets_sold", "gross_revenue_cents",
                                 "capacity_utilization_pct"), 10))},
        check_results=[_check(outcome)])


@_whole("venue_seasonality", ["venue_analytics"], check="valid_seasons",
        check_description="months 1-12, one row per venue and month, season in Peak/Normal/Off Season.",
        description="The old service's seasonality per venue and calendar month over the last two years: average "
                    "tickets, revenue, days with sales, volatility % and Peak/Normal/Off Season by the ratio to the "
                    "venue's mean month (> 1.2 Peak, > 0.8 Normal).")
def venue_seasonality(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    df = B.venue_seasonality(wh, _through(wh))
    wh.replace_table("venue_seasonality", df)
    bad = df.filter(~pl.col("month").is_between(1, 12) | ~pl.col("season").is_in(["Peak", "Normal", "Off Season"]))
    dup = df.height - df.select("venue_id", "month").unique().height
    summary = df.group_by("month").agg(pl.col("season").filter(pl.col("season") == "Peak").len().alias("peak_venues"),
                                       pl.col("avg_tickets").mean().round(1)).sort("month")
    return dg.MaterializeResult(
        metadata={**table_metadata(wh, "venue_seasonality", df.height),
                  "by_month": dg.MetadataValue.md(frame_preview(summary, 12))},
        check_results=[dg.AssetCheckResult(check_name="valid_seasons", passed=bad.height == 0 and dup == 0,
                                           metadata={"invalid_rows": bad.height, "duplicate_venue_months": dup})])


@dg.asset(name="revenue_projections", group_name="marts", owners=OWNERS, kinds={warehouse_kind(), "numpy"},
          deps=[dg.AssetDep("venue_analytics")],
          check_specs=[dg.AssetCheckSpec("beats_old_rule", asset="revenue_projections",
                                         description="Backtest: the model's mean absolute error of the 30-day total "
                                                     "is below the old 'average of the last 30 days x days' rule's."),
                       dg.AssetCheckSpec("interval_contains_projection", asset="revenue_projections",
                                         description="lower <= projected <= upper on every row.")],
          description="Net revenue projected per venue and day for the next 30 days with 80 % prediction intervals "
                      "(weekday profile x recent level), plus `revenue_projection_backtest`: rolling-origin errors "
                      "of the model and of the old service's rule.",
          metadata={"warehouse_table": "revenue_projections"})
def revenue_projections(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    through = date.fromisoformat(_through(wh))
    va = B.fact_history(wh, "venue_analytics", ["tenant_id", "venue_id", "day", "net_revenue_cents"], through.isoformat())
    result = project(va, through, horizon=int(os.environ.get("TT_PROJECTION_DAYS", "30")))
    wh.replace_table("revenue_projections", result.projections)
    wh.replace_table("revenue_projection_backtest", result.backtest)
    overall = result.backtest.filter(pl.col("venue_id").is_null())
    err = dict(zip(overall["model"], overall["mean_total_abs_error_cents"], strict=True))
    mae = dict(zip(overall["model"], overall["mae_daily_cents"], strict=True))
    beats = bool(err) and err[MODEL] < err[BASELINE]
    p = result.projections
    inside = p.filter((pl.col("lower_cents") > pl.col("projected_net_revenue_cents"))
                      | (pl.col("upper_cents") < pl.col("projected_net_revenue_cents"))).height
    return dg.MaterializeResult(
        metadata={**table_metadata(wh, "revenue_projections", p.height), "as_of": through.isoformat(),
                  "backtest": dg.MetadataValue.md(frame_preview(overall)),
                  "model_total_error_vs_old_rule": round(err[MODEL] / err[BASELINE], 4) if err else None,
                  "next_30_days_projected_cents": int(p["projected_net_revenue_cents"].sum() or 0)},
        check_results=[
            dg.AssetCheckResult(check_name="beats_old_rule", passed=beats, severity=(
                dg.AssetCheckSeverity.ERROR if err else dg.AssetCheckSeverity.WARN), description=(
                None if err else "not enough history to backtest (needs 4 weeks + the horizon)"), metadata={
                "model_mean_total_abs_error_cents": float(err.get(MODEL, 0)),
                "old_rule_mean_total_abs_error_cents": float(err.get(BASELINE, 0)),
                "model_mae_daily_cents": float(mae.get(MODEL, 0)), "old_rule_mae_daily_cents": float(mae.get(BASELINE, 0)),
                "origins": int(overall["origins"].max() or 0) if overall.height else 0}),
            dg.AssetCheckResult(check_name="interval_contains_projection", passed=inside == 0,
                                metadata={"rows_outside": inside})])


@dg.asset(name="ticket_type_price_snapshots", group_name="marts", owners=OWNERS, kinds={warehouse_kind(), "polars"},
          partitions_def=daily_partitions, backfill_policy=dg.BackfillPolicy.single_run(),
          deps=[dg.AssetDep("stg_ticket_types")],
          check_specs=[dg.AssetCheckSpec("one_row_per_ticket_type", asset="ticket_type_price_snapshots",
                                         description="the snapshot holds every staged ticket type exactly once")],
          description="A daily snapshot of every ticket type's current price (ticket_types.price), so that price "
                      "changes the platform did not log in ticket_price_history still enter `price_history`. A "
                      "snapshot can only be taken of the present: a run writes it under its last day, and only when "
                      "that day is yesterday or later (backfills of old days leave old snapshots untouched).")
def ticket_type_price_snapshots(context: dg.AssetExecutionContext,
                                warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    keys, _, last = _range(context)
    today = datetime.now(UTC).date()
    if date.fromisoformat(last) < today - timedelta(days=1):
        context.log.info(f"run ends {last}, before yesterday: no snapshot (it would stamp today's prices on the past)")
        return dg.MaterializeResult(
            metadata={"snapshot_day": "none (historical range)", "dagster/row_count": 0},
            check_results=[dg.AssetCheckResult(check_name="one_row_per_ticket_type", passed=True,
                                               description="no snapshot taken for a historical range")])
    df = B.ticket_type_price_snapshot(wh, last)
    wh.write_partitions("ticket_type_price_snapshots", df, ["day"], [(last,)])
    written = wh.read_partitions("ticket_type_price_snapshots", "day", last, last, columns=["ticket_type_id"])
    expected = wh.count("stg_ticket_types")
    ok = written.height == expected and written["ticket_type_id"].n_unique() == expected
    return dg.MaterializeResult(
        metadata={**table_metadata(wh, "ticket_type_price_snapshots", df.height, preview=df), "snapshot_day": last},
        check_results=[dg.AssetCheckResult(check_name="one_row_per_ticket_type", passed=ok,
                                           metadata={"rows": written.height, "ticket_types": expected})])


@_whole("price_history", ["stg_ticket_price_history", "stg_ticket_types", "ticket_type_price_snapshots"],
        check="valid_intervals",
        check_description="one open interval per ticket type, at today's price; no empty or inverted interval.",
        description="Every price of every ticket type as validity intervals [valid_from, valid_to) from "
                    "ticket_price_history plus the daily snapshots; also writes `event_price_summary` (current "
                    "price range and number of changes per event).")
def price_history(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    df = B.price_history(wh)
    wh.replace_table("price_history", df)
    summary = B.event_price_summary(df)
    wh.replace_table("event_price_summary", summary)
    outcome = reconcile.check_price_history(wh, df)
    return dg.MaterializeResult(
        metadata={**table_metadata(wh, "price_history", df.height, preview=df),
                  "by_source": dg.MetadataValue.md(frame_preview(df.group_by("source").len().sort("source"))),
                  "event_price_summary_rows": summary.height},
        check_results=[_check(outcome, "valid_intervals")])


@_whole("no_shows", ["stg_tickets", "stg_ticket_scans", "stg_events", "stg_event_schedules"], check=RECONCILES,
        check_description="the recomputed events' sold tickets and no-shows equal an independent count over "
                          "staging; no negative counts, no-shows never above sold.",
        description="Per ended event (not cancelled or postponed): sold tickets, tickets with a valid scan, "
                    "no-shows and the no-show rate %. Incremental: events that ended more than "
                    f"{B.NO_SHOW_SETTLE_DAYS} days ago keep their row; the others are recomputed (config "
                    "`full_refresh` recomputes all).")
def no_shows(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
             config: IncrementalConfig) -> dg.MaterializeResult:
    wh = warehouse.get()
    now = datetime.now(UTC)
    previous = None if config.full_refresh or "no_shows" not in wh.tables() else wh.read_table("no_shows")
    result = B.no_shows(wh, now, previous)
    df = result.rows
    wh.replace_table("no_shows", df)
    outcome = reconcile.check_no_shows(wh, result, now)
    rate = float(df["no_shows"].sum() / df["tickets_sold"].sum() * 100) if df.height else None
    return dg.MaterializeResult(
        metadata={**table_metadata(wh, "no_shows", df.height, preview=df), "overall_no_show_pct": rate,
                  "mode": "full" if result.events is None else "incremental",
                  "events_recomputed": df.height if result.events is None else len(result.events)},
        check_results=[_check(outcome)])


@dg.asset(name="kpi_snapshots", group_name="kpis", owners=OWNERS, kinds={warehouse_kind(), "duckdb"},
          partitions_def=hourly_partitions, backfill_policy=dg.BackfillPolicy.single_run(),
          deps=[dg.AssetDep(d) for d in ("fct_orders", "fct_refunds", "fct_resales", "stg_venues", "stg_events",
                                         "stg_ticket_types")],
          check_specs=[dg.AssetCheckSpec(RECONCILES, asset="kpi_snapshots",
                                         description="tenant tickets_sold_24h and gross_revenue_24h_cents equal an "
                                                     "independent staging count over the same 24 h")],
          description="Business KPIs per hour (the monitoring service's collectors, done right), per tenant and per "
                      "venue, long form (metric, value): venues total/active, events published/on sale, tickets "
                      "sold, revenue, refunds and refund rate, resale volume over the last 24 h, hourly revenue and "
                      "its change. Kept as history: one partition per hour.",
          metadata={"warehouse_table": "kpi_snapshots", "partitioned_by": "hour_key"})
def kpi_snapshots(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    keys = sorted(context.partition_keys)
    df = B.kpi_snapshots(wh, [datetime.strptime(k, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC) for k in keys])
    wh.write_partitions("kpi_snapshots", df, ["hour_key"], [(k,) for k in keys])
    outcome = kpi_reconcile(wh, df, keys[-1])
    latest = df.filter((pl.col("hour_key") == keys[-1]) & pl.col("venue_id").is_null())
    return dg.MaterializeResult(
        metadata={**table_metadata(wh, "kpi_snapshots", df.height), "hours": len(keys),
                  "latest": dg.MetadataValue.md(frame_preview(latest.select("tenant_id", "metric", "value"), 30))},
        check_results=[_check(outcome)])


def kpi_reconcile(wh, df: pl.DataFrame, key: str) -> reconcile.CheckOutcome:
    """Tenant tickets and revenue of the last 24 h, counted from staging orders and items directly."""
    at = datetime.strptime(key, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC) + timedelta(hours=1)
    lo, hi = (at - timedelta(days=2)).date().isoformat(), at.date().isoformat()
    orders = wh.read_partitions("stg_orders", "_partition", lo, hi,
                                columns=["id", "tenant_id", "status", "confirmed_at", "created_at", "total_cents"])
    items = wh.read_partitions("stg_order_items", "_partition", lo, hi, columns=["order_id", "quantity"])
    ts = pl.coalesce("confirmed_at", "created_at")
    paid = orders.filter(pl.col("status").is_in(["confirmed", "completed", "refunded"])
                         & (ts > at - timedelta(hours=24)) & (ts <= at))
    qty = items.group_by("order_id").agg(pl.sum("quantity").alias("q"))
    exp = (paid.join(qty, left_on="id", right_on="order_id", how="left").group_by("tenant_id")
           .agg(pl.col("q").fill_null(0).sum().alias("tickets_sold_24h"),
                pl.sum("total_cents").alias("gross_revenue_24h_cents")))
    got = (df.filter((pl.col("hour_key") == key) & pl.col("venue_id").is_null()
                     & pl.col("metric").is_in(["tickets_sold_24h", "gross_revenue_24h_cents"]))
           .pivot(on="metric", index="tenant_id", values="value"))
    for c in ("tickets_sold_24h", "gross_revenue_24h_cents"):
        if c not in got.columns:
            got = got.with_columns(pl.lit(0.0).alias(c))
    return reconcile.compare(exp, got, ["tenant_id"], ["tickets_sold_24h", "gross_revenue_24h_cents"])


daily_assets = [_daily_asset(m) for m in B.DAILY_MARTS]
assets = [control_totals, *daily_assets, sales_metrics, event_performance, venue_seasonality, revenue_projections,
          ticket_type_price_snapshots, price_history, no_shows, kpi_snapshots]
