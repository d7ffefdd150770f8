"""API configuration: environment variables, one per choice (README "Read API")."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

#: the key development-mode servers and `analytics-pipelines token` share when TT_API_JWT_SECRET is unset
DEV_SECRET = "tt-development-only-secret-do-not-deploy"


class ConfigError(RuntimeError):
    """The API refuses to start with this configuration."""


@dataclass(frozen=True)
class Settings:
    warehouse_url: str
    ops_url: str | None = None  # None: analytics_pipelines.ops.db default (TT_OPS_URL / SQLite)
    jwt_secret: str | None = None  # HS256 key
    jwt_public_key: str | None = None  # PEM: tokens are then RS256 only
    jwt_issuer: str = "tickettoken"
    jwt_audience: str = "tickettoken-analytics"
    mode: str = "production"  # or "development"
    cache_max_age: int = 60  # Cache-Control max-age of mart reads (seconds)
    max_range_days: int = 366  # the seed's "date range at most one year"
    export_dir: Path | None = None  # downloads are served only from under this directory
    refresh_seconds: float = 2.0  # how often the reader looks for changed marts (cache, snapshot)
    warm_file: Path | None = (
        None  # the hot result keys kept across restarts (TT_API_WARM_FILE; api/warm_start.py)
    )
    pricing_webhook_url: str | None = None  # where approved price changes are POSTed (TT_PRICING_WEBHOOK_URL)
    sse_max_clients: int = 200  # realtime subscribers per API process (TT_API_SSE_MAX_CLIENTS)
    sse_heartbeat_seconds: float = 15.0  # SSE heartbeat comment interval (TT_API_SSE_HEARTBEAT_SECONDS)
    max_body_bytes: int = 1_048_576  # a larger request body is refused with 413 (TT_API_MAX_BODY_BYTES)
    query_max_rows: int = 10_000  # rows one /v1/query may ask for (TT_API_QUERY_MAX_ROWS)
    query_timeout_seconds: float = 10.0  # statement timeout of a /v1/query (TT_API_QUERY_TIMEOUT_SECONDS)
    # the rate limit (api/ratelimit.py): the default per route class, a class's own ("none": not limited),
    # where the counters live (memory:// per process, redis://... shared by the workers), the strategy
    rate_limit: str = "100/60 seconds"  # TT_API_RATE_LIMIT (the seed's 100 requests per 60 s)
    rate_limits: dict = field(default_factory=dict)  # TT_API_RATE_LIMIT_READ|WRITE|EXPORT|HEALTH
    rate_limit_storage: str = "memory://"  # TT_API_RATE_LIMIT_STORAGE
    rate_limit_strategy: str = "fixed-window"  # TT_API_RATE_LIMIT_STRATEGY
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        from analytics_pipelines.settings import Settings as ProjectSettings

        project = ProjectSettings.from_env()
        env = project.api
        key = env.get("TT_API_JWT_PUBLIC_KEY")
        if key and not key.lstrip().startswith("-----BEGIN") and Path(key).is_file():
            key = Path(key).read_text()
        s = cls(
            warehouse_url=project.warehouse_url,
            ops_url=project.ops_url,
            jwt_secret=env.get("TT_API_JWT_SECRET") or None,
            jwt_public_key=key or None,
            jwt_issuer=env.get("TT_API_JWT_ISSUER", cls.jwt_issuer),
            jwt_audience=env.get("TT_API_JWT_AUDIENCE", cls.jwt_audience),
            mode=env.get("TT_API_MODE", "production"),
            cache_max_age=int(env.get("TT_API_CACHE_MAX_AGE", cls.cache_max_age)),
            export_dir=Path(env.get("TT_EXPORT_DIR", project.data_dir / "exports")).resolve(),
            refresh_seconds=float(env.get("TT_API_REFRESH_SECONDS", cls.refresh_seconds)),
            warm_file=Path(
                env.get("TT_API_WARM_FILE", project.data_dir / "api" / "warm_keys.json")
            ).resolve(),
            pricing_webhook_url=project.pricing.webhook_url,
            sse_max_clients=int(env.get("TT_API_SSE_MAX_CLIENTS", cls.sse_max_clients)),
            sse_heartbeat_seconds=float(env.get("TT_API_SSE_HEARTBEAT_SECONDS", cls.sse_heartbeat_seconds)),
            max_body_bytes=int(env.get("TT_API_MAX_BODY_BYTES", cls.max_body_bytes)),
            query_max_rows=int(env.get("TT_API_QUERY_MAX_ROWS", cls.query_max_rows)),
            query_timeout_seconds=float(env.get("TT_API_QUERY_TIMEOUT_SECONDS", cls.query_timeout_seconds)),
            rate_limit=env.get("TT_API_RATE_LIMIT", cls.rate_limit),
            rate_limits={
                c: env[f"TT_API_RATE_LIMIT_{c.upper()}"]
                for c in ("read", "write", "export", "health")
                if env.get(f"TT_API_RATE_LIMIT_{c.upper()}")
            },
            rate_limit_storage=env.get("TT_API_RATE_LIMIT_STORAGE") or cls.rate_limit_storage,
            rate_limit_strategy=env.get("TT_API_RATE_LIMIT_STRATEGY") or cls.rate_limit_strategy,
        )
        return replace(s, **overrides)

    @property
    def development(self) -> bool:
        return self.mode == "development"

    @property
    def algorithm(self) -> str:
        return "RS256" if self.jwt_public_key else "HS256"

    def verification_key(self) -> str:
        if self.jwt_public_key:
            return self.jwt_public_key
        if self.jwt_secret:
            return self.jwt_secret
        if self.development:
            return DEV_SECRET
        raise ConfigError(
            "TT_API_JWT_SECRET (or TT_API_JWT_PUBLIC_KEY) is required; "
            "set TT_API_MODE=development to run with the built-in development secret"
        )

    def validate(self) -> None:
        if self.mode not in ("production", "development"):
            raise ConfigError(f"TT_API_MODE must be production or development, not {self.mode!r}")
        self.verification_key()
        if self.jwt_secret and not self.development and len(self.jwt_secret) < 32:
            raise ConfigError("TT_API_JWT_SECRET must be at least 32 characters outside development mode")
