"""The report model every writer renders: a title, a period and sections, each a typed polars table with an
optional chart. Money columns are integer cents named `*_cents` (as in the marts); writers decide how to show
them (XLSX/PDF: currency amounts; CSV/JSON: the cents themselves)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime

import polars as pl

FORMATS = ("csv", "xlsx", "pdf", "json")


@dataclass(frozen=True)
class ChartSpec:
    """A line or bar chart of `y` columns over the `x` column of the section's table."""

    kind: str  # "line" | "bar"
    x: str
    y: tuple[str, ...]
    title: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("line", "bar"):
            raise ValueError(f"chart kind must be 'line' or 'bar', not {self.kind!r}")
        if not self.y:
            raise ValueError("a chart needs at least one y column")


@dataclass(frozen=True)
class Section:
    name: str
    table: pl.DataFrame
    chart: ChartSpec | None = None
    #: "table" (rows) or "kv" (a one-row table shown as label/value pairs in the PDF)
    layout: str = "table"
    note: str = ""

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("a section needs a name")
        if self.layout not in ("table", "kv"):
            raise ValueError(f"layout must be 'table' or 'kv', not {self.layout!r}")
        if self.chart is not None:
            missing = [c for c in (self.chart.x, *self.chart.y) if c not in self.table.columns]
            if missing:
                raise ValueError(f"section {self.name!r}: chart columns not in the table: {missing}")


@dataclass(frozen=True)
class Report:
    title: str
    period_start: date
    period_end: date  # inclusive
    sections: tuple[Section, ...]
    subtitle: str = ""
    generated_at: datetime | None = None
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.period_end < self.period_start:
            raise ValueError(f"period ends ({self.period_end}) before it starts ({self.period_start})")
        if not self.sections:
            raise ValueError("a report needs at least one section")
        names = [s.name for s in self.sections]
        if len(set(names)) != len(names):
            raise ValueError(f"section names must be unique: {names}")

    @property
    def period_label(self) -> str:
        if self.period_start == self.period_end:
            return self.period_start.isoformat()
        return f"{self.period_start.isoformat()} – {self.period_end.isoformat()}"


def is_money(column: str) -> bool:
    return column.endswith("_cents")


def is_pct(column: str) -> bool:
    return column.endswith("_pct")


def label(column: str) -> str:
    """`gross_revenue_cents` -> `Gross revenue`, `capacity_sold_pct` -> `Capacity sold %`."""
    name = column[: -len("_cents")] if is_money(column) else column
    name = name[: -len("_pct")] + " %" if is_pct(column) else name
    name = name.replace("_", " ").strip()
    return name[:1].upper() + name[1:]


def slug(text: str, max_len: int = 40) -> str:
    """A file-name-safe ASCII slug (sheet names, zip members)."""
    s = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    return (s or "section")[:max_len]


def single_currency(df: pl.DataFrame) -> str | None:
    """The currency of a frame's money when it has a `currency` column with one value."""
    if "currency" not in df.columns:
        return None
    values = df["currency"].drop_nulls().unique().to_list()
    return values[0] if len(values) == 1 else None
