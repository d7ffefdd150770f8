"""Which tickets the no-show model uses: the out-of-time splits by event and the deterministic samples the
fits draw (split from model.py, which fits and evaluates on them). The features describe only the tickets
`describe_plan` selects (features.features' `plan`); `fit` and `evaluate_out_of_time` draw the same rows
from them (model.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl

HOLDOUT_SHARE = 0.2
CALIBRATION_SHARE = 0.25
#: a booster over ~20 features learns nothing more from millions of rows than from 200k: bounds the fit time
MAX_TRAIN_ROWS = 200_000
#: optional columns of the features when they describe only the rows the model uses (describe_plan):
#: `event_tickets` (the event's labelled tickets, all of them: the event splits weigh events by it) and
#: `fit_sample` (the ticket is in the uniform hash sample the fits draw from)
#: and `holdout_sample` (the ticket's held-out event is in the evaluated sample of held-out events)
#: the fits' draws, per fit (`fit(drawn=...)`): the columns of its fitted and its calibration rows, drawn by
#: describe_plan the way fit draws them (when the features carry them, fit takes them as they are)
DRAWS = {
    "evaluation": ("evaluation_fit_rows", "evaluation_calibration_rows"),
    "final": ("final_fit_rows", "final_calibration_rows"),
}
PLAN_COLUMNS = ["event_tickets", "fit_sample", "holdout_sample", *(c for d in DRAWS.values() for c in d)]
#: seed of the fits' capped draws
DRAW_SEED = 20261206
#: the out-of-time evaluation scores a hash sample of the held-out events of about this many tickets (at
#: `large` 1.9M held-out tickets: their features and predictions were ~20 CPU-s; AUC's standard error on
#: 400k tickets is ~0.001)
MAX_HOLDOUT_ROWS = 400_000
#: margin of the hash sample over the smallest fitted part's cap (the evaluation's calibration part)
SAMPLE_MARGIN = 1.25
#: seed of the hash of the event ids that samples the held-out events
HOLDOUT_SEED = 20261207


@dataclass
class Split:
    early: pl.DataFrame
    late: pl.DataFrame
    cutoff: datetime | None


def event_split(rows: pl.DataFrame, share: float) -> tuple[pl.Series, pl.Series, datetime | None]:
    """(early event ids, late event ids, cutoff) of split_by_event_time, from the three event columns only
    (no row of `rows` is copied)."""
    count = pl.first("event_tickets") if "event_tickets" in rows.columns else pl.len()
    ev = (
        rows.select(
            "event_id",
            "starts_at",
            "ends_at",
            *(["event_tickets"] if "event_tickets" in rows.columns else []),
        )
        .group_by("event_id")
        .agg(pl.first("starts_at"), pl.first("ends_at"), count.cast(pl.Int64).alias("n"))
        .sort("starts_at", "event_id")
        .with_columns((pl.col("n").cum_sum() - pl.col("n")).alias("before"))
    )
    total = int(ev["n"].sum() or 0)
    late_ev = ev.filter(pl.col("before") >= (1 - share) * total)
    if late_ev.height == 0 or late_ev.height == ev.height:
        return ev["event_id"], ev["event_id"].clear(), None
    cutoff = late_ev["starts_at"].min()
    return ev.filter(pl.col("ends_at") < cutoff)["event_id"], late_ev["event_id"], cutoff


def of_events(
    rows: pl.DataFrame,
    events: pl.Series,
    cap: int | None = None,
    seed: int = DRAW_SEED,
    sampled: bool = False,
):
    """The rows of `events` in their order; with `cap`, a deterministic sample of at most `cap` of them
    (sorted positions drawn by a fixed seed) gathered without materializing the others. `sampled`: only the
    rows of the hash sample (`fit_sample`, when the features carry it)."""
    which = pl.col("event_id").is_in(events.implode())
    if sampled and "fit_sample" in rows.columns:
        which = which & pl.col("fit_sample")
    return rows[_draw(rows.select(which.arg_true()).to_series(), cap, seed)]


def _draw(idx: pl.Series, cap: int | None, seed: int = DRAW_SEED) -> pl.Series:
    """At most `cap` of the positions `idx`, in their order: sorted positions drawn by a fixed seed."""
    if cap is not None and len(idx) > cap:
        keep = np.sort(np.random.default_rng(seed).choice(len(idx), cap, replace=False))
        idx = idx.gather(keep)
    return idx


def _hash_under(hashed: pl.Expr, rate: float) -> pl.Expr:
    """True for a deterministic share `rate` of the values whose 64-bit hashes are `hashed` (subset-stable:
    a value is in or out whatever the other values)."""
    if rate >= 1.0:
        return pl.lit(True)
    return (hashed % (2**32)) < int(rate * 2**32)


def describe_plan(
    events: pl.DataFrame,
    tickets: pl.DataFrame,
    max_rows: int = MAX_TRAIN_ROWS,
    max_holdout_rows: int = MAX_HOLDOUT_ROWS,
) -> pl.DataFrame:
    """Which tickets the features must describe, the fits' sample and the held-out sample
    (features.features' `plan`).

    `events`: one row per event with event_id, starts_at, ends_at, phase and event_tickets (its labelled
    tickets); `tickets`: every sold ticket, `e` (its event's row in `events`) and `ticket_hash` (a 64-bit hash
    of its id, features.TICKET_HASH_SEED). Returns boolean columns in `tickets`' order:
    - fit_sample: a labelled ticket whose hash falls under a rate chosen so that the smallest part a fit draws
      (the evaluation's calibration events: CALIBRATION_SHARE of the older 1 - HOLDOUT_SHARE of the tickets)
      still holds SAMPLE_MARGIN x max_rows of them; rate 1 (every ticket) when the labelled tickets are few.
      Uniform over the events and deterministic (the same ticket is in or out whatever the other rows: a
      subset-stable sample);
    - holdout_sample: a ticket of a held-out event (the latest HOLDOUT_SHARE of the labelled tickets, whole
      events) chosen by a hash of its event id, at a rate that keeps about `max_holdout_rows` held-out
      tickets (every held-out event when they are fewer): the out-of-time evaluation scores these whole
      events;
    - the fits' draws (DRAWS): the rows of the evaluated model's fit and calibration parts and of the final
      model's, each at most `max_rows` of the fit sample's tickets of its events, drawn exactly as `fit`
      draws them from the described rows without these columns (the same positions among the same sampled
      tickets in the same order: the same fitted rows, the same models);
    - describe: every ticket not labelled (upcoming and the other phases: the predictions and the reasons
      read them), the held-out sample, the fits' draws and the first ticket of every labelled event (so that
      every event, even one without a drawn ticket, weighs in the event splits by its event_tickets). Only
      the drawn ones of the fit sample are described: at `large` ~0.8M of its 1.25M tickets.
    Everything but the per-ticket look-ups and the draws runs on the events (at `large` 20k events, 10M
    tickets)."""
    ev = events.with_columns((pl.col("phase") == "ended").alias("_ended"))
    labelled = ev.filter(pl.col("_ended") & (pl.col("event_tickets") > 0))
    n = int(labelled["event_tickets"].sum() or 0)
    smallest = CALIBRATION_SHARE * (1 - HOLDOUT_SHARE) * n
    rate = 1.0 if smallest <= 0 else min(1.0, SAMPLE_MARGIN * max_rows / smallest)
    labelled = labelled.select("event_id", "starts_at", "ends_at", "event_tickets")
    early, late, _ = event_split(labelled, HOLDOUT_SHARE)
    in_late = pl.col("event_id").is_in(late.implode())
    held_total = int(labelled.filter(in_late)["event_tickets"].sum() or 0)
    held_rate = 1.0 if held_total <= max_holdout_rows else max_holdout_rows / held_total
    ev = ev.select(
        "_ended",
        (
            pl.col("_ended")
            & in_late
            & _hash_under(pl.col("event_id").cast(pl.String).hash(HOLDOUT_SEED), held_rate)
        ).alias("_held"),
    )
    at = ev[tickets["e"]]  # each ticket's event row
    out = pl.DataFrame([at["_ended"], at["_held"].alias("holdout_sample"), tickets["e"]]).with_columns(
        (pl.col("_ended") & _hash_under(tickets["ticket_hash"], rate)).alias("fit_sample")
    )
    # the fits' event splits (fit's: the evaluated model on the events ended before the held-out ones)
    within = labelled.filter(pl.col("event_id").is_in(early.implode()))
    parts = {
        "evaluation": event_split(within, CALIBRATION_SHARE),
        "final": event_split(labelled, CALIBRATION_SHARE),
    }
    drawn = []
    for name, (older, newer, _) in parts.items():
        for column, chosen in zip(DRAWS[name], (older, newer), strict=True):
            of = events["event_id"].is_in(chosen.implode()).gather(tickets["e"])
            idx = _draw((out["fit_sample"] & of).arg_true(), max_rows)
            drawn.append(pl.Series(column, np.zeros(out.height, dtype=bool)).scatter(idx, True))
    out = out.with_columns(drawn)
    return out.select(
        # one ticket of every labelled event at least: the event splits weigh every event by event_tickets
        (
            ~pl.col("_ended")
            | pl.col("holdout_sample")
            | pl.any_horizontal([s.name for s in drawn])
            | (pl.col("_ended") & pl.col("e").is_first_distinct())
        ).alias("describe"),
        "fit_sample",
        "holdout_sample",
        *(s.name for s in drawn),
    )


def split_by_event_time(rows: pl.DataFrame, share: float) -> Split:
    """The latest events holding `share` of the rows (whole events, ordered by start) vs the events that
    ended before the first of them started. Rows of an event overlapping that moment are in neither."""
    early, late, cutoff = event_split(rows, share)
    if cutoff is None:
        return Split(rows, rows.clear(), None)
    return Split(of_events(rows, early), of_events(rows, late), cutoff)
