"""Alert rules, pure: validation, the schedule (in the rule's own time zone), window aggregation over the
`kpi_snapshots` long format and the conditions of the old service -- all operators, including the three it
declared but never implemented (between, not_between, change_percent).

Nothing here touches a database; `analytics_pipelines.alerting.engine` persists rules and instances."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import polars as pl

#: kpi_snapshots metrics (docs/marts.md), declared once with the mart's cube; a rule on anything else is
#: refused at creation
from analytics_pipelines.registry.cubes import KPI_METRICS

#: monitoring signals (issue 17) that alert rules may watch besides the KPIs: analytics_pipelines.monitoring
#: .alerts builds them in the same long format (snapshot_hour, tenant_id, venue_id, metric, value)
SIGNAL_METRICS = (
    "anomaly:hourly_orders",
    "anomaly:hourly_refunds",
    "anomaly:velocity_tickets_per_hour",
    "velocity:max_per_minute",
    "velocity:sellout_imminent_events",
    "fraud:fraud_pct",
)
OPERATORS = ("gt", "gte", "lt", "lte", "eq", "ne", "between", "not_between", "change_percent")
#: the old service's spellings (types L8091-8284) are accepted and stored canonically
OPERATOR_ALIASES = {
    "greater_than": "gt",
    "greater_than_or_equals": "gte",
    "less_than": "lt",
    "less_than_or_equals": "lte",
    "equals": "eq",
    "not_equals": "ne",
    ">": "gt",
    ">=": "gte",
    "<": "lt",
    "<=": "lte",
    "==": "eq",
    "!=": "ne",
}
AGGREGATIONS = ("last", "sum", "avg", "min", "max", "count")
SEVERITIES = ("info", "warning", "error", "critical")
SCOPES = ("tenant", "venue")
#: email and webhook are delivered; every other type of the old service is recorded as a log line
ACTION_TYPES = ("email", "webhook", "log", "sms", "slack", "dashboard")
#: what a rule made through the API may carry: the actions that are really delivered (the others of the old
#: service -- sms, slack, dashboard, log -- would only be a log line, so the API refuses them)
DELIVERED_ACTIONS = ("email", "webhook")
#: the old service's AlertType, derived from the rule (see rule_type); comparison/custom have no equivalent
RULE_TYPES = ("threshold", "trend", "anomaly")
EMAIL_PATTERN = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
#: the snapshot grain: windows are whole hours of kpi_snapshots
SNAPSHOT_MINUTES = 60
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class RuleError(ValueError):
    """A rule that cannot be stored: the message says which field and why."""


# -- validation ----------------------------------------------------------------------------------------


def validate_rule(rule: Mapping) -> dict:
    """A normalized copy of `rule` (canonical operator names, schedule defaults) or RuleError."""
    r = dict(rule)
    name = str(r.get("name") or "").strip()
    if not name or len(name) > 200:
        raise RuleError("name: required, at most 200 characters")
    r["name"] = name
    if r.get("metric") not in (*KPI_METRICS, *SIGNAL_METRICS):
        known = ", ".join((*KPI_METRICS, *SIGNAL_METRICS))
        raise RuleError(f"metric: unknown metric {r.get('metric')!r}; known: {known}")
    op = OPERATOR_ALIASES.get(str(r.get("operator")), r.get("operator"))
    if op not in OPERATORS:
        raise RuleError(f"operator: unknown operator {r.get('operator')!r}; known: {', '.join(OPERATORS)}")
    r["operator"] = op
    r["aggregation"] = r.get("aggregation") or "last"
    if r["aggregation"] not in AGGREGATIONS:
        raise RuleError(
            f"aggregation: unknown aggregation {r['aggregation']!r}; known: {', '.join(AGGREGATIONS)}"
        )
    r["threshold"] = _number(r.get("threshold"), "threshold")
    if op in ("between", "not_between"):
        if r.get("threshold_high") is None:
            raise RuleError(f"threshold_high: required for operator {op}")
        r["threshold_high"] = _number(r["threshold_high"], "threshold_high")
        if r["threshold_high"] <= r["threshold"]:
            raise RuleError(f"threshold_high: must be greater than threshold for operator {op}")
    elif r.get("threshold_high") is not None:
        r["threshold_high"] = _number(r["threshold_high"], "threshold_high")
    r["window_minutes"] = _positive_int(r.get("window_minutes", SNAPSHOT_MINUTES), "window_minutes")
    if r["window_minutes"] % SNAPSHOT_MINUTES:
        raise RuleError(f"window_minutes: kpi_snapshots are hourly, use a multiple of {SNAPSHOT_MINUTES}")
    r["cooldown_minutes"] = _positive_int(r.get("cooldown_minutes", 60), "cooldown_minutes", allow_zero=True)
    r["severity"] = r.get("severity") or "warning"
    if r["severity"] not in SEVERITIES:
        raise RuleError(f"severity: {r['severity']!r} is not one of {', '.join(SEVERITIES)}")
    r["scope"] = r.get("scope") or "tenant"
    if r["scope"] not in SCOPES:
        raise RuleError(f"scope: {r['scope']!r} is not one of {', '.join(SCOPES)}")
    for key in ("tenant_id", "venue_id"):
        if r.get(key) is not None and not _UUID.match(str(r[key])):
            raise RuleError(f"{key}: not a lower-case UUID: {r[key]!r}")
    if r.get("venue_id") and r["scope"] != "venue":
        raise RuleError("venue_id: a rule on one venue needs scope 'venue'")
    r["schedule"] = validate_schedule(r.get("schedule") or {})
    r["actions"] = validate_actions(r.get("actions") or [])
    r["enabled"] = bool(r.get("enabled", True))
    return r


def _number(value, field: str) -> float:
    if isinstance(value, bool) or value is None:
        raise RuleError(f"{field}: a number is required")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise RuleError(f"{field}: not a number: {value!r}") from None
    if not math.isfinite(out):
        raise RuleError(f"{field}: must be finite")
    return out


def _positive_int(value, field: str, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RuleError(f"{field}: an integer is required")
    try:
        out = int(value)
    except ValueError:
        raise RuleError(f"{field}: not an integer: {value!r}") from None
    if out < 0 or (out == 0 and not allow_zero) or out > 366 * 24 * 60:
        raise RuleError(f"{field}: out of range: {value!r}")
    return out


def validate_schedule(schedule: Mapping) -> dict:
    """{timezone, active_hours: {start, end} (HH:MM, end exclusive, may wrap midnight), active_days
    (0 = Sunday .. 6 = Saturday, the old service's convention), excluded_dates (YYYY-MM-DD, local)}."""
    if not isinstance(schedule, Mapping):
        raise RuleError("schedule: an object is required")
    unknown = set(schedule) - {"timezone", "active_hours", "active_days", "excluded_dates"}
    if unknown:
        raise RuleError(f"schedule: unknown keys {sorted(unknown)}")
    tz = schedule.get("timezone") or "UTC"
    try:
        if str(tz) not in _known_zones():  # not just any file under zoneinfo/ ("posixrules", "Factory")
            raise ZoneInfoNotFoundError(tz)
        ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError):
        raise RuleError(f"schedule.timezone: unknown IANA time zone {tz!r}") from None
    out: dict = {"timezone": str(tz)}
    hours = schedule.get("active_hours")
    if hours:
        if isinstance(hours, list | tuple) and len(hours) == 2:
            hours = {"start": hours[0], "end": hours[1]}
        if not isinstance(hours, Mapping) or not all(
            _HHMM.match(str(hours.get(k, ""))) for k in ("start", "end")
        ):
            raise RuleError("schedule.active_hours: {start: 'HH:MM', end: 'HH:MM'} required")
        if hours["start"] == hours["end"]:
            raise RuleError(
                "schedule.active_hours: start and end are equal (use no active_hours for all day)"
            )
        out["active_hours"] = {"start": hours["start"], "end": hours["end"]}
    days = schedule.get("active_days")
    if days is not None:
        if (
            not isinstance(days, list | tuple)
            or not days
            or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6 for d in days)
        ):
            raise RuleError("schedule.active_days: a non-empty list of 0 (Sunday) .. 6 (Saturday)")
        out["active_days"] = sorted(set(days))
    excluded = schedule.get("excluded_dates") or []
    if not isinstance(excluded, list | tuple):
        raise RuleError("schedule.excluded_dates: a list of YYYY-MM-DD dates required")
    try:
        out["excluded_dates"] = sorted({date.fromisoformat(str(d)).isoformat() for d in excluded})
    except (TypeError, ValueError):
        raise RuleError(f"schedule.excluded_dates: YYYY-MM-DD dates required, got {excluded!r}") from None
    return out


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones()) | {"UTC"}


def validate_actions(actions) -> list[dict]:
    if not isinstance(actions, list | tuple):
        raise RuleError("actions: a list is required")
    out = []
    for i, a in enumerate(actions):
        if not isinstance(a, Mapping) or a.get("type") not in ACTION_TYPES:
            raise RuleError(f"actions[{i}]: type must be one of {', '.join(ACTION_TYPES)}")
        a = dict(a)
        if a["type"] == "email":
            to = a.get("to") or []
            if isinstance(to, str):
                to = [t.strip() for t in to.split(",") if t.strip()]
            if not all(isinstance(t, str) and re.match(r"^[^@\s]+@[^@\s]+$", t) for t in to):
                raise RuleError(f"actions[{i}].to: email addresses required")
            a["to"] = list(to)  # empty: TT_ALERT_EMAILS at delivery time
        if a["type"] == "webhook" and a.get("url") and not re.match(r"^https?://", str(a["url"])):
            raise RuleError(f"actions[{i}].url: http(s) URL required")
        out.append(a)
    return out


# -- schedule --------------------------------------------------------------------------------------------


def schedule_active(schedule: Mapping, now: datetime) -> bool:
    """Is the rule active at `now` (aware), judged in the schedule's own time zone?"""
    if now.tzinfo is None:
        raise ValueError("now must be time-zone aware")
    local = now.astimezone(ZoneInfo(schedule.get("timezone") or "UTC"))
    if local.date().isoformat() in set(schedule.get("excluded_dates") or ()):
        return False
    days = schedule.get("active_days")
    js_weekday = (local.weekday() + 1) % 7  # Python Monday=0 -> JS Sunday=0
    hours = schedule.get("active_hours")
    if hours:
        start, end = (time.fromisoformat(hours["start"]), time.fromisoformat(hours["end"]))
        t = local.time().replace(tzinfo=None)
        if start < end:
            inside = start <= t < end
        else:  # wraps midnight: the part after midnight belongs to the previous day's window
            inside = t >= start or t < end
            if t < end:
                js_weekday = (js_weekday - 1) % 7
        if not inside:
            return False
    return days is None or js_weekday in days


# -- aggregation and conditions ---------------------------------------------------------------------------

_AGG = {
    "last": lambda c: c.sort_by("snapshot_hour").last(),
    "sum": lambda c: c.sum(),
    "avg": lambda c: c.mean(),
    "min": lambda c: c.min(),
    "max": lambda c: c.max(),
    "count": lambda c: c.count(),
}


def _rule_frame(rule: Mapping, metrics: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """The rows of `metrics` the rule reads: its metric, tenant and scope, snapshot_hour <= now."""
    frame = metrics.filter(
        (pl.col("metric") == rule["metric"])
        & pl.col("value").is_not_null()
        & (pl.col("snapshot_hour") <= now)
    )
    if rule.get("tenant_id"):
        frame = frame.filter(pl.col("tenant_id") == rule["tenant_id"])
    if rule["scope"] == "tenant":
        return frame.filter(pl.col("venue_id").is_null())
    frame = frame.filter(pl.col("venue_id").is_not_null())
    if rule.get("venue_id"):
        frame = frame.filter(pl.col("venue_id") == rule["venue_id"])
    return frame


def window_end(rule: Mapping, metrics: pl.DataFrame, now: datetime) -> datetime | None:
    """The anchor of the rule's window: the newest snapshot_hour <= now it has data for (None: no data)."""
    frame = _rule_frame(rule, metrics, now)
    return None if frame.is_empty() else frame["snapshot_hour"].max()


def scope_values(rule: Mapping, metrics: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """One row per scope of `rule` that has data: scope_key, tenant_id, venue_id, value (the window's
    aggregate), previous (the window before it; change_percent only) and observed (what the condition
    compares: the change in percent for change_percent, else value).

    The window is (anchor - window_minutes, anchor], anchor = the newest snapshot_hour <= now of the metric
    (the data's own clock: kpi_snapshots lag the wall clock by the materialization delay)."""
    frame = _rule_frame(rule, metrics, now)
    empty = pl.DataFrame(
        schema={
            "scope_key": pl.String,
            "tenant_id": pl.String,
            "venue_id": pl.String,
            "value": pl.Float64,
            "previous": pl.Float64,
            "observed": pl.Float64,
        }
    )
    if frame.is_empty():
        return empty
    anchor = frame["snapshot_hour"].max()
    window = timedelta(minutes=rule["window_minutes"])
    keys = ["tenant_id", "venue_id"]
    agg = _AGG[rule["aggregation"]](pl.col("value"))

    def window_agg(end, alias):
        return (
            frame.filter((pl.col("snapshot_hour") > end - window) & (pl.col("snapshot_hour") <= end))
            .group_by(keys)
            .agg(agg.cast(pl.Float64).alias(alias))
        )

    current = window_agg(anchor, "value")
    if rule["operator"] == "change_percent":
        prev = window_agg(anchor - window, "previous")
        current = current.join(prev, on=keys, how="left", nulls_equal=True)
        # no previous window, or a zero base: the change is undefined, not infinite
        observed = (
            pl.when(pl.col("previous").is_null() | (pl.col("previous") == 0))
            .then(None)
            .otherwise((pl.col("value") - pl.col("previous")) / pl.col("previous").abs() * 100)
        )
    else:
        current = current.with_columns(pl.lit(None, pl.Float64).alias("previous"))
        observed = pl.col("value")
    scope = (
        pl.concat_str([pl.lit("tenant:"), pl.col("tenant_id")])
        if rule["scope"] == "tenant"
        else pl.concat_str([pl.lit("venue:"), pl.col("venue_id")])
    )
    out = current.with_columns(observed.alias("observed"), scope.alias("scope_key"))
    return out.select(empty.columns).cast(empty.schema).sort("scope_key")


def condition_met(rule: Mapping, observed: float | None) -> bool | None:
    """True/False, or None when the value is undefined (no data, change from zero): then nothing changes."""
    if observed is None or (isinstance(observed, float) and math.isnan(observed)):
        return None
    op, low, high = rule["operator"], rule["threshold"], rule.get("threshold_high")
    if op == "gt":
        return observed > low
    if op == "gte":
        return observed >= low or math.isclose(observed, low, abs_tol=1e-9)
    if op == "lt":
        return observed < low
    if op == "lte":
        return observed <= low or math.isclose(observed, low, abs_tol=1e-9)
    if op == "eq":
        return math.isclose(observed, low, rel_tol=1e-9, abs_tol=1e-9)
    if op == "ne":
        return not math.isclose(observed, low, rel_tol=1e-9, abs_tol=1e-9)
    if op == "between":
        return low <= observed <= high
    if op == "not_between":
        return observed < low or observed > high
    if op == "change_percent":
        # signed threshold: +20 fires on a rise of 20 % or more, -50 on a fall of 50 % or more
        return observed >= low if low >= 0 else observed <= low
    raise RuleError(f"operator: unknown operator {op!r}")


def assess(rule: Mapping, metrics: pl.DataFrame, now: datetime) -> dict:
    """What an evaluation of the (validated) rule at `now` sees, without acting on it -- the evaluator's
    decision path, shared by `engine.evaluate` and the API's dry run: {schedule_active, window_end (None:
    no data), scopes: [{scope_key, tenant_id, venue_id, value, previous, observed, condition_met}]}.
    Outside its schedule a rule is not evaluated at all (no scope rows)."""
    if not schedule_active(rule["schedule"], now):
        return {"schedule_active": False, "window_end": None, "scopes": []}
    scopes = [
        {**row, "condition_met": condition_met(rule, row["observed"])}
        for row in scope_values(rule, metrics, now).iter_rows(named=True)
    ]
    return {"schedule_active": True, "window_end": window_end(rule, metrics, now), "scopes": scopes}


def describe_condition(rule: Mapping) -> str:
    op, t, h = rule["operator"], rule["threshold"], rule.get("threshold_high")
    subject = f"{rule['aggregation']}({rule['metric']}, {rule['window_minutes']} min)"
    text = {
        "gt": f"> {t:g}",
        "gte": f">= {t:g}",
        "lt": f"< {t:g}",
        "lte": f"<= {t:g}",
        "eq": f"= {t:g}",
        "ne": f"!= {t:g}",
        "between": f"between {t:g} and {h:g}" if h is not None else "",
        "not_between": f"outside {t:g}..{h:g}" if h is not None else "",
        "change_percent": f"changes by {t:+g} % or more vs the previous window",
    }[op]
    return f"{subject} {text}"


def alert_message(rule: Mapping, scope_key: str, observed: float, value: float) -> str:
    """The old service's message, "Alert: {name} - {description || 'Threshold exceeded'}", plus the numbers."""
    desc = rule.get("description") or "Threshold exceeded"
    detail = f"{describe_condition(rule)}: observed {observed:g}"
    if rule["operator"] == "change_percent":
        detail += f" % (window value {value:g})"
    return f"Alert: {rule['name']} - {desc} ({scope_key}; {detail})"
