"""The read API: FastAPI over the materialized marts (`analytics-pipelines api`)."""

from analytics_pipelines.api.app import create_app
from analytics_pipelines.api.settings import ConfigError, Settings

__all__ = ["ConfigError", "Settings", "create_app"]
