"""Checks of the whole-table marts the control totals do not cover: venue_seasonality, price_history,
event_price_summary (reconciliations: each re-derives the table's numbers from staging or the facts by its
own route and compares them exactly) and revenue_projections (a model output: invariants).

Each `check_*` is pure (frames in, reconcile.CheckOutcome out); each `*_inputs(wh, ...)` reads what its check
needs from the warehouse. A check fails on any difference and on any violated invariant; its metadata says
how many rows broke each rule (`violations_<rule>`), and `differences` holds the first differing keys.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from analytics_pipelines.marts.reconcile import CheckOutcome, _combine, compare
from analytics_pipelines.warehouse import Warehouse

SEASONS = ("Peak", "Normal", "Off Season")


def _round_half_away(total: pl.Expr, n: pl.Expr) -> pl.Expr:
    """round(total / n) to an integer, halves away from zero (SQL round of a double), in integers: exact."""
    q = (2 * total.abs() + n) // (2 * n)
    return pl.when(total < 0).then(-q).otherwise(q)


# -- venue_seasonality -----------------------------------------------------------------------------------
def seasonality_window(through: str | date) -> tuple[date, date]:
    """The days the seasonality averages over: after `through` minus two years, up to `through`."""
    t = date.fromisoformat(through) if isinstance(through, str) else through
    try:
        start = t.replace(year=t.year - 2)
    except ValueError:  # 29 February
        start = t.replace(year=t.year - 2, day=28)
    return start + timedelta(days=1), t


def venue_seasonality_inputs(wh: Warehouse, through: str) -> dict[str, pl.DataFrame]:
    """fct_orders' tickets and gross revenue and fct_refunds' refunds of the window, summed per tenant, venue
    and day in the warehouse (the check sums them per month: the same totals, from 230k rows instead of the
    window's 4M orders at `large`), and the venue/day keys of venue_analytics (only which months each venue
    is averaged over: the mart's grid)."""
    lo, hi = (d.isoformat() for d in seasonality_window(through))

    def per_day(table: str, sums: dict[str, str]) -> pl.DataFrame:
        agg = ", ".join(f"CAST(sum({c}) AS BIGINT) AS {alias}" for alias, c in sums.items())
        return wh.read(
            f"SELECT tenant_id, venue_id, day, {agg} FROM {table} "
            "WHERE day BETWEEN CAST(%s AS DATE) AND CAST(%s AS DATE) GROUP BY tenant_id, venue_id, day",
            [lo, hi],
        )

    return {
        "orders": per_day("fct_orders", {"tickets": "tickets", "gross_revenue_cents": "gross_revenue_cents"}),
        "refunds": per_day("fct_refunds", {"refund_cents": "refund_cents"}),
        "grid": wh.read_partitions(
            "venue_analytics", "day", lo, hi, columns=["tenant_id", "venue_id", "day"]
        ),
    }


def check_venue_seasonality(
    df: pl.DataFrame, orders: pl.DataFrame, refunds: pl.DataFrame, grid: pl.DataFrame, through: str | date
) -> CheckOutcome:
    """Per tenant, venue and calendar month, re-derived from the facts (not venue_analytics): the month's
    tickets, net revenue (gross - refunds) and days with sales summed over the window's years. The mart's
    averages times the number of years that month is in its grid must give them back: tickets and days
    exactly (avg_* are rounded to 4 decimals), avg_revenue_cents equal to the total / years rounded like
    the SQL. Plus: a row for each venue month of the grid and no other, one row per venue and month, months 1-12, season agreeing with seasonality_ratio,
    no negative average or spread."""
    lo, hi = seasonality_window(through)
    keys = ["tenant_id", "venue_id", "month"]

    def window(f: pl.DataFrame) -> pl.DataFrame:
        return f.filter(pl.col("venue_id").is_not_null() & pl.col("day").is_between(lo, hi)).with_columns(
            pl.col("day").dt.month().cast(pl.Int32).alias("month"), pl.col("day").dt.year().alias("year")
        )

    o, r = window(orders), window(refunds)
    per_day = o.group_by("tenant_id", "venue_id", "day").agg(pl.col("tickets").sum())
    years = window(grid).group_by(keys).agg(pl.col("year").n_unique().cast(pl.Int64).alias("years"))
    expected = (
        pl.concat(
            [
                o.group_by(keys).agg(
                    pl.col("tickets").sum().cast(pl.Int64).alias("tickets_total"),
                    pl.col("gross_revenue_cents").sum().cast(pl.Int64).alias("net"),
                ),
                r.group_by(keys).agg(-pl.col("refund_cents").sum().cast(pl.Int64).alias("net")),
                per_day.with_columns(pl.col("day").dt.month().cast(pl.Int32).alias("month"))
                .group_by(keys)
                .agg((pl.col("tickets") > 0).sum().cast(pl.Int64).alias("days_with_sales")),
            ],
            how="diagonal_relaxed",
        )
        .group_by(keys)
        .agg(pl.col("tickets_total", "net", "days_with_sales").sum())
        .join(years, on=keys, how="full", coalesce=True)
        .fill_null(0)
    )
    expected = expected.with_columns(
        pl.when(pl.col("years") > 0)
        .then(_round_half_away(pl.col("net"), pl.col("years")))
        .otherwise(pl.col("net"))
        .alias("avg_revenue_cents")
    )
    n = pl.col("years").cast(pl.Float64)
    actual = (
        df.join(years, on=keys, how="left")
        .with_columns(pl.col("years").fill_null(0))
        .select(
            *keys,
            (pl.col("avg_tickets") * n).round(0).cast(pl.Int64).alias("tickets_total"),
            (pl.col("avg_event_days") * n).round(0).cast(pl.Int64).alias("days_with_sales"),
            "avg_revenue_cents",
        )
    )
    values = ["tickets_total", "days_with_sales", "avg_revenue_cents"]
    ratio = pl.col("seasonality_ratio")
    season = (
        pl.when(ratio > 1.2)
        .then(pl.lit("Peak"))
        .when(ratio > 0.8)
        .then(pl.lit("Normal"))
        .otherwise(pl.lit("Off Season"))
    )
    return _combine(
        compare(expected, actual, keys, values),
        extra_failures={
            # every month of the grid has its row, even one without sales (then all its values are 0)
            "venue_months_missing": years.join(df, on=keys, how="anti").height,
            "venue_months_not_in_the_grid": df.join(years, on=keys, how="anti").height,
            "duplicate_venue_months": df.height - df.select("venue_id", "month").unique().height,
            "month_out_of_range": df.filter(~pl.col("month").is_between(1, 12)).height,
            "season_not_its_ratio": df.filter(
                ~pl.col("season").is_in(SEASONS) | (pl.col("season") != season)
            ).height,
            "negative_averages": df.filter(
                pl.any_horizontal(
                    pl.col(c) < 0
                    for c in (
                        "avg_tickets",
                        "avg_event_days",
                        "stddev_tickets",
                        "volatility_pct",
                        "seasonality_ratio",
                    )
                )
            ).height,
        },
        metadata={"window": f"{lo}..{hi}"},
    )


# -- revenue_projections ---------------------------------------------------------------------------------
PROJECTION_KEY = ["tenant_id", "venue_id", "as_of", "horizon_day"]
PROJECTION_CENTS = ["projected_net_revenue_cents", "lower_cents", "upper_cents"]


def check_revenue_projections(
    df: pl.DataFrame, horizon: int | None = None, venues: pl.DataFrame | None = None
) -> CheckOutcome:
    """Invariants of the model's output (nothing to re-derive it from): every key and value present (no NULL
    or NaN), one row per tenant, venue, as_of and horizon day; lower <= projected <= upper; for each venue and as_of the horizon days 1..H contiguous and the same H for every venue (= `horizon` when
    given), day = as_of + horizon_day. With `venues` (stg_venues: id, tenant_id) each row's tenant must be
    its venue's.

    Negative values are counted (metadata projection_below_zero, lower_below_zero) but are no failure: a
    day's net revenue can be negative (refunds), so can a projection from a venue whose recent days were
    mostly refunds (30 rows, one venue, at `medium`: a run must not stop for it); and the lower bound is the projection plus the 10th percentile of the venue's backtest
    residuals, which on venues with many days without sales lies far below zero (on the `tiny` sample 64 of
    90 lower bounds are negative while 5 of 338 venue-days had a negative net revenue)."""
    key_cols = [*PROJECTION_KEY, "day"]
    nulls = df.select(
        pl.sum_horizontal(pl.col(c).is_null() for c in [*key_cols, *PROJECTION_CENTS])
    ).to_series()
    nan = sum(int(df[c].cast(pl.Float64).is_nan().sum()) for c in PROJECTION_CENTS)
    runs = df.group_by("tenant_id", "venue_id", "as_of").agg(
        pl.len().alias("n"),
        pl.col("horizon_day").min().alias("lo"),
        pl.col("horizon_day").max().alias("hi"),
        pl.col("horizon_day").n_unique().alias("distinct"),
    )
    lengths = set(runs["n"].to_list())
    gaps = runs.filter(
        (pl.col("lo") != 1) | (pl.col("hi") != pl.col("n")) | (pl.col("distinct") != pl.col("n"))
    )
    wrong_day = df.filter(pl.col("day") != pl.col("as_of") + pl.duration(days=pl.col("horizon_day")))
    failures = {
        "null_values": int((nulls > 0).sum()),
        "nan_values": nan,
        "duplicate_keys": df.height - df.select(PROJECTION_KEY).unique().height,
        "interval_not_around_projection": df.filter(
            (pl.col("lower_cents") > pl.col("projected_net_revenue_cents"))
            | (pl.col("projected_net_revenue_cents") > pl.col("upper_cents"))
        ).height,
        "horizon_not_contiguous": gaps.height,
        "horizon_lengths_differ": int(
            len(lengths) > 1 or (horizon is not None and lengths - {horizon} != set())
        ),
        "day_not_as_of_plus_horizon_day": wrong_day.height,
    }
    if venues is not None:
        owner = venues.select(pl.col("id").alias("venue_id"), pl.col("tenant_id").alias("venue_tenant"))
        j = df.select("tenant_id", "venue_id").unique().join(owner, on="venue_id", how="left")
        failures["tenant_not_the_venues"] = j.filter(
            pl.col("venue_tenant").is_null() | (pl.col("venue_tenant") != pl.col("tenant_id"))
        ).height
    return _combine(
        extra_failures=failures,
        metadata={
            "rows": df.height,
            "venue_runs": runs.height,
            "horizon_days": sorted(lengths),
            "lower_below_zero": df.filter(pl.col("lower_cents") < 0).height,
            "projection_below_zero": df.filter(
                (pl.col("projected_net_revenue_cents") < 0) | (pl.col("upper_cents") < 0)
            ).height,
        },
    )


# -- price_history ---------------------------------------------------------------------------------------
def price_history_inputs(wh: Warehouse) -> dict[str, pl.DataFrame]:
    snaps = (
        wh.read_table("ticket_type_price_snapshots", columns=["day", "ticket_type_id", "price_cents"])
        if "ticket_type_price_snapshots" in wh.tables()
        else pl.DataFrame(schema={"day": pl.Date, "ticket_type_id": pl.String, "price_cents": pl.Int64})
    )
    return {
        "types": wh.read_table("stg_ticket_types", columns=["id", "event_id", "price_cents", "created_at"]),
        "events": wh.read_table("stg_events", columns=["id", "tenant_id", "venue_id"]),
        "changes": wh.read_table(
            "stg_ticket_price_history",
            columns=["ticket_type_id", "old_price_cents", "new_price_cents", "changed_at"],
        ),
        "snapshots": snaps,
    }


def check_price_history(
    df: pl.DataFrame,
    types: pl.DataFrame,
    events: pl.DataFrame,
    changes: pl.DataFrame,
    snapshots: pl.DataFrame,
) -> CheckOutcome:
    """Re-derives from staging the price in effect at every known price point and reads it back from the
    intervals (the one whose valid_from is the latest at or before the point): at each logged change
    (stg_ticket_price_history) its new price, at each snapshot day's midnight UTC the snapshot's price, at
    each type's creation its first logged change's old price (else today's price), and the open interval
    holds today's ticket_types price; compared to the cent. A point that shares its type and instant with
    another point is left out (the SQL's tie-break picks one; the empty interval it leaves is counted by
    empty_or_inverted_intervals). Plus: per type the intervals chain (each valid_to is the next valid_from),
    exactly one is open and it is the last, no two neighbours have the same price; each row's tenant, venue
    and event are its ticket type's event's."""
    ph = df.sort("ticket_type_id", "valid_from")
    t = pl.col("valid_from")
    first_old = changes.sort("changed_at").group_by("ticket_type_id").agg(pl.col("old_price_cents").first())
    created = types.join(first_old.rename({"ticket_type_id": "id"}), on="id", how="left")
    points = pl.concat(
        [
            changes.select(
                "ticket_type_id",
                pl.col("changed_at").alias("at"),
                pl.col("new_price_cents").alias("price"),
                pl.lit("price_history").alias("kind"),
            ),
            snapshots.select(
                "ticket_type_id",
                pl.col("day").cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias("at"),
                pl.col("price_cents").alias("price"),
                pl.lit("snapshot").alias("kind"),
            ),
            created.select(
                pl.col("id").alias("ticket_type_id"),
                pl.col("created_at").alias("at"),
                pl.coalesce("old_price_cents", "price_cents").alias("price"),
                pl.lit("created").alias("kind"),
            ),
        ],
        how="vertical_relaxed",
    ).drop_nulls(["ticket_type_id", "at", "price"])
    points = (
        points.with_columns(pl.col("at").dt.cast_time_unit("us").dt.convert_time_zone("UTC"))
        .filter(pl.len().over("ticket_type_id", "at") == 1)
        .sort("at")
    )
    intervals = ph.select(
        "ticket_type_id",
        t.dt.cast_time_unit("us").dt.convert_time_zone("UTC").alias("at"),
        pl.col("price_cents").alias("in_effect"),
    ).sort("at")
    known = points.join_asof(
        intervals, on="at", by="ticket_type_id", strategy="backward", check_sortedness=False
    )
    current = types.join(
        ph.filter(pl.col("valid_to").is_null()).select(
            pl.col("ticket_type_id").alias("id"), pl.col("price_cents").alias("open_price")
        ),
        on="id",
        how="left",
    )
    nxt = pl.col("valid_from").shift(-1).over("ticket_type_id")
    last = pl.int_range(pl.len()).over("ticket_type_id") == pl.len().over("ticket_type_id") - 1
    owner = types.select(pl.col("id").alias("ticket_type_id"), pl.col("event_id").alias("e")).join(
        events.select(pl.col("id").alias("e"), pl.col("tenant_id").alias("t"), pl.col("venue_id").alias("v")),
        on="e",
        how="left",
    )
    o = ph.join(owner, on="ticket_type_id", how="left")
    return _combine(
        extra_failures={
            "points_at_another_price": known.filter(
                pl.col("in_effect").is_null() | (pl.col("in_effect") != pl.col("price"))
            ).height,
            "open_price_not_current_price": current.filter(
                pl.col("price_cents").is_not_null()
                & (pl.col("open_price").is_null() | (pl.col("open_price") != pl.col("price_cents")))
            ).height,
            "intervals_not_chained": ph.filter(
                ~last & (pl.col("valid_to").is_null() | (pl.col("valid_to") != nxt))
                | last & pl.col("valid_to").is_not_null()
            ).height,
            "empty_or_inverted_intervals": ph.filter(pl.col("valid_to") <= pl.col("valid_from")).height,
            "neighbours_at_the_same_price": ph.filter(
                pl.col("price_cents") == pl.col("price_cents").shift(1).over("ticket_type_id")
            ).height,
            "not_the_events_tenant_venue_event": o.filter(
                pl.col("e").is_null()
                | (pl.col("event_id") != pl.col("e"))
                | ~pl.col("tenant_id").eq_missing(pl.col("t"))
                | ~pl.col("venue_id").eq_missing(pl.col("v"))
            ).height,
        },
        metadata={
            "points_compared": known.height,
            "ticket_types": ph["ticket_type_id"].n_unique(),
            **{f"points_{k}": n for k, n in known.group_by("kind").len().iter_rows()},
        },
    )


# -- event_price_summary -----------------------------------------------------------------------------------
SUMMARY_VALUES = [
    "ticket_types",
    "current_min_price_cents",
    "current_max_price_cents",
    "current_avg_price_cents",
    "lowest_price_cents",
    "highest_price_cents",
    "price_changes",
]


def check_event_price_summary(
    df: pl.DataFrame, history: pl.DataFrame, types: pl.DataFrame, events: pl.DataFrame
) -> CheckOutcome:
    """Per event, re-derived: the current min/max/average price from stg_ticket_types' own price_cents (of
    the types the history covers; the average rounded half away from zero, in integers), the number of
    types, the all-time lowest/highest price and the number of price changes (intervals beyond each type's
    first) from price_history, tenant and venue from stg_events; compared exactly on (tenant, venue,
    event), so a summary under the wrong tenant is a difference. Plus: current prices within lowest..highest
    and min <= avg <= max."""
    covered = types.join(history.select(pl.col("ticket_type_id").alias("id")).unique(), on="id", how="semi")
    cur = covered.group_by("event_id").agg(
        pl.len().cast(pl.Int64).alias("ticket_types"),
        pl.col("price_cents").min().alias("current_min_price_cents"),
        pl.col("price_cents").max().alias("current_max_price_cents"),
        pl.col("price_cents").sum().alias("s"),
        pl.col("price_cents").count().alias("n"),
    )
    cur = cur.with_columns(
        pl.when(pl.col("n") > 0)
        .then(_round_half_away(pl.col("s"), pl.col("n")))
        .alias("current_avg_price_cents")
    ).drop("s", "n")
    hist = history.group_by("event_id").agg(
        pl.col("price_cents").min().alias("lowest_price_cents"),
        pl.col("price_cents").max().alias("highest_price_cents"),
        (pl.len() - pl.col("ticket_type_id").n_unique()).cast(pl.Int64).alias("price_changes"),
    )
    owner = events.select(pl.col("id").alias("event_id"), "tenant_id", "venue_id")
    expected = cur.join(hist, on="event_id", how="full", coalesce=True).join(owner, on="event_id", how="left")
    keys = ["tenant_id", "venue_id", "event_id"]
    between = pl.all_horizontal(
        pl.col(c).is_between(pl.col("lowest_price_cents"), pl.col("highest_price_cents"))
        for c in SUMMARY_VALUES[1:4]
    )
    ordered = pl.col("current_min_price_cents") <= pl.col("current_avg_price_cents")
    ordered = ordered & (pl.col("current_avg_price_cents") <= pl.col("current_max_price_cents"))
    nulls_differ = (
        expected.join(df, on="event_id", how="inner", suffix="_mart")
        .filter(
            pl.any_horizontal(pl.col(c).is_null() != pl.col(f"{c}_mart").is_null() for c in SUMMARY_VALUES)
        )
        .height
    )
    return _combine(
        compare(expected, df, keys, SUMMARY_VALUES),
        extra_failures={
            "duplicate_events": df.height - df["event_id"].n_unique(),
            "current_price_outside_all_time_range": df.filter(~between).height,
            "current_min_avg_max_unordered": df.filter(~ordered).height,
            "null_where_expected_a_value_or_back": nulls_differ,
        },
    )


def event_price_summary_inputs(wh: Warehouse, history: pl.DataFrame) -> dict[str, pl.DataFrame]:
    return {
        "history": history,
        "types": wh.read_table("stg_ticket_types", columns=["id", "event_id", "price_cents"]),
        "events": wh.read_table("stg_events", columns=["id", "tenant_id", "venue_id"]),
    }
