"""End to end on planted truth (issue 21): `tiny` generated with the opt-in insight plants (a venue's sales x6
in the last complete week, an event's sales stopped for the last 7 days, a venue's orders of the last 28 days
bought by its lapsed one-time customers instead of its regulars; generator.planted_insights), the real
main_job, the RFM history (customer_rfm_scores, the last five weeks) and insights_job (as of every day of the
last two months, one run), then: the planted changes are found as of the last day, with the planted numbers,
and what was not planted stays rare (the bound below) or absent. The asset never reads the truth; the test
does. Not planted (tiny cannot hold them credibly; docs/insights.md): year-over-year, churn_risk_rising."""

from __future__ import annotations

import json
from datetime import date, timedelta

import dagster as dg
import polars as pl
import pytest
from materialized import LAST, NOW, environment, materialize_everything

from analytics_pipelines.definitions import build_definitions
from analytics_pipelines.generator.run import generate
from analytics_pipelines.generator.truth import json_safe
from analytics_pipelines.partitions import RANGE_END_TAG, RANGE_START_TAG
from analytics_pipelines.query.compile import Scope, compile_query
from analytics_pipelines.query.model import QueryRequest
from analytics_pipelines.registry import default_registry
from analytics_pipelines.registry.context import NOW_TAG
from analytics_pipelines.settings import Settings
from analytics_pipelines.warehouse import open_warehouse
from analytics_pipelines.warehouse.readers import open_reader

HISTORY_FIRST = "2026-07-01"  # tiny's launch is 2026-07-04
INSIGHT_DAYS = ("2026-09-01", LAST)
#: the false-positive bound: distinct sales-change findings (type, venue, week) not planted, per venue-week
#: scored (3 venues x ~9 weeks x 2 metrics): at most 10 %
MAX_UNPLANTED_SHARE = 0.10
#: RFM days: segment_shift compares a day with 28 days before, so it is scored as of RFM_DAYS[0] + 28 .. LAST
RFM_DAYS = ("2026-09-26", LAST)


def _run_query(warehouse_url: str, query: str, tenant: str, venue: str) -> list[dict]:
    """A finding's POST /v1/query body compiled by the query layer for the venue's scope and run."""
    reg = default_registry()
    req = QueryRequest.model_validate(json.loads(query))
    c = compile_query(
        req, reg.cubes(), {t.name: t for t in reg.tables}, Scope(tenant, venue), today=NOW.date()
    )
    reader = open_reader(warehouse_url)
    try:
        res = reader.query(tenant, c.sql, c.params, c.tables)
    finally:
        reader.close()
    return [dict(zip(res.columns, r, strict=True)) for r in res.rows]


def _rfm_history(m, first: str, last: str) -> dg.ExecuteInProcessResult:
    """customer_rfm_scores (and its state) over [first, last], one run: customers_job's RFM step alone (the rest
    of customers_job, models and all, is not needed by the insights and costs minutes)."""
    with environment(m.env):
        defs = build_definitions(default_registry(), Settings.from_env())
        return defs.get_implicit_global_asset_job_def().execute_in_process(
            instance=m.instance,
            asset_selection=[dg.AssetKey("customer_rfm_scores"), dg.AssetKey("customer_rfm_state")],
            tags={RANGE_START_TAG: first, RANGE_END_TAG: last, NOW_TAG: NOW.isoformat()},
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """(truth["insights"], the Materialized, venue_insights) of the planted tiny world."""
    tmp_path = tmp_path_factory.mktemp("planted_insights")
    data = tmp_path / "data"
    data.mkdir()
    source = f"duckdb:///{data / 'source.duckdb'}"
    truth_path = data / "truth.json"
    generate(source, scale="tiny", seed=7, progress=False, truth_path=truth_path, plant_insights=True)
    truth = json.loads(truth_path.read_text())["insights"]
    m = materialize_everything(tmp_path, source_url=source, runs=(("main_job", HISTORY_FIRST, LAST),))
    m.results["customer_rfm_scores"] = _rfm_history(m, *RFM_DAYS)
    m.results["insights_job"] = m.rerun("insights_job", *INSIGHT_DAYS)
    assert all(r.success for r in m.results.values())
    assert not m.failed_checks()
    return truth, m, open_warehouse(m.warehouse_url).read_table("venue_insights")


def test_planted_insights_are_found_and_noise_is_not(planted):
    truth, m, f = planted
    jump, stall = truth["venue_jump"], truth["event_stall"]
    assert jump and stall and jump["tickets_added"] >= 3 * jump["tickets_before"]
    last = f.filter(pl.col("as_of") == date.fromisoformat(LAST))
    # the jump: tickets and revenue week over week, for the planted venue and week, with its numbers
    wow = last.filter((pl.col("type") == "tickets_wow") & (pl.col("venue_id") == jump["venue_id"]))
    assert wow.height == 1, last.select("type", "venue_id", "sentence")
    ev = json.loads(wow["evidence"][0])
    assert ev["week"] == jump["week_start"] and ev["z"] >= 3
    assert (
        ev["value"] >= ev["base_value"] * 2
        and ev["value"] >= jump["tickets_before"] + jump["tickets_added"] * 0.8
    )
    # the finding's query, through the query layer on the same warehouse, gives both weeks' numbers
    res = _run_query(m.warehouse_url, wow["query"][0], wow["tenant_id"][0], jump["venue_id"])
    measure = "venue_analytics.tickets_sold"
    assert sorted(r[measure] for r in res) == sorted([ev["base_value"], ev["value"]])
    # net revenue (refunds on their own day included) is reported when it clears the bar too; not asserted
    # the stall
    stalls = last.filter(pl.col("type") == "event_stalling")
    assert stalls["subject_id"].to_list() == [stall["event_id"]]
    sev = json.loads(stalls["evidence"][0])
    assert sev["recent_orders"] == 0
    days = _run_query(m.warehouse_url, stalls["query"][0], stalls["tenant_id"][0], stall["venue_id"])
    assert sum(r["event_analytics.orders"] for r in days) == sev["base_orders"]  # 28 days, the last 7 empty
    # the noise: sales-change findings other than the planted venue-week, over two months of as-of days
    changes = f.filter(pl.col("type").is_in(["tickets_wow", "revenue_wow", "tickets_yoy", "revenue_yoy"]))
    planted_key = (jump["venue_id"], jump["week_start"])
    unplanted = {
        (r["type"], r["venue_id"], json.loads(r["evidence"])["week"])
        for r in changes.iter_rows(named=True)
        if (r["venue_id"], json.loads(r["evidence"])["week"]) != planted_key
    }
    weeks = f.select(pl.col("as_of").dt.truncate("1w")).n_unique() if f.height else 9
    scored = 3 * 2 * max(weeks, 8)
    assert len(unplanted) <= MAX_UNPLANTED_SHARE * scored, sorted(unplanted)
    # no stall but the planted one on any day (the planted one only once its week is in the window)
    other_stalls = f.filter(
        (pl.col("type") == "event_stalling") & (pl.col("subject_id") != stall["event_id"])
    )
    assert other_stalls.height == 0, other_stalls.select("as_of", "sentence")
    print(
        "planted insights:",
        json_safe(
            {
                "last_day": last.select("type", "venue_id", "score").rows(),
                "tickets_wow_z": ev["z"],
                "unplanted_changes": sorted(unplanted),
                "scored": scored,
                "findings_by_type": dict(f.group_by("type").len().rows()),
            }
        ),
    )


def test_planted_segment_shift_is_found_and_not_elsewhere(planted):
    """The venue whose last 28 days of orders went to its lapsed one-time customers: its regulars (the recent,
    frequent buyers) are no longer recent, so Champions empties -- found as of the last day with the numbers
    the query layer gives; no other venue gets a segment shift on any day it is scored, nor a rising churn risk
    (not planted) on any day."""
    truth, m, f = planted
    wave = truth["customer_wave"]
    assert wave and wave["lapsed_returned"] >= 60 and wave["buyers_displaced"] >= 30
    last = f.filter(pl.col("as_of") == date.fromisoformat(LAST))
    shift = last.filter((pl.col("type") == "segment_shift") & (pl.col("venue_id") == wave["venue_id"]))
    assert shift.height == 1, last.select("type", "venue_id", "sentence")
    ev = json.loads(shift["evidence"][0])
    # the regulars moved out of Champions: a drop of more than half its customers, far beyond the bar
    assert ev["segment"] == shift["subject_id"][0] == "Champions" and ev["z"] <= -4
    assert ev["customers_in_segment"] <= ev["customers_in_segment_before"] / 2
    assert 100 * (ev["share_before"] - ev["share"]) >= 5
    # the finding's query: the venue's customers by segment on the day, through the query layer
    rows = _run_query(m.warehouse_url, shift["query"][0], shift["tenant_id"][0], wave["venue_id"])
    by_segment = {r["customer_rfm_scores.segment"]: r["customer_rfm_scores.customers"] for r in rows}
    assert sum(by_segment.values()) == ev["customers"]
    assert by_segment.get("Champions", 0) == ev["customers_in_segment"]
    # scored on every day whose 28-days-before RFM day exists: the planted venue on each of them, no other
    first_scored = date.fromisoformat(RFM_DAYS[0]) + timedelta(days=28)
    shifts = f.filter(pl.col("type") == "segment_shift")
    assert set(shifts["venue_id"]) == {wave["venue_id"]}, shifts.select("as_of", "venue_id", "sentence")
    days = sorted(shifts["as_of"].unique())
    assert days == [
        first_scored + timedelta(days=i) for i in range((date.fromisoformat(LAST) - first_scored).days + 1)
    ]
    churn = f.filter((pl.col("type") == "churn_risk_rising") & (pl.col("venue_id") != wave["venue_id"]))
    assert churn.height == 0, churn.select("as_of", "venue_id", "sentence")
    print(
        "planted segment shift:",
        json_safe(
            {
                "wave": wave,
                "evidence": ev,
                "days": len(days),
                "churn": f.filter(pl.col("type") == "churn_risk_rising").height,
            }
        ),
    )
