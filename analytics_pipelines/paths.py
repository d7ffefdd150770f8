"""Where the project keeps its files. Everything resolves from the repository root or env vars, lazily."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = PROJECT_ROOT / "sql"


def data_dir() -> Path:
    """The project's data directory (embedded source, warehouse files). Override with TT_DATA_DIR."""
    from analytics_pipelines.settings import Settings

    return Settings.from_env().data_dir


def read_sql(relative: str) -> str:
    return (SQL_DIR / relative).read_text()
