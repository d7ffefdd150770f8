"""Behavioral documents (issue 18): the platform's MongoDB collections, consistent with the built world.

Journeys. Every paid online order (web or mobile app) is one converting journey; non-converting journeys of
anonymous visitors are added so that conversion rates can be estimated. Each journey is exposed to every
marketing channel independently (probability EXPOSURE[c]) and converts with the planted additive probability

    P(convert | channels S) = BASELINE + sum_{c in S} EFFECT[c]

so EFFECT[c] is channel c's true incremental effect on conversion (world.truth["behavior"]). Exposure is
anti-correlated with effect (display is everywhere and barely works; email is rarer and works best), which is
what fools frequency-driven rules. Sampling is exact: a converting journey draws its "cause" (the baseline
or a channel, probability proportional to BASELINE and EFFECT[c] * EXPOSURE[c]), forces that channel on and
draws the others from EXPOSURE; a non-converting journey is drawn from EXPOSURE and kept with probability
(1 - P(convert | S)) / (1 - BASELINE). Journeys with no channel and no conversion leave no document.
A journey's touches fall in the 0.5-14 days before its order, but never at or before the same customer's
previous conversion at the same venue: attribution gives a touch to the first conversion that follows it,
so a touch there would merge two journeys (repeat buyers, and the planted bots, scalpers and refund abusers,
convert at one venue within days, minutes or seconds) and inflate the converting paths' channel sets.

Documents (generator.behavior_docs renders them as mongoexport files and loads them into MongoDB):
campaign_touchpoints (impression/click/visit per exposed channel, a conversion at the order), user_behavior
(page views: referrer/utm, device, geo, duration), raw_analytics (web) and analytics_events (mobile app):
cart adds, checkouts, purchases, cart abandonments, searches; campaigns of every CampaignType (one per venue,
quarter and type; the email/social/display touches of every third quarter go to a multi_channel campaign) and
daily campaign_performance with spend. Warts: camelCase and snake_case writers of the same collection, hashed
user ids, writers that overwrite `timestamp` with the write time (the event time then sits in
eventTime/event_time/createdAt), and planted bad documents (see BAD).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import polars as pl

from analytics_pipelines.generator.behavior_frames import campaign_documents, render
from analytics_pipelines.generator.behavior_params import (
    BASELINE,
    CAMPAIGN_TYPE,
    CAMPAIGN_TYPES,
    CHANNELS,
    CLICK_P,
    EFFECT,
    EXPOSURE,
    QUARTER,
    _n_quarters,
)
from analytics_pipelines.generator.primitives import _Streams
from analytics_pipelines.generator.reference import DAY
from analytics_pipelines.generator.world import _World

_PAID_STATUS = (2, 3, 6)  # contract.ORDER_STATUSES: CONFIRMED, COMPLETED, REFUNDED
_FAILED_STATUS = (4, 5)  # CANCELLED, EXPIRED
_ONLINE = (0, 1)  # contract.ORDER_CHANNELS: web, mobile_app
TRACKING_LOSS = 0.03  # purchases the client-side tracker never reported (ad blockers, closed tabs)
FAILED_PURCHASE_EVENT = 0.10  # failed checkouts whose client still sent a purchase event


def planted_truth_values() -> dict:
    return {
        "channels": list(CHANNELS),
        "incremental_effect": dict(zip(CHANNELS, EFFECT.tolist(), strict=True)),
        "exposure_probability": dict(zip(CHANNELS, EXPOSURE.tolist(), strict=True)),
        "baseline_conversion": BASELINE,
        "planted_order": [CHANNELS[i] for i in np.argsort(-EFFECT, kind="stable")],
        "conversion_rate": float(BASELINE + EFFECT @ EXPOSURE),
        "model": "P(convert | S) = baseline + sum of incremental_effect over the channels in S",
    }


def _journeys(rs: _Streams, w: _World) -> dict[str, np.ndarray]:
    o = w.orders
    t_order = np.where(o.confirmed >= 0, o.confirmed, o.created)
    online = np.isin(o.channel, _ONLINE)
    conv_orders = np.flatnonzero(online & np.isin(o.status, _PAID_STATUS))
    k = len(CHANNELS)
    rate = BASELINE + EFFECT @ EXPOSURE
    n_conv = len(conv_orders)
    n_non = int(round(n_conv * (1 - rate) / rate))
    rng = rs("behavior.journeys")
    # converting: the cause, then the other channels
    cause = rng.choice(k + 1, n_conv, p=np.r_[BASELINE, EFFECT * EXPOSURE] / rate) - 1
    x_conv = rng.random((n_conv, k)) < EXPOSURE
    x_conv[np.flatnonzero(cause >= 0), cause[cause >= 0]] = True
    # non-converting: rejection sampling from the exposure distribution
    parts, have = [], 0
    while have < n_non:
        draw = rng.random((max(2 * (n_non - have), 16), k)) < EXPOSURE
        keep = rng.random(draw.shape[0]) < (1 - BASELINE - draw @ EFFECT) / (1 - BASELINE)
        parts.append(draw[keep])
        have += int(keep.sum())
    x_non = np.concatenate(parts)[:n_non] if parts else np.zeros((0, k), bool)
    # a non-converting journey looks at the event of a random online order, up to 10 days before it
    ref = rng.choice(conv_orders, n_non) if n_conv else np.zeros(0, np.int64)
    t_non = np.maximum(t_order[ref] - rng.integers(0, 10 * DAY, n_non), w.clock.launch + DAY)
    order = np.r_[conv_orders, np.full(n_non, -1)]
    ev = np.r_[o.event[conv_orders], o.event[ref]]
    mobile = np.r_[o.channel[conv_orders] == 1, rng.random(n_non) < 0.3]
    span = rng.uniform(0.5, 14.0, n_conv + n_non) * DAY
    gap = np.r_[_since_previous(w, conv_orders, t_order), np.full(n_non, np.iinfo(np.int64).max)]
    # a journey's touches lie after the same customer's previous conversion at the venue (attribution gives
    # a touch to the first conversion that follows it): the span ends `lead` seconds before the order
    lead = np.minimum(60, gap // 2)
    return {
        "order": order,
        "converted": order >= 0,
        "event": ev,
        "venue": w.events.venue[ev],
        "tenant": w.events.tenant[ev],
        "time": np.r_[t_order[conv_orders], t_non],
        "span": np.minimum(span, np.maximum(gap - lead - 1, 0)),
        "lead": lead,
        "x": np.concatenate([x_conv, x_non]),
        "user": np.r_[o.user[conv_orders], np.full(n_non, -1)],
        "mobile": mobile,
        "device": np.where(
            mobile, 1, np.where(rng.random(n_conv + n_non) < 0.8, 0, 2)
        ),  # desktop/mobile/tablet
    }


def _since_previous(w: _World, conv_orders: np.ndarray, t_order: np.ndarray) -> np.ndarray:
    """Seconds since the same customer's previous converting order at the same venue (int64 max if none)."""
    o = w.orders
    user, venue, t = o.user[conv_orders], w.events.venue[o.event[conv_orders]], t_order[conv_orders]
    idx = np.lexsort((t, venue, user))
    same = np.r_[False, (user[idx][1:] == user[idx][:-1]) & (venue[idx][1:] == venue[idx][:-1])]
    gap = np.full(len(idx), np.iinfo(np.int64).max)
    gap[same] = np.diff(t[idx])[same[1:]]
    out = np.empty_like(gap)
    out[idx] = gap
    return out


def _campaign(w: _World, venue: np.ndarray, channel: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The campaign index of a paid touch (-1 for organic/referral): one per venue, quarter and type; the
    email/social/display touches of every third quarter belong to that quarter's multi_channel campaign."""
    quarter = (t - w.clock.launch) // QUARTER
    ctype = np.array([-1 if c is None else CAMPAIGN_TYPES.index(c) for c in CAMPAIGN_TYPE])[channel]
    multi = (quarter % 3 == 0) & np.isin(channel, (0, 5, 7))
    ctype = np.where(multi, CAMPAIGN_TYPES.index("multi_channel"), ctype)
    n_q = _n_quarters(w)
    return np.where(ctype < 0, -1, (venue * n_q + quarter) * len(CAMPAIGN_TYPES) + ctype)


def _touches(rs: _Streams, w: _World, j: dict) -> dict[str, np.ndarray]:
    rng = rs("behavior.touches")
    jj, ch = np.nonzero(j["x"])
    t = j["time"][jj] - (j["span"][jj] * rng.random(len(jj))).astype(np.int64) - j["lead"][jj]
    t = np.maximum(t, w.clock.launch + 60)
    paid = np.array([c is not None for c in CAMPAIGN_TYPE])[ch]
    clicked = rng.random(len(jj)) < CLICK_P[ch]
    # paid: an impression, maybe a click after it; organic/referral: a visit
    click_t = np.minimum(t + rng.integers(60, 2 * 3600, len(jj)), j["time"][jj] - 120)
    click_t = np.maximum(click_t, t)
    rows_j = np.r_[jj, jj[paid & clicked]]
    rows_c = np.r_[ch, ch[paid & clicked]]
    rows_t = np.r_[t, click_t[paid & clicked]]
    action = np.r_[np.where(paid, 0, 2), np.full(int((paid & clicked).sum()), 1)]  # impression/click/visit
    conv = np.flatnonzero(j["converted"])
    return {
        "journey": np.r_[rows_j, conv],
        "channel": np.r_[rows_c, np.full(len(conv), -1)],
        "time": np.r_[rows_t, j["time"][conv]],
        "action": np.r_[action, np.full(len(conv), 3)],  # 3: conversion
        "campaign": np.r_[_campaign(w, j["venue"][rows_j], rows_c, rows_t), np.full(len(conv), -1)],
    }


def _sessions(rs: _Streams, w: _World, j: dict, tp: dict) -> dict[str, np.ndarray]:
    """One session per click/visit, one purchase session per converting journey and per failed online
    checkout. Columns: journey (-1 for a failed checkout), order, channel (-1 direct), start, steps."""
    rng = rs("behavior.sessions")
    landing = np.isin(tp["action"], (1, 2))
    sj, sc, st = tp["journey"][landing], tp["channel"][landing], tp["time"][landing]
    # the purchase session's channel: the journey's last click/visit before the order, else direct
    conv = np.flatnonzero(j["converted"])
    last = np.full(len(j["order"]), -1)
    order_by_time = np.lexsort((st, sj))
    last[sj[order_by_time]] = sc[order_by_time]  # the last write per journey wins: the latest landing
    o = w.orders
    failed = np.flatnonzero(np.isin(o.channel, _ONLINE) & np.isin(o.status, _FAILED_STATUS))
    n_s, n_c, n_f = len(sj), len(conv), len(failed)
    p_start = j["time"][conv] - rng.integers(3 * 60, 25 * 60, n_c)
    f_start = o.created[failed] - rng.integers(3 * 60, 25 * 60, n_f)
    kind = np.r_[np.zeros(n_s, np.int8), np.ones(n_c, np.int8), np.full(n_f, 2, np.int8)]
    return {
        "journey": np.r_[sj, conv, np.full(n_f, -1)],
        "failed_order": np.r_[np.full(n_s + n_c, -1), failed],
        "channel": np.r_[sc, last[conv], np.full(n_f, -1)],
        "start": np.r_[st, p_start, f_start],
        "kind": kind,  # 0 browse (from a touch), 1 purchase, 2 failed checkout
        "event_page": np.r_[rng.random(n_s) < 0.85, np.ones(n_c + n_f, bool)],
        "cart": np.r_[rng.random(n_s) < 0.30, np.ones(n_c + n_f, bool)],
        "checkout": np.r_[rng.random(n_s) < 0.40, np.ones(n_c + n_f, bool)],
        "purchase": np.r_[
            np.zeros(n_s, bool), rng.random(n_c) >= TRACKING_LOSS, rng.random(n_f) < FAILED_PURCHASE_EVENT
        ],
        "search": rng.random(n_s + n_c + n_f) < 0.25,
    }


#: journeys rendered at once (behavior_chunks): bounds the memory of the document frames (~6 documents per
#: journey, ~1.5 GB of frames per slice); `tiny` and `small` (~0.2 M journeys) fit in one slice, `medium`
#: (~2 M) takes ~5, `large` (~15 M) ~30
CHUNK_JOURNEYS = 500_000


def behavior_documents(rs: _Streams, w: _World) -> dict[str, list[pl.DataFrame]]:
    """The behavioral collections as document frames (generator.behavior_frames) and the planted truth in
    w.truth["behavior"]: every slice of behavior_chunks, in memory."""
    docs: dict[str, list[pl.DataFrame]] = {}
    for chunk in behavior_chunks(rs, w):
        for name, frames in chunk.items():
            docs.setdefault(name, []).extend(frames)
    return docs


def behavior_chunks(rs: _Streams, w: _World, chunk_journeys: int = CHUNK_JOURNEYS) -> Iterator[dict]:
    """The journeys, touches and sessions (numbers: a few GB at `large`) and the truth in w.truth["behavior"]
    now; the documents lazily, one slice of `chunk_journeys` journeys at a time (their touches and sessions;
    the failed checkouts spread over the slices), then campaigns and campaign_performance from every touch.
    Writing each slice before the next is rendered (behavior_docs.write_files) bounds the memory: the
    document frames of all of `large`'s days do not fit in 24 GB. One slice renders exactly what rendering
    everything at once did; more slices draw from streams of their own (deterministic all the same)."""
    j = _journeys(rs, w)
    tp = _touches(rs, w, j)
    ss = _sessions(rs, w, j, tp)
    truth = planted_truth_values()
    truth.update(
        journeys=int(len(j["order"])),
        converting_journeys=int(j["converted"].sum()),
        direct_conversions=int((j["converted"] & ~j["x"].any(axis=1)).sum()),
        exposed_journeys={c: int(j["x"][:, i].sum()) for i, c in enumerate(CHANNELS)},
    )
    bad: dict[str, int] = {}
    truth["planted_bad"] = bad
    w.truth["behavior"] = truth
    n = len(j["order"])
    slices = max(1, -(-n // chunk_journeys))

    def render_all() -> Iterator[dict]:
        if slices == 1:
            docs, b = render(rs, w, j, tp, ss)
            bad.update(b)
            yield docs
            return
        failed = np.array_split(np.flatnonzero(ss["journey"] < 0), slices)
        for k in range(slices):
            a, z = k * n // slices, (k + 1) * n // slices
            jk = {key: v[a:z] for key, v in j.items()}
            t = (tp["journey"] >= a) & (tp["journey"] < z)
            tk = {key: v[t] for key, v in tp.items()}
            tk["journey"] = tk["journey"] - a
            s = np.flatnonzero((ss["journey"] >= a) & (ss["journey"] < z))
            s = np.sort(np.r_[s, failed[k]])
            sk = {key: v[s] for key, v in ss.items()}
            sk["journey"] = np.where(sk["journey"] >= 0, sk["journey"] - a, -1)
            docs, b = render(rs, w, jk, tk, sk, chunk=k, campaigns=False)
            for key, v in b.items():
                bad[key] = bad.get(key, 0) + v
            yield docs
        yield campaign_documents(rs, w, j, tp, bad)

    return render_all()
