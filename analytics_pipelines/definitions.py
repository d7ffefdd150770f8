"""The one Definitions object. It only composes what each home holds (assets/, checks/, jobs/, schedules/,
sensors/, resources/) and applies project-wide policy: freshness policies on the facts, marts and KPIs, the
environment's resources. Every table's asset comes from the registry (analytics_pipelines/registry/)."""

from __future__ import annotations

import dagster as dg

from analytics_pipelines import schedules, sensors
from analytics_pipelines.assets import registry_assets
from analytics_pipelines.assets.reports import report_assets
from analytics_pipelines.checks import checks
from analytics_pipelines.checks.freshness import mart_freshness, with_freshness_policies
from analytics_pipelines.jobs import jobs
from analytics_pipelines.partitions import partitions
from analytics_pipelines.registry import Registry, default_registry
from analytics_pipelines.registry.model import MEMORY_TAG
from analytics_pipelines.resources import InfluxResource, OpsResource, SourceResource, WarehouseResource
from analytics_pipelines.settings import Settings


def _forkserver(config: dict) -> dict:
    return {
        **config,
        "start_method": {"forkserver": {"preload_modules": ["analytics_pipelines.step_preload"]}},
        # one high-memory step at a time (registry.model.Memory): customers_job at `large` peaked at 8.66 GB
        # over its processes with two of them side by side
        "tag_concurrency_limits": [{"key": MEMORY_TAG, "value": "high", "limit": 1}],
    }


#: Dagster's multiprocess executor (a process per step; what the daemon's runs use), its step processes forked
#: from a server that imported the project once (`forkserver`, preloading step_preload.py) instead of each
#: importing dagster, polars, duckdb and the definitions anew (`spawn`, Dagster's default: ~2 s of CPU per
#: step). One new day of main_job at `large` through `dagster job execute`: 85 s with spawn, 32 s with this
#: (docs/deploy.md). `max_concurrent` stays settable per run.
DEFAULT_EXECUTOR = dg.multiprocess_executor.configured(
    _forkserver,
    name="multiprocess",
    config_schema={
        "max_concurrent": dg.Field(
            dg.Noneable(int),
            default_value=None,
            description="Step processes at once (default: the CPU count).",
        )
    },
)


def build_definitions(
    registry: Registry, settings: Settings, executor: dg.ExecutorDefinition | None = None
) -> dg.Definitions:
    """The project's definitions; `executor` replaces the default (DEFAULT_EXECUTOR: multiprocess, forked from a
    preloaded server) for every asset job, e.g. deploy/dagster-celery's Celery executor: the same assets, jobs
    and resources on other machines."""
    assets = with_freshness_policies(registry_assets(registry, settings), mart_freshness(registry))
    return dg.Definitions(
        assets=[*assets, *report_assets(settings)],
        asset_checks=checks,
        jobs=jobs,
        executor=executor or DEFAULT_EXECUTOR,
        schedules=schedules.schedules(settings.timezone),
        sensors=sensors.sensors(partitions(settings.partition_start).daily),
        resources={
            # empty URLs resolve at run time from the settings (TT_SOURCE_URL / TT_WAREHOUSE_URL / TT_OPS_URL),
            # else the embedded defaults under the data directory
            "source": SourceResource(),
            "warehouse": WarehouseResource(),
            "ops": OpsResource(),
            # empty: TT_INFLUX_*; no TT_INFLUX_URL: publication is not configured (publishes nothing)
            "influx": InfluxResource(),
        },
    )


defs = build_definitions(default_registry(), Settings.from_env())
