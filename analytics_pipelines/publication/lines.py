"""Warehouse rows -> InfluxDB line protocol, as polars expressions (no per-row Python).

A `Series` says how one table becomes points: the measurement, the timestamp column, the tags (the point's
identity besides the time: only key columns, so that re-publishing a partition overwrites the same points)
and the fields with fixed types (InfluxDB refuses a field whose type changes). A NULL tag is left out (the
tenant-wide KPI rows have no `venue` tag: `WHERE venue = ''` in InfluxQL); a NULL or non-finite field is
left out; a row with no field left is not a point and is counted with its reason, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import polars as pl

FieldType = Literal["float", "int", "bool", "string"]
PRECISIONS = ("s", "ms", "us", "ns")


@dataclass(frozen=True)
class Series:
    """One published series family (a measurement)."""

    measurement: str
    time_column: str
    #: tag key -> source column
    tags: dict[str, str]
    #: field key -> (source column, type)
    fields: dict[str, tuple[str, FieldType]]
    #: the source columns that must be present (besides the ones above), for a clear error
    extra_columns: tuple[str, ...] = field(default_factory=tuple)


def _escape_key(expr: pl.Expr) -> pl.Expr:
    """Tag keys/values and field keys: escape backslash, comma, equals sign and space."""
    out = expr.cast(pl.String).str.replace_all("\\", "\\\\", literal=True)
    for ch in (",", "=", " "):
        out = out.str.replace_all(ch, "\\" + ch, literal=True)
    return out


def _escape_measurement(name: str) -> str:
    return name.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ")


def _field_value(col: str, kind: FieldType) -> pl.Expr:
    c = pl.col(col)
    if kind == "float":
        v = c.cast(pl.Float64)
        return pl.when(v.is_finite()).then(v.cast(pl.String))
    if kind == "int":
        return c.cast(pl.Int64).cast(pl.String) + pl.lit("i")
    if kind == "bool":
        return pl.when(c.cast(pl.Boolean)).then(pl.lit("true")).otherwise(pl.lit("false"))
    s = (
        c.cast(pl.String)
        .str.replace_all("\\", "\\\\", literal=True)
        .str.replace_all('"', '\\"', literal=True)
    )
    return pl.lit('"') + s + pl.lit('"')


def timestamps(col: str, precision: str) -> pl.Expr:
    """A UTC timestamp column as integer epoch in the write precision."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    c = pl.col(col)
    return c.dt.epoch(time_unit="s") if precision == "s" else c.dt.epoch(time_unit=precision)


def to_lines(df: pl.DataFrame, series: Series, precision: str) -> tuple[pl.Series, dict[str, int]]:
    """(line-protocol records, rows not published by reason) for `df`'s rows."""
    needed = {series.time_column, *series.tags.values(), *(c for c, _ in series.fields.values())}
    missing = sorted(needed - set(df.columns))
    if missing:
        raise KeyError(f"{series.measurement}: source columns missing: {', '.join(missing)}")
    if df.height == 0:
        return pl.Series("line", [], dtype=pl.String), {}
    tag_parts = [
        pl.when(pl.col(c).is_not_null() & (pl.col(c).cast(pl.String) != "")).then(
            pl.lit(f"{k}=") + _escape_key(pl.col(c))
        )
        for k, c in sorted(series.tags.items())  # sorted tag keys: InfluxDB's canonical order
    ]
    field_parts = [
        pl.when(pl.col(c).is_not_null()).then(pl.lit(f"{k}=") + _field_value(c, kind))
        for k, (c, kind) in series.fields.items()
    ]
    head = pl.concat_str(
        [pl.lit(_escape_measurement(series.measurement)), *tag_parts], separator=",", ignore_nulls=True
    )
    fields = pl.concat_str(field_parts, separator=",", ignore_nulls=True)
    ts = timestamps(series.time_column, precision).cast(pl.String)
    out = df.select(head.alias("head"), pl.when(fields != "").then(fields).alias("fields"), ts.alias("ts"))
    reasons = {
        "no_timestamp": int(out["ts"].null_count()),
        "no_field_value": int(out.filter(pl.col("ts").is_not_null())["fields"].null_count()),
    }
    lines = out.filter(pl.col("ts").is_not_null() & pl.col("fields").is_not_null()).select(
        pl.concat_str([pl.col("head"), pl.col("fields"), pl.col("ts")], separator=" ").alias("line")
    )["line"]
    return lines, {k: v for k, v in reasons.items() if v}
