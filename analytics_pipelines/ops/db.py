"""The operational database: SQLite under the data directory by default, PostgreSQL when TT_OPS_URL says so.

One SQLAlchemy Core code path for both. Each feature module declares its tables on `metadata` below;
`ops_engine()` creates whatever is missing. Row-level updates happen in short transactions, so the API
(acknowledging an alert, creating an export request) and the Dagster jobs can work on the same rows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

import sqlalchemy as sa

from analytics_pipelines.paths import data_dir

#: every operational table is declared on this MetaData (schema-less: SQLite has none; in PostgreSQL the
#: tables live in the `ops` schema through the connection's search_path)
metadata = sa.MetaData()


def default_ops_url() -> str:
    """TT_OPS_URL, else a SQLite file beside the embedded warehouse."""
    from analytics_pipelines.settings import Settings

    url = Settings.from_env().ops_url
    if url:
        return url
    path = data_dir() / "ops.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def as_utc(value: datetime | None) -> datetime | None:
    """A timestamp read back from an ops table as an aware UTC datetime: SQLite hands back naive datetimes
    (everything stored here is UTC), PostgreSQL aware ones in the session's zone."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _normalize(url: str) -> str:
    # psycopg 3 for PostgreSQL, whatever spelling the user gave
    for prefix in ("postgresql+psycopg2://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def ops_engine(url: str | None = None) -> sa.Engine:
    """An engine for the operational database with every declared table created (idempotent). No URL: the
    default as the environment says *now* (TT_OPS_URL or the data directory's SQLite file), resolved before
    the engine cache, so that a changed TT_OPS_URL never gets an engine cached for an earlier one."""
    return _engine(_normalize(url or default_ops_url()))


@lru_cache(maxsize=8)
def _engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # WAL: readers never wait for a writer
            cur = dbapi_conn.cursor()
            _wal(cur)
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
    else:
        engine = sa.create_engine(
            url, pool_pre_ping=True, connect_args={"options": "-c search_path=ops,public"}
        )
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('tt_ops_ddl'))"))
            conn.execute(sa.text("CREATE SCHEMA IF NOT EXISTS ops"))
    _create_all(engine)
    return engine


#: migrations an ops module registers for its tables (`@migration`): run after create_all on every open of
#: the store, each idempotent (ops/alerts.py relax_rule_names)
MIGRATIONS: list = []


def migration(fn):
    MIGRATIONS.append(fn)
    return fn


def _wal(cur, seconds: float = 30.0) -> None:
    """Switch the database to WAL. Switching a database that is not in WAL yet needs it unlocked, and SQLite
    answers "database is locked" at once instead of waiting for another process's transaction (two
    processes opening an old store while one migrates it: CI); retried for as long as the busy timeout."""
    import sqlite3
    import time

    deadline = time.monotonic() + seconds
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _create_all(engine: sa.Engine) -> None:
    # import the modules that declare tables so that metadata is complete
    import importlib
    import pkgutil

    import analytics_pipelines.ops as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name != "db":
            importlib.import_module(f"analytics_pipelines.ops.{mod.name}")
    for attempt in range(5):
        try:
            with engine.begin() as conn:
                if engine.dialect.name == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('tt_ops_ddl'))"))
                metadata.create_all(conn, checkfirst=True)
                add_missing_columns(conn)
            break
        except sa.exc.OperationalError as exc:
            # SQLite has no DDL lock here (pysqlite runs DDL outside a transaction): two processes opening a
            # new store both see a table missing and the slower one's CREATE fails; look again
            if not any(m in str(exc) for m in ("already exists", "duplicate column")) or attempt == 4:
                raise
    for migrate in MIGRATIONS:  # registered by the ops modules imported above
        migrate(engine)


def add_missing_columns(conn: sa.Connection) -> list[str]:
    """The additive migration step: `create_all` creates missing tables but never alters an existing one, so
    a nullable column declared after a database was created is added here (`ALTER TABLE ... ADD COLUMN`).
    Idempotent (compares with the database's columns; IF NOT EXISTS on PostgreSQL, whose DDL runs under the
    advisory lock above). Only nullable columns without a server default are added: existing rows read NULL,
    which every such column means as "the first version's behaviour". A non-nullable column missing from an
    existing table is a schema change this step cannot make; it is refused loudly. Returns "table.column"s."""
    inspector = sa.inspect(conn)
    existing_tables = set(inspector.get_table_names())
    added = []
    for table in metadata.sorted_tables:
        if table.name not in existing_tables:
            continue
        have = {c["name"] for c in inspector.get_columns(table.name)}
        for col in table.columns:
            if col.name in have:
                continue
            if not col.nullable or col.server_default is not None:
                raise RuntimeError(
                    f"ops table {table.name} lacks column {col.name}, which is not nullable: "
                    "add it with a migration of its own"
                )
            ddl = sa.schema.CreateColumn(col).compile(dialect=conn.dialect)
            exists = " IF NOT EXISTS" if conn.dialect.name == "postgresql" else ""
            conn.execute(
                sa.text(
                    f"ALTER TABLE {conn.dialect.identifier_preparer.quote(table.name)} ADD COLUMN{exists} {ddl}"
                )
            )
            added.append(f"{table.name}.{col.name}")
    return added


ops_engine.cache_clear = _engine.cache_clear  # forget every cached engine (as a new process would start)
