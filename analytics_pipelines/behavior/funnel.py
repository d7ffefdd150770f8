"""The conversion funnel (sessions -> event page views -> cart -> checkout -> purchase) and the
reconciliation of behavioral purchases with the orders mart.

Sessions: every normalized behavioral document with a session id, per day (a session crossing midnight
UTC counts in both days); a session has the venue, event (its first event id), channel (of its first page view: utm_medium, then the referrer's host; none is
`direct`) and device (of its page views; none is `unknown`) of its first document. Steps are nested: a
session that reached a later step counts for every earlier one (a purchase implies a checkout, a cart and an
event page view, even when the client dropped one of those events). Step conversion = step / previous step,
drop-off = previous step - step; a ratio with a zero denominator is NULL.

Purchases vs orders (docs/behavior.md): the behavioral `purchase` events are client-side and are not the
source of truth for sales. Per tenant, venue and day, `funnel_order_reconciliation` matches their order ids
with the recognized online orders of `fct_orders` (channel web or mobile_app): matched + untracked_orders =
paid_online_orders (orders the tracker never reported: ad blockers, closed tabs), matched +
unmatched_purchase_events = tracked_purchases (events of checkouts whose payment then failed, or of orders
not recognized that day). Box office and partner orders have no sessions.
"""

from __future__ import annotations

import polars as pl

STEPS = ("sessions", "event_page_views", "carts", "checkouts", "purchases")
ONLINE = ("web", "mobile_app")


def sessions(events: pl.DataFrame) -> pl.DataFrame:
    ev = events.filter(pl.col("session_id").is_not_null()).sort("event_time", "doc_id")
    pv = pl.col("event_type") == "page_view"
    # per session and day, so that a day's rows never depend on the range a run covers
    return ev.group_by("session_id", "day").agg(
        tenant_id=pl.col("tenant_id").first(),
        venue_id=pl.col("venue_id").first(),
        event_id=pl.col("event_id").drop_nulls().first(),
        channel=pl.col("channel").filter(pv).first().fill_null("direct"),
        device=pl.col("device").drop_nulls().first().fill_null("unknown"),
        s_view=(pv & pl.col("event_id").is_not_null()).any(),
        s_cart=(pl.col("event_type") == "add_to_cart").any(),
        s_checkout=(pl.col("event_type") == "begin_checkout").any(),
        s_purchase=(pl.col("event_type") == "purchase").any(),
        orders=pl.col("order_id").filter(pl.col("event_type") == "purchase").drop_nulls().n_unique(),
    )


def _ratio(num: str, den: str) -> pl.Expr:
    return pl.when(pl.col(den) > 0).then(pl.col(num) / pl.col(den))


def conversion_funnel(events: pl.DataFrame) -> pl.DataFrame:
    s = sessions(events).with_columns(
        r_purchase=pl.col("s_purchase"), r_checkout=pl.col("s_checkout") | pl.col("s_purchase")
    )
    s = s.with_columns(r_cart=pl.col("s_cart") | pl.col("r_checkout"))
    s = s.with_columns(r_view=pl.col("s_view") | pl.col("r_cart"))
    keys = ["tenant_id", "venue_id", "event_id", "day", "channel", "device"]
    f = s.group_by(keys).agg(
        sessions=pl.len().cast(pl.Int64),
        event_page_views=pl.col("r_view").sum().cast(pl.Int64),
        carts=pl.col("r_cart").sum().cast(pl.Int64),
        checkouts=pl.col("r_checkout").sum().cast(pl.Int64),
        purchases=pl.col("r_purchase").sum().cast(pl.Int64),
        purchase_orders=pl.col("orders").sum().cast(pl.Int64),
    )
    ratios = []
    for prev, step in zip(STEPS, STEPS[1:], strict=False):
        ratios += [
            _ratio(step, prev).alias(f"{step}_rate"),
            (pl.col(prev) - pl.col(step)).alias(f"{step}_dropoff"),
        ]
    return f.with_columns(*ratios, conversion_rate=_ratio("purchases", "sessions")).sort(
        keys, nulls_last=True
    )


def order_reconciliation(events: pl.DataFrame, orders: pl.DataFrame) -> pl.DataFrame:
    """Per tenant, venue and day: behavioral purchases against recognized online orders (module docstring)."""
    keys = ["tenant_id", "venue_id", "day"]
    tracked = (
        events.filter((pl.col("event_type") == "purchase") & pl.col("order_id").is_not_null())
        .group_by("order_id")
        .agg(pl.col(k).first() for k in keys)
    )
    paid = orders.filter(pl.col("channel").is_in(ONLINE)).select(*keys, "order_id")
    both = tracked.join(paid, on="order_id", how="full", coalesce=False, suffix="_o")
    both = both.with_columns(
        **{k: pl.coalesce(pl.col(f"{k}_o"), pl.col(k)) for k in keys},
        in_events=pl.col("order_id").is_not_null(),
        in_orders=pl.col("order_id_o").is_not_null(),
    )
    out = both.group_by(keys).agg(
        tracked_purchases=pl.col("in_events").sum().cast(pl.Int64),
        paid_online_orders=pl.col("in_orders").sum().cast(pl.Int64),
        matched=(pl.col("in_events") & pl.col("in_orders")).sum().cast(pl.Int64),
        untracked_orders=(~pl.col("in_events") & pl.col("in_orders")).sum().cast(pl.Int64),
        unmatched_purchase_events=(pl.col("in_events") & ~pl.col("in_orders")).sum().cast(pl.Int64),
    )
    return out.with_columns(tracking_coverage=_ratio("matched", "paid_online_orders")).sort(keys)
