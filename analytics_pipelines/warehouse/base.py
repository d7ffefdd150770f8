"""Warehouse interface shared by both backends.

Writers replace whole partitions atomically; readers always see the last committed data:
- embedded (default): every partition is one Parquet file, written to a temporary name and renamed into
  place (rename is atomic on POSIX). Readers query the files through an in-memory DuckDB, so no process
  ever holds a lock that a reader or another writer could trip over -- the single-writer lock of a
  DuckDB database file is exactly what this design avoids. `warehouse.duckdb` is a catalog of views over
  the files for analysts' own DuckDB tools; it is rebuilt under a temporary name and renamed too.
- postgres: a partition is replaced by DELETE + COPY inside one transaction; MVCC gives readers the last
  committed version without blocking.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence

import polars as pl

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
PartitionKey = tuple[str, ...]
#: how Warehouse.read_values' SQL names a relation of keys: `{keys}` (lower-case identifier in braces)
VALUES_NAME = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


def check_identifier(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"not a safe table/column name: {name!r}")
    return name


class Warehouse(ABC):
    """Where every layer (raw, staging, marts, quarantine) is written and read."""

    kind: str  # "duckdb" or "postgres"

    @abstractmethod
    def write_partitions(
        self, table: str, df: pl.DataFrame, by: Sequence[str], keys: Sequence[PartitionKey]
    ) -> int:
        """Replace the partitions `keys` (values of the columns `by`) of `table` with the rows of `df`.

        Every key in `keys` is replaced, also those with no rows in `df` (an empty day stays empty, and a
        re-run never duplicates). Rows of `df` must belong to one of `keys`."""

    @abstractmethod
    def replace_table(self, table: str, df: pl.DataFrame) -> int:
        """Replace a whole (unpartitioned) table atomically."""

    @abstractmethod
    def read(self, sql: str, params: Sequence = ()) -> pl.DataFrame:
        """Run a read-only query in the backend's own dialect (%s placeholders)."""

    def read_values(self, sql: str, values: dict[str, Sequence[str]]) -> pl.DataFrame:
        """Run a read-only query in which each `{name}` of `values` stands for a one-column relation (column
        `v`, text) of those values, used with an alias (`FROM {keys} k`): the keys of a semi-join, sent
        once. Here a list parameter bound as one array (PostgreSQL); the embedded backend registers
        in-memory relations instead (a DuckDB list parameter is planned as a constant: binding 28k keys
        took ~2 s at `large`, the join itself 0.4 s)."""
        params: list[list[str]] = []

        def relation(m: re.Match) -> str:
            params.append([str(v) for v in values[m.group(1)]])
            return "(SELECT unnest(CAST(%s AS text[])) AS v)"

        return self.read(VALUES_NAME.sub(relation, sql), params)

    @abstractmethod
    def read_table(
        self, table: str, where: str = "TRUE", params: Sequence = (), columns: Sequence[str] | None = None
    ) -> pl.DataFrame:
        """Rows of one table as a typed polars frame (empty frame with the schema when none match)."""

    def read_partitions(
        self, table: str, column: str, first: str, last: str, columns: Sequence[str] | None = None
    ) -> pl.DataFrame:
        """Rows (only `columns`, when given) of the partitions first..last (inclusive, compared as text) of a
        table partitioned by `column`. Backends may read only those partitions' storage."""
        return self.read_table(
            table, f"{check_identifier(column)} >= %s AND {column} <= %s", [first, last], columns=columns
        )

    @abstractmethod
    def drop_partitions(self, table: str, column: str, before: str) -> list[str]:
        """Delete the partitions of `table` (partitioned by `column`) whose value, as text, sorts before
        `before` (e.g. '2025-11-22': every day or hour before that date). Retention only: returns the
        partition values dropped (as text); a missing table drops nothing."""

    @abstractmethod
    def tables(self) -> list[str]:
        """Tables that exist."""

    @abstractmethod
    def location(self) -> str:
        """Where the data lives, for humans."""

    def count(self, table: str, where: str = "TRUE", params: Sequence = ()) -> int:
        check_identifier(table)
        return int(self.read(f"SELECT count(*) AS n FROM {table} WHERE {where}", params)["n"][0])

    @staticmethod
    def _validate(table: str, df: pl.DataFrame, by: Sequence[str], keys: Sequence[PartitionKey]) -> None:
        check_identifier(table)
        for c in (*df.columns, *by):
            check_identifier(c)
        missing = [c for c in by if c not in df.columns]
        if missing:
            raise ValueError(f"{table}: partition columns {missing} are not in the frame")
        if df.height and by:
            wanted = pl.DataFrame([list(k) for k in keys], schema={c: pl.String for c in by}, orient="row")
            # distinct values first, then as text: a few hundred casts instead of one per row
            present = df.select(by).unique().select([pl.col(c).cast(pl.String) for c in by]).unique()
            stray = present.join(wanted, on=list(by), how="anti")
            if stray.height:
                raise ValueError(f"{table}: rows for partitions outside the write: {stray.head(5).rows()}")
