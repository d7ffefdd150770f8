"""Alert rules and instances in the operational database: create/seed rules, evaluate them against a
kpi_snapshots frame, deliver the actions, acknowledge and resolve.

The old service's two bugs cannot happen here:
- an acknowledged instance is still open, and a rule+scope with an open instance never fires again
  (checked before inserting, and enforced by the partial unique index `alert_instances_one_open`: a racing
  evaluator's insert fails with IntegrityError and is counted, not duplicated);
- the cooldown after a resolution is read from the persisted rows, so a restart does not forget it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import polars as pl
import sqlalchemy as sa

from analytics_pipelines.alerting.notifier import Notifier, _deliver, _enqueue_actions
from analytics_pipelines.alerting.rules import RuleError, alert_message, assess, validate_rule
from analytics_pipelines.ops.alerts import alert_instances, alert_rules
from analytics_pipelines.ops.db import as_utc

log = logging.getLogger(__name__)
OPEN = ("active", "acknowledged")

#: the monitoring service's business rules whose inputs exist in kpi_snapshots (seed L1929-2007). The old
#: thresholds were fractions (refund_rate > 0.1, hourly_revenue_change < -0.5); kpi_snapshots carry percent.
DEFAULT_RULES = (
    dict(
        name="high_refund_rate",
        metric="refund_rate_24h_pct",
        operator="gt",
        threshold=10.0,
        severity="warning",
        cooldown_minutes=60,
        aggregation="last",
        window_minutes=60,
        scope="tenant",
        description="More than 10 % of the last 24 hours' gross revenue was refunded",
        actions=[{"type": "email"}, {"type": "webhook"}, {"type": "log"}],
    ),
    dict(
        name="revenue_drop",
        metric="hourly_revenue_change_pct",
        operator="lt",
        threshold=-50.0,
        severity="info",
        cooldown_minutes=120,
        aggregation="last",
        window_minutes=60,
        scope="tenant",
        description="Hourly revenue fell by more than half against the hour before",
        actions=[{"type": "email"}, {"type": "webhook"}, {"type": "log"}],
    ),
)
#: rules of the old services that are NOT seeded, and why (README / docs/automation.md repeat this)
NOT_SEEDED = {
    "sellout_imminent": "needs per-event sales velocity (tickets/minute) and an ETA; kpi_snapshots has no "
    "velocity metric and event_analytics is daily (sell_through_pct), too coarse for a "
    "< 1 hour ETA. Add an event-level velocity metric first.",
    "low_conversion": "needs page views (traffic); the platform source has no traffic data (the old service "
    "read 24-hour Redis counters that nothing feeds).",
    "payment_failure_spike, database_slow, api_error_rate_high, solana_network_issues, queue_backup, "
    "concurrent_users_spike": "infrastructure/runtime inputs that no batch pipeline produces",
}
DEFAULT_ENABLED_ENV = "TT_ALERT_DEFAULT_RULES"


def _now(now: datetime | None) -> datetime:
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be time-zone aware")
    return now.astimezone(UTC)


# -- rules ---------------------------------------------------------------------------------------------

_RULE_FIELDS = {c.name for c in alert_rules.columns} - {
    "id",
    "created_at",
    "updated_at",
    "last_triggered_at",
    "trigger_count",
}


def create_rule(engine: sa.Engine, rule: Mapping, created_by: str | None = None) -> int:
    """Validate and store a rule; its id. RuleError (a ValueError) says what is wrong."""
    unknown = set(rule) - _RULE_FIELDS
    if unknown:
        raise RuleError(f"unknown rule fields: {sorted(unknown)}")
    row = validate_rule(rule)
    row["created_by"] = created_by or row.get("created_by")
    try:
        with engine.begin() as conn:
            return conn.execute(alert_rules.insert().values(**row).returning(alert_rules.c.id)).scalar_one()
    except sa.exc.IntegrityError:
        raise RuleError(f"name: a rule named {row['name']!r} already exists") from None


def update_rule(engine: sa.Engine, rule_id: int, changes: Mapping) -> dict:
    """Apply `changes` to a rule (re-validated as a whole); the stored rule."""
    unknown = set(changes) - _RULE_FIELDS
    if unknown:
        raise RuleError(f"unknown rule fields: {sorted(unknown)}")
    current = get_rule(engine, rule_id)
    row = validate_rule({k: current[k] for k in _RULE_FIELDS if k in current} | dict(changes))
    with engine.begin() as conn:
        conn.execute(
            alert_rules.update()
            .where(alert_rules.c.id == rule_id)
            .values(**{k: row[k] for k in _RULE_FIELDS if k in row}, updated_at=datetime.now(UTC))
        )
    return get_rule(engine, rule_id)


def get_rule(engine: sa.Engine, rule_id: int) -> dict:
    with engine.connect() as conn:
        row = conn.execute(sa.select(alert_rules).where(alert_rules.c.id == rule_id)).mappings().first()
    if row is None:
        raise LookupError(f"alert rule {rule_id} does not exist")
    return dict(row)


def seed_default_rules(engine: sa.Engine, enabled: Iterable[str] | None = None) -> list[str]:
    """Insert the default rules that are missing (existing rows, and users' edits to them, are kept).

    `enabled`: names to enable; default TT_ALERT_DEFAULT_RULES (comma list, 'all' or 'none'; unset: all).
    Returns the names inserted."""
    if enabled is None:
        from analytics_pipelines.settings import Settings

        setting = Settings.from_env().alert_default_rules
        names = {r["name"] for r in DEFAULT_RULES}
        enabled = (
            names
            if setting == "all"
            else set()
            if setting in ("none", "")
            else {s.strip() for s in setting.split(",") if s.strip()}
        )
        unknown = set(enabled) - names
        if unknown:
            raise ValueError(
                f"{DEFAULT_ENABLED_ENV}: unknown default rules {sorted(unknown)}; known: {sorted(names)}"
            )
    enabled = set(enabled)
    inserted = []
    for rule in DEFAULT_RULES:
        row = validate_rule({**rule, "enabled": rule["name"] in enabled})
        with engine.begin() as conn:
            exists = conn.execute(  # the platform's rule of that name, not a tenant's namesake
                sa.select(alert_rules.c.id).where(
                    alert_rules.c.name == row["name"], alert_rules.c.tenant_id.is_(None)
                )
            ).first()
            if exists:
                continue
            try:
                with conn.begin_nested():
                    conn.execute(alert_rules.insert().values(**row, created_by="default"))
                inserted.append(row["name"])
            except sa.exc.IntegrityError:  # a concurrent seeder won
                pass
    return inserted


# -- evaluation ----------------------------------------------------------------------------------------


@dataclass
class EvaluationSummary:
    evaluated_rules: int = 0
    triggered: list[tuple[str, str]] = field(default_factory=list)  # (rule, scope) new instances
    resolved: list[tuple[str, str]] = field(default_factory=list)
    still_open: list[tuple[str, str]] = field(default_factory=list)  # condition true, instance open
    cooldown: list[tuple[str, str]] = field(default_factory=list)  # condition true, within cooldown
    lost_race: list[tuple[str, str]] = field(default_factory=list)  # another evaluator inserted first
    outside_schedule: list[str] = field(default_factory=list)
    notifications: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {k: (len(v) if isinstance(v, list) else v) for k, v in self.__dict__.items()}


def _in_cooldown(conn: sa.Connection, rule: Mapping, scope_key: str, now: datetime) -> bool:
    if not rule["cooldown_minutes"]:
        return False
    last = conn.execute(
        sa.select(alert_instances.c.resolved_at, alert_instances.c.triggered_at)
        .where(alert_instances.c.rule_id == rule["id"], alert_instances.c.scope_key == scope_key)
        .order_by(alert_instances.c.id.desc())
        .limit(1)
    ).first()
    if last is None:
        return False
    since = as_utc(last.resolved_at or last.triggered_at)
    return since + timedelta(minutes=rule["cooldown_minutes"]) > now


def kpi_frame(metrics: pl.DataFrame) -> pl.DataFrame:
    """`metrics` checked and typed as the evaluator reads it (kpi_snapshots' long format); ValueError."""
    missing = {"snapshot_hour", "tenant_id", "venue_id", "metric", "value"} - set(metrics.columns)
    if missing:
        raise ValueError(f"metrics frame lacks kpi_snapshots columns {sorted(missing)}")
    try:  # naive timestamps are UTC; an all-null venue column arrives typed Null
        return metrics.with_columns(
            pl.col("snapshot_hour").cast(pl.Datetime("us", "UTC")),
            pl.col("value").cast(pl.Float64),
            *(pl.col(c).cast(pl.String) for c in ("tenant_id", "venue_id", "metric")),
        )
    except pl.exceptions.PolarsError as exc:
        raise ValueError(f"metrics frame: kpi_snapshots column types expected: {exc}") from None


def evaluate(
    engine: sa.Engine,
    metrics: pl.DataFrame,
    now: datetime | None = None,
    notifier: Notifier | None = None,
    rule_ids: Iterable[int] | None = None,
) -> EvaluationSummary:
    """Evaluate every enabled rule (or `rule_ids`) over `metrics` (kpi_snapshots rows: snapshot_hour UTC,
    tenant_id, venue_id, metric, value) at `now`; create, keep or resolve instances; deliver new ones."""
    metrics = kpi_frame(metrics)
    now = _now(now)
    notifier = notifier or Notifier.from_env()
    summary = EvaluationSummary()
    query = sa.select(alert_rules).where(alert_rules.c.enabled.is_(True)).order_by(alert_rules.c.id)
    if rule_ids is not None:
        query = query.where(alert_rules.c.id.in_(list(rule_ids)))
    with engine.connect() as conn:
        rules = [dict(r) for r in conn.execute(query).mappings()]
    fired: list[dict] = []
    for stored in rules:
        try:
            rule = {**validate_rule(stored), "id": stored["id"]}
        except RuleError as exc:  # a row edited by hand into nonsense: skip it loudly, evaluate the rest
            log.error("alert rule %s (%s) is invalid and skipped: %s", stored["id"], stored["name"], exc)
            continue
        seen = assess(rule, metrics, now)
        if not seen["schedule_active"]:
            summary.outside_schedule.append(rule["name"])
            continue
        summary.evaluated_rules += 1
        with engine.connect() as conn:
            open_rows = {
                r.scope_key: r
                for r in conn.execute(
                    sa.select(alert_instances).where(
                        alert_instances.c.rule_id == rule["id"], alert_instances.c.status.in_(OPEN)
                    )
                )
            }
        for row in seen["scopes"]:
            scope, met = row["scope_key"], row["condition_met"]
            current = open_rows.get(scope)
            if met is None:  # undefined (e.g. change from zero): leave everything as it is
                continue
            if not met:
                if current is not None and _resolve_open(engine, current.id, now, None, None):
                    summary.resolved.append((rule["name"], scope))
                continue
            if current is not None:
                with engine.begin() as conn:
                    conn.execute(
                        alert_instances.update()
                        .where(alert_instances.c.id == current.id)
                        .values(last_evaluated_at=now)
                    )
                summary.still_open.append((rule["name"], scope))
                continue
            instance = _open_instance(engine, rule, row, now, summary, notifier)
            if instance is not None:
                fired.append(instance)
    for instance in fired:
        summary.notifications.extend(_deliver(engine, notifier, instance, instance["deliveries"]))
    return summary


def _open_instance(
    engine: sa.Engine,
    rule: dict,
    row: dict,
    now: datetime,
    summary: EvaluationSummary,
    notifier: Notifier | None = None,
) -> dict | None:
    """Insert the instance and (with a notifier) queue its actions in the ledger, in one transaction; the
    instance, its queued actions under "deliveries"."""
    scope = row["scope_key"]
    instance = {
        "rule_id": rule["id"],
        "tenant_id": row["tenant_id"],
        "venue_id": row["venue_id"],
        "scope_key": scope,
        "status": "active",
        "severity": rule["severity"],
        "triggered_at": now,
        "trigger_value": row["observed"],
        "last_evaluated_at": now,
        "message": alert_message(rule, scope, row["observed"], row["value"]),
    }
    try:
        with engine.begin() as conn:
            if _in_cooldown(conn, rule, scope, now):
                summary.cooldown.append((rule["name"], scope))
                return None
            instance["id"] = conn.execute(
                alert_instances.insert().values(**instance).returning(alert_instances.c.id)
            ).scalar_one()
            conn.execute(
                alert_rules.update()
                .where(alert_rules.c.id == rule["id"])
                .values(trigger_count=alert_rules.c.trigger_count + 1, last_triggered_at=now)
            )
            instance["deliveries"] = _enqueue_actions(conn, notifier, rule, instance) if notifier else []
    except sa.exc.IntegrityError:
        # the partial unique index: another evaluator opened this rule+scope a moment ago
        summary.lost_race.append((rule["name"], scope))
        return None
    summary.triggered.append((rule["name"], scope))
    log.info("alert %s opened: %s", instance["id"], instance["message"])
    return instance


# -- API operations ------------------------------------------------------------------------------------


def get_instance(engine: sa.Engine, instance_id: int) -> dict:
    with engine.connect() as conn:
        row = (
            conn.execute(sa.select(alert_instances).where(alert_instances.c.id == instance_id))
            .mappings()
            .first()
        )
    if row is None:
        raise LookupError(f"alert instance {instance_id} does not exist")
    out = dict(row)
    for k in ("triggered_at", "acknowledged_at", "resolved_at", "last_evaluated_at"):
        out[k] = as_utc(out[k])
    return out


def acknowledge(
    engine: sa.Engine, instance_id: int, user: str, note: str | None = None, now: datetime | None = None
) -> dict:
    """Mark an active instance acknowledged (it stays open, so the rule does not fire again for this scope
    until it resolves). Idempotent on an acknowledged instance; a resolved one is refused (ValueError)."""
    if not user:
        raise ValueError("acknowledge: user is required")
    with engine.begin() as conn:
        done = conn.execute(
            alert_instances.update()
            .where(alert_instances.c.id == instance_id, alert_instances.c.status == "active")
            .values(status="acknowledged", acknowledged_by=user, acknowledged_at=_now(now), notes=note)
        ).rowcount
    inst = get_instance(engine, instance_id)
    if not done and inst["status"] == "resolved":
        raise ValueError(f"alert instance {instance_id} is already resolved")
    return inst


def resolve(
    engine: sa.Engine,
    instance_id: int,
    user: str | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> dict:
    """Resolve an open instance by hand (idempotent). The rule's cooldown starts now."""
    _resolve_open(engine, instance_id, _now(now), user, note)
    return get_instance(engine, instance_id)


def _resolve_open(
    engine: sa.Engine, instance_id: int, now: datetime, user: str | None, note: str | None
) -> bool:
    values: dict = {"status": "resolved", "resolved_at": now, "last_evaluated_at": now}
    with engine.begin() as conn:
        if user is not None or note is not None:  # keep the acknowledgement's note, add the resolution's
            before = conn.execute(
                sa.select(alert_instances.c.notes).where(alert_instances.c.id == instance_id)
            ).scalar()
            line = f"resolved by {user or 'unknown'}" + (f": {note}" if note else "")
            values["notes"] = f"{before}\n{line}" if before else line
        return bool(
            conn.execute(
                alert_instances.update()
                .where(alert_instances.c.id == instance_id, alert_instances.c.status.in_(OPEN))
                .values(**values)
            ).rowcount
        )
