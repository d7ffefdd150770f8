"""`analytics-pipelines backfill`: the asset backfill it submits is the one the daemon runs (recorded in the
instance with the job's assets and exactly the partition range), and a range outside the job's partitions is
refused. The daemon executing such a backfill on PostgreSQL: tests/test_daemon_postgres.py."""

from __future__ import annotations

import dagster as dg
import pytest

from analytics_pipelines.backfill import backfill_state, submit_backfill
from analytics_pipelines.definitions import build_definitions
from analytics_pipelines.registry import default_registry
from analytics_pipelines.settings import Settings


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
