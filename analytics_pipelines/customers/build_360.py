"""Build customer_cohorts and customer_360 from the warehouse (the rest of the customer marts:
analytics_pipelines.customers.build). No Dagster here."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from analytics_pipelines.customers import churn_features
from analytics_pipelines.customers import keys as K
from analytics_pipelines.customers.build import (
    ORDER_COLUMNS,
    _empty_rfm,
    churn_inputs,
    churn_scores,
    rfm_as_of_dates,
    rfm_at,
)
from analytics_pipelines.marts import build as B
from analytics_pipelines.marts.sqlrun import run
from analytics_pipelines.warehouse import Warehouse


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


#: the columns customer_360 reads of the order history (build.orders' but the order ids and currency), the
#: latest RFM partition and customer_lifetime_value
USED_ORDER_COLUMNS = tuple(c for c in ORDER_COLUMNS if c not in ("order_id", "currency"))
RFM_COLUMNS = ("scope", "tenant_id", "user_id", "as_of", "rfm_code", "segment")
CLV_COLUMNS = ("tenant_id", "user_id", "clv_12m_cents", "clv_24m_cents", "p_alive", "expected_purchases_12m")


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
    # only the columns used, without copying: a filter copies every column it keeps, and `select` rechunks
    # (the history comes in one chunk per daily file); at `large` each copy is ~0.5-1 GB. No filter at all
    # when every row passes (the usual case: the history as of the last sales day)
    o = _passing(
        history[list(USED_ORDER_COLUMNS)], (pl.col("day") <= through) & pl.col("user_id").is_not_null()
    )
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
        _passing(
            o[[*tu, "category_id", "tickets", "gross_revenue_cents"]], pl.col("category_id").is_not_null()
        )
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


def _passing(df: pl.DataFrame, keep: pl.Expr) -> pl.DataFrame:
    """The rows of `df` where `keep` holds: `df` itself (no copy) when that is every row."""
    return df if df.select(keep.fill_null(False).all()).item() else df.filter(keep)


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
    # only the columns customer_360 uses: the whole as-of partition (every scope) and the whole CLV table
    # were ~1.8 GB at `large`
    latest = rfm_at(wh, dates[-1], rfm_written, columns=RFM_COLUMNS) if dates else None
    if clv is None and "customer_lifetime_value" in wh.tables():
        clv = wh.read_table("customer_lifetime_value", columns=CLV_COLUMNS)
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
