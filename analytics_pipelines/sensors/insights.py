"""POST /v1/insights/refresh -> a refresh request row in the ops store -> insights_job for the day asked
(one run per day, whatever the number of requests).

A request stays pending until a run handles it: the sensor asks for a run tagged with the pending request
ids of the day (REQUESTS_TAG) under a run key derived from those ids, and marks the requests handled only
when it sees such a run succeeded. So
- a tick whose run is never launched leaves the requests pending; the next tick asks again with the same run
  key (no run holds it, so Dagster launches it);
- two ticks for the same requests ask under the same run key (Dagster launches one), and while a tagged run
  of the day is queued or running the sensor asks for nothing for that day;
- a run that failed or was cancelled leaves its requests pending; the next tick asks again under a new run
  key (the count of the day's failed runs is part of it, Dagster would skip a key already used).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import dagster as dg

from analytics_pipelines.jobs.data import insights_job
from analytics_pipelines.ops.insights import mark_handled, pending_refreshes
from analytics_pipelines.resources import OpsResource

#: the request ids (comma-separated) a run handles; the day's tag finds the runs of a day
REQUESTS_TAG = "insights/refresh_requests"
DAY_TAG = "insights/refresh_day"
_IN_FLIGHT = {
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
}
_FAILED = {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


@dataclass(frozen=True)
class TaggedRun:
    run_id: str
    day: str
    ids: frozenset[int]
    status: dg.DagsterRunStatus


@dataclass(frozen=True)
class Plan:
    handled: dict[str, list[int]]  # run id -> pending request ids that run handled (it succeeded)
    requests: list[tuple[str, list[int], str]]  # (day, request ids, run key)
    waiting: list[str]  # days with a tagged run queued or running


def plan(pending: list[dict], days: set[str], runs: list[TaggedRun]) -> Plan:
    """Pure: what to mark handled and which runs to ask for, from the pending requests (rows with `id` and
    `as_of`), the partition keys and the tagged runs seen. A request is handled by a successful run whose tag
    holds its id; the rest of a day's pending requests get one run request, unless a run of the day is in
    flight. Requests for a day outside the partitions are left alone (pending)."""
    by_day: dict[str, list[int]] = {}
    for r in pending:
        d = r["as_of"].isoformat()
        if d in days:
            by_day.setdefault(d, []).append(int(r["id"]))
    handled: dict[str, list[int]] = {}
    for run in runs:
        if run.status == dg.DagsterRunStatus.SUCCESS:
            ids = sorted(i for i in by_day.get(run.day, ()) if i in run.ids)
            if ids:
                handled[run.run_id] = ids
    done = {i for ids in handled.values() for i in ids}
    requests, waiting = [], []
    for d in sorted(by_day):
        ids = [i for i in by_day[d] if i not in done]
        if not ids:
            continue
        if any(r.day == d and r.status in _IN_FLIGHT for r in runs):
            waiting.append(d)
            continue
        failed = sum(1 for r in runs if r.day == d and r.status in _FAILED)
        digest = hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:16]
        requests.append((d, ids, f"insights:{d}:{digest}:{failed}"))
    return Plan(handled, requests, waiting)


def _tagged_runs(instance: dg.DagsterInstance, days: list[str]) -> list[TaggedRun]:
    out = []
    for d in days:
        for run in instance.get_runs(dg.RunsFilter(job_name=insights_job.name, tags={DAY_TAG: d}), limit=100):
            ids = frozenset(int(x) for x in run.tags.get(REQUESTS_TAG, "").split(",") if x)
            out.append(TaggedRun(run.run_id, d, ids, run.status))
    return out


def make_insights_refresh_sensor(daily_partitions: dg.PartitionsDefinition) -> dg.SensorDefinition:
    @dg.sensor(
        job=insights_job,
        name="insights_refresh_sensor",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="One insights_job run per as-of day with open refresh requests (POST /v1/insights/refresh); "
        "the requests stay open until such a run succeeded.",
    )
    def insights_refresh_sensor(context: dg.SensorEvaluationContext, ops: OpsResource):
        engine = ops.engine()
        pending = pending_refreshes(engine)
        if not pending:
            return dg.SkipReason("no insight refresh requests")
        keys = set(daily_partitions.get_partition_keys())
        days = sorted({r["as_of"].isoformat() for r in pending} & keys)
        p = plan(pending, keys, _tagged_runs(context.instance, days))
        for run_id, ids in p.handled.items():
            mark_handled(engine, ids, run_id)
            context.log.info(f"insight refresh requests {ids} handled by run {run_id}")
        if not p.requests:
            if p.waiting:
                return dg.SkipReason(f"insight refresh runs in flight for {p.waiting}")
            left = len(pending) - sum(len(ids) for ids in p.handled.values())
            if left == 0:
                return dg.SkipReason(f"insight refresh requests handled by runs {sorted(p.handled)}")
            return dg.SkipReason(f"{left} insight refresh requests pending for days outside the partitions")
        return [
            dg.RunRequest(
                run_key=key, partition_key=d, tags={DAY_TAG: d, REQUESTS_TAG: ",".join(map(str, ids))}
            )
            for d, ids, key in p.requests
        ]

    return insights_refresh_sensor
