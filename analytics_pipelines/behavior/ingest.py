"""Behavioral ingestion: read a window of documents (files or MongoDB), normalize, place every document in
exactly one daily partition, quarantine what cannot be used (with a reason), and account for everything.

Placement (docs/behavior.md). A run over partitions [first, last] reads documents *written* in
[first - lag, last + 1 day + lag) (the safety lag covers writers that insert late). A document with a
usable event time whose write time lies within [event day - lag, event day + 1 day + lag) belongs to its
event day: the window of that day's run always reads it. Any other document (no event time, an
unparseable one, written later than the lag allows) is quarantined on the day it was written, which the
window of that day's run also reads. So every document lands in exactly one partition, whichever range is
run, and re-running a partition replaces the same rows.

Quarantine reasons: no_event_time, unparseable, late_write (written after the safety lag: the event's day
was already ingested), missing_id (no customer/session/campaign id), unknown_channel, unknown_action,
unknown_event_type, unknown_venue, negative_spend, duplicate (same content as an earlier document: the
lowest `_id` is kept). Repairs (kept, counted): channel_spelling (case/whitespace).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl
from bson import json_util

from analytics_pipelines.behavior import normalize as N
from analytics_pipelines.behavior.columnar import decode, documents
from analytics_pipelines.behavior.source import PROJECTIONS, ReadStats

#: the normalized tables' keys for duplicate detection (same content, different _id)
DEDUPE = {
    "touchpoints": [
        "customer_hash",
        "event_time",
        "channel",
        "action",
        "campaign_id",
        "order_id",
        "venue_id",
    ],
    "events": ["collection", "session_id", "event_type", "event_time", "page_url", "order_id", "venue_id"],
    "performance": ["campaign_id", "day"],
}
#: the collections of each kind (normalize's function for each: behavior.columnar.SPECS)
_SOURCES = {
    "touchpoints": ("campaign_touchpoints",),
    "events": ("user_behavior", "raw_analytics", "analytics_events"),
    "performance": ("campaign_performance",),
}
OUTPUT = {
    "touchpoints": "raw_campaign_touchpoints",
    "events": "raw_behavior_events",
    "performance": "raw_campaign_performance",
}
_EVENT_URL = r"/events/([0-9a-fA-F-]{36})"


def window(first: str, last: str, lag_minutes: int) -> tuple[datetime, datetime]:
    lag = timedelta(minutes=lag_minutes)
    return (datetime.fromisoformat(first) - lag, datetime.fromisoformat(last) + timedelta(days=1) + lag)


def channel_of(referrer: pl.Expr, url: pl.Expr) -> pl.Expr:
    """The marketing channel of a landing page view: utm_medium first, then the referrer's host."""
    medium = url.str.extract(r"[?&]utm_medium=([^&#]+)", 1).str.to_lowercase()
    host = referrer.str.extract(r"^[a-z]+://([^/:]+)", 1).str.to_lowercase()
    return (
        pl.when(medium.is_in(["email", "newsletter"]))
        .then(pl.lit("email"))
        .when(medium == "sms")
        .then(pl.lit("sms"))
        .when(medium == "push")
        .then(pl.lit("push"))
        .when(medium.is_in(["cpc", "ppc", "paid_search"]))
        .then(pl.lit("paid_search"))
        .when(medium.is_in(["paid_social", "social"]))
        .then(pl.lit("social"))
        .when(medium.is_in(["display", "banner", "cpm"]))
        .then(pl.lit("display"))
        .when(host.str.contains(r"(^|\.)(google|bing|duckduckgo|yahoo)\."))
        .then(pl.lit("organic_search"))
        .when(host.str.contains(r"(^|\.)(facebook|instagram|t\.co|twitter|tiktok|linkedin)"))
        .then(pl.lit("social"))
        .when(host.str.contains(r"mail\."))
        .then(pl.lit("email"))
        .when(host.is_not_null())
        .then(pl.lit("referral"))
        .otherwise(pl.lit("direct"))
    )


def _derive(kind: str, df: pl.DataFrame, venues: pl.DataFrame) -> pl.DataFrame:
    """Vectorized derivations and reason codes on a normalized frame."""
    df = df.join(venues.select(pl.col("id").alias("venue_id"), "tenant_id"), on="venue_id", how="left")
    p = pl.col("problem")
    if kind == "touchpoints":
        df = df.with_columns(channel=pl.col("channel_raw").str.strip_chars().str.to_lowercase())
        df = df.with_columns(
            repaired=pl.when(pl.col("channel") != pl.col("channel_raw")).then(pl.lit("channel_spelling")),
            problem=pl.coalesce(
                p,
                pl.when(pl.col("customer_hash").is_null() | pl.col("doc_id").is_null()).then(
                    pl.lit("missing_id")
                ),
                pl.when(~pl.col("channel").is_in(N.CHANNELS) | pl.col("channel").is_null()).then(
                    pl.lit("unknown_channel")
                ),
                pl.when(~pl.col("action").is_in(N.TOUCH_ACTIONS) | pl.col("action").is_null()).then(
                    pl.lit("unknown_action")
                ),
            ),
        )
    elif kind == "events":
        raw = pl.col("event_type_raw")
        etype = raw.replace_strict(N.EVENT_TYPES, default=None)
        etype = (
            pl.when(etype == "user_action")
            .then(pl.col("action").replace_strict(N.ACTIONS, default="user_action"))
            .otherwise(etype)
        )
        df = df.with_columns(
            event_type=etype,
            event_id=pl.coalesce(pl.col("event_id"), pl.col("page_url").str.extract(_EVENT_URL, 1)),
            utm_medium=pl.col("page_url").str.extract(r"[?&]utm_medium=([^&#]+)", 1),
            channel=pl.when(pl.col("page_url").is_not_null()).then(
                channel_of(pl.col("referrer"), pl.col("page_url"))
            ),
            repaired=pl.lit(None, pl.String),
        )
        df = df.with_columns(
            problem=pl.coalesce(
                p,
                pl.when(pl.col("event_type").is_null()).then(pl.lit("unknown_event_type")),
                pl.when(pl.col("session_id").is_null() | pl.col("doc_id").is_null()).then(
                    pl.lit("missing_id")
                ),
            )
        )
    else:
        df = df.with_columns(
            repaired=pl.lit(None, pl.String),
            problem=pl.coalesce(
                p,
                pl.when(pl.col("campaign_id").is_null() | pl.col("doc_id").is_null()).then(
                    pl.lit("missing_id")
                ),
                pl.when(pl.col("spend_cents") < 0).then(pl.lit("negative_spend")),
            ),
        )
    return df.with_columns(
        problem=pl.coalesce(
            pl.col("problem"), pl.when(pl.col("tenant_id").is_null()).then(pl.lit("unknown_venue"))
        )
    )


def _place(df: pl.DataFrame, lag_minutes: int) -> pl.DataFrame:
    """The partition day of every document (module docstring) and late_write for uncovered ones."""
    lag = pl.duration(minutes=lag_minutes)
    eday = pl.col("event_time").dt.truncate("1d")
    covered = pl.col("event_time").is_not_null() & (
        pl.col("written_at").is_null()
        | (pl.col("written_at") >= eday - lag) & (pl.col("written_at") < eday + pl.duration(days=1) + lag)
    )
    return df.with_columns(
        day=pl.when(covered).then(pl.col("event_time").dt.date()).otherwise(pl.col("written_at").dt.date()),
        problem=pl.coalesce(pl.col("problem"), pl.when(~covered).then(pl.lit("late_write"))),
    )


def _dedupe(kind: str, df: pl.DataFrame) -> pl.DataFrame:
    keys = DEDUPE[kind]
    # the lowest _id among the usable documents of the same content (NULLs compare equal): a window, no join
    df = df.with_columns(_kept=pl.col("doc_id").filter(pl.col("problem").is_null()).min().over(keys))
    dup = pl.col("problem").is_null() & (pl.col("doc_id") != pl.col("_kept"))
    return df.with_columns(
        problem=pl.when(dup).then(pl.lit("duplicate")).otherwise(pl.col("problem")),
        detail=pl.when(dup).then(pl.lit("duplicate of ") + pl.col("_kept")),
    ).drop("_kept")


def ingest(
    source,
    first: str,
    last: str,
    venues: pl.DataFrame,
    lag_minutes: int,
    kinds: tuple[str, ...] = tuple(_SOURCES),
) -> dict[str, pl.DataFrame]:
    """The raw behavioral tables, quarantine and ledger of partitions [first, last] (ISO days); `kinds`
    limits the run to some of touchpoints/events/performance (benchmarks)."""
    lo, hi = window(first, last, lag_minutes)
    d0, d1 = date.fromisoformat(first), date.fromisoformat(last)
    out: dict[str, pl.DataFrame] = {}
    quarantine, ledger = [], []
    for kind, sources in _SOURCES.items():
        if kind not in kinds:
            continue
        frames = []
        for coll in sources:
            stats = ReadStats()
            if hasattr(source, "lines"):  # files: the lines decoded columnwise (behavior.columnar)
                read = decode(coll, source.lines(coll, lo, hi), lo, hi, stats)
            else:  # pymongo's documents
                read = documents(coll, list(source.read(coll, lo, hi, stats)))
            df = read.frame.with_columns(collection=pl.lit(coll))
            df = _place(_derive(kind, df, venues), lag_minutes)
            df = df.filter(pl.col("day").is_between(d0, d1))
            bad = df.filter(pl.col("problem").is_not_null())
            payload = [json_util.dumps(_projected(coll, read.document(i))) for i in bad["_pos"].to_list()]
            frames.append(df)
            for f_day, where, text in stats.unparseable:
                if d0 <= date.fromisoformat(f_day) <= d1:
                    quarantine.append(
                        _qrow(coll, date.fromisoformat(f_day), None, "unparseable", where, text)
                    )
            quarantine.append(("payloads", coll, bad["doc_id"].to_list(), payload))
        df = _dedupe(kind, pl.concat(frames, how="diagonal_relaxed"))
        out[kind] = df
    return _assemble(out, quarantine, ledger)


def _projected(coll: str, doc: dict) -> dict:
    return {k: doc[k] for k in ("_id", *PROJECTIONS[coll]) if k in doc}


def _qrow(coll, day, doc_id, reason, detail, payload) -> dict:
    return {
        "collection": coll,
        "day": day,
        "doc_id": doc_id,
        "reason": reason,
        "detail": detail,
        "payload": payload,
    }


_Q_SCHEMA = {
    "day": pl.Date,
    "collection": pl.String,
    "doc_id": pl.String,
    "tenant_id": pl.String,
    "venue_id": pl.String,
    "reason": pl.String,
    "detail": pl.String,
    "payload": pl.String,
}
_COLUMNS = {
    "touchpoints": [
        "tenant_id",
        "venue_id",
        "day",
        "event_time",
        "written_at",
        "time_source",
        "doc_id",
        "customer_hash",
        "channel",
        "campaign_id",
        "action",
        "order_id",
        "value_cents",
    ],
    "events": [
        "tenant_id",
        "venue_id",
        "event_id",
        "day",
        "event_time",
        "written_at",
        "time_source",
        "collection",
        "doc_id",
        "event_type",
        "session_id",
        "user_hash",
        "order_id",
        "page_url",
        "referrer",
        "utm_medium",
        "channel",
        "device",
        "os",
        "country",
        "city",
        "amount_cents",
        "quantity",
        "duration_s",
        "query",
    ],
    "performance": [
        "tenant_id",
        "venue_id",
        "campaign_id",
        "day",
        "doc_id",
        "impressions",
        "clicks",
        "platform_conversions",
        "spend_cents",
        "platform_revenue_cents",
    ],
}


def _assemble(out: dict[str, pl.DataFrame], quarantine: list, ledger: list) -> dict[str, pl.DataFrame]:
    payloads = {}
    plain = []
    for q in quarantine:
        if isinstance(q, tuple):
            payloads.update(dict(zip(q[2], q[3], strict=True)))
        else:
            plain.append(q)
    result, q_frames, l_frames = {}, [], []
    for kind, df in out.items():
        ok = df.filter(pl.col("problem").is_null())
        result[OUTPUT[kind]] = ok.select(_COLUMNS[kind]).sort("day", "doc_id")
        bad = df.filter(pl.col("problem").is_not_null())
        q_frames.append(
            bad.select(
                "day",
                "collection",
                "doc_id",
                "tenant_id",
                "venue_id",
                pl.col("problem").alias("reason"),
                pl.coalesce(
                    pl.col("detail"),
                    pl.concat_str(pl.lit("time from "), pl.col("time_source").fill_null("none")),
                ).alias("detail"),
                pl.col("doc_id")
                .replace_strict(payloads, default=None, return_dtype=pl.String)
                .alias("payload"),
            )
        )
        l_frames.append(
            df.group_by("day", "collection").agg(
                docs=pl.len(),
                docs_accepted=pl.col("problem").is_null().sum(),
                docs_quarantined=pl.col("problem").is_not_null().sum(),
                docs_repaired=(pl.col("problem").is_null() & pl.col("repaired").is_not_null()).sum(),
            )
        )
    if plain:
        q_frames.append(
            pl.DataFrame(plain)
            .with_columns(tenant_id=pl.lit(None, pl.String), venue_id=pl.lit(None, pl.String))
            .select(list(_Q_SCHEMA))
        )
        l_frames.append(
            pl.DataFrame(plain)
            .group_by("day", "collection")
            .agg(
                docs=pl.len(),
                docs_accepted=pl.lit(0, pl.UInt32),
                docs_quarantined=pl.len(),
                docs_repaired=pl.lit(0, pl.UInt32),
            )
        )
    result["behavior_quarantine"] = pl.concat([f.cast(_Q_SCHEMA) for f in q_frames]).sort(
        "day", "collection", "doc_id"
    )
    led = pl.concat(
        [
            f.cast(
                {
                    "docs": pl.Int64,
                    "docs_accepted": pl.Int64,
                    "docs_quarantined": pl.Int64,
                    "docs_repaired": pl.Int64,
                }
            )
            for f in l_frames
        ]
    )
    result["behavior_ledger"] = (
        led.group_by("day", "collection").agg(pl.all().sum()).sort("day", "collection")
    )
    return result
