"""`analytics-pipelines backfill`: the asset backfill it submits is the one the daemon runs (recorded in the
instance with the job's assets and exactly the partition range), and a range outside the job's partitions is
refused; the daemon's backfill iteration, in process, plans and completes a backfill of the behavior group over two
days. The daemon executing such a backfill on PostgreSQL: tests/test_daemon_postgres.py."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.backfill import execute_backfill_iteration
from materialized import NOW, environment

from analytics_pipelines.backfill import backfill_state, submit_backfill
from analytics_pipelines.definitions import build_definitions
from analytics_pipelines.registry import default_registry
from analytics_pipelines.registry.context import NOW_TAG
from analytics_pipelines.settings import Settings
from analytics_pipelines.warehouse import open_warehouse

#: the behavior group's assets (registry/behavior.py)
BEHAVIOR_ASSETS = {t.name for t in default_registry().tables if t.group == "behavior"}


def test_submit_records_an_asset_backfill_of_the_jobs_assets_over_the_range(monkeypatch):
    monkeypatch.setenv("TT_PARTITION_START", "2025-11-01")
    defs = build_definitions(default_registry(), Settings.from_env())
    with dg.instance_for_test() as instance:
        sub = submit_backfill(instance, defs, "main_job", "2025-11-01", "2026-10-31", tags={"tt/now": "x"})
        assert sub.partitions == 365
        job_assets = defs.resolve_job_def("main_job").asset_layer.selected_asset_keys
        assert sub.assets == len(job_assets)
        backfill = instance.get_backfill(sub.backfill_id)
        assert set(backfill.asset_selection) == set(job_assets)
        assert backfill.tags["tt/now"] == "x"
        fct = backfill.asset_backfill_data.target_subset.get_partitions_subset(dg.AssetKey("fct_orders"))
        keys = sorted(fct.get_partition_keys())
        assert (len(keys), keys[0], keys[-1]) == (365, "2025-11-01", "2026-10-31")
        assert backfill_state(instance, sub.backfill_id) == ("requested", [])  # the daemon has not run it
        with pytest.raises(ValueError, match="partitions run from 2025-11-01"):
            submit_backfill(instance, defs, "main_job", "2024-01-01", "2024-01-31")
        with pytest.raises(ValueError):
            submit_backfill(instance, defs, "main_job", "2026-10-31", "2026-10-01")


def test_submit_restricted_to_groups_of_the_job(monkeypatch):
    monkeypatch.setenv("TT_PARTITION_START", "2025-11-01")
    defs = build_definitions(default_registry(), Settings.from_env())
    graph = defs.resolve_asset_graph()
    with dg.instance_for_test() as instance:
        sub = submit_backfill(
            instance, defs, "main_job", "2026-10-01", "2026-10-31", groups=["raw", "staging", "facts"]
        )
        backfill = instance.get_backfill(sub.backfill_id)
        groups = {graph.get(k).group_name for k in backfill.asset_selection}
        assert groups == {"raw", "staging", "facts"}
        job_assets = defs.resolve_job_def("main_job").asset_layer.selected_asset_keys
        assert set(backfill.asset_selection) == {k for k in job_assets if graph.get(k).group_name in groups}
        assert sub.assets == len(backfill.asset_selection) < len(job_assets)
        with pytest.raises(ValueError, match="no asset in group"):
            submit_backfill(instance, defs, "main_job", "2026-10-01", "2026-10-31", groups=["kpis"])


#: two days of the behavior group: a single-run backfill (one run per layer of its asset graph)
BEHAVIOR_DAYS = ("2026-10-30", "2026-10-31")


def test_a_backfill_of_the_behavior_group_runs_through_dagsters_backfill_machinery(materialized, tmp_path):
    """The daemon's own backfill iteration (dagster._daemon.backfill), in process: it plans the backfill over
    the asset graph (the walk that raised a CheckError on a multi-asset mixing daily and unpartitioned
    outputs, campaign_attribution's before attribution_model_performance was partitioned by training day),
    launches the runs (synchronously, in memory) and completes; every asset of the group materialized, its
    daily tables for both days, the model evaluation for the training day (the range's last)."""
    data = tmp_path / "data"
    shutil.copytree(materialized.data_dir, data)  # the session's warehouse stays as it is
    env = {k: v.replace(str(materialized.data_dir), str(data)) for k, v in materialized.env.items()}
    target = InProcessWorkspaceLoadTarget(
        InProcessCodeLocationOrigin(
            # the project's definitions with the in-process executor (one process per run, not per step)
            LoadableTargetOrigin(
                python_file=str(Path(__file__).with_name("daemon_definitions.py")), attribute="defs"
            ),
            location_name="daemon_definitions",
        )
    )
    log = logging.getLogger("test_backfill")
    with (
        environment(env),
        dg.instance_for_test(synchronous_run_coordinator=True, synchronous_run_launcher=True) as instance,
    ):
        defs = build_definitions(default_registry(), Settings.from_env())
        sub = submit_backfill(instance, defs, "behavior_job", *BEHAVIOR_DAYS, tags={NOW_TAG: NOW.isoformat()})
        with create_test_daemon_workspace_context(target, instance) as workspace:
            for _ in range(20):  # each iteration launches the runs whose parents are done
                errors = [e for e in execute_backfill_iteration(workspace, log) if e is not None]
                assert errors == [], errors[0].to_string()
                state, runs = backfill_state(instance, sub.backfill_id)
                if state != "requested":
                    break
        assert state == "succeeded", (state, runs)
        records = [instance.get_run_by_id(r) for r in runs]
        assert runs and all(r.status == dg.DagsterRunStatus.SUCCESS for r in records)
        group = {k for k in defs.resolve_asset_graph().get_all_asset_keys() if k.path[0] in BEHAVIOR_ASSETS}
        assert len(group) == len(BEHAVIOR_ASSETS)
        for key in group:
            assert instance.get_latest_materialization_event(key) is not None, key
        for name in ("campaign_attribution", "raw_behavior_events", "attribution_channel_effects"):
            done = instance.get_materialized_partitions(dg.AssetKey(name))
            assert set(BEHAVIOR_DAYS) <= done, (name, done)
        perf = open_warehouse(env["TT_WAREHOUSE_URL"]).read_table("attribution_model_performance")
        assert BEHAVIOR_DAYS[1] in perf["day"].cast(str).to_list()
