"""Anomaly detection on sales velocity (issue 17: "on the hourly KPI series and on velocity").

The series: tickets sold per venue and hour (`velocity_tickets_per_hour`, the hourly rate of the 5-minute
`sales_velocity` buckets summed over the venue's events; ticket sale time = stg_tickets.created_at), zero-filled
from the venue's first sale. Per venue, not per event: an event is on sale for a few weeks, too short a
history for a weekday x hour baseline, while a venue's sales have the weekly seasonality the KPI detector
models. The detector is the KPI one (anomalies/detector.py): robust weekday x hour median and MAD over the
previous TT_ANOMALY_BASELINE_WEEKS weeks, Poisson floor, windows of 1/6/24/72 h, the same severities; alert
episodes are deduplicated by the alert engine (one open instance per venue until the series has been normal
for TT_ANOMALY_RESOLVE_HOURS), through the seeded rule `velocity_anomaly`.

Validation (`score_planted`): the generator's planted on-sale bursts and stalls (truth["monitoring"]["sales"]):
a burst is found when an episode of its venue is open in [burst start, sell-out (or burst start + 4 S) +
24 h); a stall when one is open in [stall, stall + 72 h). An episode overlapping no planted burst or stall
of its venue is counted as a false alert (a conservative count: the venues' natural busy days are not in
the truth).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from analytics_pipelines.anomalies import detector as D
from analytics_pipelines.monitoring.inputs import TS
from analytics_pipelines.settings import AnomalySettings

METRIC = "velocity_tickets_per_hour"
SERIES_SCHEMA = {
    "tenant_id": pl.String,
    "venue_id": pl.String,
    "metric": pl.String,
    "hour": TS,
    "value": pl.Float64,
}


ANOMALY_SCHEMA = {
    "day": pl.Date,
    **D.SCORED_SCHEMA,
    "direction": pl.String,
    "alerting": pl.Boolean,
    "detector_version": pl.String,
}


def hourly_series(
    sales: pl.DataFrame, events: pl.DataFrame, first_hour: datetime, last_hour: datetime
) -> pl.DataFrame:
    """Tickets per venue and hour [first_hour, last_hour] (hour = the sale's hour), zero-filled from the
    venue's first sale in the range. sales: event_id, created_at; events: event_id, tenant_id, venue_id.
    Sales of unknown events or without a time are left out (counted by sales_velocity's metadata)."""
    s = (
        sales.filter(pl.col("created_at").is_not_null())
        .join(events.select("event_id", "tenant_id", "venue_id"), on="event_id")
        .filter(pl.col("venue_id").is_not_null())
        .with_columns(pl.col("created_at").cast(TS).dt.truncate("1h").alias("hour"))
        .filter(pl.col("hour").is_between(first_hour, last_hour))
    )
    if s.is_empty() or last_hour < first_hour:
        return pl.DataFrame(schema=SERIES_SCHEMA)
    counts = s.group_by("tenant_id", "venue_id", "hour").agg(pl.len().alias("n"))
    since = counts.group_by("tenant_id", "venue_id").agg(pl.col("hour").min().alias("since"))
    hours = pl.DataFrame(
        {"hour": pl.datetime_range(first_hour, last_hour, timedelta(hours=1), time_zone="UTC", eager=True)}
    ).cast({"hour": TS})
    grid = since.join(hours, how="cross").filter(pl.col("hour") >= pl.col("since")).drop("since")
    return (
        grid.join(counts, on=["tenant_id", "venue_id", "hour"], how="left")
        .select(
            "tenant_id",
            "venue_id",
            pl.lit(METRIC).alias("metric"),
            "hour",
            pl.col("n").fill_null(0).cast(pl.Float64).alias("value"),
        )
        .cast(SERIES_SCHEMA)
        .sort("tenant_id", "venue_id", "hour")
    )


def history_start(first_hour: datetime, cfg: AnomalySettings) -> datetime:
    """The first hour the baselines of first_hour need (baseline weeks before its week, + the longest window)."""
    return first_hour - timedelta(weeks=cfg.baseline_weeks + 1, hours=max(cfg.windows))


def detect(
    sales: pl.DataFrame, events: pl.DataFrame, cfg: AnomalySettings, first_hour: datetime, last_hour: datetime
) -> pl.DataFrame:
    """Scored anomalous hours (detector.detect's rows with a severity) of [first_hour, last_hour], with
    `alerting` (severity >= cfg.alert_severity)."""
    series = hourly_series(sales, events, history_start(first_hour, cfg), last_hour)
    scored, _ = D.detect(series, cfg, first_hour, last_hour)
    rank = {s: i for i, s in enumerate(D.SEVERITIES)}
    return (
        scored.filter(pl.col("severity").is_not_null())
        .with_columns(
            (pl.col("severity").replace_strict(rank, return_dtype=pl.Int8) >= rank[cfg.alert_severity]).alias(
                "alerting"
            ),
            pl.col("score")
            .sign()
            .cast(pl.Int8)
            .replace_strict({1: "up", -1: "down"}, default="flat", return_dtype=pl.String)
            .alias("direction"),
            pl.lit(D.DETECTOR_VERSION).alias("detector_version"),
            pl.col("hour").dt.date().alias("day"),
        )
        .select(list(ANOMALY_SCHEMA))
        .cast(ANOMALY_SCHEMA)
    )


def planted_windows(truth: dict, events: pl.DataFrame) -> pl.DataFrame:
    """truth["monitoring"]["sales"] -> one row per planted burst / stall: venue_id, kind, start, end (the
    window in which an alert counts as finding it)."""
    sales = truth.get("monitoring", {}).get("sales", {})
    rows = []
    for b in sales.get("bursts", []):
        start = datetime.fromisoformat(b["burst_start"])
        end = (
            datetime.fromisoformat(b["sellout_at"])
            if b.get("sellout_at")
            else start + timedelta(hours=4 * b["sellout_scale_hours"])
        )
        rows.append((b["event_id"], b["kind"], start, end + timedelta(hours=24)))
    for s in sales.get("stalls", []):
        start = datetime.fromisoformat(s["stall_at"])
        rows.append((s["event_id"], "stall", start, start + timedelta(hours=72)))
    df = pl.DataFrame(
        rows, schema={"event_id": pl.String, "kind": pl.String, "start": TS, "end": TS}, orient="row"
    )
    return df.join(events.select("event_id", "venue_id"), on="event_id")


def score_planted(
    episodes: pl.DataFrame, planted: pl.DataFrame, first: datetime, last: datetime, n_venues: int
) -> dict:
    """episodes: venue_id, opened, resolved (NULL: open at the end). Recall per kind over the planted windows
    inside [first, last]; false alerts per venue-week; alerts opened per planted window (max)."""
    p = planted.filter((pl.col("start") >= first) & (pl.col("start") <= last)).with_row_index("pid")
    e = episodes.filter((pl.col("opened") >= first) & (pl.col("opened") <= last)).with_row_index("eid")
    e = e.with_columns(pl.col("resolved").fill_null(pl.lit(last).cast(TS) + pl.duration(hours=1)))
    pairs = e.join(p, on="venue_id").filter(
        (pl.col("opened") < pl.col("end")) & (pl.col("resolved") > pl.col("start"))
    )
    found = p.join(pairs.select("pid").unique(), on="pid", how="semi")
    by_kind = {
        k: {
            "planted": p.filter(pl.col("kind") == k).height,
            "found": found.filter(pl.col("kind") == k).height,
        }
        for k in sorted(set(p["kind"]))
    }
    opened = (
        pairs.filter(pl.col("opened") >= pl.col("start"))
        .group_by("pid")
        .agg(pl.col("eid").n_unique().alias("n"))
    )
    weeks = max((last - first) / timedelta(days=7), 1e-9)
    false = e.height - pairs["eid"].n_unique()
    return {
        "planted": p.height,
        "found": found.height,
        "recall": found.height / p.height if p.height else None,
        "by_kind": by_kind,
        "alerts": e.height,
        "false_alerts": false,
        "false_per_venue_week": false / (max(n_venues, 1) * weeks),
        "alerts_opened_per_planted_max": int(opened["n"].max() or 0) if opened.height else 0,
    }
