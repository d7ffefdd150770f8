"""The predictions domain's registry hooks: the demand_forecast builder (forecast, reasons, performance) and
its checks. Pure wiring of predictions/backtest.py and forecast.py over the BuildContext; nothing of Dagster.

The blocking gate: when the backtest says the new model is not better than both baselines (MASE), the
builder keeps the stored forecast (it is not rewritten: `already_written`) and the `beats_baselines` check
fails, which stops the assets below; the performance rows of the refused model are written all the same,
so the refusal is on record in model_performance. Every fitted version is also kept across runs in
`demand_model_versions` (models/versions.py): the accepted one `serving`, a refused one `refused` beside the
version still in use."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import polars as pl

from analytics_pipelines.customers.evaluation import SCHEMA as PERF_SCHEMA
from analytics_pipelines.marts.reconcile import CheckOutcome, _combine
from analytics_pipelines.models import versions as V
from analytics_pipelines.predictions import backtest as BT
from analytics_pipelines.predictions import demand_data as D
from analytics_pipelines.predictions import demand_model as M
from analytics_pipelines.predictions import forecast as F
from analytics_pipelines.registry.context import BuildContext, Built, StageClock, md_table

FORECAST, REASONS, PERFORMANCE = "demand_forecast", "demand_forecast_reasons", "demand_model_performance"
VERSIONS = "demand_model_versions"
FAMILY = "demand"
PERF_EXTRA = {
    "model_version": pl.String,
    "trained_at": pl.Datetime("us", "UTC"),
    "window_start": pl.Date,
    "window_end": pl.Date,
    "features": pl.String,
    "role": pl.String,
}


def performance_frame(
    bt: BT.Backtest, version: str, trained_at: datetime, through: date, passed: bool
) -> pl.DataFrame:
    """demand_model_performance rows: the pooled backtest metrics of the model and of each baseline (bucket
    NULL) and per origin (bucket 'origin=<day>'), with the model's version, window and features."""
    rows = []
    for model, metrics in bt.metrics.items():
        for metric, value in metrics.items():
            rows.append((model, metric, None, value, bt.rows))
    for origin, model, metric, value, n in bt.per_origin:
        rows.append((model, metric, f"origin={origin.isoformat()}", value, n))
    rows.append((M.MODEL_NAME, "passed_gate", None, 1.0 if passed else 0.0, bt.rows))
    return pl.DataFrame(
        [
            {
                "model_family": FAMILY,
                "model": m,
                "as_of": through,
                "cutoff": bt.origins[0],
                "horizon_days": BT.BACKTEST_HORIZON,
                "evaluation": "out_of_time",
                "metric": metric,
                "bucket": bucket,
                "value": None if v is None or not np.isfinite(v) else float(v),
                "n": int(n),
                "model_version": version if m == M.MODEL_NAME else f"baseline:{m}",
                "trained_at": trained_at,
                "window_start": bt.train_window[0],
                "window_end": bt.train_window[1],
                "features": ",".join(D.FEATURES) if m == M.MODEL_NAME else BASELINE_FEATURES[m],
                "role": "candidate" if m == M.MODEL_NAME else "baseline",
            }
            for m, metric, bucket, v, n in rows
        ],
        schema={**PERF_SCHEMA, **PERF_EXTRA},
    )


BASELINE_FEATURES = {"seasonal_naive": "same_weekday_last_week", "seed_heuristic": "weekday"}


def _empty_performance() -> pl.DataFrame:
    return pl.DataFrame(schema={**PERF_SCHEMA, **PERF_EXTRA})


def _previous(ctx: BuildContext, name: str) -> pl.DataFrame | None:
    return ctx.wh.read_table(name) if name in ctx.wh.tables() else None


def _history(ctx: BuildContext) -> pl.DataFrame | None:
    """The stored version history; before the first one (tables written by an older release), the stored
    forecast's version as the serving one, so that a refusal keeps pointing at what is published."""
    hist = _previous(ctx, VERSIONS)
    if hist is not None:
        return hist
    prev = _previous(ctx, FORECAST)
    if prev is None or prev.height == 0:
        return None
    last = prev.sort("trained_at").row(-1, named=True)
    return V.published(
        FAMILY, M.MODEL_NAME, last["model_version"], last["trained_at"], last["as_of"], D.FEATURES, "mase"
    )


def run(
    inp: D.DemandInputs, through: date, days: int, now: datetime, clock: StageClock | None = None
) -> BT.DemandRun:
    """Backtest, gate, final fit and forecast, as plain data (tests call this without a warehouse)."""
    clock = clock or StageClock()
    grid = D.daily_grid(inp, through)
    codes = D.category_codes(inp.series)
    reasons = F.reasons(inp, grid, through)
    horizon = min(days, BT.MAX_TRAIN_HORIZON)
    keys = BT.all_training_keys(inp, grid, through, horizon)  # every fit's training rows, one pass
    clock.lap("grid and keys")
    bt = BT.backtest(inp, grid, through, codes, keys=keys)  # raises NotEnoughHistory
    clock.lap("backtest")
    train = BT._training(inp, grid, codes, through, horizon, keys)
    model = M.fit(train)
    clock.lap("final fit")
    version, blob = BT.version_of(model, through)
    fc = F.forecast_rows(inp, grid, through, days, codes, model, reasons, version, now)
    clock.lap("forecast")
    return BT.DemandRun(fc, reasons, bt, version, now, through, (train["day"].min(), through), blob)


def demand_forecast(ctx: BuildContext) -> Built:
    wh = ctx.wh
    days = ctx.settings.demand_forecast_days
    clock = StageClock()
    inp = D.read_inputs(wh)
    clock.lap("read")
    last = inp.sales["day"].max()
    through = min(last, ctx.now.date()) if last is not None else ctx.now.date()
    now = ctx.now.astimezone(UTC).replace(microsecond=0)
    try:
        result = run(inp, through, days, now, clock)
    except BT.NotEnoughHistory as exc:
        ctx.log.warning(f"no demand model: {exc}")
        grid = D.daily_grid(inp, through)
        prev = _previous(ctx, FORECAST)
        hist = _history(ctx)
        frames = {
            FORECAST: prev if prev is not None else F.empty_forecast(),
            REASONS: F.reasons(inp, grid, through),
            PERFORMANCE: _empty_performance(),
            VERSIONS: hist if hist is not None else V.empty(),
        }
        return Built(
            frames,
            already_written=(FORECAST,) if prev is not None else (),
            extras={"not_evaluated": str(exc), "series": inp.series},
            metadata={"model": "none", "reason": str(exc)},
        )
    passed, facts = BT.gate(result.backtest)
    perf = performance_frame(result.backtest, result.model_version, now, through, passed)
    model_metrics = result.backtest.metrics
    frames = {
        FORECAST: result.forecast,
        REASONS: result.reasons,
        PERFORMANCE: perf,
        VERSIONS: V.record(
            _history(ctx),
            family=FAMILY,
            model=M.MODEL_NAME,
            version=result.model_version,
            trained_at=now,
            as_of=through,
            window=result.train_window,
            features=D.FEATURES,
            metrics={"backtest_origins": [o.isoformat() for o in result.backtest.origins], **model_metrics},
            gate_metric="mase",
            gate_value=model_metrics[M.MODEL_NAME]["mase"],
            passed_gate=passed,
            accepted=passed,
        ),
    }
    kept = ()
    if passed:
        directory = ctx.data_dir / "models" / "demand"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{result.model_version}.joblib").write_bytes(result.artifact)
    else:
        prev = _previous(ctx, FORECAST)
        frames[FORECAST] = prev if prev is not None else F.empty_forecast()
        prev_reasons = _previous(ctx, REASONS)
        frames[REASONS] = prev_reasons if prev_reasons is not None else result.reasons
        kept = tuple(n for n in (FORECAST, REASONS) if _previous(ctx, n) is not None)
    headline = perf.filter(
        pl.col("bucket").is_null() & pl.col("metric").is_in(["mase", "mae", "coverage_80"])
    )
    return Built(
        frames,
        already_written=kept,
        extras={"gate": passed, "facts": facts, "series": inp.series},
        metadata={
            "model_version": result.model_version,
            "serving_version": V.serving(frames[VERSIONS]) or "none",
            "versions_recorded": frames[VERSIONS].height,
            "as_of": through.isoformat(),
            "horizon_days": days,
            "stage_seconds": clock.summary(),
            "passed_gate": passed,
            "forecast_rows": result.forecast.height,
            "series_forecast": result.forecast["ticket_type_id"].n_unique() if result.forecast.height else 0,
            "reasons": md_table(result.reasons.group_by("reason").len().sort("reason"), 20),
            "backtest": md_table(headline.select("model", "metric", "value", "n"), 20),
            **{k: float(v) for k, v in facts.items() if v == v},
        },
    )


def check_beats_baselines(ctx: BuildContext, built: Built) -> CheckOutcome:
    """The new model's backtest MASE is below the seasonal naive's and the seed heuristic's."""
    if "not_evaluated" in built.extras:
        # nothing was trained (too little history): a warning, not a refusal; the stored forecast stays
        return CheckOutcome(
            False, {"reason": built.extras["not_evaluated"]}, skipped=built.extras["not_evaluated"]
        )
    return CheckOutcome(
        bool(built.extras["gate"]), {k: float(v) for k, v in built.extras["facts"].items() if v == v}
    )


def check_forecast(ctx: BuildContext, built: Built) -> CheckOutcome:
    """demand_forecast and its reasons: quantiles finite, >= 0 and ordered; one row per type and day; horizon
    days 1..N; every ticket type of every event is in exactly one of the forecast and the reasons; the
    version history holds one row per version, at most one serving, and the forecast is the serving one's."""
    fc, rs = built.frames[FORECAST], built.frames[REASONS]
    q = ["tickets_p10", "tickets_p50", "tickets_p90"]
    series = built.extras["series"].select("ticket_type_id")
    in_fc = fc.select("ticket_type_id").unique()
    in_rs = rs.select("ticket_type_id").drop_nulls().unique()
    kept = FORECAST in built.already_written
    return _combine(
        metadata={"forecast_rows": fc.height, "reason_rows": rs.height, "kept_previous": kept},
        extra_failures={
            "quantile_not_finite": fc.filter(
                pl.any_horizontal(~pl.col(c).is_finite().fill_null(False) for c in q)
            ).height,
            "quantile_negative": fc.filter(pl.any_horizontal(pl.col(c) < 0 for c in q)).height,
            "quantiles_not_ordered": fc.filter(
                (pl.col("tickets_p10") > pl.col("tickets_p50") + 1e-9)
                | (pl.col("tickets_p50") > pl.col("tickets_p90") + 1e-9)
            ).height,
            "horizon_out_of_range": fc.filter(
                (pl.col("horizon_day") < 1) | (pl.col("horizon_day") > ctx.settings.demand_forecast_days)
            ).height,
            "type_in_both": 0 if kept else in_fc.join(in_rs, on="ticket_type_id").height,
            "type_in_neither": 0
            if kept
            else series.join(in_fc, on="ticket_type_id", how="anti")
            .join(in_rs, on="ticket_type_id", how="anti")
            .height,
            "reason_missing": rs["reason"].null_count(),
            **V.problems(built.frames[VERSIONS], fc["model_version"].unique().to_list() if fc.height else []),
        },
    )
