"""The code location of the daemon scenario (tests/test_daemon_postgres.py): the project's assets, checks,
jobs and resources unchanged, with only the automation the scenario exercises.

- `hourly_kpi_schedule`: the real schedule (data.make_schedules), its cron every minute instead of minute 20
  so that a tick comes within 60 s; stopped until the test starts it (`dagster schedule start`);
- `kpi_snapshots_alert_sensor`: the real sensor (running by default): each new kpi_snapshots
  materialization launches alert_evaluation_job.
Executor: in-process (each run one process) instead of the project's multiprocess executor, whose one
process per step (x the steps and checks of a backfill's runs) would dominate the scenario on 2 cores
(tests/test_executor.py runs that executor); the run launcher, queue, storage and daemon are the production ones.
The other schedules and sensors are left out: they would launch runs the scenario does not check (the
delivery sweep every 5 minutes, the freshness checks) and take the two run slots of a 2-core CI box.
tests/test_backfill.py runs the daemon's backfill iteration in process on this location too."""

from __future__ import annotations

import dagster as dg

from analytics_pipelines.definitions import build_definitions
from analytics_pipelines.jobs import customers_job, kpi_job, main_job
from analytics_pipelines.registry import default_registry
from analytics_pipelines.schedules import data
from analytics_pipelines.sensors.data import kpi_snapshots_alert_sensor
from analytics_pipelines.settings import Settings

EVERY_MINUTE = "* * * * *"

_kpi_schedule = next(
    s
    for s in data.make_schedules(
        main_job=main_job, kpi_job=kpi_job, customers_job=customers_job, timezone="UTC", kpi_cron=EVERY_MINUTE
    )
    if s.name == "hourly_kpi_schedule"
)


def scenario_definitions() -> dg.Definitions:
    project = build_definitions(default_registry(), Settings.from_env(), executor=dg.in_process_executor)
    return dg.Definitions(
        assets=project.assets,
        asset_checks=project.asset_checks,
        jobs=project.jobs,
        schedules=[_kpi_schedule],
        sensors=[kpi_snapshots_alert_sensor],
        resources=project.resources,
        executor=project.executor,
    )


defs = scenario_definitions()
