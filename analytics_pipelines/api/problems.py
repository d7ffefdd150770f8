"""One error body on every route: RFC 9457 problem details (`application/problem+json`).

`{"type", "title", "status", "detail", "instance"}` plus extension members where they help a client:
`errors` (every invalid field of a 422, with its location), `table` (the mart of a 503), `retry_after`.
`detail` is the sentence a person reads; `type` is a stable URI per kind of problem that clients may branch on.

Also the request body bound (413) as ASGI middleware, so that an oversized body is refused before it is read
into memory, whatever the route."""

from __future__ import annotations

import logging
from http import HTTPStatus

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from analytics_pipelines.warehouse.reader import TableMissing

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://tickettoken.dev/problems/"
#: the problem types by status (a route may name a more specific one through `problem(..., type=)`)
TYPES = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    410: "gone",
    412: "precondition-failed",
    413: "payload-too-large",
    422: "validation-error",
    428: "precondition-required",
    429: "rate-limited",
    500: "internal-error",
    503: "unavailable",
}

#: the OpenAPI schema of the problem body, for routes' `responses=` (schemathesis checks conformance)
PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
    "additionalProperties": True,
}


def problem_responses(*statuses: int) -> dict:
    """`responses=` entries documenting problem bodies for these statuses."""
    return {
        s: {"description": HTTPStatus(s).phrase, "content": {MEDIA_TYPE: {"schema": PROBLEM_SCHEMA}}}
        for s in statuses
    }


def problem(
    request: Request | None,
    status: int,
    detail: str,
    headers: dict | None = None,
    type: str | None = None,
    **extensions,
) -> JSONResponse:
    body = {
        "type": TYPE_BASE + (type or TYPES.get(status, "error")),
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if request is not None:
        body["instance"] = request.url.path
    body.update({k: v for k, v in extensions.items() if v is not None})
    return JSONResponse(body, status_code=status, headers=headers, media_type=MEDIA_TYPE)


class ProblemError(Exception):
    """Raise from a route for a problem with a specific type or extension members (plain HTTPException is
    enough otherwise)."""

    def __init__(self, status: int, detail: str, type: str | None = None, headers=None, **extensions):
        super().__init__(detail)
        self.status, self.detail, self.type, self.headers, self.extensions = (
            status,
            detail,
            type,
            headers,
            extensions,
        )


def _loc(loc) -> str:
    parts = [str(x) for x in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        return ".".join(parts[1:]) or parts[0]
    return ".".join(parts)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into a problem body."""

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError):
        return problem(request, exc.status, exc.detail, exc.headers, exc.type, **exc.extensions)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return problem(request, exc.status_code, detail, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = [
            {
                "field": _loc(e.get("loc", ())),
                "in": str(e.get("loc", ("body",))[0]) if e.get("loc") else "body",
                "msg": e.get("msg"),
                "type": e.get("type"),
            }
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "", "msg": "invalid request"}
        return problem(request, 422, f"invalid {first['field']}: {first['msg']}", errors=errors)

    @app.exception_handler(TableMissing)
    async def _missing(request: Request, exc: TableMissing):
        return problem(request, 503, str(exc), {"Retry-After": "300"}, "not-materialized", table=exc.table)

    @app.exception_handler(psycopg.OperationalError)
    async def _pg_down(request: Request, exc: psycopg.OperationalError):
        log.warning("warehouse unavailable: %s", exc)
        return problem(request, 503, "warehouse unavailable, try again later", {"Retry-After": "30"})


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` answers 413 (by Content-Length before reading, or
    once the streamed body passes the bound)."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for k, v in scope.get("headers", ()):
            if k == b"content-length":
                try:
                    too_big = int(v) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    return await self._refuse(scope, receive, send)
        seen, exceeded = 0, False

        async def limited():
            nonlocal seen, exceeded
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    exceeded = True  # the app sees a disconnect and stops reading
                    return {"type": "http.disconnect"}
            return msg

        async def guarded(msg):
            if not exceeded:  # whatever the app answers to the cut body is replaced by the 413
                await send(msg)

        try:
            await self.app(scope, limited, guarded)
        except Exception:
            if not exceeded:
                raise
        if exceeded:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope, receive, send):
        from starlette.requests import Request as StarletteRequest

        resp = problem(
            StarletteRequest(scope), 413, f"request body larger than {self.max_bytes} bytes", type=None
        )
        await resp(scope, receive, send)
