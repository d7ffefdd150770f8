"""Customer assets (group `customers`): RFM scores with history, segments and transitions, CLV, the churn
model (a versioned artifact), cohorts and the customer 360.

Thin wiring: each asset reads and derives through analytics_pipelines.customers.build and its pure
functions, writes its table(s), and reports checks computed by analytics_pipelines.customers.reconcile
(totals re-derived from staging by independent SQL, to the cent). Rules and columns: docs/customers.md.
"""

import warnings
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import polars as pl

from analytics_pipelines.assets.marts import IncrementalConfig, _check, upstream_partitions_since
from analytics_pipelines.assets.metadata import frame_preview, table_metadata
from analytics_pipelines.customers import build as CB
from analytics_pipelines.customers import churn, lifetime
from analytics_pipelines.customers import reconcile as R
from analytics_pipelines.partitions import PARTITION_START
from analytics_pipelines.paths import data_dir
from analytics_pipelines.resources import WarehouseResource, warehouse_kind

warnings.filterwarnings("ignore", category=dg.BetaWarning)
OWNERS = ["team:analytics"]
GROUP = "customers"
RECONCILES = "reconciles_to_staging"

#: RFM history: one partition per ISO week (Monday start); as-of = the week's Sunday (end of day, UTC)
weekly_partitions = dg.WeeklyPartitionsDefinition(start_date=PARTITION_START, timezone="UTC", day_offset=1)


def as_of_of_week(key: str) -> date:
    return date.fromisoformat(key) + timedelta(days=6)


def _md(df: pl.DataFrame, n: int = 12) -> dg.MetadataValue:
    return dg.MetadataValue.md(frame_preview(df, n))


def _asset(name: str, deps: list[str], description: str, checks: dict[str, str], kinds: set[str] | None = None,
           **kw):
    return dg.asset(name=name, group_name=GROUP, owners=OWNERS, kinds={warehouse_kind(), *(kinds or {"duckdb"})},
                    deps=[dg.AssetDep(d) for d in deps],
                    check_specs=[dg.AssetCheckSpec(c, asset=name, description=d) for c, d in checks.items()],
                    description=description, metadata={"warehouse_table": name}, **kw)


def _through(wh) -> date:
    d = CB.last_sales_day(wh)
    if d is None:
        raise ValueError("fct_orders is empty: no recognized sales to build customer marts from")
    return d


@_asset("customer_attendance", ["stg_tickets", "stg_ticket_scans", "stg_events", "stg_event_schedules",
                                "stg_ticket_types", "stg_event_categories"],
        checks={RECONCILES: "Tickets of ended events and no-shows add up to an independent count over the staging "
                            "tickets with a holder (sql/checks/no_shows_total.sql); one row per holder and day; "
                            "no-shows within 0 and the tickets."},
        description="Per ticket holder (tickets.user_id, else original_purchaser_id) and day an event ended: sold "
                    "tickets of ended events and how many never had a valid scan (the no_shows mart's rules), "
                    "as of the run's time. Computed once from ~10 M tickets and read by the churn model and the "
                    "customer 360.")
def customer_attendance(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    now = datetime.now(UTC)
    inputs = CB.attendance_inputs(wh)
    df = CB.attendance(wh, now, inputs)
    wh.replace_table("customer_attendance", df)
    outcome = R.check_attendance(wh, df, inputs["tickets"], inputs["scans"], now)
    return dg.MaterializeResult(
        metadata={**table_metadata(wh, "customer_attendance", df.height), "now": now.isoformat(),
                  "holders": df["user_id"].n_unique(), "tickets_ended": int(df["tickets_ended"].sum() or 0),
                  "no_shows": int(df["no_shows"].sum() or 0)},
        check_results=[_check(outcome)])


@_asset("customer_rfm_scores", ["fct_orders"], partitions_def=weekly_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        checks={RECONCILES: "Per as-of date and scope, customers, orders and monetary equal an independent staging "
                            "count (to the cent); one row per customer and scope; scores 1-5; exactly one of the 11 "
                            "segments per customer."},
        description="RFM per customer as of the end of each week (Sunday, UTC), per venue, per tenant and platform-"
                    "wide (`scope`): recency days, frequency (orders), monetary (gross cents), quintile scores 1-5 "
                    "(ties share a score), code, total and one of 11 segments. One partition per week keeps the "
                    "history that segment transitions are reported from.")
def customer_rfm_scores(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    keys = sorted(context.partition_keys)
    as_of = {k: as_of_of_week(k) for k in keys}
    df = CB.rfm_scores(wh, list(as_of.values()))
    wh.write_partitions("customer_rfm_scores", df, ["as_of"], [(d.isoformat(),) for d in as_of.values()])
    outcome = R.check_rfm(wh, df)
    last = df.filter((pl.col("as_of") == max(as_of.values())) & (pl.col("scope") == "platform"))
    segs = last.group_by("segment").agg(pl.len().alias("customers"), pl.sum("monetary_cents")).sort(
        "customers", descending=True)
    return dg.MaterializeResult(
        metadata={**table_metadata(wh, "customer_rfm_scores", df.height, preview=last), "weeks": len(keys),
                  "latest_as_of": max(as_of.values()).isoformat(), "platform_customers": last.height,
                  "platform_segments": _md(segs)},
        check_results=[_check(outcome)])


@_asset("customer_segment_transitions", ["customer_rfm_scores"],
        checks={RECONCILES: "Per later as-of date and scope, the transitions count every RFM customer exactly once."},
        description="Customers moving between RFM segments from each as-of date of customer_rfm_scores to the next, "
                    "per scope, with the revenue they added in between ('(new)' = first purchase in between).")
def customer_segment_transitions(context: dg.AssetExecutionContext, config: IncrementalConfig,
                                 warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    # only the pairs touching an RFM week rewritten since the last build are recomputed
    weeks = None if config.full_refresh else upstream_partitions_since(
        context, "customer_segment_transitions", "customer_rfm_scores")
    have = "customer_segment_transitions" in wh.tables()
    previous = wh.read_table("customer_segment_transitions") if weeks is not None and have else None
    changed = {as_of_of_week(k) for k in weeks} if weeks is not None else None
    df = CB.segment_transitions(wh, previous=previous, changed=changed)
    wh.replace_table("customer_segment_transitions", df)
    counts = wh.read("SELECT as_of, scope, scope_id, count(*) AS customers FROM customer_rfm_scores GROUP BY 1, 2, 3")
    outcome = R.check_transitions(df, counts)
    last = df.filter((pl.col("to_as_of") == df["to_as_of"].max()) & (pl.col("scope") == "platform")) if df.height else df
    moved = last.filter(pl.col("from_segment") != pl.col("to_segment")).sort("customers", descending=True)
    return dg.MaterializeResult(
        metadata={**table_metadata(wh, "customer_segment_transitions", df.height),
                  "mode": "full" if previous is None else f"incremental ({len(changed or ())} RFM weeks rewritten)",
                  "as_of_pairs": df.select("from_as_of", "to_as_of").unique().height if df.height else 0,
                  "latest_platform_moves": _md(moved.select("from_segment", "to_segment", "customers"))},
        check_results=[_check(outcome)])


@_asset("customer_churn_model", ["fct_orders", "fct_refunds", "fct_resales", "customer_attendance", "stg_users"],
        kinds={"scikit-learn"},
        checks={"beats_seed_rules": "Holdout ROC AUC of the model is above both old rule scores' (warns, not fails: "
                                    "short or tiny histories can legitimately fall short)."},
        description="The churn model as a versioned artifact: logistic regression on features as of (last sales "
                    "day - 90 d), label = no purchase in the next 90 days, a deterministic 25 % customer holdout; "
                    "written to <data dir>/models/customer_churn/churn-<as_of>-<sha256>.joblib. Also writes "
                    "`customer_churn_scores` (today's churn probability per customer, beside the old rule scores) "
                    "and the churn rows of `model_performance` (ROC AUC, precision/recall at the F1 threshold, "
                    "Brier, reliability bins; the old rules on the same holdout).")
def customer_churn_model(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    through = _through(wh)
    inp = CB.churn_inputs(wh, through)
    try:
        result = churn.train(inp, through)
    except churn.NotEnoughHistory as exc:
        context.log.warning(f"no churn model: {exc}")
        wh.replace_table("customer_churn_scores", churn.rule_scores_only(inp, through))
        return dg.MaterializeResult(metadata={"model": "none", "reason": str(exc)}, check_results=[
            dg.AssetCheckResult(check_name="beats_seed_rules", passed=False, severity=dg.AssetCheckSeverity.WARN,
                                description=str(exc))])
    path, digest = churn.save_model(result, data_dir() / "models" / "customer_churn", through)
    wh.replace_table("customer_churn_scores", result.scores)
    wh.write_partitions("model_performance", result.performance, ["model_family"], [("churn",)])
    auc = {k.split(":")[0]: v for k, v in result.holdout.items() if k.endswith(":roc_auc")}
    beats = all(auc[churn.MODEL_NAME] > v for k, v in auc.items() if k != churn.MODEL_NAME)
    headline = result.performance.filter(pl.col("bucket").is_null()).pivot(on="model", index="metric", values="value")
    return dg.MaterializeResult(
        metadata={"artifact": dg.MetadataValue.path(str(path)), "sha256": digest, "as_of": through.isoformat(),
                  "cutoff": result.cutoff.isoformat(), "threshold": result.threshold,
                  "customers_scored": result.scores.height, "holdout": _md(headline, 20),
                  **{f"holdout_{k.replace(':', '_')}": float(v) for k, v in result.holdout.items() if v is not None and v == v},
                  "dagster/row_count": result.scores.height},
        data_version=dg.DataVersion(digest[:16]),
        check_results=[dg.AssetCheckResult(check_name="beats_seed_rules", passed=beats,
                                           severity=dg.AssetCheckSeverity.WARN, metadata={
                                               f"roc_auc_{k}": float(v) for k, v in auc.items()})])


@_asset("customer_lifetime_value", ["fct_orders", "customer_churn_model"], kinds={"numpy"},
        checks={RECONCILES: "Per venue, customers, orders and historic value equal an independent staging count (to "
                            "the cent); one row per customer and venue; probabilities in [0, 1]; CLV >= 0."},
        description="Per customer and venue as of the last sales day: the old service's historic value (total "
                    "spend, AOV, lifespan, orders per month, high/medium/low) beside BG/NBD + Gamma-Gamma "
                    "predictions (P(alive), expected purchases in 90 days and 12 months, 12- and 24-month CLV at "
                    "1 %/month discount) and the churn model's probability. Fitted per venue, else pooled per "
                    "tenant, else platform-wide (`fit_scope`, `fit_id`; fits in `customer_clv_fits`). A "
                    "calibration/holdout validation (last 90 days held out) goes to `model_performance`.")
def customer_lifetime_value(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    through = _through(wh)
    history = CB.orders(wh, through)
    df, fits, perf = lifetime.lifetime_value_and_holdout(history, through, CB.churn_scores(wh))
    wh.replace_table("customer_lifetime_value", df)
    wh.replace_table("customer_clv_fits", fits)
    wh.write_partitions("model_performance", perf, ["model_family"], [("clv",)])
    outcome = R.check_clv(wh, df, through)
    by_fit = df.group_by("fit_scope").agg(pl.len().alias("rows"), pl.sum("clv_12m_cents")).sort("fit_scope")
    totals = perf.filter(pl.col("bucket").is_null()).select("metric", "value", "n")
    return dg.MaterializeResult(
        metadata={**table_metadata(wh, "customer_lifetime_value", df.height, preview=df), "as_of": through.isoformat(),
                  "rows_by_fit_scope": _md(by_fit), "fits": _md(fits), "holdout_validation": _md(totals),
                  "total_clv_12m_cents": float(df["clv_12m_cents"].sum() or 0),
                  "total_historic_value_cents": int(df["historic_value_cents"].sum() or 0)},
        check_results=[_check(outcome)])


@_asset("customer_segments", ["customer_rfm_scores", "customer_lifetime_value"],
        checks={RECONCILES: "Per scope, segment customers and revenue add up to an independent staging count at the "
                            "as-of date; all 11 segments listed for every scope."},
        description="Per scope (venue, tenant, platform) and RFM segment at the latest as-of date of "
                    "customer_rfm_scores: customers, revenue, orders, average order value, average purchase "
                    "frequency, average predicted 12-month CLV and shares; every segment listed (zero when empty).")
def customer_segments(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    dates = CB.rfm_as_of_dates(wh)
    if not dates:
        raise LookupError("customer_rfm_scores has no partition yet: materialize it for at least one week")
    latest = CB.rfm_at(wh, dates[-1])
    df = CB.customer_segments(latest, wh.read_table("customer_lifetime_value"))
    wh.replace_table("customer_segments", df)
    outcome = R.check_segments(wh, df, latest)
    return dg.MaterializeResult(
        metadata={**table_metadata(wh, "customer_segments", df.height), "as_of": dates[-1].isoformat(),
                  "platform": _md(df.filter(pl.col("scope") == "platform").select(
                      "segment", "customers", "revenue_cents", "avg_order_value_cents", "avg_purchase_frequency",
                      "avg_clv_12m_cents"), 11)},
        check_results=[_check(outcome)])


@_asset("customer_cohorts", ["fct_orders"],
        checks={RECONCILES: "Per scope, cohort sizes and revenue add up to an independent staging count (to the "
                            "cent); retention 0-100 %, 100 % in month 0."},
        description="Monthly acquisition cohorts (month of the first recognized order) x months since the first "
                    "purchase, per scope (venue, tenant, platform): cohort size, active customers, retention %, "
                    "revenue and cumulative revenue per customer; zero-filled up to the last sales month.")
def customer_cohorts(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    through = _through(wh)
    df = CB.cohorts(CB.orders(wh, through), through)
    wh.replace_table("customer_cohorts", df)
    outcome = R.check_cohorts(wh, df, through)
    platform = df.filter(pl.col("scope") == "platform")
    matrix = (platform.pivot(on="months_since_first", index="cohort_month", values="retention_pct")
              .sort("cohort_month").tail(12) if platform.height else platform)
    return dg.MaterializeResult(
        metadata={**table_metadata(wh, "customer_cohorts", df.height), "through": through.isoformat(),
                  "platform_retention_pct": _md(matrix)},
        check_results=[_check(outcome)])


@_asset("customer_360", ["fct_orders", "fct_refunds", "fct_resales", "stg_users", "customer_attendance",
                         "stg_event_categories", "customer_rfm_scores", "customer_lifetime_value",
                         "customer_churn_model"],
        checks={RECONCILES: "One row per customer; buyers, orders and spend equal an independent staging count (to "
                            "the cent); no personal-data columns."},
        description="One row per customer (every user, plus any buyer id missing from users): tenure, orders, "
                    "tickets, spend, refunds, last purchase, venues, resales, favourite category, tickets of ended "
                    "events and no-show rate, platform RFM segment, summed venue CLV, P(alive) and churn "
                    "probability. Customer ids only: no names, emails or phones.")
def customer_360(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    through = _through(wh)
    df = CB.customer_360_from(wh, through)
    wh.replace_table("customer_360", df)
    outcome = R.check_customer_360(wh, df, through)
    buyers = df.filter(pl.col("orders") > 0)
    return dg.MaterializeResult(
        metadata={**table_metadata(wh, "customer_360", df.height, preview=buyers), "as_of": through.isoformat(),
                  "buyers": buyers.height, "users_without_purchase": df.height - buyers.height,
                  "mean_churn_probability": float(buyers["churn_probability"].mean() or 0),
                  "no_show_rate_pct": float(buyers["no_shows"].sum() / max(1, buyers["tickets_ended"].sum()) * 100)},
        check_results=[_check(outcome)])


assets = [customer_attendance, customer_rfm_scores, customer_segment_transitions, customer_churn_model,
          customer_lifetime_value, customer_segments, customer_cohorts, customer_360]

customers_job = dg.define_asset_job(
    name="customers_job", selection=dg.AssetSelection.groups(GROUP),
    description="Customer marts for a week's as-of date (RFM partition) and every whole-table customer mart "
                "(CLV, churn model retraining, segments, transitions, cohorts, 360).",
    tags={"team": "analytics"})

#: Monday 06:00 UTC: the week that just ended, and a retrained churn model
customers_weekly_schedule = dg.build_schedule_from_partitioned_job(customers_job, hour_of_day=6, minute_of_hour=0)

jobs = [customers_job]
schedules = [customers_weekly_schedule]
