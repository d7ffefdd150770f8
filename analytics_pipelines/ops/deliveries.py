"""The delivery ledger (outbox) shared by report e-mails and alert notifications.

One row per (channel, recipients, subject object): its idempotency key is derived from them, the e-mail's
Message-ID from the key, and the exact message (or webhook request) is stored before anything is sent, so
that a sweeper can send it again, byte for byte, after a crash. States:

    pending --claim--> sending --> sent
                          |   \\--> failed --claim (retry)--> sending
                          \\--(lease expired: the sender died)--claim by the sweeper--> sending

Every claim is one conditional UPDATE, so of two deliverers exactly one sends. See analytics_pipelines/outbox.py.
"""

from __future__ import annotations

import sqlalchemy as sa

from analytics_pipelines.ops.db import metadata

DELIVERY_STATES = ("pending", "sending", "sent", "failed")

delivery_ledger = sa.Table(
    "delivery_ledger",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("idem_key", sa.String(64), nullable=False, unique=True),  # also the webhook Idempotency-Key
    sa.Column("message_id", sa.String(200)),  # <idem_key@tickettoken-analytics> (e-mail)
    sa.Column("source", sa.String(20), nullable=False),  # report | alert | pricing
    sa.Column(
        "source_ref", sa.String(100), nullable=False
    ),  # report: "<subscription>:<period>"; alert: "<instance>:<action>"
    sa.Column("channel", sa.String(10), nullable=False),  # email | webhook
    sa.Column("target_masked", sa.String(300)),
    sa.Column("request", sa.JSON, nullable=False, default=dict),  # email: to; webhook: url, payload, headers
    sa.Column("message", sa.LargeBinary),  # the RFC 5322 bytes (dropped once sent)
    sa.Column("state", sa.String(10), nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),  # claims so far
    sa.Column("max_attempts", sa.Integer, nullable=False, server_default="5"),
    sa.Column("last_error", sa.Text),
    sa.Column("claim_token", sa.String(36)),  # who holds the current claim
    sa.Column("lease_until", sa.DateTime(timezone=True)),  # a claim older than this is a dead sender's
    sa.Column(
        "next_attempt_at", sa.DateTime(timezone=True)
    ),  # failed: when the sweeper may retry (null: owner retries)
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("sent_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint("state IN ('pending','sending','sent','failed')", name="delivery_ledger_state"),
    sa.Index("delivery_ledger_source", "source", "source_ref"),
    sa.Index("delivery_ledger_state_lease", "state", "lease_until"),
)
