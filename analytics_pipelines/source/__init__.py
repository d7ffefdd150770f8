"""The platform source: its contract (sql/source/), the embedded/PostgreSQL source databases, extraction."""
