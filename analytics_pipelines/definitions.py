"""The one Definitions object. It only composes what the domains own and applies project-wide policy
(freshness policies on the marts, the resources of the environment); every table's asset comes from the
registry (analytics_pipelines/registry/)."""

from __future__ import annotations

import dagster as dg

from analytics_pipelines import automation
from analytics_pipelines.assets import registry_assets
from analytics_pipelines.exports import defs as reports
from analytics_pipelines.jobs import customers_job, jobs, kpi_job, main_job
from analytics_pipelines.registry import Registry, default_registry
from analytics_pipelines.resources import OpsResource, SourceResource, WarehouseResource
from analytics_pipelines.settings import Settings


def build_definitions(registry: Registry, settings: Settings) -> dg.Definitions:
    assets = automation.with_freshness_policies(registry_assets(registry, settings),
                                                automation.freshness.mart_freshness(registry))
    return dg.Definitions(
        assets=[*assets, *reports.assets],
        asset_checks=automation.freshness_checks,
        jobs=[*jobs, *automation.jobs, *reports.jobs],
        schedules=[*automation.make_schedules(main_job=main_job, kpi_job=kpi_job, customers_job=customers_job,
                                              timezone=settings.timezone), *reports.schedules],
        sensors=[*automation.sensors, automation.make_source_data_sensor(main_job), *reports.sensors],
        resources={
            # empty URLs resolve at run time from the settings (TT_SOURCE_URL / TT_WAREHOUSE_URL / TT_OPS_URL),
            # else the embedded defaults under the data directory
            "source": SourceResource(),
            "warehouse": WarehouseResource(),
            "ops": OpsResource(),
        },
    )


defs = build_definitions(default_registry(), Settings.from_env())
