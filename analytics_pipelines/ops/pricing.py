"""Operational table of the pricing recommendations (`pending_price_changes`) and their lifecycle.

pending -> approved | rejected | expired | superseded, each transition with who and when. At most one pending
row per ticket type (a partial unique index): a newer recommendation supersedes the older one in the same
transaction. The analytics never write the platform's tables: an approved change is handed to the platform
through a webhook (`deliver`), and a platform change seen later in ticket_price_history that matches it
(same type and price, after the approval) is linked (`link_applied`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import sqlalchemy as sa

from analytics_pipelines.ops.db import as_utc, metadata

STATUSES = ("pending", "approved", "rejected", "expired", "superseded")

pending_price_changes = sa.Table(
    "pending_price_changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(36), nullable=False),
    sa.Column("venue_id", sa.String(36)),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("ticket_type_id", sa.String(36), nullable=False),
    sa.Column("category_id", sa.String(36)),
    sa.Column("currency", sa.String(3)),
    sa.Column("current_price_cents", sa.BigInteger, nullable=False),
    sa.Column("recommended_price_cents", sa.BigInteger, nullable=False),
    sa.Column("expected_revenue_change_cents", sa.BigInteger, nullable=False),
    sa.Column("expected_revenue_change_low_cents", sa.BigInteger, nullable=False),
    sa.Column("expected_revenue_change_high_cents", sa.BigInteger, nullable=False),
    sa.Column("demand_score", sa.Float, nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("elasticity", sa.Float, nullable=False),
    sa.Column("elasticity_ci_low", sa.Float, nullable=False),
    sa.Column("elasticity_ci_high", sa.Float, nullable=False),
    sa.Column("reasoning", sa.JSON, nullable=False),
    sa.Column("model_version", sa.String(100), nullable=False),
    sa.Column("status", sa.String(12), nullable=False, server_default="pending"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("decided_by", sa.String(100)),
    sa.Column("decided_at", sa.DateTime(timezone=True)),
    sa.Column("decision_note", sa.Text),
    sa.Column("superseded_by", sa.Integer),
    sa.Column("webhook_status", sa.String(20)),  # pending | sent | retrying | failed | not_configured
    sa.Column("webhook_attempts", sa.Integer),
    sa.Column("webhook_error", sa.Text),
    sa.Column("applied_at", sa.DateTime(timezone=True)),
    sa.Column("applied_change_id", sa.String(36)),
    sa.Index(
        "pending_price_changes_one_pending",
        "ticket_type_id",
        unique=True,
        sqlite_where=sa.text("status = 'pending'"),
        postgresql_where=sa.text("status = 'pending'"),
    ),
    sa.Index("pending_price_changes_event", "tenant_id", "event_id"),
)

COLUMNS = [c.name for c in pending_price_changes.columns]


class TransitionError(ValueError):
    """The change is not pending (decided, superseded or expired): `status` says what it is."""

    def __init__(self, change_id: int, status: str):
        super().__init__(f"price change {change_id} is {status}, not pending")
        self.status = status


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


def expire_due(engine: sa.Engine, now: datetime | None = None) -> int:
    """Pending rows past their expiry become 'expired' (decided_by 'system'); returns how many."""
    t = pending_price_changes
    now = _now(now)
    with engine.begin() as conn:
        return conn.execute(
            t.update()
            .where(t.c.status == "pending", t.c.expires_at <= now)
            .values(status="expired", decided_by="system", decided_at=now)
        ).rowcount


def publish(engine: sa.Engine, rows: Iterable[dict], now: datetime | None = None) -> list[int]:
    """Insert new pending recommendations; the ticket type's older pending row becomes 'superseded' (by the
    new id) in the same transaction. Returns the new ids."""
    t = pending_price_changes
    now = _now(now)
    ids = []
    expire_due(engine, now)
    with engine.begin() as conn:
        for row in rows:
            old = conn.execute(
                sa.select(t.c.id).where(t.c.ticket_type_id == row["ticket_type_id"], t.c.status == "pending")
            ).scalar()
            if old is not None:
                conn.execute(
                    t.update()
                    .where(t.c.id == old)
                    .values(status="superseded", decided_by="system", decided_at=now)
                )
            new = conn.execute(
                t.insert().values(**{**row, "status": "pending", "created_at": now}).returning(t.c.id)
            ).scalar_one()
            if old is not None:
                conn.execute(t.update().where(t.c.id == old).values(superseded_by=new))
            ids.append(new)
    return ids


def get(engine: sa.Engine, change_id: int):
    with engine.connect() as conn:
        return conn.execute(
            sa.select(pending_price_changes).where(pending_price_changes.c.id == change_id)
        ).first()


def decide(
    engine: sa.Engine,
    change_id: int,
    decision: str,
    user: str,
    note: str | None = None,
    now: datetime | None = None,
):
    """pending -> approved | rejected by `user`. A pending row past its expiry is marked expired first and
    the decision refused (TransitionError with status 'expired'); so is any row that is not pending.
    Returns the updated row."""
    if decision not in ("approved", "rejected"):
        raise ValueError("decision must be 'approved' or 'rejected'")
    t = pending_price_changes
    now = _now(now)
    expire_due(engine, now)
    with engine.begin() as conn:
        done = conn.execute(
            t.update()
            .where(t.c.id == change_id, t.c.status == "pending")
            .values(status=decision, decided_by=user[:100], decided_at=now, decision_note=note)
        ).rowcount
        row = conn.execute(sa.select(t).where(t.c.id == change_id)).first()
    if row is None:
        raise LookupError(f"price change {change_id} not found")
    if not done:
        raise TransitionError(change_id, row.status)
    return row


def webhook_payload(row) -> dict:
    """What the platform receives for an approved change (no personal data)."""
    return {
        "type": "price_change.approved",
        "change_id": row.id,
        "tenant_id": row.tenant_id,
        "venue_id": row.venue_id,
        "event_id": row.event_id,
        "ticket_type_id": row.ticket_type_id,
        "currency": row.currency,
        "old_price_cents": row.current_price_cents,
        "new_price_cents": row.recommended_price_cents,
        "approved_by": row.decided_by,
        "approved_at": as_utc(row.decided_at).isoformat(),
        "model_version": row.model_version,
    }


#: the delivery ledger's source of approved changes; source_ref "<change id>:approved"
WEBHOOK_SOURCE = "pricing"
#: delivery attempts (claims, each with its in-call retries) before an approved change's webhook gives up
WEBHOOK_MAX_ATTEMPTS = 8


def webhook_ref(change_id: int) -> str:
    return f"{change_id}:approved"


def settle_webhook(conn: sa.Connection, ledger_row, ok: bool, error: str | None) -> None:
    """Mirror a recorded webhook attempt (the ledger row after its claim) on the change's row."""
    change_id = int(str(ledger_row["source_ref"]).partition(":")[0])
    attempts = int(ledger_row["attempts"] or 0)
    status = "sent" if ok else ("retrying" if attempts < int(ledger_row["max_attempts"]) else "failed")
    t = pending_price_changes
    conn.execute(
        t.update()
        .where(t.c.id == change_id)
        .values(webhook_status=status, webhook_attempts=attempts, webhook_error=None if ok else error)
    )


def webhook_next_attempts(engine: sa.Engine, change_ids: Iterable[int]) -> dict[int, datetime | None]:
    """When each change's failed webhook is retried next (the delivery ledger; None: not scheduled)."""
    from analytics_pipelines.ops.deliveries import delivery_ledger as d

    refs = {webhook_ref(i): i for i in change_ids}
    if not refs:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(d.c.source_ref, d.c.state, d.c.next_attempt_at, d.c.attempts, d.c.max_attempts).where(
                d.c.source == WEBHOOK_SOURCE, d.c.source_ref.in_(list(refs))
            )
        ).all()
    return {
        refs[r.source_ref]: as_utc(r.next_attempt_at)
        if r.state == "failed" and r.attempts < r.max_attempts and r.next_attempt_at
        else None
        for r in rows
    }


def approved(engine: sa.Engine) -> list[dict]:
    """Every approved change (the price_history mart's 'recommendation' rows)."""
    t = pending_price_changes
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t).where(t.c.status == "approved").order_by(t.c.id)).all()
    return [
        {**r._mapping, "decided_at": as_utc(r.decided_at), "applied_at": as_utc(r.applied_at)} for r in rows
    ]


def link_applied(engine: sa.Engine, links: Iterable[tuple[int, datetime, str | None]]) -> int:
    """Record, for approved changes, the platform change that applied them: (change id, changed_at, id)."""
    t = pending_price_changes
    n = 0
    with engine.begin() as conn:
        for change_id, at, platform_id in links:
            n += conn.execute(
                t.update()
                .where(t.c.id == change_id, t.c.status == "approved", t.c.applied_at.is_(None))
                .values(applied_at=at, applied_change_id=platform_id)
            ).rowcount
    return n
