"""The customer marts' registry hooks: builders, checks and metadata over the BuildContext.

Pure wiring of analytics_pipelines.customers.build / churn / lifetime / reconcile; nothing of Dagster.
Rules and columns: docs/customers.md.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from analytics_pipelines.customers import build as CB
from analytics_pipelines.customers import build_360, checks, churn, lifetime
from analytics_pipelines.customers import reconcile as R
from analytics_pipelines.customers import rfm_history as H
from analytics_pipelines.marts.reconcile import CheckOutcome
from analytics_pipelines.registry.context import BuildContext, Built, md_table


def through(wh) -> date:
    d = CB.last_sales_day(wh)
    if d is None:
        raise ValueError("fct_orders is empty: no recognized sales to build customer marts from")
    return d


def customer_attendance(ctx: BuildContext) -> Built:
    inputs = CB.attendance_inputs(ctx.wh)
    df = CB.attendance(ctx.wh, ctx.now, inputs)
    return Built(
        {"customer_attendance": df},
        extras={"inputs": inputs},
        metadata={
            "now": ctx.now.isoformat(),
            "holders": df["user_id"].n_unique(),
            "tickets_ended": int(df["tickets_ended"].sum() or 0),
            "no_shows": int(df["no_shows"].sum() or 0),
        },
    )


def check_attendance(ctx: BuildContext, built: Built) -> CheckOutcome:
    inputs = built.extras["inputs"]
    return R.check_attendance(
        ctx.wh, built.frames["customer_attendance"], inputs["tickets"], inputs["scans"], ctx.now
    )


def customer_rfm_scores(ctx: BuildContext) -> Built:
    """The run's days of RFM (as of each day's end, UTC) from the stored settled state and the last days'
    orders (customers/rfm_history.py; all of fct_orders on the first run or `full_refresh`), the settled state
    for the next run, and retention: old partitions that are not Sundays are emptied in the same write."""
    days = [date.fromisoformat(k) for k in ctx.partition_keys]
    h = H.build_history(ctx.wh, days, ctx.full_refresh, ctx.changed_since_last("fct_orders"))
    dropped = H.to_drop(CB.rfm_as_of_dates(ctx.wh), days, ctx.now.date())
    df = pl.concat(h.scores.values(), how="vertical_relaxed")
    if h.obsolete_states:  # nothing reads them again (the factory writes the new state after this)
        ctx.wh.drop_partitions(H.STATE, "state_day", (max(h.obsolete_states) + timedelta(days=1)).isoformat())
    latest = max(days)
    last = df.filter((pl.col("as_of") == latest) & (pl.col("scope") == "platform"))
    segs = (
        last.group_by("segment")
        .agg(pl.len().alias("customers"), pl.sum("monetary_cents"))
        .sort("customers", descending=True)
    )
    return Built(
        {H.SCORES: df, H.STATE: h.state},
        written={
            H.SCORES: sorted({d.isoformat() for d in (*days, *dropped)}),
            H.STATE: [h.state_day.isoformat()],
        },
        metadata={
            "mode": h.mode,
            "days": len(days),
            "latest_as_of": latest.isoformat(),
            "orders_read": h.orders_read,
            "state_day": h.state_day.isoformat(),
            "state_rows": h.state.height,
            "platform_customers": last.height,
            "retention": f"last {H.RETAIN_DAYS} days and every Sunday",
            "dropped_partitions": len(dropped),
            "dropped": ", ".join(d.isoformat() for d in dropped) or "none",
            "dropped_states": ", ".join(d.isoformat() for d in h.obsolete_states) or "none",
            "platform_segments": md_table(segs, 12),
        },
    )


def check_rfm(ctx: BuildContext, built: Built) -> CheckOutcome:
    return R.check_rfm(ctx.wh, built.frames["customer_rfm_scores"])


def customer_segment_transitions(ctx: BuildContext) -> Built:
    wh = ctx.wh
    # transitions compare consecutive Sundays (the weekly history retention keeps): only the pairs touching
    # a Sunday partition of customer_rfm_scores rewritten since the last build are recomputed (a partition
    # holds its own day's rows only: rewriting another day changes no pair)
    days = None if ctx.full_refresh else ctx.changed_since_last("customer_rfm_scores")
    have = "customer_segment_transitions" in wh.tables()
    previous = wh.read_table("customer_segment_transitions") if days is not None and have else None
    changed = CB.sundays_of(days) if days is not None else None
    df = CB.segment_transitions(wh, previous=previous, changed=changed)
    last = (
        df.filter((pl.col("to_as_of") == df["to_as_of"].max()) & (pl.col("scope") == "platform"))
        if df.height
        else df
    )
    moved = last.filter(pl.col("from_segment") != pl.col("to_segment")).sort("customers", descending=True)
    return Built(
        {"customer_segment_transitions": df},
        metadata={
            "mode": "full"
            if previous is None
            else f"incremental ({len(changed or ())} RFM Sundays rewritten)",
            "as_of_pairs": df.select("from_as_of", "to_as_of").unique().height if df.height else 0,
            "latest_platform_moves": md_table(moved.select("from_segment", "to_segment", "customers"), 12),
        },
    )


def check_transitions(ctx: BuildContext, built: Built) -> CheckOutcome:
    counts = ctx.wh.read(
        "SELECT as_of, scope, scope_id, count(*) AS customers FROM customer_rfm_scores GROUP BY 1, 2, 3"
    )
    return R.check_transitions(built.frames["customer_segment_transitions"], counts)


def customer_churn_model(ctx: BuildContext) -> Built:
    """Trains and saves the churn model (an artifact under <data dir>/models/customer_churn), scores every
    customer, and hands on its holdout metrics as `churn_model_performance`."""
    wh = ctx.wh
    last = through(wh)
    inp = CB.churn_inputs(wh, last)
    try:
        result = churn.train(inp, last)
    except churn.NotEnoughHistory as exc:
        ctx.log.warning(f"no churn model: {exc}")
        return Built(
            {
                "customer_churn_scores": churn.rule_scores_only(inp, last),
                "churn_model_performance": _no_performance(),
            },
            extras={"not_trained": str(exc)},
            metadata={"model": "none", "reason": str(exc)},
        )
    path, digest = churn.save_model(result, ctx.data_dir / "models" / "customer_churn", last)
    auc = {k.split(":")[0]: v for k, v in result.holdout.items() if k.endswith(":roc_auc")}
    headline = result.performance.filter(pl.col("bucket").is_null()).pivot(
        on="model",
        index=[c for c in ("evaluation", "metric") if c in result.performance.columns],
        values="value",
    )
    return Built(
        {"customer_churn_scores": result.scores, "churn_model_performance": result.performance},
        extras={"auc": auc},
        data_version=digest[:16],
        metadata={
            "artifact": str(path),
            "sha256": digest,
            "as_of": last.isoformat(),
            "cutoff": result.cutoff.isoformat(),
            "threshold": result.threshold,
            "customers_scored": result.scores.height,
            "holdout": md_table(headline, 20),
            **{
                f"holdout_{k.replace(':', '_')}": float(v)
                for k, v in result.holdout.items()
                if v is not None and v == v
            },
        },
    )


def _no_performance() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "model_family": pl.String,
            "model": pl.String,
            "metric": pl.String,
            "bucket": pl.String,
            "value": pl.Float64,
            "n": pl.Int64,
        }
    )


def check_churn_beats_rules(ctx: BuildContext, built: Built) -> CheckOutcome:
    if "not_trained" in built.extras:
        return CheckOutcome(False, {"reason": built.extras["not_trained"]})
    auc = built.extras["auc"]
    beats = all(auc[churn.MODEL_NAME] > v for k, v in auc.items() if k != churn.MODEL_NAME)
    return CheckOutcome(beats, {f"roc_auc_{k}": float(v) for k, v in auc.items()})


def check_churn_scores(ctx: BuildContext, built: Built) -> CheckOutcome:
    return checks.check_churn_scores(built.frames["customer_churn_scores"])


def check_clv_fits(ctx: BuildContext, built: Built) -> CheckOutcome:
    return checks.check_clv_fits(built.frames["customer_clv_fits"], built.frames["customer_lifetime_value"])


def customer_lifetime_value(ctx: BuildContext) -> Built:
    wh = ctx.wh
    last = through(wh)
    df, fits, perf = lifetime.lifetime_value_and_holdout(CB.orders(wh, last), last, CB.churn_scores(wh))
    by_fit = df.group_by("fit_scope").agg(pl.len().alias("rows"), pl.sum("clv_12m_cents")).sort("fit_scope")
    totals = perf.filter(pl.col("bucket").is_null()).select("metric", "value", "n")
    return Built(
        {"customer_lifetime_value": df, "customer_clv_fits": fits, "clv_model_performance": perf},
        extras={"as_of": last},
        metadata={
            "as_of": last.isoformat(),
            "rows_by_fit_scope": md_table(by_fit),
            "fits": md_table(fits),
            "holdout_validation": md_table(totals),
            "total_clv_12m_cents": float(df["clv_12m_cents"].sum() or 0),
            "total_historic_value_cents": int(df["historic_value_cents"].sum() or 0),
        },
    )


def check_clv(ctx: BuildContext, built: Built) -> CheckOutcome:
    return R.check_clv(ctx.wh, built.frames["customer_lifetime_value"], built.extras["as_of"])


def customer_segments(ctx: BuildContext) -> Built:
    wh = ctx.wh
    dates = CB.rfm_as_of_dates(wh)
    if not dates:
        raise LookupError("customer_rfm_scores has no partition yet: materialize it for at least one day")
    latest = CB.rfm_at(wh, dates[-1])
    df = CB.customer_segments(latest, wh.read_table("customer_lifetime_value"))
    platform = df.filter(pl.col("scope") == "platform").select(
        "segment",
        "customers",
        "revenue_cents",
        "avg_order_value_cents",
        "avg_purchase_frequency",
        "avg_clv_12m_cents",
    )
    return Built(
        {"customer_segments": df},
        extras={"latest": latest},
        metadata={"as_of": dates[-1].isoformat(), "platform": md_table(platform, 11)},
    )


def check_segments(ctx: BuildContext, built: Built) -> CheckOutcome:
    return R.check_segments(ctx.wh, built.frames["customer_segments"], built.extras["latest"])


def customer_cohorts(ctx: BuildContext) -> Built:
    last = through(ctx.wh)
    df = build_360.cohorts(CB.orders(ctx.wh, last), last)
    platform = df.filter(pl.col("scope") == "platform")
    matrix = (
        platform.pivot(on="months_since_first", index="cohort_month", values="retention_pct")
        .sort("cohort_month")
        .tail(12)
        if platform.height
        else platform
    )
    return Built(
        {"customer_cohorts": df},
        extras={"through": last},
        metadata={"through": last.isoformat(), "platform_retention_pct": md_table(matrix, 12)},
    )


def check_cohorts(ctx: BuildContext, built: Built) -> CheckOutcome:
    return R.check_cohorts(ctx.wh, built.frames["customer_cohorts"], built.extras["through"])


def customer_360(ctx: BuildContext) -> Built:
    last = through(ctx.wh)
    df = build_360.customer_360_from(ctx.wh, last)
    buyers = df.filter(pl.col("orders") > 0)
    return Built(
        {"customer_360": df},
        extras={"through": last},
        metadata={
            "as_of": last.isoformat(),
            "buyers": buyers.height,
            "users_without_purchase": df.height - buyers.height,
            "mean_churn_probability": float(buyers["churn_probability"].mean() or 0),
            "no_show_rate_pct": float(buyers["no_shows"].sum() / max(1, buyers["tickets_ended"].sum()) * 100),
        },
    )


def check_customer_360(ctx: BuildContext, built: Built) -> CheckOutcome:
    return R.check_customer_360(ctx.wh, built.frames["customer_360"], built.extras["through"])
