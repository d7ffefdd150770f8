"""Write the behavioral collections as MongoDB Extended JSON v2 files (the format `mongoexport` writes: one
document per line; dates in the canonical {"$date": {"$numberLong": ms}} form, other values relaxed) and load those files into a real MongoDB (`generate --mongo-url`).

Layout: <dir>/<collection>/<YYYY-MM-DD>.json, one file per collection and UTC day of *write* (the day the
writer inserted the document: its ObjectId's time), as a daily `mongoexport --query` on `_id` would produce.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

import polars as pl

from analytics_pipelines.generator.reference import DAY

COLLECTIONS = (
    "raw_analytics",
    "user_behavior",
    "analytics_events",
    "campaigns",
    "campaign_touchpoints",
    "campaign_performance",
)
DEFAULT_DB = "tickettoken_analytics"


def write_files(docs: dict[str, list[pl.DataFrame]] | Iterable[dict], directory: Path) -> dict[str, int]:
    """Write every collection's documents under `directory` (replaced); returns {collection: documents}.
    `docs`: the collections' frames, or an iterable of such dicts (generator.behavior.behavior_chunks), each
    written (appended to its days' files) before the next is made: memory holds one slice at a time."""
    if directory.exists():
        shutil.rmtree(directory)
    counts = {}
    for name in COLLECTIONS:
        (directory / name).mkdir(parents=True, exist_ok=True)
        counts[name] = 0
    for chunk in [docs] if isinstance(docs, dict) else docs:
        for name in COLLECTIONS:
            out = directory / name
            for part in chunk.get(name, []):
                if part.height == 0:
                    continue
                part = part.with_columns(_day=pl.col("_write") // DAY).sort("_write", maintain_order=True)
                for (day,), g in part.partition_by("_day", as_dict=True, maintain_order=True).items():
                    path = out / f"{pl.select(pl.from_epoch(pl.lit(day * DAY), 's').dt.date()).item()}.json"
                    text = g.drop("_write", "_day").write_ndjson()
                    with path.open("a", encoding="utf-8") as fh:
                        fh.write(text)
                    counts[name] += g.height
    return counts


def load_into_mongo(directory: Path, url: str, db: str = DEFAULT_DB, batch: int = 5000) -> dict[str, int]:
    """Insert the documents of the files under `directory` into MongoDB at `url` (collections dropped
    first); the files are parsed with bson.json_util, so MongoDB holds exactly the exported types."""
    import pymongo
    from bson import json_util

    client = pymongo.MongoClient(url)
    try:
        database = client[db]
        counts = {}
        for name in COLLECTIONS:
            coll = database[name]
            coll.drop()
            counts[name] = 0
            for path in sorted((directory / name).glob("*.json")):
                docs = [json_util.loads(line) for line in path.read_text().splitlines() if line.strip()]
                for i in range(0, len(docs), batch):
                    coll.insert_many(docs[i : i + batch], ordered=False)
                counts[name] += len(docs)
        return counts
    finally:
        client.close()
