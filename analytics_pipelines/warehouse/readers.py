"""Open the API's reader for a warehouse URL: the embedded snapshot reader or the PostgreSQL one."""

from __future__ import annotations

from analytics_pipelines.warehouse.reader import Reader


def open_reader(warehouse_url: str, **kwargs) -> Reader:
    from analytics_pipelines.warehouse.reader_postgres import PostgresReader
    from analytics_pipelines.warehouse.reader_snapshot import SnapshotReader

    if warehouse_url.startswith("duckdb:///"):
        return SnapshotReader(warehouse_url.removeprefix("duckdb:///"), **kwargs)
    return PostgresReader(warehouse_url, **kwargs)
