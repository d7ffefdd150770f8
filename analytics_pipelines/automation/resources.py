"""The operational database as a Dagster resource (one class for alerts and exports)."""

from analytics_pipelines.resources import OpsResource

__all__ = ["OpsResource"]
