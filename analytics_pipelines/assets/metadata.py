"""Metadata helpers so the Dagster UI explains each materialization (row counts, previews)."""

from __future__ import annotations

import dagster as dg
import polars as pl


def frame_preview(df: pl.DataFrame, n: int = 10) -> str:
    """A markdown table of the first n rows (no pandas/tabulate needed)."""
    if df.width == 0:
        return "_(no columns)_"
    head = df.head(n)
    cells = [[("" if v is None else str(v)).replace("|", "\\|").replace("\n", " ")[:60] for v in row]
             for row in head.iter_rows()]
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * head.width]
    lines += ["| " + " | ".join(r) + " |" for r in cells]
    if df.height > n:
        lines.append(f"\n_{df.height - n} more rows_")
    if df.height == 0:
        lines.append("\n_(no rows)_")
    return "\n".join(lines)


def table_metadata(warehouse, table: str, rows_written: int, preview: pl.DataFrame | None = None) -> dict:
    meta = {
        "dagster/row_count": rows_written,
        "warehouse_table": dg.MetadataValue.text(table),
        "warehouse": dg.MetadataValue.text(warehouse.location()),
    }
    if preview is not None:
        meta["preview"] = dg.MetadataValue.md(frame_preview(preview, 5))
    return meta
