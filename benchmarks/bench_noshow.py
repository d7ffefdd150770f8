"""Benchmark: the no-show model through the real jobs (not a test).

    python benchmarks/bench_noshow.py --scale small          # generate + the model's upstream assets, then predictions_job
    python benchmarks/bench_noshow.py --scale medium --record
    python benchmarks/bench_noshow.py --warehouse-url duckdb:///tmp/wh --last 2026-10-31   # staging/marts exist

Prints the out-of-time figures the model's gate judges (ROC AUC and Brier of the model and of the seed rule
on the same held-out tickets), the reliability table by deciles, per held-out event the expected vs actual
no-shows (MAE, bias, 80 % interval coverage) and the seconds of the no_show_model step; with --record appends
a line to benchmarks/results/noshow.md. The generator's planted truth (truth["no_show"]) is printed beside
when the data was generated here; the model never reads it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
from jobrun import failed_checks, peak_rss_gb, timed_run

os.environ.setdefault("TT_ENV", "development")

RESULTS = Path(__file__).resolve().parent / "results" / "noshow.md"
HEADER = (
    "| date | host | scale | fitted tickets (evaluated model) | held-out tickets / events | AUC model | AUC seed rule | "
    "Brier model | Brier seed rule | event MAE model / seed | 80 % coverage | no_show_model s | gate |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)
FIRST = {"tiny": "2025-11-01", "small": "2025-11-01", "medium": "2024-11-01", "large": "2024-11-01"}


def _metric(perf: pl.DataFrame, model_prefix: str, metric: str, evaluation: str = "out_of_time") -> float:
    row = perf.filter(
        pl.col("model").str.starts_with(model_prefix)
        & (pl.col("metric") == metric)
        & (pl.col("evaluation") == evaluation)
        & pl.col("bucket").is_null()
    )
    return float(row["value"][0]) if row.height else float("nan")


def _upstream_defs() -> dg.Definitions:
    """The project's definitions plus a job of every asset upstream of no_show_model (not the model)."""
    from analytics_pipelines.definitions import build_definitions
    from analytics_pipelines.registry import default_registry
    from analytics_pipelines.settings import Settings

    defs = build_definitions(default_registry(), Settings.from_env())
    job = dg.define_asset_job(
        "no_show_upstream_job",
        selection=dg.AssetSelection.assets("no_show_model")
        .upstream(include_self=False)
        .required_multi_asset_neighbors(),
    )
    return dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))


def inputs_from_source(url: str):
    """The model's inputs read straight from a DuckDB source by this benchmark's SQL (staging, its
    quarantine and the marts skipped): for a quick figure at a scale whose ingestion would take too long.
    Statuses lower-cased, money in cents, event start/end from the schedules, paid orders at
    coalesce(confirmed_at, created_at), completed resales; every currency treated as one."""
    import duckdb

    from analytics_pipelines.noshow.features import ATTENDED_RESULTS, Inputs

    con = duckdb.connect(url.removeprefix("duckdb:///"), read_only=True)

    def q(sql: str) -> pl.DataFrame:
        return pl.from_arrow(con.execute(sql).arrow())

    results = ", ".join(f"'{r}'" for r in ATTENDED_RESULTS)
    return Inputs(
        tickets=q(
            """SELECT CAST(id AS VARCHAR) AS id, CAST(tenant_id AS VARCHAR) AS tenant_id,
                 CAST(event_id AS VARCHAR) AS event_id, CAST(ticket_type_id AS VARCHAR) AS ticket_type_id,
                 CAST(user_id AS VARCHAR) AS user_id, CAST(original_purchaser_id AS VARCHAR) AS original_purchaser_id,
                 CAST(price_cents AS BIGINT) AS price_cents, lower(status) AS status, purchased_at,
                 CAST(transfer_count AS BIGINT) AS transfer_count, CAST(NULL AS VARCHAR) AS currency
               FROM tickets"""
        ),
        valid_scans=q(
            f"SELECT DISTINCT CAST(ticket_id AS VARCHAR) AS ticket_id FROM ticket_scans WHERE lower(result) IN ({results})"
        ),
        events=q(
            """WITH s AS (SELECT event_id, min(starts_at) AS starts_at, max(coalesce(ends_at, starts_at)) AS ends_at,
                          bool_or(lower(status) IN ('cancelled', 'postponed')) AS sc
                        FROM event_schedules WHERE deleted_at IS NULL GROUP BY 1)
               SELECT CAST(e.tenant_id AS VARCHAR) AS tenant_id, CAST(e.venue_id AS VARCHAR) AS venue_id,
                 CAST(e.id AS VARCHAR) AS event_id, CAST(e.primary_category_id AS VARCHAR) AS category_id,
                 lower(e.status) AS status, coalesce(s.starts_at, e.start_date) AS starts_at,
                 coalesce(s.ends_at, s.starts_at, e.start_date) AS ends_at,
                 lower(e.status) IN ('cancelled', 'postponed') OR coalesce(s.sc, false) AS cancelled_or_postponed,
                 e.deleted_at IS NOT NULL AS deleted
               FROM events e LEFT JOIN s ON s.event_id = e.id"""
        ),
        type_prices=q(
            """WITH p AS (SELECT id AS t, round(price * 100) AS c FROM ticket_types
                         UNION ALL SELECT ticket_type_id, round(old_price * 100) FROM ticket_price_history
                         UNION ALL SELECT ticket_type_id, round(new_price * 100) FROM ticket_price_history)
               SELECT CAST(t AS VARCHAR) AS ticket_type_id, CAST(NULL AS VARCHAR) AS type_currency,
                 CAST(min(c) AS BIGINT) AS min_price_cents, CAST(max(c) AS BIGINT) AS max_price_cents
               FROM p GROUP BY 1"""
        ),
        resales=q(
            """SELECT CAST(l.ticket_id AS VARCHAR) AS ticket_id, t.completed_at
               FROM marketplace_transfers t JOIN marketplace_listings l ON l.id = t.listing_id
               WHERE lower(t.status) = 'completed' AND t.completed_at IS NOT NULL"""
        ),
        orders=q(
            """SELECT CAST(o.tenant_id AS VARCHAR) AS tenant_id, CAST(e.venue_id AS VARCHAR) AS venue_id,
                 CAST(o.user_id AS VARCHAR) AS user_id, coalesce(o.confirmed_at, o.created_at) AS recognized_at,
                 o.total_cents AS gross_revenue_cents
               FROM orders o JOIN events e ON e.id = o.event_id
               WHERE lower(o.status) IN ('confirmed', 'completed', 'refunded')"""
        ),
    )


def from_source(url: str, last: str, truth: dict | None) -> int:
    """--from-source: the builder's own code (features, evaluation, gate, tables) on inputs_from_source."""
    from analytics_pipelines.noshow import features as F
    from analytics_pipelines.noshow import tables as T

    now = datetime.fromisoformat(last).replace(tzinfo=UTC) + timedelta(days=1)
    t = time.perf_counter()
    inp = inputs_from_source(url)
    t_read = time.perf_counter() - t
    feats = F.features(inp, now)
    t_feat = time.perf_counter() - t - t_read
    out = T.build(feats, inp.events, now)
    total = time.perf_counter() - t
    print(f"read {t_read:.1f} s, features {t_feat:.1f} s, model + tables {total - t_read - t_feat:.1f} s")
    print("gate:", out.gate.reason if out.gate else out.not_trained)
    perf = out.frames[T.PERF]
    with pl.Config(tbl_rows=60, tbl_cols=12):
        print(
            perf.filter(pl.col("bucket").is_null())
            .pivot(on="model", index=["evaluation", "metric"], values="value")
            .sort("evaluation", "metric")
        )
        print(
            perf.filter(pl.col("metric").str.starts_with("reliability_decile"))
            .pivot(on="metric", index=["model", "bucket"], values="value")
            .sort("model", "bucket")
        )
    if truth is not None:
        print("planted truth (never read by the model):", json.dumps(truth)[:400])
    return 0


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--scale", default="small")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--warehouse-url", help="a warehouse already holding the model's inputs")
    p.add_argument("--source-url", help="an existing source (not generated here)")
    p.add_argument("--truth", help="the source's planted truth (truth.json), printed beside the figures")
    p.add_argument(
        "--from-source",
        action="store_true",
        help="with --source-url (DuckDB): read the inputs from the source by SQL, no Dagster job (quick figure)",
    )
    p.add_argument("--first")
    p.add_argument("--last", default="2026-10-31")
    p.add_argument("--record", action="store_true", help="append the figures to benchmarks/results/noshow.md")
    args = p.parse_args()
    if args.from_source:
        truth = json.loads(Path(args.truth).read_text()).get("no_show") if args.truth else None
        return from_source(args.source_url, args.last, truth)
    first = args.first or FIRST.get(args.scale, "2024-11-01")
    os.environ["TT_PARTITION_START"] = first
    now = (datetime.fromisoformat(args.last) + timedelta(days=1)).isoformat() + "+00:00"
    tmp = Path(tempfile.mkdtemp(prefix="bench_noshow_"))
    os.environ.setdefault("TT_DATA_DIR", str(tmp))
    instance = dg.DagsterInstance.ephemeral()
    truth = None
    if args.warehouse_url:
        os.environ["TT_WAREHOUSE_URL"] = args.warehouse_url
        if args.truth:
            truth = json.loads(Path(args.truth).read_text()).get("no_show")
    else:
        from analytics_pipelines.generator.run import generate

        src = args.source_url or f"duckdb:///{tmp / 'source.duckdb'}"
        os.environ["TT_SOURCE_URL"] = src
        os.environ["TT_WAREHOUSE_URL"] = f"duckdb:///{tmp / 'warehouse'}"
        truth_path = Path(args.truth) if args.truth else tmp / "truth.json"
        if not args.source_url:
            t = time.perf_counter()
            generate(src, scale=args.scale, seed=args.seed, progress=False, truth_path=truth_path)
            print(f"generate {args.scale}: {time.perf_counter() - t:.1f} s", flush=True)
        truth = json.loads(truth_path.read_text()).get("no_show") if truth_path.exists() else None
        print(
            f"warehouse: {os.environ['TT_WAREHOUSE_URL']} (re-run the model alone with --warehouse-url)",
            flush=True,
        )
        # only what the model reads (raw -> staging -> fct_orders, fct_resales, price_history), not every mart
        defs = _upstream_defs()
        result, seconds, _ = timed_run("no_show_upstream_job", first, args.last, instance, now, defs=defs)
        print(f"no_show_upstream_job: {seconds:.1f} s, success={result.success}", flush=True)
    result, seconds, steps = timed_run("predictions_job", None, None, instance, now)
    step = {k: v for k, v in steps.items() if "no_show" in k}
    failed = failed_checks(result)
    print(f"predictions_job: {seconds:.1f} s ({step}); failed checks: {failed or 'none'}", flush=True)

    from analytics_pipelines.warehouse import open_warehouse

    wh = open_warehouse(os.environ["TT_WAREHOUSE_URL"])
    perf = wh.read_table("no_show_model_performance")
    with pl.Config(tbl_rows=60, tbl_cols=12, fmt_str_lengths=40):
        head = perf.filter(pl.col("bucket").is_null()).pivot(
            on="model", index=["evaluation", "metric"], values="value"
        )
        print(head.sort("evaluation", "metric"))
        deciles = perf.filter(pl.col("metric").str.starts_with("reliability_decile")).pivot(
            on="metric", index=["model", "bucket"], values="value"
        )
        print(deciles.sort("model", "bucket"))
    model = perf.filter(pl.col("model") != "seed_rule")["model"][0]
    fig = {
        "auc_model": _metric(perf, model, "roc_auc"),
        "auc_seed": _metric(perf, "seed_rule", "roc_auc"),
        "brier_model": _metric(perf, model, "brier"),
        "brier_seed": _metric(perf, "seed_rule", "brier"),
        "held": int(_metric(perf, model, "n")),
        "events": int(_metric(perf, model, "events")),
        "mae_model": _metric(perf, model, "event_mae_no_shows"),
        "mae_seed": _metric(perf, "seed_rule", "event_mae_no_shows"),
        "bias_model": _metric(perf, model, "event_bias_no_shows"),
        "coverage": _metric(perf, model, "event_interval_coverage"),
        "fitted": int(_metric(perf, model, "n", "in_sample")),
    }
    print(json.dumps(fig, indent=1))
    print("status:", perf["status"][0], "version:", perf["model_version"][0])
    if truth is not None:
        print("planted truth (never read by the model):", json.dumps(truth)[:600])
    fc = wh.read_table("event_no_show_forecast")
    print(f"upcoming events forecast: {fc.height}, tickets predicted: {wh.count('no_show_predictions')}")
    rss = peak_rss_gb()
    if args.record:
        if not RESULTS.exists():
            RESULTS.write_text(
                "# No-show model benchmark\n\nOut-of-time holdout (latest 20 % of labelled tickets, whole events).\n\n"
                + HEADER
            )
        with RESULTS.open("a") as fh:
            fh.write(
                f"| {date.today()} | {platform.node()} | {args.scale if not args.warehouse_url else 'given'} | "
                f"{fig['fitted']:,} | {fig['held']:,} / {fig['events']} | {fig['auc_model']:.4f} | "
                f"{fig['auc_seed']:.4f} | {fig['brier_model']:.4f} | {fig['brier_seed']:.4f} | "
                f"{fig['mae_model']:.1f} / {fig['mae_seed']:.1f} | {fig['coverage']:.0%} | "
                f"{sum(step.values()):.1f} | {perf['status'][0]} |\n"
            )
    print(f"peak RSS {rss:.2f} GB")
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
