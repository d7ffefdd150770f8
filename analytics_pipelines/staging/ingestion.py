"""Ingestion steps (source -> raw -> staging), as plain functions over a SourceDB and a Warehouse.

The Dagster assets in analytics_pipelines/assets/ingestion.py are thin wrappers around these; tests call
them directly. Table names in the warehouse: raw_<table>, stg_<table>, plus the shared `quarantine` and
`ingestion_ledger` tables (partitioned by source_table and partition).
"""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import polars as pl

from analytics_pipelines import privacy
from analytics_pipelines.source import contract
from analytics_pipelines.source.db import SourceDB
from analytics_pipelines.staging import reasons as R
from analytics_pipelines.staging.normalize import LEDGER_SCHEMA, PARTITION, QUARANTINE_SCHEMA, SNAPSHOT, stage
from analytics_pipelines.warehouse import Warehouse

UNPLACEABLE = "__unplaceable__"
QUARANTINE_TABLE = "quarantine"
LEDGER_TABLE = "ingestion_ledger"
#: personal data is keyed on landing (HMAC-SHA256, TT_LANDING_PSEUDONYM_KEY; analytics_pipelines/privacy.py):
#: raw keeps the pseudonyms and the key's id (column pseudonym_key_id), staging drops the users' columns
PII_COLUMNS = privacy.PERSONAL_COLUMNS
#: facts are extracted and staged in chunks of this many days to bound memory on big backfills. Each chunk
#: is one scan of the source table (its partition timestamp is a COALESCE no index serves): at `large`,
#: tickets from PostgreSQL took 93 s in 31-day chunks, 55 s in 92-day chunks (peak 3.0 GB), 42 s in
#: 183-day chunks (peak 5.2 GB)
CHUNK_DAYS = 92


def raw_table(table: str) -> str:
    return f"raw_{table}"


def stg_table(table: str) -> str:
    return f"stg_{table}"


def _pseudonymize(df: pl.DataFrame, table: str, key: bytes | None) -> pl.DataFrame:
    """The table's personal columns keyed (vectorized, through DuckDB); `key` from privacy.landing_key_for,
    looked up before the extract so that a missing key refuses before any personal data is read."""
    return privacy.pseudonymize_landing(df, table, key)


def partition_timestamp(table: str) -> pl.Expr:
    """The raw (text) timestamp that places a fact row in a partition: the first non-blank of the
    contract's partition_time columns. Its first 10 characters are the UTC day."""
    return pl.coalesce(
        [
            pl.when(pl.col(c).str.strip_chars() != "").then(pl.col(c))
            for c in contract.table(table).partition_time
        ]
    )


def _write_quarantine_and_ledger(
    warehouse: Warehouse, quarantine: pl.DataFrame, ledger: pl.DataFrame, keys: list[tuple[str, str]]
) -> None:
    warehouse.write_partitions(QUARANTINE_TABLE, quarantine, ["source_table", "partition"], keys)
    warehouse.write_partitions(LEDGER_TABLE, ledger, ["source_table", "partition"], keys)


def day_range(first: str, last: str) -> list[str]:
    """Inclusive list of ISO days."""
    d0, d1 = date.fromisoformat(first), date.fromisoformat(last)
    return [(d0 + timedelta(days=i)).isoformat() for i in range((d1 - d0).days + 1)]


@dataclass
class IngestStats:
    rows: int = 0
    per_partition: dict[str, int] = field(default_factory=dict)

    @property
    def empty_partitions(self) -> list[str]:
        return [p for p, n in self.per_partition.items() if n == 0]


# ---- source -> raw ----------------------------------------------------------------------------------
def ingest_raw_facts(
    source: SourceDB, warehouse: Warehouse, table: str, days: list[str], landing: bool | None = None
) -> IngestStats:
    """Copy the source rows of `table` whose partition timestamp falls on `days` into raw_<table>.

    Each day is replaced whole (idempotent); days without rows are written empty."""
    landing = source.is_landing() if landing is None else landing
    key = privacy.landing_key_for(table)
    stats = IngestStats()
    for i in range(0, len(days), CHUNK_DAYS):
        chunk = days[i : i + CHUNK_DAYS]
        start, end = date.fromisoformat(chunk[0]), date.fromisoformat(chunk[-1]) + timedelta(days=1)
        where, params = source.window_predicate(table, landing, start, end)
        df = source.extract_text(table, where, params)
        df = _pseudonymize(df, table, key)
        df = df.with_columns(partition_timestamp(table).str.slice(0, 10).alias(PARTITION))
        warehouse.write_partitions(raw_table(table), df, [PARTITION], [(d,) for d in chunk])
        counts = dict(df.group_by(PARTITION).len().iter_rows())
        for d in chunk:
            stats.per_partition[d] = counts.get(d, 0)
        stats.rows += df.height
    return stats


def ingest_raw_dimension(source: SourceDB, warehouse: Warehouse, table: str) -> IngestStats:
    """Snapshot a dimension table into raw_<table> (replaced whole)."""
    key = privacy.landing_key_for(table)
    df = _pseudonymize(source.extract_text(table, "TRUE"), table, key)
    df = df.with_columns(pl.lit(SNAPSHOT).alias(PARTITION))
    warehouse.replace_table(raw_table(table), df)
    return IngestStats(rows=df.height, per_partition={SNAPSHOT: df.height})


# ---- raw -> staging ----------------------------------------------------------------------------------
#: above this many distinct keys, sending them for a semi-join (Warehouse.read_values) costs more than it
#: saves (a long backfill, a full refresh): staging then reads a parent's whole key column, once per run,
#: and the staging checks (checks.py) check the whole table (same verdicts). One day of scans names ~30k
#: of `large`'s 10M tickets.
SEMI_JOIN_LIMIT = 200_000


def _parents(table: str) -> list[tuple[str, str, list[str], list[str]]]:
    """(name in refs, parent table, its columns read, the columns of `table` naming its id)."""
    spec = contract.table(table)
    out = [
        (parent, parent, ["id"], [c for c, p in spec.references.items() if p == parent])
        for parent in sorted(set(spec.references.values()))
    ]
    if table == "order_items":
        out.append(("ticket_type_prices", "ticket_types", ["id", "price_cents"], ["ticket_type_id"]))
    return out


def parent_refs(
    warehouse: Warehouse, table: str, raw: pl.DataFrame | None = None, whole: dict | None = None
) -> dict[str, pl.DataFrame]:
    """The keys of every parent staging table that `table` references (for order_items also the ticket
    types' prices), as normalize.stage's orphan checks take them.

    With `raw` (the rows about to be staged): of each parent only the rows whose id one of them names, as
    staging reads a reference (a UUID lowercased; anything else is malformed and looked up nowhere), when
    they name at most SEMI_JOIN_LIMIT: the checks then find exactly what they would in the whole table.
    Otherwise the parent's whole key column, read once per `whole` (a cache the caller keeps across
    chunks)."""
    whole = {} if whole is None else whole
    have = set(warehouse.tables()) if raw is not None else set()
    out = {}
    for name, parent, columns, naming in _parents(table):
        values = None
        if raw is not None and stg_table(parent) in have:
            named = pl.concat([raw[c].cast(pl.String) for c in naming])
            values = named.drop_nulls().str.to_lowercase().unique()
            values = values if values.len() <= SEMI_JOIN_LIMIT else None
        if values is None:
            if name not in whole:
                whole[name] = warehouse.read_table(stg_table(parent), columns=columns)
            out[name] = whole[name]
            continue
        got = warehouse.read_values(
            f"SELECT {', '.join(columns)} FROM {stg_table(parent)} p "
            f"WHERE CAST(p.id AS text) IN (SELECT v FROM {{keys}} k)",
            {"keys": values.to_list()},
        )
        out[name] = got.cast(
            {"id": pl.String, **({"price_cents": pl.Int64} if "price_cents" in columns else {})}
        )
    return out


@dataclass
class StageSummary:
    """What a staging run reports: a preview of staged rows, its quarantine rows and ledger."""

    preview: pl.DataFrame
    quarantine: pl.DataFrame
    ledger: pl.DataFrame

    @property
    def rows_out(self) -> int:
        return int(self.ledger["rows_out"].sum())


def stage_partitions(
    warehouse: Warehouse, table: str, partitions: list[str], now: datetime | None = None
) -> StageSummary:
    """Stage the raw rows of `partitions` of `table` and write stg_<table>, quarantine and the ledger.

    Facts are staged CHUNK_DAYS partitions at a time (deduplication is per partition, so chunking does not
    change the result; it bounds memory on long backfills)."""
    spec = contract.table(table)
    whole: dict[str, pl.DataFrame] = {}
    chunks = (
        [partitions[i : i + CHUNK_DAYS] for i in range(0, len(partitions), CHUNK_DAYS)]
        if spec.partitioned
        else [partitions]
    )
    preview, quarantine, ledger = None, [], []
    for chunk in chunks:
        if spec.partitioned:
            raw = warehouse.read_partitions(raw_table(table), PARTITION, chunk[0], chunk[-1])
            raw = raw.filter(pl.col(PARTITION).is_in(chunk))
        else:
            raw = warehouse.read_table(raw_table(table))
        # a run of one chunk (a day, a short range) reads of each parent the keys it names; a run of several
        # reads each parent's key column once for all of them, not a semi-join over it per chunk (at
        # `large`, order_refunds' 9 chunks against the 4.5M orders: 5.4 -> 2.4 s)
        refs = parent_refs(warehouse, table, raw if len(chunks) == 1 else None, whole)
        result = stage(table, raw, refs=refs, now=now, partitions=chunk)
        keys = [(table, p) for p in chunk]
        # quarantine and ledger first: if the run dies after them, the staging table still holds the last
        # good data and the next run rewrites all three
        _write_quarantine_and_ledger(warehouse, result.quarantine, result.ledger, keys)
        if spec.partitioned:
            warehouse.write_partitions(stg_table(table), result.clean, [PARTITION], [(p,) for p in chunk])
        else:
            warehouse.replace_table(stg_table(table), result.clean)
        if preview is None or (preview.height == 0 and result.clean.height):
            preview = result.clean.head(5)
        quarantine.append(result.quarantine)
        ledger.append(result.ledger)
    return StageSummary(preview=preview, quarantine=pl.concat(quarantine), ledger=pl.concat(ledger))


# ---- rows no partition can hold -----------------------------------------------------------------------
def collect_unplaceable(
    source: SourceDB, warehouse: Warehouse, first_day: str, last_day: str, landing: bool | None = None
) -> dict[str, int]:
    """Quarantine the fact rows whose partition timestamp is missing, garbled or outside the partitions
    [first_day, last_day]: no daily partition will ever extract them, so without this they would vanish."""
    landing = source.is_landing() if landing is None else landing
    start, end = date.fromisoformat(first_day), date.fromisoformat(last_day) + timedelta(days=1)
    counts: dict[str, int] = {}
    for table in contract.fact_tables():
        spec = contract.table(table)
        where, params = source.unplaceable_predicate(table, landing, start, end)
        df = _pseudonymize(source.extract_text(table, where, params), table, privacy.landing_key_for(table))
        part = partition_timestamp(table)
        day = part.str.slice(0, 10)
        reason = (
            pl.when(part.is_null())
            .then(pl.lit(R.MISSING_PARTITION_TIMESTAMP))
            .when(day >= end.isoformat())
            .then(pl.lit(R.FUTURE_TIMESTAMP))
            .otherwise(pl.lit(R.MISSING_PARTITION_TIMESTAMP))
        )
        detail = pl.format(
            "partition timestamp {} = '{}' places the row in no partition",
            pl.lit("coalesce(" + ", ".join(spec.partition_time) + ")"),
            part.fill_null("NULL"),
        )
        q = df.select(
            pl.lit(table).alias("source_table"),
            pl.lit(UNPLACEABLE).alias("partition"),
            pl.col(spec.key).alias("source_key"),
            reason.alias("reason_code"),
            detail.alias("reason_detail"),
            pl.lit("rejected").alias("disposition"),
            pl.struct(spec.column_names).struct.json_encode().alias("raw_payload"),
        ).cast(QUARANTINE_SCHEMA)
        ledger = pl.DataFrame(
            [
                {
                    "source_table": table,
                    "partition": UNPLACEABLE,
                    "rows_in": df.height,
                    "rows_out": 0,
                    "rows_rejected": df.height,
                    "rows_repaired": 0,
                }
            ],
            schema=LEDGER_SCHEMA,
        )
        _write_quarantine_and_ledger(warehouse, q, ledger, [(table, UNPLACEABLE)])
        counts[table] = df.height
    return counts


def in_dependency_order(tables: list[str], parents: dict[str, set[str]], fn, workers: int = 2) -> None:
    """Call fn(table) for every table, up to `workers` at a time, each only after fn has returned for all
    of its parents (those among `tables`). The first error is re-raised once the running calls end."""
    done: set[str] = set()
    pending = list(tables)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        running: dict = {}
        while pending or running:
            for t in [t for t in pending if (parents.get(t, set()) & set(tables)) <= done]:
                if len(running) >= workers:
                    break
                pending.remove(t)
                running[pool.submit(fn, t)] = t
            if not running:
                raise ValueError(f"dependency cycle among {pending}")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in finished:
                f.result()  # re-raises; the with-block waits for the others
                done.add(running.pop(f))


def ingest_raw_all(
    source: SourceDB, warehouse: Warehouse, first_day: str, last_day: str, workers: int = 2, log=None
) -> None:
    """Source -> raw for every table over [first_day, last_day] (`workers` tables at a time, the biggest
    first), then the rows no partition can hold. `log(table, rows, seconds)` hears of each table. An embedded
    source is held open throughout (SourceDB.held: the Dagster assets have SourceResource hold it)."""
    days = day_range(first_day, last_day)

    def raw(table: str) -> None:
        t = time.perf_counter()
        stats = (
            ingest_raw_facts(source, warehouse, table, days, landing=landing)
            if contract.table(table).partitioned
            else ingest_raw_dimension(source, warehouse, table)
        )
        if log:
            log(table, stats.rows, time.perf_counter() - t)

    with source.held():
        landing = source.is_landing()
        in_dependency_order([*contract.fact_tables(), *contract.dimension_tables()], {}, raw, workers)
        collect_unplaceable(source, warehouse, first_day, last_day, landing=landing)


def stage_all(
    warehouse: Warehouse,
    first_day: str,
    last_day: str,
    now: datetime | None = None,
    workers: int = 2,
    log=None,
) -> None:
    """Raw -> staging for every table, `workers` at a time, each after the parents its orphan checks read."""
    days = day_range(first_day, last_day)
    parents = {
        t: set(contract.table(t).references.values()) | ({"ticket_types"} if t == "order_items" else set())
        for t in contract.tables()
    }

    def staged(table: str) -> None:
        t = time.perf_counter()
        res = stage_partitions(
            warehouse, table, days if contract.table(table).partitioned else [SNAPSHOT], now=now
        )
        if log:
            log(table, res.rows_out, time.perf_counter() - t)

    in_dependency_order(list(contract.tables()), parents, staged, workers)
