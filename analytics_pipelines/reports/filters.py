"""Export filters (date range, venues, events, categories, customer segments), their validation, and the
warehouse reads that honor them. Every read is scoped to one tenant."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl

from analytics_pipelines.warehouse import Warehouse

MAX_RANGE_DAYS = 366
DEFAULT_RANGE_DAYS = 30
_UUIDISH = re.compile(r"^[0-9A-Za-z_-]{1,64}$")
_SEGMENT = re.compile(r"^[0-9A-Za-z _-]{1,64}$")

#: which column of a table a filter applies to
FILTER_COLUMNS = {"venue_ids": "venue_id", "event_ids": "event_id", "category_ids": "category_id"}
#: the date column of tables not partitioned by `day`
DATE_COLUMNS = {
    "event_performance": "starts_at",
    "sales_metrics": "period_start",
    "kpi_snapshots": "snapshot_hour",
    "price_history": "valid_from",
    "no_shows": "ended_at",
}
#: the customer mart that carries segments (built by the customer-analytics work)
CUSTOMER_MART = "customer_360"


class ExportRequestError(ValueError):
    """A request the caller must fix (unknown type, bad filter, a filter this export cannot honor).
    `status_code` is what an HTTP API answers with."""

    status_code = 422


class MissingMartError(ExportRequestError):
    """A mart the report reads has not been built yet."""

    status_code = 409


@dataclass(frozen=True)
class Filters:
    tenant_id: str
    date_from: date | None = None
    date_to: date | None = None
    venue_ids: tuple[str, ...] = ()
    event_ids: tuple[str, ...] = ()
    category_ids: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()

    def given(self) -> list[str]:
        """Names of the filters the request set (beyond the tenant)."""
        out = ["date_range"] if self.date_from or self.date_to else []
        return out + [k for k in ("venue_ids", "event_ids", "category_ids", "segments") if getattr(self, k)]

    def window(self, today: date) -> tuple[date, date]:
        """The date range, defaulting to the last DEFAULT_RANGE_DAYS days up to today."""
        last = self.date_to or today
        first = self.date_from or last - timedelta(days=DEFAULT_RANGE_DAYS - 1)
        return first, last

    def to_json(self) -> dict:
        out: dict = {}
        if self.date_from:
            out["date_from"] = self.date_from.isoformat()
        if self.date_to:
            out["date_to"] = self.date_to.isoformat()
        for k in ("venue_ids", "event_ids", "category_ids", "segments"):
            if getattr(self, k):
                out[k] = list(getattr(self, k))
        return out


def _date(value, name: str) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ExportRequestError(f"{name} must be an ISO date (YYYY-MM-DD), got {value!r}") from None


def _ids(value, name: str, pattern: re.Pattern = _UUIDISH) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise ExportRequestError(f"{name} must be a list of strings, got {type(value).__name__}")
    out = []
    for v in value:
        if not isinstance(v, str) or not pattern.match(v):
            raise ExportRequestError(f"{name} holds an invalid value: {v!r}")
        out.append(v.lower() if pattern is _UUIDISH else v)
    if len(out) > 1000:
        raise ExportRequestError(f"{name}: at most 1000 values")
    return tuple(dict.fromkeys(out))


def parse_filters(tenant_id: str, raw: dict | None) -> Filters:
    """Validated Filters from a request's JSON; ExportRequestError says what is wrong."""
    raw = dict(raw or {})
    if not tenant_id or not _UUIDISH.match(str(tenant_id)):
        raise ExportRequestError(f"tenant_id is required and must be an id, got {tenant_id!r}")
    known = {"date_from", "date_to", "venue_ids", "event_ids", "category_ids", "segments"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ExportRequestError(f"unknown filter(s) {unknown}; known: {sorted(known)}")
    f = Filters(
        tenant_id=str(tenant_id).lower(),
        date_from=_date(raw.get("date_from"), "date_from"),
        date_to=_date(raw.get("date_to"), "date_to"),
        venue_ids=_ids(raw.get("venue_ids"), "venue_ids"),
        event_ids=_ids(raw.get("event_ids"), "event_ids"),
        category_ids=_ids(raw.get("category_ids"), "category_ids"),
        segments=_ids(raw.get("segments"), "segments", _SEGMENT),
    )
    if f.date_from and f.date_to:
        if f.date_from > f.date_to:
            raise ExportRequestError(f"date_from {f.date_from} is after date_to {f.date_to}")
        if (f.date_to - f.date_from).days + 1 > MAX_RANGE_DAYS:
            raise ExportRequestError(f"the date range may span at most {MAX_RANGE_DAYS} days")
    return f


# --- reads ------------------------------------------------------------------------------------------------


def require_tables(wh: Warehouse, *tables: str) -> None:
    have = set(wh.tables())
    missing = [t for t in tables if t not in have]
    if missing:
        raise MissingMartError(
            f"not built yet in the warehouse: {', '.join(missing)} (materialize the marts first)"
        )


def table_columns(wh: Warehouse, table: str) -> list[str]:
    return wh.read_table(table, "FALSE").columns


def read_filtered(
    wh: Warehouse,
    table: str,
    f: Filters,
    window: tuple[date, date] | None,
    apply: Sequence[str] = ("venue_ids", "event_ids", "category_ids"),
    strict: bool = True,
    columns: Sequence[str] | None = None,
    user_ids: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Rows of `table` for the tenant, in `window` (by the table's date column) and matching the filters in
    `apply`. strict: a given filter the table has no column for is an ExportRequestError (never silently
    ignored). `user_ids` (from a segments filter) restricts the `user_id` column."""
    cols = table_columns(wh, table)
    clauses, params = [], []
    if "tenant_id" in cols:
        clauses.append("tenant_id = %s")
        params.append(f.tenant_id)
    if window is not None:
        dcol = DATE_COLUMNS.get(table, "day")
        if dcol not in cols:
            raise ExportRequestError(f"{table} has no date column; a date range cannot apply to it")
        clauses.append(f"{dcol} >= %s AND {dcol} < %s")
        params += [window[0], window[1] + timedelta(days=1)]
    for name in apply:
        values = getattr(f, name)
        if not values:
            continue
        col = FILTER_COLUMNS[name]
        if col not in cols:
            if strict:
                raise ExportRequestError(f"the {name} filter cannot apply to {table} (it has no {col})")
            continue
        clauses.append(f"{col} IN ({', '.join(['%s'] * len(values))})")
        params += list(values)
    if user_ids is not None:
        if "user_id" not in cols:
            raise ExportRequestError(f"the segments filter cannot apply to {table} (it has no customers)")
        if not user_ids:
            clauses.append("FALSE")
        else:
            clauses.append(f"user_id IN ({', '.join(['%s'] * len(user_ids))})")
            params += list(user_ids)
    return wh.read_table(table, " AND ".join(clauses) or "TRUE", params, columns)


def segment_members(wh: Warehouse, f: Filters) -> list[str] | None:
    """Customer ids in the requested segments (None when no segments filter). Without the customer marts a
    segments filter is a clear request error, not an empty export."""
    if not f.segments:
        return None
    if CUSTOMER_MART not in wh.tables():
        raise ExportRequestError(
            f"the segments filter needs the customer marts ({CUSTOMER_MART}), which are not built yet"
        )
    cols = table_columns(wh, CUSTOMER_MART)
    where, params = f"segment IN ({', '.join(['%s'] * len(f.segments))})", list(f.segments)
    if "tenant_id" in cols:
        where, params = f"tenant_id = %s AND {where}", [f.tenant_id, *params]
    return wh.read_table(CUSTOMER_MART, where, params, ["user_id"])["user_id"].cast(pl.Utf8).to_list()
