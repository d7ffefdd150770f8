"""The one place that reads the project's environment variables (README, "Configuration").

`Settings.from_env()` is called when something runs (a Dagster run binding its resources, the CLI, the
API), never at import time. Code below takes a Settings (or a resource built from one) as a parameter.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PARTITION_START = "2025-11-01"


def _int(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from exc


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    source_url: str
    warehouse_url: str
    ops_url: str | None
    partition_start: str
    timezone: str
    environment: str
    projection_days: int
    raw_retention_days: int | None
    customer_workers: int | None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        data = Path(env.get("TT_DATA_DIR") or PROJECT_ROOT / "data").resolve()
        return cls(
            data_dir=data,
            source_url=env.get("TT_SOURCE_URL") or f"duckdb:///{data / 'source.duckdb'}",
            warehouse_url=env.get("TT_WAREHOUSE_URL") or f"duckdb:///{data / 'warehouse'}",
            ops_url=env.get("TT_OPS_URL") or None,
            partition_start=env.get("TT_PARTITION_START") or DEFAULT_PARTITION_START,
            timezone=env.get("TT_TIMEZONE") or "UTC",
            environment=(env.get("TT_ENV") or "production").strip().lower(),
            projection_days=_int(env, "TT_PROJECTION_DAYS", 30),
            raw_retention_days=_int(env, "TT_RAW_RETENTION_DAYS", None),
            customer_workers=_int(env, "TT_CUSTOMER_WORKERS", None),
        )

    @property
    def warehouse_kind(self) -> str:
        """'postgres' or 'duckdb', for the kinds badges in the UI (follows the environment)."""
        return "postgres" if self.warehouse_url.startswith("postgres") else "duckdb"
