"""The query layer's declarations of the customer and behavior marts (RFM scores, segments, the conversion
funnel); the sales marts' are in cubes.py, whose helpers these use."""

from __future__ import annotations

from analytics_pipelines.customers.rfm import SEGMENTS  # the segments the RFM step assigns
from analytics_pipelines.registry.cubes import (
    DAY_UP,
    EVENT,
    TO_EVENT,
    VENUE,
    cents,
    day_dimension,
    ratio,
    total,
)
from analytics_pipelines.registry.semantic import Cube, Dimension, Measure

RFM_SCORES = Cube(
    columns=(
        "as_of",
        "scope",
        "scope_id",
        "tenant_id",
        "venue_id",
        "user_id",
        "first_purchase_at",
        "last_purchase_at",
        "recency_days",
        "frequency",
        "monetary_cents",
        "tickets",
        "currency",
        "r_score",
        "f_score",
        "m_score",
        "rfm_code",
        "rfm_total",
        "segment",
    ),
    measures=(
        Measure("customers", "count_distinct", "user_id", unit="count", description="Distinct customers."),
        Measure("customer_venues", "count", unit="count", description="Customer-venue rows."),
        total("orders", "frequency", "Orders of the customers (per venue)."),
        cents("monetary", "monetary_cents", "What the customers paid (per venue)."),
        Measure(
            "avg_recency_days", "avg", "recency_days", unit="days", description="Mean days since a purchase."
        ),
        ratio(
            "monetary_per_customer_venue",
            "monetary / customer_venues",
            "cents",
            "Monetary per customer and venue, after aggregation.",
        ),
    ),
    dimensions=(
        VENUE,
        Dimension(
            "as_of", "as_of", "date", DAY_UP, description="The RFM as-of day (do not sum across days)."
        ),
        Dimension("segment", "segment", values=SEGMENTS, description="The RFM segment."),
        Dimension("rfm_code", "rfm_code", pattern=r"^[1-5]{3}$", description="R, F and M scores ('545')."),
        Dimension("r_score", "r_score", "number", description="Recency score 1-5."),
    ),
    time="as_of",
    as_of="as_of",
    fixed=(("scope", "venue"),),
    description="Per-venue RFM scores of customers, daily as-of history.",
)

CUSTOMER_SEGMENTS = Cube(
    columns=(
        "as_of",
        "scope",
        "scope_id",
        "tenant_id",
        "venue_id",
        "segment",
        "customers",
        "revenue_cents",
        "orders",
        "avg_order_value_cents",
        "avg_purchase_frequency",
        "avg_clv_12m_cents",
        "customers_with_clv",
        "customers_pct",
        "revenue_pct",
    ),
    measures=(
        total("customers", "customers", "Customers of the venues (a customer of two venues counts twice)."),
        cents("revenue", "revenue_cents", "What the segment's customers paid."),
        total("orders", "orders", "Orders."),
        ratio("average_order_value", "revenue / orders", "cents", "Revenue / orders, after aggregation."),
        ratio("orders_per_customer", "orders / customers", "ratio", "Orders / customers, after aggregation."),
    ),
    dimensions=(
        VENUE,
        Dimension("segment", "segment", values=SEGMENTS, description="The RFM segment."),
        Dimension("as_of", "as_of", "date", DAY_UP, description="The segments' as-of day."),
    ),
    as_of="as_of",
    fixed=(("scope", "venue"),),
    description="Per-venue RFM segments at the latest as-of day.",
)

CONVERSION_FUNNEL = Cube(
    columns=(
        "tenant_id",
        "venue_id",
        "event_id",
        "day",
        "channel",
        "device",
        "sessions",
        "event_page_views",
        "carts",
        "checkouts",
        "purchases",
    ),
    measures=(
        total("sessions", "sessions", "Sessions."),
        total("event_page_views", "event_page_views", "Sessions that viewed an event page."),
        total("carts", "carts", "Sessions that reached the cart."),
        total("checkouts", "checkouts", "Sessions that reached checkout."),
        total("purchases", "purchases", "Sessions with a purchase."),
        ratio(
            "conversion_rate",
            "purchases / sessions",
            "ratio",
            "Purchases / sessions, after aggregation (not an average of the rows' rates).",
        ),
    ),
    dimensions=(
        VENUE,
        EVENT,
        day_dimension(what="The UTC day of the sessions."),
        Dimension("channel", "channel", pattern=r"^[a-z_]{1,40}$", description="Acquisition channel."),
        Dimension("device", "device", pattern=r"^[a-z_]{1,40}$", description="Device class."),
    ),
    joins=(TO_EVENT,),
    time="day",
    as_of="day",
    description="Web/app sessions down the purchase funnel per venue, event, day, channel and device.",
)
