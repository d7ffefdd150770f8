"""Operations jobs (op jobs: they act on the warehouse and the operational DB, they produce no asset):
alert evaluation after kpi_snapshots lands, the nightly maintenance, and the delivery sweeper."""

import dagster as dg
import sqlalchemy as sa

from analytics_pipelines import outbox
from analytics_pipelines.alerting import Notifier, evaluate, seed_default_rules
from analytics_pipelines.alerting.preview import load_kpis
from analytics_pipelines.automation import maintenance as M
from analytics_pipelines.automation.retries import RUN_RETRY_TAGS, now_of, retry_transient
from analytics_pipelines.ops.alerts import alert_rules
from analytics_pipelines.resources import OpsResource, WarehouseResource
from analytics_pipelines.settings import Settings

TAGS = {"team": "data-platform"}


# -- alert evaluation ------------------------------------------------------------------------------------


class EvaluationConfig(dg.Config):
    """How the alert evaluation reads kpi_snapshots."""

    now: str = ""
    """Evaluate as of this ISO time (with zone); empty: the wall clock."""
    lookback_hours: int = 48
    """kpi_snapshots hours read; at least two of the largest enabled rule window (change_percent)."""


@dg.op(
    description="Seed the default alert rules (idempotent), evaluate every enabled rule over the recent "
    "kpi_snapshots, open/resolve alert instances and deliver their notifications.",
    tags=TAGS,
)
def evaluate_alerts(
    context: dg.OpExecutionContext, config: EvaluationConfig, warehouse: WarehouseResource, ops: OpsResource
) -> dg.Output[dict]:
    now = now_of(config.now)
    engine = retry_transient(ops.engine)
    seeded = seed_default_rules(engine)
    if seeded:
        context.log.info(f"default alert rules added: {', '.join(seeded)}")
    with engine.connect() as conn:
        longest = (
            conn.execute(
                sa.select(sa.func.max(alert_rules.c.window_minutes)).where(alert_rules.c.enabled.is_(True))
            ).scalar()
            or 60
        )
    frame = retry_transient(lambda: load_kpis(warehouse.get(), longest, now, config.lookback_hours))
    if frame.is_empty():
        context.log.warning("no kpi_snapshots rows in the lookback window: nothing to evaluate")
    # safe to repeat: an open instance is never opened twice, so a retried evaluation cannot duplicate
    summary = retry_transient(lambda: evaluate(engine, frame, now, Notifier.from_env()))
    counts = summary.as_dict()
    failed = [n for n in summary.notifications if n["status"] == "failed"]
    context.log.info(f"alerts at {now.isoformat()}: {counts}")
    for n in failed:
        context.log.warning(f"notification failed: {n['channel']} to {n['target_masked']}: {n['error']}")
    return dg.Output(
        counts,
        metadata={
            "evaluated_at": now.isoformat(),
            "kpi_rows": frame.height,
            **{k: v for k, v in counts.items()},
            "triggered_scopes": dg.MetadataValue.json([list(t) for t in summary.triggered[:50]]),
            "failed_notifications": len(failed),
        },
    )


@dg.job(
    name="alert_evaluation_job",
    tags=TAGS,
    description="Evaluate the alert rules over kpi_snapshots (run by kpi_snapshots_alert_sensor after "
    "every kpi_snapshots materialization).",
)
def alert_evaluation_job():
    evaluate_alerts()


# -- maintenance -----------------------------------------------------------------------------------------


class MaintenanceConfig(dg.Config):
    """Retention settings; empty values come from the environment, then the documented constants."""

    now: str = ""
    """Run as of this ISO time (with zone); empty: the wall clock."""
    kpi_retention_days: int = M.KPI_RETENTION_DAYS
    alert_retention_days: int = M.ALERT_RETENTION_DAYS
    export_expiry_days: int = M.EXPORT_EXPIRY_DAYS
    raw_retention_days: int = -1
    """Raw fact partitions older than this are dropped. -1: TT_RAW_RETENTION_DAYS (unset: off); 0: off."""


@dg.op(
    description="Nightly maintenance: kpi_snapshots older than the retention, old resolved alert "
    "instances and notifications, expired export files, and (only when configured) old raw "
    "partitions.",
    tags=TAGS,
)
def run_maintenance(
    context: dg.OpExecutionContext, config: MaintenanceConfig, warehouse: WarehouseResource, ops: OpsResource
) -> dg.Output[dict]:
    now = now_of(config.now)
    raw_days = (
        Settings.from_env().raw_retention_days
        if config.raw_retention_days < 0
        else config.raw_retention_days or None
    )
    report = retry_transient(
        lambda: M.run_maintenance(
            warehouse.get(),
            ops.engine(),
            now,
            kpi_days=config.kpi_retention_days,
            alert_days=config.alert_retention_days,
            raw_days=raw_days,
            export_days=config.export_expiry_days,
        )
    )
    for p in report.problems:
        context.log.warning(p)
    out = {
        "kpi_hours_dropped": report.kpi_hours_dropped,
        "alert_instances_deleted": report.alert_instances_deleted,
        "alert_notifications_deleted": report.alert_notifications_deleted,
        "raw_partitions_dropped": sum(report.raw_partitions_dropped.values()),
        "exports_expired": len(report.exports_expired),
        "export_files_deleted": report.export_files_deleted,
        "problems": len(report.problems),
    }
    context.log.info(f"maintenance: {out}; raw retention {raw_days or 'off'}")
    return dg.Output(
        out,
        metadata={
            **out,
            "raw_retention_days": raw_days or 0,
            "raw_by_table": dg.MetadataValue.json(report.raw_partitions_dropped),
        },
    )


@dg.job(
    name="maintenance_job",
    tags={**TAGS, **RUN_RETRY_TAGS},
    description="Retention and export expiry (nightly, see maintenance_schedule).",
)
def maintenance_job():
    run_maintenance()


@dg.op(
    description="Resend the deliveries (report e-mails, alert e-mails and webhooks) a crashed sender left "
    "in flight, with their recorded Message-ID / Idempotency-Key, and retry failed alert "
    "sends that are due (analytics_pipelines/outbox.py).",
    tags=TAGS,
)
def sweep_deliveries(context: dg.OpExecutionContext, ops: OpsResource) -> dg.Output[dict]:
    summary = outbox.sweep_deliveries(ops.engine(), transport=Notifier.from_env().transport())
    counts = summary.as_dict()
    context.log.info(f"delivery sweep: {counts}")
    return dg.Output(counts, metadata={k: v for k, v in counts.items() if isinstance(v, (int, float, str))})


@dg.job(
    name="delivery_sweep_job",
    tags=TAGS,
    description="At-least-once delivery: resend what a crash left between send and record.",
)
def delivery_sweep_job():
    sweep_deliveries()


class CompactionConfig(dg.Config):
    """Monthly compaction of the embedded warehouse (warehouse/compaction.py)."""

    now: str = ""
    """Run as of this ISO time (with zone); empty: the wall clock. Months ending more than after_days before
    it are closed."""
    after_days: int = -1
    """-1: TT_WAREHOUSE_COMPACT_AFTER_DAYS (default 3)."""
    grace_seconds: int = -1
    """Daily files of a compacted month are removed this long after its commit. -1:
    TT_WAREHOUSE_COMPACT_GRACE_SECONDS (default 3600)."""


@dg.op(
    description="Compact every closed month of the embedded warehouse's daily/hourly-partitioned tables into "
    "one Parquet file per month (atomic, readers never blocked), then remove the daily files of months "
    "compacted more than the grace period ago. Nothing to do on the PostgreSQL warehouse.",
    tags=TAGS,
)
def compact_warehouse(
    context: dg.OpExecutionContext, config: CompactionConfig, warehouse: WarehouseResource
) -> dg.Output[dict]:
    from analytics_pipelines.warehouse.compaction import compact

    settings = Settings.from_env().compaction
    after = settings.after_days if config.after_days < 0 else config.after_days
    grace = settings.grace_seconds if config.grace_seconds < 0 else config.grace_seconds
    out = retry_transient(lambda: compact(warehouse.get(), now_of(config.now), after, grace))
    changed = out.pop("changed", [])
    context.log.info(f"warehouse compaction: {out}")
    return dg.Output(
        out,
        metadata={
            **{k: v for k, v in out.items() if isinstance(v, (int, str))},
            "changed": dg.MetadataValue.json(changed),
        },
    )


@dg.job(
    name="warehouse_compaction_job",
    tags={**TAGS, **RUN_RETRY_TAGS},
    description="Closed months of the embedded warehouse -> one Parquet file each (warehouse_compaction_schedule).",
)
def warehouse_compaction_job():
    compact_warehouse()


jobs = [alert_evaluation_job, maintenance_job, delivery_sweep_job, warehouse_compaction_job]
