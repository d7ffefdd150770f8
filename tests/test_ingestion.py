"""End to end ingestion (source -> raw -> staging) on generated data, both source and warehouse backends:
every source row is accounted for, every injected bad row is caught with its reason, re-runs are
idempotent."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime

import polars as pl
import pytest

from analytics_pipelines.generator.run import generate
from analytics_pipelines.source.db import SourceDB
from analytics_pipelines.staging import ingestion, pipeline
from analytics_pipelines.staging import reasons as R
from analytics_pipelines.warehouse import open_warehouse

FIRST, LAST = "2026-06-01", "2026-11-10"  # tiny history: 120 days before 2026-11-01
NOW = datetime(2026, 11, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def clean_source(tmp_path_factory) -> str:
    url = f"duckdb:///{tmp_path_factory.mktemp('src') / 'source.duckdb'}"
    generate(url, scale="tiny", seed=7, progress=False)
    return url


@pytest.fixture(scope="module")
def dirty_source(tmp_path_factory) -> tuple[str, dict]:
    d = tmp_path_factory.mktemp("dirty")
    url = f"duckdb:///{d / 'source.duckdb'}"
    generate(
        url,
        scale="tiny",
        seed=11,
        dirty=True,
        dirty_rate=0.02,
        manifest_path=d / "manifest.json",
        progress=False,
    )
    return url, json.loads((d / "manifest.json").read_text())


def test_clean_source_is_fully_staged(clean_source, warehouse_url):
    wh = open_warehouse(warehouse_url)
    audit = pipeline.ingest_everything(SourceDB(clean_source), wh, FIRST, LAST, now=NOW)
    assert audit["balanced"].all(), audit
    # clean data: nothing rejected; the only rows outside the partitions are none
    assert audit["rows_rejected"].sum() == 0, wh.read("SELECT * FROM quarantine LIMIT 20")
    assert (audit["source_rows"] == audit["stg_rows"]).all()
    assert audit["rows_not_ingested"].sum() == 0


def test_rerun_is_idempotent(clean_source, tmp_path):
    wh = open_warehouse(f"duckdb:///{tmp_path / 'wh'}")
    src = SourceDB(clean_source)
    first = pipeline.ingest_everything(src, wh, FIRST, LAST, now=NOW)
    orders_before = wh.read_table("stg_orders").sort("id")
    again = pipeline.ingest_everything(src, wh, FIRST, LAST, now=NOW)
    assert first.equals(again)
    assert wh.read_table("stg_orders").sort("id").equals(orders_before)
    # one partition again on its own: same rows
    ingestion.ingest_raw_facts(src, wh, "orders", ["2026-09-15"])
    ingestion.stage_partitions(wh, "orders", ["2026-09-15"], now=NOW)
    assert wh.read_table("stg_orders").sort("id").equals(orders_before)


def test_every_injected_bad_row_is_caught_with_its_reason(dirty_source, warehouse_url):
    url, manifest = dirty_source
    wh = open_warehouse(warehouse_url)
    audit = pipeline.ingest_everything(SourceDB(url), wh, FIRST, LAST, now=NOW)
    assert audit["balanced"].all(), audit
    q = wh.read_table("quarantine")
    repaired = {R.MIXED_CASE_STATUS, R.CONTROL_CHARACTERS}
    for kind, tables in manifest["keys"].items():
        if kind == "empty_day":
            continue
        for table, keys in tables.items():
            expected = manifest[kind][table]
            assert expected > 0 and len(keys) == expected, (kind, table)
            disposition = "repaired" if kind in repaired else "rejected"
            hits = q.filter(
                (pl.col("source_table") == table)
                & (pl.col("reason_code") == kind)
                & (pl.col("disposition") == disposition)
            )
            if kind == R.NULL_KEY:
                assert hits.height == expected, (kind, table, hits.height)
            else:
                missing = set(keys) - set(hits["source_key"].to_list())
                assert not missing, (kind, table, sorted(missing)[:5])
    # the empty day: every fact partition of that day succeeded with zero rows
    day = manifest["empty_day_date"]
    ledger = wh.read_table("ingestion_ledger").filter(pl.col("partition") == day)
    assert ledger.height == 9 and (ledger["rows_in"] == 0).all()
    # nothing vanished: total rows in = staged + rejected, and the source total matches
    assert audit["source_rows"].sum() == audit["stg_rows"].sum() + audit["rows_rejected"].sum()


@pytest.mark.postgres
def test_postgres_source_into_postgres_warehouse(pg_database):
    """The platform-shaped path: a typed PostgreSQL source with the platform's constraints, ingested into
    the PostgreSQL warehouse (schema analytics)."""
    generate(pg_database, scale="tiny", seed=7, progress=False)
    wh = open_warehouse(pg_database)
    audit = pipeline.ingest_everything(SourceDB(pg_database), wh, FIRST, LAST, now=NOW)
    assert audit["balanced"].all(), audit
    assert audit["rows_rejected"].sum() == 0
    # money normalized to cents, statuses lower case, in the warehouse schema
    orders = wh.read(
        "SELECT status, count(*) AS n, sum(total_cents) AS cents FROM analytics.stg_orders GROUP BY 1"
    )
    assert set(orders["status"]) <= {
        "completed",
        "confirmed",
        "cancelled",
        "expired",
        "pending",
        "refunded",
        "reserved",
    }
    src_total = SourceDB(pg_database).query("SELECT sum(total_cents) AS c FROM orders")["c"][0]
    assert int(orders["cents"].sum()) == int(src_total)


@pytest.mark.postgres
def test_dirty_postgres_landing_source(pg_database, tmp_path):
    manifest_path = tmp_path / "m.json"
    generate(
        pg_database,
        scale="tiny",
        seed=11,
        dirty=True,
        dirty_rate=0.02,
        manifest_path=manifest_path,
        progress=False,
    )
    wh = open_warehouse(f"duckdb:///{tmp_path / 'wh'}")
    audit = pipeline.ingest_everything(SourceDB(pg_database), wh, FIRST, LAST, now=NOW)
    assert audit["balanced"].all(), audit
    manifest = json.loads(manifest_path.read_text())
    q = wh.read("SELECT reason_code, count(*) AS n FROM quarantine GROUP BY 1")
    found = dict(q.iter_rows())
    for kind in manifest["keys"]:
        if kind != "empty_day":
            assert found.get(kind, 0) >= sum(manifest[kind].values()), kind


def test_unplaceable_rows_are_quarantined(dirty_source, tmp_path):
    url, manifest = dirty_source
    wh = open_warehouse(f"duckdb:///{tmp_path / 'wh'}")
    src = SourceDB(url)
    counts = ingestion.collect_unplaceable(src, wh, FIRST, LAST)
    future = manifest["future_timestamp"]
    for table, n in future.items():
        assert counts[table] >= n
    q = wh.read_table("quarantine").filter(pl.col("partition") == ingestion.UNPLACEABLE)
    assert set(q["reason_code"]) <= {R.FUTURE_TIMESTAMP, R.MISSING_PARTITION_TIMESTAMP}
    assert date.fromisoformat(LAST)  # the window is explicit


def test_in_dependency_order_runs_parents_first_in_parallel_and_reraises():
    """Staging runs `workers` tables at a time, a table only after its parents; an error surfaces."""
    import threading

    started, finished, lock = [], set(), threading.Lock()
    parents = {"tickets": {"events"}, "events": {"venues"}, "orders": {"users"}}

    def fn(t):
        with lock:
            assert parents.get(t, set()) <= finished, f"{t} started before its parents"
            started.append(t)
        time.sleep(0.05)
        with lock:
            finished.add(t)

    tables = ["venues", "users", "events", "orders", "tickets"]
    ingestion.in_dependency_order(tables, parents, fn, workers=2)
    assert sorted(started) == sorted(tables) and finished == set(tables)

    def boom(t):
        if t == "events":
            raise RuntimeError("staging events failed")

    with pytest.raises(RuntimeError, match="staging events failed"):
        ingestion.in_dependency_order(tables, parents, boom, workers=2)


def test_duckdb_extract_gives_the_casts_text_for_every_timestamp_and_uuid(tmp_path):
    """extract_text prints a DuckDB source's UUIDs and timestamps its cheaper way (db._duck_text); the text
    is what CAST(... AS VARCHAR) prints in a UTC session, for edge values too: fractions, offsets other
    than UTC, the first and last years, infinities, BC, NULL, an upper-case UUID."""
    src = SourceDB(f"duckdb:///{tmp_path / 'source.duckdb'}")
    src.create()
    stamps = [
        "2025-06-01 00:00:20+00",
        "2025-06-01 00:00:20.5+00",
        "2025-06-01 00:00:20.123456+00",
        "2025-03-30 01:30:00+02",
        "0001-01-01 00:00:00+00",
        "9999-12-31 23:59:59.999999+00",
        "1969-12-31 23:59:59.5+00",
        "infinity",
        "-infinity",
        "0045-01-01 (BC) 00:00:00+00",
        None,
    ]
    with src.writer() as conn:
        for i, ts in enumerate(stamps):
            conn.execute(
                "INSERT INTO users (id, tenant_id, email, status, created_at, updated_at, deleted_at) "
                "VALUES (?::UUID, ?::UUID, ?, 'ACTIVE', ?::TIMESTAMPTZ, ?::TIMESTAMPTZ, NULL)",
                [
                    f"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A{i:02d}",
                    "00000000-0000-0000-0000-000000000001",
                    f"u{i}@example.com",
                    ts,
                    stamps[-1 - i],
                ],
            )
    spec = ingestion.contract.table("users")
    with src._duck(read_only=True) as conn:
        cast = ", ".join(f"CAST({c} AS VARCHAR) AS {c}" for c in spec.column_names)
        expected = conn.execute(f"SELECT {cast} FROM users").pl()
    got = src.extract_text("users", "TRUE")
    assert got.height == len(stamps)
    assert got.equals(expected.cast(dict.fromkeys(expected.columns, pl.String)))
    assert got["id"][0] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a00"
    assert got["created_at"].to_list()[:4] == [
        "2025-06-01 00:00:20+00",
        "2025-06-01 00:00:20.5+00",
        "2025-06-01 00:00:20.123456+00",
        "2025-03-29 23:30:00+00",
    ]
    assert {"infinity", "-infinity", None} <= set(got["created_at"].to_list())


def test_held_source_serves_the_same_rows_and_lets_go_of_the_file(clean_source):
    """SourceDB.held keeps one read-only connection open for a block (DuckDB then serves the block's other
    connections from the loaded database): the same rows as without it, the database open for the whole
    block, and the file free for a writer again afterwards."""
    import duckdb

    src = SourceDB(clean_source)
    where, params = src.window_predicate("orders", False, date(2026, 9, 1), date(2026, 9, 8))
    expected = src.extract_text("orders", where, params)
    with src.held():
        assert src.is_landing() is False
        assert src.extract_text("orders", where, params).equals(expected)
        # while held, a second process-level open of the file is answered from the held database: a
        # read-write open in this process is refused (one configuration per open database)
        with pytest.raises(duckdb.ConnectionException):
            duckdb.connect(str(src.duckdb_path), read_only=False)
    with src.writer() as conn:  # released: read-write works again
        assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] > 0
    pg = SourceDB("postgresql://nobody@127.0.0.1:1/none")
    with pg.held() as held:  # nothing opened for PostgreSQL (this URL would refuse a connection)
        assert held is pg


def test_source_resource_holds_the_embedded_source_while_it_is_open(clean_source):
    """The Dagster resource holds the embedded source for as long as it is open (a run in one process: the
    whole run), and lets go of it when it closes."""
    import dagster as dg
    import duckdb

    from analytics_pipelines.resources import SourceResource

    path = str(SourceDB(clean_source).duckdb_path)
    with dg.build_resources({"source": SourceResource(url=clean_source)}) as resources:
        assert resources.source.db().count("venues") > 0
        with pytest.raises(duckdb.ConnectionException):
            duckdb.connect(path, read_only=False)
    duckdb.connect(path, read_only=False).close()


def test_audit_counts_a_typed_sources_rows_by_their_utc_day_at_the_boundaries(tmp_path):
    """The audit's per-day source counts (staging.audit.source_counts) group a typed DuckDB source by the
    UTC day of the partition timestamp without printing it: the same days as the text the extract prints,
    at midnight, a microsecond before it, and for an offset that moves the row to the day before."""
    from analytics_pipelines.staging import audit

    src = SourceDB(f"duckdb:///{tmp_path / 'source.duckdb'}")
    src.create()
    stamps = [
        "2025-06-01 00:00:00+00",
        "2025-06-01 23:59:59.999999+00",
        "2025-06-02 00:00:00+00",
        "2025-06-02 01:30:00+02",  # 2025-06-01 23:30 UTC
        "2025-06-02 12:00:00-11",  # 2025-06-02 23:00 UTC
        "2025-06-03 00:00:00+00",  # outside the window
        "infinity",
        None,
    ]
    with src.writer() as conn:
        for i, ts in enumerate(stamps):
            conn.execute(
                "INSERT INTO ticket_scans (id, scanned_at) VALUES (?::UUID, ?::TIMESTAMPTZ)",
                [f"00000000-0000-4000-8000-{i:012d}", ts],
            )
    window = {"ticket_scans": [("2025-06-01", "2025-06-02")]}
    totals, by_day = audit.source_counts(src, False, window)
    assert totals["ticket_scans"] == len(stamps)
    got = dict(by_day["ticket_scans"].sort("day").iter_rows())
    assert got == {"2025-06-01": 3, "2025-06-02": 2}
    text = src.extract_text("ticket_scans", "TRUE")["scanned_at"].str.slice(0, 10)
    assert got == dict(
        pl.DataFrame({"day": text})
        .filter(pl.col("day").is_in(["2025-06-01", "2025-06-02"]))
        .group_by("day")
        .len()
        .iter_rows()
    )
