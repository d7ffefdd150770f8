"""The demand model's benchmark: the real `predictions_job` on a built warehouse (seconds of the model asset,
its checks), then the rolling-origin backtest of the asset again with statsforecast's AutoETS (weekly
season) on the same test rows, side by side with the model, the weekly seasonal naive and the seed heuristic,
overall and by horizon, days to the event and history length ("who wins where").

    .venv/bin/python benchmarks/bench_demand.py --warehouse-url duckdb:///data/warehouse [--record]
    .venv/bin/python benchmarks/bench_demand.py --scale medium --seed 42 --data-dir /tmp/wh-medium [--record]

With --scale, the data is generated first (every planting of the generator, into an embedded DuckDB source
under --data-dir) and the prediction models' upstream assets (raw -> staging -> facts -> price_history, not
every mart) are materialized through a real Dagster job; then predictions_job as above.

Needs the `bench` extra (statsforecast; `make bench` installs it). Prints; `--record` appends the figures to
benchmarks/results/demand.md."""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from jobrun import failed_checks, peak_rss_gb, timed_run  # noqa: E402

from analytics_pipelines.predictions import backtest as BT  # noqa: E402
from analytics_pipelines.predictions import demand_data as D  # noqa: E402
from analytics_pipelines.predictions import demand_model as M  # noqa: E402
from analytics_pipelines.warehouse import open_warehouse  # noqa: E402

ETS = "auto_ets"
#: AutoETS gets the series' observed days up to the origin; fewer than this and it is not fitted (the
#: comparison is then made on the rows it could forecast only)
MIN_ETS_DAYS = 14


def ets_forecasts(grid: pl.DataFrame, tests: pl.DataFrame) -> pl.DataFrame:
    """AutoETS(season_length=7) per series and origin, h = the backtest horizon, 80 % interval."""
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS

    out = []
    for origin in tests["origin"].unique().sort().to_list():
        ids = tests.filter(pl.col("origin") == origin)["ticket_type_id"].unique()
        hist = grid.filter(pl.col("ticket_type_id").is_in(ids.implode()) & (pl.col("day") <= origin))
        long_enough = (
            hist.group_by("ticket_type_id").len().filter(pl.col("len") >= MIN_ETS_DAYS)["ticket_type_id"]
        )
        train = hist.filter(pl.col("ticket_type_id").is_in(long_enough.implode())).select(
            pl.col("ticket_type_id").alias("unique_id"),
            pl.col("day").cast(pl.Datetime("ns")).alias("ds"),
            pl.col("tickets").cast(pl.Float64).alias("y"),
        )
        if not train.height:
            continue
        sf = StatsForecast(models=[AutoETS(season_length=7)], freq="1d", n_jobs=1)
        fc = sf.forecast(df=train, h=BT.BACKTEST_HORIZON, level=[80])
        fc = pl.from_pandas(fc) if not isinstance(fc, pl.DataFrame) else fc
        out.append(
            fc.select(
                pl.col("unique_id").alias("ticket_type_id"),
                pl.col("ds").cast(pl.Date).alias("day"),
                pl.lit(origin).alias("origin"),
                pl.col("AutoETS").clip(lower_bound=0).alias(f"{ETS}_p50"),
                pl.col("AutoETS-lo-80").clip(lower_bound=0).alias(f"{ETS}_p10"),
                pl.col("AutoETS-hi-80").clip(lower_bound=0).alias(f"{ETS}_p90"),
            )
        )
    return pl.concat(out) if out else pl.DataFrame()


def table(rows: pl.DataFrame, models: list[str], by: str | None) -> pl.DataFrame:
    """MAE, MASE (each row over its origin's in-sample scale) and 80 % coverage per model (and bucket)."""
    aggs = []
    for m in models:
        err = (pl.col("target") - pl.col(f"{m}_p50")).abs()
        aggs += [
            err.mean().alias(f"{m}:mae"),
            (err / pl.col("scale")).mean().alias(f"{m}:mase"),
            (
                (pl.col("target") >= pl.col(f"{m}_p10") - 1e-9)
                & (pl.col("target") <= pl.col(f"{m}_p90") + 1e-9)
            )
            .mean()
            .alias(f"{m}:cov80"),
        ]
    g = (
        rows.group_by(by).agg(pl.len().alias("rows"), *aggs).sort(by)
        if by
        else rows.select(pl.len().alias("rows"), *aggs)
    )
    mase = [f"{m}:mase" for m in models]
    return g.with_columns(
        pl.concat_list(mase)
        .list.arg_min()
        .map_elements(lambda i: models[i], return_dtype=pl.String)
        .alias("best_mase")
    )


def load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def build(scale: str, seed: int, data_dir: Path, last: str, report: list[str], models: list[str]) -> str:
    """Generate `scale` into data_dir/source.duckdb and materialize the prediction models' upstream assets
    through a real Dagster job (every partition from TT_PARTITION_START to `last`); the warehouse URL."""
    import dagster as dg

    from analytics_pipelines.definitions import build_definitions
    from analytics_pipelines.generator.run import generate
    from analytics_pipelines.registry import default_registry
    from analytics_pipelines.settings import Settings

    data_dir.mkdir(parents=True, exist_ok=True)
    first = "2025-11-01" if scale in ("tiny", "small") else "2024-11-01"
    src, wh = f"duckdb:///{data_dir / 'source.duckdb'}", f"duckdb:///{data_dir / 'warehouse'}"
    os.environ.update(
        {
            "TT_SOURCE_URL": src,
            "TT_WAREHOUSE_URL": wh,
            "TT_DATA_DIR": str(data_dir),
            "TT_PARTITION_START": first,
        }
    )
    os.environ.setdefault("TT_ENV", "development")
    if not (data_dir / "source.duckdb").exists():
        t = time.perf_counter()
        generate(src, scale=scale, seed=seed, progress=False, truth_path=data_dir / "truth.json")
        report.append(f"- generate {scale} (seed {seed}): {time.perf_counter() - t:.1f} s, load {load()}")
    defs = build_definitions(default_registry(), Settings.from_env())
    upstream = dg.define_asset_job(
        "prediction_inputs_job",
        selection=dg.AssetSelection.assets(*models)
        .upstream(include_self=False)
        .required_multi_asset_neighbors(),
    )
    defs = dg.Definitions.merge(defs, dg.Definitions(jobs=[upstream]))
    now = f"{last}T23:59:00+00:00"
    result, seconds, _ = timed_run(
        "prediction_inputs_job", first, last, dg.DagsterInstance.ephemeral(), now, defs
    )
    report.append(
        f"- the models' upstream assets through a Dagster job ({first}..{last}): {seconds:.1f} s, "
        f"success {result.success}, load {load()}"
    )
    print("\n".join(report), flush=True)
    if not result.success:
        raise SystemExit("the upstream job failed")
    return wh


def md(df: pl.DataFrame) -> str:
    cols = df.columns
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in df.iter_rows()]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--warehouse-url", help="a built warehouse (else --scale builds one under --data-dir)")
    ap.add_argument("--scale", choices=["tiny", "small", "medium", "large"])
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--last", default="2026-10-31", help="last partition of the build (--scale)")
    ap.add_argument("--skip-ets", action="store_true", help="no AutoETS comparison")
    ap.add_argument("--build-only", action="store_true", help="with --scale: stop after the build")
    ap.add_argument(
        "--upstream-of",
        default="demand_forecast,no_show_model",
        help="with --scale: whose upstream assets are built (comma list; demand_forecast alone is quicker)",
    )
    ap.add_argument("--data-dir", help="TT_DATA_DIR of the run (default: the warehouse's directory)")
    ap.add_argument("--label", default="", help="what the data is (scale, generator commit)")
    ap.add_argument("--record", action="store_true", help="append to benchmarks/results/demand.md")
    ap.add_argument("--skip-job", action="store_true", help="only the backtest comparison")
    a = ap.parse_args(argv)
    import dagster as dg

    report = [f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC {a.label}".rstrip(), ""]
    if a.scale:
        if not a.data_dir:
            ap.error("--scale needs --data-dir")
        a.warehouse_url = build(a.scale, a.seed, Path(a.data_dir), a.last, report, a.upstream_of.split(","))
        if a.build_only:
            return 0
    elif not a.warehouse_url:
        ap.error("--warehouse-url or --scale")
    if not a.skip_job:
        data = a.data_dir or str(Path(a.warehouse_url.removeprefix("duckdb:///")).parent)
        os.environ.update({"TT_WAREHOUSE_URL": a.warehouse_url, "TT_DATA_DIR": data})
        from analytics_pipelines.definitions import build_definitions
        from analytics_pipelines.registry import default_registry
        from analytics_pipelines.settings import Settings

        defs = build_definitions(default_registry(), Settings.from_env())
        cpu = time.process_time()
        result, seconds, steps = timed_run(
            "predictions_job", None, None, dg.DagsterInstance.ephemeral(), defs=defs
        )
        cpu = time.process_time() - cpu
        report += [
            f"- `predictions_job` (real job): {seconds:.1f} s, success {result.success}; steps: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in steps.items())
            + f"; CPU {cpu:.1f} s (the whole in-process job, every thread); load average {load()}",
            f"- failed checks: {', '.join(failed_checks(result)) or 'none'}; peak RSS {peak_rss_gb():.2f} GB",
        ]
        print("\n".join(report), flush=True)
    wh = open_warehouse(a.warehouse_url)
    t = time.perf_counter()
    inp = D.read_inputs(wh)
    through = inp.sales["day"].max()
    grid = D.daily_grid(inp, through)
    bt = BT.backtest(inp, grid, through, D.category_codes(inp.series), keep_rows=True)
    t_model = time.perf_counter() - t
    t = time.perf_counter()
    ets = None if a.skip_ets else ets_forecasts(grid, bt.tests)
    t_ets = time.perf_counter() - t
    if ets is None:
        rows, models = bt.tests, [M.MODEL_NAME, *M.BASELINES]
    else:
        rows = bt.tests.join(ets, on=["ticket_type_id", "origin", "day"], how="inner")
        models = [M.MODEL_NAME, ETS, *M.BASELINES]
    rows = rows.with_columns(
        pl.when(pl.col("horizon_day") <= 7)
        .then(pl.lit("a: 1-7"))
        .when(pl.col("horizon_day") <= 14)
        .then(pl.lit("b: 8-14"))
        .otherwise(pl.lit("c: 15-28"))
        .alias("horizon"),
        pl.when(pl.col("days_to_event") <= 7)
        .then(pl.lit("a: <=7"))
        .when(pl.col("days_to_event") <= 30)
        .then(pl.lit("b: 8-30"))
        .otherwise(pl.lit("c: >30"))
        .alias("days_to_event_bucket"),
    )
    coverage = rows.height / bt.tests.height if bt.tests.height else float("nan")
    report += [
        f"- data: {inp.series.height} ticket types, {inp.sales['tickets'].sum()} tickets sold, last sales day {through}",
        f"- backtest: origins {', '.join(map(str, bt.origins))}, horizon {BT.BACKTEST_HORIZON} d, {bt.rows} test rows; "
        f"model backtest (3 origins, one fit each) {t_model:.1f} s"
        + (f"; AutoETS {t_ets:.1f} s" if ets is not None else ""),
        "",
        "Asset's own figures (all test rows; demand_model_performance):",
        "",
        md(
            pl.DataFrame(
                [
                    {"model": k, **{m: v.get(m) for m in ("mae", "mase", "coverage_80", "bias")}}
                    for k, v in bt.metrics.items()
                ]
            )
        ),
        "",
        f"Side by side on the rows AutoETS could forecast ({rows.height} rows, {coverage:.0%} of the test rows; series "
        f"with >= {MIN_ETS_DAYS} observed days):"
        if ets is not None
        else f"All {rows.height} test rows (AutoETS not run: --skip-ets):",
        "",
        md(table(rows, models, None)),
        "",
        "By horizon (days after the origin):",
        "",
        md(table(rows, models, "horizon")),
        "",
        "By days to the event:",
        "",
        md(table(rows, models, "days_to_event_bucket")),
        "",
    ]
    text = "\n".join(report)
    print(text)
    if a.record:
        out = ROOT / "results" / "demand.md"
        head = "" if out.exists() else "# Demand model benchmark (benchmarks/bench_demand.py)\n\n"
        with out.open("a") as f:
            f.write(head + text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
