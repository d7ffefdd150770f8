"""The query layer's vocabulary in the table registry: a served mart's measures, dimensions and joins (a
"cube", in Cube's words). Declared on a mart's registry entry (`Table(cube=...)`, the declarations are in
registry/cubes.py) and validated when the registry loads: a measure or dimension over a column the mart does
not have, a formula over an unknown measure, a join to a mart without a cube, a granularity that is not one of
hour..year -- the import fails.

Ratios (average order value, refund rate, conversion rate) are `formula` measures: computed from the other
measures' aggregates after aggregation, never averaged over per-row ratios. The compiler is
analytics_pipelines/query/compile.py; docs/query.md explains the layer."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

Aggregation = Literal["sum", "count", "count_distinct", "avg", "min", "max", "formula"]
AGGREGATIONS = ("sum", "count", "count_distinct", "avg", "min", "max", "formula")
#: the time granularities, finest first
GRANULARITIES = ("hour", "day", "week", "month", "quarter", "year")
#: a dimension's value type: what a filter value must parse as (uuid, number, date, timestamp, boolean)
DimType = Literal["string", "uuid", "number", "date", "timestamp", "boolean"]
DIM_TYPES = ("string", "uuid", "number", "date", "timestamp", "boolean")
NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
#: the default pattern of a free-text dimension's filter values: words, digits and a little punctuation;
#: no quote pairs, semicolons, comment markers or `=` (values are bound as parameters anyway)
TEXT_VALUE = r"^(?!.*(--|/\*|\*/|;|=|''|\\))[\w .,:'&()/+#!?@-]{1,200}$"


@dataclass(frozen=True)
class Measure:
    """An aggregate over the mart's rows (`agg` over `column`; `count` without a column counts rows), or a
    `formula` over other measures of the same cube (+ - * / and numbers; a division by 0 is NULL).
    `when`: only rows whose column equals the value count (e.g. one KPI metric of a long table)."""

    name: str
    agg: Aggregation
    column: str | None = None
    formula: str | None = None
    unit: str = "count"
    description: str = ""
    when: tuple[tuple[str, str], ...] = ()
    #: an ISO 4217 code when the unit is money (the marts hold one currency per tenant: cents of it)
    currency: str | None = None


@dataclass(frozen=True)
class Dimension:
    """A column to group and filter by. Time dimensions (`date`, `timestamp`) list the granularities they
    may be truncated to. `values`: the closed set a filter value must come from; otherwise string values
    must match `pattern` (TEXT_VALUE by default)."""

    name: str
    column: str
    type: DimType = "string"
    granularities: tuple[str, ...] = ()
    values: tuple[str, ...] = ()
    pattern: str | None = None
    description: str = ""

    @property
    def is_time(self) -> bool:
        return self.type in ("date", "timestamp")


@dataclass(frozen=True)
class Join:
    """A join path this cube allows: to the cube of mart `to`, on these columns (equal on both sides; the
    tenant column is always added). Only many-to-one: the other cube's dimensions may be used, its measures
    not (they would fan out)."""

    to: str
    on: tuple[str, ...]
    relationship: Literal["many_to_one"] = "many_to_one"


@dataclass(frozen=True)
class Cube:
    """What the query layer may ask of a mart. `columns`: the mart's columns (docs/marts.md; a test checks
    them against the materialized mart), against which every declaration is validated."""

    columns: tuple[str, ...]
    measures: tuple[Measure, ...]
    dimensions: tuple[Dimension, ...]
    joins: tuple[Join, ...] = ()
    #: the time dimension a request's date range is bounded on; without one the default range applies
    time: str | None = None
    #: the column whose latest value (in the token's scope) is the mart's as-of time in the response
    as_of: str | None = None
    #: rows the cube always reads, column = value (e.g. scope = 'venue' of the customer marts)
    fixed: tuple[tuple[str, str], ...] = ()
    #: a mart holding several grains (sales_metrics' `granularity`): the grain read per requested
    #: time granularity ("" = no time granularity)
    grain_column: str | None = None
    grains: tuple[tuple[str, str], ...] = ()
    description: str = ""

    def measure(self, name: str) -> Measure | None:
        return next((m for m in self.measures if m.name == name), None)

    def dimension(self, name: str) -> Dimension | None:
        return next((d for d in self.dimensions if d.name == name), None)

    def grain_for(self, granularity: str | None) -> str | None:
        return dict(self.grains).get(granularity or "")


class FormulaError(ValueError):
    pass


def formula_refs(formula: str) -> list[str]:
    """The measure names a formula uses; FormulaError for anything but names, numbers, + - * / and ()."""
    try:
        tree = ast.parse(formula, mode="eval")
    except SyntaxError as exc:
        raise FormulaError(f"formula {formula!r} does not parse") from exc
    refs: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            refs.append(node.id)
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise FormulaError(f"formula {formula!r}: only numbers are allowed as constants")
        elif not isinstance(
            node,
            (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.USub, ast.Load),
        ):
            raise FormulaError(f"formula {formula!r}: {type(node).__name__} is not allowed")
    return refs


def render_formula(formula: str, sql_of: Callable[[str], str]) -> str:
    """The formula as SQL: each measure name replaced by `sql_of(name)`; a division is float division that
    is NULL when its denominator is 0 (both warehouse dialects)."""

    def go(node) -> str:
        if isinstance(node, ast.Expression):
            return go(node.body)
        if isinstance(node, ast.Name):
            return sql_of(node.id)
        if isinstance(node, ast.Constant):
            return repr(node.value)
        if isinstance(node, ast.UnaryOp):
            return f"(-{go(node.operand)})"
        left, right = go(node.left), go(node.right)
        if isinstance(node.op, ast.Div):
            return f"(CAST({left} AS FLOAT8) / NULLIF({right}, 0))"
        return f"({left} {dict(((ast.Add, '+'), (ast.Sub, '-'), (ast.Mult, '*')))[type(node.op)]} {right})"

    formula_refs(formula)
    return go(ast.parse(formula, mode="eval"))


def validate_cube(table, cubes: Mapping[str, Cube]) -> list[str]:
    """Problems of `table.cube` (table: a registry Table; cubes: every registered table's cube by name)."""
    c: Cube = table.cube
    n = table.name
    cols = set(c.columns)
    out: list[str] = []

    def col(what: str, column: str | None) -> None:
        if column is not None and column not in cols:
            out.append(f"{n}: {what} reads unknown column {column!r}")

    if not table.serve:
        out.append(f"{n}: a cube on a mart the API does not serve")
    if not table.tenant_column or not table.venue_column:
        out.append(f"{n}: a cube needs the mart's tenant and venue columns (the token's scope)")
    col("the tenant filter", table.tenant_column)
    col("the venue filter", table.venue_column)
    names = [m.name for m in c.measures] + [d.name for d in c.dimensions]
    out += [f"{n}: member {x} declared twice" for x in sorted({x for x in names if names.count(x) > 1})]
    out += [f"{n}: member name {x!r} is not a lower-case identifier" for x in names if not NAME.match(x)]
    measures = {m.name: m for m in c.measures}
    for m in c.measures:
        if m.agg not in AGGREGATIONS:
            out.append(f"{n}.{m.name}: unknown aggregation {m.agg!r}")
        elif m.agg == "formula":
            if not m.formula or m.column:
                out.append(f"{n}.{m.name}: a formula measure has a formula and no column")
                continue
            try:
                refs = formula_refs(m.formula)
            except FormulaError as exc:
                out.append(f"{n}.{m.name}: {exc}")
                continue
            out += [f"{n}.{m.name}: formula uses unknown measure {r!r}" for r in refs if r not in measures]
        else:
            if m.formula:
                out.append(f"{n}.{m.name}: only a formula measure has a formula")
            if m.column is None and m.agg != "count":
                out.append(f"{n}.{m.name}: {m.agg} needs a column")
            col(f"measure {m.name}", m.column)
        for wc, _ in m.when:
            col(f"measure {m.name}'s condition", wc)
        if not m.unit or not m.description:
            out.append(f"{n}.{m.name}: a unit and a description are required")
    out += _formula_cycles(n, measures)
    for d in c.dimensions:
        col(f"dimension {d.name}", d.column)
        if d.type not in DIM_TYPES:
            out.append(f"{n}.{d.name}: unknown type {d.type!r}")
        bad = [g for g in d.granularities if g not in GRANULARITIES]
        if bad:
            out.append(f"{n}.{d.name}: unknown granularities {bad} (allowed: {', '.join(GRANULARITIES)})")
        if d.is_time != bool(d.granularities):
            out.append(f"{n}.{d.name}: time dimensions, and only they, list granularities")
        if d.type == "date" and "hour" in d.granularities:
            out.append(f"{n}.{d.name}: a date has no hours")
        if d.pattern:
            try:
                re.compile(d.pattern)
            except re.error as exc:
                out.append(f"{n}.{d.name}: pattern does not compile ({exc})")
    for what, name in (("time", c.time),):
        if name is not None and (c.dimension(name) is None or not c.dimension(name).is_time):
            out.append(f"{n}: {what} {name!r} is not a time dimension of the cube")
    col("the as-of time", c.as_of)
    for fc, _ in c.fixed:
        col("a fixed filter", fc)
    col("the grain column", c.grain_column)
    for j in c.joins:
        other = cubes.get(j.to)
        if other is None:
            out.append(f"{n}: join to {j.to}, which has no cube")
            continue
        for k in j.on:
            col(f"join to {j.to}", k)
            if k not in other.columns:
                out.append(f"{n}: join to {j.to} on {k!r}, a column {j.to} does not have")
    return out


def _formula_cycles(table: str, measures: dict[str, Measure]) -> list[str]:
    out, state = [], {}

    def visit(name: str, path: list[str]) -> None:
        m = measures.get(name)
        if m is None or m.agg != "formula" or state.get(name) == 2:
            return
        if state.get(name) == 1:
            out.append(f"{table}: formula cycle " + " -> ".join([*path, name]))
            return
        state[name] = 1
        try:
            refs = formula_refs(m.formula or "")
        except FormulaError:
            refs = []
        for r in refs:
            visit(r, [*path, name])
        state[name] = 2

    for name in measures:
        visit(name, [])
    return out


def cubes_markdown(cubes: Mapping[str, Cube]) -> str:
    """docs/query.md's catalogue of measures and dimensions (between its markers), from the registry."""
    lines = []
    for name, c in cubes.items():
        lines += [f"### `{name}`", "", c.description, ""]
        lines += ["| measure | aggregation | unit | description |", "|---|---|---|---|"]
        for m in c.measures:
            how = f"`{m.formula}`" if m.agg == "formula" else f"{m.agg}({m.column or '*'})"
            if m.when:
                how += " where " + ", ".join(f"{k} = '{v}'" for k, v in m.when)
            lines.append(f"| `{name}.{m.name}` | {how} | {m.unit} | {m.description} |")
        lines += ["", "| dimension | column | type | granularities / values |", "|---|---|---|---|"]
        for d in c.dimensions:
            allowed = (
                ", ".join(d.granularities) or ", ".join(d.values) or (f"`{d.pattern}`" if d.pattern else "")
            )
            lines.append(f"| `{name}.{d.name}` | {d.column} | {d.type} | {allowed} |")
        extra = []
        if c.joins:
            extra.append(
                "joins (many-to-one, dimensions only): "
                + ", ".join(f"`{j.to}` on {', '.join(j.on)}" for j in c.joins)
            )
        if c.time:
            extra.append(f"date range bounded on `{name}.{c.time}`")
        if c.fixed:
            extra.append("always reads " + ", ".join(f"{k} = '{v}'" for k, v in c.fixed))
        if c.grain_column:
            extra.append(
                f"reads the `{c.grain_column}` rows matching the requested granularity: "
                + ", ".join(f"{g or '(none)'} → {v}" for g, v in c.grains)
            )
        if c.as_of:
            extra.append(f"as-of: latest `{c.as_of}` in the token's scope")
        lines += ["", *(f"- {e}" for e in extra), ""]
    return "\n".join(lines)
