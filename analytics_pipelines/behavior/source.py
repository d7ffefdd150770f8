"""Where behavioral documents come from: the embedded Extended JSON files (the default) or a live MongoDB
(TT_MONGO_URL). Both yield the documents a pymongo read returns (ObjectId, naive-UTC datetime, dict, list,
str, int, float, None): the files are parsed with `bson.json_util`, so one normalization serves both.

A read covers a window of *write* time, [lo, hi): the ObjectId's timestamp, which the writer's driver sets
at insert and which only grows. That is the incremental cursor: documents are read in `_id` order, in
batches, with a projection of the fields the normalization needs, and on a transient error the read resumes
after the last `_id` it received (never re-reading or skipping a document)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
from bson import ObjectId, json_util

log = logging.getLogger(__name__)

COLLECTIONS = (
    "raw_analytics",
    "user_behavior",
    "analytics_events",
    "campaigns",
    "campaign_touchpoints",
    "campaign_performance",
)
_TIME = ["timestamp", "event_time", "eventTime", "created_at", "createdAt"]
#: the fields each collection's normalization reads (both spellings of every field)
PROJECTIONS: dict[str, list[str]] = {
    "campaign_touchpoints": [
        *_TIME,
        *("customerId", "customer_id", "channel", "campaign", "campaign_id", "campaignId", "action"),
        *("value", "orderId", "order_id", "venueId", "venue_id"),
    ],
    "user_behavior": [
        *_TIME,
        *("venue_id", "venueId", "session_id", "sessionId", "user_hash", "userHash", "page_url", "pageUrl"),
        *("referrer", "device_info", "deviceInfo", "geo_info", "geoInfo", "duration"),
    ],
    "raw_analytics": [
        *_TIME,
        *("event_type", "eventType", "venue_id", "venueId", "event_id", "eventId", "session_id", "sessionId"),
        *("user_hash", "userHash", "userId", "data", "properties"),
    ],
    "campaign_performance": ["date", "venue_id", "venueId", "campaign_id", "campaignId", "metrics"],
    "campaigns": [
        *("campaign_id", "campaignId", "venue_id", "venueId", "name", "type", "campaign_type", "status"),
        *("budget", "channels", "start_date", "startDate", "end_date", "endDate"),
    ],
}
PROJECTIONS["analytics_events"] = PROJECTIONS["raw_analytics"]
#: server error codes a read may retry (network, failover, shutdown, interrupted)
TRANSIENT_CODES = {6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436}


@dataclass
class ReadStats:
    documents: int = 0
    retries: int = 0
    unparseable: list[tuple[str, str, str]] = field(default_factory=list)  # (file day, line no, text)


#: a mongoexport line starts with the document's ObjectId; its first 4 bytes are the write time
_LEADING_OID = re.compile(r'\{"_id":\{"\$oid":"([0-9a-fA-F]{8})[0-9a-fA-F]{16}"\}')
_EPOCH = datetime(1970, 1, 1)


def _seconds(t: datetime | None) -> int | None:
    return None if t is None else int((t - _EPOCH).total_seconds() // 1)


def oid_time(doc_id: object) -> datetime | None:
    """The write time of a document: its ObjectId's timestamp (naive UTC), None for another _id type."""
    return doc_id.generation_time.replace(tzinfo=None) if isinstance(doc_id, ObjectId) else None


class FileSource:
    """<dir>/<collection>/<YYYY-MM-DD>.json (mongoexport's relaxed Extended JSON, one document per line,
    one file per day of write: generator.behavior_docs). A line that starts with its ObjectId (mongoexport
    writes `_id` first) is skipped unparsed when that ObjectId's time lies outside the window: a one-day
    run reads three files of which only half of the first and last are in its window."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def read(
        self, collection: str, lo: datetime | None, hi: datetime | None, stats: ReadStats
    ) -> Iterator[dict]:
        folder = self.directory / collection
        files = sorted(folder.glob("*.json")) if folder.exists() else []
        lo_s, hi_s = _seconds(lo), _seconds(hi)
        for path in files:
            day = datetime.fromisoformat(path.stem)
            if lo is not None and day + timedelta(days=1) <= lo or hi is not None and day >= hi:
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                lead = _LEADING_OID.match(line)
                if lead is not None:  # outside the window by its ObjectId: not parsed at all
                    w_s = int(lead.group(1), 16)
                    if lo_s is not None and w_s < lo_s or hi_s is not None and w_s >= hi_s:
                        continue
                try:
                    doc = json_util.loads(line)
                except (ValueError, TypeError) as exc:
                    # a line is placed by its file's day (no _id could be read)
                    if (lo is None or day >= lo) and (hi is None or day < hi):
                        stats.unparseable.append((path.stem, f"{path.name}:{n}", f"{exc}: {line[:500]}"))
                    continue
                w = oid_time(doc.get("_id"))
                if w is None or (lo is None or w >= lo) and (hi is None or w < hi):
                    stats.documents += 1
                    yield doc

    def lines(self, collection: str, lo: datetime | None, hi: datetime | None) -> pl.DataFrame:
        """The lines `read` would parse, as a column (file_day, where, line), in file order: the files of the
        window, every line but those whose leading ObjectId lies outside it (behavior.columnar decodes
        them; blank lines are left to it)."""
        folder = self.directory / collection
        files = sorted(folder.glob("*.json")) if folder.exists() else []
        lo_s, hi_s = _seconds(lo), _seconds(hi)
        texts: list[str] = []
        names, counts = [], []
        for path in files:
            day = datetime.fromisoformat(path.stem)
            if lo is not None and day + timedelta(days=1) <= lo or hi is not None and day >= hi:
                continue
            lines = path.read_text(encoding="utf-8").splitlines()
            texts += lines
            names.append(path.name)
            counts.append(len(lines))
        file = pl.Series("file", names, dtype=pl.String).gather(
            pl.Series(np.repeat(np.arange(len(names), dtype=np.int64), counts))
        )
        df = pl.DataFrame({"line": pl.Series(texts, dtype=pl.String), "file": file}).with_columns(
            file_day=pl.col("file").str.strip_suffix(".json"),
            where=pl.col("file") + ":" + pl.int_range(1, pl.len() + 1).over("file").cast(pl.String),
        )
        lead = pl.col("line").str.extract(_LEADING_OID.pattern, 1).str.to_integer(base=16, strict=False)
        outside = pl.lit(False)
        if lo_s is not None:
            outside = outside | (lead < lo_s)
        if hi_s is not None:
            outside = outside | (lead >= hi_s)
        return df.filter(~(lead.is_not_null() & outside)).select("file_day", "where", "line")


class MongoSource:
    """A live MongoDB: an `_id`-ordered, projected, batched cursor over the write window, resumed after
    the last `_id` on transient errors (up to `attempts` times per read, with backoff)."""

    def __init__(
        self,
        url: str | None,
        db: str,
        batch_size: int = 5000,
        attempts: int = 5,
        backoff: float = 0.2,
        client=None,
    ):
        import pymongo

        # `client`: an already connected client (tests pass mongomock's)
        self.client = client or pymongo.MongoClient(url, retryReads=True, serverSelectionTimeoutMS=10_000)
        self.db = self.client[db]
        self.batch_size = batch_size
        self.attempts = attempts
        self.backoff = backoff

    def close(self) -> None:
        self.client.close()

    @staticmethod
    def transient(exc: Exception) -> bool:
        from pymongo import errors

        if isinstance(exc, (errors.AutoReconnect, errors.NetworkTimeout, errors.ConnectionFailure)):
            return True
        if isinstance(exc, errors.OperationFailure):
            labels = (exc.details or {}).get("errorLabels", [])
            return (
                exc.code in TRANSIENT_CODES
                or "RetryableError" in labels
                or "ResumableChangeStreamError" in labels
            )
        return False

    def read(
        self, collection: str, lo: datetime | None, hi: datetime | None, stats: ReadStats
    ) -> Iterator[dict]:
        bounds = {}
        if lo is not None:
            bounds["$gte"] = ObjectId.from_datetime(lo)
        if hi is not None:
            bounds["$lt"] = ObjectId.from_datetime(hi)
        last = None
        failures = 0
        projection = dict.fromkeys(PROJECTIONS[collection], 1)
        while True:
            query = dict(bounds)
            if last is not None:
                query.pop("$gte", None)
                query["$gt"] = last
            cursor = (
                self.db[collection]
                .find({"_id": query} if query else {}, projection)
                .sort("_id", 1)
                .batch_size(self.batch_size)
            )
            try:
                for doc in cursor:
                    last = doc["_id"]
                    stats.documents += 1
                    yield doc
                return
            except Exception as exc:
                if not self.transient(exc) or failures + 1 >= self.attempts:
                    raise
                failures += 1
                stats.retries += 1
                log.warning("%s: transient error after _id %s, resuming (%s)", collection, last, exc)
                time.sleep(self.backoff * 2 ** (failures - 1))
            finally:
                cursor.close()


def open_source(settings) -> FileSource | MongoSource:
    if settings.mongo_url:
        return MongoSource(settings.mongo_url, settings.mongo_db, settings.mongo_batch_size)
    return FileSource(settings.behavior_dir or settings.data_dir / "mongo")
