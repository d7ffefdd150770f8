"""The file path's documents decoded columnwise: mongoexport lines -> the frames behavior.normalize builds.

FileSource used to parse every line with `bson.json_util` and hand Python dicts to normalize's per-document
functions (87 of `make run`'s 321 CPU-s at `small`). Here the lines of a window are one column: DuckDB's JSON
functions parse each line once (json_transform), the Extended JSON wrappers the exports hold are decoded as
columns (`{"$oid": hex}` -> doc_id and the write time, `{"$date": {"$numberLong": ms}}` -> a naive UTC
datetime), and the same rules as normalize's are written as expressions: the first non-null spelling of a
field, the event-time precedence and its `time_source`, money in cents (round half to even of dollars x 100,
as Python's round), integers (a double truncated), `no_event_time` / `unparseable`.

A line takes that fast path only when everything in it is a shape whose decoding here is exactly json_util's
+ normalize's: a JSON object whose every `"$` belongs to a canonical `$oid` or `$date`/`$numberLong`
wrapper, an ObjectId `_id`, and fields of the types normalize reads (strings, numbers, objects, null). Any
other line (invalid JSON, another wrapper, `_id` of another type, a string field holding a number, ...) goes
the old way: `json_util.loads` and normalize's function, for that line only. So the frames are those of the
per-document path, row for row, and the pymongo path (which still decodes per document: pymongo's C
extension already did the BSON) gives the same tables (tests/test_behavior_ingest.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import duckdb
import polars as pl
from bson import json_util

from analytics_pipelines.behavior import normalize as N

_OID = r'\{"\$oid":"[0-9a-fA-F]{24}"\}'
_DATE = r'\{"\$date":\{"\$numberLong":"[0-9]{1,15}"\}\}'
#: what DuckDB's JSON reader accepts and Python's json does not (trailing commas, inf/nan spellings), or
#: decodes otherwise (NaN/Infinity, a NUL escape): such lines go the per-document way (a false alarm inside a
#: string value only costs that line the slow way)
_LENIENT = r"(?i),\s*[\]}]|[:,\[]\s*[-+]?(nan|inf)|\\u0000"
#: ms of 9999-12-31T23:59:59.999 + 1: json_util cannot make a datetime at or after it
_MAX_MS = 253402300800000


@dataclass(frozen=True)
class Spec:
    """What normalize's function for a collection reads. Field references are top-level names, or
    "<object>.<name>" inside one of `objects` (the first non-null of its spellings; not an object: {})."""

    fn: Callable[[list[dict]], pl.DataFrame]
    time: tuple[str, ...]
    strings: dict[str, tuple[str, ...]]
    cents: dict[str, str]
    ints: dict[str, str]
    objects: dict[str, tuple[str, ...]]
    constants: dict[str, str] | None = None


SPECS: dict[str, Spec] = {
    "campaign_touchpoints": Spec(
        N.touchpoints,
        ("event_time", "eventTime", "timestamp"),
        {
            "customer_hash": ("customerId", "customer_id"),
            "channel_raw": ("channel",),
            "campaign_id": ("campaign", "campaign_id", "campaignId"),
            "action": ("action",),
            "order_id": ("orderId", "order_id"),
            "venue_id": ("venueId", "venue_id"),
        },
        {"value_cents": "value"},
        {},
        {},
    ),
    "user_behavior": Spec(
        N.page_views,
        ("createdAt", "created_at", "timestamp"),
        {
            "venue_id": ("venue_id", "venueId"),
            "session_id": ("session_id", "sessionId"),
            "user_hash": ("user_hash", "userHash"),
            "page_url": ("page_url", "pageUrl"),
            "referrer": ("referrer",),
            "device": ("dev.type",),
            "os": ("dev.os",),
            "country": ("geo.country",),
            "city": ("geo.city",),
        },
        {},
        {"duration_s": "duration"},
        {"dev": ("device_info", "deviceInfo"), "geo": ("geo_info", "geoInfo")},
        constants={"event_type_raw": "page_view"},
    ),
    "raw_analytics": Spec(
        N.actions,
        ("eventTime", "event_time", "timestamp"),
        {
            "event_type_raw": ("event_type", "eventType"),
            "action": ("props.action",),
            "venue_id": ("venue_id", "venueId"),
            "event_id": ("event_id", "eventId"),
            "session_id": ("session_id", "sessionId"),
            "user_hash": ("user_hash", "userHash", "userId"),
            "order_id": ("props.order_id", "props.orderId"),
            "query": ("props.query",),
        },
        {"amount_cents": "props.amount"},
        {"quantity": "props.quantity"},
        {"props": ("data", "properties")},
    ),
    "campaign_performance": Spec(
        N.performance,
        ("date",),
        {"venue_id": ("venue_id", "venueId"), "campaign_id": ("campaign_id", "campaignId")},
        {"spend_cents": "m.spend", "platform_revenue_cents": "m.revenue"},
        {"impressions": "m.impressions", "clicks": "m.clicks", "platform_conversions": "m.conversions"},
        {"m": ("metrics",)},
    ),
}
SPECS["analytics_events"] = SPECS["raw_analytics"]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _struct(names) -> str:
    """json_transform's structure: every name as raw JSON (NULL when absent or null)."""
    return "{" + ",".join(f'"{n}":"JSON"' for n in names) + "}"


def _fields(spec: Spec) -> tuple[set[str], dict[str, set[str]]]:
    """The top-level names and, per nested object, the names inside it that the spec reads."""
    top = {"_id", *spec.time}
    nested: dict[str, set[str]] = {o: set() for o in spec.objects}
    refs = [n for names in spec.strings.values() for n in names] + [*spec.cents.values(), *spec.ints.values()]
    for ref in refs:
        if "." in ref:
            obj, name = ref.split(".", 1)
            nested[obj].add(name)
        else:
            top.add(ref)
    for spellings in spec.objects.values():
        top.update(spellings)
    return top, nested


def _sql(spec: Spec) -> str:
    """One SELECT over `lines` (seq, line) of the fast-path candidates: normalize's columns and `slow`
    (the line must go the per-document way). Each line is parsed once (json_transform, every field read as
    raw JSON text, NULL when absent or null); a value's type is its text's first character ('"' string,
    '{' object, '[' array, 't'/'f' boolean, else a number); a wrapper is recognized by its prefix, which
    the line's wrapper count (decode) makes canonical."""
    top, nested = _fields(spec)

    def frag(ref: str) -> str:
        if "." in ref:
            obj, name = ref.split(".", 1)
            return f"o_{obj}.{_q(name)}"
        return f"s.{_q(ref)}"

    def first(f: str) -> str:
        return f"left({f}, 1)"

    def number(f: str) -> str:
        return f"({first(f)} NOT IN ('\"', '{{', '[', 't', 'f'))"

    slow = ["s IS NULL", 's._id IS NULL OR NOT starts_with(s._id, \'{"$oid":"\')']
    hexid = "substr(s._id, 10, 24)"
    cols = [
        f"lower({hexid}) AS doc_id",
        f"make_timestamp(TRY_CAST(('0x' || substr({hexid}, 1, 8)) AS BIGINT) * 1000000) AS written_at",
    ]
    # the event time: the first non-null spelling; a $date, or unparseable
    chosen = "coalesce(" + ", ".join(f"s.{_q(n)}" for n in spec.time) + ")"
    src = "CASE " + " ".join(f"WHEN s.{_q(n)} IS NOT NULL THEN '{n}'" for n in spec.time) + " END"
    is_date = f'starts_with({chosen}, \'{{"$date":{{"$numberLong":"\')'
    ms = f"TRY_CAST(substr({chosen}, 26, length({chosen}) - 28) AS BIGINT)"
    slow.append(f"({is_date} AND {ms} >= {_MAX_MS})")
    cols.append(f"CASE WHEN {is_date} THEN make_timestamp({ms} * 1000) END AS event_time")
    cols.append(f"{src} AS time_source")
    time_problem = (
        f"CASE WHEN {chosen} IS NULL THEN 'no_event_time' WHEN NOT {is_date} THEN 'unparseable' END"
    )
    # nested objects: an object, or absent/null ({}); anything else goes the per-document way
    objects = []
    for obj, spellings in spec.objects.items():
        f = "coalesce(" + ", ".join(f"s.{_q(n)}" for n in spellings) + ")"
        slow.append(f"({f} IS NOT NULL AND {first(f)} <> '{{')")
        objects.append(
            f"CASE WHEN {first(f)} = '{{' THEN json_transform({f}, '{_struct(sorted(nested[obj]))}') END "
            f"AS o_{obj}"
        )
    # strings: JSON strings (another type: the per-document way); unescaped only when they hold a backslash
    for out, names in spec.strings.items():
        f = "coalesce(" + ", ".join(frag(n) for n in names) + ")"
        slow.append(f"({f} IS NOT NULL AND {first(f)} <> '\"')")
        cols.append(
            f"CASE WHEN contains({f}, '\\') THEN ({f}) ->> '$' ELSE substr({f}, 2, length({f}) - 2) END AS {out}"
        )
    # money: a number -> cents (Python's round: half to even); a string, bool, object, array: unparseable
    bad_money = []
    for out, ref in spec.cents.items():
        f = frag(ref)
        slow.append(f"({number(f)} AND abs(TRY_CAST({f} AS DOUBLE)) >= 9.0e15)")
        cols.append(
            f"CASE WHEN {number(f)} THEN TRY_CAST(round_even(TRY_CAST({f} AS DOUBLE) * 100, 0) AS BIGINT) END AS {out}"
        )
        bad_money.append(f"({f} IS NOT NULL AND NOT {number(f)})")
    # integers: a number (a double truncated); anything else None
    for out, ref in spec.ints.items():
        f = frag(ref)
        slow.append(f"({number(f)} AND abs(TRY_CAST({f} AS DOUBLE)) >= 9.0e15)")
        cols.append(
            f"CASE WHEN {number(f)} THEN TRY_CAST(trunc(TRY_CAST({f} AS DOUBLE)) AS BIGINT) END AS {out}"
        )
    for out, value in (spec.constants or {}).items():
        cols.append(f"'{value}' AS {out}")
    problem = [time_problem]
    if bad_money:
        problem.append("CASE WHEN " + " OR ".join(bad_money) + " THEN 'unparseable' END")
    cols.append("coalesce(" + ", ".join(problem) + ") AS problem")
    cols.append("(" + " OR ".join(f"coalesce({c}, false)" for c in slow) + ") AS slow")
    return (
        f"WITH t AS (SELECT seq, try(json_transform(line, '{_struct(sorted(top))}')) AS s FROM lines), "
        f"o AS (SELECT seq, s, {', '.join(objects) if objects else 'NULL AS o_none'} FROM t) "
        f"SELECT seq, {', '.join(cols)} FROM o"
    )


@dataclass
class Decoded:
    """A window's documents of one collection: normalize's frame (`_pos` = the document's position in the
    window, in read order) and each document by position (what the quarantine's payload shows)."""

    frame: pl.DataFrame
    document: Callable[[int], dict]


def documents(collection: str, docs: list[dict]) -> Decoded:
    """The per-document way (pymongo's documents): normalize's function over the list."""
    return Decoded(SPECS[collection].fn(docs), docs.__getitem__)


def decode(collection: str, lines: pl.DataFrame, lo: datetime | None, hi: datetime | None, stats) -> Decoded:
    """normalize's frame of the documents of `lines` (file_day, where, line: the window's lines, in file
    order, already past the leading-ObjectId test) written in [lo, hi); unparseable lines into `stats`."""
    spec = SPECS[collection]
    empty = spec.fn([])
    lines = lines.with_row_index("seq")
    dollars = pl.col("line").str.count_matches(r'"\$', literal=False)
    wrappers = pl.col("line").str.count_matches(_OID) + 2 * pl.col("line").str.count_matches(_DATE)
    # a key the spec reads, twice in a line (json_util keeps the last value, DuckDB the first): the slow way
    top, nested = _fields(spec)
    keys = pl.col("line").str.extract_many([f'"{k}":' for k in sorted(top | set().union(*nested.values()))])
    lines = lines.with_columns(
        candidate=(dollars == wrappers)
        & pl.col("line").str.starts_with("{")
        & ~pl.col("line").str.contains(_LENIENT)
        & (keys.list.len() == keys.list.n_unique())
    )
    # one thread: on a shared 2-core machine DuckDB's second thread cost ~3x the CPU for little wall time
    con = duckdb.connect(config={"threads": 1})
    try:
        con.register("lines", lines.filter("candidate").select("seq", "line"))
        fast = con.execute(_sql(spec)).pl()
    finally:
        con.close()
    lo_us = None if lo is None else pl.lit(lo)
    in_window = pl.lit(True)
    if lo_us is not None:
        in_window = in_window & (pl.col("written_at") >= lo_us)
    if hi is not None:
        in_window = in_window & (pl.col("written_at") < pl.lit(hi))
    fast_ok = fast.filter(~pl.col("slow"))
    slow_seq = (
        lines.join(fast_ok.select("seq"), on="seq", how="anti")
        .select("seq", "file_day", "where", "line")
        .rows()
    )
    fast_ok = fast_ok.filter(in_window)
    # the per-document way, for the lines the fast path does not take (FileSource's rules)
    docs, doc_seq = [], []
    for seq, file_day, where, line in slow_seq:
        if not line.strip():
            continue
        try:
            doc = json_util.loads(line)
        except (ValueError, TypeError) as exc:
            day = datetime.fromisoformat(file_day)
            if (lo is None or day >= lo) and (hi is None or day < hi):
                stats.unparseable.append((file_day, where, f"{exc}: {line[:500]}"))
            continue
        w = N.oid_time(doc.get("_id"))
        if w is None or (lo is None or w >= lo) and (hi is None or w < hi):
            docs.append(doc)
            doc_seq.append(seq)
    slow_frame = spec.fn(docs).with_columns(seq=pl.Series(doc_seq, dtype=pl.UInt32)).drop("_pos")
    fast_frame = fast_ok.with_columns(
        *(pl.lit(None, dtype).alias(c) for c, dtype in empty.schema.items() if c not in fast_ok.columns)
    ).select(
        pl.col("seq").cast(pl.UInt32),
        *(pl.col(c).cast(empty.schema[c]) for c in empty.columns if c != "_pos"),
    )
    frame = fast_frame
    if slow_frame.height:
        frame = pl.concat([fast_frame, slow_frame.select(fast_frame.columns)])
    if not frame["seq"].is_sorted():
        frame = frame.sort("seq")
    frame = frame.with_columns(_pos=pl.int_range(pl.len(), dtype=pl.Int64))
    stats.documents += frame.height
    text, seq = lines["line"], frame["seq"].to_numpy()
    return Decoded(frame.select(empty.columns), lambda pos: json_util.loads(text[int(seq[pos])]))
