"""Conventions of every route: RFC 9457 problem bodies, the request body bound (413), ETag/If-Match."""

from __future__ import annotations

import pytest
from api_helpers import make_api
from fastapi import Request
from starlette.requests import Request as StarletteRequest

from analytics_pipelines.api.writes import check_if_match, etag_of


@pytest.fixture
def api(tmp_path):
    a, reader = make_api(f"duckdb:///{tmp_path / 'warehouse'}", tmp_path, max_body_bytes=2048)
    yield a
    reader.close()


def _is_problem(r, status):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["title"] and body["type"].startswith("https://")
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def test_errors_are_problem_details(api):
    t = api.marts.tenant_ids()[0]
    _is_problem(api.client.get("/v1/revenue/summary"), 401)
    body = _is_problem(api.get("/v1/revenue/summary?limit=0&start_date=nope", t), 422)
    assert {e["field"] for e in body["errors"]} >= {"start_date"}
    assert body["instance"] == "/v1/revenue/summary"
    _is_problem(api.get("/v1/no-such-route", t), 404)


def test_oversized_body_is_413_before_the_route(api):
    t = api.marts.tenant_ids()[0]
    h = api.headers(t, permissions=("analytics.read", "analytics.export"), role="admin")
    big = {"export_type": "raw_data", "format": "csv", "filters": {"segments": ["x" * 40] * 200}}
    _is_problem(api.client.post("/v1/exports", json=big, headers=h), 413)
    # a chunked body without Content-Length is counted as it streams
    chunks = (b"x" * 1024 for _ in range(4))
    _is_problem(api.client.post("/v1/exports", content=chunks, headers=h), 413)


def _req(if_match: str | None) -> Request:
    headers = [(b"if-match", if_match.encode())] if if_match else []
    return StarletteRequest({"type": "http", "method": "PUT", "path": "/", "headers": headers})


def test_if_match_refuses_a_stale_etag():
    from fastapi import HTTPException

    obj = {"id": 1, "name": "a"}
    check_if_match(_req(None), obj)
    check_if_match(_req(etag_of(obj)), obj)
    check_if_match(_req("*"), obj)
    with pytest.raises(HTTPException) as e:
        check_if_match(_req(etag_of({"id": 1, "name": "b"})), obj)
    assert e.value.status_code == 412
