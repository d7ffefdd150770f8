"""GET /v1/metrics, /realtime, /trends, /compare and /aggregate over the sample marts, on both warehouse
backends: every value equals hand-written SQL over the marts (to the cent), moving averages and the
weekday-aligned comparison equal hand computations (a base of 0 gives a NULL percent), the custom_metrics cube
equals a hand aggregation of the raw points, the catalogue lists every declared measure, a cross-tenant walk
finds nothing of the other tenant, and bad parameters are 422 naming the parameter, with no query run."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest
from api_helpers import make_api
from metrics_sample import custom_points
from query_sample import build_query_marts

from analytics_pipelines.registry import default_registry
from analytics_pipelines.warehouse import open_warehouse

ADMIN = {"role": "admin"}
R = ("2026-10-12", "2026-10-31")
#: the compared week (Sun 2026-10-25 .. Sat 10-31) and the hand-written base a year (364 days) before
WEEK = (date(2026, 10, 25), date(2026, 10, 31))
BASE = [120_000, 0, 45_000, 80_000, 0, 200_000, 10]  # tenant 0, venue 0, Sun 2025-10-26 .. Sat 11-01
OTHER_VENUE_BASE = 5  # tenant 0's other venue, each base day
LEAK = 999_000_000  # tenant 1's base days: must never reach tenant 0


def _write_year_before(wh, marts) -> None:
    """venue_analytics rows 364 days before WEEK, with hand-chosen gross revenue."""
    t0, t1 = marts.tenant_ids()
    v0 = marts.tenants[t0][0]
    va = wh.read_table("venue_analytics")
    week = va.filter(pl.col("day").is_between(*WEEK))
    days = [WEEK[0] + timedelta(days=i) for i in range(7)]
    gross = [
        BASE[days.index(d)] if (t, v) == (t0, v0) else OTHER_VENUE_BASE if t == t0 else LEAK
        for t, v, d in week.select("tenant_id", "venue_id", "day").rows()
    ]
    base = week.with_columns(
        day=pl.col("day") - pl.duration(days=364), gross_revenue_cents=pl.Series(gross, dtype=pl.Int64)
    )
    wh.write_partitions(
        "venue_analytics", base, ["day"], [((d - timedelta(days=364)).isoformat(),) for d in days]
    )


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def mapi(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("metrics")
    url = (
        f"duckdb:///{tmp / 'warehouse'}"
        if request.param == "duckdb"
        else request.getfixturevalue("pg_database_module")
    )
    api, reader = make_api(url, tmp)
    wh = open_warehouse(url)
    build_query_marts(wh, api.marts)
    _write_year_before(wh, api.marts)
    reader.refresh()
    yield api
    reader.close()


def _ids(api):
    t0, t1 = api.marts.tenant_ids()
    return t0, api.marts.tenants[t0], t1, api.marts.tenants[t1]


def _sql(api, sql: str, params: list) -> list[tuple]:
    return open_warehouse(api.warehouse_url).read(sql, params).rows()


def _ok(r) -> dict:
    assert r.status_code == 200, r.text
    return r.json()


def _get(api, url, tenant, venue=None, **kw) -> dict:
    return _ok(api.get(url, tenant, venue, **kw))


def _daily(api, column: str, tenant: str, venue: str | None, first, last) -> dict[date, int]:
    cond, params = "tenant_id = %s", [tenant]
    if venue:
        cond, params = cond + " AND venue_id = %s", [*params, venue]
    rows = _sql(
        api,
        f"SELECT day, sum({column}) AS s FROM venue_analytics WHERE {cond} AND day BETWEEN %s AND %s GROUP BY day",
        [*params, first, last],
    )
    return {d: int(s) for d, s in rows}


# -- catalogue -----------------------------------------------------------------------------------------------
def test_the_catalogue_lists_every_declared_measure(mapi):
    t, venues, _, _ = _ids(mapi)
    out = _get(mapi, "/v1/metrics", t, venues[0])
    cubes = default_registry().cubes()
    declared = {f"{n}.{m.name}" for n, c in cubes.items() for m in c.measures}
    names = [m["name"] for m in out["measures"]]
    assert sorted(names) == sorted(declared) and out["count"] == len(declared)
    by = {m["name"]: m for m in out["measures"]}
    avg = by["custom_metrics.value_avg"]
    assert avg["aggregation"] == "formula" and avg["formula"] == "value_sum / points"
    assert avg["gap_value"] is None and not avg["additive"]
    assert by["custom_metrics.points"]["gap_value"] == 0 and by["custom_metrics.points"]["additive"]
    assert by["custom_metrics.points"]["time_dimension"] == "custom_metrics.hour"
    assert by["custom_metrics.points"]["granularities"] == ["hour", "day", "week", "month", "quarter", "year"]
    assert by["venue_analytics.gross_revenue"]["unit"] == "cents"
    assert by["event_performance.events"]["time_dimension"] is None
    assert "sales_velocity.tickets_per_minute_5m" in by
    only = _get(mapi, "/v1/metrics?cube=custom_metrics", t, venues[0])
    assert {m["cube"] for m in only["measures"]} == {"custom_metrics"} and only["count"] == 5


# -- trends --------------------------------------------------------------------------------------------------
def test_trends_daily_values_and_moving_average_by_hand(mapi):
    t, venues, _, _ = _ids(mapi)
    url = (
        f"/v1/metrics/trends?measure=venue_analytics.gross_revenue&start_date={R[0]}&end_date={R[1]}&window=3"
    )
    out = _get(mapi, url, t, venues[0])
    want = _daily(mapi, "gross_revenue_cents", t, venues[0], *R)
    days = sorted(want)
    assert [p["period"] for p in out["data"]] == [d.isoformat() for d in days]
    values = [p["value"] for p in out["data"]]
    assert values == [want[d] for d in days]
    hand = [None, None] + [sum(values[i - 2 : i + 1]) / 3 for i in range(2, len(values))]
    assert [p["moving_average"] for p in out["data"]] == pytest.approx(hand)
    assert out["window"] == 3 and out["gap_value"] == 0 and out["as_of"] == {"venue_analytics": "2026-10-31"}


def test_trends_of_a_ratio_is_the_ratio_of_the_windows_sums(mapi):
    t, venues, _, _ = _ids(mapi)
    url = f"/v1/metrics/trends?measure=venue_analytics.average_order_value&start_date={R[0]}&end_date={R[1]}&window=4"
    out = _get(mapi, url, t, **ADMIN)  # the whole tenant
    gross = _daily(mapi, "gross_revenue_cents", t, None, *R)
    orders = _daily(mapi, "orders", t, None, *R)
    days = sorted(gross)
    for i, (d, p) in enumerate(zip(days, out["data"], strict=True)):
        assert p["value"] == (pytest.approx(gross[d] / orders[d]) if orders[d] else None)
        if i < 3:
            assert p["moving_average"] is None
            continue
        span = days[i - 3 : i + 1]
        assert p["moving_average"] == pytest.approx(
            sum(gross[x] for x in span) / sum(orders[x] for x in span)
        )
    assert out["moving_average"] == "ratio of the window's summed components"


def test_trends_weekly_fills_gaps_by_measure_kind(mapi):
    t, venues, _, _ = _ids(mapi)
    # custom metrics exist only over the sample's last 10 days: the earlier days are gaps
    base = f"start_date={R[0]}&end_date={R[1]}&window=2&measure=custom_metrics"
    points = _get(mapi, f"/v1/metrics/trends?{base}.points", t, venues[0])["data"]
    avg = _get(mapi, f"/v1/metrics/trends?{base}.value_avg", t, venues[0])["data"]
    raw = custom_points(mapi.marts).filter(pl.col("venue_id") == venues[0])
    per_day = {
        d: (n, s)
        for d, n, s in raw.group_by(pl.col("recorded_at").dt.date().alias("d"))
        .agg(pl.len(), pl.sum("value"))
        .rows()
    }
    assert len(points) == 20 and any(p["filled"] for p in points)
    for p, a in zip(points, avg, strict=True):
        d = date.fromisoformat(p["period"][:10])
        n, s = per_day.get(d, (0, None))
        assert p["value"] == n and p["filled"] == (n == 0) and p["period"].endswith("T00:00:00Z")
        assert a["value"] == (pytest.approx(s / n) if n else None)
    # weeks (Monday starts): the first and last are clipped by the range
    out = _get(
        mapi,
        f"/v1/metrics/trends?measure=venue_analytics.tickets_sold&granularity=week&start_date={R[0]}&end_date={R[1]}",
        t,
        venues[0],
    )
    want = _sql(
        mapi,
        "SELECT CAST(date_trunc('week', day) AS DATE) AS w, sum(tickets_sold) AS s FROM venue_analytics "
        "WHERE tenant_id = %s AND venue_id = %s AND day BETWEEN %s AND %s GROUP BY 1 ORDER BY 1",
        [t, venues[0], *R],
    )
    assert [(p["period"], p["value"]) for p in out["data"]] == [(w.isoformat(), int(s)) for w, s in want]
    assert [p["complete"] for p in out["data"]] == [True, True, False]  # Mon 10-12 .. Sat 10-31
    assert out["window"] == 4 and all(p["moving_average"] is None for p in out["data"])


# -- compare -------------------------------------------------------------------------------------------------
def test_compare_against_a_year_aligns_weekdays_and_a_zero_base_has_no_percent(mapi):
    t, venues, _, _ = _ids(mapi)
    url = f"/v1/metrics/compare?measure=venue_analytics.gross_revenue&start_date={WEEK[0]}&end_date={WEEK[1]}&against=year"
    out = _get(mapi, url, t, venues[0])
    assert out["base_period"] == ["2025-10-26", "2025-11-01"] and out["shift_days"] == 364
    now = _daily(mapi, "gross_revenue_cents", t, venues[0], *WEEK)
    for i, row in enumerate(out["data"]):
        d = WEEK[0] + timedelta(days=i)
        assert row["day"] == d.isoformat() and row["base_day"] == (d - timedelta(days=364)).isoformat()
        assert row["weekday"] == row["base_weekday"] == d.strftime("%a")
        assert (row["value"], row["base_value"]) == (now[d], BASE[i])
        assert row["change"] == now[d] - BASE[i]
        assert row["change_pct"] == (
            None if BASE[i] == 0 else pytest.approx(100 * (now[d] - BASE[i]) / BASE[i])
        )
    assert [r["change_pct"] is None for r in out["data"]] == [b == 0 for b in BASE]
    total = sum(now.values())
    assert out["totals"] == {
        "value": total,
        "base_value": sum(BASE),
        "change": total - sum(BASE),
        "change_pct": pytest.approx(100 * (total - sum(BASE)) / sum(BASE)),
    }
    # the tenant: both venues, never the other tenant's LEAK rows
    tenant = _get(mapi, url, t, **ADMIN)
    assert tenant["totals"]["base_value"] == sum(BASE) + 7 * OTHER_VENUE_BASE


def test_compare_against_the_previous_period_and_a_ratio_total(mapi):
    t, venues, _, _ = _ids(mapi)
    first, last = date(2026, 10, 22), date(2026, 10, 31)  # 10 days: base 10-12 .. 10-21
    url = (
        f"/v1/metrics/compare?measure=venue_analytics.average_order_value&start_date={first}&end_date={last}"
    )
    out = _get(mapi, url, t, venues[1])
    assert out["base_period"] == ["2026-10-12", "2026-10-21"] and out["shift_days"] == 10
    g = _daily(mapi, "gross_revenue_cents", t, venues[1], date(2026, 10, 12), last)
    o = _daily(mapi, "orders", t, venues[1], date(2026, 10, 12), last)
    for i, row in enumerate(out["data"]):
        d, b = first + timedelta(days=i), first + timedelta(days=i - 10)
        assert row["value"] == (pytest.approx(g[d] / o[d]) if o[d] else None)
        assert row["base_value"] == (pytest.approx(g[b] / o[b]) if o[b] else None)
    now = [first + timedelta(days=i) for i in range(10)]
    before = [d - timedelta(days=10) for d in now]
    want_now = sum(g[d] for d in now) / sum(o[d] for d in now)  # a ratio of sums, not a mean of days
    want_base = sum(g[d] for d in before) / sum(o[d] for d in before)
    assert out["totals"]["value"] == pytest.approx(want_now)
    assert out["totals"]["base_value"] == pytest.approx(want_base)
    assert out["totals"]["change_pct"] == pytest.approx(100 * (want_now - want_base) / want_base)


# -- aggregate, custom metrics, realtime ---------------------------------------------------------------------
def test_aggregate_equals_hand_sql(mapi):
    t, venues, _, _ = _ids(mapi)
    url = (
        "/v1/metrics/aggregate?measures=revenue_by_channel.gross_revenue,revenue_by_channel.refunds"
        f"&dimensions=revenue_by_channel.channel&granularity=month&start_date={R[0]}&end_date={R[1]}"
    )
    out = _get(mapi, url, t, venues[0])
    want = _sql(
        mapi,
        "SELECT channel, sum(gross_revenue_cents) AS g, sum(refunds_cents) AS f FROM revenue_by_channel "
        "WHERE tenant_id = %s AND venue_id = %s AND day BETWEEN %s AND %s GROUP BY 1",
        [t, venues[0], *R],
    )
    got = {
        r["revenue_by_channel.channel"]: (
            r["revenue_by_channel.gross_revenue"],
            r["revenue_by_channel.refunds"],
        )
        for r in out["data"]
    }
    assert got == {c: (int(g), int(f)) for c, g, f in want}
    assert {r["revenue_by_channel.day.month"] for r in out["data"]} == {"2026-10-01"}
    # repeated parameters are the same request as comma-separated ones
    rep = url.replace(",revenue_by_channel.refunds", "&measures=revenue_by_channel.refunds")
    assert _get(mapi, rep, t, venues[0])["data"] == out["data"]


def test_the_custom_metrics_cube_equals_a_hand_aggregation_of_the_points(mapi):
    t, venues, _, _ = _ids(mapi)
    raw = custom_points(mapi.marts).filter(pl.col("tenant_id") == t)
    measures = ",".join(
        f"custom_metrics.{m}" for m in ("points", "value_sum", "value_min", "value_max", "value_avg")
    )
    url = f"/v1/metrics/aggregate?measures={measures}&dimensions=custom_metrics.venue,custom_metrics.metric_type&start_date={R[0]}&end_date={R[1]}"
    out = _get(mapi, url, t, **ADMIN)
    hand = raw.group_by("venue_id", "metric_type").agg(
        n=pl.len(), s=pl.sum("value"), lo=pl.min("value"), hi=pl.max("value")
    )
    assert len(out["data"]) == hand.height > 4
    got = {(r["custom_metrics.venue"], r["custom_metrics.metric_type"]): r for r in out["data"]}
    for v, mt, n, s, lo, hi in hand.rows():
        r = got[(v, mt)]
        assert r["custom_metrics.points"] == n
        assert r["custom_metrics.value_sum"] == pytest.approx(s, abs=1e-6)
        assert (r["custom_metrics.value_min"], r["custom_metrics.value_max"]) == pytest.approx((lo, hi))
        assert r["custom_metrics.value_avg"] == pytest.approx(s / n)  # mean of points, not of hours


def test_realtime_latest_bucket_and_hour_equal_hand_sql(mapi):
    t, venues, _, _ = _ids(mapi)
    for venue in venues:
        out = _get(mapi, "/v1/metrics/realtime", t, venue)
        (at,) = _sql(
            mapi,
            "SELECT max(bucket_start) AS m FROM sales_velocity WHERE tenant_id = %s AND venue_id = %s",
            [t, venue],
        )[0]
        tickets, events, high = _sql(
            mapi,
            "SELECT sum(tickets) AS a, count(DISTINCT event_id) AS b, count(CASE WHEN high_velocity THEN 1 END) AS c "
            "FROM sales_velocity WHERE tenant_id = %s AND venue_id = %s AND bucket_start = %s",
            [t, venue, at],
        )[0]
        five = out["five_minute"]
        assert five["as_of"] == at.isoformat().replace("+00:00", "Z")
        assert (five["values"]["tickets"], five["values"]["events_selling"]) == (tickets, events)
        assert five["values"]["high_velocity_events"] == high
        kpi = _sql(
            mapi,
            "SELECT metric, value FROM kpi_snapshots WHERE tenant_id = %s AND venue_id = %s AND snapshot_hour = "
            "(SELECT max(snapshot_hour) FROM kpi_snapshots WHERE tenant_id = %s AND venue_id = %s)",
            [t, venue, t, venue],
        )
        assert out["hourly"]["as_of"] == "2026-10-31T23:00:00Z"
        assert out["hourly"]["values"] == pytest.approx(dict(kpi))
        raw = custom_points(mapi.marts).filter(pl.col("venue_id") == venue)
        last = raw["recorded_at"].max().replace(minute=0, second=0, microsecond=0)
        hour = raw.filter(pl.col("recorded_at").dt.truncate("1h") == last)
        assert out["custom_hourly"]["as_of"] == last.isoformat().replace("+00:00", "Z")
        assert {k: v["points"] for k, v in out["custom_hourly"]["values"].items()} == dict(
            hour.group_by("metric_type").len().rows()
        )
        assert out["missing"] == []
    # a tenant-wide token reads the tenant's own KPI rows (venue NULL) and every venue's buckets
    tenant = _get(mapi, "/v1/metrics/realtime", t, **ADMIN)
    kpi = _sql(
        mapi,
        "SELECT metric, value FROM kpi_snapshots WHERE tenant_id = %s AND venue_id IS NULL AND snapshot_hour = "
        "(SELECT max(snapshot_hour) FROM kpi_snapshots WHERE tenant_id = %s)",
        [t, t],
    )
    assert tenant["hourly"]["values"] == pytest.approx(dict(kpi))


# -- scope and bad input -------------------------------------------------------------------------------------
def test_cross_tenant_walk(mapi):
    """Tenant 1's tokens never see tenant 0's rows: naming tenant 0's venue is 403 for a venue token and finds
    nothing for tenant 1's admin; tenant 1's base days (LEAK) are only tenant 1's."""
    t0, v0, t1, v1 = _ids(mapi)
    q = f"start_date={WEEK[0]}&end_date={WEEK[1]}"
    urls = [
        f"/v1/metrics/trends?measure=venue_analytics.gross_revenue&{q}",
        f"/v1/metrics/compare?measure=venue_analytics.gross_revenue&{q}&against=year",
        f"/v1/metrics/aggregate?measures=venue_analytics.gross_revenue&{q}",
        "/v1/metrics/realtime",
    ]
    for url in urls:
        sep = "&" if "?" in url else "?"
        assert mapi.get(f"{url}{sep}venue_id={v0[0]}", t1, v1[0]).status_code == 403, url
        theirs = _get(mapi, f"{url}{sep}venue_id={v0[0]}", t1, **ADMIN)
        if "trends" in url:
            assert {p["value"] for p in theirs["data"]} == {0} and all(p["filled"] for p in theirs["data"])
        elif "compare" in url:
            assert theirs["totals"] == {"value": 0, "base_value": 0, "change": 0, "change_pct": None}
        elif "aggregate" in url:
            assert theirs["data"] == [{"venue_analytics.gross_revenue": None}]
        else:
            assert (
                theirs["five_minute"] is None and theirs["hourly"] is None and theirs["custom_hourly"] is None
            )
    mine = _get(mapi, urls[1], t1, **ADMIN)
    assert mine["totals"]["base_value"] == 7 * len(v1) * LEAK
    assert _get(mapi, urls[1], t0, **ADMIN)["totals"]["base_value"] == sum(BASE) + 7 * OTHER_VENUE_BASE
    own = _get(mapi, urls[2], t1, **ADMIN)["data"][0]["venue_analytics.gross_revenue"]
    assert own == sum(_daily(mapi, "gross_revenue_cents", t1, None, *WEEK).values())


@pytest.fixture
def spied(mapi, monkeypatch):
    reader = mapi.client.app.state.reader
    calls = []
    monkeypatch.setattr(reader, "query", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(reader, "cached", lambda *a, **k: calls.append(a))
    return calls


M = "measure=venue_analytics.gross_revenue"
BAD = [
    ("measure", "/v1/metrics/trends?measure=venue_analytics.nope"),
    ("measure", "/v1/metrics/trends?measure=venue_analytics.gross_revenue'%3B%20DROP%20TABLE%20x%3B--"),
    ("measure", "/v1/metrics/compare?measure=event_performance.events"),
    ("measure", "/v1/metrics/trends"),
    ("granularity", f"/v1/metrics/trends?{M}&granularity=hour"),
    ("granularity", f"/v1/metrics/trends?{M}&granularity=minute"),
    ("start_date", f"/v1/metrics/trends?{M}&start_date=2026-10-31&end_date=2026-10-01"),
    ("start_date", f"/v1/metrics/compare?{M}&start_date=2025-01-01&end_date=2026-10-31"),
    ("start_date", f"/v1/metrics/compare?{M}&start_date=2026-13-01"),
    ("window", f"/v1/metrics/trends?{M}&window=0"),
    ("against", f"/v1/metrics/compare?{M}&against=decade"),
    ("venue_id", f"/v1/metrics/trends?{M}&venue_id=not-a-uuid"),
    ("measures", "/v1/metrics/aggregate"),
    ("measures", "/v1/metrics/aggregate?measures=nope.orders&granularity=day"),
    ("measures", "/v1/metrics/aggregate?measures=venue_analytics.gross_revenue,revenue_by_channel.tickets"),
    (
        "dimensions",
        "/v1/metrics/aggregate?measures=venue_analytics.orders&dimensions=venue_analytics.channel",
    ),
    ("granularity", "/v1/metrics/aggregate?measures=event_performance.events&granularity=day"),
    ("granularity", "/v1/metrics/aggregate?measures=venue_analytics.orders&granularity=hour"),
    ("limit", "/v1/metrics/aggregate?measures=venue_analytics.orders&limit=100000"),
    ("cube", "/v1/metrics?cube=nope"),
]


@pytest.mark.parametrize("field,url", BAD, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD)])
def test_bad_parameters_are_422_naming_the_parameter_and_nothing_runs(mapi, spied, field, url):
    t, venues, _, _ = _ids(mapi)
    r = mapi.get(url, t, venues[0])
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    fields = [e["field"] for e in r.json()["errors"]]
    assert field in fields, (field, fields)
    assert spied == []


def test_random_parameters_never_fail_the_server(mapi):
    """Any catalogued measure with any granularity, range, window, comparison and venue: 200 or 422, never a
    5xx; a venue token's answers are 200 only for its own venue."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    t, venues, _, theirs = _ids(mapi)
    names = sorted(f"{n}.{m.name}" for n, c in default_registry().cubes().items() for m in c.measures)
    first = st.dates(date(2026, 9, 1), date(2026, 11, 2)).map(date.isoformat) | st.sampled_from(
        ["x", "2026-02-30"]
    )

    @settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(
        route=st.sampled_from(["trends", "compare", "aggregate"]),
        measure=st.sampled_from([*names, "nope", "venue_analytics.day"]),
        gran=st.sampled_from(["", "hour", "day", "week", "month", "quarter", "year", "minute"]),
        start=first,
        end=first,
        window=st.sampled_from(["", "1", "3", "0", "400"]),
        against=st.sampled_from(["", "previous", "year"]),
        venue=st.sampled_from(["", venues[0], theirs[0]]),
    )
    def check(route, measure, gran, start, end, window, against, venue):
        key = "measures" if route == "aggregate" else "measure"
        params = {key: measure, "granularity": gran, "start_date": start, "end_date": end, "window": window}
        params |= {"against": against, "venue_id": venue}
        if route != "trends":
            params.pop("window")
        if route == "compare":
            params.pop("granularity")
        query = "&".join(f"{k}={v}" for k, v in params.items() if v)
        r = mapi.get(f"/v1/metrics/{route}?{query}", t, venues[0])
        assert r.status_code in (200, 403, 422), (query, r.status_code, r.text[:300])
        if venue == theirs[0]:
            assert r.status_code in (403, 422)

    check()


TREND = f"/v1/metrics/trends?measure=venue_analytics.tickets_sold&start_date={R[0]}&end_date={R[1]}"


@pytest.fixture
def trend(warehouse_url, tmp_path):
    """A fresh API (its own memo) and a venue's first answer to TREND: (api, reader, tenant, venue, body)."""
    api, reader = make_api(warehouse_url, tmp_path)
    t, venues, _, _ = _ids(api)
    yield api, reader, t, venues[0], _get(api, TREND, t, venues[0])
    reader.close()


def test_series_bodies_are_memoized_until_a_mart_they_read_changes(trend):
    """A repeated trend is answered from the response memo (no query, no series arithmetic); another scope
    (an admin: its body carries the SQL) has its own entry; a write to the mart it reads, once the reader
    has seen it, gives the new values; a write to a mart it does not read keeps the entry."""
    api, reader, t, venue, first = trend
    memo = api.client.app.state.memo
    misses, queries = memo.misses, reader.cache_hits + reader.cache_misses
    assert _get(api, TREND, t, venue) == first
    assert memo.misses == misses and memo.hits >= 1
    assert reader.cache_hits + reader.cache_misses == queries  # not even a reader cache lookup
    admin = _get(api, TREND, t, **ADMIN)
    assert memo.misses == misses + 1 and "sql" in admin and "sql" not in first

    wh = open_warehouse(api.warehouse_url)
    wh.replace_table("kpi_snapshots", wh.read_table("kpi_snapshots"))
    reader.refresh()
    assert _get(api, TREND, t, venue) == first and memo.misses == misses + 1

    day = wh.read_table("venue_analytics", "day = %s", (date.fromisoformat(R[1]),))
    wh.write_partitions("venue_analytics", day.with_columns(pl.col("tickets_sold") + 7), ["day"], [(R[1],)])
    reader.refresh()
    after = _get(api, TREND, t, venue)
    assert memo.misses == misses + 2
    assert after["data"][-1]["value"] == first["data"][-1]["value"] + 7
    assert after["data"][:-1] == first["data"][:-1]


def test_a_body_built_while_a_refresh_recomputes_its_marts_is_not_memoized(trend):
    """Mid-recomputation the memo answers with the previous body (as the reader does with its results); a body
    built then from the reader's stale hit is answered but not kept, so the first request after the refresh
    sees the new values."""
    api, reader, t, venue, first = trend
    memo = api.client.app.state.memo
    wh = open_warehouse(api.warehouse_url)
    day = wh.read_table("venue_analytics", "day = %s", (date.fromisoformat(R[1]),))
    wh.write_partitions("venue_analytics", day.with_columns(pl.col("tickets_sold") + 7), ["day"], [(R[1],)])
    real, during = reader._recompute, {}

    def recompute(hot):
        misses = memo.misses
        during["body"] = _get(api, TREND, t, venue)  # the previous body, like the reader's hits
        during["rebuilt"] = memo.misses - misses
        memo._entries.clear()  # a body built now (from the reader's stale hit) ...
        during["built"] = _get(api, TREND, t, venue)
        real(hot)

    reader._recompute = recompute
    try:
        reader.refresh()
    finally:
        reader._recompute = real
    assert during["body"] == first and during["rebuilt"] == 0  # no rebuild mid-refresh
    assert during["built"] == first  # the previous data, answered ...
    after = _get(api, TREND, t, venue)  # ... and not kept
    assert after["data"][-1]["value"] == first["data"][-1]["value"] + 7
    assert _get(api, TREND, t, venue) == after and memo.hits >= 1
