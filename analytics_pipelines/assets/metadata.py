"""Metadata helpers so the Dagster UI explains each materialization (row counts, previews)."""

from __future__ import annotations

import dagster as dg
import polars as pl

from analytics_pipelines.registry.context import md_table


def table_metadata(warehouse, table: str, rows_written: int, preview: pl.DataFrame | None = None) -> dict:
    meta = {
        "dagster/row_count": rows_written,
        "warehouse_table": dg.MetadataValue.text(table),
        "warehouse": dg.MetadataValue.text(warehouse.location()),
    }
    if preview is not None:
        meta["preview"] = dg.MetadataValue.md(md_table(preview, 5))
    return meta
