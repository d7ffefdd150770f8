"""Embedded warehouse: Parquet files (one per partition) read through DuckDB."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, unquote

import duckdb
import polars as pl

from analytics_pipelines.warehouse.base import PartitionKey, Warehouse, check_identifier

DATA_FILE = "data.parquet"
#: replaced (new inode) after every write of a table, once its files are in place: a reader polling for
#: changes stats this one file instead of every partition file (warehouse/reader_snapshot.py)
VERSION_FILE = ".tt_version"
_catalog_lock = threading.Lock()
#: zstd level 1: files ~4 % larger than the default level, written ~1.5x faster (measured on fct_orders)
ZSTD_LEVEL = 1
#: partition files are written by this many threads (Parquet encoding releases the GIL); each file is
#: still renamed into place whole, so the atomicity unit stays one partition
WRITE_THREADS = 4


class EmbeddedWarehouse(Warehouse):
    kind = "duckdb"

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()

    def _read(self, table: str, files: list[str], columns: Sequence[str] | None) -> pl.DataFrame:
        return _read_files(files, columns)

    # -- writing -------------------------------------------------------------------------------
    def _partition_dir(self, table: str, by: Sequence[str], key: PartitionKey) -> Path:
        parts = [f"{c}={quote(str(v), safe='')}" for c, v in zip(by, key, strict=True)]
        return self.root.joinpath(table, *parts)

    @staticmethod
    def _atomic_write(df: pl.DataFrame, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
        try:
            df.write_parquet(tmp, compression="zstd", compression_level=ZSTD_LEVEL, statistics=True)
            # rename is atomic: a reader or a killed writer never sees half a file. No fsync: the
            # guarantee is against killed processes, not power loss (a re-run rewrites the partition).
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def _bump_version(self, table: str) -> None:
        marker = self.root / table / VERSION_FILE
        tmp = marker.with_name(f"{VERSION_FILE}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(uuid.uuid4().hex)
        os.replace(tmp, marker)

    def write_partitions(self, table, df, by, keys):
        self._validate(table, df, by, keys)
        created = need_file = not (self.root / table).exists()
        if not by:
            raise ValueError("write_partitions needs partition columns; use replace_table")
        groups = _split(df, by)
        empty = df.clear()
        writes = []
        for key in keys:
            key = tuple(str(v) for v in key)
            target = self._partition_dir(table, by, key) / DATA_FILE
            part = groups.get(key, empty)
            if part.height == 0 and not need_file and not target.exists():
                continue  # no rows before, none now: nothing to replace (most quarantine partitions)
            need_file = False  # a new table gets at least one (possibly empty) file: its schema
            writes.append((part, target))
        if len(writes) > 1:
            with ThreadPoolExecutor(min(WRITE_THREADS, len(writes))) as pool:
                list(pool.map(lambda w: self._atomic_write(*w), writes))  # list(): re-raise any error
        elif writes:
            self._atomic_write(*writes[0])
        if writes:
            self._bump_version(table)
        if created:
            self.refresh_catalog([table])
        return df.height

    def replace_table(self, table, df):
        check_identifier(table)
        new_table = not (self.root / table).exists()
        self._atomic_write(df, self.root / table / DATA_FILE)
        self._bump_version(table)
        if new_table:
            self.refresh_catalog([table])
        return df.height

    def drop_partitions(self, table, column, before):
        """Each partition directory is renamed away (atomic: a reader sees the partition or not) and then
        removed. A table left without files is dropped from the catalog."""
        base = self.root / check_identifier(table)
        prefix = f"{check_identifier(column)}="
        if not base.is_dir():
            return []
        dropped = []
        for d in sorted(base.iterdir()):
            value = unquote(d.name[len(prefix) :])
            if d.is_dir() and d.name.startswith(prefix) and value < before:
                trash = base / f".drop.{uuid.uuid4().hex}"
                os.replace(d, trash)
                shutil.rmtree(trash)
                dropped.append(value)
        if dropped:
            self._bump_version(table)
        if dropped and not self._files(table):
            shutil.rmtree(base)
            self.refresh_catalog()
        return dropped

    # -- reading -------------------------------------------------------------------------------
    def tables(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and not p.name.startswith(".") and next(p.rglob("*.parquet"), None)
        )

    def scan_sql(self, table: str) -> str:
        glob = str(self.root / check_identifier(table) / "**" / "*.parquet").replace("'", "''")
        return f"read_parquet('{glob}', union_by_name=true, hive_partitioning=false)"

    @contextmanager
    def snapshot(self, tables: Sequence[str]) -> Iterator[dict[str, list[str]]]:
        """Hard links to the current file of every partition of `tables`, in a private directory, for the
        duration of one query. A writer replaces a partition by renaming a new file over the old name; a hard
        link keeps pointing at the version it was made from, so one query sees one version of each
        partition even if DuckDB opens a file more than once (it may) while a run rewrites it."""
        snap = self.root / ".snapshots" / uuid.uuid4().hex
        try:
            out: dict[str, list[str]] = {}
            for t in tables:
                links = []
                for i, f in enumerate(self._files(t)):
                    link = snap / t / f"{i:06d}.parquet"
                    link.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        os.link(f, link)
                    except FileNotFoundError:  # dropped by retention between listing and linking
                        continue
                    links.append(str(link))
                if links:
                    out[t] = links
            yield out
        finally:
            shutil.rmtree(snap, ignore_errors=True)

    @staticmethod
    def _scan_files(files: list[str]) -> str:
        quoted = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        return f"read_parquet([{quoted}], union_by_name=true, hive_partitioning=false)"

    def _referenced(self, sql: str | None) -> list[str]:
        words = set(re.findall(r"[a-z_][a-z0-9_]*", sql.lower())) if sql is not None else None
        return [t for t in self.tables() if words is None or t in words]

    @contextmanager
    def connect(self, sql: str | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """An in-memory DuckDB with a view per table (only those `sql` names, when given) over a hard-link
        snapshot of their files: a reader that never locks anything and never mixes file versions."""
        conn = duckdb.connect(":memory:")
        try:
            conn.execute("SET TimeZone='UTC'")
            with self.snapshot(self._referenced(sql)) as snap:
                for t, files in snap.items():
                    conn.execute(f"CREATE VIEW {t} AS SELECT * FROM {self._scan_files(files)}")
                yield conn
        finally:
            conn.close()

    def read(self, sql, params=()):
        sql = sql.replace("%s", "?")
        kinds = {s.type for s in duckdb.extract_statements(sql)}
        if not kinds <= {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}:
            raise PermissionError("the warehouse is read-only here: only SELECT / EXPLAIN statements")
        with self.connect(sql) as conn:
            return conn.execute(sql, list(params)).pl()

    def _files(self, table: str) -> list[str]:
        return sorted(str(p) for p in (self.root / check_identifier(table)).rglob("*.parquet"))

    def read_partitions(self, table, column, first, last, columns=None):
        """Reads only the files of partitions first..last (the directory names say which)."""
        base = self.root / check_identifier(table)
        prefix = f"{check_identifier(column)}="
        files = sorted(
            str(d / DATA_FILE)
            for d in base.iterdir()
            if d.name.startswith(prefix)
            and first <= unquote(d.name[len(prefix) :]) <= last
            and (d / DATA_FILE).exists()
        )
        if not files:
            return self.read_table(table, "FALSE", columns=columns)
        return self._read(table, files, columns)

    def read_table(self, table, where="TRUE", params=(), columns=None):
        if where == "TRUE" and not params:
            # whole table: polars reads Parquet several times faster than a DuckDB round trip
            files = self._files(table)
            if files:
                return self._read(table, files, columns)
        check_identifier(table)
        cols = ", ".join(check_identifier(c) for c in columns) if columns else "*"
        with self.connect(table) as conn:
            if table not in {r[0] for r in conn.execute("SELECT view_name FROM duckdb_views()").fetchall()}:
                raise LookupError(f"warehouse table {table} does not exist under {self.root}")
            return conn.execute(
                f"SELECT {cols} FROM {table} WHERE {where}".replace("%s", "?"), list(params)
            ).pl()

    def location(self) -> str:
        return str(self.root)

    @property
    def catalog_path(self) -> Path:
        return self.root.parent / "warehouse.duckdb"

    def refresh_catalog(self, new_tables: list[str] | None = None) -> Path:
        """(Re)build warehouse.duckdb: views over the Parquet files, for analysts' DuckDB tools.

        With `new_tables`, the existing catalog is copied and only those views are added; otherwise every
        view is recreated. Either way the new catalog is built under a temporary name and renamed into
        place (a reader holding the old file keeps reading and never meets a lock), under an exclusive
        file lock so that concurrent runs adding different tables do not lose each other's views."""
        self.catalog_path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.catalog_path.with_name(".warehouse.catalog.lock")
        with _catalog_lock, open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            tmp = self.catalog_path.with_name(f".warehouse.{uuid.uuid4().hex}.duckdb")
            incremental = new_tables is not None and self.catalog_path.exists()
            if incremental:
                shutil.copyfile(self.catalog_path, tmp)
            conn = duckdb.connect(str(tmp))
            try:
                for t in new_tables if incremental else self.tables():
                    conn.execute(f"CREATE OR REPLACE VIEW {t} AS SELECT * FROM {self.scan_sql(t)}")
                conn.execute("CHECKPOINT")
            finally:
                conn.close()
            os.replace(tmp, self.catalog_path)
            Path(str(tmp) + ".wal").unlink(missing_ok=True)
        return self.catalog_path


def _split(df: pl.DataFrame, by: Sequence[str]) -> dict[tuple[str, ...], pl.DataFrame]:
    """The rows of each partition, keyed by the partition values as polars renders them as text (a
    timestamp key is '2025-11-21 00:00:00.000000'). When each partition's rows are contiguous (a frame
    sorted by the partition columns: every daily mart) they are zero-copy slices; otherwise partition_by."""
    if df.height == 0:
        return {}
    spans = (
        df.select(by)
        .with_row_index("__tt_row")
        .group_by(list(by), maintain_order=True)
        .agg(
            pl.col("__tt_row").min().alias("start"),
            pl.col("__tt_row").max().alias("stop"),
            pl.len().alias("n"),
        )
    )
    text = spans.select(pl.col(c).cast(pl.String) for c in by).rows()
    if (spans["stop"] - spans["start"] + 1 == spans["n"]).all():
        return {k: df.slice(a, n) for k, a, n in zip(text, spans["start"], spans["n"], strict=True)}
    tags = [f"__tt_key{i}" for i in range(len(by))]
    tagged = df.with_columns(pl.col(c).cast(pl.String).alias(t) for c, t in zip(by, tags, strict=True))
    return {
        tuple(k): g.drop(tags)
        for k, g in tagged.partition_by(tags, as_dict=True, maintain_order=True).items()
    }


def _read_files(files: list[str], columns: Sequence[str] | None) -> pl.DataFrame:
    """Many partition files at once: one multi-file scan reads them in parallel (4x faster than a loop over
    750 daily files); files written before a column was added fall back to a per-file diagonal concat."""
    cols = list(columns) if columns else None
    try:
        lf = pl.scan_parquet(files)
        return (lf.select(cols) if cols else lf).collect()
    except (pl.exceptions.SchemaError, pl.exceptions.ColumnNotFoundError):
        return _concat([pl.read_parquet(f, columns=cols, allow_missing_columns=True) for f in files])


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Partition files of one table; an added column (schema growth) is null in older files."""
    first = frames[0].schema
    if all(f.schema == first for f in frames):
        return pl.concat(frames, how="vertical", rechunk=False)
    return pl.concat(frames, how="diagonal_relaxed", rechunk=False)
