"""Publishing a source table's partitions to InfluxDB: plain functions over the warehouse, the ops store and
the InfluxDB settings (the Dagster asset in assets/publication.py only calls them).

Idempotent by construction: a point's identity is (measurement, tags = key columns, timestamp), so writing a
partition again overwrites the same points; the cursor row of the partition is replaced after the write
succeeded (never before, so a failed write leaves the cursor saying what InfluxDB held before)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

import polars as pl

from analytics_pipelines.marts.reconcile import CheckOutcome
from analytics_pipelines.publication.lines import to_lines
from analytics_pipelines.publication.series import PUBLISHERS, Publisher
from analytics_pipelines.publication.writer import WriteReport, masked, write_lines
from analytics_pipelines.registry.context import Markdown
from analytics_pipelines.settings import InfluxSettings
from analytics_pipelines.warehouse.base import Warehouse

NOT_CONFIGURED = "not configured"


@dataclass
class Prepared:
    """The records of a run's partitions, before anything is written."""

    publisher: Publisher
    measurement: str
    lines: list[str] = field(default_factory=list)
    #: one cursor row (without target / time / run) per partition
    partitions: list[dict] = field(default_factory=list)
    source_rows: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


def _key_text(col: str) -> pl.Expr:
    return pl.col(col).cast(pl.String)


def prepare(wh: Warehouse, publisher: Publisher, keys: list[str], precision: str) -> Prepared:
    """The run's partitions of the source as line-protocol records, with per-partition accounting."""
    p = publisher
    out = Prepared(p, p.measurement)
    if not keys or p.source not in wh.tables():
        return out
    df = wh.read_partitions(p.source, p.partition_column, keys[0], keys[-1])
    by_key = df.with_columns(_key_text(p.partition_column).alias("_partition_key")).partition_by(
        "_partition_key", as_dict=True, include_key=False
    )
    for key in keys:
        part = by_key.get((key,), df.clear())
        rows = p.prepare(part) if p.prepare else part
        series = p.series_for(rows)
        out.measurement = series.measurement
        lines, skipped = to_lines(rows, series, precision)
        times = rows[series.time_column] if rows.height else pl.Series([], dtype=pl.Datetime("us", "UTC"))
        digest = hashlib.sha256("\n".join(lines.to_list()).encode()).hexdigest()
        out.lines += lines.to_list()
        out.source_rows += rows.height
        for reason, n in skipped.items():
            out.skipped[reason] = out.skipped.get(reason, 0) + n
        out.partitions.append(
            {
                "publisher": p.name,
                "partition_key": key,
                "measurement": series.measurement,
                "source_rows": rows.height,
                "points": lines.len(),
                "skipped": skipped,
                "first_time": times.min() if rows.height else None,
                "last_time": times.max() if rows.height else None,
                "digest": digest,
            }
        )
    return out


def publish(
    wh: Warehouse,
    publisher: Publisher | str,
    keys: list[str],
    influx: InfluxSettings,
    engine=None,
    run_id: str | None = None,
    now: datetime | None = None,
) -> tuple[dict, Prepared | None]:
    """Publish the partitions `keys` of the publisher's source; (metadata, what was prepared).

    Not configured (no TT_INFLUX_URL): nothing is read or written, the metadata says so. The source table not
    built yet: nothing to publish (said so). InfluxDB down or refusing: PublicationError (the cursor is
    left as it was)."""
    p = PUBLISHERS[publisher] if isinstance(publisher, str) else publisher
    if not influx.url:
        return {
            "status": NOT_CONFIGURED,
            "detail": "TT_INFLUX_URL is not set: nothing published (docs/publication.md)",
            "points": 0,
        }, None
    if p.source not in wh.tables():
        return {
            "status": "source not built",
            "detail": f"{p.source} is not in the warehouse: nothing to publish",
            "points": 0,
        }, None
    prepared = prepare(wh, p, keys, influx.precision)
    report: WriteReport = write_lines(influx, prepared.lines)
    target = f"{masked(influx.url)}#{influx.bucket}"
    if engine is not None:
        from analytics_pipelines.ops import publications

        stamp = now or datetime.now(UTC)
        publications.record(
            engine,
            [
                {**row, "target": target, "published_at": stamp, "run_id": run_id}
                for row in prepared.partitions
            ],
        )
    sample = "\n".join(prepared.lines[:5])
    return {
        "status": "published",
        "target": masked(influx.url),
        "bucket": influx.bucket,
        "org": influx.org,
        "measurement": prepared.measurement,
        "precision": influx.precision,
        "partitions": len(prepared.partitions),
        "source_rows": prepared.source_rows,
        "points": len(prepared.lines),
        "skipped_rows": sum(prepared.skipped.values()),
        "skipped_by_reason": ", ".join(f"{k}: {v}" for k, v in sorted(prepared.skipped.items())) or "none",
        "batches": report.batches_ok,
        "retries": report.retries,
        "sample_points": Markdown(f"```\n{sample}\n```") if sample else "none",
    }, prepared


def check_accounted(prepared: Prepared | None) -> CheckOutcome:
    """Every source row of the run became a point or is counted with its reason."""
    if prepared is None:  # not configured / no source: nothing read, nothing lost
        return CheckOutcome(True, {"source_rows": 0, "points": 0, "published": False})
    accounted = len(prepared.lines) + sum(prepared.skipped.values())
    per_partition = all(
        r["points"] + sum(r["skipped"].values()) == r["source_rows"] for r in prepared.partitions
    )
    return CheckOutcome(
        accounted == prepared.source_rows and per_partition,
        {
            "source_rows": prepared.source_rows,
            "points": len(prepared.lines),
            "skipped_rows": sum(prepared.skipped.values()),
        },
    )


def check_published(ctx, built) -> CheckOutcome:
    """The registry check (BuildContext, Built): see check_accounted."""
    return check_accounted(built.extras.get("prepared"))
