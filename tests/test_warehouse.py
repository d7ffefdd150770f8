"""Warehouse behaviour on both backends: idempotent partition writes, concurrent writers, readers during
writes, and a writer killed with SIGKILL mid-write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import polars as pl
import psycopg
import pytest

from analytics_pipelines.warehouse import open_warehouse


def _frame(day: str, n: int, tag: str) -> pl.DataFrame:
    return pl.DataFrame({"day": [day] * n, "i": list(range(n)), "tag": [tag] * n})


def test_partition_writes_are_idempotent_and_replace(warehouse_url):
    wh = open_warehouse(warehouse_url)
    days = [("2026-01-01",), ("2026-01-02",)]
    both = pl.concat([_frame("2026-01-01", 3, "a"), _frame("2026-01-02", 2, "a")])
    wh.write_partitions("t", both, ["day"], days)
    wh.write_partitions("t", both, ["day"], days)
    assert wh.count("t") == 5
    # replacing one day leaves the other alone; an empty write empties the day (and says so: 0 rows)
    wh.write_partitions("t", _frame("2026-01-01", 1, "b"), ["day"], [("2026-01-01",)])
    wh.write_partitions("t", _frame("2026-01-02", 0, "b"), ["day"], [("2026-01-02",)])
    got = wh.read_table("t").sort("day")
    assert got["tag"].to_list() == ["b"]
    with pytest.raises(ValueError, match="outside the write"):
        wh.write_partitions("t", _frame("2026-01-03", 1, "x"), ["day"], [("2026-01-01",)])


def test_read_values_stands_a_list_for_a_relation(warehouse_url):
    """Warehouse.read_values: each {name} is a one-column relation `v` of its values (registered in memory
    on the embedded backend, one array parameter on PostgreSQL): the expected answers for 30k keys,
    quotes and braces in values included, an empty list an empty relation."""
    wh = open_warehouse(warehouse_url)
    ids = [f"k{i}" for i in range(30_000)]
    wh.write_partitions(
        "t",
        pl.DataFrame({"day": ["2026-01-01"] * 4, "id": ["k1", "k7", "o'k", "{x}"]}),
        ["day"],
        [("2026-01-01",)],
    )
    sql = "SELECT count(*) AS n FROM t WHERE id IN (SELECT v FROM {keys} k) AND day NOT IN (SELECT v FROM {days} d)"
    assert wh.read_values(sql, {"keys": ids, "days": ["2025-12-31"]})["n"][0] == 2
    assert wh.read_values(sql, {"keys": ["o'k", "{x}"], "days": []})["n"][0] == 2
    assert wh.read_values(sql, {"keys": ["k1"], "days": ["2026-01-01"]})["n"][0] == 0
    assert wh.read_values(sql, {"keys": [], "days": []})["n"][0] == 0
    missing = wh.read_values(
        "SELECT k.v FROM {keys} k WHERE k.v NOT IN (SELECT id FROM t) ORDER BY 1", {"keys": ["k1", "zz", "a"]}
    )
    assert missing["v"].to_list() == ["a", "zz"]
    with pytest.raises((PermissionError, psycopg.errors.ReadOnlySqlTransaction)):  # read-only, as read()
        wh.read_values("DELETE FROM t WHERE id IN (SELECT v FROM {keys} k)", {"keys": ["k1"]})
    assert wh.count("t") == 4


def test_replace_table_and_schema_growth(warehouse_url):
    wh = open_warehouse(warehouse_url)
    wh.replace_table("d", pl.DataFrame({"id": [1, 2]}))
    wh.replace_table("d", pl.DataFrame({"id": [3], "extra": ["x"]}))
    assert wh.read_table("d").to_dicts() == [{"id": 3, "extra": "x"}]


_WRITER = textwrap.dedent("""
    import sys, polars as pl
    from analytics_pipelines.warehouse import open_warehouse
    url, day, n, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    wh = open_warehouse(url)
    for r in range(rounds):
        df = pl.DataFrame({"day": [day] * n, "i": list(range(n)), "tag": [f"r{r}"] * n})
        wh.write_partitions("t", df, ["day"], [(day,)])
    print("done", flush=True)
""")


def _spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _WRITER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_concurrent_writers_and_a_reader_never_fail(warehouse_url):
    """Two processes rewrite different partitions of one table while this process keeps reading: nobody
    fails, and every read sees each partition whole (old or new, never half)."""
    wh = open_warehouse(warehouse_url)
    n = 20_000
    wh.write_partitions(
        "t",
        pl.concat([_frame("2026-01-01", n, "seed"), _frame("2026-01-02", n, "seed")]),
        ["day"],
        [("2026-01-01",), ("2026-01-02",)],
    )
    writers = [
        _spawn(warehouse_url, "2026-01-01", str(n), "15"),
        _spawn(warehouse_url, "2026-01-02", str(n), "15"),
    ]
    reads = 0
    while any(w.poll() is None for w in writers) or reads < 5:
        counts = wh.read(
            "SELECT day, count(*) AS n, count(DISTINCT tag) AS tags FROM t GROUP BY day ORDER BY day"
        )
        assert counts["n"].to_list() == [n, n], counts
        assert counts["tags"].to_list() == [1, 1], counts
        reads += 1
    for w in writers:
        out, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
        assert "done" in out
    assert reads >= 5
    assert sorted(wh.read("SELECT DISTINCT tag FROM t")["tag"].to_list()) == ["r14"]


def test_first_writes_of_many_tables_at_once_into_an_empty_warehouse(warehouse_url):
    """Eight threads each create and write their own table in a warehouse that does not exist yet (what
    parallel ingestion does on its first run): the shared parts (PostgreSQL schema and write counters,
    the embedded catalog) are created once, nobody fails."""
    from concurrent.futures import ThreadPoolExecutor

    wh = open_warehouse(warehouse_url)

    def write(i: int) -> int:
        return wh.write_partitions(
            f"t{i}", _frame("2026-01-01", 100 + i, f"w{i}"), ["day"], [("2026-01-01",)]
        )

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(write, range(8))) == [100 + i for i in range(8)]
    assert {f"t{i}" for i in range(8)} <= set(wh.tables())
    assert [wh.count(f"t{i}") for i in range(8)] == [100 + i for i in range(8)]


_BIG_WRITER = textwrap.dedent("""
    import sys, polars as pl
    from analytics_pipelines.warehouse import open_warehouse

    wh = open_warehouse(sys.argv[1])
    n = 10_000_000
    df = pl.DataFrame({"day": ["2026-01-01"] * n, "i": range(n), "tag": ["new"] * n})
    print("writing", flush=True)
    wh.write_partitions("t", df, ["day"], [("2026-01-01",)])
    print("finished", flush=True)
""")


def test_writer_killed_mid_write_leaves_last_good_data(warehouse_url):
    wh = open_warehouse(warehouse_url)
    wh.write_partitions("t", _frame("2026-01-01", 100, "old"), ["day"], [("2026-01-01",)])
    proc = subprocess.Popen(
        [sys.executable, "-c", _BIG_WRITER, warehouse_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "writing"
    time.sleep(0.3)  # well inside the multi-second write
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    got = wh.read("SELECT tag, count(*) AS n FROM t GROUP BY tag")
    assert got.to_dicts() == [{"tag": "old", "n": 100}]
    # and the table is still writable afterwards
    wh.write_partitions("t", _frame("2026-01-01", 7, "after"), ["day"], [("2026-01-01",)])
    assert wh.count("t") == 7


def test_reads_are_read_only(warehouse_url):
    wh = open_warehouse(warehouse_url)
    wh.replace_table("d", pl.DataFrame({"id": [1]}))
    with pytest.raises(Exception, match="read-only"):
        wh.read("CREATE TABLE x AS SELECT 1 AS a")
    with pytest.raises(Exception, match="read-only"):
        wh.read("DELETE FROM d")
    assert wh.count("d") == 1


def test_duckdb_catalog_file_opens_read_only_while_a_run_writes(tmp_path):
    """Analysts' DuckDB tools open warehouse.duckdb (views over the Parquet files); rewriting a partition
    or adding a table never takes a lock they could trip over."""
    import duckdb

    wh = open_warehouse(f"duckdb:///{tmp_path / 'warehouse'}")
    wh.write_partitions("t", _frame("2026-01-01", 3, "a"), ["day"], [("2026-01-01",)])
    analyst = duckdb.connect(str(wh.catalog_path), read_only=True)
    assert analyst.execute("SELECT count(*) FROM t").fetchone() == (3,)
    wh.write_partitions("t", _frame("2026-01-01", 5, "b"), ["day"], [("2026-01-01",)])
    wh.replace_table("u", pl.DataFrame({"id": [1]}))
    assert analyst.execute("SELECT count(*) FROM t").fetchone() == (5,)  # the view reads the new file
    analyst.close()
    again = duckdb.connect(str(wh.catalog_path), read_only=True)
    assert again.execute("SELECT count(*) FROM u").fetchone() == (1,)
    assert again.execute("SELECT count(*) FROM t").fetchone() == (5,)


def test_embedded_reader_pins_file_versions_with_hard_links(tmp_path):
    """A query reads a hard-link snapshot: a partition rewritten mid-query cannot mix versions, and the
    snapshot directory is gone afterwards."""
    wh = open_warehouse(f"duckdb:///{tmp_path / 'wh'}")
    wh.write_partitions("t", pl.DataFrame({"d": ["1", "2"], "v": [1, 1]}), ["d"], [("1",), ("2",)])
    with wh.snapshot(["t"]) as snap:
        wh.write_partitions("t", pl.DataFrame({"d": ["1", "2"], "v": [2, 2]}), ["d"], [("1",), ("2",)])
        old = pl.read_parquet(snap["t"])
    assert old["v"].to_list() == [1, 1]
    assert sorted(wh.read("SELECT v FROM t")["v"].to_list()) == [2, 2]
    assert not any((tmp_path / "wh" / ".snapshots").iterdir())
    assert wh.tables() == ["t"]  # the snapshot area is not a table


def test_partition_rows_need_not_be_contiguous(warehouse_url):
    wh = open_warehouse(warehouse_url)
    mixed = pl.concat(
        [_frame("2026-01-01", 2, "a"), _frame("2026-01-02", 2, "b"), _frame("2026-01-01", 1, "c")]
    )
    wh.write_partitions("m", mixed, ["day"], [("2026-01-01",), ("2026-01-02",)])
    got = wh.read_partitions("m", "day", "2026-01-01", "2026-01-01")
    assert sorted(got["tag"].to_list()) == ["a", "a", "c"]
    assert wh.read_partitions("m", "day", "2026-01-02", "2026-01-02")["tag"].to_list() == ["b", "b"]


def test_dagster_definitions_and_the_warehouse_do_not_import_the_web_stack():
    """The Dagster definitions import the warehouse (and the warehouse its API readers live beside): none of
    it may pull in FastAPI/Starlette. Checked in a fresh interpreter, where nothing else imported them."""
    code = textwrap.dedent("""
        import sys
        import analytics_pipelines.definitions
        import analytics_pipelines.warehouse.reader, analytics_pipelines.warehouse.reader_postgres
        import analytics_pipelines.warehouse.reader_snapshot, analytics_pipelines.warehouse.rls
        print(sorted(m for m in ("fastapi", "starlette") if m in sys.modules))
    """)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_a_reader_links_a_file_a_writer_keeps_replacing(tmp_path):
    """link(2) refuses with ENOENT a name renamed over between its lookup and the link (about one in six
    here under a tight rename loop), which once cost a reader a whole partition; link_current retries while
    the name exists, and says False only for a file that is really gone."""
    import threading

    from analytics_pipelines.warehouse.files import link_current

    target = tmp_path / "data.parquet"
    target.write_bytes(b"0")
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            tmp = tmp_path / f".t{i}"
            tmp.write_bytes(str(i).encode())
            os.replace(tmp, target)
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        deadline = time.monotonic() + 1.0
        links = 0
        while time.monotonic() < deadline:
            link = tmp_path / "link"
            assert link_current(target, link)
            link.unlink()
            links += 1
    finally:
        stop.set()
        thread.join()
    assert links > 1000
    assert not link_current(tmp_path / "gone.parquet", tmp_path / "never")


@pytest.mark.postgres
def test_postgres_writes_refresh_planner_statistics_when_they_change_much_of_a_table(pg_database):
    """A COPYed table gets statistics at once (not when autovacuum comes by: until then the planner took
    thousands of rows for a few and the API's customer list ran for 50 s); a small write leaves them."""
    import psycopg

    wh = open_warehouse(pg_database)

    def estimate() -> float:
        with psycopg.connect(pg_database) as conn:
            return conn.execute(
                "SELECT c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'analytics' AND c.relname = 't'"
            ).fetchone()[0]

    wh.write_partitions("t", _frame("2026-01-01", 5000, "a"), ["day"], [("2026-01-01",)])
    assert estimate() == 5000
    wh.write_partitions("t", _frame("2026-01-02", 10, "a"), ["day"], [("2026-01-02",)])
    assert estimate() == 5000  # 10 rows of 5010: not worth a new sample
    wh.replace_table("t", _frame("2026-01-03", 9000, "b"))
    assert estimate() == 9000
