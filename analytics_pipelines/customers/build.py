"""Build the customer marts from the warehouse: read exactly the inputs each needs, call the pure functions
(rfm, lifetime, churn) or run its SQL (sql/marts/customer_*.sql). No Dagster here."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import polars as pl

from analytics_pipelines.customers import churn_features, lifetime, lifetime_fit, rfm
from analytics_pipelines.customers import keys as K
from analytics_pipelines.marts import build as B
from analytics_pipelines.marts.sqlrun import run
from analytics_pipelines.warehouse import Warehouse

ORDER_COLUMNS = [
    "order_id",
    "tenant_id",
    "venue_id",
    "event_id",
    "category_id",
    "user_id",
    "recognized_at",
    "day",
    "tickets",
    "gross_revenue_cents",
    "currency",
]


def orders(wh: Warehouse, through: date | None = None) -> pl.DataFrame:
    """fct_orders up to `through` (all history when None), the columns the customer marts use, and the
    customer ids' integer codes (keys.USER_CODE: coded once for all the aggregations over these rows)."""
    return K.with_user_codes(_history(wh, "fct_orders", ORDER_COLUMNS, through))


def _history(wh: Warehouse, table: str, columns: list[str], through: date | None) -> pl.DataFrame:
    """A daily fact's columns over all partitions (the fast whole-table read), days after `through` dropped."""
    df = B.fact_history(wh, table, columns)
    return df if through is None else df.filter(pl.col("day") <= through)


def last_sales_day(wh: Warehouse) -> date | None:
    """The last day with recognized sales (whole-table customer marts are as of its end)."""
    if "fct_orders" not in wh.tables():
        raise LookupError("fct_orders has not been materialized yet")
    d = wh.read("SELECT max(day) AS d FROM fct_orders")["d"][0]
    return date.fromisoformat(d) if isinstance(d, str) else d


def end_of(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(), UTC)


# -- RFM -------------------------------------------------------------------------------------------
def rfm_scores(wh: Warehouse, as_of_dates: list[date], history: pl.DataFrame | None = None) -> pl.DataFrame:
    """customer_rfm_scores rows for each as-of date (one read of the order history; `history`: fct_orders
    rows already read, any later days are left out by the scores)."""
    if history is None:
        history = orders(wh, max(as_of_dates))
    return pl.concat([rfm.rfm_scores(history, d) for d in sorted(as_of_dates)], how="vertical_relaxed")


def rfm_as_of_dates(wh: Warehouse) -> list[date]:
    if "customer_rfm_scores" not in wh.tables():
        return []
    return sorted(wh.read("SELECT DISTINCT as_of FROM customer_rfm_scores")["as_of"].to_list())


def rfm_weekly_as_of_dates(wh: Warehouse) -> list[date]:
    """The Sundays of the RFM history (kept forever by its retention): the as-of dates transitions compare."""
    return [d for d in rfm_as_of_dates(wh) if d.weekday() == 6]


def sundays_of(keys: list[str]) -> set[date]:
    """The as-of Sundays among customer_rfm_scores partition keys (days)."""
    return {d for d in map(date.fromisoformat, keys) if d.weekday() == 6}


def rfm_at(wh: Warehouse, as_of: date, written: dict[date, pl.DataFrame] | None = None) -> pl.DataFrame:
    """The customer_rfm_scores partition of `as_of`; from `written` (partitions this run has just written,
    still in memory) when it holds that date, else read back."""
    if written and as_of in written:
        return written[as_of]
    return wh.read_partitions("customer_rfm_scores", "as_of", as_of.isoformat(), as_of.isoformat())


def segment_transitions(
    wh: Warehouse,
    written: dict[date, pl.DataFrame] | None = None,
    previous: pl.DataFrame | None = None,
    changed: set[date] | None = None,
) -> pl.DataFrame:
    """Transitions between every pair of consecutive as-of Sundays in customer_rfm_scores (weekly, though its
    partitions are daily; `written`: see rfm_at). With `previous` (the table as last built) and `changed` (the
    as-of dates rewritten since), a pair whose two dates are unchanged and that `previous` already holds is
    kept from it instead of recomputed: a run computes at most one new pair, not one per week of history."""
    dates = rfm_weekly_as_of_dates(wh)
    pairs = list(zip(dates, dates[1:], strict=False))
    kept = None
    if previous is not None and changed is not None and previous.height:
        held = set(previous.select("from_as_of", "to_as_of").unique().iter_rows())
        reuse = [(a, b) for a, b in pairs if (a, b) in held and a not in changed and b not in changed]
        if reuse:
            kept = previous.join(
                pl.DataFrame(
                    reuse,
                    schema={
                        "from_as_of": previous.schema["from_as_of"],
                        "to_as_of": previous.schema["to_as_of"],
                    },
                    orient="row",
                ),
                on=["from_as_of", "to_as_of"],
                how="semi",
            )
            pairs = [p for p in pairs if p not in set(reuse)]
    parts = [rfm.segment_transitions(rfm_at(wh, a, written), rfm_at(wh, b, written)) for a, b in pairs]
    if kept is not None:
        parts.insert(0, kept)
    out = (
        pl.concat(parts, how="vertical_relaxed")
        if parts
        else run("customer_segment_transitions", {"prev": _empty_rfm(), "cur": _empty_rfm()})
    )
    return out.sort(["to_as_of", "scope", "scope_id", "from_segment", "to_segment"], maintain_order=True)


def _empty_rfm() -> pl.DataFrame:
    return rfm.score(
        rfm.customer_base(
            pl.DataFrame(
                schema={
                    "tenant_id": pl.String,
                    "venue_id": pl.String,
                    "user_id": pl.String,
                    "recognized_at": pl.Datetime("us", "UTC"),
                    "day": pl.Date,
                    "tickets": pl.Int64,
                    "gross_revenue_cents": pl.Int64,
                    "currency": pl.String,
                }
            ),
            date(1970, 1, 1),
        ),
        date(1970, 1, 1),
    )


def customer_segments(latest_rfm: pl.DataFrame, clv: pl.DataFrame) -> pl.DataFrame:
    """Per scope (venue, tenant, platform) and segment at the latest as-of date (sql/marts/customer_segments.sql)."""
    per_customer_clv = clv.select("venue_id", "user_id", "tenant_id", "clv_12m_cents")
    segments = pl.DataFrame({"segment": list(rfm.SEGMENTS), "segment_order": list(range(len(rfm.SEGMENTS)))})
    rfm_columns = latest_rfm.select(
        "as_of",
        "scope",
        "scope_id",
        "tenant_id",
        "venue_id",
        "user_id",
        "segment",
        "frequency",
        "monetary_cents",
    )  # what the SQL reads (copied to Arrow)
    return run("customer_segments", {"rfm": rfm_columns, "clv": per_customer_clv, "segments": segments})


# -- CLV and churn ---------------------------------------------------------------------------------
def churn_inputs(
    wh: Warehouse, through: date, attendance_: pl.DataFrame | None = None, history: pl.DataFrame | None = None
) -> churn_features.Inputs:
    """The churn features' (and the 360's) inputs up to `through`. `attendance_`: the customer_attendance
    rows (read from that table when None: it is computed once, by its own asset/step); `history`: fct_orders
    rows already read (read here when None)."""
    tables = wh.tables()
    refunds = (
        _history(wh, "fct_refunds", ["user_id", "tenant_id", "day", "refund_cents"], through)
        if "fct_refunds" in tables
        else pl.DataFrame(
            schema={"user_id": pl.String, "tenant_id": pl.String, "day": pl.Date, "refund_cents": pl.Int64}
        )
    )
    resales = (
        _history(wh, "fct_resales", ["buyer_id", "seller_id", "tenant_id", "day"], through)
        if "fct_resales" in tables
        else pl.DataFrame(
            schema={"buyer_id": pl.String, "seller_id": pl.String, "tenant_id": pl.String, "day": pl.Date}
        )
    )
    return churn_features.Inputs(
        orders=orders(wh, through) if history is None else history,
        refunds=refunds,
        resales=resales,
        attendance=attendance_table(wh) if attendance_ is None else attendance_,
        users=users(wh),
    )


def attendance_inputs(wh: Warehouse) -> dict[str, pl.DataFrame]:
    """The staging frames customer_attendance is computed from (tickets, scans, event_dim)."""
    return {
        "tickets": B._stg(
            wh, "tickets", columns=["id", "event_id", "status", "user_id", "original_purchaser_id"]
        ),
        "scans": B._stg(wh, "ticket_scans", columns=["ticket_id", "result"]),
        "event_dim": B.event_dim(wh),
    }


def attendance(wh: Warehouse, now: datetime, inputs: dict[str, pl.DataFrame] | None = None) -> pl.DataFrame:
    """customer_attendance: per holder and event-end day, tickets of ended events and no-shows
    (attendance_rows); `inputs`: attendance_inputs(wh) already read."""
    return attendance_rows(**(inputs or attendance_inputs(wh)), now=now)


#: ticket statuses that count as sold (the no_shows mart's)
SOLD_STATUSES = ["sold", "minted", "active", "transferred", "checked_in", "used"]


def attendance_rows(
    tickets: pl.DataFrame, scans: pl.DataFrame, event_dim: pl.DataFrame, now: datetime
) -> pl.DataFrame:
    """The rows of sql/marts/customer_attendance.sql (the rules' reference; tests compare the two), in
    polars: user_id (tickets.user_id, else original_purchaser_id), tenant_id (the event's), ended_day (UTC
    date of the event's end),
    tickets_ended (sold tickets of events ended before `now`, not cancelled or postponed), no_shows (those
    without a valid scan). One lazy query: no copy of the ~10 M tickets into DuckDB, and the valid scans
    are a hash set of ticket ids instead of a DISTINCT and a join. Rows unordered (consumers aggregate)."""
    now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    ends = pl.col("ends_at")
    if isinstance(event_dim.schema["ends_at"], pl.Datetime) and event_dim.schema["ends_at"].time_zone is None:
        ends = ends.dt.replace_time_zone("UTC")
    else:
        ends = ends.dt.convert_time_zone("UTC")
    ended = (
        event_dim.lazy()
        .filter((ends < now) & ~pl.col("cancelled_or_postponed"))
        .select("event_id", "tenant_id", ends.dt.date().alias("ended_day"))
    )
    valid = scans.filter(pl.col("result") == "valid").get_column("ticket_id")
    return (
        tickets.lazy()
        .filter(pl.col("status").is_in(SOLD_STATUSES))
        .select(pl.coalesce("user_id", "original_purchaser_id").alias("user_id"), "event_id", "id")
        .filter(pl.col("user_id").is_not_null())
        .join(ended, on="event_id", how="inner")
        .with_columns(pl.col("id").is_in(valid.implode()).fill_null(False).alias("_scanned"))
        .group_by("user_id", "tenant_id", "ended_day")
        .agg(
            pl.len().cast(pl.Int64).alias("tickets_ended"),
            (~pl.col("_scanned")).sum().cast(pl.Int64).alias("no_shows"),
        )
        .collect()
    )


def attendance_table(wh: Warehouse) -> pl.DataFrame:
    """The written customer_attendance table (the churn model and the 360 read it)."""
    if "customer_attendance" not in wh.tables():
        raise LookupError("customer_attendance has not been materialized yet")
    return wh.read_table("customer_attendance")


def users(wh: Warehouse) -> pl.DataFrame:
    return B._stg(wh, "users", columns=["id", "tenant_id", "status", "created_at"])


def lifetime_value(
    wh: Warehouse,
    as_of: date,
    churn_scores: pl.DataFrame | None,
    min_repeat_buyers: int = lifetime_fit.MIN_REPEAT_BUYERS,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    return lifetime.lifetime_value(orders(wh, as_of), as_of, churn_scores, min_repeat_buyers)


def churn_scores(wh: Warehouse) -> pl.DataFrame | None:
    return wh.read_table("customer_churn_scores") if "customer_churn_scores" in wh.tables() else None


# -- cohorts and 360 -------------------------------------------------------------------------------
def cohorts(history: pl.DataFrame, through: date) -> pl.DataFrame:
    """Monthly acquisition cohorts x months since first purchase, per scope (sql/marts/customer_cohorts.sql).

    The per-customer work (first month per scope, active customers and revenue per cohort and month) is
    polars group-bys; the SQL zero-fills the small matrix and adds the running totals."""
    o = history.filter((pl.col("day") <= through) & pl.col("user_id").is_not_null()).select(
        "tenant_id",
        "venue_id",
        "user_id",
        pl.col("day").dt.truncate("1mo").alias("month"),
        "gross_revenue_cents",
        *[c for c in (K.USER_CODE,) if c in history.columns],
    )
    none = pl.lit(None, pl.String)
    levels = [
        ("venue", ["tenant_id", "venue_id"], pl.col("venue_id")),
        ("tenant", ["tenant_id"], pl.col("tenant_id")),
        ("platform", [], pl.lit("platform")),
    ]
    cells = []
    sorted_cells = _cohort_cells_sorted(o, levels)
    for scope, keys, scope_id in levels:
        if sorted_cells is not None:
            cell = sorted_cells[scope]
        else:
            per = o.group_by(*keys, "user_id", "month").agg(
                pl.sum("gross_revenue_cents").alias("revenue_cents")
            )
            per = per.with_columns(pl.col("month").min().over([*keys, "user_id"]).alias("cohort_month"))
            cell = per.group_by(*keys, "cohort_month", "month").agg(
                pl.len().alias("active_customers"), pl.sum("revenue_cents")
            )
        cells.append(
            cell.with_columns(
                pl.lit(scope).alias("scope"),
                scope_id.alias("scope_id"),
                *[none.alias(k) for k in ("tenant_id", "venue_id") if k not in keys],
            ).select(
                "scope",
                "scope_id",
                "tenant_id",
                "venue_id",
                "cohort_month",
                "month",
                "active_customers",
                "revenue_cents",
            )
        )
    return run("customer_cohorts", {"cells": pl.concat(cells)}, through=through)


def _cohort_cells_sorted(o: pl.DataFrame, levels: list) -> dict[str, pl.DataFrame] | None:
    """Per scope level, the cohort cells (keys, cohort_month, month, active_customers, revenue_cents) that
    cohorts' group-bys compute, from the orders sorted by integer (scope keys, customer) codes and month:
    a customer's months in a scope are runs of rows, the first one their cohort. The small cell group-by
    then runs on integers. None (the group-bys run instead) for other column types or NULL cents."""
    if (
        o.schema["gross_revenue_cents"] != pl.Int64
        or o.schema["month"] != pl.Date
        or o["gross_revenue_cents"].null_count()
        or o.height == 0
    ):
        return None
    user = K.user_codes(o)
    coded = {k: K.ordered_codes(o[k]) for k in ("tenant_id", "venue_id")}
    month_all = o["month"].to_physical().to_numpy().astype(np.int64)
    cents_all = o["gross_revenue_cents"].to_numpy()
    out = {}
    for scope, keys, _ in levels:
        key = K.combined_key([(coded[k][0], coded[k][1]) for k in keys] + [user])
        order = None if key is None else K.sort_by_key(key, month_all)
        if order is None:
            return None
        key, month = key[order], month_all[order]
        pairs = K.run_starts(key, month)  # one per customer and month
        pair_key, pair_month = key[pairs], month[pairs]
        first = K.run_starts(pair_key)  # each customer's first month in the scope
        cohort = np.repeat(pair_month[first], K.run_lengths(first, pair_key.size))
        scope_code = pair_key // np.uint64(user[1] + 1)
        cell = (
            pl.DataFrame(
                {
                    "_scope": scope_code,
                    "cohort_month": cohort.astype(np.int32),
                    "month": pair_month.astype(np.int32),
                    "revenue_cents": np.add.reduceat(cents_all[order], pairs),
                }
            )
            .group_by("_scope", "cohort_month", "month")
            .agg(pl.len().alias("active_customers"), pl.sum("revenue_cents"))
        )
        # back to the key strings: the scope code is the keys' codes in mixed radix
        code, columns = cell["_scope"].to_numpy(), {}
        for k in reversed(keys):
            codes, n, values = coded[k]
            columns[k] = values.gather((code % np.uint64(n + 1)).astype(np.int64))
            code = code // np.uint64(n + 1)
        out[scope] = cell.select(
            *[columns[k].alias(k) for k in keys],
            pl.col("cohort_month", "month").cast(pl.Date),
            "active_customers",
            "revenue_cents",
        )
    return out


def customer_360(
    history: pl.DataFrame,
    through: date,
    users_: pl.DataFrame,
    refunds: pl.DataFrame,
    resales: pl.DataFrame,
    attendance_: pl.DataFrame,
    categories: pl.DataFrame,
    latest_rfm: pl.DataFrame | None,
    clv: pl.DataFrame | None,
    scores: pl.DataFrame | None,
) -> pl.DataFrame:
    """One row per tenant and customer (sql/marts/customer_360.sql): every figure from that tenant's rows
    only (orders, refunds and resales by their tenant_id, attendance by the event's tenant, CLV by the venue's,
    RFM the tenant scope's); missing upstream marts give NULL columns."""
    tu = ["tenant_id", "user_id"]
    tenant_rfm = (
        latest_rfm.filter(pl.col("scope") == "tenant") if latest_rfm is not None else _empty_rfm()
    ).select(*tu, "as_of", "rfm_code", "segment")
    clv_frame = (
        clv
        if clv is not None
        else pl.DataFrame(
            schema={
                "tenant_id": pl.String,
                "user_id": pl.String,
                "clv_12m_cents": pl.Float64,
                "clv_24m_cents": pl.Float64,
                "p_alive": pl.Float64,
                "expected_purchases_12m": pl.Float64,
            }
        )
    )
    score_frame = (
        scores
        if scores is not None
        else pl.DataFrame(
            schema={
                "user_id": pl.String,
                "tenant_id": pl.String,
                "churn_probability": pl.Float64,
                "churn_flag": pl.Boolean,
            }
        )
    )
    o = history.filter((pl.col("day") <= through) & pl.col("user_id").is_not_null())
    # distinct venues and events counted on integer codes (NULL = 0, counted as a value like n_unique does)
    codes = [pl.Series(f"_{c}", K.dense_codes(o[c])[0], dtype=pl.UInt64) for c in ("venue_id", "event_id")]
    buyers = (
        o.with_columns(codes)
        .group_by(tu)
        .agg(
            pl.min("recognized_at").alias("first_purchase_at"),
            pl.max("recognized_at").alias("last_purchase_at"),
            pl.len().alias("orders"),
            pl.sum("tickets"),
            pl.sum("gross_revenue_cents").alias("spend_cents"),
            pl.col("_venue_id").n_unique().alias("venues"),
            pl.col("_event_id").n_unique().alias("events"),
        )
    )
    pairs = (
        o.filter(pl.col("category_id").is_not_null())
        .group_by(*tu, "category_id")
        .agg(pl.sum("tickets").alias("t"), pl.sum("gross_revenue_cents").alias("c"))
    )
    fav = (
        pairs.sort(["t", "c", "category_id"], descending=[True, True, False])
        .group_by(tu)
        .agg(pl.first("category_id").alias("favourite_category_id"))
    )
    ref = (
        refunds.filter(pl.col("day") <= through)
        .group_by(tu)
        .agg(pl.len().alias("refunds"), pl.sum("refund_cents").alias("refunds_cents"))
    )
    res = resales.filter(pl.col("day") <= through)
    att = (
        attendance_.filter(pl.col("ended_day") <= through)
        .group_by(tu)
        .agg(pl.sum("tickets_ended"), pl.sum("no_shows"))
    )
    clv_c = clv_frame.group_by(tu).agg(
        pl.sum("clv_12m_cents"), pl.sum("clv_24m_cents"), pl.max("p_alive"), pl.sum("expected_purchases_12m")
    )
    # the churn model is platform-wide (its features span every tenant): its figures go on the customer's
    # home-tenant row only (stg_users.tenant_id; the score's tenant for a buyer missing there)
    home = score_frame.join(
        users_.select(pl.col("id").alias("user_id"), pl.col("tenant_id").alias("_home")),
        on="user_id",
        how="left",
    ).select(
        pl.coalesce("_home", "tenant_id").alias("tenant_id"), "user_id", "churn_probability", "churn_flag"
    )
    return run(
        "customer_360",
        {
            "buyers": buyers,
            "fav": fav,
            "ref": ref,
            "att": att,
            "clv_c": clv_c,
            "users": users_,
            "bought": res.group_by(pl.col("tenant_id"), pl.col("buyer_id").alias("user_id")).agg(
                pl.len().alias("n")
            ),
            "sold": res.group_by(pl.col("tenant_id"), pl.col("seller_id").alias("user_id")).agg(
                pl.len().alias("n")
            ),
            "categories": categories,
            "rfm": tenant_rfm,
            "churn": home,
        },
        through=through,
    )


def customer_360_from(
    wh: Warehouse,
    through: date,
    inp: churn_features.Inputs | None = None,
    rfm_written: dict[date, pl.DataFrame] | None = None,
    clv: pl.DataFrame | None = None,
    scores: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """customer_360 from the warehouse: `inp` (churn_inputs), `rfm_written` (see rfm_at), `clv` and `scores`
    (customer_lifetime_value, customer_churn_scores) are frames this run already holds, read when None."""
    inp = churn_inputs(wh, through) if inp is None else inp
    dates = [d for d in rfm_as_of_dates(wh) if d <= through]
    latest = rfm_at(wh, dates[-1], rfm_written) if dates else None
    if clv is None and "customer_lifetime_value" in wh.tables():
        clv = wh.read_table("customer_lifetime_value")
    cats = B._stg(wh, "event_categories", columns=["id", "name"])
    return customer_360(
        inp.orders,
        through,
        inp.users,
        inp.refunds,
        inp.resales,
        inp.attendance,
        cats,
        latest,
        clv,
        churn_scores(wh) if scores is None else scores,
    )
