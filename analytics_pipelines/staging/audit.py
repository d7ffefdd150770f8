"""The ingestion audit: every source row accounted for (source = raw + unplaceable, raw = staged + rejected),
per table, recounting only the days a run wrote (the `ingestion_audit` asset in assets/ingestion.py)."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from analytics_pipelines.source import contract
from analytics_pipelines.source.db import SourceDB, duck_utc_wall_clock
from analytics_pipelines.staging.checks import rows_per_partition
from analytics_pipelines.staging.ingestion import LEDGER_TABLE, UNPLACEABLE, raw_table, stg_table
from analytics_pipelines.warehouse import Warehouse

#: one row per (fact table, day) audited: source, raw and staged rows of that day and the ledger's figures
#: as they were when it was counted. A run recounts only its own days (and those the ledger shows changed
#: since), so one new day does not re-read all history; the table keeps the whole-source picture.
AUDIT_DAYS_TABLE = "ingestion_audit_days"
AUDIT_DAYS_SCHEMA = {
    "source_table": pl.String,
    "day": pl.String,
    "ingested": pl.Boolean,
    "source_rows": pl.Int64,
    "raw_rows": pl.Int64,
    "stg_rows": pl.Int64,
    "rows_in": pl.Int64,
    "rows_out": pl.Int64,
    "rows_rejected": pl.Int64,
    "rows_repaired": pl.Int64,
}
_LEDGER_FIGURES = ["rows_in", "rows_out", "rows_rejected", "rows_repaired"]


def source_counts(
    source: SourceDB, landing: bool, windows: dict[str, list[tuple[str, str]]]
) -> tuple[dict[str, int], dict[str, pl.DataFrame]]:
    """In ONE source query (one connection): every table's row count, and for each fact table of `windows`
    its rows per partition day over those (first, last) windows only: ({table: n}, {table: (day, n)})."""
    text = "text" if source.dialect == "postgres" else "VARCHAR"
    parts = [
        f"SELECT CAST('{t}' AS {text}) AS t, CAST(NULL AS {text}) AS day, count(*) AS n FROM {t}"
        for t in contract.tables()
    ]
    params: list = []
    for t, spans in windows.items():
        expr = source.partition_expr(t, landing)
        for first, last in spans:
            end = date.fromisoformat(last) + timedelta(days=1)
            where, p = source.window_predicate(t, landing, date.fromisoformat(first), end)
            if source.dialect == "duckdb" and not landing:
                # a typed DuckDB source: the UTC day of each timestamp as a DATE (duck_utc_wall_clock),
                # printed once per group. Printing every row's timestamp as text first cost 1.84 s for
                # `large`'s 10.5M tickets; this takes 0.08 s. (The window keeps the infinities out.)
                parts.append(
                    f"SELECT CAST('{t}' AS {text}) AS t, CAST(d AS {text}) AS day, n FROM "
                    f"(SELECT CAST({duck_utc_wall_clock(expr)} AS DATE) AS d, count(*) AS n "
                    f"FROM {t} WHERE {where} GROUP BY 1)"
                )
            else:
                day = f"substr(CAST({expr} AS {text}), 1, 10)"
                parts.append(
                    f"SELECT CAST('{t}' AS {text}) AS t, {day} AS day, count(*) AS n FROM {t} WHERE {where} "
                    "GROUP BY 2"
                )
            params += p
    got = source.query(" UNION ALL ".join(parts), params).cast(
        {"t": pl.String, "day": pl.String, "n": pl.Int64}
    )
    totals = dict(got.filter(pl.col("day").is_null()).select("t", "n").iter_rows())
    days = got.filter(pl.col("day").is_not_null())
    by_day = {t: days.filter(pl.col("t") == t).select("day", "n") for t in windows}
    return {t: int(n) for t, n in totals.items()}, by_day


def _contiguous(days: list[str]) -> list[tuple[str, str]]:
    """Sorted ISO days as (first, last) runs of consecutive days."""
    out: list[tuple[str, str]] = []
    for d in sorted(set(days)):
        if out and date.fromisoformat(d) - date.fromisoformat(out[-1][1]) == timedelta(days=1):
            out[-1] = (out[-1][0], d)
        else:
            out.append((d, d))
    return out


def audit_days(
    warehouse: Warehouse,
    table: str,
    days: list[str],
    ledger: pl.DataFrame,
    source_by_day: pl.DataFrame,
    have: set[str],
) -> pl.DataFrame:
    """The audit rows (AUDIT_DAYS_SCHEMA) of `days` of one fact table: the source's rows of those days
    (`source_by_day`, from source_counts: a GROUP BY over the windows of those days, not the whole table),
    the raw and staged rows of those partitions (their files only) and the ledger's figures."""
    src, raw, stg = [source_by_day], [], []
    empty = pl.DataFrame(schema={"day": pl.String, "n": pl.Int64})
    for first, last in _contiguous(days):
        for name, out in ((raw_table(table), raw), (stg_table(table), stg)):
            out.append(rows_per_partition(warehouse, name, first, last) if name in have else empty)
    raw, stg = raw or [empty], stg or [empty]
    led = ledger.filter(pl.col("source_table") == table).select(
        pl.col("partition").alias("day"), *[pl.col(c).cast(pl.Int64) for c in _LEDGER_FIGURES]
    )
    frame = pl.DataFrame({"day": sorted(set(days))}, schema={"day": pl.String})
    out = (
        frame.join(pl.concat(src).rename({"n": "source_rows"}), on="day", how="left")
        .join(pl.concat(raw).rename({"n": "raw_rows"}), on="day", how="left")
        .join(pl.concat(stg).rename({"n": "stg_rows"}), on="day", how="left")
        .join(led.with_columns(pl.lit(True).alias("ingested")), on="day", how="left")
        .with_columns(pl.lit(table).alias("source_table"))
        .fill_null(0)
        .with_columns(pl.col("ingested").cast(pl.Boolean).fill_null(False))
    )
    return out.select(list(AUDIT_DAYS_SCHEMA)).cast(AUDIT_DAYS_SCHEMA)


def days_to_audit(
    run_days: list[str] | None, ledger: pl.DataFrame, audited: pl.DataFrame
) -> dict[str, list[str]]:
    """Per fact table, the days to recount: the run's days, plus every ingested day whose audit row is
    missing or whose ledger figures changed since it was counted (another run re-staged it), plus the
    audited days not ingested yet (cheap, rare). `run_days` None: every ingested day (a full recount)."""
    led = ledger.filter(pl.col("partition") != UNPLACEABLE).select(
        "source_table", pl.col("partition").alias("day"), *[pl.col(c).cast(pl.Int64) for c in _LEDGER_FIGURES]
    )
    if run_days is None:
        extra, base = led.select("source_table", "day"), []
    else:
        stale = led.join(
            audited.filter("ingested"), on=["source_table", "day", *_LEDGER_FIGURES], how="anti"
        ).select("source_table", "day")
        pending = audited.filter(~pl.col("ingested")).select("source_table", "day")
        extra, base = pl.concat([stale, pending]), run_days
    listed = dict(extra.group_by("source_table").agg("day").iter_rows())
    return {t: sorted(set(base) | set(listed.get(t, []))) for t in contract.fact_tables()}


def audit(source: SourceDB, warehouse: Warehouse, run_days: list[str] | None = None) -> pl.DataFrame:
    """Per source table, is every source row accounted for? Writes the per-day audit (AUDIT_DAYS_TABLE) and
    returns the per-table summary.

    - dimensions (recounted whole: snapshots): source rows = raw rows = staged + rejected;
    - facts, per ingested partition (has a ledger row): source rows of that day = raw rows = staged +
      rejected; plus the unplaceable rows. Only `run_days` (and the days days_to_audit adds) are recounted;
      the other days keep their audit rows (the source-change sensor re-runs a day whose source rows
      changed, and with it its audit). `run_days` None recounts every ingested day. Source rows of days not
      ingested yet are reported as `rows_not_ingested` (source total - ingested days - unplaceable; a
      partial backfill is not a loss).
    `balanced` is false only where rows were lost or duplicated."""
    ledger = warehouse.read_table(LEDGER_TABLE).with_columns(pl.col("partition").cast(pl.String))
    have = set(warehouse.tables())
    previous = (
        warehouse.read_table(AUDIT_DAYS_TABLE).cast(AUDIT_DAYS_SCHEMA)
        if AUDIT_DAYS_TABLE in have and run_days is not None
        else pl.DataFrame(schema=AUDIT_DAYS_SCHEMA)
    )
    redo = days_to_audit(run_days, ledger, previous)
    empty_ledger, empty_days = ledger.clear(), previous.clear()
    ledgers = ledger.partition_by("source_table", as_dict=True)
    audited = previous.partition_by("source_table", as_dict=True)
    with source.held():  # its two queries on one loaded embedded source
        totals, by_day = source_counts(
            source, source.is_landing(), {t: _contiguous(d) for t, d in redo.items()}
        )
    keep, fresh, rows = [], [], []
    for table in contract.tables():
        spec = contract.table(table)
        led = ledgers.get((table,), empty_ledger)
        unplaceable = int(led.filter(pl.col("partition") == UNPLACEABLE)["rows_in"].sum())
        source_rows = totals[table]
        if spec.partitioned:
            new = audit_days(warehouse, table, redo[table], led, by_day[table], have)
            old = audited.get((table,), empty_days).filter(~pl.col("day").is_in(redo[table]))
            keep.append(old)
            fresh.append(new)
            days = pl.concat([old, new])
            ingested = days.filter("ingested")
            raw_n, stg_n = int(days["raw_rows"].sum()), int(days["stg_rows"].sum())
            mismatched = int((ingested["source_rows"] - ingested["rows_in"]).abs().sum())
            source_ingested = int(ingested["source_rows"].sum())
            not_ingested = source_rows - source_ingested - unplaceable
        else:
            raw_n = warehouse.count(raw_table(table)) if raw_table(table) in have else 0
            stg_n = warehouse.count(stg_table(table)) if stg_table(table) in have else 0
            source_ingested = source_rows
            mismatched = abs(source_ingested - raw_n)
            not_ingested = 0
        rows.append(
            {
                "source_table": table,
                "source_rows": source_rows,
                "source_rows_ingested": source_ingested,
                "rows_not_ingested": max(not_ingested, 0),
                "unplaceable": unplaceable,
                "raw_rows": raw_n,
                "stg_rows": stg_n,
                "rows_in": int(led["rows_in"].sum()),
                "rows_out": int(led["rows_out"].sum()),
                "rows_rejected": int(led["rows_rejected"].sum()),
                "rows_repaired": int(led["rows_repaired"].sum()),
                "rows_mismatched": mismatched,
            }
        )
    warehouse.replace_table(
        AUDIT_DAYS_TABLE, pl.concat([*keep, *fresh]).sort("source_table", "day").cast(AUDIT_DAYS_SCHEMA)
    )
    out = pl.DataFrame(rows)
    return out.with_columns(
        (
            (pl.col("rows_mismatched") == 0)
            & (pl.col("raw_rows") + pl.col("unplaceable") == pl.col("rows_in"))
            & (pl.col("rows_in") == pl.col("rows_out") + pl.col("rows_rejected"))
            & (pl.col("rows_out") == pl.col("stg_rows"))
        ).alias("balanced")
    )
