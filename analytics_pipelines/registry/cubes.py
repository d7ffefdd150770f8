"""The query layer's declarations: measures, dimensions and joins of the main served marts (registry/semantic.py
says what each field means; their registry entries carry them as `cube=`). Member names are `<mart>.<name>`
in a query. Money is integer cents of the tenant's currency; ratios are formulas over aggregates."""

from __future__ import annotations

from analytics_pipelines.registry.semantic import Cube, Dimension, Join, Measure

DAY_UP = ("day", "week", "month", "quarter", "year")
HOUR_UP = ("hour", *DAY_UP)
CHANNELS = ("web", "mobile_app", "box_office", "partner", "unknown")
KPI_METRICS = (
    "venues_total",
    "venues_active",
    "events_published",
    "events_on_sale",
    "tickets_sold_24h",
    "gross_revenue_24h_cents",
    "refunds_24h_cents",
    "refund_rate_24h_pct",
    "resale_volume_24h_cents",
    "hourly_revenue_cents",
    "hourly_revenue_change_pct",
    "hourly_orders",
    "hourly_refunds",
)
VENUE = Dimension("venue", "venue_id", "uuid", description="The venue (its id).")
EVENT = Dimension("event", "event_id", "uuid", description="The event (its id).")
TO_EVENT = Join("event_performance", ("event_id",))


def day_dimension(column: str = "day", what: str = "The UTC day of the sale.") -> Dimension:
    return Dimension(column, column, "date", DAY_UP, description=what)


def cents(name: str, column: str, what: str) -> Measure:
    return Measure(name, "sum", column, unit="cents", description=what)


def total(name: str, column: str, what: str, unit: str = "count") -> Measure:
    return Measure(name, "sum", column, unit=unit, description=what)


def ratio(name: str, formula: str, unit: str, what: str) -> Measure:
    return Measure(name, "formula", formula=formula, unit=unit, description=what)


AOV = "Average order value: gross revenue / orders, after aggregation."
REFUND_RATE = "Refunds as % of gross revenue: 100 * refunds / gross revenue, after aggregation."
MONEY = (
    cents("gross_revenue", "gross_revenue_cents", "What buyers paid (tickets - discount + fees + tax)."),
    cents("refunds", "refunds_cents", "Completed refunds on their own day."),
    cents("net_revenue", "net_revenue_cents", "Gross revenue - refunds."),
)

VENUE_ANALYTICS = Cube(
    columns=(
        "tenant_id",
        "venue_id",
        "day",
        "tickets_sold",
        "orders",
        "gross_revenue_cents",
        "ticket_revenue_cents",
        "refunds_cents",
        "fees_cents",
        "tax_cents",
        "net_revenue_cents",
        "unique_customers",
        "events_active",
        "capacity_sold_pct",
        "avg_ticket_price_cents",
        "resale_sales",
        "resale_volume_cents",
    ),
    measures=(
        total("tickets_sold", "tickets_sold", "Tickets of recognized primary sales."),
        total("orders", "orders", "Recognized primary orders."),
        *MONEY,
        cents("ticket_revenue", "ticket_revenue_cents", "Ticket subtotal - discount."),
        cents("fees", "fees_cents", "Platform + processing fees."),
        cents("tax", "tax_cents", "Tax."),
        total("resale_sales", "resale_sales", "Completed marketplace resales."),
        cents("resale_volume", "resale_volume_cents", "Resale sale volume."),
        Measure("days", "count", unit="count", description="Venue days (rows), zero-sale days included."),
        ratio("average_order_value", "gross_revenue / orders", "cents", AOV),
        ratio(
            "average_ticket_price",
            "ticket_revenue / tickets_sold",
            "cents",
            "Ticket revenue / tickets sold, after aggregation.",
        ),
        ratio("refund_rate", "100 * refunds / gross_revenue", "percent", REFUND_RATE),
    ),
    dimensions=(VENUE, day_dimension()),
    time="day",
    as_of="day",
    description="Daily sales per venue.",
)

REVENUE_BY_CHANNEL = Cube(
    columns=(
        "tenant_id",
        "venue_id",
        "day",
        "revenue_line",
        "source",
        "channel",
        "tickets",
        "transactions",
        "gross_revenue_cents",
        "refunds_cents",
        "fees_cents",
        "net_revenue_cents",
    ),
    measures=(
        total("tickets", "tickets", "Tickets (primary) or resold tickets (resale)."),
        total("transactions", "transactions", "Orders (primary) or transfers (resale)."),
        *MONEY,
        cents("fees", "fees_cents", "Fees."),
        ratio(
            "average_transaction_value",
            "gross_revenue / transactions",
            "cents",
            "Gross revenue / transactions, after aggregation.",
        ),
        ratio("refund_rate", "100 * refunds / gross_revenue", "percent", REFUND_RATE),
    ),
    dimensions=(
        VENUE,
        day_dimension(),
        Dimension(
            "revenue_line",
            "revenue_line",
            pattern=r"^[a-z_:]{1,50}$",
            description="primary:<channel> or resale:<payment method>.",
        ),
        Dimension("source", "source", values=("primary", "resale"), description="Primary sale or resale."),
        Dimension("channel", "channel", pattern=r"^[a-z_]{1,40}$", description="Sales channel or method."),
    ),
    time="day",
    as_of="day",
    description="Daily revenue per venue and revenue line.",
)

REVENUE_BY_CATEGORY = Cube(
    columns=(
        "tenant_id",
        "venue_id",
        "day",
        "category_id",
        "category_name",
        "tickets",
        "orders",
        "gross_revenue_cents",
        "refunds_cents",
        "net_revenue_cents",
    ),
    measures=(
        total("tickets", "tickets", "Tickets sold."),
        total("orders", "orders", "Orders."),
        *MONEY,
        ratio("average_order_value", "gross_revenue / orders", "cents", AOV),
        ratio("refund_rate", "100 * refunds / gross_revenue", "percent", REFUND_RATE),
    ),
    dimensions=(
        VENUE,
        day_dimension(),
        Dimension("category", "category_id", "uuid", description="The event category (its id)."),
        Dimension("category_name", "category_name", description="The event category's name."),
    ),
    time="day",
    as_of="day",
    description="Daily revenue per venue and event category.",
)

EVENT_ANALYTICS = Cube(
    columns=(
        "tenant_id",
        "venue_id",
        "event_id",
        "day",
        "tickets_sold",
        "orders",
        "gross_revenue_cents",
        "refunds_cents",
        "net_revenue_cents",
        "capacity",
        "cumulative_tickets_sold",
        "sell_through_pct",
        "days_to_event",
    ),
    measures=(
        total("tickets_sold", "tickets_sold", "Tickets sold that day."),
        total("orders", "orders", "Orders that day."),
        *MONEY,
        ratio("average_order_value", "gross_revenue / orders", "cents", AOV),
        ratio("refund_rate", "100 * refunds / gross_revenue", "percent", REFUND_RATE),
    ),
    dimensions=(
        VENUE,
        EVENT,
        day_dimension(),
        Dimension("days_to_event", "days_to_event", "number", description="Days from the sale to the event."),
    ),
    joins=(TO_EVENT,),
    time="day",
    as_of="day",
    description="Daily sales per event (joins event_performance for the event's name, category and status).",
)

EVENT_PERFORMANCE = Cube(
    columns=(
        "tenant_id",
        "venue_id",
        "event_id",
        "event_name",
        "category_name",
        "starts_at",
        "status",
        "tickets_sold",
        "gross_revenue_cents",
        "net_revenue_cents",
        "capacity",
        "capacity_utilization_pct",
        "revenue_rank",
        "is_top_10",
    ),
    measures=(
        Measure("events", "count", unit="count", description="Events."),
        total("tickets_sold", "tickets_sold", "All-time tickets sold."),
        cents("gross_revenue", "gross_revenue_cents", "All-time gross revenue."),
        cents("net_revenue", "net_revenue_cents", "All-time net revenue."),
        total("capacity", "capacity", "Capacity (seats of the events' ticket types)."),
        ratio(
            "capacity_utilization",
            "100 * tickets_sold / capacity",
            "percent",
            "Tickets sold as % of capacity, over the events together (not an average of per-event %).",
        ),
        ratio(
            "revenue_per_ticket",
            "gross_revenue / tickets_sold",
            "cents",
            "Gross revenue / tickets sold, after aggregation.",
        ),
    ),
    dimensions=(
        VENUE,
        EVENT,
        Dimension("event_name", "event_name", description="The event's name."),
        Dimension("category_name", "category_name", description="The event's category."),
        Dimension("status", "status", pattern=r"^[a-z_]{1,40}$", description="The event's status."),
        Dimension("starts_at", "starts_at", "timestamp", HOUR_UP, description="The event's start."),
        Dimension("is_top_10", "is_top_10", "boolean", description="Among its venue's 10 best by revenue."),
    ),
    description="Every event with its all-time sales.",
)

KPI_SNAPSHOTS = Cube(
    columns=("hour_key", "snapshot_hour", "tenant_id", "venue_id", "metric", "value"),
    measures=(
        Measure("snapshots", "count", unit="count", description="Snapshot rows."),
        Measure(
            "value_sum", "sum", "value", unit="metric", description="Sum of the value (summable metrics)."
        ),
        Measure("value_avg", "avg", "value", unit="metric", description="Average value over the snapshots."),
        Measure("value_min", "min", "value", unit="metric", description="Lowest value."),
        Measure("value_max", "max", "value", unit="metric", description="Highest value."),
        Measure(
            "hourly_revenue",
            "sum",
            "value",
            unit="cents",
            description="Revenue recognized in the snapshots' hours (metric hourly_revenue_cents).",
            when=(("metric", "hourly_revenue_cents"),),
        ),
    ),
    dimensions=(
        Dimension("venue", "venue_id", "uuid", description="The venue; NULL = the tenant-wide snapshot."),
        Dimension("metric", "metric", values=KPI_METRICS, description="The KPI."),
        Dimension("snapshot_hour", "snapshot_hour", "timestamp", HOUR_UP, description="The snapshot's hour."),
    ),
    time="snapshot_hour",
    as_of="snapshot_hour",
    description="Hourly KPI snapshots (long form: metric, value).",
)

SALES_METRICS = Cube(
    columns=(
        "tenant_id",
        "venue_id",
        "granularity",
        "period_start",
        "tickets_sold",
        "orders",
        "gross_revenue_cents",
        "unique_customers",
        "avg_ticket_price_cents",
        "tickets_growth_pct",
        "revenue_growth_pct",
    ),
    measures=(
        total("tickets_sold", "tickets_sold", "Tickets sold."),
        total("orders", "orders", "Orders."),
        cents("gross_revenue", "gross_revenue_cents", "Gross revenue."),
        total(
            "unique_customers",
            "unique_customers",
            "Σ of each venue's distinct customers of the period: a customer of two venues counts twice, and "
            "the periods' counts do not add up to a longer period's (use customer_rfm_scores.customers).",
        ),
        ratio("average_order_value", "gross_revenue / orders", "cents", AOV),
        ratio(
            "average_ticket_price",
            "gross_revenue / tickets_sold",
            "cents",
            "Gross revenue / tickets sold, after aggregation.",
        ),
    ),
    dimensions=(
        VENUE,
        Dimension(
            "period_start",
            "period_start",
            "timestamp",
            HOUR_UP,
            description="The period (the mart's rows of the requested grain; hours: last 14 days only).",
        ),
    ),
    time="period_start",
    as_of="period_start",
    grain_column="granularity",
    grains=(
        ("hour", "hour"),
        ("day", "day"),
        ("week", "week"),
        ("month", "month"),
        ("quarter", "month"),
        ("year", "month"),
        ("", "day"),
    ),
    description="Primary sales per venue and period; the rows of the grain matching the request are read.",
)

FCT_ORDERS = Cube(
    columns=(
        "order_id",
        "tenant_id",
        "venue_id",
        "event_id",
        "category_id",
        "user_id",
        "status",
        "channel",
        "payment_method",
        "revenue_line",
        "recognized_at",
        "day",
        "tickets",
        "ticket_revenue_cents",
        "platform_fee_cents",
        "processing_fee_cents",
        "fees_cents",
        "tax_cents",
        "discount_cents",
        "gross_revenue_cents",
        "currency",
    ),
    measures=(
        Measure("orders", "count", unit="count", description="Recognized primary orders."),
        Measure("customers", "count_distinct", "user_id", unit="count", description="Distinct buyers."),
        total("tickets", "tickets", "Tickets."),
        cents("gross_revenue", "gross_revenue_cents", "What buyers paid."),
        cents("ticket_revenue", "ticket_revenue_cents", "Ticket subtotal - discount."),
        cents("fees", "fees_cents", "Platform + processing fees."),
        cents("discounts", "discount_cents", "Discounts."),
        ratio("average_order_value", "gross_revenue / orders", "cents", AOV),
        ratio("tickets_per_order", "tickets / orders", "ratio", "Tickets / orders, after aggregation."),
        ratio("orders_per_customer", "orders / customers", "ratio", "Orders / distinct buyers."),
    ),
    dimensions=(
        VENUE,
        EVENT,
        Dimension("category", "category_id", "uuid", description="The event category (its id)."),
        Dimension("channel", "channel", pattern=r"^[a-z_]{1,40}$", description="Sales channel."),
        Dimension(
            "payment_method", "payment_method", pattern=r"^[a-z_]{1,40}$", description="Payment method."
        ),
        Dimension(
            "status",
            "status",
            values=("confirmed", "completed", "refunded"),
            description="The order's status.",
        ),
        day_dimension(),
        Dimension(
            "recognized_at", "recognized_at", "timestamp", HOUR_UP, description="When it was recognized."
        ),
    ),
    joins=(TO_EVENT,),
    time="day",
    as_of="day",
    description="Recognized primary orders, one row each (the facts under the daily marts).",
)
