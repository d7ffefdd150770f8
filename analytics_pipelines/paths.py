"""Where the project keeps its files. Everything resolves from the repository root or env vars, lazily."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = PROJECT_ROOT / "sql"


def data_dir() -> Path:
    """The project's data directory (embedded source, warehouse files). Override with TT_DATA_DIR."""
    return Path(os.environ.get("TT_DATA_DIR", PROJECT_ROOT / "data")).resolve()


def read_sql(relative: str) -> str:
    return (SQL_DIR / relative).read_text()
