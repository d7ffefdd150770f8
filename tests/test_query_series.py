"""The series arithmetic of the /v1/metrics read routes, pure (analytics_pipelines/query/series.py): calendar
periods, gap values, formula evaluation, moving values (mean, ratio of sums, mean of non-null) and the
weekday-aligned comparison, each against a hand computation."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from analytics_pipelines.query import series
from analytics_pipelines.registry.cubes import VENUE_ANALYTICS as VA


def _d(s: str) -> datetime:
    return datetime.fromisoformat(s).replace(tzinfo=UTC)


def test_periods_cover_the_range_at_every_granularity():
    first, last = date(2026, 2, 27), date(2026, 8, 3)
    assert series.periods(first, last, "quarter") == [_d("2026-01-01"), _d("2026-04-01"), _d("2026-07-01")]
    assert series.periods(first, last, "year") == [_d("2026-01-01")]
    months = series.periods(first, last, "month")
    assert months[0] == _d("2026-02-01") and months[-1] == _d("2026-08-01") and len(months) == 7
    weeks = series.periods(date(2026, 10, 12), date(2026, 10, 31), "week")
    assert weeks == [_d("2026-10-12"), _d("2026-10-19"), _d("2026-10-26")]  # Mondays
    assert len(series.periods(date(2026, 3, 28), date(2026, 3, 29), "hour")) == 48  # UTC: no DST
    assert series.period_end(_d("2026-11-01"), "quarter") == _d("2027-02-01")
    assert series.parse_time("2026-10-01") == series.parse_time("2026-10-01T00:00:00Z") == _d("2026-10-01")


def test_gap_values_and_formulas_follow_the_measure_kind():
    assert series.gap_value(VA.measure("gross_revenue")) == 0 and series.gap_value(VA.measure("days")) == 0
    assert series.gap_value(VA.measure("average_order_value")) is None
    rr = VA.measure("refund_rate")
    assert series.ratio_of_sums(VA, rr) and {m.name for m in series.leaves(VA, rr)} == {
        "refunds",
        "gross_revenue",
    }
    assert series.evaluate(VA, rr, {"refunds": 5, "gross_revenue": 200}) == pytest.approx(2.5)
    assert series.evaluate(VA, rr, {"refunds": 5, "gross_revenue": 0}) is None


def test_moving_values_by_hand():
    g, aov = VA.measure("gross_revenue"), VA.measure("average_order_value")
    pts = [
        {"gross_revenue": 100, "orders": 1, "average_order_value": 100.0},
        {"gross_revenue": 0, "orders": 0, "average_order_value": None},
        {"gross_revenue": 300, "orders": 3, "average_order_value": 100.0},
        {"gross_revenue": 600, "orders": 2, "average_order_value": 300.0},
    ]
    assert series.moving(VA, g, pts, 2) == [None, 50.0, 150.0, 450.0]
    # a ratio of the window's sums: (0 + 300 + 600) / (0 + 3 + 2), not the mean of 100 and 300
    assert series.moving(VA, aov, pts, 3) == [None, None, pytest.approx(100.0), pytest.approx(180.0)]
    tickets_avg = VA.measure("average_ticket_price")
    assert series.moving(VA, tickets_avg, [{"ticket_revenue": 0, "tickets_sold": 0}] * 2, 2) == [None, None]


def test_comparison_ranges_and_changes():
    first, last = date(2026, 10, 25), date(2026, 10, 31)
    b0, b1, shift = series.base_range(first, last, "year")
    assert (b0, b1, shift) == (date(2025, 10, 26), date(2025, 11, 1), 364)
    assert b0.weekday() == first.weekday() and b1.weekday() == last.weekday()
    assert series.base_range(first, last, "previous") == (date(2026, 10, 18), date(2026, 10, 24), 7)
    assert series.change(150, 100) == (50, 50.0)
    assert series.change(150, 0) == (150, None)
    assert series.change(None, 3) == (None, None)
