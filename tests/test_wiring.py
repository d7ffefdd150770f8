"""Snapshot of the Dagster wiring: every asset key, asset check, job, schedule (cron and time zone) and
sensor. An accidental rename or a lost check shows up here in review. After an intended change:
`UPDATE_SNAPSHOT=1 .venv/bin/python -m pytest tests/test_wiring.py` and commit the snapshot."""

from __future__ import annotations

import json
import os
from pathlib import Path

SNAPSHOT = Path(__file__).resolve().parent / "snapshots" / "definitions.json"


def wiring() -> dict:
    from analytics_pipelines.definitions import defs

    repo = defs.get_repository_def()
    graph = defs.resolve_asset_graph()
    assets = sorted(k.to_user_string() for k in graph.get_all_asset_keys())
    checks = sorted(f"{c.asset_key.to_user_string()}:{c.name}" for c in graph.asset_check_keys)
    jobs = sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__"))
    schedules = {
        s.name: [s.cron_schedule, s.execution_timezone or "UTC", s.job_name]
        for s in sorted(repo.schedule_defs, key=lambda s: s.name)
    }
    sensors = sorted(s.name for s in repo.sensor_defs)
    return {
        "assets": assets,
        "asset_checks": checks,
        "jobs": jobs,
        "schedules": schedules,
        "sensors": sensors,
    }


def test_wiring_matches_the_snapshot():
    current = wiring()
    if os.environ.get("UPDATE_SNAPSHOT"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    recorded = json.loads(SNAPSHOT.read_text())
    for part in current:
        added = sorted(set(current[part]) - set(recorded.get(part, [])))
        removed = sorted(set(recorded.get(part, [])) - set(current[part]))
        assert not added and not removed, (
            f"{part}: added {added}, removed {removed} (update the snapshot if intended)"
        )
    assert current["schedules"] == recorded["schedules"], "a schedule's cron, time zone or job changed"


def test_every_schedule_is_bound_to_a_job_and_every_job_resolves():
    from analytics_pipelines.definitions import defs

    repo = defs.get_repository_def()
    for s in repo.schedule_defs:
        assert s.job_name and repo.has_job(s.job_name), s.name
    for j in repo.get_all_jobs():
        assert defs.resolve_job_def(j.name)
