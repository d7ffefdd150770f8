"""The API's rate limit (issue 20), on the `limits` library (the engine behind slowapi/flask-limiter).

- Who is counted: the token's subject (`tenant_id` + `sub`) when the request carries a valid bearer token,
  otherwise the client address (`scope["client"]`, which uvicorn's `--forwarded-allow-ips` rewrites behind a
  trusted proxy). A missing, expired or forged token counts against the address: a client cannot buy a
  fresh budget by sending garbage tokens. The token is verified once per request: the verdict (Principal or
  the 401) is kept in the request state and the auth dependency (api/common.py `principal`) reuses it.
- Route classes, each with its own budget and counter: `read` (GET/HEAD/OPTIONS), `write` (other methods),
  `export` (the requests that start or deliver a render: POST /v1/exports, /v1/exports/{id}/retry,
  /v1/reports/generate, POST .../export, GET /v1/exports/{id}/download) and `health` (/health*: not limited
  by default, so that an orchestrator's probes are never refused). Default for every class: the seed's
  100 requests per 60 s. Settings: TT_API_RATE_LIMIT, TT_API_RATE_LIMIT_<CLASS> ("none" = not limited).
- Headers (IETF draft-ietf-httpapi-ratelimit-headers-06 style, as express-rate-limit's `draft-6`): on every
  response of a limited class `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (seconds until
  the window resets) and `RateLimit-Policy` (`100;w=60`); a refused request answers 429 with an RFC 9457
  problem body and `Retry-After` (seconds).
- Counters: in process memory by default (one budget per worker process), or shared by every worker in
  Redis with TT_API_RATE_LIMIT_STORAGE=redis://host:port/db. Strategy: TT_API_RATE_LIMIT_STRATEGY,
  `fixed-window` (default: one Redis round trip to count, a window starting at the client's first request),
  `sliding-window-counter` or `moving-window`.
- Redis down: the request is not refused for it. The limiter falls back to per-process counters (so a
  client still meets the limit, per worker) with one warning log, and tries Redis again every
  `RETRY_SECONDS`; an info log says when Redis is back. Redis calls have a 250 ms socket timeout and run in
  a worker thread, so a slow Redis never stalls the event loop."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import anyio.to_thread
from fastapi import HTTPException
from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import STRATEGIES, RateLimiter
from starlette.requests import Request

from analytics_pipelines.api import problems
from analytics_pipelines.api.auth import AUTH_STATE, Principal, decode_token
from analytics_pipelines.api.settings import ConfigError, Settings

log = logging.getLogger(__name__)

CLASSES = ("read", "write", "export", "health")
DEFAULT_LIMIT = "100/60 seconds"  # the seed's RATE_LIMIT_MAX_REQUESTS=100 per RATE_LIMIT_WINDOW_MS=60000
CLASS_DEFAULTS = {"health": "none"}
OFF = ("none", "off", "unlimited")
RETRY_SECONDS = (
    5.0  # how long the per-process fallback serves after a Redis error before Redis is tried again
)
REDIS_OPTIONS = {"socket_timeout": 0.25, "socket_connect_timeout": 0.25, "key_prefix": "tt-api-ratelimit"}

_READS = frozenset({"GET", "HEAD", "OPTIONS"})


def route_class(method: str, path: str) -> str:
    """The budget a request draws on (pure: method and path only)."""
    if path == "/health" or path.startswith("/health/"):
        return "health"
    if method == "POST" and (
        path == "/v1/exports"
        or path == "/v1/reports/generate"
        or path.endswith("/export")
        or (path.startswith("/v1/exports/") and path.endswith("/retry"))
    ):
        return "export"
    if method == "GET" and path.startswith("/v1/exports/") and path.endswith("/download"):
        return "export"
    return "read" if method in _READS else "write"


def parse_limit(text: str, what: str) -> RateLimitItem | None:
    """One limit in the `limits` notation ("100/60 seconds", "100 per minute"), or None for "none"."""
    text = (text or "").strip()
    if text.lower() in OFF:
        return None
    try:
        items = parse_many(text)
    except ValueError:
        items = []
    if len(items) != 1:
        raise ConfigError(
            f"{what} must be one limit like '100/60 seconds' or '100 per minute', or 'none'; got {text!r}"
        )
    return items[0]


def class_limits(settings: Settings) -> dict[str, RateLimitItem | None]:
    """Every route class's limit from the settings (a class without its own: the default), validated."""
    unknown = set(settings.rate_limits) - set(CLASSES)
    if unknown:
        raise ConfigError(f"unknown rate-limit route classes {sorted(unknown)}; known: {list(CLASSES)}")
    out = {}
    for cls in CLASSES:
        text = settings.rate_limits.get(cls, CLASS_DEFAULTS.get(cls, settings.rate_limit))
        out[cls] = parse_limit(text, f"TT_API_RATE_LIMIT_{cls.upper()}")
    return out


def identity(principal: Principal | None, client: tuple | None) -> str:
    """Whose counter: the token's subject, or the client address without a valid token."""
    if principal is not None:
        return f"sub:{principal.tenant_id}:{principal.user_id}"
    return f"addr:{client[0] if client else 'unknown'}"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # seconds until the window resets
    window: int  # the window's length in seconds

    def headers(self) -> list[tuple[bytes, bytes]]:
        h = [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(self.remaining).encode()),
            (b"ratelimit-reset", str(self.reset).encode()),
            (b"ratelimit-policy", f"{self.limit};w={self.window}".encode()),
        ]
        if not self.allowed:
            h.append((b"retry-after", str(max(1, self.reset)).encode()))
        return h


class Limiter:
    """The counters: a `limits` strategy over the configured storage, with a per-process fallback."""

    def __init__(
        self,
        limits_by_class: dict[str, RateLimitItem | None],
        storage_uri: str = "memory://",
        strategy: str = "fixed-window",
        retry_seconds: float = RETRY_SECONDS,
    ):
        if strategy not in STRATEGIES:
            raise ConfigError(
                f"TT_API_RATE_LIMIT_STRATEGY must be one of {sorted(STRATEGIES)}, not {strategy!r}"
            )
        self.items = limits_by_class
        self.shared = not storage_uri.startswith("memory://")
        self.retry_seconds = retry_seconds
        self.storage_uri = storage_uri
        try:
            storage = (
                storage_from_string(storage_uri, wrap_exceptions=True, **REDIS_OPTIONS)
                if self.shared
                else MemoryStorage()
            )
        except Exception as exc:  # noqa: BLE001 - limits' ConfigurationError, or the URL's own error
            raise ConfigError(f"TT_API_RATE_LIMIT_STORAGE {_safe(storage_uri)!r}: {exc}") from None
        self._primary: RateLimiter = STRATEGIES[strategy](storage)
        self._local: RateLimiter = STRATEGIES[strategy](MemoryStorage()) if self.shared else self._primary
        self._down_until = 0.0  # monotonic time until which the fallback serves
        self.degraded = False

    def hit(self, cls: str, who: str, now: float | None = None) -> Decision | None:
        """Count one request of `who` on class `cls`; None when the class is not limited."""
        item = self.items.get(cls)
        if item is None:
            return None
        limiter = self._primary
        if self.shared and time.monotonic() < self._down_until:
            limiter = self._local
        try:
            allowed = limiter.hit(item, cls, who)
            stats = limiter.get_window_stats(item, cls, who)
        except StorageError as exc:
            if limiter is self._local:
                raise
            self._down_until = time.monotonic() + self.retry_seconds
            if not self.degraded:
                self.degraded = True
                log.warning(
                    "rate-limit storage %s unavailable (%s): counting per process until it answers again",
                    _safe(self.storage_uri),
                    exc.storage_error,
                )
            return self.hit(cls, who, now)
        if limiter is self._primary and self.degraded:
            self.degraded = False
            log.info("rate-limit storage %s answers again: counters shared again", _safe(self.storage_uri))
        now = time.time() if now is None else now
        return Decision(
            allowed=allowed,
            limit=item.amount,
            remaining=int(stats.remaining),
            reset=max(0, math.ceil(stats.reset_time - now)),
            window=item.get_expiry(),
        )


def _safe(uri: str) -> str:
    """A storage URL without its password, for logs and errors."""
    scheme, sep, rest = uri.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return scheme + sep + rest


def build(settings: Settings) -> Limiter:
    """The limiter the settings describe (ConfigError on a bad limit, strategy or storage URL)."""
    return Limiter(class_limits(settings), settings.rate_limit_storage, settings.rate_limit_strategy)


def verify_once(scope, settings: Settings) -> Principal | None:
    """The request's Principal if it carries a valid bearer token, else None; the verdict (Principal or the
    401 to raise) is kept in the request state for the auth dependency."""
    header = None
    for k, v in scope.get("headers", ()):
        if k == b"authorization":
            header = v.decode("latin-1")
            break
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        verdict: Principal | HTTPException = decode_token(settings, token)
    except HTTPException as exc:
        verdict = exc
    scope.setdefault("state", {})[AUTH_STATE] = (token, verdict)
    return verdict if isinstance(verdict, Principal) else None


class RateLimit:
    """ASGI middleware: count the request, refuse it with 429 past the limit, add the RateLimit headers."""

    def __init__(self, app, limiter: Limiter, settings: Settings):
        self.app, self.limiter, self.settings = app, limiter, settings

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        cls = route_class(scope["method"], scope["path"])
        if self.limiter.items.get(cls) is None:
            return await self.app(scope, receive, send)
        who = identity(verify_once(scope, self.settings), scope.get("client"))
        if self.limiter.shared:  # network I/O: off the event loop
            decision = await anyio.to_thread.run_sync(self.limiter.hit, cls, who)
        else:
            decision = self.limiter.hit(cls, who)
        extra = decision.headers()
        if not decision.allowed:
            resp = problems.problem(
                Request(scope),
                429,
                f"rate limit exceeded: {decision.limit} {cls} requests per {decision.window} s; "
                f"retry in {max(1, decision.reset)} s",
                retry_after=max(1, decision.reset),
            )
            resp.raw_headers.extend(extra)
            return await resp(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)
