"""Which daily partitions changed in the source since a watermark (plain functions for the sensor).

A fact row's *change time* is the greatest of its modification timestamps (updated_at, created_at and the
lifecycle stamps such as confirmed_at, cancelled_at, completed_at, scanned_at); its *partition* is the UTC
day of the table's partition timestamp. Rows whose change time is after the cursor name the days to
re-run -- a late-arriving row for an old day (an offline scan synced today, an order updated today) names
that old day. Change times in the future (bad clocks, dirty rows) are ignored until they are past, so one
bad row cannot push the watermark beyond every real change.

Limit: a row inserted late with *all* its timestamps in the past (a table with no updated_at/created_at
separate from its event time: order_items, ticket_price_history, platform_fees) is invisible to a
watermark; the nightly full daily run (yesterday + today) and backfills cover it.
"""

from collections.abc import Iterable
from datetime import UTC, date, datetime

import polars as pl

from analytics_pipelines.source import contract
from analytics_pipelines.source.db import SourceDB

#: timestamps that are not modification times (they lie in the future by design)
NOT_CHANGES = {"expires_at", "starts_at", "ends_at", "doors_open_at"}


def fact_tables() -> list[str]:
    return [n for n, s in contract.tables().items() if s.partitioned]


def change_columns(table: str) -> list[str]:
    spec = contract.table(table)
    return [c for c in spec.timestamp_columns if c not in NOT_CHANGES]


def _exprs(db: SourceDB, table: str, landing: bool) -> tuple[str, str]:
    cols = change_columns(table)
    if landing:  # text columns: ISO text compares like the timestamps it spells
        change = "GREATEST(" + ", ".join(f"NULLIF({c}, '')" for c in cols) + ")"
        day = f"substr({db.partition_expr(table, landing=True)}, 1, 10)"
    else:
        change = "GREATEST(" + ", ".join(cols) + ")"
        day = f"CAST({db.partition_expr(table, landing=False)} AS DATE)"
    return change, day


def _param(value: str, landing: bool):
    return value if landing else datetime.fromisoformat(value)


def _now_param(now: datetime, landing: bool):
    now = now.astimezone(UTC)
    return now.strftime("%Y-%m-%d %H:%M:%S+00") if landing else now


def _text(value) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else str(value)


def watermarks(db: SourceDB, now: datetime, tables: Iterable[str] | None = None) -> dict[str, str | None]:
    """The newest change time (<= now) of every fact table, as text (one query)."""
    landing = db.is_landing()
    tables = list(tables or fact_tables())
    parts, params = [], []
    for table in tables:
        change, _ = _exprs(db, table, landing)
        parts.append(
            f"SELECT '{table}' AS t, max(c) AS w FROM (SELECT {change} AS c FROM {table}) x WHERE c <= %s"
        )
        params.append(_now_param(now, landing))
    frame = db.query(" UNION ALL ".join(parts), params)
    found = {t: _text(w) for t, w in frame.iter_rows()}
    return {t: found.get(t) for t in tables}


def changed_partitions(
    db: SourceDB, cursor: dict[str, str | None], now: datetime, first_day: str, last_day: str
) -> tuple[list[str], dict[str, str | None], dict[str, list[str]]]:
    """(days to re-run, the new cursor, days by table). A table missing from `cursor` starts at its current
    watermark (nothing requested for it: a new sensor does not re-run history; use a backfill).
    One query for all tables (one round trip per tick)."""
    landing = db.is_landing()
    new_cursor = dict(cursor)
    fresh = [t for t in fact_tables() if cursor.get(t) is None]
    if fresh:
        new_cursor.update(watermarks(db, now, fresh))
    parts, params = [], []
    for table in fact_tables():
        if table in fresh:
            continue
        change, day = _exprs(db, table, landing)
        parts.append(
            f"SELECT '{table}' AS t, CAST(d AS VARCHAR(32)) AS d, max(c) AS w FROM "
            f"(SELECT {day} AS d, {change} AS c FROM {table}) x WHERE c > %s AND c <= %s GROUP BY d"
        )
        params += [_param(cursor[table], landing), _now_param(now, landing)]
    by_table: dict[str, list[str]] = {}
    if parts:
        frame = db.query(" UNION ALL ".join(parts), params)
        for table, group in frame.group_by("t", maintain_order=True):
            table = table[0]
            new_cursor[table] = max(_text(w) for w in group["w"].to_list())
            changed = sorted(
                {
                    d
                    for d in (_day(v) for v in group["d"].to_list() if v is not None)
                    if d and first_day <= d <= last_day
                }
            )
            if changed:
                by_table[table] = changed
    days = sorted({d for ds in by_table.values() for d in ds})
    return days, new_cursor, by_table


def _day(value) -> str | None:
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    try:
        return date.fromisoformat(text[:10]).isoformat()
    except ValueError:  # a garbled landing timestamp: ingestion quarantines it as unplaceable
        return None


def contiguous_ranges(days: list[str]) -> list[tuple[str, str]]:
    """['2026-01-01', '2026-01-02', '2026-01-05'] -> [('2026-01-01', '2026-01-02'), ('2026-01-05', ...)]."""
    if not days:
        return []
    ds = sorted(date.fromisoformat(d) for d in set(days))
    frame = pl.DataFrame({"d": ds}).with_columns(
        ((pl.col("d") - pl.col("d").shift(1)).dt.total_days().fill_null(1) != 1).cum_sum().alias("g")
    )
    return [
        (g["d"].min().isoformat(), g["d"].max().isoformat())
        for g in frame.partition_by("g", maintain_order=True)
    ]
