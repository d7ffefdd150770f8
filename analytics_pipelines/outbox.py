"""At-least-once delivery of e-mails and webhooks through the ledger `delivery_ledger` (ops/deliveries.py).

The contract:

1. `enqueue` stores the exact message first (state `pending`): the e-mail's RFC 5322 bytes with a Message-ID
   derived from the idempotency key (`<key@tickettoken-analytics>`), or the webhook's URL, JSON body and
   headers, `Idempotency-Key: <key>` among them. The key is deterministic per (source, subject object,
   channel, recipients), so enqueueing the same delivery twice yields one row.
2. `dispatch` claims the row by a conditional UPDATE (pending -> sending, or failed -> sending for an owner's
   retry; `attempts + 1`, a fresh `claim_token`, `lease_until = now + lease`) and commits that BEFORE the
   SMTP/HTTP call; of two deliverers exactly one gets rowcount 1 and sends. After the call it records
   `sent` (or `failed`, with last_error) under its claim token.
3. `sweep_deliveries` resolves what a dead sender left behind: rows in `sending` whose lease has expired (the
   process died between the claim and the record — before or after the message left) and rows still
   `pending` after a lease. It claims them the same way and sends the STORED message again: the same bytes,
   the same Message-ID, the same Idempotency-Key. SMTP cannot tell us whether the first send went out, so this
   is at-least-once: after a crash between send and record the recipient may get the message twice, always
   with one Message-ID, and mail clients/receivers dedupe by it (webhook receivers by Idempotency-Key).
   A row recorded `sent` is never sent again. Failed rows with a `next_attempt_at` (alerts, approved price
   changes' webhooks) are retried by the sweeper up to `max_attempts`, with exponential backoff; report rows
   (next_attempt_at null) are retried by their subscription.

The lease must exceed the longest send (SMTP timeout x retries + backoff); DEFAULT_LEASE is 10 minutes.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from analytics_pipelines import notify
from analytics_pipelines.ops.alerts import alert_instances, alert_notifications
from analytics_pipelines.ops.db import as_utc
from analytics_pipelines.ops.deliveries import delivery_ledger
from analytics_pipelines.ops.exports import report_deliveries
from analytics_pipelines.ops.pricing import settle_webhook

log = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(minutes=10)
#: sources whose failed deliveries the sweeper retries (next_attempt_at set); others retry themselves
SWEEPER_RETRIES = ("alert", "pricing")
RETRY_BASE = timedelta(minutes=5)
MESSAGE_ID_DOMAIN = "tickettoken-analytics"
#: fault injection for tests: called with (key, result) right after the transport returned and before the
#: ledger records the outcome (a crash there is the case the sweeper exists for)
AFTER_SEND: list[Callable[[str, notify.DeliveryResult], None]] = []


def idempotency_key(
    source: str, source_ref: str, channel: str, target: str | Sequence[str], created: datetime | None = None
) -> str:
    """Deterministic key of one delivery. `created` (when the subject object was created) keeps a fresh
    database's alert 1 from reusing an old database's Message-IDs, which receivers would drop as duplicates."""
    targets = [target] if isinstance(target, str) else sorted(t.strip().lower() for t in target)
    stamp = created.astimezone(UTC).isoformat() if created else ""
    material = "|".join([source, source_ref, stamp, channel, *targets])
    return hashlib.sha256(material.encode()).hexdigest()[:40]


def message_id_for(key: str) -> str:
    return f"<{key}@{MESSAGE_ID_DOMAIN}>"


def _utc(value: datetime | None) -> datetime:
    return as_utc(value or datetime.now(UTC))


def _insert_once(conn: sa.Connection, row: dict) -> str:
    d = delivery_ledger
    if conn.execute(sa.select(d.c.id).where(d.c.idem_key == row["idem_key"])).first() is None:
        try:
            with conn.begin_nested():
                conn.execute(d.insert().values(**row))
        except sa.exc.IntegrityError:  # a concurrent enqueuer of the same delivery won: one row either way
            pass
    return row["idem_key"]


def enqueue_email(
    conn: sa.Connection,
    *,
    source: str,
    source_ref: str,
    settings: notify.SmtpSettings,
    to: Sequence[str],
    subject: str,
    body: str,
    attachments: Sequence[notify.Attachment] = (),
    created: datetime | None = None,
    now: datetime | None = None,
    max_attempts: int = 5,
) -> str:
    """Store the e-mail (state pending) in `conn`'s transaction; its idempotency key."""
    key = idempotency_key(source, source_ref, "email", to, created)
    msg = notify.build_email(settings, to, subject, body, attachments, message_id=message_id_for(key))
    now = _utc(now)
    return _insert_once(
        conn,
        dict(
            idem_key=key,
            message_id=msg["Message-ID"],
            source=source,
            source_ref=source_ref,
            channel="email",
            target_masked=", ".join(notify.mask_email(t) for t in to)[:300],
            request={"to": list(to)},
            message=msg.as_bytes(),
            state="pending",
            attempts=0,
            max_attempts=max_attempts,
            created_at=now,
            updated_at=now,
        ),
    )


def enqueue_webhook(
    conn: sa.Connection,
    *,
    source: str,
    source_ref: str,
    url: str,
    payload: dict,
    headers: dict | None = None,
    retries: int | None = None,
    created: datetime | None = None,
    now: datetime | None = None,
    max_attempts: int = 5,
) -> str:
    """Store the webhook request (state pending, `Idempotency-Key` header set); its idempotency key."""
    key = idempotency_key(source, source_ref, "webhook", url, created)
    now = _utc(now)
    request = {
        "url": url,
        "payload": payload,
        "headers": {**(headers or {}), "Idempotency-Key": key},
        "retries": retries,
    }
    return _insert_once(
        conn,
        dict(
            idem_key=key,
            source=source,
            source_ref=source_ref,
            channel="webhook",
            target_masked=notify.mask_url(url)[:300],
            request=request,
            state="pending",
            attempts=0,
            max_attempts=max_attempts,
            created_at=now,
            updated_at=now,
        ),
    )


def claim(
    engine: sa.Engine,
    key: str,
    now: datetime | None = None,
    lease: timedelta = DEFAULT_LEASE,
    retry_failed: bool = False,
) -> str | None:
    """Take the row for sending (one conditional UPDATE, committed): the claim token, or None if another
    deliverer holds it, it was sent, or it is not claimable. Claimable: pending; sending with an expired
    lease (a dead sender's); failed with attempts left and due if `retry_failed`."""
    d, now, token = delivery_ledger, _utc(now), str(uuid.uuid4())
    claimable = [d.c.state == "pending", sa.and_(d.c.state == "sending", d.c.lease_until < now)]
    if retry_failed:
        claimable.append(
            sa.and_(
                d.c.state == "failed",
                d.c.attempts < d.c.max_attempts,
                sa.or_(d.c.next_attempt_at.is_(None), d.c.next_attempt_at <= now),
            )
        )
    with engine.begin() as conn:
        won = (
            conn.execute(
                d.update()
                .where(d.c.idem_key == key, sa.or_(*claimable))
                .values(
                    state="sending",
                    claim_token=token,
                    lease_until=now + lease,
                    attempts=d.c.attempts + 1,
                    updated_at=now,
                )
            ).rowcount
            == 1
        )
    return token if won else None


@dataclass
class Transport:
    """How claimed rows are sent (SMTP settings, in-call retries and backoff)."""

    smtp: notify.SmtpSettings = field(default_factory=notify.SmtpSettings)
    email_retries: int = 2
    webhook_retries: int = 3
    backoff_s: float = 1.0
    webhook_timeout_s: float = 10.0
    sleep: Callable[[float], None] = time.sleep

    def send(self, row) -> notify.DeliveryResult:
        req = row["request"] or {}
        if row["channel"] == "email":
            if row["message"] is None:
                return notify.DeliveryResult(ok=False, attempts=0, error="no stored message")
            msg = email.message_from_bytes(bytes(row["message"]), policy=email.policy.default)
            return notify.send_message(
                self.smtp,
                msg,
                req.get("to") or [],
                retries=self.email_retries,
                backoff_s=self.backoff_s,
                sleep=self.sleep,
            )
        retries = req.get("retries")
        return notify.post_webhook(
            req["url"],
            req.get("payload") or {},
            retries=self.webhook_retries if retries is None else retries,
            backoff_s=self.backoff_s,
            timeout_s=self.webhook_timeout_s,
            headers=req.get("headers") or {},
            sleep=self.sleep,
        )


def dispatch(
    engine: sa.Engine,
    key: str,
    transport: Transport,
    now: datetime | None = None,
    lease: timedelta = DEFAULT_LEASE,
    retry_failed: bool = False,
) -> Dispatched | None:
    """Claim `key` and, only if this call won the claim, send it and record the outcome together with the
    owner's bookkeeping (report_deliveries, alert_notifications) in one transaction. None: not claimed."""
    now = _utc(now)
    token = claim(engine, key, now, lease, retry_failed)
    if token is None:
        return None
    d = delivery_ledger
    with engine.connect() as conn:
        row = conn.execute(sa.select(d).where(d.c.idem_key == key)).mappings().one()
    try:
        result = transport.send(row)
    except Exception as exc:  # noqa: BLE001 - a bug in a transport is a failed delivery, not a crash
        result = notify.DeliveryResult(ok=False, attempts=1, error=f"{type(exc).__name__}: {exc}")
    for hook in AFTER_SEND:
        hook(key, result)
    return Dispatched(result, record(engine, row, token, result, now))


@dataclass(frozen=True)
class Dispatched:
    result: notify.DeliveryResult
    settled: dict | None  # the owner's row written with the outcome (an alert_notifications row), if any


def _backoff(attempt: int) -> timedelta:
    return min(RETRY_BASE * 2 ** max(attempt - 1, 0), timedelta(hours=6))


def record(
    engine: sa.Engine, row: dict, token: str, result: notify.DeliveryResult, now: datetime
) -> dict | None:
    """Record the outcome of the claim `token` and settle the owner's row (a no-op if a sweeper took the row
    over meanwhile: then its outcome is the one recorded)."""
    d = delivery_ledger
    if result.ok:
        values = dict(state="sent", sent_at=now, last_error=None, message=None, next_attempt_at=None)
    else:  # alerts and price changes are retried by the sweeper; reports by their subscription
        retry_at = now + _backoff(row["attempts"]) if row["source"] in SWEEPER_RETRIES else None
        values = dict(
            state="failed", last_error=(result.error or "not sent")[:4000], next_attempt_at=retry_at
        )
    with engine.begin() as conn:
        mine = (
            conn.execute(
                d.update()
                .where(d.c.idem_key == row["idem_key"], d.c.state == "sending", d.c.claim_token == token)
                .values(**values, lease_until=None, updated_at=now)
            ).rowcount
            == 1
        )
        return _settle(conn, row, result, now) if mine else None


def state_of(engine: sa.Engine, key: str) -> dict | None:
    """The ledger row of `key` (None if there is none)."""
    with engine.connect() as conn:
        row = (
            conn.execute(sa.select(delivery_ledger).where(delivery_ledger.c.idem_key == key))
            .mappings()
            .first()
        )
    return dict(row) if row else None


# -- the sweeper ---------------------------------------------------------------------------------------


@dataclass
class SweepSummary:
    resent: list[str] = field(default_factory=list)  # keys sent by the sweeper
    failed: list[str] = field(default_factory=list)  # keys whose re-send failed (recorded)
    reports_reset: list[tuple[int, str]] = field(default_factory=list)  # died before enqueueing: retry

    def as_dict(self) -> dict:
        return {k: len(v) for k, v in self.__dict__.items()}


def sweep_deliveries(
    engine: sa.Engine,
    now: datetime | None = None,
    transport: Transport | None = None,
    lease: timedelta = DEFAULT_LEASE,
    limit: int = 100,
) -> SweepSummary:
    """Send again what dead senders left in the ledger (see the module docstring for the rule), settle the
    report/alert rows they belong to, and hand report deliveries that died before enqueueing back to their
    subscription's retry. Safe to run concurrently with deliverers and other sweepers."""
    now, d = _utc(now), delivery_ledger
    if transport is None:
        from analytics_pipelines.settings import Settings

        transport = Transport(smtp=Settings.from_env().smtp)
    summary = SweepSummary()
    with engine.connect() as conn:
        keys = (
            conn.execute(
                sa.select(d.c.idem_key)
                .where(
                    sa.or_(
                        sa.and_(d.c.state == "sending", d.c.lease_until < now),
                        sa.and_(d.c.state == "pending", d.c.created_at < now - lease),
                        sa.and_(
                            d.c.state == "failed", d.c.next_attempt_at <= now, d.c.attempts < d.c.max_attempts
                        ),
                    )
                )
                .order_by(d.c.id)
                .limit(limit)
            )
            .scalars()
            .all()
        )
    for key in keys:
        done = dispatch(engine, key, transport, now, lease, retry_failed=True)
        if done is None:  # someone else claimed it first
            continue
        (summary.resent if done.result.ok else summary.failed).append(key)
        log.warning(
            "delivery %s left by a dead sender or failed: sent again, %s",
            key,
            "ok" if done.result.ok else done.result.error,
        )
    summary.reports_reset = _reset_reports_never_enqueued(engine, now, lease)
    return summary


def _settle(conn: sa.Connection, row: dict, result: notify.DeliveryResult, now: datetime) -> dict | None:
    """The owner's bookkeeping of a recorded send: report_deliveries' status, an alert_notifications row
    (returned), or an approved price change's webhook state (pending_price_changes)."""
    if row["source"] == "pricing":
        settle_webhook(conn, row, result.ok, result.error)
        return None
    if row["source"] == "report":
        sid, _, period = row["source_ref"].partition(":")
        r = report_deliveries
        where = sa.and_(r.c.subscription_id == int(sid), r.c.period == period, r.c.status != "sent")
        attempts = (conn.execute(sa.select(r.c.attempts).where(where)).scalar() or 0) + 1
        values = (
            dict(
                status="sent",
                sent_at=now,
                last_error=None,
                message_id=row["message_id"],
                next_attempt_at=None,
            )
            if result.ok
            else dict(
                status="failed",
                last_error=(result.error or "not sent")[:4000],
                next_attempt_at=now + _backoff(attempts),
            )
        )
        conn.execute(r.update().where(where).values(**values, attempts=attempts))
        return None
    if row["source"] == "alert":
        instance_id = int(row["source_ref"].partition(":")[0])
        if conn.execute(sa.select(alert_instances.c.id).where(alert_instances.c.id == instance_id)).first():
            note = dict(
                instance_id=instance_id,
                channel=row["channel"],
                target_masked=row["target_masked"],
                status="sent" if result.ok else "failed",
                attempts=result.attempts,
                error=result.error,
                created_at=now,
            )
            conn.execute(alert_notifications.insert().values(**note))
            return note
    return None


def _reset_reports_never_enqueued(
    engine: sa.Engine, now: datetime, lease: timedelta
) -> list[tuple[int, str]]:
    """report_deliveries rows whose claim (`sending`; next_attempt_at holds the claim's lease end, or
    created_at + lease for rows claimed before the ledger existed) has expired and that have no ledger row:
    the sender died before the e-mail existed (while rendering), so nothing went out. They go back to
    `failed`, due now, and their subscription's next tick delivers them."""
    r, d = report_deliveries, delivery_ledger
    ref = sa.cast(r.c.subscription_id, sa.String) + sa.literal(":") + r.c.period
    orphan = ~sa.exists().where(d.c.source == "report", d.c.source_ref == ref)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(r.c.subscription_id, r.c.period, r.c.next_attempt_at, r.c.created_at).where(
                r.c.status == "sending", orphan
            )
        ).all()
    out = []
    for row in rows:
        lease_end = _utc(row.next_attempt_at) if row.next_attempt_at else _utc(row.created_at) + lease
        if lease_end >= now:
            continue
        with engine.begin() as conn:
            done = conn.execute(
                r.update()
                .where(
                    r.c.subscription_id == row.subscription_id,
                    r.c.period == row.period,
                    r.c.status == "sending",
                    ~sa.exists().where(
                        d.c.source == "report", d.c.source_ref == f"{row.subscription_id}:{row.period}"
                    ),
                )
                .values(
                    status="failed",
                    attempts=r.c.attempts + 1,
                    next_attempt_at=now,
                    last_error="the sender died before the e-mail was handed over; retried",
                )
            ).rowcount
        if done:
            out.append((row.subscription_id, row.period))
    return out
