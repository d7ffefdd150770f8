"""What a tenant's alert rule made through the API must satisfy, on top of `rules.validate_rule` (pure):

- its metric is one of kpi_snapshots' (the metrics alert_evaluation_job reads); the monitoring signals
  (`anomaly:*`, `velocity:*`, `fraud:*`) are evaluated only for the platform's seeded monitoring rules;
- its actions are the delivered ones: e-mail with explicit, valid recipients, and webhook with an explicit
  https URL (plain http only to localhost in development). A tenant's rule never falls back to the
  platform's own TT_ALERT_EMAILS / TT_ALERT_WEBHOOK_URL: those are the operators' on-call addresses;
- the old service's AlertType is derived, not stored (`rule_type`)."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

import sqlalchemy as sa

from analytics_pipelines.alerting.rules import (
    ACTION_TYPES,
    DELIVERED_ACTIONS,
    EMAIL_PATTERN,
    KPI_METRICS,
    RULE_TYPES,
    RuleError,
    validate_rule,
)

MAX_RECIPIENTS = 50
MAX_ACTIONS = 10
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
#: the fields a client sends (the rest -- id, tenant, counters, timestamps -- are the server's)
CLIENT_FIELDS = (
    "name",
    "description",
    "metric",
    "scope",
    "venue_id",
    "aggregation",
    "window_minutes",
    "operator",
    "threshold",
    "threshold_high",
    "severity",
    "schedule",
    "actions",
    "cooldown_minutes",
    "enabled",
)


class FieldError(RuleError):
    """A RuleError that names its field (and, for an unknown metric, the known ones)."""

    def __init__(self, field: str, message: str, **extra):
        super().__init__(f"{field}: {message}")
        self.field, self.extra = field, extra


def error_field(exc: RuleError) -> str:
    """The field a RuleError is about ("threshold_high", "schedule.timezone", "actions[0].to")."""
    if isinstance(exc, FieldError):
        return exc.field
    head = str(exc).split(":", 1)[0]
    return head if head and " " not in head else "body"


def rule_type(rule: Mapping) -> str:
    """The old service's AlertType: `trend` (change_percent), `anomaly` (an anomaly signal), else
    `threshold`. Its `comparison` and `custom` types have no equivalent here."""
    if rule.get("operator") == "change_percent":
        return "trend"
    if str(rule.get("metric") or "").startswith("anomaly:"):
        return "anomaly"
    return "threshold"


def type_condition(table: sa.Table, kind: str):
    """The SQL condition of `rule_type(row) == kind` (list filter)."""
    if kind not in RULE_TYPES:
        raise ValueError(kind)
    trend = table.c.operator == "change_percent"
    anomaly = table.c.metric.like("anomaly:%")
    if kind == "trend":
        return trend
    if kind == "anomaly":
        return sa.and_(~trend, anomaly)
    return sa.and_(~trend, ~anomaly)


def validate_webhook_url(url, field: str, development: bool) -> str:
    if not isinstance(url, str) or not url or len(url) > 2000:
        raise FieldError(field, "a URL of at most 2000 characters is required")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise FieldError(field, f"not a valid URL: {url!r}") from None
    if not host:
        raise FieldError(field, f"not a valid URL (no host): {url!r}")
    if parts.username or parts.password:
        raise FieldError(field, "credentials in the URL are not accepted (they would be shown and logged)")
    if parts.scheme == "https":
        return url
    if parts.scheme == "http" and development and host in LOCAL_HOSTS:
        return url
    rule = "https required" + ("" if development else " (http only to localhost in development mode)")
    raise FieldError(field, f"{rule}: {url!r}")


def validate_delivered_actions(actions, development: bool) -> list[dict]:
    """Actions a tenant's rule may carry: [{type: email, to: [...]}, {type: webhook, url}], 1..10."""
    if not isinstance(actions, list | tuple) or not actions:
        raise FieldError("actions", "at least one action (email or webhook) is required")
    if len(actions) > MAX_ACTIONS:
        raise FieldError("actions", f"at most {MAX_ACTIONS} actions")
    out = []
    for i, a in enumerate(actions):
        where = f"actions[{i}]"
        if not isinstance(a, Mapping):
            raise FieldError(where, "an object is required")
        kind = a.get("type")
        if kind not in DELIVERED_ACTIONS:
            seed = " (the old service's sms, slack, dashboard and log are not delivered)"
            raise FieldError(
                f"{where}.type",
                f"{kind!r} is not supported; supported: {', '.join(DELIVERED_ACTIONS)}"
                + (seed if kind in ACTION_TYPES else ""),
                supported_actions=list(DELIVERED_ACTIONS),
            )
        allowed = {"type", "to"} if kind == "email" else {"type", "url"}
        unknown = sorted(set(a) - allowed - {k for k, v in a.items() if v is None})
        if unknown:
            raise FieldError(where, f"unknown keys for a {kind} action: {unknown}")
        if kind == "email":
            to = a.get("to")
            if not isinstance(to, list | tuple) or not to:
                raise FieldError(f"{where}.to", "a non-empty list of e-mail addresses is required")
            if len(to) > MAX_RECIPIENTS:
                raise FieldError(f"{where}.to", f"at most {MAX_RECIPIENTS} recipients")
            bad = [t for t in to if not isinstance(t, str) or len(t) > 254 or not EMAIL_PATTERN.match(t)]
            if bad:
                raise FieldError(f"{where}.to", f"not e-mail addresses: {bad[:5]!r}")
            out.append({"type": "email", "to": list(dict.fromkeys(t.strip().lower() for t in to))})
        else:
            out.append(
                {"type": "webhook", "url": validate_webhook_url(a.get("url"), f"{where}.url", development)}
            )
    return out


def validate_api_rule(body: Mapping, *, tenant_id: str, development: bool) -> dict:
    """The stored form of a tenant's rule from a client body (CLIENT_FIELDS); FieldError/RuleError."""
    unknown = sorted(set(body) - set(CLIENT_FIELDS))
    if unknown:
        raise FieldError(unknown[0], f"unknown field(s) {unknown}")
    if body.get("metric") not in KPI_METRICS:
        raise FieldError(
            "metric",
            f"unknown metric {body.get('metric')!r}; known: {', '.join(KPI_METRICS)}",
            known_metrics=list(KPI_METRICS),
        )
    for key in ("name", "description"):
        text = body.get(key)
        if isinstance(text, str) and any(ord(c) < 32 and c not in "\n\t" for c in text):
            raise FieldError(key, "control characters are not allowed")
    actions = validate_delivered_actions(body.get("actions"), development)
    rule = {k: body[k] for k in CLIENT_FIELDS if k in body and body[k] is not None}
    if "enabled" in body and body["enabled"] is not None:
        rule["enabled"] = body["enabled"]
    row = validate_rule({**rule, "tenant_id": tenant_id, "actions": actions})
    row.setdefault("venue_id", None)
    row.setdefault("threshold_high", None)
    row.setdefault("description", None)
    return row
