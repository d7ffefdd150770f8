"""Run a real Dagster job in process (the job users run, through analytics_pipelines.runner) and read the
seconds of each step from its events; peak RSS from the process. Used by the benchmarks instead of any
hand-run copy of the DAG."""

from __future__ import annotations

import resource
import time

import dagster as dg

from analytics_pipelines.registry.context import NOW_TAG
from analytics_pipelines.runner import run_job


def step_seconds(result: dg.ExecuteInProcessResult) -> dict[str, float]:
    """Seconds per step (an asset or multi-asset, its checks included) from the STEP_SUCCESS events."""
    return {
        e.step_key: e.event_specific_data.duration_ms / 1000
        for e in result.all_events
        if e.event_type_value == "STEP_SUCCESS"
    }


def timed_run(
    job: str,
    first: str,
    last: str,
    instance: dg.DagsterInstance,
    now: str | None = None,
    defs: dg.Definitions | None = None,
) -> tuple[dg.ExecuteInProcessResult, float, dict[str, float]]:
    t = time.perf_counter()
    result = run_job(
        job,
        first,
        last,
        instance=instance,
        defs=defs,
        tags={NOW_TAG: now} if now else None,
        log_level="WARNING",
    )
    return result, time.perf_counter() - t, step_seconds(result)


def failed_checks(result: dg.ExecuteInProcessResult) -> list[str]:
    return [
        f"{c.asset_key.to_user_string()}:{c.check_name}"
        for c in (
            e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
        )
        if not c.passed
    ]


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
