"""`customer_email_keys`: how the API finds a customer by e-mail without the warehouse holding any address.

Landing replaces users.email by its keyed pseudonym (analytics_pipelines/privacy.py, TT_LANDING_PSEUDONYM_KEY)
and staging drops it, so the pseudonym exists only in `raw_users`, which the API does not serve. This table
carries it, beside the user id, for every (tenant, customer) row of `customer_360`: a person who bought from
two tenants is findable in both, each tenant seeing its own row only. The API computes
`privacy.pseudonym_for_email(landing key, typed address)` and looks it up here (`/v1/customers/search`).
The pseudonym is not reversible without the landing key; the API never returns it."""

from __future__ import annotations

import re

import polars as pl

from analytics_pipelines.marts.reconcile import CheckOutcome
from analytics_pipelines.privacy import KEY_ID_COLUMN

COLUMNS = ("tenant_id", "user_id", "email_pseudonym", KEY_ID_COLUMN)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def email_keys(users: pl.DataFrame, customers: pl.DataFrame) -> pl.DataFrame:
    """One row per (tenant_id, user_id) of `customers` (customer_360's keys) whose user has a keyed e-mail in
    `users` (raw_users: id, email, pseudonym_key_id). Sorted by tenant and user."""
    u = (
        users.select(
            pl.col("id").cast(pl.String).alias("user_id"),
            pl.col("email").alias("email_pseudonym"),
            pl.col(KEY_ID_COLUMN),
        )
        .filter(pl.col("email_pseudonym").is_not_null() & (pl.col("email_pseudonym") != ""))
        .unique("user_id", keep="last", maintain_order=True)
    )
    c = customers.select(pl.col("tenant_id").cast(pl.String), pl.col("user_id").cast(pl.String)).unique()
    return c.join(u, on="user_id", how="inner").select(COLUMNS).sort("tenant_id", "user_id")


def customer_email_keys(ctx) -> pl.DataFrame:
    wh = ctx.wh
    users = wh.read(f"SELECT id, email, {KEY_ID_COLUMN} FROM raw_users")
    customers = wh.read("SELECT tenant_id, user_id FROM customer_360 WHERE user_id IS NOT NULL")
    return email_keys(users, customers)


def check_email_keys_frame(df: pl.DataFrame, customers: pl.DataFrame) -> CheckOutcome:
    """One row per (tenant, customer), each a customer_360 row; every pseudonym 64 lower-case hex (a keyed
    HMAC, never an address)."""
    dup = df.height - df.select("tenant_id", "user_id").unique().height
    bad = int((~df["email_pseudonym"].str.contains(_HEX64.pattern)).fill_null(True).sum())
    stray = df.join(customers.select("tenant_id", "user_id"), on=["tenant_id", "user_id"], how="anti").height
    return CheckOutcome(
        dup == 0 and bad == 0 and stray == 0,
        {"rows": df.height, "duplicates": dup, "not_a_pseudonym": bad, "not_in_customer_360": stray},
    )


def check_email_keys(ctx, built) -> CheckOutcome:
    frame = built.frames["customer_email_keys"]
    customers = ctx.wh.read("SELECT tenant_id, user_id FROM customer_360 WHERE user_id IS NOT NULL")
    return check_email_keys_frame(frame, customers)
