"""Shared fixtures. PostgreSQL tests use throwaway databases on 127.0.0.1:5432; under CI=true an
unreachable server fails the suite loudly instead of skipping."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

PG_ADMIN_URL = os.environ.get("TT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# generated test data lands with the fixed development pseudonym keys; tests of the production behaviour
# set TT_ENV (or delete it) themselves (tests/test_privacy.py, tests/test_exports.py)
os.environ.setdefault("TT_ENV", "development")


def _pg_reachable() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return None
    except Exception as exc:  # noqa: BLE001 - report whatever stopped us
        return str(exc)


_PG_ERROR = _pg_reachable()


def pytest_collection_modifyitems(config, items):
    # `make test` distributes whole files (`--dist loadfile --no-loadscope-reorder`: a module's fixtures are
    # built once, on one worker) in collection order: the modules marked slow first, so that the longest one
    # (the daemon scenario, minutes) starts at once instead of ending the run alone on one worker.
    # (Not `--dist loadgroup`: with pytest 9.2 xdist no longer honours xdist_group, pytest-xdist#1386.)
    slow = {item.module.__name__ for item in items if "slow" in item.keywords and item.module is not None}
    items.sort(key=lambda item: item.module is None or item.module.__name__ not in slow)  # stable
    if _PG_ERROR is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise pytest.UsageError(f"CI=true but PostgreSQL at {PG_ADMIN_URL} is unreachable: {_PG_ERROR}")
    skip = pytest.mark.skip(reason=f"PostgreSQL unreachable: {_PG_ERROR}")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


def _base_url() -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0]


def _pg_database() -> Iterator[str]:
    name = f"tt_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{_base_url()}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database; its URL. Dropped afterwards."""
    yield from _pg_database()


@pytest.fixture(scope="module")
def pg_database_module() -> Iterator[str]:
    """The same, shared by a module's tests."""
    yield from _pg_database()


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse_url(request, tmp_path) -> Iterator[str]:
    """Both warehouse backends: the embedded one in tmp_path, and a PostgreSQL database."""
    if request.param == "duckdb":
        yield f"duckdb:///{tmp_path / 'warehouse'}"
    else:
        yield request.getfixturevalue("pg_database")


@pytest.fixture(scope="session")
def materialized(tmp_path_factory):
    """tiny data materialized through the real jobs once per session (embedded warehouse): see
    tests/materialized.py. Read-only for the tests that use it."""
    from materialized import materialize_everything

    return materialize_everything(tmp_path_factory.mktemp("materialized"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ops_url(request, tmp_path) -> str:
    """Both operational-database backends: a SQLite file in tmp_path, and a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ops.sqlite'}"
    return request.getfixturevalue("pg_database")


@pytest.fixture(scope="module")
def marts_url(tmp_path_factory) -> str:
    """An embedded warehouse holding the small mart fixtures of mart_frames."""
    import mart_frames as mf

    from analytics_pipelines.warehouse import open_warehouse

    url = f"duckdb:///{tmp_path_factory.mktemp('wh') / 'warehouse'}"
    mf.write(open_warehouse(url), mf.build())
    return url


# -- InfluxDB 1.6.7 for the publication tests (tests/influxdb_server.py, tests/influx_forwarder.py) ----------


@pytest.fixture(scope="module")
def influx1():
    """A real influxd 1.x from a temp config, per test module; skipped when missing, except under CI=true."""
    from influxdb_server import available, influxd, required

    problem = available()
    if problem:
        if required():
            pytest.fail(f"CI=true: {problem}")
        pytest.skip(problem)
    with influxd() as server:
        yield server


@pytest.fixture(scope="module")
def v2_url(influx1) -> Iterator[str]:
    """The /api/v2/write forwarder in front of influx1 (what influxdb-client's 2.x write API talks to)."""
    from influx_forwarder import forwarder

    with forwarder(influx1.url) as url:
        yield url


@pytest.fixture
def bucket(influx1) -> Iterator[str]:
    """A fresh database (= the v2 bucket) per test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    influx1.create_database(name)
    yield name
    influx1.drop_database(name)
