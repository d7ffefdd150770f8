"""The table registry: one declaration per table, from which everything that lists tables is derived.

- Dagster assets and checks: analytics_pipelines/assets/factory.py (`registry.assets()` -> one asset each)
- the API's servable marts and their tenant/venue filters: `registry.servable()`
- the warehouse catalog (`table_catalog` in the warehouse, COMMENTs where the backend has them)
- docs/marts.md's table index: `registry.markdown_index()` (a test keeps the doc in step)
- the tests' expectations (snapshot of asset keys, cross-tenant walk, reconciliation coverage)

How to add a mart: docs/adding-a-mart.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from analytics_pipelines.registry.model import Check, Table, resolve
from analytics_pipelines.registry.semantic import Cube, validate_cube

__all__ = ["Check", "Cube", "Registry", "Table", "default_registry", "resolve"]


@dataclass(frozen=True)
class Registry:
    tables: tuple[Table, ...]

    def __post_init__(self):
        problems = validate(self.tables)
        if problems:
            raise ValueError("table registry: " + "; ".join(problems))

    def table(self, name: str) -> Table:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(f"{name} is not in the table registry")

    def names(self) -> list[str]:
        return [t.name for t in self.tables]

    def with_tables(self, *extra: Table) -> Registry:
        """This registry plus `extra` (how a test adds a throw-away mart)."""
        return Registry((*self.tables, *extra))

    def by_factory(self, factory: str) -> list[Table]:
        """The tables whose asset a factory makes (secondary outputs are made with their producer)."""
        return [t for t in self.tables if t.factory == factory and t.produced_by is None]

    def outputs(self, producer: Table) -> list[Table]:
        """The registered tables one asset writes: itself (unless it is an artifact) and what it produces."""
        own = [producer] if producer.stored == "table" else []
        return own + [self.table(n) for n in producer.produces]

    def cubes(self) -> dict[str, Cube]:
        """The query layer's cubes by mart name (registry/cubes.py)."""
        return {t.name: t.cube for t in self.tables if t.cube is not None}

    def servable(self) -> list[Table]:
        return [t for t in self.tables if t.serve]

    def tenant_column(self, name: str) -> str | None:
        return self.table(name).tenant_column

    def markdown_index(self) -> str:
        """The table index of docs/marts.md (between its INDEX markers), generated from the registry."""
        lines = [
            "| table | group | grain | partitioned by | tenant column | check(s) | served by the API |",
            "|---|---|---|---|---|---|---|",
        ]
        for t in self.tables:
            if t.group in ("raw", "staging"):
                continue
            checks = ", ".join(f"`{c.name}` ({c.kind}{'' if c.blocking else ', warns'})" for c in t.checks)
            lines.append(
                f"| `{t.name}` | {t.group} | {t.grain} | {t.partition_column or '—'} | "
                f"{t.tenant_column or '— (' + (t.no_tenant_reason or '') + ')'} | "
                f"{checks or ('see ' + t.produced_by if t.produced_by else '—')} | "
                f"{'yes' if t.serve else 'no'} |"
            )
        return "\n".join(lines) + "\n"


def validate(tables: Iterable[Table]) -> list[str]:
    """Every name once; every upstream registered; producers and products agree (and share the producer's
    partitioning: a Dagster backfill cannot plan a multi-asset whose outputs mix partitionings); a tenant
    column or a reason; a builder for every asset the mart factory makes; no cycle; every query-layer cube's
    measures, dimensions and joins over columns and marts that exist (registry/semantic.py)."""
    tables = list(tables)
    names = [t.name for t in tables]
    by_name = {t.name: t for t in tables}
    problems = [f"{n} declared twice" for n in sorted({n for n in names if names.count(n) > 1})]
    for t in tables:
        problems += [f"{t.name}: upstream {u} is not registered" for u in t.upstream if u not in by_name]
        for p in t.produces:
            if p not in by_name or by_name[p].produced_by != t.name:
                problems.append(
                    f"{t.name} produces {p}, which must be registered with produced_by={t.name!r}"
                )
        if t.produced_by and t.name not in by_name.get(t.produced_by, t).produces:
            problems.append(f"{t.name}: produced_by {t.produced_by}, which does not list it in `produces`")
        producer = by_name.get(t.produced_by) if t.produced_by else None
        if producer is not None and producer.partitioning != t.partitioning:
            problems.append(
                f"{t.name}: partitioned {t.partitioning or 'not'} but its producer {producer.name} "
                f"{producer.partitioning or 'not'} (one asset's outputs share one partitioning)"
            )
        if t.tenant_column is None and not t.no_tenant_reason:
            problems.append(f"{t.name}: no tenant column and no reason why")
        if t.factory == "mart" and t.produced_by is None and not (t.build or t.sql):
            problems.append(f"{t.name}: neither `build` nor `sql`")
        if t.partitioning and not t.partition_column:
            problems.append(f"{t.name}: partitioned but no partition_column")
    cubes = {t.name: t.cube for t in tables if t.cube is not None}
    for t in tables:
        if t.cube is not None:
            problems += validate_cube(t, cubes)
    # cycles, over asset-level dependencies
    state: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> None:
        if state.get(n) == 2 or n not in by_name:
            return
        if state.get(n) == 1:
            problems.append("cycle: " + " -> ".join([*path, n]))
            return
        state[n] = 1
        for u in by_name[n].upstream:
            visit(u, [*path, n])
        state[n] = 2

    for n in names:
        visit(n, [])
    return problems


@cache
def default_registry() -> Registry:
    from analytics_pipelines.registry import (
        behavior,
        customers,
        demand,
        fraud,
        ingestion,
        insights,
        marts,
        metrics,
        monitoring,
        noshow,
        pricing,
        publication,
    )

    domains = (
        marts,
        customers,
        pricing,
        demand,
        noshow,
        monitoring,
        fraud,
        behavior,
        publication,
        metrics,
        insights,
    )
    return Registry((*ingestion.tables(), *(t for d in domains for t in d.TABLES), CATALOG))


CATALOG = Table(
    name="table_catalog",
    group="catalog",
    owner="team:data-platform",
    keys=("name",),
    tenant_column=None,
    no_tenant_reason="describes the tables; holds no tenant's data",
    grain="one row per registered table",
    build="analytics_pipelines.registry.catalog:table_catalog",
    kinds=("polars",),
    description="The table registry as a table: every warehouse table's layer, grain, keys, tenant and venue "
    "columns, partitioning, upstream tables, owner, checks and whether the API serves it.",
    checks=(
        Check(
            "lists_every_table",
            "Every registered table listed once, with a description and a grain.",
            "analytics_pipelines.registry.catalog:check_catalog",
            kind="invariants",
        ),
    ),
)
