"""`customer_ticket_events`: the tickets and scans of a customer's journey (api `/v1/customers/{id}/journey`).

There is no ticket or scan fact: orders carry ticket counts, and staging (not served) holds the tickets and
scans. This daily mart (partition `day`) holds, per day:
- `ticket`: every staging ticket with a purchaser created that day (issued), attributed to its purchaser
  (original_purchaser_id, else user_id), at created_at; amount = the ticket's price (price_cents), status
  as detail;
- `scan`: every scan that day of a ticket with a holder, attributed to the holder (tickets.user_id, else
  original_purchaser_id: the no_shows / customer_attendance rule), at scanned_at; no amount, the scan
  result (valid, invalid, duplicate, expired, already_used) as detail.
tenant_id is the ticket's; venue_id is its event's (stg_events; NULL for an unknown event).

A day's scans need their tickets, which may have been created long before: only the tickets of the events
scanned that day are read (the scans' event ids), never the whole ticket history."""

from __future__ import annotations

import polars as pl

from analytics_pipelines.marts.reconcile import CheckOutcome

COLUMNS = (
    "day",
    "tenant_id",
    "venue_id",
    "event_id",
    "user_id",
    "ticket_id",
    "event_type",
    "ref_id",
    "occurred_at",
    "amount_cents",
    "currency",
    "detail",
)
_TICKET_COLS = ["id", "tenant_id", "event_id", "user_id", "original_purchaser_id"]
_IN_CHUNK = 500  # event ids per IN list


def ticket_event_rows(
    tickets: pl.DataFrame, scans: pl.DataFrame, scanned_tickets: pl.DataFrame, events: pl.DataFrame
) -> pl.DataFrame:
    """The mart's rows from a range's `tickets` (created in it), its `scans` and the tickets those scans are
    of (`scanned_tickets`), `events` (id, venue_id). Sorted by day, occurred_at, type and id."""
    venues = events.select(pl.col("id").alias("event_id"), "venue_id")
    issued = tickets.filter(pl.coalesce("original_purchaser_id", "user_id").is_not_null()).select(
        day=pl.col("created_at").dt.date(),
        tenant_id="tenant_id",
        event_id="event_id",
        user_id=pl.coalesce("original_purchaser_id", "user_id"),
        ticket_id="id",
        event_type=pl.lit("ticket"),
        ref_id="id",
        occurred_at="created_at",
        amount_cents=pl.col("price_cents").cast(pl.Int64),
        currency="currency",
        detail="status",
    )
    holders = scanned_tickets.select(
        ticket_id="id",
        tenant_id="tenant_id",
        ticket_event_id="event_id",
        holder=pl.coalesce("user_id", "original_purchaser_id"),
    ).unique("ticket_id")
    scanned = (
        scans.join(holders, on="ticket_id", how="inner")
        .filter(pl.col("holder").is_not_null())
        .select(
            day=pl.col("scanned_at").dt.date(),
            tenant_id="tenant_id",
            event_id=pl.coalesce("event_id", "ticket_event_id"),
            user_id="holder",
            ticket_id="ticket_id",
            event_type=pl.lit("scan"),
            ref_id="id",
            occurred_at="scanned_at",
            amount_cents=pl.lit(None, pl.Int64),
            currency=pl.lit(None, pl.String),
            detail="result",
        )
    )
    out = pl.concat([issued, scanned], how="vertical_relaxed").join(venues, on="event_id", how="left")
    return out.select(COLUMNS).sort("day", "occurred_at", "event_type", "ref_id")


def _tickets_of_events(wh, event_ids: list[str]) -> pl.DataFrame:
    parts = []
    for i in range(0, len(event_ids), _IN_CHUNK):
        chunk = event_ids[i : i + _IN_CHUNK]
        where = f"event_id IN ({', '.join(['%s'] * len(chunk))})"
        parts.append(wh.read_table("stg_tickets", where, chunk, columns=_TICKET_COLS))
    if not parts:
        return wh.read_table("stg_tickets", "FALSE", columns=_TICKET_COLS)
    return pl.concat(parts)


def customer_ticket_events(wh, first: str, last: str) -> pl.DataFrame:
    cols = [*_TICKET_COLS, "price_cents", "currency", "status", "created_at"]
    tickets = wh.read_partitions("stg_tickets", "_partition", first, last, columns=cols)
    scans = wh.read_partitions(
        "stg_ticket_scans",
        "_partition",
        first,
        last,
        columns=["id", "ticket_id", "event_id", "scanned_at", "result"],
    )
    event_ids = sorted({e for e in scans["event_id"].to_list() if e is not None})
    scanned_tickets = _tickets_of_events(wh, event_ids)
    # a scan whose event id differs from its ticket's (or is NULL): find the ticket by id as well
    missing = scans.join(scanned_tickets.select(ticket_id="id"), on="ticket_id", how="anti")["ticket_id"]
    extra = [t for t in missing.unique().to_list() if t is not None]
    for i in range(0, len(extra), _IN_CHUNK):
        chunk = extra[i : i + _IN_CHUNK]
        where = f"id IN ({', '.join(['%s'] * len(chunk))})"
        scanned_tickets = pl.concat(
            [scanned_tickets, wh.read_table("stg_tickets", where, chunk, columns=_TICKET_COLS)]
        )
    events = wh.read_table("stg_events", columns=["id", "venue_id"])
    return ticket_event_rows(tickets, scans, scanned_tickets, events)


def check_ticket_events(ctx, built) -> CheckOutcome:
    """Per day, ticket and scan rows equal independent counts over staging (tickets with a purchaser created
    that day; scans that day of a ticket with a holder); one row per type and id."""
    df = built.frames["customer_ticket_events"]
    first, last = ctx.first, ctx.last
    expected = ctx.wh.read(
        """SELECT 'ticket' AS event_type, CAST(created_at AS DATE) AS day, count(*) AS n FROM stg_tickets
           WHERE _partition BETWEEN %s AND %s AND coalesce(original_purchaser_id, user_id) IS NOT NULL
           GROUP BY 1, 2
           UNION ALL
           SELECT 'scan', CAST(s.scanned_at AS DATE), count(*) FROM stg_ticket_scans s
           JOIN stg_tickets t ON t.id = s.ticket_id
           WHERE s._partition BETWEEN %s AND %s AND coalesce(t.user_id, t.original_purchaser_id) IS NOT NULL
           GROUP BY 1, 2""",
        [first, last, first, last],
    )
    got = df.group_by("event_type", "day").agg(got=pl.len().cast(pl.Int64))
    exp = expected.with_columns(pl.col("n").cast(pl.Int64), pl.col("day").cast(pl.Date))
    diff = exp.join(got, on=["event_type", "day"], how="full", coalesce=True).filter(
        pl.col("n").fill_null(0) != pl.col("got").fill_null(0)
    )
    dup = df.height - df.select("event_type", "ref_id").unique().height
    return CheckOutcome(
        diff.height == 0 and dup == 0,
        {"rows": df.height, "days_differing": diff.height, "duplicates": dup},
        differences=diff if diff.height else None,
    )
