"""The monitoring tables through the real jobs (tests/materialized.py runs monitoring_job over the last three
days of `tiny`), the model's blocking check, the compaction and the schedules."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import dagster as dg
import polars as pl
import pytest

from analytics_pipelines.monitoring import compaction
from analytics_pipelines.monitoring import sellout as S
from analytics_pipelines.registry import default_registry
from analytics_pipelines.registry.context import BuildContext
from analytics_pipelines.source.db import SourceDB
from analytics_pipelines.warehouse import open_warehouse


def _checks(materialized, asset: str) -> dict:
    return {
        c.check_name: c
        for c in materialized.checks()
        if c.asset_key.to_user_string() == asset and c.check_name != "unique_key"
    }


def test_velocity_buckets_match_the_source_tickets_through_the_job(materialized):
    """Every bucket's tickets equal an independent count over the generated source (not staging); the
    day's fastest seller is flagged where its rate says; tickets sold only grow."""
    wh = open_warehouse(materialized.warehouse_url)
    v = wh.read_table("sales_velocity")
    assert v.height and set(v["day"].cast(pl.String)) <= {"2026-10-29", "2026-10-30", "2026-10-31"}
    assert _checks(materialized, "sales_velocity")["reconciles_to_staging"].passed
    src = SourceDB(materialized.source_url).query(
        "SELECT CAST(event_id AS VARCHAR) AS event_id, created_at FROM tickets "
        "WHERE created_at >= TIMESTAMPTZ '2026-10-29 00:00:00+00' AND created_at < TIMESTAMPTZ '2026-11-01 00:00:00+00'"
    )
    buckets = (
        src.with_columns(pl.col("created_at").dt.convert_time_zone("UTC").dt.truncate("5m").alias("b"))
        .group_by("event_id", "b")
        .agg(pl.len().alias("n"))
    )
    got = v.filter(pl.col("tickets") > 0).select("event_id", pl.col("bucket_start").alias("b"), "tickets")
    both = got.join(buckets.with_columns(pl.col("b").cast(got["b"].dtype)), on=["event_id", "b"], how="left")
    assert both.height and (both["tickets"] == both["n"]).all()
    assert got["tickets"].sum() >= 0.95 * src.height  # the rest: after a sell-out or a sale end (metadata)
    assert (v["high_velocity"] == (v["per_minute_5m"] > 10)).all()
    assert (
        v.sort("event_id", "bucket_start")
        .group_by("event_id")
        .agg(pl.col("tickets_sold").diff().min())["tickets_sold"]
        .fill_null(0)
        .min()
        >= 0
    )


def test_sellout_forecast_and_its_performance_rows_through_the_job(materialized):
    wh = open_warehouse(materialized.warehouse_url)
    fc = wh.read_table("sellout_forecast")
    assert (
        fc.height and fc.filter(pl.col("eta_minutes_p50").is_null() & pl.col("reason").is_null()).is_empty()
    )
    checks = _checks(materialized, "sellout_forecast")
    assert checks["valid_forecast"].passed
    # tiny: 4 sold-out events, too few to compare with the linear rule: skipped, a warning, not a pass
    assert not checks["beats_linear_rule"].passed and checks["beats_linear_rule"].severity.value == "WARN"
    perf = wh.read_table("model_performance").filter(pl.col("model_family") == "sellout")
    assert set(perf["model"]) == {"curve_knn", "seed_linear"}
    assert set(perf["bucket"].drop_nulls()) == {"25%_sold", "50%_sold", "75%_sold"}


def test_a_model_worse_than_the_linear_rule_fails_its_check_and_the_stored_forecast_stays(
    materialized, monkeypatch
):
    wh = open_warehouse(materialized.warehouse_url)
    before = wh.read_table("sellout_forecast").sort("event_id")
    worse = {
        f: {"n": 20, "n_events": 20, "model_mae": 500.0, "linear_mae": 100.0, "coverage": 0.5}
        for f in S.CHECKPOINTS
    }
    monkeypatch.setattr(S, "score", lambda bt: worse)
    table = default_registry().table("sellout_forecast")
    ctx = BuildContext(wh, table, [], datetime(2026, 11, 1, 0, 10, tzinfo=UTC))
    from analytics_pipelines.monitoring.steps import check_beats_linear, sellout_forecast

    built = sellout_forecast(ctx)
    assert built.already_written == ("sellout_forecast",)
    assert built.frames["sellout_forecast"].sort("event_id").equals(before)
    outcome = check_beats_linear(ctx, built)
    assert not outcome.passed and not outcome.skipped and outcome.metadata["kept_previous_forecast"]
    # through the real job: the blocking check fails the run; the forecast table is unchanged
    result = materialized.rerun("monitoring_job", "2026-10-31", "2026-10-31")
    assert not result.success
    assert wh.read_table("sellout_forecast").sort("event_id").equals(before)
    failed = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.event_specific_data.passed
    ]
    assert [(c.check_name, c.severity.value) for c in failed] == [("beats_linear_rule", "ERROR")]
    monkeypatch.undo()
    assert materialized.rerun("monitoring_job", "2026-10-31", "2026-10-31").success  # as it was


def test_compaction_keeps_every_ticket_in_hours_and_drops_only_what_it_compacted(materialized, warehouse_url):
    src = open_warehouse(materialized.warehouse_url).read_table("sales_velocity")
    wh = open_warehouse(warehouse_url)
    days = sorted({d.isoformat() for d in src["day"].to_list()})
    wh.write_partitions("sales_velocity", src, ["day"], [(d,) for d in days])
    now = datetime(2026, 11, 30, 4, tzinfo=UTC)  # 30 days: every day before 2026-10-31 is compacted
    out = compaction.compact(wh, now, 30)
    assert out["days_compacted"] == len(days) - 1 and out["cutoff"] == "2026-10-31"
    hourly = wh.read_table("sales_velocity_hourly")
    left = wh.read_table("sales_velocity")
    assert set(left["day"].cast(pl.String)) == {"2026-10-31"}
    old = src.filter(pl.col("day").cast(pl.String) < "2026-10-31")
    assert hourly["tickets"].sum() == old["tickets"].sum()
    assert hourly["buckets_compacted"].sum() == old.height
    assert hourly.select("event_id", "hour").is_duplicated().sum() == 0
    again = compaction.compact(wh, now, 30)  # nothing left to compact: nothing changes
    assert again["days_compacted"] == 0 and wh.read_table("sales_velocity_hourly").height == hourly.height


def test_velocity_schedules_request_todays_partition_and_the_nightly_compaction():
    from analytics_pipelines.definitions import defs

    repo = defs.get_repository_def()
    scheds = {s.name: s for s in repo.schedule_defs}
    assert scheds["velocity_refresh_schedule"].cron_schedule == "*/5 * * * *"
    with dg.instance_for_test() as instance, contextlib.ExitStack() as contexts:
        ctx = contexts.enter_context(
            dg.build_schedule_context(
                instance=instance,
                repository_def=repo,
                scheduled_execution_time=datetime(2026, 11, 21, 23, 55, tzinfo=UTC),
            )
        )
        [req] = scheds["velocity_refresh_schedule"].evaluate_tick(ctx).run_requests
        assert req.partition_key == "2026-11-21" and req.tags["refresh"] == "velocity"
        ctx = contexts.enter_context(
            dg.build_schedule_context(
                instance=instance,
                repository_def=repo,
                scheduled_execution_time=datetime(2026, 11, 22, 3, 45, tzinfo=UTC),
            )
        )
        [req] = scheds["velocity_compaction_schedule"].evaluate_tick(ctx).run_requests
        assert req.run_config["ops"]["compact_velocity"]["config"]["now"] == "2026-11-22T03:45:00+00:00"


@pytest.mark.parametrize("name", ["TT_VELOCITY_COMPACT_AFTER_DAYS", "TT_VELOCITY_HIGH_PER_MINUTE"])
def test_velocity_settings_are_validated(name):
    from analytics_pipelines.settings import Settings

    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: "soon" if "DAYS" in name else "nan"})
    assert Settings.from_env({}).velocity.high_per_minute == 10.0
