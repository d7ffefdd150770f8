"""Publication jobs: the InfluxDB publishers (group `publication`) by partitioning, since one asset job has
one partitions definition: `kpi_publication_job` (hourly: KPI snapshots, KPI anomalies) and
`daily_publication_job` (daily: event sales velocity, fraud metrics). No step retries: influxdb-client's write
API retries itself (TT_INFLUX_MAX_RETRIES), and a down InfluxDB should fail fast and alert."""

from __future__ import annotations

import dagster as dg

from analytics_pipelines.registry import default_registry

TAGS = {"team": "data-platform"}


def publishers(partitioning: str) -> list[str]:
    return [
        t.name
        for t in default_registry().tables
        if t.group == "publication" and t.factory == "publication" and t.partitioning == partitioning
    ]


kpi_publication_job = dg.define_asset_job(
    "kpi_publication_job",
    selection=dg.AssetSelection.assets(*publishers("hourly")),
    tags=TAGS,
    description="Publish hourly series (kpi_snapshots, kpi_anomalies) to InfluxDB for an hour range.",
)
daily_publication_job = dg.define_asset_job(
    "daily_publication_job",
    selection=dg.AssetSelection.assets(*publishers("daily")),
    tags=TAGS,
    description="Publish daily-partitioned series (sales velocity as event_sales, fraud metrics) to "
    "InfluxDB for a day range.",
)

jobs = [kpi_publication_job, daily_publication_job]
