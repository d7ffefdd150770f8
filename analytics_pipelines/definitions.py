"""The one Definitions object: every asset, check, job, schedule, sensor and resource."""

from __future__ import annotations

import dagster as dg

from analytics_pipelines.assets import ingestion, marts
from analytics_pipelines.jobs import jobs
from analytics_pipelines.resources import SourceResource, WarehouseResource

defs = dg.Definitions(
    assets=[*ingestion.assets, *marts.assets],
    jobs=jobs,
    resources={
        # empty URLs resolve at run time from TT_SOURCE_URL / TT_WAREHOUSE_URL, else the embedded defaults
        "source": SourceResource(),
        "warehouse": WarehouseResource(),
    },
)
