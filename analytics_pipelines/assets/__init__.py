"""Dagster assets, derived from the table registry: the ingestion factory makes the landing and staging
assets, the mart factory every other table's, the publication factory the InfluxDB publishers (publication.py); report files are assets of their own (reports.py)."""

from __future__ import annotations

from analytics_pipelines.assets.factory import mart_assets
from analytics_pipelines.assets.ingestion import ingestion_assets
from analytics_pipelines.assets.publication import publication_assets
from analytics_pipelines.registry import Registry
from analytics_pipelines.settings import Settings


def registry_assets(registry: Registry, settings: Settings) -> list:
    return [
        *ingestion_assets(registry, settings),
        *mart_assets(registry, settings),
        *publication_assets(registry, settings),
    ]
