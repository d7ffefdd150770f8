"""The project's definitions with every asset job's steps executed by Celery workers (dagster-celery, Redis
broker): the same assets, jobs, checks, schedules, sensors and resources as analytics_pipelines.definitions;
only the executor differs. docs/deploy.md says how to run it and what is tested.

The run (launched by the daemon, or `dagster job execute`) queues one Celery task per step on the broker;
any worker started with celery.yaml beside this file executes it, on any machine that has this package
installed, the same TT_* settings and the shared Dagster instance (deploy/dagster-postgres) and warehouse.
"""

from dagster_celery import celery_executor

from analytics_pipelines.definitions import build_definitions
from analytics_pipelines.registry import default_registry
from analytics_pipelines.settings import Settings

#: the same config block as celery.yaml's `execution.config` (workers and runs must agree on the broker)
CELERY_CONFIG = {"broker": {"env": "TT_CELERY_BROKER_URL"}, "backend": {"env": "TT_CELERY_BACKEND_URL"}}

defs = build_definitions(
    default_registry(), Settings.from_env(), executor=celery_executor.configured(CELERY_CONFIG)
)
