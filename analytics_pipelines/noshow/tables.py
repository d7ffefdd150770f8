"""The no-show tables from the features: per-ticket predictions of upcoming events, the per-event forecast,
the reasons for events not predicted, and the model's performance rows. Pure polars/numpy (no warehouse,
no Dagster): tests call `build` on frames."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from analytics_pipelines.noshow import model as M
from analytics_pipelines.noshow import plan as P
from analytics_pipelines.noshow.events import event_forecast
from analytics_pipelines.noshow.features import event_phases

PRED, FORECAST, REASONS, PERF = (
    "no_show_predictions",
    "event_no_show_forecast",
    "no_show_forecast_reasons",
    "no_show_model_performance",
)
PUBLISHED = (PRED, FORECAST, REASONS)
#: every fitted version across runs (models/versions.py)
VERSIONS = "no_show_model_versions"
#: risk bands of a ticket's probability (the seed recommended reminders above 0.3)
BANDS = ((0.10, "low"), (0.30, "medium"))

TS = pl.Datetime("us", "UTC")
PRED_SCHEMA = {
    "tenant_id": pl.String,
    "venue_id": pl.String,
    "event_id": pl.String,
    "ticket_id": pl.String,
    "ticket_type_id": pl.String,
    "user_id": pl.String,
    "starts_at": TS,
    "no_show_probability": pl.Float64,
    "risk_band": pl.String,
    "seed_probability": pl.Float64,
    "lead_days": pl.Float64,
    "price_cents": pl.Int64,
    "prior_tickets": pl.Int64,
    "prior_no_shows": pl.Int64,
    "resold": pl.Boolean,
    "model_version": pl.String,
    "validation": pl.String,
    "predicted_at": TS,
}
FORECAST_SCHEMA = {
    "tenant_id": pl.String,
    "venue_id": pl.String,
    "event_id": pl.String,
    "starts_at": TS,
    "tickets": pl.Int64,
    "expected_no_shows": pl.Float64,
    "expected_no_show_pct": pl.Float64,
    "no_shows_sd": pl.Float64,
    "no_shows_p10": pl.Int64,
    "no_shows_p90": pl.Int64,
    "interval_level": pl.Float64,
    "expected_attendance": pl.Float64,
    "seed_expected_no_shows": pl.Float64,
    "high_risk_tickets": pl.Int64,
    "model_version": pl.String,
    "validation": pl.String,
    "predicted_at": TS,
}
REASON_SCHEMA = {
    "tenant_id": pl.String,
    "venue_id": pl.String,
    "event_id": pl.String,
    "starts_at": TS,
    "phase": pl.String,
    "tickets": pl.Int64,
    "reason": pl.String,
    "detail": pl.String,
    "recorded_at": TS,
}
PERF_EXTRA = {
    "model_version": pl.String,
    "trained_at": TS,
    "train_first": TS,
    "train_last": TS,
    "test_first": TS,
    "test_last": TS,
    "features": pl.String,
    "calibration": pl.String,
    "status": pl.String,
}


def empty(schema: dict) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)


def empty_performance() -> pl.DataFrame:
    from analytics_pipelines.customers.evaluation import SCHEMA

    return pl.DataFrame(schema={**SCHEMA, **PERF_EXTRA})


@dataclass
class Output:
    frames: dict[str, pl.DataFrame]
    #: None when no model could be fitted
    gate: M.Gate | None
    #: why no model was fitted (NotEnoughData)
    not_trained: str | None = None
    final: M.Fitted | None = None
    evaluation: M.Evaluation | None = None
    model_version: str | None = None
    model_bytes: bytes | None = None
    sha256: str | None = None
    metadata: dict = field(default_factory=dict)


def _band(p: pl.Expr) -> pl.Expr:
    (lo, a), (mid, b) = BANDS
    return pl.when(p < lo).then(pl.lit(a)).when(p < mid).then(pl.lit(b)).otherwise(pl.lit("high"))


def reasons(
    events: pl.DataFrame,
    predicted: pl.DataFrame,
    tickets: pl.DataFrame,
    now: datetime,
    no_model: str | None = None,
) -> pl.DataFrame:
    """Every event that has not ended (or has no end) and is not in `predicted` (event_id), with why."""
    ev = event_phases(events, now)
    counts = (  # per event on the ids as they are (categorical codes), as strings after
        tickets.group_by("event_id")
        .agg(pl.len().cast(pl.Int64).alias("tickets"))
        .with_columns(pl.col("event_id").cast(pl.String))
    )
    open_ = ev.filter(pl.col("ends_at").is_null() | (pl.col("ends_at") >= now)).join(
        predicted.select("event_id"), on="event_id", how="anti"
    )
    detail = {
        "deleted": "the event is deleted",
        "cancelled_or_postponed": "cancelled or postponed: no attendance to predict",
        "no_schedule": "no start time in the schedule",
        "in_progress": "the event has started: its scans are under way",
    }
    reason = (
        pl.when(pl.col("phase") != "upcoming")
        .then(pl.col("phase"))
        .when(pl.col("tickets") == 0)
        .then(pl.lit("no_tickets_sold"))
        .otherwise(pl.lit("no_model"))
    )
    out = (
        open_.join(counts, on="event_id", how="left")
        .with_columns(pl.col("tickets").fill_null(0))
        .with_columns(reason.alias("reason"))
        .with_columns(
            pl.col("reason")
            .replace_strict(
                {**detail, "no_tickets_sold": "no ticket sold yet", "no_model": no_model or "no model"},
                default=None,
                return_dtype=pl.String,
            )
            .alias("detail"),
            pl.lit(now).dt.cast_time_unit("us").alias("recorded_at"),
        )
    )
    return out.select(list(REASON_SCHEMA)).cast(REASON_SCHEMA).sort("starts_at", "event_id", nulls_last=True)


def _version_columns(perf: pl.DataFrame, ev: M.Evaluation, version: str, now: datetime, status: str):
    held = ev.events
    fit = ev.fitted.fit_frame
    return perf.with_columns(
        pl.lit(version).alias("model_version"),
        pl.lit(now).dt.cast_time_unit("us").alias("trained_at"),
        pl.lit(fit["starts_at"].min()).alias("train_first"),
        pl.lit(fit["starts_at"].max()).alias("train_last"),
        pl.lit(held["starts_at"].min()).alias("test_first"),
        pl.lit(held["starts_at"].max()).alias("test_last"),
        pl.lit(", ".join(M.FEATURES)).alias("features"),
        pl.lit(ev.fitted.calibration).alias("calibration"),
        pl.lit(status).alias("status"),
    ).cast({**PERF_EXTRA})


def _evaluate_and_fit(
    labelled: pl.DataFrame, upcoming: pl.DataFrame, now: datetime, max_rows: int
) -> tuple[M.Evaluation, M.Fitted, np.ndarray]:
    """The out-of-time evaluation, and beside it in a second thread the final model's fit and its
    predictions of the upcoming tickets: two independent fits, each on one OpenMP thread (model.fit), that
    together used one core of two (at `large` ~4 s each). Each is the same computation as alone (its own rows,
    random_state and thread count): the results do not depend on the threads. BLAS is held to one thread for
    the whole (threadpoolctl's limit is process-wide for it; the two threads' own limits nest in this one)."""
    with threadpool_limits(limits=1), ThreadPoolExecutor(1, thread_name_prefix="tt-noshow-final") as pool:
        final = pool.submit(_final, labelled, upcoming, max_rows)
        ev = M.evaluate_out_of_time(labelled, now.date(), max_rows)
        fitted, p = final.result()
    return ev, fitted, p


def _final(labelled: pl.DataFrame, upcoming: pl.DataFrame, max_rows: int) -> tuple[M.Fitted, np.ndarray]:
    fitted = M.fit(labelled, max_rows)
    return fitted, fitted.predict(upcoming)


def build(
    feats: pl.DataFrame,
    events: pl.DataFrame,
    now: datetime,
    min_auc: float = 0.70,
    min_holdout_tickets: int = 500,
    min_holdout_no_shows: int = 25,
    max_rows: int = M.MAX_TRAIN_ROWS,
) -> Output:
    """Evaluate out of time, gate, refit on every labelled ticket and predict the upcoming events'
    tickets. The frames are what a passing (or unjudgeable) model publishes; the caller keeps the previous
    predictions when the gate refuses the model."""
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    # the model reads only these columns of the labelled tickets (at `large`, millions of rows: the ids of
    # the tickets, types and holders are not copied)
    labelled = feats.select([c for c in feats.columns if c in M.ROW_COLUMNS or c in P.PLAN_COLUMNS]).filter(
        pl.col("phase") == "ended"
    )
    upcoming = feats.filter(pl.col("phase") == "upcoming")
    # every labelled ticket, described or not (plan.describe_plan leaves most of them out at scale)
    n_labelled = (
        int(labelled.group_by("event_id").agg(pl.first("event_tickets"))["event_tickets"].sum() or 0)
        if "event_tickets" in labelled.columns
        else labelled.height
    )
    try:
        ev, final, p = _evaluate_and_fit(labelled, upcoming, now, max_rows)
    except M.NotEnoughData as exc:
        return Output(
            {
                PRED: empty(PRED_SCHEMA),
                FORECAST: empty(FORECAST_SCHEMA),
                REASONS: reasons(events, empty(FORECAST_SCHEMA), feats, now, f"no model: {exc}"),
                PERF: empty_performance(),
            },
            gate=None,
            not_trained=str(exc),
        )
    g = M.gate(ev, min_auc, min_holdout_tickets, min_holdout_no_shows)
    data, sha = M.serialize(
        final,
        {
            "as_of": now.date().isoformat(),
            "labelled_tickets": labelled.height,
            "holdout": {k: v for k, v in g.metrics.items()},
        },
    )
    version = f"noshow-{now.date().isoformat()}-{sha[:12]}"
    validation = {True: "passed", None: "insufficient_holdout", False: "refused"}[g.passed]
    stamp = pl.lit(now).dt.cast_time_unit("us")
    preds = (
        upcoming.with_columns(pl.Series("no_show_probability", p, dtype=pl.Float64))
        .with_columns(
            pl.col("holder_id").alias("user_id"),
            _band(pl.col("no_show_probability")).alias("risk_band"),
            (pl.col("resold") > 0).alias("resold"),
            pl.col("prior_tickets").cast(pl.Int64),
            pl.col("prior_no_shows").cast(pl.Int64),
            pl.col("price_cents").cast(pl.Int64),
            pl.lit(version).alias("model_version"),
            pl.lit(validation).alias("validation"),
            stamp.alias("predicted_at"),
        )
        .select(list(PRED_SCHEMA))
        .cast(PRED_SCHEMA)
        .sort("event_id", "ticket_id")
    )
    seed_fc = event_forecast(upcoming, upcoming["seed_probability"].to_numpy())
    high = preds.group_by("event_id").agg(
        (pl.col("risk_band") == "high").sum().cast(pl.Int64).alias("high_risk_tickets")
    )
    forecast = (
        event_forecast(upcoming, p)
        .join(seed_fc.select("event_id", pl.col("expected").alias("seed_expected_no_shows")), on="event_id")
        .join(high, on="event_id", how="left")
        .with_columns(
            pl.col("expected").alias("expected_no_shows"),
            (100 * pl.col("expected") / pl.col("tickets")).alias("expected_no_show_pct"),
            pl.col("sd").alias("no_shows_sd"),
            pl.col("p10").alias("no_shows_p10"),
            pl.col("p90").alias("no_shows_p90"),
            pl.lit(M.INTERVAL_LEVEL).alias("interval_level"),
            (pl.col("tickets") - pl.col("expected")).alias("expected_attendance"),
            pl.col("high_risk_tickets").fill_null(0),
            pl.lit(version).alias("model_version"),
            pl.lit(validation).alias("validation"),
            stamp.alias("predicted_at"),
        )
        .select(list(FORECAST_SCHEMA))
        .cast(FORECAST_SCHEMA)
        .sort("starts_at", "event_id")
    )
    status = {True: "accepted", None: "accepted_unjudged", False: "refused"}[g.passed]
    perf = _version_columns(ev.rows, ev, version, now, status)
    return Output(
        {PRED: preds, FORECAST: forecast, REASONS: reasons(events, forecast, feats, now), PERF: perf},
        gate=g,
        final=final,
        evaluation=ev,
        model_version=version,
        model_bytes=data,
        sha256=sha,
        metadata={
            "labelled_tickets": n_labelled,
            "labelled_tickets_described": labelled.height,
            "upcoming_tickets": upcoming.height,
            "holdout_cutoff": ev.cutoff.isoformat(),
            "calibration": final.calibration,
            **{k: (float(v) if isinstance(v, float) else v) for k, v in g.metrics.items()},
        },
    )


def refused_frames(
    events: pl.DataFrame, feats: pl.DataFrame, now: datetime, why: str
) -> dict[str, pl.DataFrame]:
    """What is published when the first model ever is refused (no previous predictions to keep)."""
    return {
        PRED: empty(PRED_SCHEMA),
        FORECAST: empty(FORECAST_SCHEMA),
        REASONS: reasons(events, empty(FORECAST_SCHEMA), feats, now, f"model refused: {why}"),
    }
