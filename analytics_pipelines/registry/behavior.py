"""Behavior (issue 18): MongoDB behavioral data, funnel, attribution, campaigns.

The domain's registry entries (see docs/adding-a-mart.md); default_registry() includes them."""

from __future__ import annotations

from analytics_pipelines.registry.model import Table

TABLES: tuple[Table, ...] = ()
