"""The environment of a Dagster process on the shipped dagster-postgres instance (deploy/dagster-postgres),
for the tests that start real Dagster processes against a throwaway PostgreSQL database."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from analytics_pipelines.instance import storage_env

ROOT = Path(__file__).resolve().parent.parent


def instance_env(database_url: str, storage_dir: Path) -> dict[str, str]:
    """os.environ + DAGSTER_HOME=deploy/dagster-postgres and its TT_DAGSTER_PG_* for `database_url`."""
    url = urlsplit(database_url)
    return {
        **os.environ,
        **storage_env(str(storage_dir)),
        "DAGSTER_HOME": str(ROOT / "deploy" / "dagster-postgres"),
        "TT_DAGSTER_PG_USER": url.username or "postgres",
        "TT_DAGSTER_PG_PASSWORD": url.password or "",
        "TT_DAGSTER_PG_HOST": url.hostname or "127.0.0.1",
        "TT_DAGSTER_PG_PORT": str(url.port or 5432),
        "TT_DAGSTER_PG_DB": url.path.lstrip("/"),
    }
