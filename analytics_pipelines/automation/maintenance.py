"""Nightly maintenance, plain functions (the Dagster op in jobs/operations.py only calls them).

Retention constants follow the old analytics service (reference analytics-service.md §3, §4, §6):
- aggregated metrics 365 days (`deleteOldMetrics(retentionDays)` L2894, DATA_RETENTION_DAYS default 365
  L1193) -> kpi_snapshots hours older than KPI_RETENTION_DAYS are dropped;
- alert history: resolved alert instances and their notification records older than ALERT_RETENTION_DAYS
  (365, the same DATA_RETENTION_DAYS; open instances are never deleted);
- exports: `cleanupExpiredExports(7)` (L3474) -> completed exports past `expires_at` (or, without one,
  completed more than EXPORT_EXPIRY_DAYS = 7 days ago) lose their file and become `expired`;
- raw events were kept 30 days in the old service, but here the raw layer is what staging is rebuilt from,
  so dropping raw partitions is OFF unless TT_RAW_RETENTION_DAYS is set (see docs/automation.md).
"""

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from analytics_pipelines.ops.alerts import alert_instances, alert_notifications
from analytics_pipelines.ops.exports import analytics_exports
from analytics_pipelines.source import contract
from analytics_pipelines.staging.ingestion import raw_table
from analytics_pipelines.staging.normalize import PARTITION
from analytics_pipelines.warehouse import Warehouse

log = logging.getLogger(__name__)

KPI_RETENTION_DAYS = 365
ALERT_RETENTION_DAYS = 365
EXPORT_EXPIRY_DAYS = 7
#: kpi_snapshots is partitioned by hour_key ("2026-11-20-13:00", UTC hour start): compares as text with a date
KPI_TABLE, KPI_PARTITION = "kpi_snapshots", "hour_key"


def cutoff(now: datetime, days: int) -> str:
    """The first kept UTC date as text: partitions sorting before it are older than `days` days."""
    if now.tzinfo is None:
        raise ValueError("now must be time-zone aware")
    return (now.astimezone(UTC).date() - timedelta(days=days)).isoformat()


@dataclass
class MaintenanceReport:
    kpi_hours_dropped: int = 0
    alert_instances_deleted: int = 0
    alert_notifications_deleted: int = 0
    raw_partitions_dropped: dict[str, int] = field(default_factory=dict)
    exports_expired: list[str] = field(default_factory=list)
    export_files_deleted: int = 0
    problems: list[str] = field(default_factory=list)


def purge_kpi_snapshots(wh: Warehouse, now: datetime, days: int = KPI_RETENTION_DAYS) -> int:
    if KPI_TABLE not in wh.tables():
        return 0
    return len(wh.drop_partitions(KPI_TABLE, KPI_PARTITION, cutoff(now, days)))


def purge_alert_history(
    engine: sa.Engine, now: datetime, days: int = ALERT_RETENTION_DAYS
) -> tuple[int, int]:
    """Delete resolved instances resolved before the cutoff, with their notifications. (instances, notes)"""
    before = datetime.combine(date.fromisoformat(cutoff(now, days)), datetime.min.time(), UTC)
    old = sa.select(alert_instances.c.id).where(
        alert_instances.c.status == "resolved", alert_instances.c.resolved_at < before
    )
    with engine.begin() as conn:
        notes = conn.execute(
            alert_notifications.delete().where(alert_notifications.c.instance_id.in_(old))
        ).rowcount
        inst = conn.execute(alert_instances.delete().where(alert_instances.c.id.in_(old))).rowcount
    return inst, notes


def drop_old_raw_partitions(wh: Warehouse, now: datetime, days: int | None) -> dict[str, int]:
    """Raw fact partitions older than `days` (None: nothing). Staging and the ledger are kept."""
    if days is None:
        return {}
    have, first_kept, out = set(wh.tables()), cutoff(now, days), {}
    for name, spec in contract.tables().items():
        if spec.partitioned and raw_table(name) in have:
            dropped = wh.drop_partitions(raw_table(name), PARTITION, first_kept)
            if dropped:
                out[raw_table(name)] = len(dropped)
    return out


def expire_exports(
    engine: sa.Engine, now: datetime, days: int = EXPORT_EXPIRY_DAYS, report: MaintenanceReport | None = None
) -> list[str]:
    """Completed exports past expires_at (or completed more than `days` ago without one): delete the
    file, mark the row expired. A file that is already gone is fine; one that cannot be deleted keeps the
    row completed (retried tomorrow) and is reported."""
    report = report or MaintenanceReport()
    now = now.astimezone(UTC)
    t = analytics_exports.c
    due = sa.or_(
        t.expires_at < now, sa.and_(t.expires_at.is_(None), t.completed_at < now - timedelta(days=days))
    )
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.id, t.file_path).where(t.status == "completed", due)).all()
    expired = []
    for export_id, path in rows:
        if path:
            p = Path(path)
            try:
                if p.is_dir():
                    raise IsADirectoryError(f"{p} is a directory, not an export file")
                if p.exists():
                    p.unlink()
                    report.export_files_deleted += 1
            except OSError as exc:
                report.problems.append(f"export {export_id}: cannot delete {p.name}: {exc}")
                log.warning("export %s: cannot delete its file: %s", export_id, exc)
                continue
        with engine.begin() as conn:
            done = conn.execute(
                analytics_exports.update()
                .where(t.id == export_id, t.status == "completed")
                .values(status="expired", updated_at=now)
            ).rowcount
        if done:
            expired.append(export_id)
    report.exports_expired.extend(expired)
    return expired


def run_maintenance(
    wh: Warehouse,
    engine: sa.Engine,
    now: datetime,
    kpi_days: int = KPI_RETENTION_DAYS,
    alert_days: int = ALERT_RETENTION_DAYS,
    raw_days: int | None = None,
    export_days: int = EXPORT_EXPIRY_DAYS,
) -> MaintenanceReport:
    report = MaintenanceReport()
    report.kpi_hours_dropped = purge_kpi_snapshots(wh, now, kpi_days)
    report.alert_instances_deleted, report.alert_notifications_deleted = purge_alert_history(
        engine, now, alert_days
    )
    report.raw_partitions_dropped = drop_old_raw_partitions(wh, now, raw_days)
    expire_exports(engine, now, export_days, report)
    return report
