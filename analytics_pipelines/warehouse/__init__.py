"""The warehouse: one interface, two backends (embedded DuckDB over Parquet, PostgreSQL schema `analytics`)."""

from analytics_pipelines.warehouse.base import Warehouse
from analytics_pipelines.warehouse.factory import open_warehouse

__all__ = ["Warehouse", "open_warehouse"]
