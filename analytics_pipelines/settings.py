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


def _bounded(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    value = _int(env, name, default)
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")
    return value


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
class CompactionSettings:
    """Monthly compaction of the embedded warehouse (analytics_pipelines/warehouse/compaction.py)."""

    #: a month is compacted once its last day is more than this many days old
    after_days: int = 3
    #: daily files of a compacted month are removed this long after the month's commit
    grace_seconds: int = 3600

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CompactionSettings:
        days = _int(env, "TT_WAREHOUSE_COMPACT_AFTER_DAYS", 3)
        grace = _int(env, "TT_WAREHOUSE_COMPACT_GRACE_SECONDS", 3600)
        if days is None or days < 0 or grace is None or grace < 0:
            raise ValueError(
                "TT_WAREHOUSE_COMPACT_AFTER_DAYS and TT_WAREHOUSE_COMPACT_GRACE_SECONDS must be >= 0, "
                f"got {days!r} and {grace!r}"
            )
        return cls(after_days=days, grace_seconds=grace)


def _fraud_compact_days(env: Mapping[str, str]) -> int:
    days = _int(env, "TT_FRAUD_COMPACT_AFTER_DAYS", 180)
    if days is None or days < 1:
        raise ValueError(f"TT_FRAUD_COMPACT_AFTER_DAYS must be at least 1, got {days}")
    return days


def _floats(env: Mapping[str, str], name: str, default: tuple[float, ...]) -> tuple[float, ...]:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        out = tuple(float(x) for x in raw.split(","))
    except ValueError:
        raise ValueError(f"{name}: comma-separated numbers required, got {raw!r}") from None
    if len(out) != len(default) or list(out) != sorted(out) or out[0] <= 0:
        raise ValueError(f"{name}: {len(default)} increasing positive numbers required, got {raw!r}")
    return out


@dataclass(frozen=True)
class AnomalySettings:
    """KPI anomaly detection (docs/anomalies.md). |score| thresholds of the severities low, medium, high,
    critical (TT_ANOMALY_THRESHOLDS); weeks of history in a weekday x hour baseline
    (TT_ANOMALY_BASELINE_WEEKS) and the fewest a score needs (TT_ANOMALY_MIN_WEEKS); the least severity that
    opens an alert (TT_ANOMALY_ALERT_SEVERITY); hours without an alertable anomaly before an open alert
    resolves (TT_ANOMALY_RESOLVE_HOURS); the metrics scanned (TT_ANOMALY_METRICS)."""

    thresholds: tuple[float, ...] = (4.0, 6.0, 9.0, 15.0)
    baseline_weeks: int = 8
    min_weeks: int = 3
    alert_severity: str = "low"
    resolve_hours: int = 48
    metrics: tuple[str, ...] = ("hourly_orders", "hourly_refunds")
    windows: tuple[int, ...] = (1, 6, 24, 72)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AnomalySettings:
        d = cls()
        severity = (env.get("TT_ANOMALY_ALERT_SEVERITY") or d.alert_severity).strip().lower()
        if severity not in ("low", "medium", "high", "critical"):
            raise ValueError(f"TT_ANOMALY_ALERT_SEVERITY: low, medium, high or critical, got {severity!r}")
        metrics = tuple(m.strip() for m in (env.get("TT_ANOMALY_METRICS") or "").split(",") if m.strip())
        out = cls(
            thresholds=_floats(env, "TT_ANOMALY_THRESHOLDS", d.thresholds),
            baseline_weeks=_int(env, "TT_ANOMALY_BASELINE_WEEKS", d.baseline_weeks),
            min_weeks=_int(env, "TT_ANOMALY_MIN_WEEKS", d.min_weeks),
            alert_severity=severity,
            resolve_hours=_int(env, "TT_ANOMALY_RESOLVE_HOURS", d.resolve_hours),
            metrics=metrics or d.metrics,
        )
        if not 1 <= out.min_weeks <= out.baseline_weeks or out.resolve_hours < 1:
            raise ValueError("TT_ANOMALY_MIN_WEEKS must be 1..TT_ANOMALY_BASELINE_WEEKS, resolve hours >= 1")
        return out


@dataclass(frozen=True)
class InfluxSettings:
    """Where the time series are published (TT_INFLUX_*); `url` None: not configured (nothing published)."""

    url: str | None = None
    org: str = "tickettoken"
    bucket: str = "tickettoken"
    token: str = ""
    #: the write precision, explicit on every write: s | ms | us | ns
    precision: str = "s"
    batch_size: int = 5000
    flush_interval_ms: int = 1000
    max_retries: int = 3
    retry_interval_ms: int = 2000
    timeout_ms: int = 10_000


def _influx(env: Mapping[str, str]) -> InfluxSettings:
    precision = (env.get("TT_INFLUX_PRECISION") or "s").strip().lower()
    if precision not in ("s", "ms", "us", "ns"):
        raise ValueError(f"TT_INFLUX_PRECISION must be s, ms, us or ns, got {precision!r}")
    return InfluxSettings(
        url=(env.get("TT_INFLUX_URL") or "").strip().rstrip("/") or None,
        org=env.get("TT_INFLUX_ORG") or "tickettoken",
        bucket=env.get("TT_INFLUX_BUCKET") or "tickettoken",
        token=env.get("TT_INFLUX_TOKEN") or "",
        precision=precision,
        batch_size=_int(env, "TT_INFLUX_BATCH_SIZE", 5000),
        flush_interval_ms=_int(env, "TT_INFLUX_FLUSH_INTERVAL_MS", 1000),
        max_retries=_int(env, "TT_INFLUX_MAX_RETRIES", 3),
        retry_interval_ms=_int(env, "TT_INFLUX_RETRY_INTERVAL_MS", 2000),
        timeout_ms=_int(env, "TT_INFLUX_TIMEOUT_MS", 10_000),
    )


@dataclass(frozen=True)
class PricingSettings:
    """TT_PRICING_*: the elasticity model's evidence rule and the recommendations' guard rails."""

    min_price_changes: int = 5
    max_change_pct: float = 10.0
    floor_ratio: float = 1.0
    ceiling_ratio: float = 2.0
    horizon_days: int = 7
    ttl_hours: int = 24
    webhook_url: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PricingSettings:
        s = cls(
            min_price_changes=_int(env, "TT_PRICING_MIN_PRICE_CHANGES", 5),
            max_change_pct=_float(env, "TT_PRICING_MAX_CHANGE_PCT", 10.0),
            floor_ratio=_float(env, "TT_PRICING_FLOOR_RATIO", 1.0),
            ceiling_ratio=_float(env, "TT_PRICING_CEILING_RATIO", 2.0),
            horizon_days=_int(env, "TT_PRICING_HORIZON_DAYS", 7),
            ttl_hours=_int(env, "TT_PRICING_TTL_HOURS", 24),
            webhook_url=env.get("TT_PRICING_WEBHOOK_URL") or None,
        )
        if s.min_price_changes < 2:
            raise ValueError("TT_PRICING_MIN_PRICE_CHANGES: at least 2 (one change proves nothing)")
        if not 0 < s.max_change_pct <= 50:
            raise ValueError("TT_PRICING_MAX_CHANGE_PCT: within (0, 50]")
        if s.floor_ratio < 1.0 or s.ceiling_ratio < s.floor_ratio:
            raise ValueError("TT_PRICING_FLOOR_RATIO >= 1 (never below face value) and <= CEILING_RATIO")
        if not 1 <= s.horizon_days <= 365 or s.ttl_hours < 1:
            raise ValueError("TT_PRICING_HORIZON_DAYS within 1..365, TT_PRICING_TTL_HOURS >= 1")
        return s


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
    compaction: CompactionSettings = field(default_factory=CompactionSettings)
    alert_emails: tuple[str, ...] = ()
    alert_webhook_url: str | None = None
    #: fraud risk score (0-100) from which a user-day is flagged and becomes a fraud event (docs/fraud.md)
    fraud_flag_score: int = 50
    #: fraud history (fraud_scores, fraud_metrics_hourly) older than this many days is compacted (maintenance)
    fraud_compact_after_days: int = 180
    alert_default_rules: str = "all"
    export_ttl_days: str = "7"
    attachment_limit_bytes: str = str(5 * 1024 * 1024)
    report_link_base: str | None = None
    influx: InfluxSettings = field(default_factory=InfluxSettings)
    #: pricing (issue 16): evidence rule, guard rails and the platform's webhook (docs/pricing.md)
    pricing: PricingSettings = field(default_factory=lambda: PricingSettings())
    anomaly: AnomalySettings = field(default_factory=AnomalySettings)
    #: behavioral data (issue 18): TT_MONGO_URL (None: the embedded Extended JSON files under
    #: TT_BEHAVIOR_DIR, default <data>/mongo), TT_MONGO_DB, the incremental cursor's safety lag for late
    #: writes, the cursor's batch size, the attribution lookback window
    mongo_url: str | None = None
    mongo_db: str = "tickettoken_analytics"
    behavior_dir: Path | None = None
    mongo_safety_lag_minutes: int = 720
    mongo_batch_size: int = 5000
    attribution_lookback_days: int = 30
    #: days ahead of the demand forecast (TT_DEMAND_FORECAST_DAYS, 1-365)
    demand_forecast_days: int = 30
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
            compaction=CompactionSettings.from_env(env),
            alert_emails=tuple(e.strip() for e in (env.get("TT_ALERT_EMAILS") or "").split(",") if e.strip()),
            alert_webhook_url=env.get("TT_ALERT_WEBHOOK_URL") or None,
            fraud_flag_score=_int(env, "TT_FRAUD_FLAG_SCORE", 50),
            fraud_compact_after_days=_fraud_compact_days(env),
            alert_default_rules=(env.get("TT_ALERT_DEFAULT_RULES") or "all").strip(),
            export_ttl_days=env.get("TT_EXPORT_TTL_DAYS") or "7",
            attachment_limit_bytes=env.get("TT_EMAIL_ATTACHMENT_LIMIT_BYTES") or str(5 * 1024 * 1024),
            report_link_base=env.get("TT_REPORT_LINK_BASE") or None,
            demand_forecast_days=_bounded(env, "TT_DEMAND_FORECAST_DAYS", 30, 1, 365),
            influx=_influx(env),
            pricing=PricingSettings.from_env(env),
            anomaly=AnomalySettings.from_env(env),
            mongo_url=env.get("TT_MONGO_URL") or None,
            mongo_db=env.get("TT_MONGO_DB") or "tickettoken_analytics",
            behavior_dir=Path(env.get("TT_BEHAVIOR_DIR") or data / "mongo").resolve(),
            mongo_safety_lag_minutes=_int(env, "TT_MONGO_SAFETY_LAG_MINUTES", 720),
            mongo_batch_size=_int(env, "TT_MONGO_BATCH_SIZE", 5000),
            attribution_lookback_days=_int(env, "TT_ATTRIBUTION_LOOKBACK_DAYS", 30),
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
