"""The default dashboard every venue gets (the seed's `GET /dashboard`): revenue, tickets, top events, RFM
segments and the headline KPIs, each a query-layer request over marts the daily jobs build. Declared here as
data; `default_dashboard()` is pure and the API stores its result the first time a venue asks.

The widgets name no date range and carry `options.anchor = "latest"`: their range is the last
`max_range_days` days up to the latest data of their mart in the reader's scope (not up to today, the query
layer's default), so the dashboard shows data whenever the venue has any, and follows new data unedited."""

from __future__ import annotations

NAME = "Venue overview"
DESCRIPTION = "Revenue, tickets, top events, customer segments and KPIs of the venue (built by the platform)."

_WIDGETS: tuple[dict, ...] = (
    {
        "title": "KPIs",
        "type": "number",
        "query": {
            "measures": [
                "venue_analytics.gross_revenue",
                "venue_analytics.net_revenue",
                "venue_analytics.tickets_sold",
                "venue_analytics.orders",
                "venue_analytics.average_order_value",
                "venue_analytics.refund_rate",
            ]
        },
        "x": 0,
        "y": 0,
        "width": 12,
        "height": 2,
        "options": {"format": {"venue_analytics.refund_rate": "percent"}},
    },
    {
        "title": "Revenue per day",
        "type": "line",
        "query": {
            "measures": ["venue_analytics.gross_revenue", "venue_analytics.net_revenue"],
            "time_dimension": {"dimension": "venue_analytics.day", "granularity": "day"},
        },
        "x": 0,
        "y": 2,
        "width": 8,
        "height": 4,
        "options": {"x": "venue_analytics.day.day"},
    },
    {
        "title": "Tickets per week",
        "type": "bar",
        "query": {
            "measures": ["venue_analytics.tickets_sold"],
            "time_dimension": {"dimension": "venue_analytics.day", "granularity": "week"},
        },
        "x": 8,
        "y": 2,
        "width": 4,
        "height": 4,
        "options": {"x": "venue_analytics.day.week"},
    },
    {
        "title": "Top events",
        "type": "table",
        "query": {
            "measures": ["event_performance.gross_revenue", "event_performance.tickets_sold"],
            "dimensions": ["event_performance.event_name"],
            "order": {"event_performance.gross_revenue": "desc"},
            "limit": 10,
        },
        "x": 0,
        "y": 6,
        "width": 6,
        "height": 4,
        "options": {},
    },
    {
        "title": "Customer segments",
        "type": "bar",
        "query": {
            "measures": ["customer_segments.customers"],
            "dimensions": ["customer_segments.segment"],
            "time_dimension": {"dimension": "customer_segments.as_of", "granularity": "day"},
        },
        "x": 6,
        "y": 6,
        "width": 6,
        "height": 4,
        # one bar stack per as-of day: the counts are a daily snapshot, summing days would count twice
        "options": {"x": "customer_segments.as_of.day", "series": "customer_segments.segment", "stack": True},
    },
    {
        "title": "Revenue by channel",
        "type": "pie",
        "query": {
            "measures": ["revenue_by_channel.gross_revenue"],
            "dimensions": ["revenue_by_channel.channel"],
        },
        "x": 0,
        "y": 10,
        "width": 6,
        "height": 4,
        "options": {},
    },
)


def default_dashboard() -> tuple[dict, list[dict]]:
    """The default dashboard's fields and its widgets' fields (fresh copies: callers may change them)."""
    import copy

    dashboard = {"name": NAME, "description": DESCRIPTION, "layout": {"columns": 12}}
    widgets = [copy.deepcopy(w) for w in _WIDGETS]
    for w in widgets:
        w["options"]["anchor"] = "latest"
    return dashboard, widgets
