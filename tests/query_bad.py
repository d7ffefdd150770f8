"""Bad query-layer requests (tests/test_query_layer.py): (the field at fault, the request, what the 422
problem's detail says), and injection payloads placed in every field of a request."""

from __future__ import annotations

from query_cases import R


def bodies_with(payload: str) -> list[tuple[str, dict]]:
    """(the field at fault, a request with `payload` in it), for every field of a request."""
    td = {"dimension": "venue_analytics.day", "granularity": "day", "date_range": R}
    base = {"measures": ["venue_analytics.gross_revenue"], "time_dimension": td}
    return [
        ("measures.0", {**base, "measures": [payload]}),
        ("measures.1", {**base, "measures": ["venue_analytics.gross_revenue", "venue_analytics." + payload]}),
        ("dimensions.0", {**base, "dimensions": [payload]}),
        ("time_dimension.dimension", {**base, "time_dimension": {**td, "dimension": payload}}),
        ("time_dimension.granularity", {**base, "time_dimension": {**td, "granularity": payload[:20]}}),
        (
            "time_dimension.date_range.0",
            {**base, "time_dimension": {**td, "date_range": [payload, "2026-10-31"]}},
        ),
        (
            "filters.0.member",
            {**base, "filters": [{"member": payload, "operator": "equals", "values": ["x"]}]},
        ),
        (
            "filters.0.operator",
            {**base, "filters": [{"member": "venue_analytics.venue", "operator": payload, "values": []}]},
        ),
        (
            "filters.0.values.0",
            {
                **base,
                "filters": [{"member": "venue_analytics.venue", "operator": "equals", "values": [payload]}],
            },
        ),
        (
            "filters.0.values.0",
            {
                "measures": ["revenue_by_category.orders"],
                "filters": [
                    {"member": "revenue_by_category.category_name", "operator": "equals", "values": [payload]}
                ],
            },
        ),
        (
            "filters.0.values.0",
            {
                **base,
                "filters": [
                    {"member": "venue_analytics.gross_revenue", "operator": "gt", "values": [payload]}
                ],
            },
        ),
        ("order", {**base, "order": {payload: "asc"}}),
        ("order", {**base, "order": {"venue_analytics.gross_revenue": payload}}),
        ("limit", {**base, "limit": payload}),
        ("offset", {**base, "offset": payload}),
    ]


PAYLOADS = (
    "'; DROP TABLE venue_analytics; --",
    "1 OR 1=1",
    '" OR ""="',
    "venue_analytics.gross_revenue) FROM venue_analytics; --",
    "x' UNION SELECT tenant_id FROM venue_analytics --",
)
BAD = [
    ("measures.0", {"measures": ["venue_analytics.nope"]}, "unknown measure"),
    ("measures.0", {"measures": ["nowhere.gross_revenue"]}, "unknown member"),
    ("measures.0", {"measures": ["venue_analytics.day"]}, "unknown measure"),
    ("measures.1", {"measures": ["venue_analytics.orders", "revenue_by_channel.tickets"]}, "fan them out"),
    (
        "dimensions.0",
        {"measures": ["venue_analytics.orders"], "dimensions": ["revenue_by_channel.channel"]},
        "may not join",
    ),
    (
        "dimensions.0",
        {"measures": ["event_analytics.orders"], "dimensions": ["event_analytics.nope"]},
        "unknown dimension",
    ),
    (
        "time_dimension.granularity",
        {
            "measures": ["venue_analytics.orders"],
            "time_dimension": {"dimension": "venue_analytics.day", "granularity": "hour"},
        },
        "not supported",
    ),
    (
        "time_dimension.granularity",
        {
            "measures": ["venue_analytics.orders"],
            "time_dimension": {"dimension": "venue_analytics.day", "granularity": "minute"},
        },
        "not supported",
    ),
    (
        "time_dimension.dimension",
        {
            "measures": ["venue_analytics.orders"],
            "time_dimension": {"dimension": "venue_analytics.venue", "granularity": "day"},
        },
        "not a time dimension",
    ),
    (
        "time_dimension.date_range",
        {
            "measures": ["venue_analytics.orders"],
            "time_dimension": {
                "dimension": "venue_analytics.day",
                "date_range": ["2025-01-01", "2026-10-31"],
            },
        },
        "at most 366",
    ),
    (
        "time_dimension.date_range",
        {
            "measures": ["venue_analytics.orders"],
            "time_dimension": {
                "dimension": "venue_analytics.day",
                "date_range": ["2026-10-31", "2026-10-01"],
            },
        },
        "after it ends",
    ),
    (
        "filters.0.values",
        {
            "measures": ["venue_analytics.orders"],
            "filters": [
                {
                    "member": "venue_analytics.day",
                    "operator": "inDateRange",
                    "values": ["2020-01-01", "2026-10-31"],
                }
            ],
        },
        "at most 366",
    ),
    (
        "filters.0.operator",
        {
            "measures": ["venue_analytics.orders"],
            "filters": [{"member": "venue_analytics.orders", "operator": "contains", "values": [1]}],
        },
        "does not apply",
    ),
    (
        "filters.0.values.0",
        {
            "measures": ["kpi_snapshots.snapshots"],
            "filters": [{"member": "kpi_snapshots.metric", "operator": "equals", "values": ["passwords"]}],
        },
        "is not one of",
    ),
    (
        "filters.0.member",
        {
            "measures": ["venue_analytics.orders"],
            "filters": [{"member": "revenue_by_channel.channel", "operator": "equals", "values": ["web"]}],
        },
        "may not join",
    ),
    ("limit", {"measures": ["venue_analytics.orders"], "limit": 10_001}, "at most 10000"),
    (
        "order.0",
        {"measures": ["venue_analytics.orders"], "order": {"venue_analytics.gross_revenue": "desc"}},
        "not a measure or dimension of this query",
    ),
    ("measures", {}, "at least one"),
    (
        "measures",
        {"filters": [{"member": "venue_analytics.orders", "operator": "gt", "values": [1]}]},
        "at least one",
    ),
    ("measures.1", {"measures": ["venue_analytics.orders", "venue_analytics.orders"]}, "listed twice"),
    (
        "filters.0.values.0",
        {
            "measures": ["event_analytics.orders"],
            "filters": [{"member": "event_analytics.days_to_event", "operator": "gt", "values": ["nan"]}],
        },
        "finite",
    ),
    (
        "filters.0.values.0",
        {
            "measures": ["venue_analytics.orders"],
            "filters": [{"member": "venue_analytics.orders", "operator": "gt", "values": [2**70]}],
        },
        "finite",
    ),
]
