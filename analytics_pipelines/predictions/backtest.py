"""Rolling-origin backtest of the demand model against its two baselines, and the forecast itself.

Origins T_k = T - k x BACKTEST_HORIZON (k = 1..BACKTEST_ORIGINS, T = the last sales day): at each, the model is
fitted on the feature rows whose target day is on or before T_k (origins every ORIGIN_STEP days before
T_k), and forecasts the series open at T_k for the next BACKTEST_HORIZON days; those forecasts, the seasonal
naive's and the seed heuristic's are compared with what was sold ('out_of_time' rows of
demand_model_performance, pooled over the origins and per origin in `bucket`). The forecast is then made by
a model fitted on every row observed by T, for the series open at T with sales so far, N days ahead."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import joblib
import numpy as np
import polars as pl

from analytics_pipelines.predictions import demand_data as D
from analytics_pipelines.predictions import demand_model as M

BACKTEST_HORIZON = 28
BACKTEST_ORIGINS = 3
ORIGIN_STEP = 7
#: the final model is trained on targets up to this many days ahead (further days: its furthest behaviour)
MAX_TRAIN_HORIZON = 91
#: training origins reach back this far (older sales tell little about today's curve shapes)
TRAIN_LOOKBACK_DAYS = 540
#: the model must see at least this many labelled rows and test rows to be evaluated
MIN_TRAIN_ROWS, MIN_TEST_ROWS = 200, 50


class NotEnoughHistory(ValueError):
    """Too little sales history to fit or evaluate the demand model."""


@dataclass
class Backtest:
    metrics: dict[str, dict[str, float]]  # model -> metric -> value (pooled over the origins)
    per_origin: list[tuple[date, str, str, float, int]]  # origin, model, metric, value, n
    rows: int
    origins: list[date]
    train_window: tuple[date, date]
    #: the test rows with every model's forecast (`<model>_p10/_p50/_p90`), when asked for (benchmarks)
    tests: pl.DataFrame | None = None


@dataclass
class DemandRun:
    forecast: pl.DataFrame
    reasons: pl.DataFrame
    backtest: Backtest | None
    model_version: str
    trained_at: datetime
    through: date
    train_window: tuple[date, date]
    artifact: bytes = b""
    not_evaluated: str | None = None
    extras: dict = field(default_factory=dict)


def _train_origins(grid: pl.DataFrame, until: date) -> list[date]:
    """The training origins of a model fitted at `until`: every ORIGIN_STEP days before it, back to
    TRAIN_LOOKBACK_DAYS (and the first day of data)."""
    lo = max(grid["day"].min(), until - timedelta(days=TRAIN_LOOKBACK_DAYS))
    return D.origins_between(lo, until - timedelta(days=1), ORIGIN_STEP)


@dataclass
class TrainingKeys:
    """Every labelled training row's key (series, origin, horizon day), for all the fits of one run at once,
    with its sampling hash: a fit's sample is the MAX_TRAIN_ROWS rows of least hash among its own rows (its
    cutoff, origins and horizon), the same rows a sort of all its rows by the hash would give; only the
    sampled rows' features are ever built. The keys are narrow (an integer series index, dates, the hash)."""

    pairs: pl.DataFrame  # sid, ticket_type_id
    keys: pl.DataFrame  # sid, origin, horizon_day, day, key_hash

    @classmethod
    def build(cls, inp, grid: pl.DataFrame, origins: list[date], horizon: int, until: date) -> TrainingKeys:
        last = inp.series.select("ticket_type_id", "last_day")
        pairs = (
            grid.filter(pl.col("day").is_in(origins))
            .select("ticket_type_id", pl.col("day").alias("origin"))
            .join(last, on="ticket_type_id")
            .with_columns(
                pl.min_horizontal(
                    (pl.col("last_day") - pl.col("origin")).dt.total_days(),
                    (pl.lit(until) - pl.col("origin")).dt.total_days(),
                    pl.lit(horizon),
                ).alias("n")
            )
            .filter(pl.col("n") >= 1)
        )
        ids = pairs.select("ticket_type_id").unique().sort("ticket_type_id").with_row_index("sid")
        keys = (
            pairs.join(ids, on="ticket_type_id")
            .select(
                "sid",
                pl.col("ticket_type_id").hash(M.SEED).alias("tth"),
                "origin",
                pl.int_ranges(1, pl.col("n") + 1, dtype=pl.Int16).alias("horizon_day"),
            )
            .explode("horizon_day", empty_as_null=False)
            .with_columns((pl.col("origin") + pl.duration(days=pl.col("horizon_day"))).alias("day"))
            .with_columns(pl.struct("tth", "origin", "horizon_day").hash(M.SEED).alias("key_hash"))
            .drop("tth")
        )
        return cls(ids, keys)

    def sample(self, origins: list[date], horizon: int, until: date, limit: int) -> pl.DataFrame:
        """ticket_type_id, origin, horizon_day of a fit's sampled training rows."""
        mine = self.keys.filter(
            pl.col("origin").is_in(origins) & (pl.col("horizon_day") <= horizon) & (pl.col("day") <= until)
        )
        if mine.height > limit:
            mine = mine.bottom_k(limit, by="key_hash")
        return mine.join(self.pairs, on="sid").select("ticket_type_id", "origin", "horizon_day")


def _training(inp, grid, codes, until: date, horizon: int, keys: TrainingKeys | None = None) -> pl.DataFrame:
    """The training rows of a model fitted at `until` (its sample of at most MAX_TRAIN_ROWS rows)."""
    origins = _train_origins(grid, until)
    if keys is None:
        keys = TrainingKeys.build(inp, grid, origins, horizon, until)
    chosen = keys.sample(origins, horizon, until, M.MAX_TRAIN_ROWS)
    rows = D.feature_rows(inp, grid, origins, horizon, codes, observed_through=until, keys=chosen)
    return rows.filter(pl.col("day") <= until)


def origins_of(through: date) -> list[date]:
    """The backtest's origins: T - k x BACKTEST_HORIZON, k = BACKTEST_ORIGINS..1."""
    return [through - timedelta(days=BACKTEST_HORIZON * k) for k in range(BACKTEST_ORIGINS, 0, -1)]


def all_training_keys(inp, grid, through: date, horizon: int) -> TrainingKeys:
    """The keys of every fit of a run (the backtest's origins and the final fit at `through`) in one pass."""
    origins = sorted({o for u in [*origins_of(through), through] for o in _train_origins(grid, u)})
    return TrainingKeys.build(inp, grid, origins, max(horizon, BACKTEST_HORIZON), through)


def backtest(
    inp: D.DemandInputs,
    grid: pl.DataFrame,
    through: date,
    codes,
    keep_rows: bool = False,
    keys: TrainingKeys | None = None,
) -> Backtest:
    origins = origins_of(through)
    keys = keys or all_training_keys(inp, grid, through, BACKTEST_HORIZON)
    parts, per_origin, train_lo, kept = [], [], None, []
    for origin in origins:
        train = _training(inp, grid, codes, origin, BACKTEST_HORIZON, keys)
        test = D.feature_rows(inp, grid, [origin], BACKTEST_HORIZON, codes, observed_through=through)
        test = test.filter(pl.col("cum_tickets") > 0)  # the forecast's population: series with sales so far
        if train.height < MIN_TRAIN_ROWS or test.height == 0:
            continue
        train_lo = train["day"].min() if train_lo is None else min(train_lo, train["day"].min())
        model = M.fit(train)
        fcs = {M.MODEL_NAME: model.predict(test), **M.baselines(test)}
        actual = test["target"].cast(pl.Float64).to_numpy()
        scale = M.mase_scale(grid, test["ticket_type_id"].unique().to_list(), origin)
        for name, fc in fcs.items():
            for metric, value in M.errors(actual, fc, scale).items():
                per_origin.append((origin, name, metric, value, len(actual)))
        parts.append((actual, fcs, scale))
        if keep_rows:
            kept.append(
                test.select(
                    "ticket_type_id", "origin", "day", "horizon_day", "days_to_event", "target"
                ).with_columns(
                    pl.lit(scale).alias("scale"),
                    *(
                        fc[c].alias(f"{name}_{c.removeprefix('tickets_')}")
                        for name, fc in fcs.items()
                        for c in fc.columns
                    ),
                )
            )
    n = sum(len(a) for a, _, _ in parts)
    if n < MIN_TEST_ROWS:
        raise NotEnoughHistory(
            f"the backtest over origins {', '.join(map(str, origins))} has {n} test rows (at least "
            f"{MIN_TEST_ROWS} needed): too little sales history before {through}"
        )
    actual = np.concatenate([a for a, _, _ in parts])
    # pooled MASE: every origin's absolute errors over its own in-sample scale, weighted by its rows
    metrics = {}
    for name in (M.MODEL_NAME, *M.BASELINES):
        fc = pl.concat([f[name] for _, f, _ in parts])
        scaled = np.concatenate([np.abs(a - f[name]["tickets_p50"].to_numpy()) / s for a, f, s in parts])
        m = M.errors(actual, fc, 1.0)
        m["mase"] = float(scaled.mean())
        metrics[name] = m
    for name in M.BASELINES:
        metrics[M.MODEL_NAME][f"mae_ratio_vs_{name}"] = metrics[M.MODEL_NAME]["mae"] / metrics[name]["mae"]
    tests = pl.concat(kept) if kept else None
    return Backtest(metrics, per_origin, n, list(origins), (train_lo or through, through), tests)


def gate(bt: Backtest) -> tuple[bool, dict[str, float]]:
    """The model passes when its pooled MASE is below both baselines' (blocking check)."""
    m = bt.metrics
    mine = m[M.MODEL_NAME]["mase"]
    facts = {f"mase_{k}": v["mase"] for k, v in m.items()}
    facts["coverage_80"] = m[M.MODEL_NAME]["coverage_80"]
    ok = all(mine == mine and mine < m[b]["mase"] for b in M.BASELINES)
    return ok, facts


def version_of(model: M.DemandModel, through: date) -> tuple[str, bytes]:
    buf = io.BytesIO()
    joblib.dump(
        {
            "model": model.model,
            "alpha": model.alpha,
            "features": model.features,
            "through": through.isoformat(),
        },
        buf,
    )
    data = buf.getvalue()
    return f"demand-hgbnb-{through.isoformat()}-{hashlib.sha256(data).hexdigest()[:12]}", data
