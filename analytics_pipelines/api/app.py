"""The FastAPI application: `create_app(settings)`."""

from __future__ import annotations

import gc
import logging
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from analytics_pipelines.api import (
    alert_rules,
    anomalies,
    behavior,
    catalog,
    custom_metrics,
    customer_routes,
    customers,
    dashboards,
    export_routes,
    fraud,
    grafana,
    insights,
    marts,
    metrics_routes,
    monitoring,
    openapi_doc,
    ops_routes,
    predictions,
    pricing,
    problems,
    query,
    ratelimit,
    realtime,
    report_routes,
    warm_start,
    widgets,
)
from analytics_pipelines.api.common import jsonable
from analytics_pipelines.api.health import router as health_router
from analytics_pipelines.api.memo import ResponseMemo
from analytics_pipelines.api.noshow import router as no_show_router
from analytics_pipelines.api.settings import Settings
from analytics_pipelines.privacy import landing_key
from analytics_pipelines.registry import Registry, default_registry
from analytics_pipelines.warehouse.reader import Reader
from analytics_pipelines.warehouse.readers import open_reader

log = logging.getLogger(__name__)

DESCRIPTION = """Read API over TicketToken's materialized analytics (the marts of docs/marts.md).

Authenticate with `Authorization: Bearer <JWT>` (claims `sub`, `tenant_id`, `venue_id`, `role`,
`permissions`; `exp`, `iss`, `aud` required). Data is scoped by the token only: a venue's token reads its
venue; an admin's (role admin or analytics.admin) any venue of its tenant. Money is integer cents.
Mart reads carry an ETag and Cache-Control; send If-None-Match to get 304.
A mart that is not materialized yet answers 503 with a message."""

FRESHNESS = (
    ("venue_analytics", "day"),
    ("kpi_snapshots", "snapshot_hour"),
    ("sales_metrics", "period_start"),
)


#: routes whose query string may carry personal data: uvicorn's access log shows their path only
REDACTED_QUERY_PATHS = frozenset({"/v1/customers/search"})


class RedactQuery(logging.Filter):
    """Drops the query string of REDACTED_QUERY_PATHS from uvicorn's access-log records (their args are
    (client, method, path with query, http version, status)), so `?q=<e-mail>` is never written."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            path = args[2].split("?", 1)[0]
            if path in REDACTED_QUERY_PATHS:
                record.args = (*args[:2], f"{path}?<redacted>", *args[3:])
        return True


def redact_access_log() -> None:
    """Install RedactQuery on uvicorn's access logger (once per process)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactQuery) for f in access.filters):
        access.addFilter(RedactQuery())


def create_app(
    settings: Settings | None = None, reader: Reader | None = None, registry: Registry | None = None
) -> FastAPI:
    """The API for `settings` (default: from the environment). Refuses to build without a JWT key outside
    development mode. `reader` overrides the warehouse reader (tests); `registry` the table registry whose
    served marts it lists and scopes (default: the project's)."""
    settings = settings or Settings.from_env()
    settings.validate()
    limiter = ratelimit.build(settings)  # ConfigError on a bad limit, strategy or storage URL
    registry = registry or default_registry()
    served = [t.name for t in registry.servable()]

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if app.state.reader is None:
            app.state.reader = open_reader(
                settings.warehouse_url, refresh_seconds=settings.refresh_seconds, tables=served
            )
        # the results in use before a restart, recomputed before the first request (api/warm_start.py)
        warm_start.restore(app.state.reader, settings.warm_file)
        gc.collect()
        gc.freeze()  # the long-lived startup objects leave the collector's scans: fewer request-time pauses
        try:
            yield
        finally:
            if getattr(app.state, "realtime_hub", None) is not None:
                app.state.realtime_hub.stop()
            try:
                warm_start.save(app.state.reader, settings.warm_file)
            except OSError as exc:
                log.warning("warm start keys not saved to %s: %s", settings.warm_file, exc)
            if app.state.owns_reader:
                app.state.reader.close()

    app = FastAPI(
        title="TicketToken Analytics API", version="1.0.0", description=DESCRIPTION, lifespan=lifespan
    )
    app.state.settings = settings
    app.state.registry = registry
    app.state.reader = reader
    app.state.memo = ResponseMemo()
    app.state.owns_reader = reader is None
    app.state.ops = None
    #: the landing pseudonym key, read when an e-mail is searched (privacy.landing_key; tests replace it)
    app.state.landing_key = landing_key
    #: the non-warehouse dependencies of /health/dependencies (built from the environment on first use)
    app.state.dependencies = None
    redact_access_log()

    problems.install(app)  # every error is an RFC 9457 problem body
    app.add_middleware(problems.BodyLimit, max_bytes=settings.max_body_bytes)
    # outermost (added last): a refused request costs no body read; every response gets the RateLimit headers
    app.add_middleware(ratelimit.RateLimit, limiter=limiter, settings=settings)
    app.state.limiter = limiter

    @app.get("/health", tags=["health"])
    def health():
        """Liveness: the process answers."""
        return {"status": "ok", "time": datetime.now(UTC).isoformat()}

    @app.get("/health/ready", tags=["health"], responses={503: {"description": "warehouse unreachable"}})
    def ready(request: Request):
        """Readiness: the warehouse is reachable; freshness of the main marts (latest day/hour loaded)."""
        r: Reader = request.app.state.reader
        status = r.status()
        fresh = {}
        if status.get("reachable"):
            for table, col in FRESHNESS:
                if table in r.tables():
                    try:
                        res = r.latest(table, col)
                    except Exception as exc:  # noqa: BLE001 - reported, not raised
                        res = f"error: {type(exc).__name__}"
                    fresh[table] = jsonable(res)
                else:
                    fresh[table] = None
        body = {
            "status": "ready" if status.get("reachable") else "unavailable",
            "warehouse": status,
            "freshness": fresh,
        }
        return JSONResponse(jsonable(body), status_code=200 if status.get("reachable") else 503)

    app.include_router(health_router)
    app.include_router(marts.router)
    # fixed /v1/customers/... paths (search, list, segments/{s}/analysis) before customers' /customers/{user_id}
    app.include_router(insights.router)  # before customer_routes: /v1/customers/{id}/insights
    app.include_router(customer_routes.router)
    app.include_router(customers.router)  # after marts: the same prefix, route order kept
    app.include_router(predictions.router)
    app.include_router(catalog.router)
    app.include_router(ops_routes.router)
    app.include_router(alert_rules.router)  # after ops_routes: /v1/alerts/instances before /{alert_id}
    app.include_router(export_routes.router)
    app.include_router(report_routes.router)
    app.include_router(pricing.router)
    app.include_router(grafana.router)
    app.include_router(anomalies.router)
    app.include_router(behavior.router)
    app.include_router(monitoring.router)
    app.include_router(no_show_router)
    app.include_router(fraud.router)
    app.include_router(realtime.router)
    app.include_router(custom_metrics.router)
    app.include_router(metrics_routes.router)  # GET /v1/metrics/*: reads through the query layer
    app.include_router(query.router)
    app.include_router(dashboards.router)
    app.include_router(widgets.router)
    openapi_doc.install(app)  # problem bodies, 401-429/503, RateLimit headers and links in the document
    return app
