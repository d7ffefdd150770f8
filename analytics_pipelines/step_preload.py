"""Imported once by the forkserver of the asset jobs' executor (definitions.DEFAULT_EXECUTOR), before it forks
a process per step: what step processes import after the definitions (Dagster's instance storage, pyarrow,
the steps' own modules) is then already in memory instead of imported by each of them (~0.5 s of CPU each)."""

from __future__ import annotations

import dagster._core.storage.runs.sqlite.sqlite_run_storage  # noqa: F401
import dagster._core.storage.schedules.sqlite.sqlite_schedule_storage  # noqa: F401
import numpy  # noqa: F401
import pyarrow.compute  # noqa: F401
import pyarrow.dataset  # noqa: F401

import analytics_pipelines.definitions  # noqa: F401
import analytics_pipelines.instance  # noqa: F401
import analytics_pipelines.marts.steps  # noqa: F401
import analytics_pipelines.pricing.history  # noqa: F401
import analytics_pipelines.warehouse.catalog_build  # noqa: F401
import analytics_pipelines.warehouse.embedded  # noqa: F401
