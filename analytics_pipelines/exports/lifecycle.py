"""Export requests over `analytics_exports` (analytics_pipelines/ops/exports.py).

pending --claim--> processing --complete--> completed --expire--> expired
   ^  \\--cancel--> cancelled        \\--fail--> pending (attempts < max_attempts, after a backoff) | failed

Every transition is one conditional UPDATE (`... WHERE id = ? AND status = <from>`): of two runners, exactly
one sees rowcount 1 and does the work; an illegal transition changes nothing and raises IllegalTransition.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from analytics_pipelines.ops.db import as_utc
from analytics_pipelines.ops.exports import EXPORT_FORMATS, EXPORT_TYPES, analytics_exports
from analytics_pipelines.paths import data_dir
from analytics_pipelines.reports.export_types import build_export, check_export, needs_pseudonym_key
from analytics_pipelines.reports.filters import (
    ExportRequestError,
    Filters,
    MissingMartError,
    parse_filters,
    segment_members,
)
from analytics_pipelines.reports.pseudonyms import PseudonymKeyError, pseudonym_key
from analytics_pipelines.reports.writers import render
from analytics_pipelines.warehouse import Warehouse

log = logging.getLogger(__name__)

DEFAULT_TTL_DAYS = 7
RETRY_BASE_S = 60  # 1 min, 2 min, 4 min, ...
RETRY_MAX_S = 6 * 3600
STALE_AFTER = timedelta(hours=2)


class IllegalTransition(RuntimeError):
    """The request is not in a state that allows this transition."""

    status_code = 409


class Cancelled(IllegalTransition):
    """The request was cancelled while it was being produced: the work is discarded."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def ttl_days() -> int:
    from analytics_pipelines.settings import Settings

    raw = Settings.from_env().export_ttl_days
    try:
        days = int(raw)
    except ValueError:
        raise ValueError(f"TT_EXPORT_TTL_DAYS must be a whole number of days, got {raw!r}") from None
    if days < 1:
        raise ValueError("TT_EXPORT_TTL_DAYS must be at least 1")
    return days


def exports_dir() -> Path:
    return data_dir() / "exports"


def backoff(attempt: int, base_s: float = RETRY_BASE_S) -> timedelta:
    """Delay before retry number `attempt` (1-based): base, 2*base, 4*base, ... capped at RETRY_MAX_S."""
    return timedelta(seconds=min(base_s * 2 ** max(attempt - 1, 0), RETRY_MAX_S))


def get(engine: sa.Engine, request_id: str) -> dict:
    with engine.connect() as conn:
        row = (
            conn.execute(sa.select(analytics_exports).where(analytics_exports.c.id == request_id))
            .mappings()
            .first()
        )
    if row is None:
        raise KeyError(f"no export request {request_id!r}")
    out = dict(row)
    for k in ("created_at", "updated_at", "started_at", "completed_at", "expires_at", "next_attempt_at"):
        out[k] = as_utc(out[k])
    return out


def validate_export(
    tenant_id: str,
    export_type: str,
    fmt: str,
    filters: dict | None = None,
    options: dict | None = None,
    venue_id: str | None = None,
    warehouse: Warehouse | None = None,
) -> tuple[Filters, dict]:
    """The parsed filters and options of an export (a request or an export-type schedule), or
    ExportRequestError saying what is wrong. With `warehouse`, filters that need marts not built yet
    (segments) are refused now, not at run time."""
    if export_type not in EXPORT_TYPES:
        raise ExportRequestError(
            f"unknown export type {export_type!r}; expected one of {', '.join(EXPORT_TYPES)}"
        )
    if fmt not in EXPORT_FORMATS:
        raise ExportRequestError(f"unknown format {fmt!r}; expected one of {', '.join(EXPORT_FORMATS)}")
    options = dict(options or {})
    if not isinstance(filters, dict | None):
        raise ExportRequestError("filters must be an object")
    parsed = parse_filters(tenant_id, filters)
    if venue_id:
        venue_id = venue_id.lower()
        if parsed.venue_ids and parsed.venue_ids != (venue_id,):
            raise ExportRequestError("venue_ids filter conflicts with the request's venue")
        parsed = parse_filters(tenant_id, {**parsed.to_json(), "venue_ids": [venue_id]})
    check_export(export_type, parsed, options)  # the filters and options the type declares
    if warehouse is not None:
        segment_members(warehouse, parsed)  # raises when the customer marts do not exist yet
    return parsed, options


def create_request(
    engine: sa.Engine,
    tenant_id: str,
    export_type: str,
    fmt: str,
    filters: dict | None = None,
    options: dict | None = None,
    venue_id: str | None = None,
    user_id: str | None = None,
    max_attempts: int = 3,
    warehouse: Warehouse | None = None,
    now: datetime | None = None,
    conn: sa.Connection | None = None,
) -> str:
    """Validate (`validate_export`) and store a pending request; its id. ExportRequestError (a ValueError)
    says what is wrong. `conn`: insert in the caller's transaction (the API's, with its audit row)."""
    if not 1 <= int(max_attempts) <= 10:
        raise ExportRequestError("max_attempts must be between 1 and 10")
    parsed, options = validate_export(tenant_id, export_type, fmt, filters, options, venue_id, warehouse)
    request_id = str(uuid.uuid4())
    now = now or utcnow()
    insert = analytics_exports.insert().values(
        id=request_id,
        tenant_id=parsed.tenant_id,
        venue_id=venue_id.lower() if venue_id else None,
        user_id=user_id,
        export_type=export_type,
        format=fmt,
        status="pending",
        progress=0,
        filters=parsed.to_json(),
        options=options,
        attempts=0,
        max_attempts=int(max_attempts),
        created_at=now,
        updated_at=now,
    )
    if conn is not None:
        conn.execute(insert)
    else:
        with engine.begin() as c:
            c.execute(insert)
    return request_id


def _transition(
    engine: sa.Engine,
    request_id: str,
    allowed: tuple[str, ...],
    values: dict,
    extra: sa.ColumnElement | None = None,
    conn: sa.Connection | None = None,
) -> bool:
    """One conditional UPDATE; on `conn` (the caller's transaction) when given."""
    t = analytics_exports
    cond = sa.and_(t.c.id == request_id, t.c.status.in_(allowed), *([extra] if extra is not None else []))
    if conn is not None:
        return conn.execute(t.update().where(cond).values(**values)).rowcount == 1
    with engine.begin() as c:
        return c.execute(t.update().where(cond).values(**values)).rowcount == 1


def _illegal(engine: sa.Engine, request_id: str, action: str) -> IllegalTransition:
    status = get(engine, request_id)["status"]
    kind = Cancelled if status == "cancelled" else IllegalTransition
    return kind(f"cannot {action} export {request_id}: it is {status}")


def claim(engine: sa.Engine, request_id: str, run_id: str | None = None, now: datetime | None = None) -> bool:
    """pending -> processing, only when due; True for exactly one of any number of concurrent callers."""
    now = now or utcnow()
    t = analytics_exports
    return _transition(
        engine,
        request_id,
        ("pending",),
        dict(
            status="processing", progress=0, run_id=run_id, started_at=now, updated_at=now, error_message=None
        ),
        sa.or_(t.c.next_attempt_at.is_(None), t.c.next_attempt_at <= now),
    )


def set_progress(engine: sa.Engine, request_id: str, progress: int, now: datetime | None = None) -> None:
    if not 0 <= progress <= 100:
        raise ValueError("progress is a percentage, 0..100")
    if not _transition(
        engine, request_id, ("processing",), dict(progress=progress, updated_at=now or utcnow())
    ):
        raise _illegal(engine, request_id, "report progress on")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def complete(engine: sa.Engine, request_id: str, path: Path, now: datetime | None = None) -> dict:
    """processing -> completed with the file's path, size and SHA-256; expires after TT_EXPORT_TTL_DAYS.
    One conditional UPDATE ... WHERE status = 'processing': when the request was cancelled meanwhile, the
    file is deleted (the render is discarded, never served) and Cancelled is raised."""
    now = now or utcnow()
    path = Path(path)
    if get(engine, request_id)["status"] != "processing":
        exc = _illegal(engine, request_id, "complete")
        if isinstance(exc, Cancelled):
            path.unlink(missing_ok=True)
        raise exc
    values = dict(
        status="completed",
        progress=100,
        file_path=str(path),
        file_size=path.stat().st_size,
        checksum_sha256=sha256_file(path),
        completed_at=now,
        updated_at=now,
        expires_at=now + timedelta(days=ttl_days()),
        next_attempt_at=None,
        error_message=None,
    )
    if not _transition(engine, request_id, ("processing",), values):
        exc = _illegal(engine, request_id, "complete")
        if isinstance(exc, Cancelled):
            path.unlink(missing_ok=True)
        raise exc
    return get(engine, request_id)


def fail(
    engine: sa.Engine,
    request_id: str,
    error: str,
    retryable: bool = True,
    now: datetime | None = None,
    base_delay_s: float = RETRY_BASE_S,
) -> str:
    """processing -> pending (retry after a backoff) or failed (not retryable, or max_attempts reached).
    attempts counts failed attempts. Returns the new status."""
    now = now or utcnow()
    row = get(engine, request_id)
    if row["status"] == "cancelled":  # cancelled while it ran: nothing left to fail
        return "cancelled"
    if row["status"] != "processing":
        raise IllegalTransition(f"cannot fail export {request_id}: it is {row['status']}")
    attempts = row["attempts"] + 1
    retry = retryable and attempts < row["max_attempts"]
    values = dict(
        attempts=attempts,
        error_message=str(error)[:4000],
        updated_at=now,
        status="pending" if retry else "failed",
        run_id=None,
        next_attempt_at=now + backoff(attempts, base_delay_s) if retry else None,
    )
    t = analytics_exports
    if not _transition(engine, request_id, ("processing",), values, t.c.attempts == row["attempts"]):
        exc = _illegal(engine, request_id, "fail")
        if isinstance(exc, Cancelled):
            return "cancelled"
        raise exc
    log.warning("export %s attempt %d failed (%s): %s", request_id, attempts, values["status"], error)
    return values["status"]


def cancel(
    engine: sa.Engine, request_id: str, now: datetime | None = None, conn: sa.Connection | None = None
) -> None:
    """pending or processing -> cancelled. A run producing it finds out at its next step (set_progress or
    complete raise Cancelled) and discards its file; a finished or failed export cannot be cancelled."""
    if not _transition(
        engine,
        request_id,
        ("pending", "processing"),
        dict(status="cancelled", updated_at=now or utcnow()),
        conn=conn,
    ):
        raise _illegal(engine, request_id, "cancel")


def retry(
    engine: sa.Engine, request_id: str, now: datetime | None = None, conn: sa.Connection | None = None
) -> None:
    """failed or expired -> pending, the same request again (same id and download URL) with its attempt count
    kept: the next run is attempt `attempts + 1`, and `max_attempts` is raised so that at least one more
    attempt is allowed. `retries` counts these manual retries and keeps the sensor's run key new."""
    now = now or utcnow()
    row = get(engine, request_id)
    t = analytics_exports
    values = dict(
        status="pending",
        progress=0,
        retries=(row["retries"] or 0) + 1,
        max_attempts=max(row["max_attempts"], row["attempts"] + 1),
        next_attempt_at=None,
        run_id=None,
        file_path=None,
        file_size=None,
        checksum_sha256=None,
        started_at=None,
        completed_at=None,
        expires_at=None,
        updated_at=now,
    )
    same = t.c.retries.is_(None) if row["retries"] is None else t.c.retries == row["retries"]
    if not _transition(engine, request_id, ("failed", "expired"), values, same, conn=conn):
        raise _illegal(engine, request_id, "retry")
    if row["file_path"]:  # an expired export's file is gone already; make sure
        Path(row["file_path"]).unlink(missing_ok=True)


def expire_due(engine: sa.Engine, now: datetime | None = None) -> list[str]:
    """completed exports past expires_at: mark expired, then delete the file. Returns their ids."""
    now = now or utcnow()
    t = analytics_exports
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.c.id, t.c.file_path).where(t.c.status == "completed", t.c.expires_at <= now)
        ).all()
    done = []
    for rid, path in rows:
        if _transition(engine, rid, ("completed",), dict(status="expired", updated_at=now)):
            if path:
                Path(path).unlink(missing_ok=True)
            done.append(rid)
    return done


def recover_stale(
    engine: sa.Engine, now: datetime | None = None, older_than: timedelta = STALE_AFTER
) -> list[str]:
    """processing rows untouched for `older_than` (their run died): failed attempts, retried by backoff."""
    now = now or utcnow()
    t = analytics_exports
    with engine.connect() as conn:
        ids = (
            conn.execute(
                sa.select(t.c.id).where(t.c.status == "processing", t.c.updated_at < now - older_than)
            )
            .scalars()
            .all()
        )
    out = []
    for rid in ids:
        try:
            fail(engine, rid, f"interrupted: no progress since {older_than} (run died?)", now=now)
            out.append(rid)
        except IllegalTransition:
            pass  # finished meanwhile
    return out


@dataclass(frozen=True)
class DueRequest:
    id: str
    attempts: int
    retries: int = 0

    @property
    def run_key(self) -> str:
        return f"{self.id}:{self.attempts}" + (f":r{self.retries}" if self.retries else "")


def due_requests(engine: sa.Engine, now: datetime | None = None, limit: int = 50) -> list[DueRequest]:
    """Pending requests whose next attempt is due, oldest first."""
    now = now or utcnow()
    t = analytics_exports
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.c.id, t.c.attempts, t.c.retries)
            .where(t.c.status == "pending", sa.or_(t.c.next_attempt_at.is_(None), t.c.next_attempt_at <= now))
            .order_by(t.c.created_at, t.c.id)
            .limit(limit)
        ).all()
    return [DueRequest(r.id, r.attempts, r.retries or 0) for r in rows]


def run_export(
    engine: sa.Engine,
    wh: Warehouse,
    request_id: str,
    run_id: str | None = None,
    now: datetime | None = None,
    out_dir: Path | None = None,
) -> dict | None:
    """Claim and produce one export; the request's final row, or None when it was not claimable (another
    runner has it, or it is not pending and due). Request errors (a bad filter, no pseudonym key) fail at
    once; a mart not built yet and unexpected errors are retried with backoff up to max_attempts."""
    if not claim(engine, request_id, run_id, now):
        return None
    row = get(engine, request_id)
    path: Path | None = None
    try:
        filters = parse_filters(row["tenant_id"], row["filters"])
        key = pseudonym_key() if needs_pseudonym_key(row["export_type"], row["options"]) else None
        set_progress(engine, request_id, 10)
        report = build_export(wh, row["export_type"], filters, row["options"], key, now=now)
        set_progress(engine, request_id, 60)
        target = (out_dir or exports_dir()) / row["tenant_id"] / f"{row['export_type']}_{request_id}"
        path = render(report, row["format"], target)
        set_progress(engine, request_id, 90)
        return complete(engine, request_id, path, now=now)
    except Cancelled:  # cancelled while it ran: the file (if any) is discarded, never served
        if path is not None:
            path.unlink(missing_ok=True)
        log.info("export %s was cancelled while it ran; its result is discarded", request_id)
    except (ExportRequestError, PseudonymKeyError) as exc:
        fail(
            engine,
            request_id,
            f"{type(exc).__name__}: {exc}",
            retryable=isinstance(exc, MissingMartError),
            now=now,
        )
    except Exception as exc:  # noqa: BLE001 - recorded on the request and retried
        log.exception("export %s failed", request_id)
        fail(engine, request_id, f"{type(exc).__name__}: {exc}", now=now)
    return get(engine, request_id)
