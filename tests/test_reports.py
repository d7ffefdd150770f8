"""Report rendering and builders: every PDF rasterized (PDFium) and checked for ink, XLSX read back and
compared with the mart frames to the cent, CSV/JSON round trips, filters, tenant isolation, pseudonyms."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import UTC, date, datetime, timedelta

import mart_frames as mf
import openpyxl
import polars as pl
import pytest
from pdf_tools import ink_per_page, pdf_text

from analytics_pipelines.privacy import key_id
from analytics_pipelines.reports import ChartSpec, Report, Section, render
from analytics_pipelines.reports.builders import (
    daily_venue_report,
    daily_venue_reports,
    executive_report,
    executive_reports,
)
from analytics_pipelines.reports.export_types import RAW_DATA_TABLES, build_export
from analytics_pipelines.reports.filters import ExportRequestError, MissingMartError, parse_filters
from analytics_pipelines.reports.model import label
from analytics_pipelines.reports.pseudonyms import PseudonymKeyError, pseudonym, pseudonym_key
from analytics_pipelines.reports.writers import json_bytes, xlsx_header
from analytics_pipelines.warehouse import open_warehouse

KEY = b"test-pseudonym-key-0123456789"
NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
DAY = date(2026, 11, 5)


@pytest.fixture(scope="module")
def frames():
    return mf.build()


@pytest.fixture(scope="module")
def duck(tmp_path_factory, frames):
    wh = open_warehouse(f"duckdb:///{tmp_path_factory.mktemp('wh') / 'warehouse'}")
    mf.write(wh, frames)
    return wh


@pytest.fixture
def both(warehouse_url, frames):
    wh = open_warehouse(warehouse_url)
    mf.write(wh, frames)
    return wh


# --- rendering ------------------------------------------------------------------------------------------


def test_model_rejects_bad_input():
    df = pl.DataFrame({"day": [DAY], "tickets_sold": [1]})
    with pytest.raises(ValueError, match="at least one section"):
        Report("t", DAY, DAY, ())
    with pytest.raises(ValueError, match="before it starts"):
        Report("t", DAY, DAY - timedelta(days=1), (Section("a", df),))
    with pytest.raises(ValueError, match="chart columns"):
        Section("a", df, ChartSpec("line", "day", ("missing",)))
    with pytest.raises(ValueError, match="unique"):
        Report("t", DAY, DAY, (Section("a", df), Section("a", df)))
    with pytest.raises(ValueError, match="unknown format"):
        render(Report("t", DAY, DAY, (Section("a", df),)), "docx", "/tmp/x")


def test_daily_report_pdf_has_ink_on_every_page_and_prints_non_latin_names(duck, tmp_path):
    report = daily_venue_report(duck, mf.V1, DAY, mf.T1, now=NOW)
    path = render(report, "pdf", tmp_path / "daily")
    ink = ink_per_page(path, tmp_path)
    assert ink and all(share > 0.01 for share in ink), ink
    text = pdf_text(path)
    assert "Театр «Мир» · Ελληνικό Θέατρο" in text  # the venue name, from stg_venues, as written
    assert f"Page 1 of {len(ink)}" in text and f"Page {len(ink)} of {len(ink)}" in text
    for section in (
        "Key figures",
        "Sales by local hour",
        "Revenue by channel",
        "Revenue by category",
        "Top events",
    ):
        assert section in text
    assert "Event 0." in text  # top events carry names from event_performance


def test_daily_report_xlsx_matches_the_marts_to_the_cent(duck, frames, tmp_path):
    report = daily_venue_report(duck, mf.V1, DAY, mf.T1, now=NOW)
    wb = openpyxl.load_workbook(render(report, "xlsx", tmp_path / "daily"))
    assert wb.sheetnames == [
        "Key figures",
        "Sales by local hour",
        "Revenue by channel",
        "Revenue by category",
        "Top events",
    ]
    kpi = wb["Key figures"]
    mart = (
        frames["venue_analytics"]
        .filter((pl.col("venue_id") == mf.V1) & (pl.col("day") == DAY))
        .row(0, named=True)
    )
    headers = [c.value for c in kpi[1]]
    values = dict(zip(headers, [c.value for c in kpi[2]], strict=True))
    cells = dict(zip(headers, kpi[2], strict=True))
    assert values["Day"] == datetime(2026, 11, 5) and cells["Day"].number_format == "yyyy-mm-dd"
    for col in (
        "gross_revenue_cents",
        "net_revenue_cents",
        "refunds_cents",
        "fees_cents",
        "avg_ticket_price_cents",
    ):
        v = values[label(col)]
        assert isinstance(v, float | int) and round(v * 100) == mart[col], col  # currency amount, to the cent
        assert "0.00" in cells[label(col)].number_format
    for col in ("tickets_sold", "orders", "unique_customers"):
        assert values[label(col)] == mart[col] and isinstance(values[label(col)], int)
    assert values["Capacity sold %"] == pytest.approx(mart["capacity_sold_pct"])
    # header styling, frozen header row, widths
    assert kpi["A1"].font.bold and kpi["A1"].fill.fgColor.rgb.endswith("1F3A5F")
    assert kpi.freeze_panes == "A2"
    assert all(kpi.column_dimensions[c].width >= 8 for c in "ABCDE")
    # revenue by channel: every row equals the mart
    ch = wb["Revenue by channel"]
    rows = list(ch.iter_rows(values_only=True))
    mart_ch = frames["revenue_by_channel"].filter((pl.col("venue_id") == mf.V1) & (pl.col("day") == DAY))
    assert len(rows) - 1 == mart_ch.height
    idx = rows[0].index("Gross revenue")
    by_line = dict(zip(mart_ch["revenue_line"], mart_ch["gross_revenue_cents"], strict=True))
    for r in rows[1:]:
        assert round(r[idx] * 100) == by_line[r[0]]
    hourly = list(wb["Sales by local hour"].iter_rows(values_only=True))
    assert len(hourly) == 25 and sum(r[1] for r in hourly[1:]) == mart["tickets_sold"]


def test_weekly_report_totals_compare_weeks(both, frames, tmp_path):
    first, last = date(2026, 11, 9), date(2026, 11, 15)
    report = executive_report(both, mf.V2, first, last, mf.T1, now=NOW)
    va = frames["venue_analytics"].filter(pl.col("venue_id") == mf.V2)
    cur = va.filter(pl.col("day").is_between(first, last))
    prev = va.filter(pl.col("day").is_between(first - timedelta(days=7), first - timedelta(days=1)))
    wb = openpyxl.load_workbook(render(report, "xlsx", tmp_path / "weekly"))
    rows = list(wb["Totals vs previous period"].iter_rows(values_only=True))
    h = rows[0]
    for row, part in ((rows[1], cur), (rows[2], prev)):
        for col in ("gross_revenue_cents", "refunds_cents", "fees_cents", "net_revenue_cents"):
            assert round(row[h.index(label(col))] * 100) == part[col].sum(), col
        assert row[h.index("Tickets sold")] == part["tickets_sold"].sum()
    change = report.sections[1].table.row(0, named=True)
    expected = round(
        (cur["gross_revenue_cents"].sum() - prev["gross_revenue_cents"].sum())
        / prev["gross_revenue_cents"].sum()
        * 100,
        1,
    )
    assert change["gross_revenue_change_pct"] == expected
    trend = report.sections[2].table
    assert trend.height == 7 and trend["net_revenue_cents"].sum() == cur["net_revenue_cents"].sum()
    path = render(report, "pdf", tmp_path / "weekly")
    assert all(s > 0.01 for s in ink_per_page(path, tmp_path))
    assert "Weekly executive report" in pdf_text(path)


def test_batch_reports_equal_the_per_venue_reports_and_read_each_mart_once(both, frames, monkeypatch):
    """The report assets build every venue's report of a day (week) from one read per mart; each report equals
    the one built for that venue alone, and every venue with a venue_analytics row gets one."""
    first, last = date(2026, 11, 9), date(2026, 11, 15)
    expected_venues = sorted(
        frames["venue_analytics"]
        .filter(pl.col("day").is_between(first, last))
        .select("tenant_id", "venue_id")
        .unique()
        .rows()
    )
    reads: list[str] = []
    read_table = type(both).read_table
    monkeypatch.setattr(
        type(both), "read_table", lambda self, t, *a, **k: reads.append(t) or read_table(self, t, *a, **k)
    )
    weekly = list(executive_reports(both, first, last, now=NOW))
    assert sorted(reads) == sorted(
        ["venue_analytics", "revenue_by_channel", "event_analytics", "event_performance", "stg_venues"]
    )
    reads.clear()
    daily = list(daily_venue_reports(both, DAY, now=NOW))
    assert (
        len(reads) == len(set(reads)) == 7
    )  # five marts, event names, venue names: once each for all venues
    assert sorted((t, v) for t, v, _ in weekly) == expected_venues and len(weekly) >= 2
    monkeypatch.undo()
    for tenant, venue, report in weekly:
        assert json_bytes(report) == json_bytes(executive_report(both, venue, first, last, tenant, now=NOW))
    assert daily
    for tenant, venue, report in daily:
        assert json_bytes(report) == json_bytes(daily_venue_report(both, venue, DAY, tenant, now=NOW))


def test_csv_and_json_round_trip(duck, frames, tmp_path):
    report = daily_venue_report(duck, mf.V1, DAY, mf.T1, now=NOW)
    zpath = render(report, "csv", tmp_path / "daily")
    assert zpath.suffix == ".zip"
    with zipfile.ZipFile(zpath) as zf:
        names = zf.namelist()
        assert names[0] == "01_key_figures.csv" and len(names) == 5
        rows = list(csv.DictReader(io.StringIO(zf.read(names[0]).decode())))
    mart = (
        frames["venue_analytics"]
        .filter((pl.col("venue_id") == mf.V1) & (pl.col("day") == DAY))
        .row(0, named=True)
    )
    assert (
        rows[0]["day"] == "2026-11-05" and int(rows[0]["gross_revenue_cents"]) == mart["gross_revenue_cents"]
    )
    doc = json.loads(render(report, "json", tmp_path / "daily").read_text())
    assert doc["period"] == {"start": "2026-11-05", "end": "2026-11-05"}
    rec = doc["sections"][0]["records"][0]
    assert rec["day"] == "2026-11-05" and rec["gross_revenue_cents"] == mart["gross_revenue_cents"]
    assert isinstance(rec["gross_revenue_cents"], int)
    assert doc["metadata"]["venue_name"] == mf.VENUES[mf.V1][1]  # UTF-8, not escaped
    assert "Ελληνικό".encode() in render(report, "json", tmp_path / "daily").read_bytes()
    # one-section reports are a single CSV; timestamps are UTC ISO with Z
    tx = build_export(
        duck,
        "raw_data",
        parse_filters(mf.T1, {"date_from": "2026-11-02", "date_to": "2026-11-03"}),
        {"table": "fct_refunds"},
        KEY,
        now=NOW,
    )
    single = render(tx, "csv", tmp_path / "refunds")
    assert single.suffix == ".csv"
    back = pl.read_csv(single)
    assert back.height == tx.sections[0].table.height
    assert all(v.endswith("Z") for v in back["refunded_at"].to_list())


def test_every_export_type_renders_in_every_format(duck, tmp_path):
    f = parse_filters(mf.T1, {"date_from": "2026-11-03", "date_to": "2026-11-05"})  # a few pages each
    for export_type in (
        "analytics_report",
        "customer_list",
        "transaction_history",
        "event_summary",
        "financial_report",
        "raw_data",
    ):
        report = build_export(
            duck,
            export_type,
            f,
            {"table": "event_analytics"} if export_type == "raw_data" else {},
            KEY,
            now=NOW,
        )
        assert any(s.table.height for s in report.sections), export_type
        for fmt in ("csv", "xlsx", "json"):
            assert render(report, fmt, tmp_path / export_type / "out").stat().st_size > 100
        pdf = render(report, "pdf", tmp_path / export_type / "out")
        ink = ink_per_page(pdf, tmp_path / export_type)
        assert ink and all(s > 0.005 for s in ink), (export_type, ink)


# --- filters and privacy --------------------------------------------------------------------------------


def test_filters_are_honored(both, frames):
    fo = frames["fct_orders"]
    f = parse_filters(mf.T1, {"date_from": "2026-11-03", "date_to": "2026-11-06", "venue_ids": [mf.V2]})
    tx = build_export(both, "transaction_history", f, {}, KEY, now=NOW).sections[0].table
    want = fo.filter(
        (pl.col("venue_id") == mf.V2) & pl.col("day").is_between(date(2026, 11, 3), date(2026, 11, 6))
    )
    assert tx.height == want.height > 0 and set(tx["venue_id"]) == {mf.V2}
    assert tx["gross_revenue_cents"].sum() == want["gross_revenue_cents"].sum()
    event = sorted(set(want["event_id"]))[0]
    f = parse_filters(mf.T1, {"date_from": "2026-11-02", "date_to": "2026-11-15", "event_ids": [event]})
    tx = build_export(both, "transaction_history", f, {}, KEY, now=NOW).sections[0].table
    assert set(tx["event_id"]) == {event}
    cat = next(iter(mf.CATEGORIES))
    f = parse_filters(mf.T1, {"date_from": "2026-11-02", "date_to": "2026-11-15", "category_ids": [cat]})
    daily = build_export(both, "analytics_report", f, {}, KEY, now=NOW).sections[0].table
    want = fo.filter((pl.col("tenant_id") == mf.T1) & (pl.col("category_id") == cat))
    assert daily["gross_revenue_cents"].sum() == want["gross_revenue_cents"].sum()
    assert daily.height == 14  # every day of the range, zero-filled
    # financial report: per-day totals equal revenue_by_channel for the tenant
    fin = build_export(
        both,
        "financial_report",
        parse_filters(mf.T1, {"date_from": "2026-11-02", "date_to": "2026-11-15"}),
        {},
        None,
        now=NOW,
    )
    rc = frames["revenue_by_channel"].filter(pl.col("tenant_id") == mf.T1)
    summary = fin.sections[0].table.row(0, named=True)
    for col in ("gross_revenue_cents", "refunds_cents", "fees_cents", "net_revenue_cents"):
        assert summary[col] == rc[col].sum()


def test_tenant_isolation_and_filter_errors(duck, frames):
    f = parse_filters(mf.T2, {"date_from": "2026-11-02", "date_to": "2026-11-15"})
    for export_type in ("transaction_history", "customer_list", "financial_report", "event_summary"):
        report = build_export(duck, export_type, f, {}, KEY, now=NOW)
        for s in report.sections:
            if "venue_id" in s.table.columns:
                assert set(s.table["venue_id"]) <= {mf.V3}, export_type
    with pytest.raises(ExportRequestError, match="date_from .* after date_to"):
        parse_filters(mf.T1, {"date_from": "2026-11-10", "date_to": "2026-11-01"})
    with pytest.raises(ExportRequestError, match="ISO date"):
        parse_filters(mf.T1, {"date_from": "yesterday"})
    with pytest.raises(ExportRequestError, match="unknown filter"):
        parse_filters(mf.T1, {"venue": "x"})
    with pytest.raises(ExportRequestError, match="invalid value"):
        parse_filters(mf.T1, {"venue_ids": ["x'; drop table"]})
    with pytest.raises(ExportRequestError, match="at most 366"):
        parse_filters(mf.T1, {"date_from": "2024-01-01", "date_to": "2026-01-01"})
    bad = parse_filters(mf.T1, {"event_ids": [mf.V1]})
    with pytest.raises(ExportRequestError, match="cannot apply to revenue_by_channel"):
        build_export(duck, "financial_report", bad, {}, None, now=NOW)
    seg = parse_filters(mf.T1, {"segments": ["Champions"]})
    with pytest.raises(ExportRequestError, match="customer marts") as err:
        build_export(duck, "customer_list", seg, {}, KEY, now=NOW)
    assert 400 <= err.value.status_code < 500
    with pytest.raises(ExportRequestError, match="options.table"):
        build_export(duck, "raw_data", bad, {"table": "stg_users"}, KEY, now=NOW)
    assert "stg_users" not in RAW_DATA_TABLES


def test_missing_mart_is_a_clear_error(tmp_path):
    wh = open_warehouse(f"duckdb:///{tmp_path / 'empty'}")
    with pytest.raises(MissingMartError, match="not built yet.*venue_analytics"):
        daily_venue_report(wh, mf.V1, DAY)
    with pytest.raises(MissingMartError, match="fct_orders"):
        build_export(wh, "customer_list", parse_filters(mf.T1, {}), {}, KEY, now=NOW)


def test_segments_filter_with_customer_marts(tmp_path, frames):
    wh = open_warehouse(f"duckdb:///{tmp_path / 'wh'}")
    mf.write(wh, frames)
    champions = mf.USERS[:5]
    wh.replace_table(
        "customer_360",
        pl.DataFrame(
            {
                "tenant_id": [mf.T1] * len(mf.USERS),
                "user_id": mf.USERS,  # customer_360's own key
                "segment": ["Champions" if u in champions else "Other" for u in mf.USERS],
            }
        ),
    )
    f = parse_filters(mf.T1, {"date_from": "2026-11-02", "date_to": "2026-11-15", "segments": ["Champions"]})
    customers = build_export(wh, "customer_list", f, {}, KEY, now=NOW).sections[1].table
    assert set(customers["segment"]) == {"Champions"}
    assert set(customers["customer"]) <= {pseudonym(KEY, mf.T1, u) for u in champions}
    tx = build_export(wh, "transaction_history", f, {}, KEY, now=NOW).sections[0].table
    assert (
        tx.height
        == frames["fct_orders"]
        .filter(pl.col("user_id").is_in(champions) & (pl.col("tenant_id") == mf.T1))
        .height
    )


def test_customer_exports_carry_only_keyed_pseudonyms(duck, frames, tmp_path):
    f = parse_filters(mf.T1, {"date_from": "2026-11-02", "date_to": "2026-11-15"})
    listing = build_export(duck, "customer_list", f, {}, KEY, now=NOW).sections[1]
    a = listing.table
    assert f"key {key_id(KEY)}" in listing.note  # the note names the key that made the pseudonyms
    b = build_export(duck, "customer_list", f, {}, KEY, now=NOW).sections[1].table
    c = build_export(duck, "customer_list", f, {}, b"another-key-0123456789", now=NOW).sections[1].table
    assert a["customer"].to_list() == b["customer"].to_list()  # stable
    assert not set(a["customer"]) & set(c["customer"])  # keyed
    assert pseudonym(KEY, mf.T1, mf.USERS[0]) != pseudonym(KEY, mf.T2, mf.USERS[0])  # per tenant
    assert "user_id" not in a.columns
    fo = frames["fct_orders"].filter(pl.col("tenant_id") == mf.T1)
    top = (
        fo.group_by("user_id")
        .agg(pl.col("gross_revenue_cents").sum())
        .sort("gross_revenue_cents", descending=True)
        .row(0)
    )
    row = a.filter(pl.col("customer") == pseudonym(KEY, mf.T1, top[0])).row(0, named=True)
    assert row["total_spent_cents"] == top[1]
    # no raw customer id in any file of any customer-carrying export
    for export_type, opts in (
        ("customer_list", {}),
        ("transaction_history", {}),
        ("raw_data", {"table": "fct_orders"}),
    ):
        report = build_export(duck, export_type, f, opts, KEY, now=NOW)
        for fmt in ("csv", "json", "xlsx"):
            data = render(report, fmt, tmp_path / export_type).read_bytes()
            if fmt == "xlsx" or data[:2] == b"PK":
                with zipfile.ZipFile(io.BytesIO(data)) as zf:
                    data = b"".join(zf.read(n) for n in zf.namelist())
            assert not any(u.encode() in data for u in mf.USERS), (export_type, fmt)


def test_pseudonym_key_is_required_outside_development():
    with pytest.raises(PseudonymKeyError, match="TT_EXPORT_PSEUDONYM_KEY is not set"):
        pseudonym_key({})
    with pytest.raises(PseudonymKeyError, match="at least 16"):
        pseudonym_key({"TT_EXPORT_PSEUDONYM_KEY": "short"})
    assert pseudonym_key({"TT_EXPORT_PSEUDONYM_KEY": "k" * 20}) == b"k" * 20
    assert pseudonym_key({"TT_ENV": "development"})
    with pytest.raises(ExportRequestError, match="needs a pseudonym key"):
        build_export(None, "customer_list", parse_filters(mf.T1, {}), {}, None)


def test_xlsx_headers_and_pdf_row_cap(tmp_path):
    df = pl.DataFrame({"n": list(range(30)), "amount_cents": [i * 101 for i in range(30)]})
    report = Report("Cap", DAY, DAY, (Section("Rows", df),))
    path = render(report, "pdf", tmp_path / "cap", pdf_max_rows=10)
    assert "First 10 of 30 rows" in pdf_text(path)
    assert xlsx_header("recognized_at", pl.Datetime("us", "UTC")) == "Recognized at (UTC)"
