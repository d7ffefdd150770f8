"""The query compiler as a pure function (no API, no database): scope and values become parameters, the
default date range ends at the given day, the grain of sales_metrics follows the granularity, ratios are
computed after aggregation, joins carry the tenant; errors name every member at fault."""

from __future__ import annotations

from datetime import date

import pytest

from analytics_pipelines.query.compile import Limits, QueryError, Scope, compile_query
from analytics_pipelines.query.model import QueryRequest
from analytics_pipelines.registry import default_registry

T, V = "11111111-1111-4111-8111-111111111111", "aaaaaaaa-0000-4000-8000-000000000001"
VENUE_SCOPE = Scope(T, V)


def _compile(body: dict, scope: Scope = VENUE_SCOPE, **kw):
    registry = default_registry()
    tables = {t.name: t for t in registry.tables if t.cube is not None}
    return compile_query(
        QueryRequest.model_validate(body), registry.cubes(), tables, scope, today=date(2026, 10, 31), **kw
    )


def test_scope_and_values_are_parameters_and_the_default_range_ends_today():
    q = _compile(
        {
            "measures": ["revenue_by_category.average_order_value"],
            "dimensions": ["revenue_by_category.category_name"],
            "filters": [
                {
                    "member": "revenue_by_category.category_name",
                    "operator": "equals",
                    "values": ["Rock & Roll"],
                }
            ],
        }
    )
    assert "Rock" not in q.sql and T not in q.sql and V not in q.sql
    assert q.params[:2] == [T, V] and "Rock & Roll" in q.params
    assert "t0.tenant_id = %s AND t0.venue_id = %s" in q.sql
    assert q.date_range == (date(2025, 10, 31), date(2026, 10, 31))  # 366 days up to today
    assert (
        "CAST(sum(t0.gross_revenue_cents) AS FLOAT8) / NULLIF(sum(t0.orders), 0)" in q.sql
    )  # after aggregation
    assert q.tables == ["revenue_by_category"] and q.as_of[0][0] == "revenue_by_category"
    whole = _compile({"measures": ["venue_analytics.orders"]}, Scope(T))
    assert "venue_id" not in whole.sql and whole.params[0] == T


@pytest.mark.parametrize(
    "granularity,grain",
    [("hour", "hour"), ("week", "week"), ("quarter", "month"), ("year", "month"), (None, "day")],
)
def test_sales_metrics_reads_the_rows_of_the_requested_grain(granularity, grain):
    td = {
        "dimension": "sales_metrics.period_start",
        "granularity": granularity,
        "date_range": ["2026-10-01", "2026-10-31"],
    }
    q = _compile({"measures": ["sales_metrics.orders"], "time_dimension": td})
    assert "t0.granularity = %s" in q.sql and grain in q.params


def test_a_joined_dimension_joins_on_the_tenant_and_the_declared_key():
    q = _compile({"measures": ["event_analytics.orders"], "dimensions": ["event_performance.status"]})
    assert (
        "LEFT JOIN event_performance t1 ON t1.tenant_id = t0.tenant_id AND t1.event_id = t0.event_id" in q.sql
    )
    assert q.tables == ["event_analytics", "event_performance"]


def test_errors_name_every_member_at_fault_and_the_bounds_are_configurable():
    with pytest.raises(QueryError) as exc:
        _compile(
            {
                "measures": ["venue_analytics.nope", "venue_analytics.orders"],
                "dimensions": ["conversion_funnel.device"],
                "time_dimension": {"dimension": "venue_analytics.day", "granularity": "hour"},
            }
        )
    assert [(e["field"], e["member"]) for e in exc.value.errors] == [
        ("measures.0", "venue_analytics.nope"),
        ("time_dimension.granularity", "venue_analytics.day"),
        ("dimensions.0", "conversion_funnel.device"),
    ]
    td = {"dimension": "venue_analytics.day", "date_range": ["2026-10-01", "2026-10-31"]}
    with pytest.raises(QueryError, match="at most 30"):
        _compile({"measures": ["venue_analytics.orders"], "time_dimension": td}, limits=Limits(max_days=30))
    with pytest.raises(QueryError, match="at most 5 rows"):
        _compile({"measures": ["venue_analytics.orders"], "limit": 6}, limits=Limits(max_rows=5))
