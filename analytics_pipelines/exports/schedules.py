"""When a report subscription (a "schedule", report_subscriptions) is delivered: pure functions of the
schedule and a clock, used by the delivery sensor (`delivery.due_deliveries`) and by the API (next run).

Frequencies, each at `local_time` (HH:MM) in the IANA `timezone`:
- once: on `run_date`;
- daily: every day;
- weekly: every `day_of_week` (0 = Monday; null = Monday, the first version's behaviour);
- monthly: every `day_of_month` (1-31; null = 1). A day past the month's end means the month's LAST day
  (31 -> 30 April, 28/29 February): "the 31st" is asked for as "the end of the month", and skipping the short
  months would silently drop five deliveries a year.
`end_date`: the last local date with a delivery (inclusive). `active_from`: occurrences before it are not
delivered (set when a schedule is created or resumed through the API, so neither sends a report that fell
due before it; rows without it keep the first version's catch-up of the latest period).

Local times are wall-clock times: across a DST change the UTC instant moves (07:00 Berlin is 06:00 UTC in
winter, 05:00 in summer). A time that does not exist on the day clocks go forward (02:30 on the last Sunday
of March in Berlin) is sent at the same offset from the gap's start (03:30 summer time); a time that exists
twice when they go back is sent at its first occurrence (summer time). That is zoneinfo's fold=0.

What a delivery covers (the ledger's period label, one delivery per label): daily the previous day; weekly
the last complete ISO week (Monday-Sunday) before the delivery day; monthly the last complete calendar month;
once `once-<run_date>`, covering the day before (daily_venue), the 7 days before (weekly_executive), or the
export filters' date range (default the 30 days before) for an export type."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from analytics_pipelines.reports.filters import ExportRequestError

FREQUENCIES = ("once", "daily", "weekly", "monthly")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
#: how far back/forward an occurrence can be (a monthly one: two months)
_SPAN = {"daily": 2, "weekly": 8, "monthly": 63}
#: dates outside these years are refused (far from any real schedule, and clear of datetime's limits)
MIN_YEAR, MAX_YEAR = 2000, 2999


class ScheduleError(ExportRequestError):
    """An impossible or inconsistent schedule (422), naming the field at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Schedule:
    frequency: str
    local_time: str = "07:00"
    timezone: str = "UTC"
    run_date: date | None = None
    day_of_week: int | None = None
    day_of_month: int | None = None
    end_date: date | None = None
    active_from: datetime | None = None

    @classmethod
    def of(cls, row) -> Schedule:
        """The schedule of a report_subscriptions row (mapping)."""
        af = row.get("active_from")
        if af is not None:
            af = af.replace(tzinfo=UTC) if af.tzinfo is None else af.astimezone(UTC)
        return cls(
            frequency=row["cadence"],
            local_time=row["local_time"],
            timezone=row["timezone"],
            run_date=row.get("run_date"),
            day_of_week=row.get("day_of_week"),
            day_of_month=row.get("day_of_month"),
            end_date=row.get("end_date"),
            active_from=af,
        )

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def zone(name: str) -> ZoneInfo:
    """The IANA zone, or ScheduleError (a name that does not exist, or is not a zone at all)."""
    try:
        if not name or name != name.strip():
            raise ValueError(name)
        return ZoneInfo(name)
    except Exception:  # noqa: BLE001 - ZoneInfoNotFoundError, ValueError, IsADirectoryError, ...
        raise ScheduleError(
            "timezone", f"unknown time zone {name!r} (an IANA name such as Europe/Berlin)"
        ) from None


def validate(s: Schedule, now: datetime) -> None:
    """ScheduleError (field, reason) when the schedule is impossible or inconsistent at `now`."""
    if s.frequency not in FREQUENCIES:
        raise ScheduleError("frequency", f"frequency must be one of {', '.join(FREQUENCIES)}")
    if not HHMM.match(s.local_time or ""):
        raise ScheduleError("local_time", f"local_time must be HH:MM, 00:00-23:59; got {s.local_time!r}")
    tz = zone(s.timezone)
    for field in ("run_date", "end_date"):
        d = getattr(s, field)
        if d is not None and not MIN_YEAR <= d.year <= MAX_YEAR:
            raise ScheduleError(field, f"{field} must be between {MIN_YEAR} and {MAX_YEAR}")
    for field, freq in (("run_date", "once"), ("day_of_week", "weekly"), ("day_of_month", "monthly")):
        if getattr(s, field) is not None and s.frequency != freq:
            raise ScheduleError(field, f"{field} applies only to {freq} schedules")
    if s.frequency == "once" and s.run_date is None:
        raise ScheduleError("run_date", "a once schedule needs run_date (its local date)")
    if s.day_of_week is not None and not 0 <= s.day_of_week <= 6:
        raise ScheduleError("day_of_week", "day_of_week is 0 (Monday) to 6 (Sunday)")
    if s.day_of_month is not None and not 1 <= s.day_of_month <= 31:
        raise ScheduleError("day_of_month", "day_of_month is 1 to 31 (past a month's end: its last day)")
    if s.frequency == "once":
        if s.end_date is not None:
            raise ScheduleError("end_date", "end_date applies to recurring schedules, not once")
        if occurrence(s, s.run_date) <= now:
            raise ScheduleError("run_date", f"{s.run_date} {s.local_time} {s.timezone} is in the past")
    if s.end_date is not None and s.end_date < now.astimezone(tz).date():
        raise ScheduleError("end_date", f"end_date {s.end_date} is in the past")


def occurs_on(s: Schedule, d: date) -> bool:
    """Whether the schedule has an occurrence on local date `d` (end_date not considered)."""
    if s.frequency == "once":
        return d == s.run_date
    if s.frequency == "daily":
        return True
    if s.frequency == "weekly":
        return d.weekday() == (s.day_of_week or 0)
    if s.frequency == "monthly":
        return d.day == min(s.day_of_month or 1, calendar.monthrange(d.year, d.month)[1])
    raise ValueError(f"unknown frequency {s.frequency!r}")


def occurrence(s: Schedule, d: date) -> datetime:
    """The UTC instant of the occurrence on local date `d` (fold=0 across DST: see the module doc)."""
    hh, mm = (int(x) for x in s.local_time.split(":"))
    return datetime.combine(d, time(hh, mm), s.tz).astimezone(UTC)


def _allowed(s: Schedule, d: date, at: datetime) -> bool:
    return (s.end_date is None or d <= s.end_date) and (s.active_from is None or at >= s.active_from)


def next_run(s: Schedule, now: datetime, enabled: bool = True) -> datetime | None:
    """The first occurrence after `now` that will be delivered (None: paused, ended, or a past once)."""
    if not enabled:
        return None
    start = max(now, s.active_from or now)
    if s.frequency == "once":
        at = occurrence(s, s.run_date)
        return at if at > now and _allowed(s, s.run_date, at) else None
    d = start.astimezone(s.tz).date() - timedelta(days=1)
    for _ in range(_SPAN[s.frequency] + 2):
        if s.end_date is not None and d > s.end_date:
            return None
        if occurs_on(s, d):
            at = occurrence(s, d)
            if at > now and _allowed(s, d, at):
                return at
        d += timedelta(days=1)
    return None


def latest_due(s: Schedule, now: datetime) -> tuple[date, datetime] | None:
    """The latest occurrence at or before `now` that may be delivered: (local date, UTC instant), or None."""
    if s.frequency == "once":
        at = occurrence(s, s.run_date)
        return (s.run_date, at) if at <= now and _allowed(s, s.run_date, at) else None
    d = now.astimezone(s.tz).date() + timedelta(days=1)
    if s.end_date is not None:
        d = min(d, s.end_date)
    for _ in range(_SPAN[s.frequency] + 2):
        if occurs_on(s, d):
            at = occurrence(s, d)
            if at <= now:
                return (d, at) if _allowed(s, d, at) else None
        d -= timedelta(days=1)
    return None


def period_label(frequency: str, d: date) -> str:
    """The ledger label of the period delivered on local date `d` (module doc)."""
    if frequency == "once":
        return f"once-{d.isoformat()}"
    if frequency == "daily":
        return (d - timedelta(days=1)).isoformat()
    if frequency == "weekly":
        iso = (d - timedelta(days=d.weekday() + 7)).isocalendar()
        return f"{iso.year}-W{iso.week:02d}"
    if frequency == "monthly":
        return (d.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    raise ValueError(f"unknown frequency {frequency!r}")


def period_bounds(report: str, label: str, filters: dict | None = None) -> tuple[date, date]:
    """First and last day a delivery with this ledger label covers."""
    if label.startswith("once-"):
        d = date.fromisoformat(label[5:])
        if report == "daily_venue":
            return d - timedelta(days=1), d - timedelta(days=1)
        if report == "weekly_executive":
            return d - timedelta(days=7), d - timedelta(days=1)
        f = filters or {}
        last = date.fromisoformat(f["date_to"]) if f.get("date_to") else d - timedelta(days=1)
        first = date.fromisoformat(f["date_from"]) if f.get("date_from") else last - timedelta(days=29)
        return first, last
    if "-W" in label:
        year, week = label.split("-W")
        first = date.fromisocalendar(int(year), int(week), 1)
        return first, first + timedelta(days=6)
    if len(label) == 7:
        first = date.fromisoformat(label + "-01")
        return first, (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    d = date.fromisoformat(label)
    return d, d
