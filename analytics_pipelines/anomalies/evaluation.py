"""Scoring detections against the planted truth (tests and benchmarks only; the assets never read it).

A planted anomaly (venue, metric, [start, end)) is found when an alert episode of the same venue and metric
is open at some hour of [start, end + 24 h) (the 24-hour window reacts within a day). An episode that
overlaps no planted anomaly of its venue and metric is a false alert. Rates are per venue-week scored.
Duplicates: `alerts_opened_per_anomaly_max` counts the alerts opened during [start, end + 24 h) per
anomaly (must be 1); `alerts_per_found_anomaly_max` also counts an alert that was already open when the
anomaly started (a natural burst next to a planted drop, for instance)."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

LAG = timedelta(hours=24)


def truth_frame(truth: dict) -> pl.DataFrame:
    rows = truth.get("monitoring", {}).get("anomalies", [])
    schema = {
        "venue_id": pl.String,
        "metric": pl.String,
        "kind": pl.String,
        "start": pl.Datetime("us", "UTC"),
        "end": pl.Datetime("us", "UTC"),
    }
    if not rows:
        return pl.DataFrame(schema=schema)
    df = pl.DataFrame(rows)
    return df.select(
        "venue_id",
        "metric",
        "kind",
        pl.col("start_hour").str.to_datetime(time_zone="UTC").alias("start"),
        pl.col("end_hour").str.to_datetime(time_zone="UTC").alias("end"),
    ).cast(schema)


def score_detections(
    alerts: pl.DataFrame, truth: pl.DataFrame, first: datetime, last: datetime, n_venues: int
) -> dict:
    """alerts: one row per alert (venue_id, metric, opened, resolved or NULL). Planted anomalies and alerts
    are counted inside [first, last]."""
    t = truth.filter((pl.col("start") >= first) & (pl.col("end") <= last)).with_row_index("aid")
    a = alerts.filter((pl.col("opened") >= first) & (pl.col("opened") <= last)).with_row_index("eid")
    a = a.with_columns(pl.col("resolved").fill_null(pl.lit(last) + pl.duration(hours=1)))
    pairs = a.join(t, on=["venue_id", "metric"]).filter(
        (pl.col("opened") < pl.col("end") + LAG) & (pl.col("resolved") > pl.col("start"))
    )
    found = pairs["aid"].unique()
    matched_alerts = pairs["eid"].unique()
    per_anomaly = pairs.group_by("aid").agg(
        pl.col("eid").n_unique().alias("n"),
        # alerts the anomaly itself opened (an alert already open when it started is not a duplicate)
        pl.col("eid").filter(pl.col("opened") >= pl.col("start")).n_unique().alias("opened_by_it"),
    )
    weeks = max((last - first) / timedelta(days=7), 1e-9)
    false = a.height - matched_alerts.len()
    by_kind = (
        t.with_columns(pl.col("aid").is_in(found.implode()).alias("found"))
        .group_by("kind")
        .agg(pl.len().alias("planted"), pl.col("found").sum().alias("found"))
        .sort("kind")
    )
    return {
        "planted": t.height,
        "found": found.len(),
        "recall": round(found.len() / t.height, 4) if t.height else None,
        "alerts": a.height,
        "false_alerts": false,
        "venue_weeks": round(n_venues * weeks, 1),
        "false_per_venue_week": round(false / (n_venues * weeks), 4) if n_venues else None,
        "alerts_per_found_anomaly_max": int(per_anomaly["n"].max()) if per_anomaly.height else 0,
        "alerts_opened_per_anomaly_max": int(per_anomaly["opened_by_it"].max()) if per_anomaly.height else 0,
        "by_kind": {r["kind"]: f"{r['found']}/{r['planted']}" for r in by_kind.iter_rows(named=True)},
    }


def seed_alerts(flags: pl.DataFrame, dedupe: bool) -> pl.DataFrame:
    """The seed's alerts from its flagged hours: one per flagged hour (as the seed inserted one per scan)
    or, with `dedupe`, one per run of consecutive flagged hours."""
    f = flags.sort("tenant_id", "venue_id", "metric", "hour")
    grp = ["tenant_id", "venue_id", "metric"]
    if not dedupe:
        return f.filter("flagged").select(
            "venue_id",
            "metric",
            pl.col("hour").alias("opened"),
            (pl.col("hour") + pl.duration(hours=1)).alias("resolved"),
        )
    f = f.with_columns(
        (pl.col("flagged") & ~pl.col("flagged").shift(1).over(grp).fill_null(False))
        .cum_sum()
        .over(grp)
        .alias("_run")
    )
    return (
        f.filter("flagged")
        .group_by([*grp, "_run"])
        .agg(
            pl.col("hour").min().alias("opened"),
            (pl.col("hour").max() + pl.duration(hours=1)).alias("resolved"),
        )
        .select("venue_id", "metric", "opened", "resolved")
    )


def facts_from_tables(tables: dict[str, pl.DataFrame]) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    """The columns of fct_orders / fct_refunds the series need, from generated source tables with the marts'
    rules (paid = confirmed/completed/refunded orders at coalesce(confirmed_at, created_at); completed
    refunds at their created_at), and the venues: for benchmarks over generate_tables() without a warehouse."""
    ev = tables["events"].select(pl.col("id").alias("event_id"), "venue_id")
    orders = tables["orders"]
    paid = orders.filter(pl.col("status").str.to_lowercase().is_in(["confirmed", "completed", "refunded"]))
    fo = paid.join(ev, on="event_id").select(
        "tenant_id", "venue_id", pl.coalesce("confirmed_at", "created_at").alias("recognized_at")
    )
    fr = (
        tables["order_refunds"]
        .filter(pl.col("refund_status").str.to_lowercase() == "completed")
        .join(orders.select(pl.col("id").alias("order_id"), "event_id"), on="order_id")
        .join(ev, on="event_id")
        .select("tenant_id", "venue_id", pl.col("created_at").alias("refunded_at"))
    )
    venues = tables["venues"].select("tenant_id", pl.col("id").alias("venue_id"))
    return {"fct_orders": fo, "fct_refunds": fr}, venues
