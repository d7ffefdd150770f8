"""The API's rate limit (issue 20, api/ratelimit.py): route classes, who is counted, the RateLimit headers
and the 429 problem in one process (in-memory counters); counters shared through Redis by two apps and by
two real API server processes (`analytics-pipelines api`, and `--workers 2`); Redis down (per-process
fallback, one warning) and back."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from notify_servers import free_port

from analytics_pipelines.api import ConfigError, Settings, create_app
from analytics_pipelines.api import common as api_common
from analytics_pipelines.api import ratelimit as R
from analytics_pipelines.api.auth import mint_token

SECRET = "ratelimit-test-secret-ratelimit-test-secret-0123"
REDIS_URL = os.environ.get("TT_TEST_REDIS_URL", "redis://127.0.0.1:6379/4")  # db 4: the rate limit's
BIN = Path(sys.executable).parent
TENANT, VENUE = "5b0f6c1e-2f1d-4a53-9a51-3a1f6f0c0001", "5b0f6c1e-2f1d-4a53-9a51-3a1f6f0c0002"
READ_URL = "/v1/alerts/instances"  # served from the ops store only: no marts needed


def _settings(tmp_path, **kw) -> Settings:
    return Settings(
        warehouse_url=f"duckdb:///{tmp_path / 'warehouse'}",
        jwt_secret=SECRET,
        ops_url=f"sqlite:///{tmp_path / 'ops.sqlite'}",
        **kw,
    )


def _auth(settings: Settings, user: str | None = None, **kw) -> dict:
    token = mint_token(settings, tenant_id=TENANT, venue_id=VENUE, user_id=user or uuid.uuid4().hex, **kw)
    return {"Authorization": f"Bearer {token}"}


def _rl(resp) -> dict:
    return {k: resp.headers.get(k) for k in ("ratelimit-limit", "ratelimit-remaining", "retry-after")}


def _redis():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true but Redis at {REDIS_URL} is unreachable: {exc}")
        pytest.skip(f"Redis unreachable: {exc}")
    return client


# -- pure parts ---------------------------------------------------------------------------------------------
def test_route_classes():
    cases = {
        ("GET", "/health"): "health",
        ("GET", "/health/ready"): "health",
        ("GET", "/healthz"): "read",
        ("GET", "/v1/revenue/summary"): "read",
        ("HEAD", "/v1/kpis"): "read",
        ("GET", "/v1/exports/abc"): "read",
        ("GET", "/v1/exports"): "read",
        ("GET", "/v1/exports/abc/download"): "export",
        ("POST", "/v1/exports"): "export",
        ("POST", "/v1/exports/abc/retry"): "export",
        ("POST", "/v1/exports/abc/cancel"): "write",
        ("POST", "/v1/reports/generate"): "export",
        ("POST", "/v1/widgets/w1/export"): "export",
        ("POST", "/v1/alerts/instances/1/acknowledge"): "write",
        ("DELETE", "/v1/alerts/7"): "write",
        ("PUT", "/v1/alerts/7"): "write",
    }
    assert {k: R.route_class(*k) for k in cases} == cases


def test_limits_from_settings(tmp_path):
    s = _settings(tmp_path, rate_limits={"export": "5 per minute", "read": "none"})
    got = R.class_limits(s)
    assert (got["write"].amount, got["write"].get_expiry()) == (100, 60)  # the seed's default
    assert (got["export"].amount, got["export"].get_expiry()) == (5, 60)
    assert got["read"] is None and got["health"] is None  # health: not limited unless configured
    assert R.class_limits(_settings(tmp_path, rate_limits={"health": "10/second"}))["health"].amount == 10
    for bad in (
        {"rate_limit": "lots"},
        {"rate_limit": "1/second;5/minute"},
        {"rate_limits": {"reads": "1/s"}},
    ):
        with pytest.raises(ConfigError):
            create_app(_settings(tmp_path, **bad))
    with pytest.raises(ConfigError, match="STRATEGY"):
        create_app(_settings(tmp_path, rate_limit_strategy="leaky-bucket"))
    with pytest.raises(ConfigError, match="STORAGE"):
        create_app(_settings(tmp_path, rate_limit_storage="carrier-pigeon://x"))


def test_settings_from_env(monkeypatch):
    monkeypatch.setenv("TT_API_RATE_LIMIT", "50/30 seconds")
    monkeypatch.setenv("TT_API_RATE_LIMIT_EXPORT", "3/minute")
    monkeypatch.setenv("TT_API_RATE_LIMIT_STORAGE", "redis://:pw@127.0.0.1:6379/4")
    monkeypatch.setenv("TT_API_RATE_LIMIT_STRATEGY", "moving-window")
    s = Settings.from_env()
    assert (s.rate_limit, s.rate_limits, s.rate_limit_strategy) == (
        "50/30 seconds",
        {"export": "3/minute"},
        "moving-window",
    )
    assert s.rate_limit_storage == "redis://:pw@127.0.0.1:6379/4"
    assert R._safe(s.rate_limit_storage) == "redis://***@127.0.0.1:6379/4"  # logs never show the password


# -- one process, in-memory counters --------------------------------------------------------------------------
def test_limit_headers_and_429(tmp_path):
    s = _settings(tmp_path, rate_limit="3/60 seconds", rate_limits={"write": "2/60 seconds"})
    client = TestClient(create_app(s))
    alice, bob = _auth(s, "alice"), _auth(s, "bob")
    seen = [client.get(READ_URL, headers=alice) for _ in range(4)]
    assert [r.status_code for r in seen] == [200, 200, 200, 429]
    assert [r.headers["ratelimit-remaining"] for r in seen] == ["2", "1", "0", "0"]
    for r in seen:
        assert r.headers["ratelimit-limit"] == "3" and r.headers["ratelimit-policy"] == "3;w=60"
        assert 55 <= int(r.headers["ratelimit-reset"]) <= 60
    refused = seen[-1]
    assert refused.headers["content-type"] == "application/problem+json"
    body = refused.json()
    assert body["type"].endswith("/rate-limited") and body["status"] == 429 and body["instance"] == READ_URL
    assert "3 read requests per 60 s" in body["detail"]
    assert 55 <= int(refused.headers["retry-after"]) == body["retry_after"] <= 60
    # another subject has its own budget; the same subject's writes draw on the write class
    assert client.get(READ_URL, headers=bob).status_code == 200
    acks = [client.post("/v1/alerts/instances/1/acknowledge", headers=alice) for _ in range(3)]
    assert [r.status_code for r in acks] == [404, 404, 429]
    assert [r.headers["ratelimit-limit"] for r in acks] == ["2", "2", "2"]
    # the same subject with a second token (same tenant and sub) shares the budget
    assert client.get(READ_URL, headers=_auth(s, "alice", expires_in=999)).status_code == 429
    # health is not limited and says nothing about limits
    for _ in range(5):
        h = client.get("/health")
        assert h.status_code == 200 and "ratelimit-limit" not in h.headers


def test_no_or_invalid_token_counts_by_address(tmp_path):
    s = _settings(tmp_path, rate_limit="3/60 seconds")
    client = TestClient(create_app(s))
    forged = {
        "Authorization": "Bearer "
        + mint_token(
            Settings(warehouse_url="duckdb:///x", jwt_secret="another-key-another-key-another-key-0"),
            tenant_id=TENANT,
            venue_id=VENUE,
            user_id="mallory",
        )
    }
    answers = [
        client.get(READ_URL).status_code,
        client.get(READ_URL, headers=forged).status_code,
        client.get(READ_URL, headers={"Authorization": "Bearer garbage"}).status_code,
        client.get(READ_URL, headers=forged).status_code,
    ]
    assert answers == [401, 401, 401, 429]  # one budget: the client address
    assert client.get(READ_URL, headers=_auth(s)).status_code == 200  # a valid token: its own budget


def test_token_verified_once_per_request(tmp_path, monkeypatch):
    s = _settings(tmp_path)
    client = TestClient(create_app(s))
    calls = []
    real = R.decode_token

    def counting(settings, token):
        calls.append(token)
        return real(settings, token)

    monkeypatch.setattr(R, "decode_token", counting)
    monkeypatch.setattr(api_common, "decode_token", counting)
    assert client.get(READ_URL, headers=_auth(s)).status_code == 200
    r = client.get(READ_URL, headers={"Authorization": "Bearer not-a-jwt"})
    assert r.status_code == 401 and r.json()["detail"] == "Invalid token"  # the cached verdict, re-raised
    assert len(calls) == 2
    client.get("/health", headers=_auth(s))  # not limited: nothing to verify
    assert len(calls) == 2


def test_limiter_strategies_in_memory():
    import limits

    for strategy in ("fixed-window", "sliding-window-counter", "moving-window"):
        lim = R.Limiter({"read": limits.parse("2/minute")}, strategy=strategy)
        got = [lim.hit("read", "sub:t:u") for _ in range(3)]
        assert [d.allowed for d in got] == [True, True, False], strategy
        assert [d.remaining for d in got] == [1, 0, 0], strategy
        assert lim.hit("write", "sub:t:u") is None  # a class without a limit


# -- Redis ------------------------------------------------------------------------------------------------------
def test_two_apps_share_counters_through_redis(tmp_path):
    _redis()
    s = _settings(tmp_path, rate_limit="4/60 seconds", rate_limit_storage=REDIS_URL)
    a, b = TestClient(create_app(s)), TestClient(create_app(s))
    h = _auth(s)
    codes = [(a if i % 2 else b).get(READ_URL, headers=h).status_code for i in range(6)]
    assert codes == [200, 200, 200, 200, 429, 429]
    local = _settings(tmp_path, rate_limit="4/60 seconds")  # the control: per-process memory counters
    a, b = TestClient(create_app(local)), TestClient(create_app(local))
    assert {(a if i % 2 else b).get(READ_URL, headers=h).status_code for i in range(6)} == {200}


def test_redis_down_falls_back_per_process_then_recovers(tmp_path, caplog):
    import limits

    _redis()
    port = free_port()  # nothing listens there yet
    lim = R.Limiter({"read": limits.parse("3/minute")}, f"redis://127.0.0.1:{port}/4", retry_seconds=0.3)
    caplog.set_level(logging.INFO, logger=R.__name__)
    t0 = time.monotonic()
    got = [lim.hit("read", "sub:t:down") for _ in range(4)]
    assert time.monotonic() - t0 < 2  # refused connections fail fast: no request waits on Redis
    assert [d.allowed for d in got] == [True, True, True, False]  # still limited, per process
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "counting per process" in warnings[0].getMessage()
    assert lim.degraded

    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=port).ping()
                break
            except redis.exceptions.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.1)
        time.sleep(0.35)  # past retry_seconds: Redis is tried again
        d = lim.hit("read", "sub:t:down")
        assert d.allowed and d.remaining == 2  # a fresh shared counter in the Redis that came up
        assert not lim.degraded and any("answers again" in r.getMessage() for r in caplog.records)
    finally:
        server.terminate()
        server.wait(10)


def test_app_answers_while_redis_is_down(tmp_path):
    s = _settings(
        tmp_path, rate_limit="2/60 seconds", rate_limit_storage=f"redis://127.0.0.1:{free_port()}/4"
    )
    client = TestClient(create_app(s))
    h = _auth(s)
    codes = [client.get(READ_URL, headers=h) for _ in range(3)]
    assert [r.status_code for r in codes] == [200, 200, 429]
    assert codes[0].headers["ratelimit-remaining"] == "1"


# -- real server processes sharing Redis db 4 -----------------------------------------------------------------
def _serve(tmp_path, port: int, storage: str, workers: int = 1) -> subprocess.Popen:
    env = {
        **os.environ,
        "TT_API_JWT_SECRET": SECRET,
        "TT_API_MODE": "production",
        "TT_WAREHOUSE_URL": f"duckdb:///{tmp_path / 'warehouse'}",
        "TT_OPS_URL": f"sqlite:///{tmp_path / 'ops.sqlite'}",
        "TT_DATA_DIR": str(tmp_path),
        "TT_API_RATE_LIMIT": "10/60 seconds",
        "TT_API_RATE_LIMIT_STORAGE": storage,
    }
    cmd = [str(BIN / "analytics-pipelines"), "api", "--port", str(port), "--workers", str(workers)]
    log = open(tmp_path / f"api-{port}.log", "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_up(proc: subprocess.Popen, port: int, tmp_path, timeout: float = 90, workers: int = 1) -> None:
    """Until /health answers and every worker process has said its startup is complete."""
    deadline = time.monotonic() + timeout
    log = tmp_path / f"api-{port}.log"
    while True:
        try:
            up = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
            if up and log.read_text().count("Application startup complete") >= workers:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"API on {port} did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def _stop(procs) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(
                p.pid, signal.SIGTERM
            )  # our own process group (start_new_session): the server and its workers
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)


@pytest.mark.slow
def test_two_server_processes_share_the_limit(tmp_path):
    """10/60 s, two `analytics-pipelines api` processes on two ports sharing Redis db 4: six requests to
    each, alternating, and the 11th and 12th overall are 429 (with per-process memory counters, the
    control, all twelve pass)."""
    _redis()
    settings = _settings(tmp_path)
    ports = [free_port(), free_port(), free_port(), free_port()]
    procs = [
        _serve(tmp_path, ports[0], REDIS_URL),
        _serve(tmp_path, ports[1], REDIS_URL),
        _serve(tmp_path, ports[2], "memory://"),
        _serve(tmp_path, ports[3], "memory://"),
    ]
    try:
        for proc, port in zip(procs, ports, strict=True):
            _wait_up(proc, port, tmp_path)
        h = _auth(settings)
        shared = [httpx.get(f"http://127.0.0.1:{ports[i % 2]}{READ_URL}", headers=h) for i in range(12)]
        assert [r.status_code for r in shared] == [200] * 10 + [429, 429], [r.text for r in shared]
        assert [r.headers["ratelimit-remaining"] for r in shared] == [str(9 - i) for i in range(10)] + [
            "0",
            "0",
        ]
        assert shared[10].json()["status"] == 429 and int(shared[10].headers["retry-after"]) >= 1
        h = _auth(settings)
        local = [httpx.get(f"http://127.0.0.1:{ports[2 + i % 2]}{READ_URL}", headers=h) for i in range(12)]
        assert [r.status_code for r in local] == [200] * 12
    finally:
        _stop(procs)


@pytest.mark.slow
def test_workers_option_shares_the_limit(tmp_path):
    """`analytics-pipelines api --workers 2` with Redis: twelve requests on new connections (the kernel
    spreads them over both workers), exactly ten served."""
    _redis()
    port = free_port()
    proc = _serve(tmp_path, port, REDIS_URL, workers=2)
    try:
        _wait_up(proc, port, tmp_path, workers=2)
        h = _auth(_settings(tmp_path))
        codes = [httpx.get(f"http://127.0.0.1:{port}{READ_URL}", headers=h).status_code for _ in range(12)]
        assert codes == [200] * 10 + [429, 429]
        log = (tmp_path / f"api-{port}.log").read_text()
        assert log.count("Started server process") == 2  # two worker processes were up
    finally:
        _stop([proc])
