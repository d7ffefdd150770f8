"""Monthly compaction of the embedded warehouse (warehouse/compaction.py, months.py): same answers through
every reader, a re-run of a day inside a compacted month, a compaction killed before its commit, and
readers querying in a loop while compaction and partition rewrites run in another process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, date, datetime, timedelta

import duckdb
import polars as pl
import pytest

from analytics_pipelines.warehouse import catalog, open_warehouse
from analytics_pipelines.warehouse.compaction import closed_before, compact, compact_table
from analytics_pipelines.warehouse.months import MANIFEST, month_file
from analytics_pipelines.warehouse.reader_snapshot import SnapshotReader

DAYS = [date(2026, 1, 1) + timedelta(days=i) for i in range(120)]  # January .. April 30
Q = "SELECT count(*) AS n, sum(v) AS s, count(DISTINCT day) AS days FROM t"


def _frame(days, per_day: int = 50, shift: int = 0) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "day": [d for d in days for _ in range(per_day)],
            "venue": [f"v{i % 7}" for _ in days for i in range(per_day)],
            "v": [d.toordinal() * 1000 + i + shift for d in days for i in range(per_day)],
        }
    )


def _keys(days):
    return [(d.isoformat(),) for d in days]


def _state(rows) -> tuple:
    return tuple(int(x) for x in rows[0])


def _warehouse(tmp_path, per_day: int = 50):
    url = f"duckdb:///{tmp_path / 'warehouse'}"
    wh = open_warehouse(url)
    wh.write_partitions("t", _frame(DAYS, per_day), ["day"], _keys(DAYS))
    return url, wh


def _catalog(wh, sql: str = Q):
    with duckdb.connect(str(wh.catalog_path), read_only=True) as conn:
        return _state(conn.execute(sql).fetchall())


def _checksum(wh) -> tuple:
    return _state(wh.read(Q).rows())


def test_closed_months():
    assert closed_before(datetime(2026, 5, 2, tzinfo=UTC), 3) == "2026-04"  # April 30 is only 2 days old
    assert closed_before(datetime(2026, 5, 4, tzinfo=UTC), 3) == "2026-05"  # April is closed
    assert closed_before(datetime(2026, 5, 4, tzinfo=UTC), 0) == "2026-05"


def test_compaction_keeps_every_answer_and_removes_daily_files_after_the_grace(tmp_path):
    _, wh = _warehouse(tmp_path)
    before = (_checksum(wh), _catalog(wh), wh.read_table("t").sort("day", "v").hash_rows().sum())
    part = wh.read_partitions("t", "day", "2026-01-30", "2026-02-02").sort("day", "v")
    out = compact(wh, datetime(2026, 5, 10, tzinfo=UTC), after_days=3, grace_seconds=3600)
    assert out["months_compacted"] == 4 and out["rows_compacted"] == 120 * 50
    assert out["daily_files_removed"] == 0  # within the grace period: kept, but no reader reads them
    assert len(wh._files("t")) == 4
    after = (_checksum(wh), _catalog(wh), wh.read_table("t").sort("day", "v").hash_rows().sum())
    assert after == before
    assert wh.read_partitions("t", "day", "2026-01-30", "2026-02-02").sort("day", "v").equals(part)
    assert wh.read_partitions("t", "day", "2026-01-30", "2026-02-02", columns=["v"]).columns == ["v"]
    # a second run compacts nothing more; with the grace over it removes the 120 daily directories
    again = compact(wh, datetime(2026, 5, 10, tzinfo=UTC), after_days=3, grace_seconds=0)
    assert again["months_compacted"] == 0 and again["daily_files_removed"] == 120
    assert not any(p.name.startswith("day=") for p in (tmp_path / "warehouse" / "t").iterdir())
    assert (_checksum(wh), _catalog(wh)) == before[:2]
    assert wh.tables() == ["t"]
    # the compacted months are read from the catalog's DuckDB table; of the files, only the zero-row schema
    # file (no daily file is left, no month file is opened)
    with duckdb.connect(str(wh.catalog_path), read_only=True) as conn:
        plan = conn.execute("EXPLAIN ANALYZE SELECT count(*) FROM t").fetchall()[0][1]
    assert "tt_compacted.t" in plan and "Total Files Read: 1" in plan
    # the embedded reader (analytics-pipelines sql) reads the same table through the attached catalog
    plan = wh.read("EXPLAIN SELECT sum(v) FROM t")["explain_value"][0]
    assert "tt_catalog_" in plan and "READ_PARQUET" not in plan


def test_catalog_tables_follow_month_rewrites_and_heal(tmp_path):
    """A month file rewritten without the catalog's refresh (a writer killed in between): the embedded reader
    reads the file (the catalog's rows are no longer current), the catalog keeps the previous rows until the
    next compaction run rebuilds it; a re-run through write_partitions refreshes it at once."""
    _, wh = _warehouse(tmp_path)
    compact(wh, datetime(2026, 5, 10, tzinfo=UTC), after_days=3, grace_seconds=0)
    before = _checksum(wh)
    assert _catalog(wh) == before
    # a day of January re-run with other values: the month file and the catalog's rows change together
    wh.write_partitions("t", _frame(DAYS[4:5], shift=7), ["day"], _keys(DAYS[4:5]))
    moved = _checksum(wh)
    assert moved[1] == before[1] + 50 * 7 and _catalog(wh) == moved
    # the same again, but the catalog's refresh never runs
    jan = month_file(tmp_path / "warehouse" / "t", "2026-01")
    df = pl.read_parquet(jan).with_columns(pl.col("v") + 1)
    wh._atomic_write(df, jan)
    assert _checksum(wh) == (moved[0], moved[1] + 31 * 50, moved[2])  # the reader reads the file
    assert _catalog(wh) == moved  # the analysts' catalog: the previous rows
    assert catalog.stale(wh.catalog_path, wh.root) == ["t"]
    out = compact(wh, datetime(2026, 5, 10, tzinfo=UTC), after_days=3, grace_seconds=0)
    assert out["months_compacted"] == 0 and out["catalog_rebuilt"] == ["t"]
    assert _catalog(wh) == _checksum(wh) and catalog.stale(wh.catalog_path, wh.root) == []


def test_tables_over_the_catalog_limit_stay_views_over_month_files(tmp_path, monkeypatch):
    monkeypatch.setenv("TT_WAREHOUSE_CATALOG_MAX_ROWS", str(120 * 50 - 1))
    _, wh = _warehouse(tmp_path)
    before = _checksum(wh)
    compact(wh, datetime(2026, 5, 10, tzinfo=UTC), after_days=3, grace_seconds=0)
    assert _catalog(wh) == _checksum(wh) == before
    with duckdb.connect(str(wh.catalog_path), read_only=True) as conn:
        plan = conn.execute("EXPLAIN ANALYZE SELECT count(*) FROM t").fetchall()[0][1]
        assert catalog.native_months(conn) == {}
    assert "tt_compacted" not in plan and "Total Files Read: 4" in plan
    # a day re-run in a compacted month: the view reads the month file, no catalog rebuild is needed
    at = os.stat(wh.catalog_path).st_ino
    wh.write_partitions("t", _frame(DAYS[4:5], shift=7), ["day"], _keys(DAYS[4:5]))
    assert os.stat(wh.catalog_path).st_ino == at
    assert _catalog(wh) == _checksum(wh) == (before[0], before[1] + 50 * 7, before[2])


def test_the_catalog_limit_is_lower_for_row_level_tables(tmp_path, monkeypatch):
    """The aggregates (marts) get the higher limit, the raw/staging/fact tables the lower one: the same rows
    go into the catalog as `t`, and stay month files as `raw_t` and `fct_t`."""
    monkeypatch.delenv("TT_WAREHOUSE_CATALOG_MAX_ROWS", raising=False)
    assert catalog.max_rows("venue_analytics") == catalog.AGGREGATE_MAX_ROWS > catalog.DEFAULT_MAX_ROWS
    assert {catalog.max_rows(t) for t in ("raw_tickets", "stg_orders", "fct_orders")} == {
        catalog.DEFAULT_MAX_ROWS
    }
    monkeypatch.setattr(catalog, "DEFAULT_MAX_ROWS", 120 * 50 - 1)  # below the table's 6,000 rows
    _, wh = _warehouse(tmp_path)
    for name in ("raw_t", "fct_t"):
        wh.write_partitions(name, _frame(DAYS), ["day"], _keys(DAYS))
    compact(wh, datetime(2026, 5, 10, tzinfo=UTC), after_days=3, grace_seconds=0)
    with duckdb.connect(str(wh.catalog_path), read_only=True) as conn:
        assert set(catalog.native_months(conn)) == {"t"}
        for name in ("t", "raw_t", "fct_t"):
            assert _state(conn.execute(Q.replace("FROM t", f"FROM {name}")).fetchall()) == _checksum(wh)
    # one limit for every table when the variable is set
    monkeypatch.setenv("TT_WAREHOUSE_CATALOG_MAX_ROWS", "7")
    assert catalog.max_rows("venue_analytics") == catalog.max_rows("raw_tickets") == 7


def test_a_partition_column_named_like_the_raw_layers(tmp_path):
    """raw_* and stg_* tables are partitioned by `_partition`: compacted like any other daily table."""
    wh = open_warehouse(f"duckdb:///{tmp_path / 'warehouse'}")
    days = DAYS[:40]
    df = _frame(days).with_columns(pl.col("day").cast(pl.String).alias("_partition"))
    wh.write_partitions("raw_t", df, ["_partition"], _keys(days))
    before = wh.read("SELECT count(*) AS n, sum(v) AS s FROM raw_t").rows()
    out = compact(wh, datetime(2026, 3, 10, tzinfo=UTC), grace_seconds=0)
    assert out["changed"][0]["months"] == ["2026-01", "2026-02"]  # February holds 9 days, closed
    assert wh.read("SELECT count(*) AS n, sum(v) AS s FROM raw_t").rows() == before
    assert wh.read_partitions("raw_t", "_partition", "2026-01-31", "2026-02-01").height == 100
    # a text partition: the view keeps the plain glob, so only the plain schema file is written
    plain, by_day = catalog.anchors(wh.root / "raw_t", "_partition")
    assert plain.exists() and not by_day.exists()


def test_open_month_is_not_compacted_and_new_days_stay_visible(tmp_path):
    _, wh = _warehouse(tmp_path)
    out = compact(wh, datetime(2026, 4, 20, tzinfo=UTC), after_days=3, grace_seconds=0)
    assert out["changed"][0]["months"] == ["2026-01", "2026-02", "2026-03"]  # April is open
    new_day = [date(2026, 5, 1)]
    wh.write_partitions("t", _frame(new_day, 10), ["day"], _keys(new_day))  # a new day, a new month
    expected = (120 * 50 + 10, None, 121)
    got = _catalog(wh)
    assert (got[0], got[2]) == (expected[0], expected[2])
    assert _checksum(wh) == got


def test_catalog_views_skip_the_daily_files_a_date_range_leaves_out(tmp_path):
    """The open month's daily files are named by day: a catalog query over a date range opens only the
    files of its days (none for a range inside the compacted months), with the same answers as the
    embedded reader's; the schema file keeps the view working when no daily file is left."""
    _, wh = _warehouse(tmp_path)
    compact(wh, datetime(2026, 4, 20, tzinfo=UTC), after_days=3, grace_seconds=0)  # April stays daily files

    def files_read(sql: str) -> list[int]:
        with duckdb.connect(str(wh.catalog_path), read_only=True) as conn:
            plan = conn.execute("EXPLAIN ANALYZE " + sql).fetchall()[0][1]
        return [int(x.split(":")[1].strip(" │")) for x in plan.splitlines() if "Total Files Read:" in x]

    span = "SELECT count(*) AS n, sum(v) AS s, count(DISTINCT day) AS days FROM t WHERE day BETWEEN {} AND {}"
    for lo, hi, opened in [
        ("DATE '2026-02-10'", "DATE '2026-03-31'", 0),
        ("DATE '2026-03-30'", "DATE '2026-04-02'", 2),
        ("DATE '2026-04-29'", "DATE '2026-05-31'", 2),
    ]:
        sql = span.format(lo, hi)
        assert files_read(sql) == [opened], sql
        assert _catalog(wh, sql) == _state(wh.read(sql).rows()), sql
    compact(wh, datetime(2026, 5, 20, tzinfo=UTC), after_days=3, grace_seconds=0)  # April too: no daily file
    assert not list((wh.root / "t").glob("day=*"))
    assert _catalog(wh) == _checksum(wh) == (120 * 50, _checksum(wh)[1], 120)


def test_rerunning_a_day_inside_a_compacted_month(tmp_path):
    """Re-running a partition of a compacted month rewrites that month's file: the same rows give the same
    checksum through every reader; different rows replace exactly that day."""
    _, wh = _warehouse(tmp_path)
    reader = SnapshotReader(tmp_path / "warehouse", tables=["t"], background=False)
    try:
        before = (_checksum(wh), _catalog(wh), tuple(reader.query("x", Q).rows[0]))
        compact(wh, datetime(2026, 5, 10, tzinfo=UTC), grace_seconds=0)
        day = [date(2026, 2, 14)]
        wh.write_partitions("t", _frame(day), ["day"], _keys(day))  # the same rows again
        reader.refresh()
        assert (_checksum(wh), _catalog(wh), tuple(reader.query("x", Q).rows[0])) == before
        assert not (
            tmp_path / "warehouse" / "t" / "day=2026-02-14"
        ).exists()  # the month file, not a day file
        changed = _frame(day, per_day=20, shift=7)
        wh.write_partitions("t", changed, ["day"], _keys(day))
        reader.refresh()
        got = wh.read_partitions("t", "day", "2026-02-14", "2026-02-14").sort("v")
        assert got.equals(changed.sort("v"))
        n, s, days = _checksum(wh)
        assert (n, days) == (before[0][0] - 30, 120)
        assert s == before[0][1] - _frame(day)["v"].sum() + changed["v"].sum()
        assert _catalog(wh) == (n, s, days) == tuple(int(x) for x in reader.query("x", Q).rows[0])
        # emptying a day of a compacted month, and a write spanning a compacted and an open month
        both = [date(2026, 3, 31), date(2026, 4, 1)]
        wh.write_partitions("t", _frame(both[1:], 5), ["day"], _keys(both))
        assert wh.count("t", "day = %s", ["2026-03-31"]) == 0
        assert wh.count("t", "day = %s", ["2026-04-01"]) == 5
    finally:
        reader.close()


def test_retention_drops_whole_and_partial_compacted_months(tmp_path):
    _, wh = _warehouse(tmp_path)
    compact(wh, datetime(2026, 5, 10, tzinfo=UTC), grace_seconds=0)
    dropped = wh.drop_partitions("t", "day", "2026-02-10")
    assert dropped == [d.isoformat() for d in DAYS if d < date(2026, 2, 10)]
    assert not month_file(tmp_path / "warehouse" / "t", "2026-01").exists()
    assert _checksum(wh)[2] == 120 - 40 == _catalog(wh)[2]
    assert _checksum(wh) == _catalog(wh)  # the catalog's rows of the partly dropped February follow


def test_catalog_table_takes_a_column_added_inside_a_compacted_month(tmp_path):
    _, wh = _warehouse(tmp_path)
    compact(wh, datetime(2026, 5, 10, tzinfo=UTC), grace_seconds=0)
    wh.write_partitions(
        "t", _frame(DAYS[40:41]).with_columns(pl.lit(1).alias("extra")), ["day"], _keys(DAYS[40:41])
    )
    q = "SELECT count(*) AS n, sum(v) AS s, count(extra) AS e FROM t"
    assert _state(wh.read(q).rows()) == _catalog(wh, q) == (120 * 50, _checksum(wh)[1], 50)


_COMPACTOR = textwrap.dedent("""
    import sys, time
    from analytics_pipelines.warehouse import open_warehouse, months
    from analytics_pipelines.warehouse.compaction import compact_table
    save = months.save
    def stop_before_commit(base, column, committed):
        if committed:  # the month file is written; the manifest naming it is not
            print("written", flush=True)
            time.sleep(60)
        save(base, column, committed)
    months.save = stop_before_commit
    compact_table(open_warehouse(sys.argv[1]), "t", "2026-05", grace_seconds=0)
""")


def test_compaction_killed_between_writing_and_committing(tmp_path):
    url, wh = _warehouse(tmp_path)
    before = (_checksum(wh), _catalog(wh))
    proc = subprocess.Popen(
        [sys.executable, "-c", _COMPACTOR, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "written", proc.stderr.read()
        base = tmp_path / "warehouse" / "t"
        assert month_file(base, "2026-01").exists()  # the uncommitted month file is there ...
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert (_checksum(wh), _catalog(wh)) == before  # ... and ignored: the daily files are the data
    reader = SnapshotReader(tmp_path / "warehouse", tables=["t"], background=False)
    try:
        assert tuple(int(x) for x in reader.query("x", Q).rows[0]) == before[0]
    finally:
        reader.close()
    # the table stays writable, and the next compaction completes from the daily files
    day = [date(2026, 1, 3)]
    wh.write_partitions("t", _frame(day), ["day"], _keys(day))
    out = compact_table(wh, "t", "2026-05", grace_seconds=0)
    assert out["months"] == ["2026-01", "2026-02", "2026-03", "2026-04"]
    assert (_checksum(wh), _catalog(wh)) == before
    assert (base / MANIFEST).exists()


_WRITER = textwrap.dedent("""
    import sys, polars as pl
    from datetime import date, timedelta
    from analytics_pipelines.warehouse import catalog, open_warehouse
    from analytics_pipelines.warehouse.compaction import compact_table
    url, grace = sys.argv[1], float(sys.argv[2])
    wh = open_warehouse(url)
    def frame(d, shift):
        return pl.DataFrame({"day": [d] * 50, "venue": [f"v{i % 7}" for i in range(50)],
                             "v": [d.toordinal() * 1000 + i + shift for i in range(50)]})
    for r, month in enumerate(["2026-02", "2026-03", "2026-04", "2026-05"]):
        compact_table(wh, "t", month, grace_seconds=grace)      # one more month compacted
        for d in (date(2026, 1, 15), date(2026, 4, 20)):        # a compacted day and an open one (at first)
            wh.write_partitions("t", frame(d, 0 if r % 2 else 7), ["day"], [(d.isoformat(),)])
    print("done", flush=True)
""")


def _states() -> set[tuple]:
    """Every state the writer can leave: each of its two days with either version of its rows."""
    base = _frame(DAYS)
    out = set()
    for a in (0, 7):
        for b in (0, 7):
            s = base["v"].sum() + 50 * (a + b)
            out.add((len(DAYS) * 50, int(s), len(DAYS)))
    return out


@pytest.mark.parametrize("grace", [0, 3600])
def test_readers_during_compaction_and_rewrites_see_before_or_after(tmp_path, grace):
    """A process compacts month after month and rewrites a day in a compacted month and one in an open month
    between; meanwhile this process queries in loops through the embedded reader (hard-link snapshots), the
    API's copy (SnapshotReader) and the analysts' catalog file. Nobody fails, and every answer is one of the
    writer's whole states. Grace 0 removes daily files right after each commit (the listing readers retry);
    the catalog readers are checked with the default grace (a session holding the previous catalog keeps
    reading its daily files until the grace is over)."""
    url, wh = _warehouse(tmp_path)
    states = _states()
    assert _checksum(wh) in states
    reader = SnapshotReader(tmp_path / "warehouse", tables=["t"], background=False)
    held = duckdb.connect(str(wh.catalog_path), read_only=True)  # an analyst's session, opened before
    seen: dict[str, int] = {}
    errors: list[BaseException] = []
    stop = threading.Event()

    def loop(name, fn):
        try:
            while not stop.is_set():
                got = fn()
                assert got in states, (name, got)
                seen[name] = seen.get(name, 0) + 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            import traceback

            errors.append((name, exc, traceback.format_exc()))

    def api():
        reader.refresh()
        return tuple(int(x) for x in reader.query("x", Q).rows[0])

    loops = {"embedded": lambda: _checksum(wh), "api": api}
    if grace:
        loops |= {"catalog": lambda: _catalog(wh), "held_catalog": lambda: _state(held.execute(Q).fetchall())}
    threads = [threading.Thread(target=loop, args=item, daemon=True) for item in loops.items()]
    for t in threads:
        t.start()
    writer = subprocess.run(
        [sys.executable, "-c", _WRITER, url, str(grace)], capture_output=True, text=True, timeout=300
    )
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    held.close()
    reader.close()
    assert writer.returncode == 0, writer.stderr
    assert not errors, errors
    assert set(seen) == set(loops) and min(seen.values()) >= 3, seen
    assert len(wh._files("t")) == 4  # January .. April compacted
    assert _checksum(wh) == _catalog(wh) and _checksum(wh) in states


def test_postgres_warehouse_has_nothing_to_compact(pg_database):
    wh = open_warehouse(pg_database)
    assert "skipped" in compact(wh, datetime(2026, 5, 10, tzinfo=UTC))


def test_the_job_and_its_schedule(tmp_path, monkeypatch):
    """warehouse_compaction_job compacts through the Dagster op (settings from the environment), and the
    hourly schedule passes its tick time as `now`."""
    import contextlib

    import dagster as dg

    from analytics_pipelines.definitions import defs as project
    from analytics_pipelines.jobs.operations import warehouse_compaction_job
    from analytics_pipelines.resources import WarehouseResource

    url, wh = _warehouse(tmp_path)
    before = _checksum(wh)
    monkeypatch.setenv("TT_WAREHOUSE_COMPACT_GRACE_SECONDS", "0")
    defs = dg.Definitions(
        jobs=[warehouse_compaction_job], resources={"warehouse": WarehouseResource(url=url)}
    )
    result = defs.resolve_job_def("warehouse_compaction_job").execute_in_process(
        run_config={"ops": {"compact_warehouse": {"config": {"now": "2026-04-20T00:50:00+00:00"}}}}
    )
    assert result.success
    out = result.output_for_node("compact_warehouse")
    assert (out["months_compacted"], out["daily_files_removed"], out["closed_before"]) == (3, 90, "2026-04")
    assert _checksum(wh) == _catalog(wh) == before
    repo = project.get_repository_def()
    schedule = next(s for s in repo.schedule_defs if s.name == "warehouse_compaction_schedule")
    with dg.instance_for_test() as instance, contextlib.ExitStack() as contexts:
        ctx = contexts.enter_context(
            dg.build_schedule_context(
                instance=instance,
                repository_def=repo,
                scheduled_execution_time=datetime(2026, 4, 20, 0, 50, tzinfo=UTC),
            )
        )
        [req] = schedule.evaluate_tick(ctx).run_requests
    assert req.run_config["ops"]["compact_warehouse"]["config"]["now"] == "2026-04-20T00:50:00+00:00"
    with pytest.raises(ValueError, match="TT_WAREHOUSE_COMPACT"):
        from analytics_pipelines.settings import Settings

        Settings.from_env({"TT_WAREHOUSE_COMPACT_AFTER_DAYS": "-1"})
