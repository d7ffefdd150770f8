"""The holder's history and the seed rule's customer profile of the no-show features, point in time: per
(event, holder) pair, what happened strictly before the event's cutoff, as one sort of running totals
(features.py builds the pairs; split from it to keep each module readable)."""

from __future__ import annotations

import polars as pl

#: the holder's code in a (event, holder) pair key when the ticket has no holder
NO_HOLDER = 2**32 - 1


def utc(col: str, schema: pl.Schema) -> pl.Expr:
    dt = schema[col]
    if isinstance(dt, pl.Datetime) and dt.time_zone is None:
        return pl.col(col).dt.replace_time_zone("UTC").dt.cast_time_unit("us")
    return pl.col(col).dt.convert_time_zone("UTC").dt.cast_time_unit("us")


def before(queries: pl.DataFrame, marks: pl.DataFrame, by: list[str], sums: list[str]) -> pl.DataFrame:
    """Per row of `queries` (columns `by`, `at`, `pair`): over the rows of `marks` (columns `by`, `at`,
    `sums`) with the same `by` and an `at` strictly before the query's, each of `sums` summed, their number
    (`marks`) and the last `at` (`last_at`); 0, 0 and NULL when there is none.

    An as-of join of running totals done as one sort of both frames: by the `by` codes (unsigned integers,
    packed into one 64-bit key when they fit), then by time, a query before a mark of the same instant
    (strictly before); a segment's running totals are the cumulative sums less their value at its start.
    Only the keys, the sums and the query's pair are sorted (at `large` ~2M queries and 3.5-4M marks)."""
    kind = pl.col("_kind")
    parts = [
        queries.select(
            *by,
            "at",
            pl.lit(0, pl.UInt8).alias("_kind"),
            *(pl.lit(0, marks.schema[c]).alias(c) for c in sums),
            "pair",
        ),
        marks.select(
            *by, "at", pl.lit(1, pl.UInt8).alias("_kind"), *sums, pl.lit(None, pl.UInt64).alias("pair")
        ),
    ]
    bits = [max(1, int(max((p[c].max() or 0) for p in parts)).bit_length()) for c in by]
    at_us = pl.col("at").dt.epoch("us")
    if sum(bits) <= 64:
        key, shift = pl.lit(0, pl.UInt64), 0
        for c, b in zip(reversed(by), reversed(bits), strict=True):
            key, shift = key + pl.col(c).cast(pl.UInt64) * 2**shift, shift + b
        both = pl.concat(
            [
                p.select(key.alias("_key"), (at_us * 2 + kind).alias("_at"), "_kind", *sums, "pair")
                for p in parts
            ]
        ).sort("_key", "_at")
        first = pl.col("_key") != pl.col("_key").shift(1)
        at = (pl.col("_at") - kind) // 2
    else:
        both = pl.concat(parts).sort([*by, "at", "_kind"])
        first = pl.any_horizontal([pl.col(c) != pl.col(c).shift(1) for c in by])
        at = at_us
    both = both.with_columns(first.fill_null(True).alias("_first"), kind.cast(pl.Int64).alias("marks"))
    start = pl.col("_first")

    def running(c: str) -> pl.Expr:  # the total of c over the segment's rows up to this one
        total = pl.col(c).cum_sum()
        return (total - pl.when(start).then(total - pl.col(c)).forward_fill()).alias(c)

    none = -(2**63)
    last = pl.when(kind == 1).then(at).when(start).then(none).otherwise(None).forward_fill()
    return (
        both.select("pair", "_kind", *(running(c) for c in [*sums, "marks"]), last.alias("last_at"))
        .filter(kind == 0)
        .select(
            "pair",
            *sums,
            "marks",
            pl.when(pl.col("last_at") != none)
            .then(pl.col("last_at"))
            .cast(pl.Datetime("us"))
            .dt.replace_time_zone(marks.schema["at"].time_zone)
            .alias("last_at"),
        )
    )


def prior(stats: pl.DataFrame, ev: pl.DataFrame, pairs: pl.DataFrame) -> pl.DataFrame:
    """Per (event, holder) pair of `pairs` (with a holder): the holder's tickets, no-shows and events of the
    events that ENDED before the event's cutoff (never this event, never a later one: point in time), from
    `stats` (every pair's tickets `n` and no-shows `k`, over every ticket)."""
    e = (stats["pair"] // 2**32).cast(pl.UInt32)
    marks = stats.select(
        ev["tenant_id"].gather(e).to_physical().alias("tenant"),
        (pl.col("pair") % 2**32).cast(pl.UInt32).alias("holder"),
        ev["ends_at"].gather(e).alias("at"),
        pl.col("n").alias("prior_tickets"),
        pl.col("k").alias("prior_no_shows"),
    ).filter((ev["phase"] == "ended").gather(e) & (pl.col("holder") != NO_HOLDER))
    got = before(pair_points(pairs, ev), marks, ["tenant", "holder"], ["prior_tickets", "prior_no_shows"])
    return got.select("pair", "prior_tickets", "prior_no_shows", pl.col("marks").alias("prior_events"))


def pair_points(pairs: pl.DataFrame, ev: pl.DataFrame, venue: bool = False) -> pl.DataFrame:
    """The pairs with a holder as as-of points: tenant (and venue) codes, holder code, at = the cutoff."""
    p = pairs.filter(pl.col("pair") % 2**32 != NO_HOLDER)
    e = (p["pair"] // 2**32).cast(pl.UInt32)
    return p.select(
        ev["tenant_id"].gather(e).to_physical().alias("tenant"),
        *([ev["venue_id"].gather(e).to_physical().alias("venue")] if venue else []),
        (pl.col("pair") % 2**32).cast(pl.UInt32).alias("holder"),
        ev["cutoff"].gather(e).alias("at"),
        "pair",
    )


def profile(orders: pl.DataFrame, ev: pl.DataFrame, pairs: pl.DataFrame) -> pl.DataFrame:
    """Per (event, holder) pair: the seed's customer profile at the event's venue as of its cutoff -- the
    recognized orders before it (`seed_orders`, NULL when none), their gross cents (`seed_spent_cents`) and
    the last one's time (`recognized_at`; the seed's first/last purchase swap is not copied)."""
    o = orders.filter(pl.col("user_id").is_not_null() & pl.col("recognized_at").is_not_null())
    marks = o.select(
        pl.col("tenant_id").cast(pl.Categorical).to_physical().alias("tenant"),
        pl.col("venue_id").cast(pl.Categorical).to_physical().alias("venue"),
        pl.col("user_id").cast(pl.Categorical).to_physical().alias("holder"),
        utc("recognized_at", o.schema).alias("at"),
        pl.col("gross_revenue_cents").fill_null(0).cast(pl.Int64).alias("seed_spent_cents"),
    )
    got = before(
        pair_points(pairs, ev, venue=True), marks, ["tenant", "venue", "holder"], ["seed_spent_cents"]
    )
    some = pl.col("marks") > 0
    return got.select(
        "pair",
        pl.when(some).then(pl.col("last_at")).alias("recognized_at"),
        pl.when(some).then(pl.col("marks")).alias("seed_orders"),
        pl.when(some).then(pl.col("seed_spent_cents")).alias("seed_spent_cents"),
    )
