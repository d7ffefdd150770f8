"""The OpenAPI document as the API really answers (issue 20), so that schema-driven clients and the stateful
schemathesis run (tests/test_api_stateful.py) can hold every response to it.

What FastAPI generates is completed, for every operation, from the conventions of api/problems.py and
api/ratelimit.py, with no per-route code:
- the error bodies: FastAPI's 422 (`HTTPValidationError`) is replaced by the RFC 9457 problem schema, and
  every documented 4xx without a body schema gets it;
- the errors every route can answer: 401 and 403 where the operation is authenticated, 404 on operations
  with path parameters, 413 where there is a request body, 400 and 422 where there are parameters or a body, 429
  (with `Retry-After`) and 503 (a mart not materialized yet, the warehouse unreachable) outside /health;
- the RateLimit headers on the responses of rate-limited operations;
- OpenAPI links, so that a client (and schemathesis' state machine) can walk create -> read -> update ->
  delete: a POST on a collection `/x` whose success response carries `Location` links to every operation on
  `/x/{id}` and below (the id taken from `Location`), and a GET of the collection `/x` links to the same
  operations with the first listed object's `data[0].id`. A route that follows the conventions (POST create
  answering Location, GET/PUT/DELETE `/x/{id}`, list bodies `{"data": [...]}`) is linked with no change here."""

from __future__ import annotations

import re
from http import HTTPStatus

from fastapi import FastAPI

from analytics_pipelines.api.problems import MEDIA_TYPE, PROBLEM_SCHEMA

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
_RATE_HEADERS = {
    "RateLimit-Limit": "requests allowed per window for this route class",
    "RateLimit-Remaining": "requests left in the current window",
    "RateLimit-Reset": "seconds until the window resets",
    "RateLimit-Policy": "the limit and window, e.g. 100;w=60",
}


def _problem(status: int, description: str | None = None) -> dict:
    return {
        "description": description or HTTPStatus(status).phrase,
        "content": {MEDIA_TYPE: {"schema": PROBLEM_SCHEMA}},
    }


def _is_health(path: str) -> bool:
    return path == "/health" or path.startswith("/health/")


def complete_responses(path: str, op: dict) -> None:
    """Document the problem responses and RateLimit headers of one operation (in place)."""
    responses = op.setdefault("responses", {})
    for code, resp in list(responses.items()):
        if not code.isdigit():
            continue
        status = int(code)
        if status == 422 or (400 <= status < 500 and not resp.get("content")):
            responses[code] = _problem(status, resp.get("description"))
    auth = bool(op.get("security"))
    params = op.get("parameters") or []
    wanted = []
    if auth:
        wanted += [401, 403]
    if any(p.get("in") == "path" for p in params):
        wanted.append(404)
    if "requestBody" in op:
        wanted.append(413)
    if params or "requestBody" in op:
        wanted += [400, 422]  # docs/api.md: malformed input 422, inconsistent input (start after end) 400
    if not _is_health(path):
        wanted += [429, 503]
    for status in wanted:
        responses.setdefault(str(status), _problem(status))
    if _is_health(path):
        return
    responses["429"].setdefault("headers", {})["Retry-After"] = {
        "description": "seconds to wait",
        "schema": {"type": "integer"},
    }
    for resp in responses.values():
        headers = resp.setdefault("headers", {})
        for name, description in _RATE_HEADERS.items():
            headers.setdefault(name, {"description": description, "schema": {"type": "string"}})


_PARAM = re.compile(r"\{([^}]+)\}")


def _item_ops(paths: dict, collection: str):
    """(path, method, operationId, first parameter) of every operation on `collection/{p}` and below."""
    item = re.compile(re.escape(collection) + r"/\{([^}]+)\}(/.*)?$")
    for path, item_ops in paths.items():
        m = item.match(path)
        if not m:
            continue
        for method, op in item_ops.items():
            if method in METHODS and op.get("operationId"):
                yield path, method, op["operationId"], m[1]


def add_links(paths: dict) -> None:
    """The create/list -> item links described in the module docstring (in place)."""
    for collection, ops in paths.items():
        if _PARAM.search(collection.rsplit("/", 1)[-1]):
            continue  # `/x/{id}` is an item, not a collection
        targets = list(_item_ops(paths, collection))
        if not targets:
            continue
        location = re.escape(collection) + r"/([^/?#]+)"
        for method, op in ops.items():
            if method == "post":
                codes = [c for c in op.get("responses", {}) if c in ("200", "201", "202")]
                expression = "$response.header.Location#regex:^(?:https?://[^/]+)?" + location
            elif method == "get":
                codes = ["200"] if "200" in op.get("responses", {}) else []
                expression = "$response.body#/data/0/id"
            else:
                continue
            for code in codes:
                if method == "post":
                    op["responses"][code].setdefault("headers", {}).setdefault(
                        "Location", {"description": "the created object", "schema": {"type": "string"}}
                    )
                links = op["responses"][code].setdefault("links", {})
                for _path, _method, op_id, param in targets:
                    links.setdefault(op_id, {"operationId": op_id, "parameters": {param: expression}})


def install(app: FastAPI) -> None:
    """Replace `app.openapi` with the completed document (built once, like FastAPI's)."""
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            doc = generate()
            for path, ops in doc.get("paths", {}).items():
                for method, op in ops.items():
                    if method in METHODS:
                        complete_responses(path, op)
            add_links(doc.get("paths", {}))
            schemas = doc.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)  # no longer referenced: every 422 is a problem body
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi
