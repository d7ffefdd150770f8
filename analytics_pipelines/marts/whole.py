"""Build the whole-table marts (sales_metrics, event_performance, venue_seasonality, no_shows, price
history) and the hourly KPI snapshots: read the inputs each needs from the warehouse, run its SQL.

Whole-table marts take `through` (the last day of data) instead of a day range; the day-range builders and
the shared inputs (event_dim, fact_history) are in marts/build.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

import polars as pl

from analytics_pipelines.marts import sales
from analytics_pipelines.marts.build import _d, _stg, _venues, event_dim, fact_history
from analytics_pipelines.marts.sqlrun import run
from analytics_pipelines.warehouse import Warehouse


# -- whole-table marts ------------------------------------------------------------------------------
def _end_of(day: str) -> datetime:
    return datetime.combine(_d(day) + timedelta(days=1), time(), UTC)


HOURLY_DAYS = 14


def sales_metrics(
    wh: Warehouse,
    through: str,
    hourly_days: int = HOURLY_DAYS,
    since: str | None = None,
    previous: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Hour grain for the last `hourly_days` days up to `through`; day, week and month for all history.
    With `previous` and `since` (the first day whose fct_orders partitions changed since `previous` was
    built), only the periods from `since`'s on are recomputed (marts/sales.py) and fct_orders is read from
    the start of `since`'s month or week, or the hour grain's first day, whichever is earliest."""
    end = _end_of(through)
    hour_since = end - timedelta(days=hourly_days)
    columns = [
        "tenant_id",
        "venue_id",
        "recognized_at",
        "tickets",
        "gross_revenue_cents",
        "ticket_revenue_cents",
        "user_id",
    ]
    if previous is None or since is None:
        history = fact_history(wh, "fct_orders", columns, through)
        since_t = None
    else:
        s = _d(since)
        lo = min(s.replace(day=1), s - timedelta(days=s.weekday()), hour_since.date())
        history = wh.read_partitions("fct_orders", "day", lo.isoformat(), through, columns=columns)
        since_t = datetime.combine(s, time(), UTC)
    return sales.sales_metrics(
        history,
        hour_since=hour_since,
        through=end - timedelta(microseconds=1),
        previous=previous,
        since=since_t,
    )


def event_performance(wh: Warehouse) -> pl.DataFrame:
    return run(
        "event_performance",
        {
            "order_history": fact_history(wh, "fct_orders", ["event_id", "tickets", "gross_revenue_cents"]),
            "refund_history": fact_history(wh, "fct_refunds", ["event_id", "refund_cents"]),
            "event_dim": event_dim(wh),
        },
    )


def venue_seasonality(wh: Warehouse, through: str) -> pl.DataFrame:
    va = fact_history(
        wh, "venue_analytics", ["tenant_id", "venue_id", "day", "tickets_sold", "net_revenue_cents"], through
    )
    return run("venue_seasonality", {"va": va}, through=_d(through))


#: an ended event's no-show count is taken as final this many days after it ended (late scan uploads have
#: settled); an incremental run recomputes only the events that ended more recently, plus any ended event
#: the previous table lacks or holds with another end time
NO_SHOW_SETTLE_DAYS = 7


@dataclass
class NoShows:
    rows: pl.DataFrame  # the whole table
    recomputed: pl.DataFrame  # the rows this run computed
    events: list[str] | None  # the events it recomputed (None: every event)
    # stg_tickets and stg_ticket_scans as read, for the check: every row when every event was recomputed,
    # else the recomputed events' tickets and their scans
    tickets: pl.DataFrame
    scans: pl.DataFrame


def no_shows(
    wh: Warehouse, now: datetime, previous: pl.DataFrame | None = None, settle_days: int = NO_SHOW_SETTLE_DAYS
) -> NoShows:
    """Per ended event: sold tickets, scanned, no-shows (sql/marts/no_shows.sql). With `previous` (the
    table as it is), rows of events that ended more than `settle_days` ago are kept as they are and only
    the others are recomputed: the warehouse then returns only their tickets and those tickets' scans (two
    semi-joins on the key columns; at `large` ~200 events, 100k of the 10M tickets) and the SQL's join
    runs over them. A kept row whose event was cancelled or postponed since is dropped."""
    ed = event_dim(wh)
    if previous is None:
        tickets = _stg(wh, "tickets", columns=["id", "event_id", "status"])
        scans = _stg(wh, "ticket_scans", columns=["ticket_id", "result"])
        rows = run("no_shows", {"tickets": tickets, "scans": scans, "event_dim": ed}, now=now)
        return NoShows(rows, rows, None, tickets, scans)
    ended = ed.filter((pl.col("ends_at") < now) & ~pl.col("cancelled_or_postponed")).select(
        "event_id", "ends_at"
    )
    settled = ended.filter(pl.col("ends_at") < now - timedelta(days=settle_days))
    keep = previous.join(
        settled, left_on=["event_id", "ended_at"], right_on=["event_id", "ends_at"], how="semi"
    )
    redo = ended.join(keep.select("event_id"), on="event_id", how="anti")["event_id"]
    some_tickets = wh.read_values(
        "SELECT t.id, t.event_id, t.status FROM stg_tickets t WHERE CAST(t.event_id AS text) IN {events}",
        {"events": redo.cast(pl.String).to_list()},
    )
    some_scans = wh.read_values(
        "SELECT s.ticket_id, s.result FROM stg_ticket_scans s WHERE CAST(s.ticket_id AS text) IN {tickets}",
        {"tickets": some_tickets["id"].cast(pl.String).unique().to_list()},
    )
    fresh = run("no_shows", {"tickets": some_tickets, "scans": some_scans, "event_dim": ed}, now=now)
    rows = pl.concat([keep.select(fresh.columns), fresh], how="vertical_relaxed").sort(
        "venue_id", "ended_at", "event_id", nulls_last=True
    )
    return NoShows(rows, fresh, redo.to_list(), some_tickets, some_scans)


def event_tenants(wh: Warehouse) -> pl.DataFrame:
    """event_id -> tenant_id (stg_events), one row per event: also what gives snapshots written before
    ticket_type_price_snapshots had tenant_id theirs (join on event_id, rewrite the partitions)."""
    return _stg(wh, "events", columns=["id", "tenant_id"]).unique("id").rename({"id": "event_id"})


def ticket_type_price_snapshot(wh: Warehouse, snapshot_date: str) -> pl.DataFrame:
    """Today's ticket_types.price per type, as the snapshot of `snapshot_date`, with the tenant of the type's
    event (NULL only for a type whose event is not in staging). One row per ticket type."""
    tt = _stg(wh, "ticket_types", columns=["id", "event_id", "price_cents", "currency"])
    return tt.join(event_tenants(wh), on="event_id", how="left").select(
        pl.lit(_d(snapshot_date)).alias("day"),
        "tenant_id",
        pl.col("id").alias("ticket_type_id"),
        "event_id",
        "price_cents",
        "currency",
    )


def price_history(wh: Warehouse) -> pl.DataFrame:
    snaps = (
        wh.read_table("ticket_type_price_snapshots", columns=["day", "ticket_type_id", "price_cents"]).rename(
            {"day": "snapshot_date"}
        )
        if "ticket_type_price_snapshots" in wh.tables()
        else pl.DataFrame(
            schema={"snapshot_date": pl.Date, "ticket_type_id": pl.String, "price_cents": pl.Int64}
        )
    )
    return run(
        "price_history",
        {
            "price_changes": _stg(
                wh,
                "ticket_price_history",
                columns=["ticket_type_id", "old_price_cents", "new_price_cents", "changed_at"],
            ),
            "stg_ticket_types": _stg(
                wh,
                "ticket_types",
                columns=["id", "event_id", "name", "price_cents", "created_at", "currency"],
            ),
            "snapshots": snaps,
            "event_dim": event_dim(wh),
        },
    )


def event_price_summary(history: pl.DataFrame) -> pl.DataFrame:
    return run("event_price_summary", {"price_history": history})


# -- hourly KPI snapshots ---------------------------------------------------------------------------
def kpi_inputs(wh: Warehouse, first_hour: datetime, last_hour: datetime) -> dict[str, pl.DataFrame]:
    """Everything the KPI snapshots of the hours first_hour..last_hour need, read once."""
    lo = (first_hour - timedelta(days=2)).date().isoformat()
    hi = (last_hour + timedelta(hours=1)).date().isoformat()
    window = {t: wh.read_partitions(t, "day", lo, hi) for t in ("fct_orders", "fct_refunds", "fct_resales")}
    return {
        "stg_venues": _venues(wh),
        "stg_events": _stg(wh, "events", columns=["id", "tenant_id", "status", "created_at", "deleted_at"]),
        "stg_ticket_types": _stg(
            wh, "ticket_types", columns=["event_id", "is_active", "sale_start", "sale_end"]
        ),
        "orders_window": window["fct_orders"],
        "refunds_window": window["fct_refunds"],
        "resales_window": window["fct_resales"],
    }


def kpi_snapshots(wh: Warehouse, hour_starts: list[datetime]) -> pl.DataFrame:
    """KPIs as of the end of each hour in `hour_starts` (UTC), with `hour_key` = the Dagster partition key."""
    if not hour_starts:
        raise ValueError("no hours to snapshot")
    inputs = kpi_inputs(wh, min(hour_starts), max(hour_starts))
    frames = [
        run("kpi_snapshots", inputs, at=h + timedelta(hours=1)).with_columns(
            pl.lit(h.strftime("%Y-%m-%d-%H:%M")).alias("hour_key")
        )
        for h in hour_starts
    ]
    return pl.concat(frames, how="vertical_relaxed")
