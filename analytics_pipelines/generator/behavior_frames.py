"""Render the behavioral journeys (generator.behavior) as MongoDB document frames, one list of frames per
collection. Every frame is one writer's shape (its own field names): `_id` is {"$oid"}, dates are
{"$date": {"$numberLong"}} (MongoDB Extended JSON v2, as mongoexport writes it; other values relaxed) and `_write` (epoch seconds, not written) is when
the writer inserted the document: the ObjectId's timestamp and the export file's day.

Writers and their warts:
- campaign_touchpoints: the API writer (camelCase, `timestamp` = event time) and a batch writer (snake_case,
  `timestamp` = write time, the event time in `event_time`);
- user_behavior: the web tracker (snake_case, `timestamp` = event time) and a replayed mobile batch
  (camelCase, `timestamp` = write time, event time in `createdAt`);
- raw_analytics (web, snake_case, event time) and analytics_events (mobile app, camelCase, `timestamp` =
  write time, event time in `eventTime`); campaigns; campaign_performance (daily batch).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from analytics_pipelines.generator.behavior_params import (
    CHANNELS,
    CPC_CENTS,
    CPM_CENTS,
    _hex,
    _n_quarters,
    date,
    object_ids,
    oid,
    user_hashes,
)
from analytics_pipelines.generator.primitives import _new_ids, _Streams, _uuid_text
from analytics_pipelines.generator.reference import _CITY_COUNTRY, _CITY_NAME, DAY
from analytics_pipelines.generator.world import _World

_REFERRER = (
    "https://mail.google.com/",
    None,
    None,
    "https://www.google.com/",
    "https://blog.festivalnews.example/",
    "https://www.facebook.com/",
    "https://www.google.com/",
    "https://ads.example-network.com/",
)
_UTM = ("email", "sms", "push", "cpc", None, "paid_social", None, "display")
_ACTIONS = ("impression", "click", "visit", "conversion")
_DEVICES = ("desktop", "mobile", "tablet")
_OS = ("Windows", "iOS", "iPadOS")
_QUERIES = ("concert tickets", "comedy tonight", "festival", "theatre", "sports this weekend", "jazz")


def _writes(rng: np.random.Generator, t: np.ndarray, buggy: np.ndarray) -> np.ndarray:
    """Write times: a correct writer within seconds, a batch writer minutes to hours later (1%: days)."""
    delay = np.where(buggy, rng.integers(60, 6 * 3600, len(t)), rng.integers(0, 3, len(t)))
    late = buggy & (rng.random(len(t)) < 0.01)
    return t + delay + np.where(late, rng.integers(2 * DAY, 3 * DAY, len(t)), 0)


def _text_or_null(values: pl.Series, mask: np.ndarray) -> pl.Series:
    return pl.select(pl.when(pl.lit(pl.Series(mask))).then(pl.lit(values))).to_series()


def _frame(cols: dict, mask: np.ndarray) -> pl.DataFrame:
    """The rows `mask` of a frame of columns (Series or expressions over literal Series)."""
    df = pl.select(**cols)
    return df.filter(pl.Series(mask))


def render(
    rs: _Streams, w: _World, j: dict, tp: dict, ss: dict, chunk: int = 0, campaigns: bool = True
) -> tuple[dict[str, list[pl.DataFrame]], dict]:
    """The documents of journeys `j` (their touches `tp` and sessions `ss`, indexed into `j`). `chunk` > 0:
    one of several slices of the journeys (generator.behavior.behavior_chunks), drawn from streams of its own;
    `campaigns`: also the campaigns and campaign_performance documents (the caller renders them once, from
    every touch, when it renders in slices)."""
    suffix = f".{chunk}" if chunk else ""
    rng = rs("behavior.render" + suffix)
    bad: dict[str, int] = {}
    n_j = len(j["order"])
    # who: registered buyers' hashed ids, anonymous visitors' random hashes
    who = _hex(rng.integers(0, 256, (n_j, 32), dtype=np.uint8))
    conv = np.flatnonzero(j["converted"])
    if len(conv):
        who = who.scatter(conv, user_hashes(w, j["user"][conv]))
    venue_ids = w.venues.ids.take(np.arange(len(w.venues.ids)))
    event_ids = w.events.ids.take(np.arange(len(w.events.ids)))
    n_camp = len(w.venues.ids) * _n_quarters(w) * 7
    camp_ids = _uuid_text(_new_ids(rs("behavior.campaign_ids"), n_camp))
    order_ids = w.orders.ids.take(np.arange(len(w.orders.ids)))
    docs: dict[str, list[pl.DataFrame]] = {}

    # -- campaign_touchpoints --------------------------------------------------------------------------
    n = len(tp["time"])
    tj = tp["journey"]
    t = tp["time"]
    buggy = rng.random(n) < 0.3
    write = _writes(rng, t, buggy)
    chan = pl.Series(list(CHANNELS) + ["direct"]).gather(
        pl.Series(np.where(tp["channel"] < 0, len(CHANNELS), tp["channel"]))
    )
    u = rng.random(n)
    # each planted wart on its own otherwise valid document (a document with two would be counted under one
    # reason only): no misspelling or unknown channel on a late write, no missing id on either
    late = write - t > DAY
    unknown, variant = (u < 0.003) & ~late, (u >= 0.003) & (u < 0.013) & ~late
    is_conv = tp["action"] == 3
    no_id = (rng.random(n) < 0.002) & ~buggy & ~is_conv & ~unknown & ~variant
    chan = pl.select(
        pl.when(pl.lit(pl.Series(unknown)))
        .then(pl.lit("tiktok"))
        .when(pl.lit(pl.Series(variant)))
        .then(pl.lit(chan).str.to_titlecase() + " ")
        .otherwise(pl.lit(chan))
    ).to_series()
    customer = _text_or_null(who.gather(tj), ~no_id)
    ords = np.where(is_conv, j["order"][tj], -1)
    value = pl.Series(np.where(is_conv, w.orders.total[np.maximum(ords, 0)] / 100.0, np.nan)).fill_nan(None)
    order_txt = _text_or_null(order_ids.gather(np.maximum(ords, 0)), is_conv)
    camp = _text_or_null(camp_ids.gather(np.maximum(tp["campaign"], 0)), tp["campaign"] >= 0)
    venue = venue_ids.gather(j["venue"][tj])
    action = pl.Series(_ACTIONS).gather(tp["action"])
    ids = object_ids(rng, write)
    docs["campaign_touchpoints"] = [
        _frame(
            {
                "_id": oid(ids),
                "customerId": pl.lit(customer),
                "timestamp": date(t),
                "channel": pl.lit(chan),
                "campaign": pl.lit(camp),
                "action": pl.lit(action),
                "value": pl.lit(value),
                "orderId": pl.lit(order_txt),
                "venueId": pl.lit(venue),
                "_write": pl.lit(pl.Series(write)),
            },
            ~buggy,
        ),
        _frame(
            {
                "_id": oid(ids),
                "customer_id": pl.lit(customer),
                "timestamp": date(write),
                "event_time": date(t),
                "channel": pl.lit(chan),
                "campaign_id": pl.lit(camp),
                "action": pl.lit(action),
                "value": pl.lit(value),
                "order_id": pl.lit(order_txt),
                "venue_id": pl.lit(venue),
                "_write": pl.lit(pl.Series(write)),
            },
            buggy,
        ),
    ]
    dup = (rng.random(n) < 0.005) & ~unknown & ~no_id  # a copy of a quarantined document is not a duplicate
    dups = docs["campaign_touchpoints"][0].filter(pl.Series(dup[~buggy])).with_columns(pl.col("_write") + 1)
    dups = dups.with_columns(_id=oid(object_ids(rng, dups["_write"].to_numpy())))
    docs["campaign_touchpoints"].append(dups)
    bad.update(
        touchpoint_unknown_channel=int(unknown.sum()),
        touchpoint_channel_spelling=int(variant.sum()),
        touchpoint_missing_customer=int(no_id.sum()),
        touchpoint_duplicates=dups.height,
        touchpoint_late_writes=int(late.sum()),
    )

    # -- sessions: page views (user_behavior) and actions (raw_analytics / analytics_events) ----------
    sj, failed = ss["journey"], ss["failed_order"]
    fo = np.maximum(failed, 0)
    s_event = np.where(sj >= 0, j["event"][np.maximum(sj, 0)], w.orders.event[fo])
    s_venue = w.events.venue[s_event]
    s_device = np.where(sj >= 0, j["device"][np.maximum(sj, 0)], np.where(w.orders.channel[fo] == 1, 1, 0))
    s_who = pl.select(
        pl.when(pl.lit(pl.Series(sj >= 0)))
        .then(pl.lit(who.gather(np.maximum(sj, 0))))
        .otherwise(pl.lit(user_hashes(w, w.orders.user[fo])) if len(fo) else None)
    ).to_series()
    n_s = len(sj)
    session_ids = _uuid_text(_new_ids(rs("behavior.session_ids" + suffix), n_s))
    city = np.where(rng.random(n_s) < 0.8, w.venues.city[s_venue], rng.integers(0, len(_CITY_NAME), n_s))
    sch = ss["channel"]
    utm = pl.Series(list(_UTM) + [None]).gather(np.where(sch < 0, len(_UTM), sch))
    ref = pl.Series(list(_REFERRER) + [None]).gather(np.where(sch < 0, len(_REFERRER), sch))
    ev_url = pl.lit("/events/") + pl.lit(event_ids.gather(s_event))
    land_event = ss["event_page"] & (rng.random(n_s) < 0.7)
    landing_url = pl.select(
        pl.when(pl.lit(pl.Series(land_event))).then(ev_url).otherwise(pl.lit("/"))
        + pl.when(pl.lit(utm).is_not_null()).then(pl.lit("?utm_medium=") + pl.lit(utm)).otherwise(pl.lit(""))
    ).to_series()
    second = ss["event_page"] & ~land_event
    pv_session = np.r_[np.arange(n_s), np.flatnonzero(second)]
    pv_t = np.r_[ss["start"], ss["start"][second] + rng.integers(10, 120, int(second.sum()))]
    pv_url = pl.concat([landing_url, pl.select(ev_url).to_series().filter(pl.Series(second))])
    pv_ref = pl.concat([ref, pl.Series([None] * int(second.sum()), dtype=pl.String)])
    n_pv = len(pv_session)
    pv_buggy = rng.random(n_pv) < 0.2
    pv_write = _writes(rng, pv_t, pv_buggy)
    no_time = (rng.random(n_pv) < 0.002) & ~pv_buggy
    pv_ts = np.where(no_time, -1, pv_t)
    device = pl.struct(
        pl.lit(pl.Series(_DEVICES).gather(s_device[pv_session])).alias("type"),
        pl.lit(pl.Series(_OS).gather(s_device[pv_session])).alias("os"),
    )
    geo = pl.struct(
        pl.lit(pl.Series(_CITY_COUNTRY).gather(city[pv_session])).alias("country"),
        pl.lit(pl.Series(_CITY_NAME).gather(city[pv_session])).alias("city"),
    )
    pv_ids = object_ids(rng, pv_write)
    common = {
        "_id": oid(pv_ids),
        "venue": pl.lit(venue_ids.gather(s_venue[pv_session])),
        "session": pl.lit(session_ids.gather(pv_session)),
        "user": pl.lit(s_who.gather(pv_session)),
        "url": pl.lit(pv_url),
        "referrer": pl.lit(pv_ref),
        "device": device,
        "geo": geo,
        "duration": pl.lit(pl.Series(rng.integers(5, 300, n_pv))),
        "_write": pl.lit(pl.Series(pv_write)),
    }
    snake = {
        "venue": "venue_id",
        "session": "session_id",
        "user": "user_hash",
        "url": "page_url",
        "device": "device_info",
        "geo": "geo_info",
    }
    camel = {
        "venue": "venueId",
        "session": "sessionId",
        "user": "userHash",
        "url": "pageUrl",
        "device": "deviceInfo",
        "geo": "geoInfo",
    }
    docs["user_behavior"] = [
        _frame({**{snake.get(k, k): v for k, v in common.items()}, "timestamp": date(pv_ts)}, ~pv_buggy),
        _frame(
            {
                **{camel.get(k, k): v for k, v in common.items()},
                "timestamp": date(pv_write),
                "createdAt": date(pv_t),
            },
            pv_buggy,
        ),
    ]
    bad["page_view_no_timestamp"] = int(no_time.sum())

    # actions: search, cart add, checkout, purchase, cart abandonment
    start = ss["start"]
    cart_t = start + rng.integers(30, 100, n_s)
    check_t = cart_t + rng.integers(20, 60, n_s)
    is_purchase_session = ss["kind"] == 1
    buy_t = np.where(is_purchase_session, j["time"][np.maximum(sj, 0)], w.orders.created[fo] + 30)
    has_cart = ss["cart"] & ss["event_page"]
    has_check = has_cart & (ss["checkout"] | (ss["kind"] > 0))
    abandon = has_cart & (ss["kind"] == 0)
    kinds = [  # (event_type, action, mask, time)
        ("search_query", None, ss["search"], start + 5),
        ("user_action", "add_to_cart", has_cart, cart_t),
        ("user_action", "begin_checkout", has_check, check_t),
        ("ticket_purchase", None, ss["purchase"], buy_t),
        ("cart_abandonment", None, abandon, np.maximum(check_t, cart_t) + 1800),
    ]
    a_sess = np.concatenate([np.flatnonzero(m) for _, _, m, _ in kinds])
    a_t = np.concatenate([tt[m] for _, _, m, tt in kinds])
    code = np.concatenate([np.full(int(m.sum()), i) for i, (_, _, m, _) in enumerate(kinds)])
    a_type = pl.Series([k[0] for k in kinds], dtype=pl.String).gather(code)
    a_act = pl.Series([k[1] for k in kinds], dtype=pl.String).gather(code)
    n_a = len(a_sess)
    a_order = np.where(
        a_type.to_numpy() == "ticket_purchase",
        np.where(sj[a_sess] >= 0, j["order"][np.maximum(sj[a_sess], 0)], failed[a_sess]),
        -1,
    )
    a_amount = pl.Series(
        np.where(a_order >= 0, w.orders.total[np.maximum(a_order, 0)] / 100.0, np.nan)
    ).fill_nan(None)
    a_qty = _text_or_null(pl.Series(w.orders.quantity[np.maximum(a_order, 0)]), a_order >= 0)
    a_oid = _text_or_null(order_ids.gather(np.maximum(a_order, 0)), a_order >= 0)
    a_query = _text_or_null(
        pl.Series(_QUERIES).gather(rng.integers(0, len(_QUERIES), n_a)), a_type.to_numpy() == "search_query"
    )
    mobile = s_device[a_sess] == 1
    u = rng.random(n_a)
    heartbeat, garbled = (u < 0.002) & ~mobile, (u >= 0.002) & (u < 0.003) & ~mobile
    a_type = _text_or_null(a_type, ~heartbeat).fill_null("heartbeat")
    a_write = _writes(rng, a_t, mobile)
    a_ids = object_ids(rng, a_write)
    web = {
        "_id": oid(a_ids),
        "event_type": pl.lit(a_type),
        "venue_id": pl.lit(venue_ids.gather(s_venue[a_sess])),
        "event_id": pl.lit(event_ids.gather(s_event[a_sess])),
        "session_id": pl.lit(session_ids.gather(a_sess)),
        "user_hash": pl.lit(s_who.gather(a_sess)),
        "timestamp": date(a_t),
        "data": pl.struct(
            pl.lit(a_act).alias("action"),
            pl.lit(a_query).alias("query"),
            pl.lit(a_oid).alias("order_id"),
            pl.lit(a_amount).alias("amount"),
            pl.lit(a_qty).alias("quantity"),
        ),
        "_write": pl.lit(pl.Series(a_write)),
    }
    docs["raw_analytics"] = [
        _frame(web, ~mobile & ~garbled),
        _frame({**web, "timestamp": pl.lit("not-a-date")}, garbled),
    ]
    docs["analytics_events"] = [
        _frame(
            {
                "_id": oid(a_ids),
                "eventType": pl.lit(a_type),
                "venueId": web["venue_id"],
                "eventId": web["event_id"],
                "sessionId": web["session_id"],
                "userId": web["user_hash"],
                "timestamp": date(a_write),
                "eventTime": date(a_t),
                "properties": pl.struct(
                    pl.lit(a_act).alias("action"),
                    pl.lit(a_query).alias("query"),
                    pl.lit(a_oid).alias("orderId"),
                    pl.lit(a_amount).alias("amount"),
                    pl.lit(a_qty).alias("quantity"),
                ),
                "_write": web["_write"],
            },
            mobile,
        )
    ]
    bad.update(unknown_event_type=int(heartbeat.sum()), unparseable_timestamp=int(garbled.sum()))

    # -- campaigns and campaign_performance ----------------------------------------------------------
    if campaigns:
        docs.update(campaign_documents(rs, w, j, tp, bad))
    return docs, bad


def campaign_documents(
    rs: _Streams, w: _World, j: dict, tp: dict, bad: dict
) -> dict[str, list[pl.DataFrame]]:
    """campaigns and campaign_performance from every journey's touches (generator.behavior_campaigns)."""
    from analytics_pipelines.generator.behavior_campaigns import campaign_docs

    venue_ids = w.venues.ids.take(np.arange(len(w.venues.ids)))
    n_camp = len(w.venues.ids) * _n_quarters(w) * 7
    camp_ids = _uuid_text(_new_ids(rs("behavior.campaign_ids"), n_camp))
    return campaign_docs(rs, w, j, tp, camp_ids, venue_ids, CPM_CENTS, CPC_CENTS, bad)
