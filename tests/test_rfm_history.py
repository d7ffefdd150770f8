"""The daily RFM history wired as an incremental asset (customers/rfm_history.py, steps.customer_rfm_scores):
a daily run from the stored settled state equals the full computation, after a multi-day (backfill) run too;
retention empties old non-Sunday partitions in the same run. On a copy of the session's warehouse."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta

import polars as pl
from polars.testing import assert_frame_equal

from analytics_pipelines.assets import factory
from analytics_pipelines.customers import build as CB
from analytics_pipelines.customers import rfm
from analytics_pipelines.customers import rfm_history as H
from analytics_pipelines.registry import default_registry
from analytics_pipelines.registry.context import BuildContext
from analytics_pipelines.warehouse import open_warehouse

THROUGH = date(2026, 10, 31)  # the fixture's last day of orders
KEY = ["as_of", "scope", "scope_id", "tenant_id", "venue_id", "user_id"]


def _wh(materialized, tmp_path):
    url = f"duckdb:///{tmp_path / 'wh'}"
    shutil.copytree(materialized.warehouse_url.removeprefix("duckdb://"), url.removeprefix("duckdb://"))
    return open_warehouse(url)


def _full(wh, day: date) -> pl.DataFrame:
    return rfm.rfm_scores(CB.orders(wh, day), day)


def _same(got: pl.DataFrame, exp: pl.DataFrame) -> None:
    assert got.height > 0
    assert_frame_equal(got.sort(KEY, nulls_last=True), exp.sort(KEY, nulls_last=True))


def _run(wh, keys: list[str], now: datetime, full_refresh: bool = False, changed=None):
    """One materialization of customer_rfm_scores as the asset factory runs it (build, write)."""
    reg = default_registry()
    ctx = BuildContext(
        wh,
        reg.table("customer_rfm_scores"),
        keys,
        now,
        full_refresh,
        changed_since_last=lambda up: changed,
        registry=reg,
    )
    built = factory.build(ctx, reg)
    factory.write(ctx, reg, built)
    return built


def test_rfm_daily_run_after_a_range_equals_the_full_computation(materialized, tmp_path):
    """The job's 15-day run (full: no state yet) wrote every day as the full computation does; a daily run
    after it starts from the stored settled state (D - 8) and reads nine days of orders; a multi-day run
    (a single-run backfill) then a daily run with a gap before it: each day equals the full computation."""
    wh = _wh(materialized, tmp_path)
    for d in (date(2026, 10, 18) + timedelta(days=i) for i in range(15)):  # the fixture's range run
        _same(CB.rfm_at(wh, d), _full(wh, d))
    now = datetime(2026, 11, 3, tzinfo=UTC)
    built = _run(wh, ["2026-11-02"], now)
    assert built.metadata["mode"] == "incremental (state of 2026-10-24, fct_orders 2026-10-25..2026-11-02)"
    assert built.metadata["orders_read"] == CB.orders(wh)["day"].is_between(date(2026, 10, 25), THROUGH).sum()
    _same(CB.rfm_at(wh, date(2026, 11, 2)), _full(wh, date(2026, 11, 2)))
    assert H.stored_state_days(wh) == [date(2026, 10, 24), date(2026, 10, 25)]  # the one before it stays
    built = _run(wh, ["2026-11-02"], now)  # a re-run of the day: from the state before, still incremental
    assert built.metadata["mode"].startswith("incremental (state of 2026-10-24, ")
    _same(CB.rfm_at(wh, date(2026, 11, 2)), _full(wh, date(2026, 11, 2)))
    # a backfill over a range (full_refresh), then a daily run two days after its end
    days = [date(2026, 10, 10) + timedelta(days=i) for i in range(8)]
    built = _run(wh, [d.isoformat() for d in days], now, full_refresh=True)
    assert built.metadata["mode"] == "full (full_refresh)" and built.metadata["state_day"] == "2026-10-09"
    for d in days:
        _same(CB.rfm_at(wh, d), _full(wh, d))
    assert H.stored_state_days(wh) == [
        date(2026, 10, 9),
        date(2026, 10, 24),
        date(2026, 10, 25),
    ]  # newer kept
    built = _run(wh, ["2026-10-20"], now)
    assert built.metadata["mode"].startswith("incremental (state of 2026-10-09, ")
    _same(CB.rfm_at(wh, date(2026, 10, 20)), _full(wh, date(2026, 10, 20)))
    assert H.stored_state_days(wh) == [
        date(2026, 10, 9),
        date(2026, 10, 12),
        date(2026, 10, 24),
        date(2026, 10, 25),
    ]  # nothing older than 10-09 to drop
    # fct_orders rewritten on or before the stored state (an old backfill): the full computation
    built = _run(wh, ["2026-10-21"], now, changed=["2026-10-05", "2026-10-21"])
    assert built.metadata["mode"].startswith("full (fct_orders rewritten from 2026-10-05")
    _same(CB.rfm_at(wh, date(2026, 10, 21)), _full(wh, date(2026, 10, 21)))


def test_rfm_retention_keeps_35_days_and_every_sunday(materialized, tmp_path):
    """A run 40 days after the fixture's history empties its non-Sunday days older than 35 days in the same
    write (reported in the metadata); Sundays stay; the pure rule: rfm_daily.retained_days."""
    wh = _wh(materialized, tmp_path)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    built = _run(wh, ["2026-11-30"], now)
    old = [date(2026, 10, 18) + timedelta(days=i) for i in range(15)]
    gone = [d for d in old if (now.date() - d).days >= H.RETAIN_DAYS and d.weekday() != 6]
    assert gone and built.metadata["dropped_partitions"] == len(gone)
    assert built.metadata["dropped"] == ", ".join(d.isoformat() for d in gone)
    assert CB.rfm_as_of_dates(wh) == sorted({*old, date(2026, 11, 30)} - set(gone))
    assert {date(2026, 10, 18), date(2026, 10, 25), date(2026, 11, 1)} <= set(CB.rfm_as_of_dates(wh))
    # the run's own days are written whatever their age; the next run drops the old non-Sundays among them
    assert H.to_drop([date(2026, 10, 18), date(2026, 10, 19)], [date(2026, 10, 20)], date(2026, 12, 1)) == [
        date(2026, 10, 19)
    ]
    assert H.to_drop([date(2026, 10, 19), date(2026, 10, 20)], [], date(2026, 12, 1)) == [
        date(2026, 10, 19),
        date(2026, 10, 20),
    ]
