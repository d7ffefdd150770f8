"""Seeded monitoring alert rules and their evaluation through the existing alert engine
(analytics_pipelines.alerting: persisted rules, instances, cooldowns; e-mail and webhook delivery).

Signals are built in kpi_snapshots' long format (snapshot_hour, tenant_id, venue_id, metric, value):
- `anomaly:<kpi metric>` per venue and hour: 1 while an alerting anomaly (kpi_anomalies.alerting) of that
  venue and metric lies within the last `resolve_hours` hours, else 0. The engine keeps one open instance
  per rule (= metric) and venue: the instance opens at the first alerting hour, repeated alerting hours
  keep it open (no duplicate), and it resolves once the series has been normal for `resolve_hours` hours.
- `velocity:max_per_minute` / `velocity:sellout_imminent_events` per venue and 5-minute bucket from
  `sales_velocity` (vel17), `fraud:fraud_pct` per venue and hour from `fraud_metrics_hourly` (fraud17):
  evaluated when those tables exist.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import polars as pl
import sqlalchemy as sa

from analytics_pipelines.alerting import Notifier, evaluate
from analytics_pipelines.alerting.engine import EvaluationSummary
from analytics_pipelines.alerting.rules import validate_rule
from analytics_pipelines.ops.alerts import alert_rules

ACTIONS = [{"type": "email"}, {"type": "webhook"}, {"type": "log"}]


def _venue_rule(
    name: str, metric: str, operator: str, threshold: float, severity: str, cooldown: int, description: str
) -> dict:
    """A seeded venue-scoped rule on the last value of a monitoring signal over the past hour."""
    return dict(
        name=name,
        metric=metric,
        operator=operator,
        threshold=threshold,
        severity=severity,
        cooldown_minutes=cooldown,
        aggregation="last",
        window_minutes=60,
        scope="venue",
        description=description,
        actions=ACTIONS,
    )


def _anomaly_rule(name: str, metric: str, description: str) -> dict:
    """A rule on an anomaly state signal (1 while an alerting anomaly is recent, see anomaly_states)."""
    return _venue_rule(name, f"anomaly:{metric}", "gte", 1.0, "warning", 60, description)


MONITORING_RULES = (
    *(
        _anomaly_rule(f"kpi_anomaly_{m}", m, f"{m} departs from its weekday x hour baseline (kpi_anomalies)")
        for m in ("hourly_orders", "hourly_refunds")
    ),
    _anomaly_rule(
        "velocity_anomaly",
        "velocity_tickets_per_hour",
        "A venue's tickets per hour depart from its weekday x hour baseline (velocity_anomalies)",
    ),
    _venue_rule(
        "high_velocity",
        "velocity:max_per_minute",
        "gt",
        10.0,
        "warning",
        30,
        "An event sells more than 10 tickets per minute (sales_velocity, 5-minute rate)",
    ),
    _venue_rule(
        "sellout_imminent",
        "velocity:sellout_imminent_events",
        "gte",
        1.0,
        "critical",
        60,
        "An event is about to sell out (sales_velocity.sellout_imminent)",
    ),
    _venue_rule(
        "fraud_spike",
        "fraud:fraud_pct",
        "gt",
        5.0,
        "error",
        60,
        "More than 5 % of a venue's orders in the hour were flagged (fraud_metrics_hourly)",
    ),
)
SIGNAL_SCHEMA = {
    "snapshot_hour": pl.Datetime("us", "UTC"),
    "tenant_id": pl.String,
    "venue_id": pl.String,
    "metric": pl.String,
    "value": pl.Float64,
}


def _platform_rule(name: str):
    """The platform's (tenant-less) rule of that name: a tenant's rule may carry the same name."""
    return sa.and_(alert_rules.c.name == name, alert_rules.c.tenant_id.is_(None))


def seed_monitoring_rules(engine: sa.Engine) -> dict[str, int]:
    """Insert the monitoring rules that are missing (users' edits kept); name -> id of every one."""
    out = {}
    for rule in MONITORING_RULES:
        row = validate_rule(rule)
        with engine.begin() as conn:
            found = conn.execute(sa.select(alert_rules.c.id).where(_platform_rule(row["name"]))).scalar()
            if found is None:
                try:
                    with conn.begin_nested():
                        found = conn.execute(
                            alert_rules.insert()
                            .values(**row, created_by="default")
                            .returning(alert_rules.c.id)
                        ).scalar_one()
                except sa.exc.IntegrityError:  # a concurrent seeder won
                    found = conn.execute(
                        sa.select(alert_rules.c.id).where(_platform_rule(row["name"]))
                    ).scalar_one()
        out[row["name"]] = found
    return out


def anomaly_states(anomalies: pl.DataFrame, venues: pl.DataFrame, hours: list[datetime], cfg) -> pl.DataFrame:
    """Signal rows for every venue, metric and hour in `hours`: 1 when an alerting anomaly lies in
    (hour - resolve_hours, hour], else 0. anomalies: kpi_anomalies rows (hour, tenant_id, venue_id,
    metric, alerting) covering (min(hours) - resolve_hours, max(hours)]."""
    if not hours or venues.is_empty():
        return pl.DataFrame(schema=SIGNAL_SCHEMA)
    grid = (
        venues.select("tenant_id", "venue_id")
        .join(pl.DataFrame({"metric": list(cfg.metrics)}), how="cross")
        .join(
            pl.DataFrame({"snapshot_hour": hours}, schema={"snapshot_hour": SIGNAL_SCHEMA["snapshot_hour"]}),
            how="cross",
        )
    )
    hits = anomalies.filter(pl.col("alerting")).select(
        "tenant_id", "venue_id", "metric", pl.col("hour").cast(SIGNAL_SCHEMA["snapshot_hour"]).alias("a_hour")
    )
    k = timedelta(hours=cfg.resolve_hours)
    on = grid.join(hits, on=["tenant_id", "venue_id", "metric"], how="inner").filter(
        (pl.col("a_hour") <= pl.col("snapshot_hour")) & (pl.col("a_hour") > pl.col("snapshot_hour") - k)
    )
    active = (
        on.select("tenant_id", "venue_id", "metric", "snapshot_hour")
        .unique()
        .with_columns(pl.lit(1.0).alias("on"))
    )
    out = grid.join(active, on=["tenant_id", "venue_id", "metric", "snapshot_hour"], how="left")
    return out.select(
        "snapshot_hour",
        "tenant_id",
        "venue_id",
        ("anomaly:" + pl.col("metric")).alias("metric"),
        pl.col("on").fill_null(0.0).alias("value"),
    ).cast(SIGNAL_SCHEMA)


def evaluate_anomaly_alerts(
    engine: sa.Engine,
    anomalies: pl.DataFrame,
    venues: pl.DataFrame,
    hours: list[datetime],
    cfg,
    notifier: Notifier | None = None,
    rules: dict[str, str] | None = None,
) -> EvaluationSummary:
    """Replay the anomaly rules hour by hour (at each hour's end) over `hours`. Hours where no venue's
    state changes are skipped (evaluating them would change nothing but last_evaluated_at); the last hour
    is always evaluated. `rules`: metric -> rule name (default: the KPI rules of cfg.metrics)."""
    ids = seed_monitoring_rules(engine)
    rules = rules or {m: f"kpi_anomaly_{m}" for m in cfg.metrics}
    cfg = replace(cfg, metrics=tuple(rules))
    rule_ids = [ids[name] for name in rules.values() if name in ids]
    states = anomaly_states(anomalies, venues, sorted(hours), cfg)
    total = EvaluationSummary()
    if states.is_empty():
        return total
    grp = ["tenant_id", "venue_id", "metric"]
    changed = states.sort("snapshot_hour").with_columns(
        (pl.col("value") != pl.col("value").shift(1).over(grp).fill_null(0.0)).alias("_chg")
    )
    when = set(changed.filter("_chg")["snapshot_hour"].to_list()) | {states["snapshot_hour"].max()}
    by_hour = states.partition_by("snapshot_hour", as_dict=True)
    for h in sorted(when):
        frame = by_hour[(h,)]
        s = evaluate(engine, frame, now=h + timedelta(hours=1), notifier=notifier, rule_ids=rule_ids)
        _merge(total, s)
    return total


def _merge(total: EvaluationSummary, s: EvaluationSummary) -> None:
    total.evaluated_rules += s.evaluated_rules
    for f in (
        "triggered",
        "resolved",
        "still_open",
        "cooldown",
        "lost_race",
        "outside_schedule",
        "notifications",
    ):
        getattr(total, f).extend(getattr(s, f))


def velocity_fraud_signals(wh, now: datetime) -> pl.DataFrame:
    """Signals of the velocity and fraud rules from sales_velocity / fraud_metrics_hourly (empty when
    those tables do not exist yet)."""
    tables = wh.tables()
    frames = []
    if "sales_velocity" in tables:
        day = now.date().isoformat()
        v = wh.read_partitions(
            "sales_velocity",
            "day",
            day,
            day,
            columns=["tenant_id", "venue_id", "bucket_start", "per_minute_5m", "sellout_imminent"],
        )
        if v.height:
            agg = v.group_by("tenant_id", "venue_id", "bucket_start").agg(
                pl.col("per_minute_5m").max().alias("velocity:max_per_minute"),
                pl.col("sellout_imminent").cast(pl.Int64).sum().alias("velocity:sellout_imminent_events"),
            )
            frames.append(
                agg.unpivot(index=["tenant_id", "venue_id", "bucket_start"], variable_name="metric").rename(
                    {"bucket_start": "snapshot_hour"}
                )
            )
    if "fraud_metrics_hourly" in tables:
        f = wh.read_table(
            "fraud_metrics_hourly",
            "hour > %s AND hour <= %s",
            [now - timedelta(hours=2), now],
            columns=["tenant_id", "venue_id", "hour", "fraud_pct"],
        )
        frames.append(
            f.select(
                pl.col("hour").alias("snapshot_hour"),
                "tenant_id",
                "venue_id",
                pl.lit("fraud:fraud_pct").alias("metric"),
                pl.col("fraud_pct").alias("value"),
            )
        )
    if not frames:
        return pl.DataFrame(schema=SIGNAL_SCHEMA)
    return pl.concat([f.select(list(SIGNAL_SCHEMA)).cast(SIGNAL_SCHEMA) for f in frames]).filter(
        pl.col("venue_id").is_not_null()
    )


#: the velocity anomaly rule (monitoring/velocity_anomalies.py): metric -> rule name
VELOCITY_ANOMALY_RULES = {"velocity_tickets_per_hour": "velocity_anomaly"}


def evaluate_velocity_anomaly_alerts(
    engine: sa.Engine,
    anomalies: pl.DataFrame,
    venues: pl.DataFrame,
    hours: list[datetime],
    cfg,
    notifier: Notifier | None = None,
) -> EvaluationSummary:
    """velocity_anomalies rows (hour, tenant_id, venue_id, metric, alerting) -> the `velocity_anomaly`
    rule's instances: one open per venue until the series has been normal for cfg.resolve_hours."""
    return evaluate_anomaly_alerts(engine, anomalies, venues, hours, cfg, notifier, VELOCITY_ANOMALY_RULES)


def evaluate_velocity_fraud(engine: sa.Engine, wh, now: datetime, notifier: Notifier | None = None):
    ids = seed_monitoring_rules(engine)
    frame = velocity_fraud_signals(wh, now)
    if frame.is_empty():
        return EvaluationSummary()
    rule_ids = [ids[n] for n in ("high_velocity", "sellout_imminent", "fraud_spike")]
    return evaluate(engine, frame, now=now, notifier=notifier, rule_ids=rule_ids)
