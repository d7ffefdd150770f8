"""The one Definitions object: every asset, check, job, schedule, sensor and resource."""

from __future__ import annotations

import dagster as dg

from analytics_pipelines import automation
from analytics_pipelines.assets import customers, ingestion, marts
from analytics_pipelines.exports import defs as reports
from analytics_pipelines.jobs import jobs, kpi_job, main_job
from analytics_pipelines.resources import OpsResource, SourceResource, WarehouseResource

defs = dg.Definitions(
    assets=[*ingestion.assets, *automation.with_freshness_policies(marts.assets), *customers.assets,
            *reports.assets],
    asset_checks=automation.freshness_checks,
    jobs=[*jobs, *automation.jobs, *customers.jobs, *reports.jobs],
    schedules=[*automation.schedules, *automation.make_schedules(main_job=main_job, kpi_job=kpi_job),
               *customers.schedules, *reports.schedules],
    sensors=[*automation.sensors, automation.make_source_data_sensor(main_job), *reports.sensors],
    resources={
        # empty URLs resolve at run time from TT_SOURCE_URL / TT_WAREHOUSE_URL / TT_OPS_URL, else the embedded
        # defaults under the data directory
        "source": SourceResource(),
        "warehouse": WarehouseResource(),
        "ops": OpsResource(),
    },
)
