"""A widget's answer as a Report for the project's writers (analytics_pipelines/reports/writers.py): one
section whose columns are the answer's columns in order. A member whose unit is cents is named
`<member>_cents`, so the writers treat it as money (CSV: the integer cents; XLSX: the amount with a currency
format), as every other export of the platform does."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl

from analytics_pipelines.reports.model import Report, Section


def column_names(members: dict[str, dict], columns: list[str]) -> dict[str, str]:
    return {c: f"{c}_cents" if members.get(c, {}).get("unit") == "cents" else c for c in columns}


def widget_report(title: str, answer: dict, generated_at: datetime, today: date) -> Report:
    """The report of one widget's answer (`answer`: the query layer's dict, rows JSON-able)."""
    meta = answer["meta"]
    rows = answer["data"]
    columns = list(rows[0]) if rows else list(meta["members"])  # the rows' column order
    names = column_names(meta["members"], columns)
    table = (
        pl.DataFrame({names[c]: [r.get(c) for r in rows] for c in columns}, strict=False)
        if columns
        else pl.DataFrame()
    )
    first, last = (
        (date.fromisoformat(d) for d in meta["date_range"]) if meta.get("date_range") else (today, today)
    )
    return Report(
        title=title,
        period_start=first,
        period_end=last,
        sections=(Section(name=title[:80] or "widget", table=table),),
        subtitle="Widget export",
        generated_at=generated_at,
        metadata={"members": columns, "as_of": meta.get("as_of")},
    )
