"""Open the warehouse named by a URL: the factory over both backends (base.py imports neither backend)."""

from __future__ import annotations

import re

from analytics_pipelines.warehouse.base import Warehouse


def open_warehouse(url: str | None = None) -> Warehouse:
    """The warehouse named by `url` or TT_WAREHOUSE_URL; default: the embedded one under the data dir."""

    if not url:
        from analytics_pipelines.settings import Settings

        url = Settings.from_env().warehouse_url
    if url.startswith("duckdb:///"):
        from analytics_pipelines.warehouse.embedded import EmbeddedWarehouse

        return EmbeddedWarehouse(url.removeprefix("duckdb:///"))
    if re.match(r"^postgres(ql)?(\+\w+)?://", url):
        from analytics_pipelines.warehouse.postgres import PostgresWarehouse

        return PostgresWarehouse(url)
    raise ValueError(f"unsupported warehouse URL {url!r}: use duckdb:///dir or postgresql://...")
