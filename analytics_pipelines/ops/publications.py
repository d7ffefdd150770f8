"""The publication cursor: what was published to InfluxDB, per publisher and source partition.

One row per (publisher, target, partition_key), replaced on every publication of that partition (the points
themselves are overwritten in InfluxDB, so a re-publication is the same row with a new time): how many
points, their time range, a digest of the exact records written, when and by which run. An operator (or
a test) reads it to see what InfluxDB holds and from which data (`published()`)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from analytics_pipelines.ops.db import as_utc, metadata

influx_publications = sa.Table(
    "influx_publications",
    metadata,
    sa.Column("publisher", sa.String(100), primary_key=True),
    #: masked URL + bucket: the same partition published to two InfluxDBs is two rows
    sa.Column("target", sa.String(300), primary_key=True),
    sa.Column("partition_key", sa.String(40), primary_key=True),
    sa.Column("measurement", sa.String(100), nullable=False),
    sa.Column("source_rows", sa.Integer, nullable=False),
    sa.Column("points", sa.Integer, nullable=False),
    sa.Column("skipped", sa.JSON, nullable=False, default=dict),  # rows not published, by reason
    sa.Column("first_time", sa.DateTime(timezone=True)),
    sa.Column("last_time", sa.DateTime(timezone=True)),
    sa.Column("digest", sa.String(64), nullable=False),  # sha256 of the records, in order
    sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("run_id", sa.String(64)),
)


def record(engine: sa.Engine, rows: list[dict]) -> None:
    """Replace the cursor rows of these (publisher, target, partition_key)s in one transaction."""
    if not rows:
        return
    t = influx_publications
    with engine.begin() as conn:
        for r in rows:
            conn.execute(
                sa.delete(t).where(
                    t.c.publisher == r["publisher"],
                    t.c.target == r["target"],
                    t.c.partition_key == r["partition_key"],
                )
            )
        conn.execute(sa.insert(t), rows)


def published(engine: sa.Engine, publisher: str, target: str | None = None) -> list[dict]:
    """The cursor rows of a publisher (optionally one target), by partition key."""
    t = influx_publications
    q = sa.select(t).where(t.c.publisher == publisher)
    if target is not None:
        q = q.where(t.c.target == target)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(q.order_by(t.c.partition_key))]
    for r in rows:
        for c in ("first_time", "last_time", "published_at"):
            r[c] = as_utc(r[c])
    return rows


def last_published_at(engine: sa.Engine, publisher: str, target: str) -> dict[str, datetime]:
    """partition_key -> when it was last published to `target`."""
    return {r["partition_key"]: r["published_at"] for r in published(engine, publisher, target)}
