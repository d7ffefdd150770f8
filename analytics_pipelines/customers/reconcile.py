"""Checks of the customer marts: totals re-derived from staging by independent SQL
(sql/checks/customer_totals.sql, both backends) compared to the cent, plus structural rules (one row per
customer and scope, scores 1-5, every customer in exactly one of the 11 segments, probabilities in [0, 1])."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl

from analytics_pipelines.customers.rfm import SEGMENTS
from analytics_pipelines.marts.reconcile import CheckOutcome, _combine, compare, staging_query
from analytics_pipelines.marts.sqlrun import run
from analytics_pipelines.warehouse import Warehouse

VALUES = ["customers", "orders", "monetary_cents"]


def staging_totals(wh: Warehouse, as_of: date) -> pl.DataFrame:
    """scope, scope_id, customers, orders, monetary_cents from staging up to the end of `as_of` (the orders
    recognized before midnight UTC after it). Shared by the checks of one run (marts/shared.py)."""
    return staging_query(
        wh, "customer_totals", f"{as_of + timedelta(days=1):%Y-%m-%d} 00:00:00+00", shared=True
    )


def _per_scope(df: pl.DataFrame, orders: str, monetary: str, keys=("scope", "scope_id")) -> pl.DataFrame:
    return df.group_by(list(keys)).agg(
        pl.len().alias("customers"), pl.sum(orders).alias("orders"), pl.sum(monetary).alias("monetary_cents")
    )


def _duplicates(df: pl.DataFrame, keys: list[str]) -> int:
    return df.height - df.select(keys).unique().height


def check_attendance(
    wh: Warehouse, df: pl.DataFrame, tickets: pl.DataFrame, scans: pl.DataFrame, now: datetime
) -> CheckOutcome:
    """customer_attendance: Σ tickets_ended and Σ no_shows equal the no_shows check's independent count
    (sql/checks/no_shows_total.sql) over the staging tickets with a holder; one row per holder, tenant and day;
    0 <= no_shows <= tickets_ended."""
    held = tickets.filter(pl.coalesce("user_id", "original_purchaser_id").is_not_null())
    exp = run(
        "checks/no_shows_total",
        {
            "stg_tickets": held,
            "stg_ticket_scans": scans,
            "stg_events": wh.read_table("stg_events", columns=["id", "status", "start_date"]),
            "stg_event_schedules": wh.read_table(
                "stg_event_schedules", columns=["event_id", "starts_at", "ends_at", "status", "deleted_at"]
            ),
        },
        now=now,
    ).select(pl.col("tickets_sold").cast(pl.Int64).alias("tickets_ended"), pl.col("no_shows").cast(pl.Int64))
    got = df.select(pl.sum("tickets_ended").cast(pl.Int64), pl.sum("no_shows").cast(pl.Int64))
    return _combine(
        compare(exp, got, [], ["tickets_ended", "no_shows"]),
        extra_failures={
            "duplicate_holder_days": _duplicates(df, ["user_id", "tenant_id", "ended_day"]),
            "missing_holder": df["user_id"].null_count(),
            "no_shows_out_of_range": df.filter(
                ~pl.col("no_shows").is_between(0, pl.col("tickets_ended"))
            ).height,
        },
    )


def check_rfm(wh: Warehouse, df: pl.DataFrame) -> CheckOutcome:
    """Per as-of date and scope: customers, orders and monetary equal staging's; one row per customer and
    scope; scores within 1-5; the segment is one of the 11 and the one the code maps to."""
    outcomes = []
    for as_of in sorted(df["as_of"].unique().to_list()):
        part = df.filter(pl.col("as_of") == as_of)
        outcomes.append(
            compare(
                staging_totals(wh, as_of),
                _per_scope(part, "frequency", "monetary_cents"),
                ["scope", "scope_id"],
                VALUES,
            )
        )
    scores = pl.any_horizontal(~pl.col(c).is_between(1, 5) for c in ("r_score", "f_score", "m_score"))
    code = pl.concat_str([pl.col(c).cast(pl.String) for c in ("r_score", "f_score", "m_score")])
    return _combine(
        *outcomes,
        extra_failures={
            "duplicate_customer_rows": _duplicates(df, ["as_of", "scope", "scope_id", "user_id"]),
            "scores_out_of_range": df.filter(scores).height,
            "code_not_scores": df.filter(pl.col("rfm_code") != code).height,
            "segment_missing_or_unknown": df.filter(
                ~pl.col("segment").is_in(SEGMENTS) | pl.col("segment").is_null()
            ).height,
        },
    )


def check_segments(wh: Warehouse, df: pl.DataFrame, rfm_rows: pl.DataFrame) -> CheckOutcome:
    """Segments add up to staging's customers and revenue per scope, every scope lists all 11 segments, and
    they hold exactly the RFM rows of their as-of date."""
    if df.height == 0:
        return CheckOutcome(rfm_rows.height == 0, {"rows": 0})
    as_of = df["as_of"][0]
    per = df.group_by("scope", "scope_id").agg(
        pl.sum("customers"), pl.sum("orders"), pl.sum("revenue_cents").alias("monetary_cents")
    )
    counts = df.group_by("scope", "scope_id").agg(pl.col("segment").n_unique().alias("n"))
    return _combine(
        compare(staging_totals(wh, as_of), per, ["scope", "scope_id"], VALUES),
        extra_failures={
            "scopes_without_all_11_segments": counts.filter(pl.col("n") != len(SEGMENTS)).height,
            "customers_not_rfm_rows": abs(int(df["customers"].sum()) - rfm_rows.height),
        },
    )


def check_transitions(df: pl.DataFrame, rfm_counts: pl.DataFrame) -> CheckOutcome:
    """Every customer of the later as-of date is counted once: per (to_as_of, scope, scope_id) the
    transitions add up to the RFM rows. `rfm_counts`: as_of, scope, scope_id, customers."""
    got = df.group_by(pl.col("to_as_of").alias("as_of"), "scope", "scope_id").agg(pl.sum("customers"))
    exp = rfm_counts.filter(pl.col("as_of").is_in(df["to_as_of"].unique().implode()))
    return compare(exp, got, ["as_of", "scope", "scope_id"], ["customers"])


def check_clv(wh: Warehouse, df: pl.DataFrame, as_of: date) -> CheckOutcome:
    """Per venue: customers, orders and historic value equal staging's; one row per customer and venue;
    probabilities in [0, 1]; CLV and expected purchases >= 0; the 24-month CLV >= the 12-month one."""
    venue = staging_totals(wh, as_of).filter(pl.col("scope") == "venue")
    got = _per_scope(
        df.with_columns(pl.col("venue_id").alias("scope_id"), pl.lit("venue").alias("scope")),
        "orders",
        "historic_value_cents",
    )
    bad_p = pl.any_horizontal(~pl.col(c).is_between(0, 1) for c in ("p_alive", "churn_probability"))
    negative = pl.any_horizontal(
        pl.col(c) < 0 for c in ("clv_12m_cents", "clv_24m_cents", "expected_purchases_12m")
    )
    return _combine(
        compare(venue, got, ["scope", "scope_id"], VALUES),
        extra_failures={
            "duplicate_customer_venue_rows": _duplicates(df, ["venue_id", "user_id"]),
            "probability_out_of_range": df.filter(bad_p).height,
            "negative_predictions": df.filter(negative).height,
            "clv_24m_below_12m": df.filter(pl.col("clv_24m_cents") < pl.col("clv_12m_cents") - 1e-6).height,
        },
    )


def check_cohorts(wh: Warehouse, df: pl.DataFrame, through: date) -> CheckOutcome:
    """Per scope: cohort sizes add up to staging's customers and cohort revenue to its gross revenue;
    retention within 0-100 %, 100 % in month 0."""
    first = df.filter(pl.col("months_since_first") == 0)
    per = (
        df.group_by("scope", "scope_id")
        .agg(pl.sum("revenue_cents").alias("monetary_cents"))
        .join(
            first.group_by("scope", "scope_id").agg(pl.sum("cohort_customers").alias("customers")),
            on=["scope", "scope_id"],
            how="full",
            coalesce=True,
        )
    )
    return _combine(
        compare(staging_totals(wh, through), per, ["scope", "scope_id"], ["customers", "monetary_cents"]),
        extra_failures={
            "retention_out_of_range": df.filter(~pl.col("retention_pct").is_between(0, 100)).height,
            "month_0_not_100_pct": first.filter(pl.col("retention_pct") != 100).height,
            "duplicate_cells": _duplicates(df, ["scope", "scope_id", "cohort_month", "months_since_first"]),
        },
    )


def check_customer_360(wh: Warehouse, df: pl.DataFrame, through: date) -> CheckOutcome:
    """One row per tenant and customer; per tenant, buyers, orders and spend equal staging's tenant totals
    (so no tenant's row carries another tenant's orders) and platform-wide orders and spend equal
    staging's; no-show counts within tickets; churn figures on at most one row per customer; no personal
    data columns."""
    totals = staging_totals(wh, through)
    buyers = df.filter(pl.col("orders") > 0)
    per_tenant = buyers.group_by(pl.lit("tenant").alias("scope"), pl.col("tenant_id").alias("scope_id")).agg(
        pl.len().alias("customers"), pl.sum("orders"), pl.sum("spend_cents").alias("monetary_cents")
    )
    platform = pl.DataFrame(
        {
            "scope": ["platform"],
            "scope_id": ["platform"],
            "orders": [int(df["orders"].sum())],
            "monetary_cents": [int(df["spend_cents"].sum())],
        }
    )
    pii = [c for c in df.columns if any(k in c for k in ("email", "phone", "first_name", "last_name"))]
    scored = df.filter(pl.col("churn_probability").is_not_null())
    return _combine(
        compare(totals.filter(pl.col("scope") == "tenant"), per_tenant, ["scope", "scope_id"], VALUES),
        compare(
            totals.filter(pl.col("scope") == "platform").drop("customers"),
            platform,
            ["scope", "scope_id"],
            ["orders", "monetary_cents"],
        ),
        extra_failures={
            "duplicate_tenant_customers": _duplicates(df, ["tenant_id", "user_id"]),
            "churn_on_several_tenants": scored.height - scored["user_id"].n_unique(),
            "no_shows_above_tickets": df.filter(pl.col("no_shows") > pl.col("tickets_ended")).height,
            "buyers_without_segment": buyers.filter(
                pl.col("segment").is_null()
                & pl.col("segment_as_of").is_not_null()
                & (pl.col("first_purchase_at").dt.date() <= pl.col("segment_as_of"))
            ).height,
            "personal_data_columns": len(pii),
        },
    )
