"""Publication (issue 18): time series published to InfluxDB.

The domain's registry entries (see docs/adding-a-mart.md); default_registry() includes them."""

from __future__ import annotations

from analytics_pipelines.registry.model import Table

TABLES: tuple[Table, ...] = ()
