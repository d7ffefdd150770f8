"""An approved price change handed to the platform's webhook through the delivery ledger (outbox.py). Apart
from the ops table module (ops/pricing.py) so that the outbox, which settles the change's webhook state there,
and this sender do not import each other."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from analytics_pipelines import outbox
from analytics_pipelines.ops import pricing as ops
from analytics_pipelines.ops.db import as_utc


def deliver(engine: sa.Engine, row, url: str | None, transport=None, now: datetime | None = None):
    """Hand an approved change to the platform's webhook through the delivery ledger (outbox.py): the
    request is stored first (so a failed or interrupted POST is never lost), then sent at once; a failure
    is recorded with its next attempt (exponential backoff), and `delivery_sweep_job` (every 5 minutes,
    schedules/data.py) retries it until it is sent or WEBHOOK_MAX_ATTEMPTS claims failed. The row's
    webhook_status: sent | retrying | failed (gave up) | not_configured; webhook_attempts = claims so far,
    webhook_error = the last error. Returns the updated row."""
    t = ops.pending_price_changes
    if not url:
        with engine.begin() as conn:
            conn.execute(
                t.update()
                .where(t.c.id == row.id)
                .values(webhook_status="not_configured", webhook_attempts=0, webhook_error=None)
            )
        return ops.get(engine, row.id)
    with engine.begin() as conn:
        key = outbox.enqueue_webhook(
            conn,
            source=ops.WEBHOOK_SOURCE,
            source_ref=ops.webhook_ref(row.id),
            url=url,
            payload=ops.webhook_payload(row),
            created=as_utc(row.created_at),
            now=now,
            max_attempts=ops.WEBHOOK_MAX_ATTEMPTS,
        )
        conn.execute(t.update().where(t.c.id == row.id).values(webhook_status="pending", webhook_attempts=0))
    outbox.dispatch(engine, key, transport or outbox.Transport(), now)
    return ops.get(engine, row.id)
