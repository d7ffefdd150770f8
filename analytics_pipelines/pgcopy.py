"""Bulk PostgreSQL I/O through COPY (CSV), shared by the source loader and the warehouse.

No pandas, no row loops: polars writes the CSV chunks going in and parses the CSV coming out."""

from __future__ import annotations

import io
from collections.abc import Sequence

import polars as pl
import psycopg
from psycopg import sql as psql

CHUNK_ROWS = 250_000


def copy_in(conn: psycopg.Connection, table: psql.Composable, df: pl.DataFrame) -> None:
    """COPY the frame's rows into `table` (an identifier, schema-qualified or not) within the caller's
    transaction. Timestamps with a zone go in as UTC with an explicit +00; naive ones as they are."""
    if df.height == 0:
        return
    out = df.with_columns(
        [
            (
                pl.col(n).dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%d %H:%M:%S%.f+00")
                if t.time_zone
                else pl.col(n).dt.strftime("%Y-%m-%d %H:%M:%S%.f")
            )
            for n, t in df.schema.items()
            if isinstance(t, pl.Datetime)
        ]
        + [pl.col(n).cast(pl.String) for n, t in df.schema.items() if t == pl.Null]
    )
    stmt = psql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
        table, psql.SQL(", ").join(psql.Identifier(c) for c in df.columns)
    )
    with conn.cursor() as cur, cur.copy(stmt) as copy:
        for offset in range(0, out.height, CHUNK_ROWS):
            # null -> unquoted empty field (NULL); '' -> "" (empty string): COPY CSV keeps them apart
            copy.write(out.slice(offset, CHUNK_ROWS).write_csv(include_header=False, null_value=""))


def copy_out(conn: psycopg.Connection, query: str, params: Sequence, schema: dict) -> pl.DataFrame:
    """Run `query` through COPY ... TO STDOUT (CSV with header) and parse it with the given schema."""
    buf = io.BytesIO()
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER true)", params) as copy,
    ):
        for block in copy:
            buf.write(block)
    if buf.getbuffer().nbytes == 0:
        return pl.DataFrame(schema=schema)
    buf.seek(0)
    return pl.read_csv(buf, schema=schema)
