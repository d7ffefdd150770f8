"""The audit trail of the API's writes: who changed which operational object, when, and from what to what.

One row per write (create, update, delete, toggle, pause, cancel, ...), in the same transaction as the write
itself, so that a change without its audit row cannot exist. `before`/`after` are the object's JSON as the
API shows it (never secrets: e-mail recipients are kept, webhook secrets are not stored here)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from analytics_pipelines.ops.db import metadata

api_audit = sa.Table(
    "api_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("tenant_id", sa.String(36), nullable=False),
    sa.Column("venue_id", sa.String(36)),
    sa.Column("actor", sa.String(100)),  # the token's subject
    sa.Column("entity", sa.String(40), nullable=False),  # alert_rule | report_schedule | export | ...
    sa.Column("entity_id", sa.String(64), nullable=False),
    sa.Column("action", sa.String(20), nullable=False),  # create | update | delete | toggle | pause | ...
    sa.Column("before", sa.JSON),
    sa.Column("after", sa.JSON),
    sa.Index("api_audit_entity", "entity", "entity_id"),
)


def record_audit(
    conn: sa.Connection,
    *,
    tenant_id: str,
    venue_id: str | None,
    actor: str | None,
    entity: str,
    entity_id,
    action: str,
    before: dict | None,
    after: dict | None,
) -> None:
    """Insert the audit row on `conn` (the caller's write transaction)."""
    conn.execute(
        api_audit.insert().values(
            at=datetime.now(UTC),
            tenant_id=tenant_id,
            venue_id=venue_id,
            actor=actor,
            entity=entity,
            entity_id=str(entity_id),
            action=action,
            before=before,
            after=after,
        )
    )
