"""Compile a query-layer request to parameterized SQL: pure, no database, no FastAPI.

Every identifier in the SQL comes from the registry's cube declarations (table names, columns, member names
as aliases, granularities from a fixed list); everything a request carries that is not a registry name -- filter
values, dates, the tenant and venue of the token, limit and offset -- is a `%s` parameter. A request naming
anything the registry does not declare is refused (QueryError, one entry per member at fault) before any SQL
exists. The SQL is the subset both warehouse backends run unchanged (embedded DuckDB and PostgreSQL):
`date_trunc`, `CAST(... AS FLOAT8)`, `NULLIF`, `count(DISTINCT)`, `strpos`, `starts_with`, ordinal GROUP BY,
`NULLS LAST`."""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from analytics_pipelines.query.model import QueryRequest
from analytics_pipelines.registry.semantic import TEXT_VALUE, Cube, Dimension, Measure, render_formula


class QueryError(ValueError):
    """The request names something the registry does not allow; `errors`: [{field, member, msg}]."""

    def __init__(self, errors: list[dict]):
        super().__init__("; ".join(f"{e['field']}: {e['msg']}" for e in errors))
        self.errors = errors


@dataclass(frozen=True)
class Limits:
    max_rows: int = 10_000
    default_limit: int = 1_000
    #: the longest date range a request may ask (and the default range ending today)
    max_days: int = 366


@dataclass(frozen=True)
class Scope:
    """The token's rows: its tenant, and its venue unless it reads the whole tenant (venue_id None)."""

    tenant_id: str
    venue_id: str | None = None


@dataclass
class Compiled:
    sql: str
    params: list
    #: the marts read (the reader's cache is keyed on them and forgets on their change)
    tables: list[str]
    #: result column (= member alias) -> {kind, unit, description, ...}
    members: dict[str, dict]
    date_range: tuple[date, date] | None
    limit: int
    offset: int
    #: (mart, sql, params): the latest as-of value of each mart read, in the same scope
    as_of: list[tuple[str, str, list]] = field(default_factory=list)


@dataclass
class _Ref:
    cube_name: str
    cube: Cube
    alias: str  # t0 (the measures' cube) or t1.. (joined)


class _Compiler:
    def __init__(
        self,
        req: QueryRequest,
        cubes: dict[str, Cube],
        tables: dict,
        scope: Scope,
        limits: Limits,
        today: date,
    ):
        self.req, self.cubes, self.tables, self.scope, self.limits, self.today = (
            req,
            cubes,
            tables,
            scope,
            limits,
            today,
        )
        self.errors: list[dict] = []
        self.root: _Ref | None = None
        self.joined: dict[str, _Ref] = {}

    def fail(self, where: str, member, msg: str) -> None:
        self.errors.append({"field": where, "member": member, "msg": msg})

    # -- resolving names ----------------------------------------------------------------------
    def _split(self, where: str, member: str) -> tuple[str, Cube, str] | None:
        cube_name, dot, name = member.partition(".")
        if not dot or cube_name not in self.cubes:
            self.fail(
                where,
                member,
                f"unknown member {member!r}: expected <mart>.<member> of a mart with a cube ({', '.join(sorted(self.cubes))})",
            )
            return None
        return cube_name, self.cubes[cube_name], name

    def measure(self, where: str, member: str) -> Measure | None:
        got = self._split(where, member)
        if got is None:
            return None
        cube_name, cube, name = got
        m = cube.measure(name)
        if m is None:
            self.fail(
                where,
                member,
                f"unknown measure {member!r} (measures of {cube_name}: {', '.join(x.name for x in cube.measures)})",
            )
            return None
        if self.root is None:
            self.root = _Ref(cube_name, cube, "t0")
        elif self.root.cube_name != cube_name:
            self.fail(
                where,
                member,
                f"measures of {self.root.cube_name} and {cube_name} in one query: a join would fan them out; ask each mart separately",
            )
            return None
        return m

    def dimension(self, where: str, member: str) -> tuple[_Ref, Dimension] | None:
        got = self._split(where, member)
        if got is None:
            return None
        cube_name, cube, name = got
        d = cube.dimension(name)
        if d is None:
            self.fail(
                where,
                member,
                f"unknown dimension {member!r} (dimensions of {cube_name}: {', '.join(x.name for x in cube.dimensions)})",
            )
            return None
        if self.root is None:
            self.root = _Ref(cube_name, cube, "t0")
        if cube_name == self.root.cube_name:
            return self.root, d
        if not any(j.to == cube_name for j in self.root.cube.joins):
            allowed = ", ".join(j.to for j in self.root.cube.joins) or "none"
            self.fail(where, member, f"{self.root.cube_name} may not join {cube_name} (its joins: {allowed})")
            return None
        ref = self.joined.setdefault(cube_name, _Ref(cube_name, cube, f"t{len(self.joined) + 1}"))
        return ref, d

    # -- SQL pieces -----------------------------------------------------------------------------
    def measure_sql(self, m: Measure, params: list) -> str:
        cube = self.root.cube
        if m.agg == "formula":
            return render_formula(m.formula, lambda name: self.measure_sql(cube.measure(name), params))
        col = f"t0.{m.column}" if m.column else None
        if m.when:
            conds = []
            for c, v in m.when:
                conds.append(f"t0.{c} = %s")
                params.append(v)
            col = f"CASE WHEN {' AND '.join(conds)} THEN {col or 1} END"
        if m.agg == "count":
            return f"count({col or '*'})"
        if m.agg == "count_distinct":
            return f"count(DISTINCT {col})"
        return f"{m.agg}({col})"

    def time_sql(self, ref: _Ref, d: Dimension, granularity: str | None) -> str:
        col = f"{ref.alias}.{d.column}"
        if granularity is None or (d.type == "date" and granularity == "day"):
            return col
        trunc = f"date_trunc('{granularity}', {col})"  # granularity: one of GRANULARITIES (checked)
        return f"CAST({trunc} AS DATE)" if d.type == "date" else trunc

    def check_range(self, where: str, member: str, first: date, last: date) -> bool:
        if first > last:
            self.fail(where, member, f"date range starts ({first}) after it ends ({last})")
            return False
        days = (last - first).days + 1
        if days > self.limits.max_days:
            self.fail(where, member, f"date range of {days} days: at most {self.limits.max_days}")
            return False
        return True

    def range_sql(self, ref: _Ref, d: Dimension, first: date, last: date, params: list) -> str:
        col = f"{ref.alias}.{d.column}"
        if d.type == "date":
            params += [first, last]
            return f"{col} >= %s AND {col} <= %s"
        params += [_midnight(first), _midnight(last + timedelta(days=1))]
        return f"{col} >= %s AND {col} < %s"


def _midnight(d: date) -> datetime:
    return datetime.combine(d, time.min, UTC)


def number(v) -> int | float:
    """A finite number within 64 bits (both backends bind it without overflow)."""
    if isinstance(v, bool):
        raise ValueError(f"{v!r} is not a number")
    if not isinstance(v, (int, float)):
        s = str(v).strip()
        v = int(s) if re.fullmatch(r"-?\d{1,18}", s) else float(s)
    if isinstance(v, float) and not math.isfinite(v) or abs(v) >= 2**63:
        raise ValueError(f"{v!r} is not a finite 64-bit number")
    return v


def coerce(d: Dimension, v):
    """A filter value as the dimension's type (ValueError with the reason otherwise)."""
    if isinstance(v, bool) and d.type != "boolean":
        raise ValueError(f"{v!r} is not a {d.type}")
    if d.type == "uuid":
        return str(uuid.UUID(str(v)))
    if d.type == "number":
        return number(v)
    if d.type == "date":
        return date.fromisoformat(str(v)[:10]) if len(str(v)) <= 10 else datetime.fromisoformat(str(v)).date()
    if d.type == "timestamp":
        ts = datetime.fromisoformat(str(v))
        return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts
    if d.type == "boolean":
        if isinstance(v, bool) or str(v).lower() in ("true", "false"):
            return v if isinstance(v, bool) else str(v).lower() == "true"
        raise ValueError(f"{v!r} is not true or false")
    s = str(v)
    if d.values:
        if s not in d.values:
            raise ValueError(f"{s!r} is not one of {', '.join(d.values)}")
    elif not re.fullmatch(d.pattern or TEXT_VALUE, s):
        raise ValueError(f"{s!r} is not an allowed value (letters, digits and a little punctuation)")
    return s


def compile_query(
    req: QueryRequest,
    cubes: dict[str, Cube],
    tables: dict,
    scope: Scope,
    limits: Limits = Limits(),
    today: date | None = None,
) -> Compiled:
    """The request as SQL over the registry's cubes (`cubes`: registry.cubes(); `tables`: mart name -> its
    registry Table, for the tenant and venue columns), restricted to `scope`. QueryError lists every member
    at fault."""
    c = _Compiler(req, cubes, tables, scope, limits, today or datetime.now(UTC).date())
    members: dict[str, dict] = {}
    dims: list[tuple[str, str]] = []  # (alias, sql)
    measures: list[tuple[str, Measure]] = []
    for i, name in enumerate(req.measures):
        m = c.measure(f"measures.{i}", name)
        if m is not None:
            measures.append((name, m))
            members[name] = {"kind": "measure", "unit": m.unit, "description": m.description}
    td = req.time_dimension
    td_ref = td_dim = None
    if td is not None:
        got = c.dimension("time_dimension.dimension", td.dimension)
        if got is not None:
            td_ref, td_dim = got
            if not td_dim.is_time:
                c.fail("time_dimension.dimension", td.dimension, f"{td.dimension} is not a time dimension")
                td_dim = None
            elif td.granularity is not None and td.granularity not in td_dim.granularities:
                c.fail(
                    "time_dimension.granularity",
                    td.dimension,
                    f"granularity {td.granularity!r} not supported by {td.dimension} (allowed: {', '.join(td_dim.granularities)})",
                )
                td_dim = None
            if td_dim is not None and td.date_range is not None:
                if not c.check_range("time_dimension.date_range", td.dimension, *td.date_range):
                    td_dim = None
    for i, name in enumerate(req.dimensions):
        got = c.dimension(f"dimensions.{i}", name)
        if got is not None:
            ref, d = got
            dims.append((name, f"{ref.alias}.{d.column}"))
            members[name] = {"kind": "dimension", "type": d.type, "description": d.description}
    listed = [*req.measures, *req.dimensions]
    for i, name in enumerate(listed):
        if name in listed[:i]:
            where = f"measures.{i}" if i < len(req.measures) else f"dimensions.{i - len(req.measures)}"
            c.fail(where, name, f"{name} is listed twice")
    grouped = td is not None and td_dim is not None and td.granularity is not None
    if not (measures or dims or grouped) and not c.errors:
        c.fail("measures", None, "a query names at least one measure, dimension or time granularity")
    where_parts: list[tuple[str, list]] = []
    having_parts: list[tuple[str, list]] = []
    for i, f in enumerate(req.filters):
        _filter(c, f"filters.{i}", f, where_parts, having_parts)
    if c.errors:
        raise QueryError(c.errors)

    root = c.root
    rt = tables[root.cube_name]
    time_alias = None
    if td is not None and td_dim is not None and td.granularity is not None:
        time_alias = f"{td.dimension}.{td.granularity}"
        dims.insert(0, (time_alias, c.time_sql(td_ref, td_dim, td.granularity)))
        members[time_alias] = {
            "kind": "time",
            "granularity": td.granularity,
            "description": td_dim.description,
        }

    params: list = []
    select = [f'{sql} AS "{alias}"' for alias, sql in dims]
    for alias, m in measures:
        select.append(f'{c.measure_sql(m, params)} AS "{alias}"')
    scope_sql, scope_params = _scope(root.cube_name, rt, "t0", scope, root.cube)
    from_sql = f"{root.cube_name} t0"
    for ref in c.joined.values():
        jt = tables[ref.cube_name]
        join = next(j for j in root.cube.joins if j.to == ref.cube_name)
        on = [f"{ref.alias}.{jt.tenant_column} = t0.{rt.tenant_column}"]
        on += [f"{ref.alias}.{k} = t0.{k}" for k in join.on]
        from_sql += f" LEFT JOIN {ref.cube_name} {ref.alias} ON {' AND '.join(on)}"
    where = [scope_sql]
    params += scope_params
    if root.cube.grain_column:
        where.append(f"t0.{root.cube.grain_column} = %s")
        params.append(root.cube.grain_for(td.granularity if td is not None and td_dim is not None else None))
    date_range = None
    if td is not None and td_dim is not None and td.date_range is not None:
        date_range = td.date_range
        where.append(c.range_sql(td_ref, td_dim, *td.date_range, params))
    bounded = td is not None and td_dim is not None and td_ref is root and td_dim.name == root.cube.time
    if root.cube.time and not (bounded and td.date_range is not None):
        first = c.today - timedelta(days=limits.max_days - 1)
        date_range = date_range or (first, c.today)
        where.append(c.range_sql(root, root.cube.dimension(root.cube.time), first, c.today, params))
    for sql, p in where_parts:
        where.append(sql)
        params += p
    sql = f"SELECT {', '.join(select)} FROM {from_sql} WHERE {' AND '.join(where)}"
    if dims:
        sql += " GROUP BY " + ", ".join(str(i + 1) for i in range(len(dims)))
    if having_parts:
        sql += " HAVING " + " AND ".join(s for s, _ in having_parts)
        for _, p in having_parts:
            params += p
    order = _order(c, req, dims, measures, time_alias, td)
    if c.errors:
        raise QueryError(c.errors)
    if order:
        sql += " ORDER BY " + ", ".join(order)
    limit = req.limit or limits.default_limit
    if limit > limits.max_rows:
        raise QueryError(
            [{"field": "limit", "member": None, "msg": f"limit {limit}: at most {limits.max_rows} rows"}]
        )
    sql += " LIMIT %s OFFSET %s"
    params += [limit, req.offset]
    read = [root.cube_name, *c.joined]
    as_of = []
    for name in read:
        cube = cubes[name]
        if cube.as_of:
            s, p = _scope(name, tables[name], "t0", scope, cube)
            as_of.append((name, f"SELECT max(t0.{cube.as_of}) AS as_of FROM {name} t0 WHERE {s}", p))
    return Compiled(sql, params, read, members, date_range, limit, req.offset, as_of)


def _scope(name: str, table, alias: str, scope: Scope, cube: Cube) -> tuple[str, list]:
    conds, params = [f"{alias}.{table.tenant_column} = %s"], [scope.tenant_id]
    if scope.venue_id is not None:
        conds.append(f"{alias}.{table.venue_column} = %s")
        params.append(scope.venue_id)
    for col, value in cube.fixed:
        conds.append(f"{alias}.{col} = %s")
        params.append(value)
    return " AND ".join(conds), params


def _filter(c: _Compiler, where: str, f, where_parts: list, having_parts: list) -> None:
    cube_name, _, name = f.member.partition(".")
    cube = c.cubes.get(cube_name)
    if cube is not None and cube.measure(name) is not None:
        m = c.measure(where + ".member", f.member)
        if m is None:
            return
        if f.operator not in ("equals", "notEquals", "gt", "gte", "lt", "lte", "set", "notSet"):
            c.fail(where + ".operator", f.member, f"operator {f.operator} does not apply to a measure")
            return
        values = []
        for j, v in enumerate(f.values):
            try:
                values.append(number(v))
            except ValueError as exc:
                c.fail(f"{where}.values.{j}", f.member, str(exc))
                return
        p: list = []
        sql = c.measure_sql(m, p)
        cond = _condition(c, where, f, sql, values)
        if cond is not None:
            having_parts.append((cond, p + values if f.operator not in ("set", "notSet") else p))
        return
    got = c.dimension(where + ".member", f.member)
    if got is None:
        return
    ref, d = got
    col = f"{ref.alias}.{d.column}"
    values = []
    for j, v in enumerate(f.values):
        try:
            values.append(coerce(d, v))
        except (ValueError, TypeError) as exc:
            c.fail(f"{where}.values.{j}", f.member, f"invalid value for {f.member}: {exc}")
            return
    if f.operator in ("inDateRange", "beforeDate", "afterDate"):
        if not d.is_time:
            c.fail(where + ".operator", f.member, f"{f.operator} applies to time dimensions only")
            return
        need = 2 if f.operator == "inDateRange" else 1
        if len(values) != need:
            c.fail(where + ".values", f.member, f"{f.operator} takes {need} date(s)")
            return
        days = [v.date() if isinstance(v, datetime) else v for v in values]
        if f.operator == "inDateRange":
            if c.check_range(where + ".values", f.member, *days):
                p: list = []
                where_parts.append((c.range_sql(ref, d, days[0], days[1], p), p))
            return
        bound = days[0] if d.type == "date" else _midnight(days[0])
        where_parts.append((f"{col} {'<' if f.operator == 'beforeDate' else '>'} %s", [bound]))
        return
    if f.operator in ("contains", "startsWith") and d.type != "string":
        c.fail(where + ".operator", f.member, f"{f.operator} applies to text dimensions only")
        return
    cond = _condition(c, where, f, col, values)
    if cond is not None:
        where_parts.append((cond, [] if f.operator in ("set", "notSet") else values))


def _condition(c: _Compiler, where: str, f, expr: str, values: list) -> str | None:
    op = f.operator
    if op in ("set", "notSet"):
        if values:
            c.fail(where + ".values", f.member, f"{op} takes no values")
            return None
        return f"{expr} IS {'NOT ' if op == 'set' else ''}NULL"
    if not values:
        c.fail(where + ".values", f.member, f"{op} needs at least one value")
        return None
    marks = ", ".join(["%s"] * len(values))
    if op == "equals":
        return f"{expr} IN ({marks})"
    if op == "notEquals":
        return f"({expr} NOT IN ({marks}) OR {expr} IS NULL)"
    if op in ("contains", "startsWith"):
        fn = "strpos({e}, %s) > 0" if op == "contains" else "starts_with({e}, %s)"
        return "(" + " OR ".join(fn.format(e=expr) for _ in values) + ")"
    if len(values) != 1:
        c.fail(where + ".values", f.member, f"{op} takes one value")
        return None
    return f"{expr} {dict(gt='>', gte='>=', lt='<', lte='<=')[op]} %s"


def _order(c: _Compiler, req: QueryRequest, dims, measures, time_alias, td) -> list[str]:
    aliases = {a for a, _ in dims} | {a for a, _ in measures}
    out, used = [], set()
    for i, (member, direction) in enumerate(req.order_pairs()):
        alias = time_alias if td is not None and member == td.dimension and time_alias else member
        if alias not in aliases:
            c.fail(f"order.{i}", member, f"order by {member!r}: not a measure or dimension of this query")
            continue
        out.append(f'"{alias}" {direction.upper()} NULLS LAST')
        used.add(alias)
    if not out:
        if time_alias:
            out.append(f'"{time_alias}" ASC NULLS LAST')
            used.add(time_alias)
        elif measures:
            out.append(f'"{measures[0][0]}" DESC NULLS LAST')
            used.add(measures[0][0])
    # every dimension as a tie-breaker: pages are stable and both backends return the same order
    out += [f'"{a}" ASC NULLS LAST' for a, _ in dims if a not in used]
    return out
