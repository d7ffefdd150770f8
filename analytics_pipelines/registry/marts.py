"""Registry entries of the facts, the venue/event/revenue marts and the hourly KPI snapshots.

Rules behind them: docs/marts.md. Builders: analytics_pipelines/marts/build.py (day-range builders),
analytics_pipelines/marts/whole.py (whole-table marts, KPI snapshots) and
analytics_pipelines/marts/steps.py (whole-table builders, checks, metadata)."""

from __future__ import annotations

from analytics_pipelines.registry import cubes
from analytics_pipelines.registry.model import Check, Table
from analytics_pipelines.registry.semantic import Cube

B = "analytics_pipelines.marts.build:"
S = "analytics_pipelines.marts.steps:"
RECONCILES = "reconciles_to_staging"
DAILY_CHECK = Check(
    RECONCILES,
    "Per day totals match `control_totals` (re-derived from staging by independent SQL) "
    "to the cent; counts never negative; percentages within range.",
    S + "check_daily",
)
TOTALS = "Per day totals of this mart are compared to `control_totals` (see its check)."


def _daily(
    name: str,
    description: str,
    grain: str,
    keys: tuple[str, ...],
    upstream: tuple[str, ...],
    group: str = "marts",
    venue: str | None = "venue_id",
    serve: bool = True,
    cube: Cube | None = None,
    serve_order: str | None = None,
) -> Table:
    return Table(
        name=name,
        group=group,
        description=description,
        grain=grain,
        keys=keys,
        partitioning="daily",
        partition_column="day",
        upstream=(*upstream, "control_totals"),
        build=B + name,
        checks=(DAILY_CHECK,),
        summary=S + "daily_summary",
        serve=serve,
        venue_column=venue,
        cube=cube,
        serve_order=serve_order,
    )


TABLES: tuple[Table, ...] = (
    Table(
        name="control_totals",
        group="facts",
        partitioning="daily",
        partition_column="day",
        grain="one row per day, tenant and revenue line",
        keys=("day", "tenant_id", "revenue_line"),
        upstream=(
            "stg_orders",
            "stg_order_items",
            "stg_order_refunds",
            "stg_marketplace_transfers",
            "stg_platform_fees",
            "stg_marketplace_listings",
        ),
        build="analytics_pipelines.marts.reconcile:control_totals",
        summary=S + "daily_summary",
        description="Control totals per day and revenue line (orders, tickets, gross/ticket revenue, fees, "
        "refunds, resales, resale fees, listings), re-derived from staging by independent SQL "
        "(sql/checks/), not by the marts' own queries. Every mart's reconciliation compares against "
        "them to the cent.",
        checks=(
            Check(
                "non_negative_measures",
                "No measure is negative (refunds and fees are amounts, not signs). "
                "It is the reference itself, so it is not reconciled against anything else.",
                S + "check_control_non_negative",
                kind="invariants",
            ),
        ),
    ),
    _daily(
        "fct_orders",
        "Recognized primary sales: one row per paid order (confirmed, completed or refunded) on "
        "the UTC day of coalesce(confirmed_at, created_at), with venue, category, channel, tickets "
        "and money in cents.",
        "one row per recognized order",
        ("order_id",),
        ("stg_orders", "stg_order_items", "stg_events"),
        cube=cubes.FCT_ORDERS,
        group="facts",
        serve=True,  # the customer journey (api/customer_routes.py) reads them, venue- and tenant-scoped
        serve_order="user_id",
    ),
    _daily(
        "fct_refunds",
        "Completed refunds on their own date (order_refunds.created_at), attributed to the "
        "order's venue, event, customer and channel.",
        "one row per completed refund",
        ("refund_id",),
        ("stg_order_refunds", "stg_orders", "stg_events"),
        group="facts",
        serve=True,  # the customer journey (api/customer_routes.py) reads them, venue- and tenant-scoped
        serve_order="user_id",
    ),
    _daily(
        "fct_resales",
        "Completed marketplace transfers at completed_at with listing price, face value, markup "
        "and the platform/venue fees.",
        "one row per completed transfer",
        ("transfer_id",),
        ("stg_marketplace_transfers", "stg_marketplace_listings", "stg_platform_fees", "stg_events"),
        group="facts",
        serve=True,  # the customer journey (api/customer_routes.py) reads them, venue- and tenant-scoped
        serve_order="buyer_id",
    ),
    _daily(
        "venue_analytics",
        "One row per venue and day (zero-filled for every venue that exists): tickets, "
        "orders, gross/ticket revenue, refunds, fees, tax, net revenue (cents), unique "
        "customers, events with sales, capacity sold % of the events held that day, average "
        "ticket price, resale.",
        "one row per venue and day",
        ("venue_id", "day"),
        (
            "fct_orders",
            "fct_refunds",
            "fct_resales",
            "stg_venues",
            "stg_events",
            "stg_event_schedules",
            "stg_ticket_types",
        ),
        cube=cubes.VENUE_ANALYTICS,
    ),
    _daily(
        "venue_analytics_hourly",
        "Hours with sales per venue (UTC hour and the venue's local hour): tickets, "
        "orders, revenue, customers.",
        "one row per venue and UTC hour with sales",
        ("venue_id", "hour_utc"),
        ("fct_orders", "stg_venues"),
    ),
    _daily(
        "event_analytics",
        "Per event and day with sales or refunds: tickets, revenue, refunds, capacity, "
        "cumulative tickets sold, sell-through % and days to the event.",
        "one row per event and day with sales or refunds",
        ("event_id", "day"),
        ("fct_orders", "fct_refunds", "stg_events", "stg_event_schedules", "stg_ticket_types"),
        cube=cubes.EVENT_ANALYTICS,
    ),
    _daily(
        "revenue_by_channel",
        "Per venue, day and revenue line (primary:<channel> and resale:<payment method>): "
        "tickets, transactions, gross, refunds, fees, net (cents).",
        "one row per venue, day and revenue line",
        ("venue_id", "day", "revenue_line"),
        ("fct_orders", "fct_refunds", "fct_resales"),
        cube=cubes.REVENUE_BY_CHANNEL,
    ),
    _daily(
        "revenue_by_category",
        "Per venue, day and event category: tickets, orders, gross, refunds, net (cents).",
        "one row per venue, day and category",
        ("venue_id", "day", "category_id"),
        ("fct_orders", "fct_refunds", "stg_event_categories"),
        cube=cubes.REVENUE_BY_CATEGORY,
    ),
    _daily(
        "resale_activity",
        "Per event and day: listings created, completed resales, volume, face value, average "
        "markup % and platform/venue fees (cents).",
        "one row per event and day",
        ("event_id", "day"),
        ("fct_resales", "stg_marketplace_listings", "stg_events"),
    ),
    Table(
        name="sales_metrics",
        group="marts",
        grain="one row per venue, granularity and period",
        keys=("venue_id", "granularity", "period_start"),
        upstream=("fct_orders", "control_totals"),
        build=S + "sales_metrics",
        incremental=True,
        serve=True,
        venue_column="venue_id",
        cube=cubes.SALES_METRICS,
        description="Primary sales per venue at hour (last 14 days), day, week (ISO) and month grain, zero-filled, "
        "with growth % against the previous period (NULL when the previous period is 0). Incremental: "
        "periods from the first day whose facts changed (Dagster's event log); `full_refresh` "
        "recomputes all.",
        checks=(
            Check(
                RECONCILES,
                "Day, week and month grains each add up to staging's all-time primary sales.",
                S + "check_totals",
            ),
        ),
    ),
    Table(
        name="event_performance",
        group="marts",
        grain="one row per event",
        keys=("event_id",),
        upstream=("fct_orders", "fct_refunds", "stg_events", "stg_ticket_types", "control_totals"),
        build=S + "event_performance",
        serve=True,
        venue_column="venue_id",
        cube=cubes.EVENT_PERFORMANCE,
        description="Every event with all-time tickets, gross and net revenue, capacity and utilization %, ranked "
        "per venue by revenue (`is_top_10` = the venue's top events).",
        checks=(
            Check(
                RECONCILES,
                "All-time tickets, gross and net revenue equal staging's; ranks dense per venue.",
                S + "check_totals",
            ),
        ),
    ),
    Table(
        name="venue_seasonality",
        group="marts",
        grain="one row per venue and calendar month",
        keys=("venue_id", "month"),
        upstream=("venue_analytics",),
        build=S + "venue_seasonality",
        serve=True,
        venue_column="venue_id",
        description="The old service's seasonality per venue and calendar month over the last two years: average "
        "tickets, revenue, days with sales, volatility % and Peak/Normal/Off Season by the ratio to the "
        "venue's mean month (> 1.2 Peak, > 0.8 Normal).",
        checks=(
            Check(
                "valid_seasons",
                "Months 1-12, one row per venue and month, season in Peak/Normal/Off Season.",
                S + "check_valid_seasons",
                kind="invariants",
            ),
            Check(
                RECONCILES,
                "Per tenant, venue and month: tickets, net revenue and days with sales re-derived "
                "from fct_orders/fct_refunds over the same window equal the averages times the "
                "years; every venue month of the grid present; season agrees with the ratio.",
                S + "check_seasonality_reconciles",
            ),
        ),
    ),
    Table(
        name="revenue_projections",
        group="marts",
        grain="one row per venue and future day",
        keys=("venue_id", "day"),
        upstream=("venue_analytics",),
        build=S + "revenue_projections",
        produces=("revenue_projection_backtest",),
        kinds=("numpy",),
        serve=True,
        venue_column="venue_id",
        description="Net revenue projected per venue and day for the next 30 days (TT_PROJECTION_DAYS) with 80 % "
        "prediction intervals (weekday profile x recent level).",
        checks=(
            Check(
                "beats_old_rule",
                "Backtest: the model's mean absolute error of the 30-day total is below the "
                "old 'average of the last 30 days x days' rule's.",
                S + "check_beats_old_rule",
                kind="invariants",
            ),
            Check(
                "interval_contains_projection",
                "lower <= projected <= upper on every row.",
                S + "check_intervals",
                kind="invariants",
            ),
            Check(
                "valid_projections",
                "No NULL or NaN, one row per tenant, venue, as-of and horizon day, "
                "horizon days contiguous, projection and upper bound not negative, each "
                "venue under its own tenant.",
                S + "check_projection_invariants",
                kind="invariants",
            ),
        ),
    ),
    Table(
        name="revenue_projection_backtest",
        group="marts",
        produced_by="revenue_projections",
        grain="one row per tenant, model and venue (venue_id NULL: the tenant's venues together)",
        keys=("tenant_id", "model", "venue_id"),
        description="Rolling-origin backtest errors of the projection model and of the old service's rule.",
    ),
    Table(
        name="ticket_type_price_snapshots",
        group="marts",
        partitioning="daily",
        partition_column="day",
        grain="one row per ticket type and snapshot day",
        keys=("ticket_type_id", "day"),
        upstream=("stg_ticket_types",),
        build=S + "ticket_type_price_snapshots",
        kinds=("polars",),
        description="A daily snapshot of every ticket type's current price (ticket_types.price), so that price "
        "changes the platform did not log in ticket_price_history still enter `price_history`. Written "
        "under the run's last day, only when that day is yesterday or later.",
        checks=(
            Check(
                "one_row_per_ticket_type",
                "The snapshot holds every staged ticket type exactly once.",
                S + "check_one_row_per_ticket_type",
                kind="invariants",
            ),
        ),
    ),
    Table(
        name="price_history",
        group="marts",
        grain="one row per ticket type and price interval",
        keys=("ticket_type_id", "valid_from"),
        upstream=("stg_ticket_price_history", "stg_ticket_types", "ticket_type_price_snapshots"),
        build=S + "price_history",
        produces=("event_price_summary",),
        serve=True,
        venue_column="venue_id",
        description="Every price of every ticket type as validity intervals [valid_from, valid_to) from "
        "ticket_price_history plus the daily snapshots; plus one point row (valid_from = valid_to = the "
        "approval) per approved pricing recommendation (source 'recommendation', change_id; applied_at and "
        "applied_change_id once the platform's ticket_price_history shows it applied).",
        checks=(
            Check(
                RECONCILES,
                "The price in effect at every known price point (each logged change, each "
                "snapshot, each type's initial price) read back from the intervals equals it to the "
                "cent; one open interval per type, at today's price; intervals chained; tenant, "
                "venue and event of the type's event; every approved recommendation (ops store) once.",
                S + "check_price_history",
            ),
            Check(
                "event_price_summary_reconciles",
                "event_price_summary: current min/max/avg from the staged "
                "ticket types, all-time lowest/highest and the number of "
                "changes from price_history, exactly per event.",
                S + "check_event_price_summary",
            ),
        ),
    ),
    Table(
        name="event_price_summary",
        group="marts",
        produced_by="price_history",
        grain="one row per event",
        keys=("event_id",),
        venue_column="venue_id",
        description="Current price range and number of price changes per event.",
    ),
    Table(
        name="no_shows",
        group="marts",
        grain="one row per ended event",
        keys=("event_id",),
        upstream=("stg_tickets", "stg_ticket_scans", "stg_events", "stg_event_schedules"),
        build=S + "no_shows",
        incremental=True,
        serve=True,
        venue_column="venue_id",
        description="Per ended event (not cancelled or postponed): sold tickets, tickets with a valid scan, "
        "no-shows and the no-show rate %. Incremental: events that ended more than 7 days ago keep "
        "their row; `full_refresh` recomputes all.",
        checks=(
            Check(
                RECONCILES,
                "The recomputed events' sold tickets and no-shows equal an independent count over "
                "staging; no negative counts, no-shows never above sold.",
                S + "check_no_shows",
            ),
        ),
    ),
    Table(
        name="kpi_snapshots",
        group="kpis",
        partitioning="hourly",
        partition_column="hour_key",
        grain="one row per hour, tenant, venue (NULL: the tenant) and metric",
        keys=("hour_key", "tenant_id", "venue_id", "metric"),
        upstream=("fct_orders", "fct_refunds", "fct_resales", "stg_venues", "stg_events", "stg_ticket_types"),
        build=S + "kpi_snapshots",
        summary=S + "kpi_summary",
        serve=True,
        venue_column="venue_id",
        cube=cubes.KPI_SNAPSHOTS,
        description="Business KPIs per hour per tenant and venue, long form (metric, value): venues total/active, "
        "events published/on sale, tickets sold, revenue, refunds and refund rate, resale volume over "
        "the last 24 h, hourly revenue and its change, hourly orders and refunds (the KPI anomaly detector's "
        "series). Kept as history: one partition per hour.",
        checks=(
            Check(
                RECONCILES,
                "Tenant tickets_sold_24h and gross_revenue_24h_cents equal an independent staging "
                "count over the same 24 h.",
                S + "check_kpis",
            ),
        ),
    ),
)
