"""Reading kpi_snapshots for the evaluator, and the dry run of one rule (the API's `POST /v1/alerts/{id}/test`).

`load_kpis` is what alert_evaluation_job reads; `dry_run` reads the same way and decides through the
evaluator's own `rules.assess`, then looks up (never writes) the open instance and the cooldown that
`engine.evaluate` would consult: it answers what an evaluation at `now` would do, sending nothing and
creating no instance."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import sqlalchemy as sa

from analytics_pipelines.alerting.engine import OPEN, _in_cooldown, kpi_frame
from analytics_pipelines.alerting.rules import assess, describe_condition, validate_rule
from analytics_pipelines.ops.alerts import alert_instances

KPI_TABLE = "kpi_snapshots"
KPI_COLUMNS = {
    "snapshot_hour": pl.Datetime("us", "UTC"),
    "tenant_id": pl.String,
    "venue_id": pl.String,
    "metric": pl.String,
    "value": pl.Float64,
}
LOOKBACK_HOURS = 48


def load_kpis(
    wh, rules_max_window_minutes: int, now: datetime, lookback_hours: int, tenant_id: str | None = None
) -> pl.DataFrame:
    """kpi_snapshots rows of the hours (now - lookback, now] -- at least two of the longest window, for
    change_percent's previous window -- optionally of one tenant."""
    hours = max(lookback_hours, 2 * (rules_max_window_minutes // 60) + 1)
    if KPI_TABLE not in wh.tables():
        return pl.DataFrame(schema=KPI_COLUMNS)
    where, params = "snapshot_hour > %s AND snapshot_hour <= %s", [now - timedelta(hours=hours), now]
    if tenant_id is not None:
        where, params = where + " AND tenant_id = %s", [*params, tenant_id]
    return wh.read_table(KPI_TABLE, where, params, columns=list(KPI_COLUMNS))


def dry_run(
    engine: sa.Engine, wh, stored: Mapping, now: datetime, lookback_hours: int = LOOKBACK_HOURS
) -> dict:
    """What evaluating the stored rule at `now` would do: per scope the window's aggregate, the previous
    window (change_percent), the compared value, whether the condition holds, the open instance and the
    cooldown; `would_fire` = a new instance would open (and its actions be sent) for some scope."""
    if now.tzinfo is None:
        raise ValueError("now must be time-zone aware")
    now = now.astimezone(UTC)
    rule = {**validate_rule(stored), "id": stored["id"]}
    metrics = kpi_frame(load_kpis(wh, rule["window_minutes"], now, lookback_hours, rule.get("tenant_id")))
    seen = assess(rule, metrics, now)
    window = timedelta(minutes=rule["window_minutes"])
    end = seen["window_end"]
    scopes = []
    with engine.connect() as conn:
        open_ids = {
            r.scope_key: r.id
            for r in conn.execute(
                sa.select(alert_instances.c.id, alert_instances.c.scope_key).where(
                    alert_instances.c.rule_id == rule["id"], alert_instances.c.status.in_(OPEN)
                )
            )
        }
        for row in seen["scopes"]:
            met = row["condition_met"] is True
            open_id = open_ids.get(row["scope_key"])
            cooling = met and open_id is None and _in_cooldown(conn, rule, row["scope_key"], now)
            scopes.append(
                {
                    **row,
                    "open_instance_id": open_id,
                    "in_cooldown": cooling,
                    "would_fire": bool(rule["enabled"] and met and open_id is None and not cooling),
                }
            )
    tz = rule["schedule"]["timezone"]
    return {
        "rule_id": rule["id"],
        "evaluated_at": now,
        "enabled": rule["enabled"],
        "condition": describe_condition(rule),
        "metric": rule["metric"],
        "aggregation": rule["aggregation"],
        "operator": rule["operator"],
        "threshold": rule["threshold"],
        "threshold_high": rule.get("threshold_high"),
        "window": {
            "minutes": rule["window_minutes"],
            "start": end - window if end else None,  # exclusive
            "end": end,  # inclusive: the newest snapshot_hour <= now
            "previous_start": end - 2 * window if end and rule["operator"] == "change_percent" else None,
        },
        "schedule": {
            "timezone": tz,
            "local_time": now.astimezone(ZoneInfo(tz)).isoformat(),
            "active": seen["schedule_active"],
        },
        "condition_met": any(s["condition_met"] is True for s in scopes),
        "would_fire": any(s["would_fire"] for s in scopes),
        "scopes": scopes,
    }
