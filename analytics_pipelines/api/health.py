"""`/health/live` (the process answers: no I/O) and `/health/dependencies` (each dependency's status and
latency, analytics_pipelines/health.py). `/health` and `/health/ready` stay in app.py.

`/health/dependencies` needs no token, like the other health routes (monitoring probes); it then shows
status and latency only. An admin token (role admin or analytics.admin) also sees each masked target
(scheme, host, port, database: never a user, password or token). It answers 200 whatever the dependencies'
state, with `status` ok | degraded | down: readiness for a load balancer is `/health/ready` (503)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from analytics_pipelines import health
from analytics_pipelines.api.auth import authenticate

router = APIRouter()


@router.get("/health/live", tags=["health"])
async def live():
    """Liveness: the process and its event loop answer. No I/O (no warehouse, no ops store)."""
    return {"status": "ok", "time": datetime.now(UTC).isoformat()}


def _dependencies(request: Request) -> list[health.Dependency]:
    """The warehouse (through the API's own reader) and the others (from the settings, built once)."""
    state = request.app.state
    if getattr(state, "dependencies", None) is None:
        from analytics_pipelines.settings import Settings as ProjectSettings

        state.dependencies = health.dependencies(ProjectSettings.from_env(), state.settings.ops_url)
    reader = state.reader

    def warehouse(timeout: float) -> str | None:
        status = reader.status()
        if not status.get("reachable"):
            raise ConnectionError(status.get("error") or "unreachable")
        return status.get("backend")

    own = health.Dependency("warehouse", health.mask_url(state.settings.warehouse_url), warehouse)
    return [own, *state.dependencies]


@router.get("/health/dependencies", tags=["health"])
async def dependencies(request: Request):
    """Status (up, down, not_configured) and latency of the warehouse, the ops store, SMTP, the Dagster instance
    storage, MongoDB and InfluxDB, checked concurrently, each within a short timeout."""
    show_targets = False
    if request.headers.get("authorization"):
        show_targets = authenticate(request).is_admin  # an invalid token is 401, as everywhere
    timeout = float(request.app.state.settings.extra.get("health_timeout", health.DEFAULT_TIMEOUT))
    checks = await health.check_all(_dependencies(request), timeout)
    if not show_targets:
        for c in checks.values():
            c.pop("target", None)
    body = {"status": health.overall(checks), "time": datetime.now(UTC).isoformat(), "checks": checks}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
