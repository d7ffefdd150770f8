"""Writers: one Report -> CSV, XLSX, PDF or JSON file.

- CSV: one file when the report has one section, otherwise a zip holding one CSV per section
  (`01_<section>.csv`, ...). Money stays integer cents under its `*_cents` name (lossless; XLSX is the
  spreadsheet for people), dates ISO 8601, timestamps UTC ISO 8601 with `Z`.
- XLSX: one sheet per section; money as currency amounts (cents / 100) with a currency number format, dates
  and timestamps as real Excel dates, bold header on a dark fill, fitted column widths, frozen header row.
- PDF: A4 (landscape when a table is wide), header with title and period, footer with "page n of m", tables
  whose rows wrap, matplotlib charts as PNG images; DejaVu Sans (shipped with matplotlib) so any text
  DejaVu covers (Latin, Greek, Cyrillic, ...) prints as written. Long tables are cut at `pdf_max_rows` with a
  note saying so (the other formats carry every row).
- JSON: {title, subtitle, period, generated_at, metadata, sections: [{name, columns, rows, records}]}; dates
  ISO, money integer cents under `*_cents`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from analytics_pipelines.reports.model import (
    FORMATS,
    Report,
    Section,
    is_money,
    is_pct,
    label,
    single_currency,
    slug,
)

XLSX_MAX_ROWS = 1_048_575  # Excel's sheet limit minus the header row
PDF_MAX_ROWS = 500


def render(report: Report, fmt: str, path: str | Path, pdf_max_rows: int = PDF_MAX_ROWS) -> Path:
    """Write `report` as `fmt` at `path` (suffix set by the format; a multi-section CSV becomes `.zip`).
    Written to a temporary name and renamed, so a reader never sees half a file. Returns the final path."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    path = Path(path)
    if fmt == "csv":
        data, suffix = csv_bytes(report)
    elif fmt == "xlsx":
        data, suffix = xlsx_bytes(report), ".xlsx"
    elif fmt == "pdf":
        data, suffix = pdf_bytes(report, pdf_max_rows), ".pdf"
    else:
        data, suffix = json_bytes(report), ".json"
    final = path.with_suffix(suffix)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(final)
    return final


# --- values ---------------------------------------------------------------------------------------------


def _utc(ts: datetime) -> datetime:
    return ts.astimezone(UTC) if ts.tzinfo else ts.replace(tzinfo=UTC)


def _iso(value):
    """JSON/CSV text for dates and timestamps (timestamps in UTC with Z)."""
    if isinstance(value, datetime):
        return (
            _utc(value).strftime("%Y-%m-%dT%H:%M:%S")
            + (f".{value.microsecond:06d}" if value.microsecond else "")
            + "Z"
        )
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _display(column: str, value, currency: str | None = None) -> str:
    """Human text for the PDF."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if is_money(column) and isinstance(value, int | float):
        amount = f"{value / 100:,.2f}"
        return f"{amount} {currency}" if currency else amount
    if isinstance(value, datetime):
        return _utc(value).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        return f"{value:,.1f}" if is_pct(column) else f"{value:,.2f}"
    return str(value)


_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


def _short(text: str) -> str:
    """PDF tables show the first 8 characters of UUIDs and customer pseudonyms."""
    if _UUID.match(text):
        return text[:8] + "…"
    if text.startswith("cus_") and len(text) > 16:
        return text[:12] + "…"
    return text


# --- CSV --------------------------------------------------------------------------------------------------


def _csv_text(df: pl.DataFrame) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(df.columns)
    for row in df.iter_rows():
        w.writerow(["" if v is None else _iso(v) for v in row])
    return buf.getvalue()


def csv_bytes(report: Report) -> tuple[bytes, str]:
    if len(report.sections) == 1:
        return _csv_text(report.sections[0].table).encode(), ".csv"
    buf = io.BytesIO()
    stamp = (report.generated_at or datetime(1980, 1, 1)).timetuple()[:6]
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i, s in enumerate(report.sections, 1):
            info = zipfile.ZipInfo(f"{i:02d}_{slug(s.name)}.csv", date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, _csv_text(s.table))
    return buf.getvalue(), ".zip"


# --- JSON -------------------------------------------------------------------------------------------------


def json_bytes(report: Report) -> bytes:
    doc = {
        "title": report.title,
        "subtitle": report.subtitle,
        "period": {"start": report.period_start.isoformat(), "end": report.period_end.isoformat()},
        "generated_at": _iso(report.generated_at) if report.generated_at else None,
        "metadata": report.metadata,
        "sections": [
            {
                "name": s.name,
                "note": s.note,
                "columns": [{"name": c, "type": str(t)} for c, t in s.table.schema.items()],
                "rows": s.table.height,
                "records": [{k: _iso(v) for k, v in r.items()} for r in s.table.iter_rows(named=True)],
            }
            for s in report.sections
        ],
    }
    return json.dumps(doc, ensure_ascii=False, indent=1, default=str).encode()


# --- XLSX -------------------------------------------------------------------------------------------------


def _sheet_title(name: str, used: set[str]) -> str:
    base = "".join("_" if ch in "[]:*?/\\" else ch for ch in name).strip("'")[:31] or "Sheet"
    title, n = base, 2
    while title.lower() in used:
        suffix = f" ({n})"
        title, n = base[: 31 - len(suffix)] + suffix, n + 1
    used.add(title.lower())
    return title


def _xlsx_format(column: str, dtype: pl.DataType, currency: str | None) -> str | None:
    if is_money(column):
        return f'#,##0.00 "{currency}"' if currency else "#,##0.00"
    if dtype == pl.Date:
        return "yyyy-mm-dd"
    if isinstance(dtype, pl.Datetime):
        return "yyyy-mm-dd hh:mm:ss"
    if is_pct(column):
        return "0.0"
    if dtype.is_integer():
        return "#,##0"
    if dtype.is_float():
        return "#,##0.00"
    return None


def _xlsx_value(column: str, value):
    if value is None:
        return None
    if is_money(column) and isinstance(value, int | float):
        return value / 100
    if isinstance(value, datetime):
        return _utc(value).replace(tzinfo=None)  # Excel has no time zones: UTC, as the header says
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list | dict | tuple):
        return json.dumps(value, default=str)
    return value


def xlsx_header(column: str, dtype: pl.DataType) -> str:
    """The header a column gets in the XLSX (money without `_cents`: it holds amounts)."""
    text = label(column)
    return f"{text} (UTC)" if isinstance(dtype, pl.Datetime) else text


def xlsx_bytes(report: Report) -> bytes:
    """Streamed (openpyxl write-only): memory stays flat however many rows a sheet has."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    wb = Workbook(write_only=True)
    wb.properties.title = report.title
    wb.properties.subject = f"{report.subtitle} {report.period_label}".strip()
    header_font = Font(bold=True, color="FFFFFF")
    header_fill = PatternFill("solid", fgColor="1F3A5F")
    used: set[str] = set()
    for s in report.sections:
        df = s.table
        if df.height > XLSX_MAX_ROWS:
            raise ValueError(
                f"section {s.name!r} has {df.height:,} rows; an XLSX sheet holds at most "
                f"{XLSX_MAX_ROWS:,} (export as CSV instead, or narrow the filters)"
            )
        ws = wb.create_sheet(_sheet_title(s.name, used))
        currency = single_currency(df)
        cols = list(df.schema.items())
        formats = [_xlsx_format(c, t, currency) for c, t in cols]
        for j, (c, t) in enumerate(cols, 1):  # widths, frozen header and filter are declared before the rows
            sample = [_display(c, v, currency) for v in df[c].head(200).to_list()]
            width = max([len(xlsx_header(c, t)), *(len(x) for x in sample)]) + 2
            ws.column_dimensions[get_column_letter(j)].width = min(max(width, 8), 60)
        ws.freeze_panes = "A2"
        if df.width:
            ws.auto_filter.ref = f"A1:{get_column_letter(df.width)}{df.height + 1}"
        header = []
        for c, t in cols:
            cell = WriteOnlyCell(ws, value=xlsx_header(c, t))
            cell.font, cell.fill, cell.alignment = header_font, header_fill, Alignment(vertical="center")
            header.append(cell)
        ws.append(header)
        names = [c for c, _ in cols]
        for row in df.iter_rows():
            out = []
            for c, fmt, v in zip(names, formats, row, strict=True):
                value = _xlsx_value(c, v)
                if fmt and value is not None:
                    cell = WriteOnlyCell(ws, value=value)
                    cell.number_format = fmt
                    out.append(cell)
                else:
                    out.append(value)
            ws.append(out)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


# --- PDF --------------------------------------------------------------------------------------------------


def _font_files() -> tuple[Path, Path]:
    import matplotlib

    ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return ttf / "DejaVuSans.ttf", ttf / "DejaVuSans-Bold.ttf"


def chart_png(section: Section, width_in: float = 9.0, height_in: float = 3.2) -> bytes:
    """The section's chart as PNG bytes (matplotlib, Agg backend; money columns plotted as amounts)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    spec = section.chart
    assert spec is not None
    df = section.table
    fig = Figure(figsize=(width_in, height_in), dpi=110)
    ax = fig.add_subplot()
    xs = [_display(spec.x, v) for v in df[spec.x].to_list()]  # categorical axis: one tick per row
    n = len(spec.y)
    for i, col in enumerate(spec.y):
        ys = [(v or 0) / 100 if is_money(col) else (v or 0) for v in df[col].to_list()]
        if spec.kind == "line":
            ax.plot(range(len(xs)), ys, marker="o", markersize=3, label=label(col))
        else:
            positions = [k + (i - (n - 1) / 2) * (0.8 / n) for k in range(len(xs))]
            ax.bar(positions, ys, width=0.8 / n, label=label(col))
    step = max(1, math.ceil(len(xs) / 16))
    ax.set_xticks(
        range(0, len(xs), step),
        xs[::step],
        rotation=30 if len(xs) > 8 else 0,
        ha="right" if len(xs) > 8 else "center",
    )
    ax.set_title(spec.title or section.name, fontsize=10)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    if n > 1 or spec.kind == "line":
        ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def pdf_bytes(report: Report, max_rows: int = PDF_MAX_ROWS) -> bytes:
    from fpdf import FPDF, FontFace
    from fpdf.enums import WrapMode

    regular, bold = _font_files()
    wide = any(s.layout == "table" and s.table.width > 7 for s in report.sections)
    generated = _utc(report.generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")

    class _PDF(FPDF):
        def header(self):
            self.set_font("dejavu", "B", 13)
            self.cell(0, 7, report.title, new_x="LMARGIN", new_y="NEXT")
            self.set_font("dejavu", "", 9)
            self.set_text_color(90, 90, 90)
            sub = f"{report.subtitle} · {report.period_label}" if report.subtitle else report.period_label
            self.cell(0, 5, sub, new_x="LMARGIN", new_y="NEXT")
            self.set_text_color(0, 0, 0)
            self.set_draw_color(31, 58, 95)
            self.line(self.l_margin, self.get_y() + 1, self.w - self.r_margin, self.get_y() + 1)
            self.ln(4)

        def footer(self):
            self.set_y(-12)
            self.set_font("dejavu", "", 8)
            self.set_text_color(110, 110, 110)
            self.cell(0, 6, f"TicketToken Analytics · generated {generated}", align="L")
            self.set_x(self.l_margin)
            self.cell(0, 6, f"Page {self.page_no()} of {{nb}}", align="R")

    pdf = _PDF(orientation="L" if wide else "P", format="A4")
    pdf.set_title(report.title)
    pdf.set_creator("TicketToken Analytics Pipelines")
    pdf.add_font("dejavu", "", str(regular))
    pdf.add_font("dejavu", "B", str(bold))
    pdf.alias_nb_pages()
    pdf.set_auto_page_break(auto=True, margin=16)
    pdf.add_page()
    heading = FontFace(emphasis="BOLD", color=(255, 255, 255), fill_color=(31, 58, 95))
    chart_w = 10.5 if wide else 7.2
    for s in report.sections:
        chart_h = pdf.epw * 3.2 / chart_w if s.chart is not None and s.table.height else 0
        if pdf.get_y() + 7 + chart_h + 20 > pdf.h - 16:  # keep a heading with its chart and first rows
            pdf.add_page()
        pdf.set_font("dejavu", "B", 11)
        pdf.cell(0, 7, s.name, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("dejavu", "", 8)
        currency = single_currency(s.table)
        if s.note:
            pdf.multi_cell(0, 4, s.note, new_x="LMARGIN", new_y="NEXT")
        if s.table.height == 0:
            pdf.cell(0, 6, "No data for this period.", new_x="LMARGIN", new_y="NEXT")
            pdf.ln(3)
            continue
        if s.chart is not None and s.table.height:
            pdf.image(io.BytesIO(chart_png(s, width_in=chart_w)), w=pdf.epw)
            pdf.ln(2)
        shown = s.table.head(max_rows)
        if s.layout == "kv":
            rows = [[label(c), _display(c, shown[c][0], currency)] for c in shown.columns]
            with pdf.table(
                rows=[["Metric", "Value"], *rows],
                col_widths=(1, 1),
                width=min(pdf.epw, 140),
                align="LEFT",
                headings_style=heading,
                text_align=("LEFT", "RIGHT"),
                line_height=4.5,
            ):
                pass
        else:
            # the tenant is the reader's own; ids are shortened (full ids are in the other formats)
            shown = shown.drop([c for c in ("tenant_id",) if c in shown.columns and shown.width > 1])
            aligns = tuple("RIGHT" if t.is_numeric() else "LEFT" for t in shown.schema.values())
            texts = {c: [_short(_display(c, v)) for v in shown[c].to_list()] for c in shown.columns}
            heads = [label(c) + (f" ({currency})" if currency and is_money(c) else "") for c in shown.columns]
            weights = tuple(
                max([*(len(w) for w in h.split()), *(min(len(x), 24) for x in texts[c][:200]), 4]) + 2
                for h, c in zip(heads, shown.columns, strict=True)
            )
            pdf.set_font("dejavu", "", 8 if shown.width <= 10 else 6.5)
            with pdf.table(
                col_widths=weights,
                headings_style=heading,
                text_align=aligns,
                line_height=4.2,
                wrapmode=WrapMode.CHAR,
                repeat_headings=1,
                width=pdf.epw,
            ) as table:
                head = table.row()
                for h in heads:
                    head.cell(h)
                for i in range(shown.height):
                    row = table.row()
                    for c in shown.columns:
                        row.cell(texts[c][i])
        if s.table.height > max_rows:
            pdf.set_font("dejavu", "", 8)
            pdf.multi_cell(
                0,
                5,
                f"First {max_rows:,} of {s.table.height:,} rows shown; the CSV, XLSX and "
                f"JSON exports carry every row.",
                new_x="LMARGIN",
                new_y="NEXT",
            )
        pdf.ln(4)
    return bytes(pdf.output())
