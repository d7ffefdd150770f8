"""Automation: what replaces the old services' timers (see docs/automation.md).

Objects for the one Definitions (the lead wires them):
- `jobs`: alert_evaluation_job, maintenance_job (they need the resources `warehouse` and `ops`);
- `sensors`: kpi_snapshots_alert_sensor, run_failure_alert_sensor, mart_freshness_checks_sensor,
  stale_mart_alert_sensor;
- `freshness_checks`: last-update freshness checks on every mart (docs/marts.md names), and
  `with_freshness_policies(marts.assets)` to attach Dagster's FreshnessPolicy to the same marts;
- factories bound to the lead's jobs: `make_schedules(main_job=..., customers_job=..., kpi_job=...)`,
  `make_source_data_sensor(main_job)`;
- `RETRY_POLICY`, `RUN_RETRY_TAGS` for the asset jobs; `resources` = {"ops": OpsResource()}.
"""

from analytics_pipelines.automation.freshness import (
    freshness_checks,
    freshness_checks_sensor,
    make_freshness_checks,
    stale_mart_alert_sensor,
    with_freshness_policies,
)
from analytics_pipelines.automation.jobs import (
    RETRY_POLICY,
    RUN_RETRY_TAGS,
    alert_evaluation_job,
    maintenance_job,
)
from analytics_pipelines.automation.resources import OpsResource
from analytics_pipelines.automation.schedules import make_schedules
from analytics_pipelines.automation.sensors import (
    kpi_snapshots_alert_sensor,
    make_source_data_sensor,
    run_failure_alert_sensor,
)

jobs = [alert_evaluation_job, maintenance_job]
sensors = [kpi_snapshots_alert_sensor, run_failure_alert_sensor, freshness_checks_sensor, stale_mart_alert_sensor]
schedules: list = []  # every schedule needs a job of the lead's: make_schedules(main_job=...)
assets: list = []
resources = {"ops": OpsResource()}

__all__ = ["RETRY_POLICY", "RUN_RETRY_TAGS", "OpsResource", "alert_evaluation_job", "assets", "freshness_checks",
           "jobs", "make_freshness_checks", "make_schedules", "make_source_data_sensor", "maintenance_job",
           "resources", "schedules", "sensors", "with_freshness_policies"]
