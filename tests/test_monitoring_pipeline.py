"""The monitoring tables through the real jobs (tests/materialized.py runs monitoring_job over the last three
days of `tiny`), the model's blocking check, the compaction and the schedules."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl
import pytest
import sqlalchemy as sa
from notify_servers import smtp_server

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
    assert _checks(materialized, "sellout_forecast")["valid_forecast"].passed
    # the forecast's model is the stored library's (sellout_model_job ran first; tiny: no event sold out, an
    # empty library, every ETA row says there are too few past sell-out curves)
    lib = wh.read_table("sellout_curves")
    assert set(fc["model_version"]) == (set(lib["model_version"]) or {"curve_knn-1-no-library"})
    assert set(wh.read_table("sellout_calibration")["bucket"]) == {"25%_sold", "50%_sold", "75%_sold", "all"}
    checks = _checks(materialized, "sellout_curves")
    # tiny: 4 sold-out events, too few to compare with the linear rule: skipped, a warning, not a pass
    assert not checks["beats_linear_rule"].passed and checks["beats_linear_rule"].severity.value == "WARN"
    perf = wh.read_table("model_performance").filter(pl.col("model_family") == "sellout")
    assert set(perf["model"]) == {"curve_knn", "seed_linear"}
    assert set(perf["bucket"].drop_nulls()) == {"25%_sold", "50%_sold", "75%_sold"}
    assert "interval_coverage_80_calibrated" in set(perf["metric"])


def test_velocity_anomalies_through_their_job(materialized):
    """velocity_anomaly_job over the fixture's last three days: its check passed; every row scored against a
    fitted baseline, days within the run's range; the velocity_anomaly rule is seeded by the alert job."""
    wh = open_warehouse(materialized.warehouse_url)
    assert _checks(materialized, "velocity_anomalies")["scores_valid"].passed
    va = wh.read_table("velocity_anomalies") if "velocity_anomalies" in wh.tables() else None
    if va is not None and va.height:
        assert set(va["day"].cast(pl.String)) <= {"2026-10-29", "2026-10-30", "2026-10-31"}
        assert (va["scale"] > 0).all() and va["n_weeks"].min() >= 3
    from analytics_pipelines.ops.alerts import alert_rules
    from analytics_pipelines.ops.db import ops_engine

    with ops_engine(materialized.env["TT_OPS_URL"]).connect() as conn:
        assert "velocity_anomaly" in set(conn.execute(sa.select(alert_rules.c.name)).scalars())


def test_the_five_minute_refresh_reads_the_stored_library_and_never_rebuilds_it(materialized, monkeypatch):
    """monitoring_job (the velocity_refresh_schedule's job) materializes velocity and the forecast only: the
    curve library, its backtest and calibration come from sellout_model_job (daily)."""
    from analytics_pipelines.monitoring import curves as C

    wh = open_warehouse(materialized.warehouse_url)
    library = wh.read_table("sellout_curves").sort("event_id")
    calibration = wh.read_table("sellout_calibration").sort("bucket")

    def rebuilt(*args, **kwargs):
        raise AssertionError("the 5-minute refresh rebuilt the curve library or its backtest")

    for module, name in ((C, "curves"), (S, "backtest"), (S, "score")):
        monkeypatch.setattr(module, name, rebuilt)
    result = materialized.rerun("monitoring_job", "2026-10-31", "2026-10-31")
    assert result.success
    written = {
        e.asset_key.to_user_string()
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
    }
    assert written == {"sales_velocity", "sellout_forecast"}
    assert wh.read_table("sellout_curves").sort("event_id").equals(library)
    assert wh.read_table("sellout_calibration").sort("bucket").equals(calibration)
    assert set(wh.read_table("sellout_forecast")["model_version"]) == (
        set(library["model_version"]) or {"curve_knn-1-no-library"}
    )


def test_a_model_worse_than_the_linear_rule_fails_its_check_and_the_stored_library_stays(
    materialized, monkeypatch
):
    wh = open_warehouse(materialized.warehouse_url)
    before = wh.read_table("sellout_curves").sort("event_id")
    cal_before = wh.read_table("sellout_calibration").sort("bucket")
    worse = {
        f: {"n": 20, "n_events": 20, "model_mae": 500.0, "linear_mae": 100.0, "coverage": 0.5}
        for f in S.CHECKPOINTS
    }
    monkeypatch.setattr(S, "score", lambda bt: worse)
    table = default_registry().table("sellout_curves")
    ctx = BuildContext(wh, table, [], datetime(2026, 11, 1, 0, 10, tzinfo=UTC))
    from analytics_pipelines.monitoring.steps import check_beats_linear, sellout_model

    built = sellout_model(ctx)
    assert built.already_written == ("sellout_curves", "sellout_calibration")
    assert built.frames["sellout_curves"].sort("event_id").equals(before)
    outcome = check_beats_linear(ctx, built)
    assert not outcome.passed and not outcome.skipped and outcome.metadata["kept_previous_library"]
    # through the real job: the blocking check fails the run; the library and calibration are unchanged
    result = materialized.rerun("sellout_model_job", None, None)
    assert not result.success
    assert wh.read_table("sellout_curves").sort("event_id").equals(before)
    assert wh.read_table("sellout_calibration").sort("bucket").equals(cal_before)
    failed = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.event_specific_data.passed
    ]
    assert [(c.check_name, c.severity.value) for c in failed] == [("beats_linear_rule", "ERROR")]
    monkeypatch.undo()
    assert materialized.rerun("sellout_model_job", None, None).success  # as it was


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
    # the curve library and backtest: daily, their own job (the 5-minute job does not select them)
    model = scheds["sellout_model_schedule"]
    assert model.cron_schedule == "15 5 * * *" and model.job_name == "sellout_model_job"
    selected = {k.to_user_string() for k in repo.get_job("monitoring_job").asset_layer.selected_asset_keys}
    assert "sellout_curves" not in selected and "sellout_forecast" in selected


@pytest.mark.parametrize("name", ["TT_VELOCITY_COMPACT_AFTER_DAYS", "TT_VELOCITY_HIGH_PER_MINUTE"])
def test_velocity_settings_are_validated(name):
    from analytics_pipelines.settings import Settings

    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: "soon" if "DAYS" in name else "nan"})
    assert Settings.from_env({}).velocity.high_per_minute == 10.0


def _expected(frame: pl.DataFrame, now: datetime, op) -> set[str]:
    """Venues whose last value in the hour before the metric's newest row <= now meets `op` (the seeded
    rules' aggregation `last` over a 60-minute window), recomputed from the job's table."""
    f = frame.filter(pl.col("at") <= now)
    anchor = f["at"].max()
    last = (
        f.filter(pl.col("at") > anchor - timedelta(minutes=60))
        .sort("at")
        .group_by("venue_id")
        .agg(pl.col("value").last())
    )
    return {f"venue:{v}" for v in last.filter(op(pl.col("value")))["venue_id"]}


def _evaluate_and_mail(wh, eng, now, want: list[tuple[str, str]], rules: set[str]) -> None:
    """Evaluate the velocity/fraud rules at `now` through a real SMTP server: exactly `want` triggered, one
    e-mail per alert naming its rule, nothing new when the same data is evaluated again (persisted
    instances)."""
    from analytics_pipelines.alerting import notifier as N
    from analytics_pipelines.anomalies import alerts as AL
    from analytics_pipelines.notify import SmtpSettings

    with smtp_server() as (port, inbox):
        notifier = N.Notifier(
            smtp=SmtpSettings(host="127.0.0.1", port=port), emails=("ops@example.com",), sleep=lambda s: None
        )
        s = AL.evaluate_velocity_fraud(eng, wh, now, notifier)
        assert sorted(s.triggered) == want
        subjects = [m["Subject"] for _, m in inbox]
        named = sorted(next((r for r in rules if r in subj), subj) for subj in subjects)
        assert named == sorted(rule for rule, _ in want), subjects
        again = AL.evaluate_velocity_fraud(eng, wh, now, notifier)  # the same data evaluated again
        assert not again.triggered and len(inbox) == len(want)


def test_seeded_fraud_spike_rule_on_the_table_fraud_job_built(materialized, tmp_path):
    """fraud_spike over fraud_metrics_hourly as fraud_job wrote it, at its worst hour: exactly the venues the
    table puts above 5 %, one e-mail each, no duplicate on re-evaluation."""
    from analytics_pipelines.ops.db import ops_engine

    wh = open_warehouse(materialized.warehouse_url)
    f = wh.read_table("fraud_metrics_hourly").with_columns(pl.col("hour").alias("at"))
    now = f.sort("fraud_pct")["hour"][-1]
    want = sorted(
        ("fraud_spike", v) for v in _expected(f.rename({"fraud_pct": "value"}), now, lambda c: c > 5)
    )
    assert want
    _evaluate_and_mail(wh, ops_engine(f"sqlite:///{tmp_path / 'ops.sqlite'}"), now, want, {"fraud_spike"})


def test_seeded_velocity_rules_on_the_table_monitoring_job_built(materialized, tmp_path):
    """high_velocity / sellout_imminent over sales_velocity as monitoring_job wrote it. tiny's fastest bucket
    sells < 1 ticket/min and no bucket is imminent: at the seeded thresholds nothing fires (and nothing is
    mailed); with high_velocity's threshold edited in the ops store (as a user would) below the fastest rate,
    exactly the venues the table puts above it alert, one e-mail each, no duplicate on re-evaluation."""
    from analytics_pipelines.anomalies import alerts as AL
    from analytics_pipelines.ops.alerts import alert_rules
    from analytics_pipelines.ops.db import ops_engine

    wh = open_warehouse(materialized.warehouse_url)
    v = wh.read_table("sales_velocity").with_columns(pl.col("bucket_start").alias("at"))
    now = v.sort("per_minute_5m")["bucket_start"][-1] + timedelta(minutes=1)  # the fastest bucket
    per_bucket = (
        v.filter(pl.col("day") == now.date())
        .group_by("venue_id", "at")
        .agg(pl.col("per_minute_5m").max().alias("rate"), pl.col("sellout_imminent").sum().alias("imminent"))
    )
    rates = per_bucket.rename({"rate": "value"})
    seeded = sorted(
        [("high_velocity", s) for s in _expected(rates, now, lambda c: c > 10)]
        + [
            ("sellout_imminent", s)
            for s in _expected(per_bucket.rename({"imminent": "value"}), now, lambda c: c >= 1)
        ]
    )
    rules = {"high_velocity", "sellout_imminent"}
    eng = ops_engine(f"sqlite:///{tmp_path / 'ops.sqlite'}")
    _evaluate_and_mail(wh, eng, now, seeded, rules)  # tiny: [] (no false alert either)
    fastest = float(v["per_minute_5m"].max())
    assert fastest > 0
    threshold = fastest / 2
    edited = ops_engine(f"sqlite:///{tmp_path / 'edited.sqlite'}")
    ids = AL.seed_monitoring_rules(edited)
    with edited.begin() as conn:
        conn.execute(
            alert_rules.update().where(alert_rules.c.id == ids["high_velocity"]).values(threshold=threshold)
        )
    want = sorted(("high_velocity", s) for s in _expected(rates, now, lambda c: c > threshold))
    assert want
    _evaluate_and_mail(wh, edited, now, want, rules)


def test_fraud_history_compaction_keeps_flagged_rows_and_every_count(materialized, warehouse_url):
    """fraud_scores / fraud_metrics_hourly as fraud_job wrote them, copied to each warehouse backend:
    older days are summarised (every user-day and order counted), flagged user-days kept verbatim, hourly
    metrics dropped only once their daily rows exist; a re-run changes nothing."""
    from analytics_pipelines.fraud import retention

    src = open_warehouse(materialized.warehouse_url)
    wh = open_warehouse(warehouse_url)
    scores, metrics = src.read_table("fraud_scores"), src.read_table("fraud_metrics_hourly")
    for name, df in (("fraud_scores", scores), ("fraud_metrics_hourly", metrics)):
        days = sorted({d.isoformat() for d in df["day"].to_list()})
        wh.write_partitions(name, df, ["day"], [(d,) for d in days])
    now, flag = datetime(2026, 11, 1, 4, tzinfo=UTC), 50
    out = retention.compact(wh, now, 60, flag)
    cutoff = out["cutoff"]
    assert cutoff == "2026-09-02"
    old = scores.filter(pl.col("day").cast(pl.String) < cutoff)
    old_m = metrics.filter(pl.col("day").cast(pl.String) < cutoff)
    assert old.height and old_m.height and (old["risk_score"] >= flag).any()
    daily = wh.read_table("fraud_scores_daily")
    assert daily["user_days"].sum() == old.height
    assert daily["flagged_user_days"].sum() == old.filter(pl.col("risk_score") >= flag).height
    left = wh.read_table("fraud_scores")
    kept = left.filter(pl.col("day").cast(pl.String) < cutoff)
    assert kept.height == old.filter(pl.col("risk_score") >= flag).height
    assert daily["rows_compacted"].sum() + kept.height == old.height
    newer = left.filter(pl.col("day").cast(pl.String) >= cutoff)
    assert newer.height == scores.height - old.height  # recent days untouched
    m = wh.read_table("fraud_metrics_daily")
    assert (
        m["orders"].sum() == old_m["orders"].sum()
        and m["flagged_orders"].sum() == old_m["flagged_orders"].sum()
    )
    assert m["hours_compacted"].sum() == old_m.height and m["fraud_pct"].is_between(0, 100).all()
    assert wh.read_table("fraud_metrics_hourly")["day"].cast(pl.String).min() >= cutoff
    again = retention.compact(wh, now, 60, flag)
    assert again["score_days"] == 0 and again["metric_days"] == 0
    assert wh.read_table("fraud_scores_daily").height == daily.height
    assert wh.read_table("fraud_scores").height == left.height


@pytest.mark.parametrize("name", ["TT_FRAUD_COMPACT_AFTER_DAYS"])
def test_fraud_retention_setting_is_validated(name):
    from analytics_pipelines.settings import Settings

    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: "0"})
    assert Settings.from_env({}).fraud_compact_after_days == 180
