"""Report subscriptions and their delivery ledger (report_subscriptions, report_deliveries).

A subscription names a venue, a report (daily_venue | weekly_executive | an export type), a format,
recipients, a frequency (once | daily | weekly | monthly) and a local time in a time zone (validation and
storage: exports/subscriptions.py; occurrences, DST, periods: exports/schedules.py). At each occurrence the
previous period becomes due: yesterday (daily), last ISO week Monday-Sunday (weekly), last calendar month
(monthly). Dates are calendar dates of the venue-local calendar applied to the marts' UTC days.

One claim per (subscription, period): the sender first claims the report_deliveries row by INSERT (or, for a
retry, by a conditional UPDATE failed -> sending); the unique key lets exactly one caller through, and only it
renders and sends. The e-mail itself goes through the delivery ledger (analytics_pipelines/outbox.py): the
rendered message is stored with a Message-ID derived from (subscription, period, recipients) and the row is
committed in `sending` before the SMTP call; `sent` (ledger and report_deliveries, one transaction) after.
A failed send is recorded (attempts, last_error, next_attempt_at) and re-claimed later, until MAX_ATTEMPTS;
a retry sends the stored message again (same Message-ID). A process killed between the SMTP handoff and the
record leaves both rows in `sending`: `outbox.sweep_deliveries` sends the stored message again after the
lease (at least once; the same Message-ID lets the receiving side dedupe) and marks both rows `sent`; a
report claim whose sender died before the message was stored goes back to `failed` and is retried.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from analytics_pipelines import outbox
from analytics_pipelines.exports.lifecycle import backoff, utcnow
from analytics_pipelines.exports.schedules import Schedule, latest_due, period_bounds, period_label
from analytics_pipelines.exports.subscriptions import REPORT_TITLES, REPORTS, create_subscription  # noqa: F401 - create_subscription: callers' API
from analytics_pipelines.notify import Attachment, SmtpSettings
from analytics_pipelines.ops.db import as_utc
from analytics_pipelines.ops.exports import report_deliveries, report_subscriptions
from analytics_pipelines.paths import data_dir
from analytics_pipelines.reports.builders import daily_venue_report, executive_report, venue_name
from analytics_pipelines.reports.export_types import EXPORT_SPECS, build_export, needs_pseudonym_key
from analytics_pipelines.reports.filters import parse_filters
from analytics_pipelines.reports.pseudonyms import pseudonym_key
from analytics_pipelines.reports.writers import render
from analytics_pipelines.warehouse import Warehouse

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
RETRY_BASE_S = 300  # 5 min, 10, 20, 40
DEFAULT_ATTACHMENT_LIMIT = 5 * 1024 * 1024
MIME = {
    ".pdf": "application/pdf",
    ".csv": "text/csv",
    ".zip": "application/zip",
    ".json": "application/json",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def attachment_limit() -> int:
    from analytics_pipelines.settings import Settings

    raw = Settings.from_env().attachment_limit_bytes
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"TT_EMAIL_ATTACHMENT_LIMIT_BYTES must be a number of bytes, got {raw!r}") from None


@dataclass(frozen=True)
class Period:
    label: str  # ledger key: 2026-11-21 | 2026-W47 | 2026-11
    first: date
    last: date
    due_at: datetime


def latest_due_period(cadence: str, local_time: str, timezone: str, now: datetime) -> Period:
    """The most recent period whose delivery time has passed, for a subscription of the first version
    (weekly on Mondays, monthly on the 1st): `schedules.latest_due` and `schedules.period_label`."""
    s = Schedule(cadence, local_time, timezone)
    d, at = latest_due(s, now)
    label = period_label(cadence, d)
    first, last = period_bounds("", label)
    return Period(label, first, last, at)


@dataclass(frozen=True)
class DueDelivery:
    subscription_id: int
    period: str
    attempt: int  # failed attempts so far

    @property
    def run_key(self) -> str:
        return f"{self.subscription_id}:{self.period}:{self.attempt}"


def due_deliveries(engine: sa.Engine, now: datetime | None = None) -> list[DueDelivery]:
    """Enabled subscriptions whose latest period is due and not yet sent (nor being sent, nor given up)."""
    now = now or utcnow()
    s, d = report_subscriptions, report_deliveries
    with engine.connect() as conn:
        rows = conn.execute(sa.select(s).where(s.c.enabled.is_(True)).order_by(s.c.id)).mappings().all()
        periods, subs = {}, []
        for sub in rows:  # the latest occurrence at or before now, within active_from and end_date
            due = latest_due(Schedule.of(sub), now)
            if due is not None:
                periods[sub["id"]] = period_label(sub["cadence"], due[0])
                subs.append(sub)
        ledger = {}
        if subs:  # only the rows of the periods due now (the ledger grows by one row per delivery)
            ledger = {
                (r.subscription_id, r.period): r
                for r in conn.execute(
                    sa.select(d).where(
                        d.c.subscription_id.in_(list(periods)), d.c.period.in_(sorted(set(periods.values())))
                    )
                ).all()
            }
    out = []
    for sub in subs:
        label = periods[sub["id"]]
        row = ledger.get((sub["id"], label))
        if row is None:
            out.append(DueDelivery(sub["id"], label, 0))
        elif (
            row.status == "failed"
            and row.attempts < MAX_ATTEMPTS
            and (row.next_attempt_at is None or as_utc(row.next_attempt_at) <= now)
        ):
            out.append(DueDelivery(sub["id"], label, row.attempts))
    return out


def _claim(
    engine: sa.Engine,
    subscription_id: int,
    period: str,
    now: datetime,
    lease: timedelta = outbox.DEFAULT_LEASE,
) -> bool:
    """While `sending`, next_attempt_at holds the end of the claim's lease (the sweeper's cue)."""
    d = report_deliveries
    try:
        with engine.begin() as conn:
            conn.execute(
                d.insert().values(
                    subscription_id=subscription_id,
                    period=period,
                    status="sending",
                    attempts=0,
                    created_at=now,
                    next_attempt_at=now + lease,
                )
            )
        return True
    except sa.exc.IntegrityError:
        pass
    with engine.begin() as conn:
        return (
            conn.execute(
                d.update()
                .where(
                    d.c.subscription_id == subscription_id,
                    d.c.period == period,
                    d.c.status == "failed",
                    d.c.attempts < MAX_ATTEMPTS,
                    sa.or_(d.c.next_attempt_at.is_(None), d.c.next_attempt_at <= now),
                )
                .values(status="sending", next_attempt_at=now + lease)
            ).rowcount
            == 1
        )


def render_subscription(
    wh: Warehouse, sub, period_label: str, out_dir: Path | None = None, now: datetime | None = None
) -> Path:
    first, last = period_bounds(sub["report"], period_label, sub["filters"])
    if sub["report"] == "daily_venue":
        report = daily_venue_report(wh, sub["venue_id"], first, sub["tenant_id"], now=now)
    elif sub["report"] == "weekly_executive":
        previous = None
        if sub["cadence"] == "monthly":  # the previous calendar month, not the 30 days before
            prev_last = first - timedelta(days=1)
            previous = (prev_last.replace(day=1), prev_last)
        report = executive_report(
            wh, sub["venue_id"], first, last, sub["tenant_id"], now=now, previous=previous
        )
    else:  # an export type over the period, with the subscription's filters and options
        raw = {**(sub["filters"] or {}), "date_from": first.isoformat(), "date_to": last.isoformat()}
        filters = parse_filters(sub["tenant_id"], raw)
        options = sub["options"] or {}
        key = pseudonym_key() if needs_pseudonym_key(sub["report"], options) else None
        report = build_export(wh, sub["report"], filters, options, key, now=now)
    target = (
        (out_dir or data_dir() / "reports" / "deliveries")
        / str(sub["id"])
        / f"{sub['report']}_{period_label}"
    )
    return render(report, sub["format"], target)


def _title(wh: Warehouse, sub, period: str) -> str:
    kind = REPORT_TITLES[sub["report"]][0] if sub["report"] in REPORTS else EXPORT_SPECS[sub["report"]].title
    where = venue_name(wh, sub["venue_id"]) if sub["venue_id"] else "all venues"
    return f"{kind} {period} – {where}"


@dataclass(frozen=True)
class DeliveryOutcome:
    status: str  # sent | failed | skipped
    attempts: int = 0
    error: str | None = None
    file_path: str | None = None
    attached: bool = False


def deliver(
    engine: sa.Engine,
    wh: Warehouse,
    subscription_id: int,
    period: str,
    smtp: SmtpSettings,
    now: datetime | None = None,
    out_dir: Path | None = None,
    limit_bytes: int | None = None,
    link_base: str | None = None,
    smtp_retries: int = 1,
    lease: timedelta = outbox.DEFAULT_LEASE,
) -> DeliveryOutcome:
    """Claim (subscription, period) and, only if this call won the claim, render the report, store the
    e-mail in the delivery ledger and send it (`smtp_retries` quick retries inside this attempt; later
    attempts come from the ledger's backoff)."""
    now = now or utcnow()
    s, d = report_subscriptions, report_deliveries
    with engine.connect() as conn:
        sub = conn.execute(sa.select(s).where(s.c.id == subscription_id)).mappings().first()
    if sub is None:
        raise KeyError(f"no subscription {subscription_id}")
    if not sub["enabled"]:
        return DeliveryOutcome("skipped", error="subscription disabled")
    if not _claim(engine, subscription_id, period, now, lease):
        return DeliveryOutcome("skipped")
    where = sa.and_(d.c.subscription_id == subscription_id, d.c.period == period, d.c.status == "sending")
    path: Path | None = None
    try:
        path = render_subscription(wh, sub, period, out_dir, now)
        size = path.stat().st_size
        limit = attachment_limit() if limit_bytes is None else limit_bytes
        title = _title(wh, sub, period)
        attach = size <= limit
        location = f"{link_base.rstrip('/')}/{path.name}" if link_base else str(path)
        body = (
            f"{title} is attached ({path.name}, {size:,} bytes)."
            if attach
            else f"{title} is {size:,} bytes, above the {limit:,}-byte attachment limit, so it is not attached. "
            f"It is available at:\n{location}"
        )
        files = (
            [Attachment(path.name, path.read_bytes(), MIME.get(path.suffix, "application/octet-stream"))]
            if attach
            else []
        )
        with engine.begin() as conn:  # a retry finds the stored message and sends that one again
            key = outbox.enqueue_email(
                conn,
                source="report",
                source_ref=f"{subscription_id}:{period}",
                settings=smtp,
                to=sub["recipients"],
                subject=f"TicketToken: {title}",
                body=body,
                attachments=files,
                created=as_utc(sub["created_at"]),
                now=now,
            )
            conn.execute(d.update().where(where).values(file_path=str(path)))
    except Exception as exc:  # noqa: BLE001 - recorded in the ledger and retried by a later tick
        with engine.begin() as conn:
            attempts = conn.execute(sa.select(d.c.attempts).where(where)).scalar_one() + 1
            conn.execute(
                d.update()
                .where(where)
                .values(
                    status="failed",
                    attempts=attempts,
                    last_error=f"{type(exc).__name__}: {exc}"[:4000],
                    next_attempt_at=now + backoff(attempts, RETRY_BASE_S),
                    file_path=str(path) if path else None,
                )
            )
        log.warning("delivery %s/%s failed (attempt %d): %s", subscription_id, period, attempts, exc)
        return DeliveryOutcome(
            "failed", attempts, f"{type(exc).__name__}: {exc}", str(path) if path else None
        )
    transport = outbox.Transport(smtp=smtp, email_retries=smtp_retries, backoff_s=1.0)
    done = outbox.dispatch(engine, key, transport, now, lease, retry_failed=True)
    with engine.connect() as conn:  # dispatch recorded the outcome in report_deliveries too
        row = (
            conn.execute(sa.select(d).where(d.c.subscription_id == subscription_id, d.c.period == period))
            .mappings()
            .one()
        )
    if done is None:  # the ledger row is a sweeper's right now (or was sent): it settles report_deliveries
        return DeliveryOutcome("skipped", row["attempts"], None, str(path))
    if not done.result.ok:
        log.warning(
            "delivery %s/%s failed (attempt %d): %s",
            subscription_id,
            period,
            row["attempts"],
            done.result.error,
        )
        return DeliveryOutcome("failed", row["attempts"], done.result.error or "email not sent", str(path))
    return DeliveryOutcome("sent", row["attempts"], None, str(path), attach)


def stuck_sending(
    engine: sa.Engine, older_than: timedelta = timedelta(hours=1), now: datetime | None = None
) -> list[tuple[int, str]]:
    """(subscription, period) claimed for sending longer ago than `older_than`: a sender died mid-way.
    `outbox.sweep_deliveries` resolves them (sends the stored message again, or hands the claim back)."""
    now = now or utcnow()
    d = report_deliveries
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(d.c.subscription_id, d.c.period, d.c.created_at).where(d.c.status == "sending")
        ).all()
    return [(r.subscription_id, r.period) for r in rows if as_utc(r.created_at) < now - older_than]
