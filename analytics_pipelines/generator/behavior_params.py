"""The behavioral generator's parameters and shared helpers (generator.behavior, behavior_frames,
behavior_campaigns import them; this module imports none of those): the channels and their planted effects,
campaign types and costs, quarters, hashed user ids, ObjectIds and Extended JSON dates."""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl
import pyarrow as pa

from analytics_pipelines.generator.primitives import _HEX_PAIRS
from analytics_pipelines.generator.reference import DAY
from analytics_pipelines.generator.world import _World

CHANNELS = ("email", "sms", "push", "paid_search", "referral", "social", "organic_search", "display")
EFFECT = np.array([0.22, 0.16, 0.12, 0.10, 0.08, 0.06, 0.04, 0.02])
EXPOSURE = np.array([0.20, 0.15, 0.25, 0.30, 0.20, 0.40, 0.45, 0.60])
BASELINE = 0.10
#: channels bought through a campaign (organic search and referral are not)
CAMPAIGN_TYPE = ("email", "sms", "push", "search", None, "social", None, "display")
CAMPAIGN_TYPES = ("email", "sms", "push", "social", "display", "search", "multi_channel")
#: a paid touch is an impression, clicked with this probability; organic/referral touches are visits
CLICK_P = np.array([0.35, 0.30, 0.25, 0.45, 1.0, 0.15, 1.0, 0.05])
#: cost per impression and per click in cents (spend in campaign_performance)
CPM_CENTS = np.array([2.0, 5.0, 1.0, 0.0, 0.0, 8.0, 0.0, 3.0])
CPC_CENTS = np.array([0.0, 0.0, 0.0, 150.0, 0.0, 60.0, 0.0, 40.0])
QUARTER = 91 * DAY


def _n_quarters(w: _World) -> int:
    return int((w.clock.now - w.clock.launch) // QUARTER) + 2


def user_hashes(w: _World, users: np.ndarray) -> pl.Series:
    """sha256 of the user id text, as the platform's trackers stored it (hashed user ids): one hash per
    distinct user, gathered."""
    uniq, inv = np.unique(users, return_inverse=True)
    text = w.users.ids.take(uniq).to_list()
    hashed = pl.Series([hashlib.sha256(u.encode()).hexdigest() for u in text], dtype=pl.String)
    return hashed.gather(inv)


def _hex(raw: np.ndarray) -> pl.Series:
    n, width = raw.shape
    text = _HEX_PAIRS[raw].view(np.uint8).reshape(n, 2 * width)
    offsets = np.arange(0, 2 * width * (n + 1), 2 * width, dtype=np.int64)
    arr = pa.Array.from_buffers(
        pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(text.ravel())]
    )
    return pl.from_arrow(arr).cast(pl.String)


def object_ids(rng: np.random.Generator, write: np.ndarray) -> pl.Series:
    """ObjectId hex text: 4-byte big-endian write time, then 8 random bytes."""
    raw = np.empty((len(write), 12), np.uint8)
    raw[:, :4] = write.astype(">u4").view(np.uint8).reshape(-1, 4)
    raw[:, 4:] = rng.integers(0, 256, (len(write), 8), dtype=np.uint8)
    return _hex(raw)


def oid(s: pl.Series) -> pl.Expr:
    return pl.struct(pl.lit(s).alias("$oid"))


def date(seconds: np.ndarray | pl.Series) -> pl.Expr:
    """{"$date": {"$numberLong": "<ms since the epoch>"}} (the canonical form, as `mongoexport
    --jsonFormat=canonical` writes dates: json_util parses it without strptime, half the cost of the ISO
    text of the relaxed form); NULL (the whole field null) for negative seconds."""
    sec = pl.Series(np.asarray(seconds, np.int64))
    ms = (sec * 1000).cast(pl.String)
    return pl.when(pl.lit(sec) >= 0).then(
        pl.struct(pl.struct(pl.lit(ms).alias("$numberLong")).alias("$date"))
    )
