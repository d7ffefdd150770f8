"""Series arithmetic over the query layer's answers, pure (no database, no FastAPI): the measure catalogue,
calendar periods and gap filling, moving averages computed after aggregation, and period comparisons aligned
by weekday. The /v1/metrics read routes (api/metrics_routes.py) are thin wrappers around these; docs/metrics.md
("Reading metrics") states the rules.

- A *gap* is a period the layer returned no row for. It is filled with what the measure's aggregate is over no
  rows: 0 for an additive measure (sum, count, count distinct), NULL for the others (formulas -- ratios --,
  avg, min, max): a day without orders has 0 revenue and no average order value.
- The moving average of N periods ends at its period. The first N-1 periods of the requested range have NULL:
  a mean over fewer periods is not comparable with the rest (ask for an earlier start to have them). For an
  additive measure it is the mean of the N values (gaps 0); for a formula over additive measures (AOV, refund
  rate, ...) it is the formula over the N periods' summed components -- a ratio of sums, never a mean of the
  periods' ratios; for any other measure the mean of the window's non-NULL values (NULL when all are).
- A comparison sets each day against the day `shift` days earlier: the previous period of equal length
  (shift = its length) or the same period a year before aligned by weekday (shift = 364 days). Change is
  value - base; percent change 100 * (value - base) / base, NULL where the base is 0 or either side NULL."""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta

from analytics_pipelines.registry.semantic import Cube, Measure, formula_refs

ADDITIVE = ("sum", "count", "count_distinct")
#: the moving-average window used when a request names none, per granularity (a day, a month of weeks, ...)
DEFAULT_WINDOW = {"hour": 24, "day": 7, "week": 4, "month": 3, "quarter": 4, "year": 2}
YEAR_SHIFT = 364  # 52 weeks: the same weekday a year before


def is_additive(m: Measure) -> bool:
    return m.agg in ADDITIVE


def gap_value(m: Measure) -> int | None:
    """What a period without rows holds: the measure's aggregate over no rows."""
    return 0 if is_additive(m) else None


def leaves(cube: Cube, m: Measure) -> list[Measure]:
    """The non-formula measures a measure is computed from (itself when it is no formula), in order."""
    if m.agg != "formula":
        return [m]
    out: list[Measure] = []
    for ref in formula_refs(m.formula or ""):
        for leaf in leaves(cube, cube.measure(ref)):
            if leaf not in out:
                out.append(leaf)
    return out


def ratio_of_sums(cube: Cube, m: Measure) -> bool:
    """A formula every leaf of which is additive: its moving value is the formula over summed leaves."""
    return m.agg == "formula" and all(is_additive(x) for x in leaves(cube, m))


def evaluate(cube: Cube, m: Measure, values: Mapping[str, float | None]) -> float | None:
    """The measure from its leaves' values (by leaf name); a division by 0 or a NULL operand is NULL, as in
    the layer's SQL."""
    if m.agg != "formula":
        return values.get(m.name)

    def go(node):
        if isinstance(node, ast.Expression):
            return go(node.body)
        if isinstance(node, ast.Name):
            return evaluate(cube, cube.measure(node.id), values)
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.UnaryOp):
            v = go(node.operand)
            return None if v is None else -v
        left, right = go(node.left), go(node.right)
        if left is None or right is None:
            return None
        if isinstance(node.op, ast.Div):
            return None if right == 0 else float(left) / right
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        return left * right

    formula_refs(m.formula or "")  # only names, numbers and + - * /
    return go(ast.parse(m.formula or "", mode="eval"))


# -- calendar ---------------------------------------------------------------------------------------------
def _midnight(d: date) -> datetime:
    return datetime.combine(d, time.min, UTC)


def _add_months(d: date, n: int) -> date:
    y, m = divmod(d.month - 1 + n, 12)
    return date(d.year + y, m + 1, 1)


def period_start(d: date, granularity: str) -> date:
    """The start of the period holding day `d` (weeks start on Monday, as date_trunc's ISO weeks)."""
    if granularity == "week":
        return d - timedelta(days=d.weekday())
    if granularity == "month":
        return d.replace(day=1)
    if granularity == "quarter":
        return date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)
    if granularity == "year":
        return date(d.year, 1, 1)
    return d


def periods(first: date, last: date, granularity: str) -> list[datetime]:
    """Every period of the granularity overlapping [first, last] (days inclusive), as UTC datetimes."""
    if granularity == "hour":
        start, end = _midnight(first), _midnight(last + timedelta(days=1))
        return [start + timedelta(hours=h) for h in range(int((end - start).total_seconds() // 3600))]
    step = {"week": 0, "month": 1, "quarter": 3, "year": 12}.get(granularity)
    out, d = [], period_start(first, granularity)
    while d <= last:
        out.append(_midnight(d))
        d = d + timedelta(days=7 if granularity == "week" else 1) if not step else _add_months(d, step)
    return out


def period_end(p: datetime, granularity: str) -> datetime:
    if granularity == "hour":
        return p + timedelta(hours=1)
    if granularity in ("day", "week"):
        return p + timedelta(days=1 if granularity == "day" else 7)
    months = {"month": 1, "quarter": 3, "year": 12}[granularity]
    return _midnight(_add_months(p.date(), months))


def parse_time(v) -> datetime:
    """A time value of the layer's JSON rows ("2026-10-01" or "2026-10-01T05:00:00Z") as a UTC datetime."""
    if isinstance(v, datetime):
        return v if v.tzinfo else v.replace(tzinfo=UTC)
    if isinstance(v, date):
        return _midnight(v)
    s = str(v)
    if len(s) == 10:
        return _midnight(date.fromisoformat(s))
    ts = datetime.fromisoformat(s.replace("Z", "+00:00"))
    return ts.astimezone(UTC) if ts.tzinfo else ts.replace(tzinfo=UTC)


def time_label(p: datetime, dim_type: str) -> str:
    """A period as the layer labels it: a date for a date dimension, an ISO timestamp (Z) otherwise."""
    return p.date().isoformat() if dim_type == "date" else p.isoformat().replace("+00:00", "Z")


# -- moving average -----------------------------------------------------------------------------------------
def moving(
    cube: Cube, m: Measure, points: Sequence[Mapping[str, float | None]], window: int
) -> list[float | None]:
    """The moving value of `m` over the last `window` points (each point: the measure's and its leaves'
    values by name); NULL for the first window-1 points."""
    out: list[float | None] = []
    ratio = ratio_of_sums(cube, m)
    for i in range(len(points)):
        if i + 1 < window:
            out.append(None)
            continue
        span = points[i + 1 - window : i + 1]
        if ratio:
            sums = {x.name: sum(p.get(x.name) or 0 for p in span) for x in leaves(cube, m)}
            out.append(evaluate(cube, m, sums))
            continue
        vals = [p.get(m.name) for p in span]
        vals = [v for v in vals if v is not None] if not is_additive(m) else [v or 0 for v in vals]
        out.append(sum(vals) / len(vals) if vals else None)
    return out


# -- comparison --------------------------------------------------------------------------------------------
def base_range(first: date, last: date, against: str) -> tuple[date, date, int]:
    """The base period of [first, last] and the shift in days: `previous` (the equal-length period just
    before) or `year` (364 days before: the same weekdays)."""
    shift = (last - first).days + 1 if against == "previous" else YEAR_SHIFT
    return first - timedelta(days=shift), last - timedelta(days=shift), shift


def change(value, base) -> tuple[float | None, float | None]:
    """(value - base, 100 * (value - base) / base); the percent is NULL where the base is 0 or NULL."""
    if value is None or base is None:
        return None, None
    diff = value - base
    return diff, (None if base == 0 else 100.0 * diff / base)


# -- catalogue ----------------------------------------------------------------------------------------------
def catalogue(cubes: Mapping[str, Cube]) -> list[dict]:
    """Every declared measure with what reading it needs: its cube, aggregation or formula, unit, currency,
    description, the cube's time dimension with its granularities, and how gaps are filled."""
    out = []
    for name, cube in cubes.items():
        td = cube.dimension(cube.time) if cube.time else None
        for m in cube.measures:
            out.append(
                {
                    "name": f"{name}.{m.name}",
                    "cube": name,
                    "aggregation": m.agg,
                    "formula": m.formula,
                    "unit": m.unit,
                    "currency": m.currency,
                    "description": m.description,
                    "additive": is_additive(m),
                    "gap_value": gap_value(m),
                    "time_dimension": f"{name}.{td.name}" if td else None,
                    "granularities": list(td.granularities) if td else [],
                    "dimensions": [f"{name}.{d.name}" for d in cube.dimensions],
                }
            )
    return out
