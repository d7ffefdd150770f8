"""The one place that reads the project's environment variables (README, "Configuration").

`Settings.from_env()` is called when something runs (the code location building its Definitions, a run's
builders, the CLI, the API, a sender), never at import time: no module of the package reads `os.environ`
itself. Code below takes a Settings, or a resource or setting built from one, as a parameter.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from analytics_pipelines.notify import SmtpSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PARTITION_START = "2025-11-01"
TRUE = ("1", "true", "yes", "on")


def _int(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from exc


def _retention_days(env: Mapping[str, str], name: str) -> int | None:
    """A retention setting: a positive number of days, or off/none/0/empty for none."""
    value = (env.get(name) or "").strip().lower()
    if value in ("", "off", "none", "0"):
        return None
    try:
        days = int(value)
    except ValueError:
        raise ValueError(f"{name}: a number of days or 'off' is required, got {value!r}") from None
    if days < 1:
        raise ValueError(f"{name}: must be at least 1 day, got {days}")
    return days


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be a finite number, got {raw!r}")
    return value


@dataclass(frozen=True)
class VelocitySettings:
    """Sales velocity and sell-out thresholds (docs/monitoring.md); defaults are the old sales tracker's."""

    #: tickets per minute (over the last 5 minutes) above which an event is `high_velocity` (seed: 10)
    high_per_minute: float = 10.0
    #: sell-out ETA (model's median) below which an event is `sellout_imminent` (seed: 1 hour)
    imminent_minutes: float = 60.0
    #: mean acceleration over the last 3 buckets above +t / below -t: accelerating / decelerating (seed: 0.5)
    trend_threshold: float = 0.5
    #: 5-minute history older than this many days is compacted to sales_velocity_hourly (maintenance)
    compact_after_days: int = 30

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> VelocitySettings:
        days = _int(env, "TT_VELOCITY_COMPACT_AFTER_DAYS", 30)
        if days is None or days < 1:
            raise ValueError(f"TT_VELOCITY_COMPACT_AFTER_DAYS must be at least 1, got {days}")
        return cls(
            high_per_minute=_float(env, "TT_VELOCITY_HIGH_PER_MINUTE", 10.0),
            imminent_minutes=_float(env, "TT_VELOCITY_IMMINENT_MINUTES", 60.0),
            trend_threshold=_float(env, "TT_VELOCITY_TREND_THRESHOLD", 0.5),
            compact_after_days=days,
        )


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    source_url: str
    warehouse_url: str
    ops_url: str | None
    partition_start: str
    timezone: str
    environment: str
    projection_days: int
    raw_retention_days: int | None
    customer_workers: int | None
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    velocity: VelocitySettings = field(default_factory=VelocitySettings)
    alert_emails: tuple[str, ...] = ()
    alert_webhook_url: str | None = None
    alert_default_rules: str = "all"
    export_ttl_days: str = "7"
    attachment_limit_bytes: str = str(5 * 1024 * 1024)
    report_link_base: str | None = None
    #: secrets by variable name (pseudonym keys); read by analytics_pipelines.privacy
    secrets: Mapping[str, str] = field(default_factory=dict)
    #: the API process's variables (TT_API_*, TT_EXPORT_DIR), read by analytics_pipelines.api.settings
    api: Mapping[str, str] = field(default_factory=dict)
    #: the no-show model's gate (docs/no-show.md): minimum out-of-time AUC, and the held-out tickets and
    #: no-shows below which the gate cannot judge (predictions then published as 'insufficient_holdout')
    no_show_min_auc: float = 0.70
    no_show_min_holdout_tickets: int = 500
    no_show_min_holdout_no_shows: int = 25

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        data = Path(env.get("TT_DATA_DIR") or PROJECT_ROOT / "data").resolve()
        return cls(
            data_dir=data,
            source_url=env.get("TT_SOURCE_URL") or f"duckdb:///{data / 'source.duckdb'}",
            warehouse_url=env.get("TT_WAREHOUSE_URL") or f"duckdb:///{data / 'warehouse'}",
            ops_url=env.get("TT_OPS_URL") or None,
            partition_start=env.get("TT_PARTITION_START") or DEFAULT_PARTITION_START,
            timezone=env.get("TT_TIMEZONE") or "UTC",
            environment=(env.get("TT_ENV") or "production").strip().lower(),
            projection_days=_int(env, "TT_PROJECTION_DAYS", 30),
            raw_retention_days=_retention_days(env, "TT_RAW_RETENTION_DAYS"),
            customer_workers=_int(env, "TT_CUSTOMER_WORKERS", None),
            smtp=SmtpSettings(
                host=env.get("TT_SMTP_HOST", "127.0.0.1"),
                port=_int(env, "TT_SMTP_PORT", 25),
                username=env.get("TT_SMTP_USER") or None,
                password=env.get("TT_SMTP_PASSWORD") or None,
                starttls=env.get("TT_SMTP_STARTTLS", "").lower() in TRUE,
                use_ssl=env.get("TT_SMTP_SSL", "").lower() in TRUE,
                sender=env.get("TT_SMTP_FROM", "analytics@tickettoken.local"),
            ),
            velocity=VelocitySettings.from_env(env),
            alert_emails=tuple(e.strip() for e in (env.get("TT_ALERT_EMAILS") or "").split(",") if e.strip()),
            alert_webhook_url=env.get("TT_ALERT_WEBHOOK_URL") or None,
            alert_default_rules=(env.get("TT_ALERT_DEFAULT_RULES") or "all").strip(),
            export_ttl_days=env.get("TT_EXPORT_TTL_DAYS") or "7",
            attachment_limit_bytes=env.get("TT_EMAIL_ATTACHMENT_LIMIT_BYTES") or str(5 * 1024 * 1024),
            report_link_base=env.get("TT_REPORT_LINK_BASE") or None,
            secrets={k: v for k, v in env.items() if k.endswith("_PSEUDONYM_KEY") or k == "TT_ENV"},
            api={k: v for k, v in env.items() if k.startswith("TT_API_") or k == "TT_EXPORT_DIR"},
            no_show_min_auc=_float(env, "TT_NO_SHOW_MIN_AUC", 0.70),
            no_show_min_holdout_tickets=_int(env, "TT_NO_SHOW_MIN_HOLDOUT_TICKETS", 500),
            no_show_min_holdout_no_shows=_int(env, "TT_NO_SHOW_MIN_HOLDOUT_NO_SHOWS", 25),
        )

    @property
    def warehouse_kind(self) -> str:
        """'postgres' or 'duckdb', for the kinds badges in the UI (follows the environment)."""
        return "postgres" if self.warehouse_url.startswith("postgres") else "duckdb"

    @property
    def development(self) -> bool:
        return self.environment in ("development", "dev", "local", "test")
