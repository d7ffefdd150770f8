"""PostgreSQL warehouse: schema `analytics`; partitions replaced by DELETE + COPY in one transaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import polars as pl
import psycopg
from psycopg import sql as psql

from analytics_pipelines.pgcopy import copy_in, copy_out
from analytics_pipelines.source.db import normalize_pg_url
from analytics_pipelines.warehouse.base import Warehouse, check_identifier

SCHEMA = "analytics"
#: one row per table: a counter bumped in the same transaction as every write, so readers (the API's
#: result cache) can tell cheaply and exactly when a table changed
VERSIONS = "_tt_table_versions"

_PG_TYPES = {
    pl.Int8: "smallint",
    pl.Int16: "smallint",
    pl.Int32: "integer",
    pl.Int64: "bigint",
    pl.UInt8: "smallint",
    pl.UInt16: "integer",
    pl.UInt32: "bigint",
    pl.UInt64: "numeric(20,0)",
    pl.Float32: "real",
    pl.Float64: "double precision",
    pl.Boolean: "boolean",
    pl.String: "text",
    pl.Date: "date",
    pl.Null: "text",
}
_POLARS_TYPES = {
    "smallint": pl.Int16,
    "integer": pl.Int32,
    "bigint": pl.Int64,
    "real": pl.Float32,
    "double precision": pl.Float64,
    "numeric": pl.Float64,
    "boolean": pl.Boolean,
    "text": pl.String,
    "character varying": pl.String,
    "date": pl.Date,
    "jsonb": pl.String,
    "uuid": pl.String,
    "timestamp with time zone": pl.Datetime("us", "UTC"),
    "timestamp without time zone": pl.Datetime("us"),
}


def pg_type(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Datetime):
        return "timestamptz" if dtype.time_zone else "timestamp"
    if isinstance(dtype, pl.Decimal):
        return f"numeric({dtype.precision or 38},{dtype.scale or 0})"
    try:
        return _PG_TYPES[dtype.base_type()]
    except KeyError:
        raise TypeError(f"no PostgreSQL type for polars {dtype}") from None


class PostgresWarehouse(Warehouse):
    kind = "postgres"

    def __init__(self, url: str, schema: str = SCHEMA):
        self.url = normalize_pg_url(url)
        self.schema = check_identifier(schema)

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[psycopg.Connection]:
        with psycopg.connect(self.url) as conn:
            conn.read_only = read_only  # applies to the transaction the next statement opens
            conn.execute("SET TIME ZONE 'UTC'")
            conn.execute(psql.SQL("SET search_path = {}, public").format(psql.Identifier(self.schema)))
            yield conn

    # -- DDL -----------------------------------------------------------------------------------
    def _ensure_table(self, conn: psycopg.Connection, table: str, schema: pl.Schema) -> None:
        """Create the table, or add columns the frame has and the table lacks (additive migration).

        Serialised by an advisory lock so that concurrent runs creating the same table cannot collide."""
        if conn.execute("SELECT to_regclass(%s)", (f'"{self.schema}".{VERSIONS}',)).fetchone()[0] is None:
            # the schema and the write counters are shared by every table: a lock of their own (IF NOT
            # EXISTS alone races: two writers of different tables both try to create the schema)
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.schema,))
            conn.execute(psql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(psql.Identifier(self.schema)))
            conn.execute(
                psql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (table_name text PRIMARY KEY, version bigint "
                    "NOT NULL, changed_at timestamptz NOT NULL)"
                ).format(psql.Identifier(self.schema, VERSIONS))
            )
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{self.schema}.{table}",))
        cols = psql.SQL(", ").join(
            psql.SQL("{} {}").format(psql.Identifier(c), psql.SQL(pg_type(t))) for c, t in schema.items()
        )
        conn.execute(
            psql.SQL("CREATE TABLE IF NOT EXISTS {}.{} ({})").format(
                psql.Identifier(self.schema), psql.Identifier(table), cols
            )
        )
        existing = self._columns(conn, table)
        for c, t in schema.items():
            if c not in existing:
                conn.execute(
                    psql.SQL("ALTER TABLE {}.{} ADD COLUMN IF NOT EXISTS {} {}").format(
                        psql.Identifier(self.schema),
                        psql.Identifier(table),
                        psql.Identifier(c),
                        psql.SQL(pg_type(t)),
                    )
                )

    def _columns(self, conn: psycopg.Connection, table: str) -> dict[str, str]:
        rows = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (self.schema, table),
        ).fetchall()
        return dict(rows)

    def _replace_rows(self, table: str, df: pl.DataFrame, delete: psql.Composable, params=()) -> int:
        """Create/extend the table, then in ONE transaction delete the rows being replaced and COPY the
        new ones in: readers see the old rows or the new, never neither."""
        with self.connect() as conn:
            with conn.transaction():
                self._ensure_table(conn, table, df.schema)
            with conn.transaction():
                conn.execute(delete, params)
                copy_in(conn, psql.Identifier(self.schema, table), df)
                self._bump_version(conn, table)
            self._analyze_if_stale(conn, table, df.height)
        return df.height

    #: a write of at least this share of a table's estimated rows refreshes its planner statistics
    ANALYZE_SHARE = 0.1

    def _analyze_if_stale(self, conn: psycopg.Connection, table: str, written: int) -> None:
        """ANALYZE the table when it has no statistics yet or this write replaced a good share of it.

        Autovacuum analyzes a freshly COPYed table a minute or more later; until then the planner takes
        its row counts for a few and picks nested loops: on medium marts loaded into PostgreSQL, the API's
        customer list (customer_lifetime_value joined to customer_rfm_scores, thousands of rows each side)
        ran for 50+ s per request instead of milliseconds. ANALYZE samples ~30k rows (well under a second)
        and runs after the commit, so it never holds the write's locks."""
        with conn.transaction():
            est = conn.execute(
                "SELECT c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname = %s",
                (self.schema, table),
            ).fetchone()
        if est is None or (est[0] >= 0 and written < self.ANALYZE_SHARE * est[0]):
            return
        with conn.transaction():
            conn.execute(psql.SQL("ANALYZE {}").format(psql.Identifier(self.schema, table)))

    def _bump_version(self, conn: psycopg.Connection, table: str) -> None:
        """Last statement of a write's transaction (so its row lock is held only until the commit)."""
        conn.execute(
            psql.SQL(
                "INSERT INTO {} AS v (table_name, version, changed_at) VALUES (%s, 1, now()) "
                "ON CONFLICT (table_name) DO UPDATE SET version = v.version + 1, changed_at = now()"
            ).format(psql.Identifier(self.schema, VERSIONS)),
            (table,),
        )

    # -- writing -------------------------------------------------------------------------------
    def write_partitions(self, table, df, by, keys):
        self._validate(table, df, by, keys)
        if not by:
            raise ValueError("write_partitions needs partition columns; use replace_table")
        cond = psql.SQL(" AND ").join(
            psql.SQL("{}::text = k.{}").format(psql.Identifier(c), psql.Identifier(f"k{i}"))
            for i, c in enumerate(by)
        )
        arrays = [[str(k[i]) for k in keys] for i in range(len(by))]
        unnest = psql.SQL(", ").join(psql.SQL("%s::text[]") for _ in by)
        names = psql.SQL(", ").join(psql.Identifier(f"k{i}") for i in range(len(by)))
        return self._replace_rows(
            table,
            df,
            psql.SQL("DELETE FROM {} USING unnest({}) AS k({}) WHERE {}").format(
                psql.Identifier(self.schema, table), unnest, names, cond
            ),
            arrays,
        )

    def replace_table(self, table, df):
        check_identifier(table)
        # DELETE, not TRUNCATE: TRUNCATE's exclusive lock would block readers until commit.
        return self._replace_rows(
            table, df, psql.SQL("DELETE FROM {}").format(psql.Identifier(self.schema, table))
        )

    def drop_partitions(self, table, column, before):
        """One DELETE (MVCC: readers keep seeing the rows until it commits); the partition values are
        compared as text (UTC session), like the embedded backend's directory names."""
        check_identifier(table)
        with self.connect() as conn:
            if column not in self._columns(conn, table):
                return []
            target, col = psql.Identifier(self.schema, table), psql.Identifier(check_identifier(column))
            with conn.transaction():
                values = [
                    r[0]
                    for r in conn.execute(
                        psql.SQL("SELECT DISTINCT {c}::text FROM {t} WHERE {c}::text < %s ORDER BY 1").format(
                            c=col, t=target
                        ),
                        (before,),
                    )
                ]
                conn.execute(
                    psql.SQL("DELETE FROM {t} WHERE {c}::text < %s").format(c=col, t=target), (before,)
                )
                if values:
                    self._bump_version(conn, table)
        return values

    # -- reading -------------------------------------------------------------------------------
    def tables(self):
        with self.connect(read_only=True) as conn:
            rows = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                "AND table_name <> %s ORDER BY 1",
                (self.schema, VERSIONS),
            ).fetchall()
        return [r[0] for r in rows]

    def versions(self) -> dict[str, int]:
        """table -> write counter (empty before the first write)."""
        with self.connect(read_only=True) as conn:
            if not conn.execute("SELECT to_regclass(%s)", (f'"{self.schema}".{VERSIONS}',)).fetchone()[0]:
                return {}
            return dict(
                conn.execute(
                    psql.SQL("SELECT table_name, version FROM {}").format(
                        psql.Identifier(self.schema, VERSIONS)
                    )
                ).fetchall()
            )

    def read(self, sql, params=()):
        with self.connect(read_only=True) as conn:
            cur = conn.execute(sql, params)
            names = [d.name for d in cur.description]
            rows = cur.fetchall()
        return pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)

    def read_table(self, table, where="TRUE", params=(), columns=None):
        """Bulk read through COPY TO STDOUT (CSV) with a schema from the catalog: no row-by-row fetch."""
        check_identifier(table)
        with self.connect(read_only=True) as conn:
            types = self._columns(conn, table)
            if not types:
                raise LookupError(f"warehouse table {self.schema}.{table} does not exist")
            names = list(columns) if columns else list(types)
            select, schema = [], {}
            for c in names:
                t = types[check_identifier(c)]
                if t.startswith("timestamp"):
                    utc = " AT TIME ZONE 'UTC'" if "with time" in t else ""
                    select.append(f"to_char({c}{utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US') AS {c}")
                    schema[c] = pl.String
                elif t == "boolean":
                    select.append(f"{c}::text AS {c}")
                    schema[c] = pl.String
                else:
                    select.append(c)
                    schema[c] = _POLARS_TYPES.get(t, pl.String)
            query = f"SELECT {', '.join(select)} FROM {self.schema}.{table} WHERE {where}"
            frame = copy_out(conn, query, params, schema)
        casts = []
        for c in names:
            t = types[c]
            if t.startswith("timestamp"):
                e = pl.col(c).str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", time_unit="us")
                casts.append((e.dt.replace_time_zone("UTC") if "with time" in t else e).alias(c))
            elif t == "boolean":
                casts.append((pl.col(c) == "true").alias(c))
        return frame.with_columns(casts) if casts else frame

    def location(self) -> str:
        return f"{self.url.split('@')[-1]} schema {self.schema}"
