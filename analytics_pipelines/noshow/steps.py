"""The no-show asset's builder and checks (registry/noshow.py): wiring of features, tables and the model
artifact; nothing of Dagster.

The gate (docs/no-show.md): the model evaluated out of time must beat the seed rule's AUC and reach
`TT_NO_SHOW_MIN_AUC` (0.70). A refused model is not used: its performance rows are written (status
'refused'), the previous predictions, forecast and reasons stay as they are, no artifact is saved, and the
blocking check `beats_seed_rule` fails the run. With too few held-out tickets to judge, the model is used and
its rows say `validation = 'insufficient_holdout'` (the check warns). Every fitted version is kept across runs
in `no_show_model_versions` (models/versions.py): serving, retired or refused."""

from __future__ import annotations

import os

import numpy as np
import polars as pl

from analytics_pipelines.customers.build import data_clock
from analytics_pipelines.marts.reconcile import CheckOutcome
from analytics_pipelines.models import versions as V
from analytics_pipelines.noshow import model as M
from analytics_pipelines.noshow import plan as P
from analytics_pipelines.noshow import tables as T
from analytics_pipelines.noshow.features import features, read_inputs
from analytics_pipelines.registry.context import BuildContext, Built, StageClock, md_table

FAMILY = "no_show"


def no_show_model(ctx: BuildContext) -> Built:
    """Features as of the run's clock, the out-of-time evaluation and gate, the refitted model saved as
    <data dir>/models/no_show/<version>.joblib, and the four tables."""
    wh, s = ctx.wh, ctx.settings
    clock = StageClock()
    now = data_clock(wh, ctx.now)
    inp = read_inputs(wh)
    clock.lap("read")
    # only the tickets the model uses: held-out events, the fits' hash sample, those not ended
    feats = features(inp, now, plan=P.describe_plan)
    clock.lap("features")
    events = inp.events
    del inp  # the raw tickets, scans and orders (at `large`, GBs) are not needed past the features
    out = T.build(
        feats, events, now, s.no_show_min_auc, s.no_show_min_holdout_tickets, s.no_show_min_holdout_no_shows
    )
    clock.lap("evaluate, fit and predict")
    frames = dict(out.frames)
    extras: dict = {"gate": out.gate, "not_trained": out.not_trained, "events": events, "now": now}
    meta = dict(out.metadata)
    already: tuple[str, ...] = ()
    if out.gate is not None and out.gate.passed is False:
        have = set(wh.tables())
        if all(t in have for t in T.PUBLISHED):
            frames.update({t: wh.read_table(t) for t in T.PUBLISHED})
            already = T.PUBLISHED
            meta["published"] = "previous predictions kept (model refused)"
        else:
            frames.update(T.refused_frames(events, feats, now, out.gate.reason))
            meta["published"] = "none (model refused, no previous predictions)"
        ctx.log.warning(f"no-show model refused: {out.gate.reason}")
    elif out.model_bytes is not None:
        directory = ctx.data_dir / "models" / "no_show"
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{out.model_version}.joblib"
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(out.model_bytes)
        tmp.replace(path)
        meta.update({"artifact": str(path), "sha256": out.sha256, "published": out.model_version})
    else:
        meta["published"] = f"none: {out.not_trained}"
    if out.gate is not None:
        meta["gate"] = out.gate.reason
    frames[T.VERSIONS] = _versions(ctx, out, now)
    if out.evaluation is not None:
        head = out.evaluation.rows.filter(pl.col("bucket").is_null())
        meta["holdout"] = md_table(
            head.pivot(on="model", index=["evaluation", "metric"], values="value").sort(
                "evaluation", "metric"
            ),
            40,
        )
        meta["holdout_events"] = md_table(
            out.evaluation.events.select(
                "event_id", "tickets", "actual", "expected", "p10", "p90", "seed_expected"
            ),
            15,
        )
    return Built(
        frames,
        metadata={
            "model_version": out.model_version or "none",
            "tickets_predicted": frames[T.PRED].height,
            "events_forecast": frames[T.FORECAST].height,
            "events_with_reason": frames[T.REASONS].height,
            "stage_seconds": clock.summary(),
            **meta,
        },
        data_version=(out.sha256 or "")[:16] or None,
        already_written=already,
        extras=extras,
    )


def _history(ctx: BuildContext) -> pl.DataFrame | None:
    """The stored version history; before the first one (tables written by an older release), the published
    predictions' version as the serving one."""
    have = set(ctx.wh.tables())
    if T.VERSIONS in have:
        return ctx.wh.read_table(T.VERSIONS)
    if T.FORECAST not in have:
        return None
    fc = ctx.wh.read_table(T.FORECAST)
    if fc.height == 0:
        return None
    last = fc.sort("predicted_at").row(-1, named=True)
    at = last["predicted_at"]
    return V.published(FAMILY, FAMILY, last["model_version"], at, at.date(), M.FEATURES, "roc_auc")


def _versions(ctx: BuildContext, out: T.Output, now) -> pl.DataFrame:
    """The version history after this run: the new version serving (accepted, or unjudged: it is used) or
    refused; unchanged when no model could be fitted."""
    hist = _history(ctx)
    if out.gate is None or out.model_version is None:
        return hist if hist is not None else V.empty()
    fit = out.final.fit_frame if out.final is not None else pl.DataFrame()
    window = (fit["starts_at"].min(), fit["starts_at"].max()) if "starts_at" in fit.columns else (None, None)
    return V.record(
        hist,
        family=FAMILY,
        model=M.model_label(out.final) if out.final is not None else FAMILY,
        version=out.model_version,
        trained_at=now,
        as_of=now.date(),
        window=window,
        features=M.FEATURES,
        metrics={**out.gate.metrics, "gate": out.gate.reason},
        gate_metric="roc_auc",
        gate_value=out.gate.metrics.get("roc_auc_model"),
        passed_gate=out.gate.passed,
        accepted=out.gate.passed is not False,
    )


def check_beats_seed_rule(ctx: BuildContext, built: Built) -> CheckOutcome:
    """Out-of-time AUC above the seed rule's and at least the configured minimum (blocking)."""
    gate = built.extras.get("gate")
    if gate is None:
        return CheckOutcome(False, skipped=f"no model fitted: {built.extras.get('not_trained')}")
    meta = {k: v for k, v in gate.metrics.items()} | {"reason": gate.reason}
    if gate.passed is None:
        return CheckOutcome(False, meta, skipped=gate.reason)
    return CheckOutcome(bool(gate.passed), meta)


def check_predictions(ctx: BuildContext, built: Built) -> CheckOutcome:
    kept = bool(built.already_written)  # the previous tables: events opened since may be unaccounted
    out = validate_tables(built.frames, built.extras["events"], built.extras["now"], complete=not kept)
    published = built.frames[T.FORECAST]["model_version"].unique().to_list()
    bad = {k: v for k, v in V.problems(built.frames[T.VERSIONS], published).items() if v}
    return CheckOutcome(out.passed and not bad, {**out.metadata, **bad})


def validate_tables(
    frames: dict[str, pl.DataFrame], events: pl.DataFrame, now, complete: bool = True
) -> CheckOutcome:
    """Probabilities in [0, 1] and never NULL/NaN; p10 <= expected <= p90 within [0, tickets]; the per-event
    forecast sums its tickets' probabilities; every event that has not ended is either forecast or has a
    reason (not both); one row per ticket and per event."""
    pred, fc, rs = frames[T.PRED], frames[T.FORECAST], frames[T.REASONS]
    p = pred["no_show_probability"].to_numpy() if pred.height else np.zeros(0)
    sums = pred.group_by("event_id").agg(pl.sum("no_show_probability").alias("s"), pl.len().alias("n"))
    joined = fc.join(sums, on="event_id", how="left")
    from analytics_pipelines.noshow.features import event_phases

    open_ = event_phases(events, now).filter(pl.col("ends_at").is_null() | (pl.col("ends_at") >= now))
    listed = pl.concat([fc.select("event_id"), rs.select("event_id")])
    failures = {
        "probabilities_invalid": int((~np.isfinite(p) | (p < 0) | (p > 1)).sum()),
        "null_probabilities": pred["no_show_probability"].null_count(),
        "interval_unordered": fc.filter(
            ~(
                (pl.col("no_shows_p10") <= pl.col("expected_no_shows"))
                & (pl.col("expected_no_shows") <= pl.col("no_shows_p90"))
                & (pl.col("no_shows_p10") >= 0)
                & (pl.col("no_shows_p90") <= pl.col("tickets"))
            )
        ).height,
        "nan_values": sum(
            int(f.select(pl.col(c).is_nan().sum()).item())
            for f in (pred, fc)
            for c, dt in f.schema.items()
            if dt == pl.Float64
        ),
        "forecast_not_sum_of_tickets": joined.filter(
            ((pl.col("s") - pl.col("expected_no_shows")).abs() > 1e-6) | (pl.col("n") != pl.col("tickets"))
        ).height,
        "events_forecast_and_reasoned": fc.join(rs, on="event_id", how="semi").height,
        "open_events_unaccounted": open_.join(listed, on="event_id", how="anti").height if complete else 0,
        "duplicate_tickets": int(pred["ticket_id"].is_duplicated().sum()),
        "duplicate_events": int(fc["event_id"].is_duplicated().sum()),
    }
    return CheckOutcome(
        not any(failures.values()),
        {**failures, "tickets": pred.height, "events": fc.height, "reasons": rs.height},
    )
