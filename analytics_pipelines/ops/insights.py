"""What people did with insights (dismissed, actioned; who and when) and the refresh requests that
insights_refresh_sensor turns into insights_job runs. New tables (created with the ops store)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from analytics_pipelines.ops.db import metadata

#: one row per insight a person acted on: the latest decision (the audit log keeps the history)
insight_states = sa.Table(
    "insight_states",
    metadata,
    sa.Column("insight_id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(36), nullable=False),
    sa.Column("venue_id", sa.String(36)),
    sa.Column("status", sa.String(20), nullable=False),  # dismissed | actioned
    sa.Column("note", sa.String(1000)),
    sa.Column("action", sa.String(100)),
    sa.Column("updated_by", sa.String(100), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("insight_states_tenant", "tenant_id", "venue_id"),
)

insight_refresh_requests = sa.Table(
    "insight_refresh_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(36), nullable=False),
    sa.Column("venue_id", sa.String(36)),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("requested_by", sa.String(100), nullable=False),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    # set by the sensor before this version, when it asked for a run (a launch that failed lost the request);
    # such rows count as handled. Not written any more.
    sa.Column("run_requested_at", sa.DateTime(timezone=True)),
    # set by insights_refresh_sensor once an insights_job run tagged with this request succeeded
    sa.Column("handled_at", sa.DateTime(timezone=True)),
    sa.Column("handled_run_id", sa.String(64)),
)


def states(conn: sa.Connection, tenant_id: str, ids: list[str] | None = None) -> dict[str, dict]:
    """insight id -> its state row (as a dict) for the tenant."""
    t = insight_states
    q = sa.select(t).where(t.c.tenant_id == tenant_id)
    if ids is not None:
        q = q.where(t.c.insight_id.in_(ids))
    return {r.insight_id: dict(r._mapping) for r in conn.execute(q)}


def pending_refreshes(engine: sa.Engine) -> list[dict]:
    """The requests no successful run has handled yet (oldest first); a request stays here until then."""
    t = insight_refresh_requests
    q = sa.select(t).where(t.c.handled_at.is_(None), t.c.run_requested_at.is_(None)).order_by(t.c.id)
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    return [dict(r._mapping) for r in rows]


def mark_handled(engine: sa.Engine, ids: list[int], run_id: str) -> int:
    """Mark the requests handled by the successful run `run_id` (only those still pending); the count."""
    if not ids:
        return 0
    t = insight_refresh_requests
    with engine.begin() as conn:
        res = conn.execute(
            t.update()
            .where(t.c.id.in_(ids), t.c.handled_at.is_(None))
            .values(handled_at=datetime.now(UTC), handled_run_id=run_id)
        )
    return res.rowcount
