"""Report subscriptions ("schedules"): validation, storage and the view the API shows (with the next run).

A subscription delivers either a venue report (`daily_venue`, `weekly_executive`: one venue, no filters) or
any export type (analytics_pipelines/reports/export_types.py: filters and options as an export request, the
date range being the delivered period; explicit date_from/date_to only on a `once` schedule). When it runs:
analytics_pipelines/exports/schedules.py. Pure validation (`check_subscription`); the writes take the
caller's connection so that the API's audit row shares their transaction."""

from __future__ import annotations

import re
from datetime import datetime

import sqlalchemy as sa

from analytics_pipelines.exports.lifecycle import utcnow, validate_export
from analytics_pipelines.exports.schedules import (
    FREQUENCIES,
    WEEKDAYS,
    Schedule,
    ScheduleError,
    next_run,
    validate,
)
from analytics_pipelines.notify import mask_email
from analytics_pipelines.ops.db import as_utc
from analytics_pipelines.ops.exports import EXPORT_FORMATS, EXPORT_TYPES, report_subscriptions
from analytics_pipelines.reports.filters import ExportRequestError

#: the venue reports and their frequencies (export types take every frequency)
REPORTS = {"daily_venue": ("daily", "once"), "weekly_executive": ("weekly", "monthly", "once")}
#: their titles and what they hold (GET /v1/reports/templates, the e-mail subject)
REPORT_TITLES = {
    "daily_venue": (
        "Daily venue report",
        "One venue's day: key figures, sales by local hour, by channel and category, top 10 events.",
    ),
    "weekly_executive": (
        "Executive report",
        "One venue's week (or month): totals vs the previous period, daily trend, top events, money flow.",
    ),
}
EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")
MAX_RECIPIENTS = 50


def frequencies(report: str) -> tuple[str, ...]:
    return REPORTS.get(report) or FREQUENCIES


def check_subscription(
    *,
    tenant_id: str,
    venue_id: str | None,
    report: str,
    fmt: str,
    recipients: list,
    schedule: Schedule,
    filters: dict | None = None,
    options: dict | None = None,
    now: datetime | None = None,
) -> dict:
    """The report_subscriptions column values of a valid subscription, or ScheduleError(field, reason)."""
    now = now or utcnow()
    if report not in REPORTS and report not in EXPORT_TYPES:
        raise ScheduleError(
            "report", f"unknown report {report!r}; expected one of {', '.join([*REPORTS, *EXPORT_TYPES])}"
        )
    if schedule.frequency not in frequencies(report):
        raise ScheduleError(
            "frequency", f"{report} is sent {' or '.join(frequencies(report))}, not {schedule.frequency!r}"
        )
    if fmt not in EXPORT_FORMATS:
        raise ScheduleError("format", f"unknown format {fmt!r}; expected one of {', '.join(EXPORT_FORMATS)}")
    if not tenant_id or (report in REPORTS and not venue_id):
        raise ScheduleError("venue_id", f"a {report} subscription needs a tenant and a venue")
    if not isinstance(recipients, list) or not 1 <= len(recipients) <= MAX_RECIPIENTS:
        raise ScheduleError(
            "recipients", f"recipients must be a list of 1 to {MAX_RECIPIENTS} email addresses"
        )
    bad = [r for r in recipients if not isinstance(r, str) or not EMAIL.match(r)]
    if bad:
        raise ScheduleError("recipients", f"not email addresses: {[mask_email(str(b)) for b in bad]}")
    validate(schedule, now)
    filters, options = dict(filters or {}), dict(options or {})
    if report in REPORTS:
        if filters or options:
            raise ScheduleError("filters", f"{report} takes no filters or options (it is one venue's report)")
        stored_filters = stored_options = None
    else:
        dated = sorted(k for k in ("date_from", "date_to") if filters.get(k))
        if dated and schedule.frequency != "once":
            raise ScheduleError(
                f"filters.{dated[0]}",
                "a recurring schedule covers its period; date filters apply to once only",
            )
        try:
            parsed, options = validate_export(tenant_id, report, fmt, filters, options, venue_id)
        except ExportRequestError as exc:
            raise ScheduleError("options" if "option" in str(exc) else "filters", str(exc)) from None
        stored_filters, stored_options = parsed.to_json(), options
    return dict(
        tenant_id=tenant_id.lower(),
        venue_id=venue_id.lower() if venue_id else None,
        report=report,
        format=fmt,
        recipients=list(recipients),
        cadence=schedule.frequency,
        local_time=schedule.local_time,
        timezone=schedule.timezone,
        run_date=schedule.run_date,
        day_of_week=schedule.day_of_week,
        day_of_month=schedule.day_of_month,
        end_date=schedule.end_date,
        filters=stored_filters,
        options=stored_options,
    )


def create_subscription(
    engine: sa.Engine,
    tenant_id: str,
    venue_id: str | None,
    report: str,
    recipients: list[str],
    cadence: str,
    fmt: str = "pdf",
    local_time: str = "07:00",
    timezone: str = "UTC",
    created_by: str | None = None,
    *,
    run_date=None,
    day_of_week: int | None = None,
    day_of_month: int | None = None,
    end_date=None,
    filters: dict | None = None,
    options: dict | None = None,
    active_from: datetime | None = None,
    now: datetime | None = None,
    conn: sa.Connection | None = None,
) -> int:
    """Validate and store a subscription; its id. ScheduleError (an ExportRequestError) says what is wrong.
    `active_from` (the API sets it to now): occurrences before it are not delivered."""
    now = now or utcnow()
    schedule = Schedule(cadence, local_time, timezone, run_date, day_of_week, day_of_month, end_date)
    values = check_subscription(
        tenant_id=tenant_id,
        venue_id=venue_id,
        report=report,
        fmt=fmt,
        recipients=recipients,
        schedule=schedule,
        filters=filters,
        options=options,
        now=now,
    )
    insert = report_subscriptions.insert().values(
        **values, created_by=created_by, created_at=now, updated_at=now, active_from=active_from
    )
    if conn is not None:
        return conn.execute(insert).inserted_primary_key[0]
    with engine.begin() as c:
        return c.execute(insert).inserted_primary_key[0]


def view(row, now: datetime | None = None) -> dict:
    """The subscription as the API shows it: its schedule, status (active | paused | finished) and the next
    run time (UTC; null when paused or when nothing is left to run)."""
    now = now or utcnow()
    r = dict(row._mapping) if hasattr(row, "_mapping") else dict(row)
    schedule = Schedule.of(r)
    nxt = next_run(schedule, now, bool(r["enabled"]))
    status = "paused" if not r["enabled"] else ("active" if nxt else "finished")

    def ts(v):
        v = as_utc(v)
        return v.isoformat().replace("+00:00", "Z") if v else None

    return {
        "id": r["id"],
        "venue_id": r["venue_id"],
        "report": r["report"],
        "format": r["format"],
        "recipients": list(r["recipients"] or []),
        "frequency": r["cadence"],
        "local_time": r["local_time"],
        "timezone": r["timezone"],
        "run_date": r["run_date"].isoformat() if r["run_date"] else None,
        "day_of_week": WEEKDAYS[r["day_of_week"]] if r["day_of_week"] is not None else None,
        "day_of_month": r["day_of_month"],
        "end_date": r["end_date"].isoformat() if r["end_date"] else None,
        "filters": r["filters"] or {},
        "options": r["options"] or {},
        "status": status,
        "next_run_at": ts(nxt),
        "created_by": r["created_by"],
        "created_at": ts(r["created_at"]),
        "updated_at": ts(r["updated_at"]),
    }
