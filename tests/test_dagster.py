"""The Dagster layer: definitions, a main-job run on generated data, concurrent runs on disjoint
partitions, and the batched event log storage."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from analytics_pipelines.instance import storage_env
from analytics_pipelines.partitions import RANGE_END_TAG as ASSET_PARTITION_RANGE_END_TAG
from analytics_pipelines.partitions import RANGE_START_TAG as ASSET_PARTITION_RANGE_START_TAG

ROOT = Path(__file__).resolve().parent.parent


def test_definitions_explain_themselves():
    from analytics_pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"raw_orders", "stg_orders", "raw_unplaceable_rows", "ingestion_audit"} <= keys
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description and len(node.description) > 40, key
        assert node.group_name in {
            "raw",
            "staging",
            "facts",
            "marts",
            "kpis",
            "reports",
            "customers",
            "models",
            "catalog",
            "monitoring",
            "behavior",
            "predictions",
            "pricing",
            "publication",
            "custom_metrics",
            "insights",
        }, key
        expected_owner = (
            "team:data-platform"
            if node.group_name in {"raw", "staging", "reports", "catalog", "publication"}
            else "team:analytics"
        )
        assert node.owners == [expected_owner], key
    for job in (
        "main_job",
        "ingest_job",
        "marts_job",
        "kpi_job",
        "customers_job",
        "predictions_job",
        "kpi_publication_job",
        "daily_publication_job",
        "behavior_job",
        "fraud_job",
    ):
        assert defs.resolve_job_def(job)
    marts = {
        k.to_user_string()
        for k in graph.get_all_asset_keys()
        if graph.get(k).group_name in {"facts", "marts"}
    }
    for mart in marts:  # every mart checks itself
        assert graph.get(dg.AssetKey(mart)).check_keys, mart
    stg = graph.get(dg.AssetKey("stg_tickets"))
    assert {c.name for c in stg.check_keys} == {
        "unique_key",
        "not_null_key",
        "ledger_balanced",
        "foreign_keys_resolve",
    }


@pytest.fixture
def tiny_env(tmp_path, monkeypatch):
    from analytics_pipelines.generator.run import generate

    data = tmp_path / "data"
    generate(f"duckdb:///{data / 'source.duckdb'}", scale="tiny", seed=3, progress=False)
    env = {
        "TT_DATA_DIR": str(data),
        "DAGSTER_HOME": str(ROOT),
        "DAGSTER_EVENT_BATCH_SIZE": "1000",
        **storage_env(str(tmp_path / "dagster")),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def test_main_job_run_records_partitions_and_checks(tiny_env):
    from analytics_pipelines.runner import run_job

    instance = dg.DagsterInstance.get()
    assert type(instance.event_log_storage).__name__ == "FastSqliteEventLogStorage"
    result = run_job("main_job", first="2026-10-20", last="2026-10-31", instance=instance)
    assert result.success
    checks = [
        e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    failed = [c for c in checks if not c.passed]
    # 12 days are too few to backtest projections: that check warns (and says so) instead of passing
    assert [(c.check_name, c.severity) for c in failed] == [("beats_old_rule", dg.AssetCheckSeverity.WARN)]
    assert len(checks) > 70
    # the batched event log recorded every partition of every partitioned asset, as the UI shows them
    days = {f"2026-10-{d}" for d in range(20, 32)}
    for key in ("raw_orders", "stg_orders", "stg_ticket_scans"):
        assert instance.get_materialized_partitions(dg.AssetKey(key)) == days, key
    latest = instance.get_latest_materialization_event(dg.AssetKey("stg_orders"))
    assert latest.dagster_event.partition == "2026-10-31"
    meta = latest.asset_materialization.metadata
    assert {"rows_in", "rows_out", "rows_rejected", "dagster/row_count", "quarantine_by_reason"} <= set(meta)
    mart = instance.get_latest_materialization_event(
        dg.AssetKey("venue_analytics")
    ).asset_materialization.metadata
    assert {"dagster/row_count", "preview", "last_days", "total_gross_revenue_cents"} <= set(mart)
    # hourly KPI snapshots: their own job and partitions
    kpi = run_job("kpi_job", first="2026-10-31-10:00", last="2026-10-31-12:00", instance=instance)
    assert kpi.success
    assert instance.get_materialized_partitions(dg.AssetKey("kpi_snapshots")) == {
        "2026-10-31-10:00",
        "2026-10-31-11:00",
        "2026-10-31-12:00",
    }
    kpi_checks = [
        e.event_specific_data for e in kpi.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    assert kpi_checks and all(c.passed for c in kpi_checks)
    # the next daily run: the whole-table marts update incrementally (what changed upstream is read from
    # the event log) and end up equal to a full rebuild
    again = run_job("main_job", first="2026-10-31", last="2026-10-31", instance=instance)
    assert again.success

    def meta(key):
        return instance.get_latest_materialization_event(dg.AssetKey(key)).asset_materialization.metadata

    through = meta("sales_metrics")["through"].value  # the last day with sales
    assert meta("sales_metrics")["mode"].value == f"incremental from {min(through, '2026-10-31')}"
    assert meta("no_shows")["mode"].value == "incremental"
    from analytics_pipelines.marts import whole as W
    from analytics_pipelines.resources import default_warehouse_url
    from analytics_pipelines.warehouse import open_warehouse

    wh = open_warehouse(default_warehouse_url())
    assert wh.read_table("sales_metrics").equals(W.sales_metrics(wh, through))


RUN = """
import sys
from analytics_pipelines.runner import run_job
r = run_job("ingest_job", first=sys.argv[1], last=sys.argv[2])
print("OK" if r.success else "FAILED", flush=True)
"""


def test_two_runs_on_different_partitions_at_once(tiny_env):
    # the instance exists before runs start, as it does under `dagster dev` (two processes creating a
    # brand-new SQLite storage at the same instant race in Dagster's own schema stamping)
    instance = dg.DagsterInstance.get()
    instance.get_runs(limit=1)
    instance.get_materialized_partitions(dg.AssetKey("stg_tickets"))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RUN, a, b],
            env={**os.environ, **tiny_env},
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for a, b in (("2026-10-01", "2026-10-10"), ("2026-10-11", "2026-10-20"))
    ]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0 and "OK" in out, err[-3000:]
    parts = instance.get_materialized_partitions(dg.AssetKey("stg_tickets"))
    assert {f"2026-10-{d:02d}" for d in range(1, 21)} <= parts


def test_batched_event_store_matches_one_by_one(tmp_path, monkeypatch):
    """The same backfill recorded with and without batching gives the same asset state."""
    parts = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-02-15")

    @dg.asset(partitions_def=parts, backfill_policy=dg.BackfillPolicy.single_run())
    def thing(context):
        return dg.MaterializeResult(metadata={"n": len(context.partition_keys)})

    job = dg.Definitions(assets=[thing], jobs=[dg.define_asset_job("j", selection=[thing])]).resolve_job_def(
        "j"
    )
    tags = {ASSET_PARTITION_RANGE_START_TAG: "2026-01-01", ASSET_PARTITION_RANGE_END_TAG: "2026-02-14"}
    states = []
    for batch in ("0", "1000"):
        monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", batch)
        for k, v in storage_env(str(tmp_path / batch)).items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("DAGSTER_HOME", str(ROOT))
        instance = dg.DagsterInstance.get()
        assert job.execute_in_process(instance=instance, tags=tags).success
        key = dg.AssetKey("thing")
        records = instance.fetch_materializations(key, limit=100).records
        states.append(
            (
                instance.get_materialized_partitions(key),
                len(records),
                instance.get_latest_materialization_event(key).dagster_event.partition,
                sorted(r.partition_key for r in records),
            )
        )
    assert states[0] == states[1]
    assert len(states[0][0]) == 45
