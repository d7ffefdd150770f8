"""One normalization of behavioral documents, whichever path read them (files via bson.json_util or
pymongo): both spellings of every field (camelCase and snake_case writers), the event time, typed values.

Event time rule (docs/behavior.md): an explicit event-time field wins over `timestamp`, because some writers
overwrote `timestamp` with the write time: touchpoints `event_time` > `timestamp`; user_behavior
`createdAt`/`created_at` > `timestamp`; raw_analytics/analytics_events `eventTime`/`event_time` >
`timestamp`; campaign_performance `date`. `time_source` records which field gave it. A value that is not a
date is `unparseable`; no value at all is `no_event_time`.

Each function turns a list of documents into a frame of extracted values, one row per document, with the
document's list position (`_pos`, for quarantine payloads), `doc_id`, `written_at` (the ObjectId's time) and
`problem` (a reason code found while extracting, else NULL). The per-document work is field lookups only;
everything else is vectorized (behavior.ingest)."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from analytics_pipelines.behavior.source import oid_time

EVENT_TYPES = {
    "page_view": "page_view",
    "search_query": "search",
    "ticket_purchase": "purchase",
    "cart_abandonment": "cart_abandonment",
    "ticket_scan": "ticket_scan",
    "user_action": "user_action",
}
ACTIONS = {"add_to_cart": "add_to_cart", "begin_checkout": "begin_checkout"}
CHANNELS = (
    "email",
    "sms",
    "push",
    "paid_search",
    "referral",
    "social",
    "organic_search",
    "display",
    "direct",
)
TOUCH_ACTIONS = ("impression", "click", "visit", "conversion")

_TS = pl.Datetime("us")


def _first(doc: dict, *names: str):
    for n in names:
        v = doc.get(n)
        if v is not None:
            return v, n
    return None, None


def _time(doc: dict, *names: str) -> tuple[datetime | None, str | None, str | None]:
    """(event time, the field it came from, problem)."""
    v, name = _first(doc, *names)
    if v is None:
        return None, None, "no_event_time"
    if isinstance(v, datetime):
        return v.replace(tzinfo=None), name, None
    return None, name, "unparseable"


def _cents(v) -> tuple[int | None, bool]:
    """Dollars (a double, as the writers store money) -> integer cents; (None, True) when not a number."""
    if v is None:
        return None, False
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None, True
    return int(round(float(v) * 100)), False


def _str(v) -> str | None:
    return None if v is None else str(v)


def touchpoints(docs: list[dict]) -> pl.DataFrame:
    rows = []
    for i, d in enumerate(docs):
        t, src, problem = _time(d, "event_time", "eventTime", "timestamp")
        value, bad_value = _cents(_first(d, "value")[0])
        rows.append(
            (
                i,
                _str(d.get("_id")),
                oid_time(d.get("_id")),
                t,
                src,
                problem or ("unparseable" if bad_value else None),
                _str(_first(d, "customerId", "customer_id")[0]),
                _str(d.get("channel")),
                _str(_first(d, "campaign", "campaign_id", "campaignId")[0]),
                _str(d.get("action")),
                _str(_first(d, "orderId", "order_id")[0]),
                value,
                _str(_first(d, "venueId", "venue_id")[0]),
            )
        )
    return pl.DataFrame(
        rows,
        schema={
            "_pos": pl.Int64,
            "doc_id": pl.String,
            "written_at": _TS,
            "event_time": _TS,
            "time_source": pl.String,
            "problem": pl.String,
            "customer_hash": pl.String,
            "channel_raw": pl.String,
            "campaign_id": pl.String,
            "action": pl.String,
            "order_id": pl.String,
            "value_cents": pl.Int64,
            "venue_id": pl.String,
        },
        orient="row",
    )


_EVENT_SCHEMA = {
    "_pos": pl.Int64,
    "doc_id": pl.String,
    "written_at": _TS,
    "event_time": _TS,
    "time_source": pl.String,
    "problem": pl.String,
    "event_type_raw": pl.String,
    "action": pl.String,
    "venue_id": pl.String,
    "event_id": pl.String,
    "session_id": pl.String,
    "user_hash": pl.String,
    "order_id": pl.String,
    "amount_cents": pl.Int64,
    "quantity": pl.Int64,
    "query": pl.String,
    "page_url": pl.String,
    "referrer": pl.String,
    "device": pl.String,
    "os": pl.String,
    "country": pl.String,
    "city": pl.String,
    "duration_s": pl.Int64,
}


def _int(v) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def actions(docs: list[dict]) -> pl.DataFrame:
    """raw_analytics (web, snake_case) and analytics_events (mobile app, camelCase)."""
    rows = []
    for i, d in enumerate(docs):
        t, src, problem = _time(d, "eventTime", "event_time", "timestamp")
        props = _first(d, "data", "properties")[0] or {}
        if not isinstance(props, dict):
            props, problem = {}, problem or "unparseable"
        amount, bad_amount = _cents(props.get("amount"))
        rows.append(
            (
                i,
                _str(d.get("_id")),
                oid_time(d.get("_id")),
                t,
                src,
                problem or ("unparseable" if bad_amount else None),
                _str(_first(d, "event_type", "eventType")[0]),
                _str(props.get("action")),
                _str(_first(d, "venue_id", "venueId")[0]),
                _str(_first(d, "event_id", "eventId")[0]),
                _str(_first(d, "session_id", "sessionId")[0]),
                _str(_first(d, "user_hash", "userHash", "userId")[0]),
                _str(_first(props, "order_id", "orderId")[0]),
                amount,
                _int(props.get("quantity")),
                _str(props.get("query")),
                *(None,) * 7,
            )
        )
    return pl.DataFrame(rows, schema=_EVENT_SCHEMA, orient="row")


def page_views(docs: list[dict]) -> pl.DataFrame:
    """user_behavior: one document per page view."""
    rows = []
    for i, d in enumerate(docs):
        t, src, problem = _time(d, "createdAt", "created_at", "timestamp")
        dev = _first(d, "device_info", "deviceInfo")[0] or {}
        geo = _first(d, "geo_info", "geoInfo")[0] or {}
        dev = dev if isinstance(dev, dict) else {}
        geo = geo if isinstance(geo, dict) else {}
        rows.append(
            (
                i,
                _str(d.get("_id")),
                oid_time(d.get("_id")),
                t,
                src,
                problem,
                "page_view",
                None,
                _str(_first(d, "venue_id", "venueId")[0]),
                None,
                _str(_first(d, "session_id", "sessionId")[0]),
                _str(_first(d, "user_hash", "userHash")[0]),
                None,
                None,
                None,
                None,
                _str(_first(d, "page_url", "pageUrl")[0]),
                _str(d.get("referrer")),
                _str(dev.get("type")),
                _str(dev.get("os")),
                _str(geo.get("country")),
                _str(geo.get("city")),
                _int(d.get("duration")),
            )
        )
    return pl.DataFrame(rows, schema=_EVENT_SCHEMA, orient="row")


def performance(docs: list[dict]) -> pl.DataFrame:
    rows = []
    for i, d in enumerate(docs):
        t, src, problem = _time(d, "date")
        m = d.get("metrics") if isinstance(d.get("metrics"), dict) else {}
        spend, bad_spend = _cents(m.get("spend"))
        revenue, bad_rev = _cents(m.get("revenue"))
        rows.append(
            (
                i,
                _str(d.get("_id")),
                oid_time(d.get("_id")),
                t,
                src,
                problem or ("unparseable" if bad_spend or bad_rev else None),
                _str(_first(d, "venue_id", "venueId")[0]),
                _str(_first(d, "campaign_id", "campaignId")[0]),
                _int(m.get("impressions")),
                _int(m.get("clicks")),
                _int(m.get("conversions")),
                spend,
                revenue,
            )
        )
    return pl.DataFrame(
        rows,
        schema={
            "_pos": pl.Int64,
            "doc_id": pl.String,
            "written_at": _TS,
            "event_time": _TS,
            "time_source": pl.String,
            "problem": pl.String,
            "venue_id": pl.String,
            "campaign_id": pl.String,
            "impressions": pl.Int64,
            "clicks": pl.Int64,
            "platform_conversions": pl.Int64,
            "spend_cents": pl.Int64,
            "platform_revenue_cents": pl.Int64,
        },
        orient="row",
    )


def campaigns(docs: list[dict]) -> pl.DataFrame:
    rows = []
    for d in docs:
        budget, _ = _cents(d.get("budget"))
        start, _, _ = _time(d, "start_date", "startDate")
        end, _, _ = _time(d, "end_date", "endDate")
        ch = d.get("channels")
        rows.append(
            (
                _str(_first(d, "campaign_id", "campaignId")[0]),
                _str(_first(d, "venue_id", "venueId")[0]),
                _str(d.get("name")),
                _str(_first(d, "type", "campaign_type")[0]),
                _str(d.get("status")),
                budget,
                start,
                end,
                ",".join(map(str, ch)) if isinstance(ch, list) else _str(ch),
            )
        )
    return pl.DataFrame(
        rows,
        schema={
            "campaign_id": pl.String,
            "venue_id": pl.String,
            "name": pl.String,
            "campaign_type": pl.String,
            "status": pl.String,
            "budget_cents": pl.Int64,
            "start_date": _TS,
            "end_date": _TS,
            "channels": pl.String,
        },
        orient="row",
    )
