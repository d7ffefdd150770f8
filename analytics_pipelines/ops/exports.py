"""Operational tables of exports and report delivery.

analytics_exports follows the old service's lifecycle: pending -> processing -> completed | failed, plus
cancelled (while pending) and expired (file deleted after expires_at). report_deliveries is keyed by
(subscription, period): a report for one period is sent at most once, whatever ticks twice."""

from __future__ import annotations

import sqlalchemy as sa

from analytics_pipelines.ops.db import metadata

EXPORT_STATUSES = ("pending", "processing", "completed", "failed", "cancelled", "expired")
EXPORT_TYPES = (
    "analytics_report",
    "customer_list",
    "transaction_history",
    "event_summary",
    "financial_report",
    "raw_data",
)
EXPORT_FORMATS = ("csv", "xlsx", "pdf", "json")

analytics_exports = sa.Table(
    "analytics_exports",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),  # uuid
    sa.Column("tenant_id", sa.String(36), nullable=False),
    sa.Column("venue_id", sa.String(36)),
    sa.Column("user_id", sa.String(100)),
    sa.Column("export_type", sa.String(40), nullable=False),
    sa.Column("format", sa.String(10), nullable=False),
    sa.Column("status", sa.String(15), nullable=False, server_default="pending"),
    sa.Column("progress", sa.Integer, nullable=False, server_default="0"),  # 0..100
    sa.Column(
        "filters", sa.JSON, nullable=False, default=dict
    ),  # date_from, date_to, venue_ids, event_ids, category_ids, segments
    sa.Column("options", sa.JSON, nullable=False, default=dict),
    sa.Column("file_path", sa.Text),
    sa.Column("file_size", sa.BigInteger),
    sa.Column("checksum_sha256", sa.String(64)),
    sa.Column("error_message", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("max_attempts", sa.Integer, nullable=False, server_default="3"),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("run_id", sa.String(64)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("completed_at", sa.DateTime(timezone=True)),
    sa.Column("expires_at", sa.DateTime(timezone=True)),
    # added for issue 20 (nullable: existing databases get it by ops.db's additive step); null = 0
    sa.Column("retries", sa.Integer),  # manual retries (POST /v1/exports/{id}/retry)
    sa.CheckConstraint(
        "status IN ('pending','processing','completed','failed','cancelled','expired')",
        name="analytics_exports_status",
    ),
    sa.CheckConstraint("progress BETWEEN 0 AND 100", name="analytics_exports_progress"),
)

report_subscriptions = sa.Table(
    "report_subscriptions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(36), nullable=False),
    sa.Column("venue_id", sa.String(36)),
    sa.Column("report", sa.String(40), nullable=False),  # daily_venue | weekly_executive | an export type
    sa.Column("format", sa.String(10), nullable=False, server_default="pdf"),
    sa.Column("recipients", sa.JSON, nullable=False, default=list),
    sa.Column("cadence", sa.String(10), nullable=False),  # once | daily | weekly | monthly
    sa.Column("local_time", sa.String(5), nullable=False, server_default="07:00"),  # HH:MM
    sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_by", sa.String(100)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    # added for issue 20, all nullable (null keeps the first version's meaning; existing databases get them
    # from ops.db's additive step): exports/schedules.py
    sa.Column("run_date", sa.Date),  # once: the local date
    sa.Column("day_of_week", sa.Integer),  # weekly: 0 = Monday .. 6 = Sunday (null: Monday)
    sa.Column("day_of_month", sa.Integer),  # monthly: 1..31, past the month's end = its last day (null: 1)
    sa.Column("end_date", sa.Date),  # last local date with a delivery (inclusive)
    sa.Column(
        "active_from", sa.DateTime(timezone=True)
    ),  # occurrences before it are not sent (create/resume)
    sa.Column("filters", sa.JSON),  # export-type schedules: the export filters
    sa.Column("options", sa.JSON),  # export-type schedules: the export options
    sa.Column("updated_at", sa.DateTime(timezone=True)),
    # ids are never reused (SQLite would reuse a deleted highest rowid): the delivery sensor's run keys
    # "<id>:<period>:<attempt>" must not collide with a deleted schedule's (new SQLite databases;
    # PostgreSQL sequences never reuse)
    sqlite_autoincrement=True,
)

report_deliveries = sa.Table(
    "report_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "subscription_id",
        sa.Integer,
        sa.ForeignKey("report_subscriptions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("period", sa.String(20), nullable=False),  # 2026-11-21 | 2026-W47 | 2026-11 | once-2026-11-21
    sa.Column("status", sa.String(10), nullable=False),  # pending | sending | sent | failed
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True)),  # when a failed delivery may be retried
    sa.Column("file_path", sa.Text),
    sa.Column("message_id", sa.String(200)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("sent_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("subscription_id", "period", name="report_deliveries_once"),
)
