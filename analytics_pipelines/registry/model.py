"""The shape of a registry entry: one declaration per warehouse table (or model artifact).

Everything that used to list tables by hand is derived from these entries: the Dagster assets and their
checks (analytics_pipelines/assets/factory.py), the API's servable marts and tenant filters, the warehouse
catalog (`table_catalog`), docs/marts.md's table index and the tests' expectations. Builders and checks are
named as "module:function" strings and imported only when an asset runs, so importing the registry stays
cheap (the API reads it without importing a builder).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from analytics_pipelines.registry.semantic import Cube

Partitioning = Literal["daily", "hourly", "weekly"]
#: "table": a warehouse table of its own; "artifact": a file (a model); "elsewhere": rows in another table
Stored = Literal["table", "artifact", "elsewhere"]
#: "high": the asset's step takes several GB at `large`. Its op carries MEMORY_TAG (assets of the generic mart
#: factory, assets/factory.py: the customer marts), and the asset jobs' multiprocess executor runs one such step
#: at a time (definitions.DEFAULT_EXECUTOR), so that two of them never add up on one machine.
Memory = Literal["normal", "high"]
MEMORY_TAG = "tt/memory"


@dataclass(frozen=True)
class Check:
    """One asset check. `fn` ("module:function") takes (BuildContext, Built: the frames written and the
    builder's extras) and returns a CheckOutcome (analytics_pipelines/marts/reconcile.py). `kind` says what it proves:
    `reconciliation` re-derives the table's totals from its sources by independent code; `invariants`
    validates what a model output or a derived table must satisfy when it cannot be re-derived.

    Every check blocks downstream assets when it fails, unless `why_not_blocking` says why a failure must
    not stop the assets below (then it is reported as a warning)."""

    name: str
    description: str
    fn: str
    kind: Literal["reconciliation", "invariants"] = "reconciliation"
    why_not_blocking: str | None = None

    @property
    def blocking(self) -> bool:
        return self.why_not_blocking is None


@dataclass(frozen=True)
class Table:
    """A warehouse table (or, with `stored="artifact"`, a model artifact) and how it is built.

    Builders: a partitioned table's `build` takes (warehouse, first_key, last_key) and returns its rows for
    that range; an unpartitioned one takes the BuildContext. Either may return one frame, a dict of frames
    (this table and the tables it `produces`), or a `Built`. A table with `sql` and no `build` is the SQL file
    sql/<sql>.sql run over its upstream tables (partitioned upstreams read for the run's range) with $first
    and $last bound: adding such a mart is one SQL file and one entry."""

    name: str
    group: str
    description: str
    grain: str
    keys: tuple[str, ...]
    tenant_column: str | None = "tenant_id"
    #: why a table has no tenant column (only tables that hold no tenant's data may say so)
    no_tenant_reason: str | None = None
    partitioning: Partitioning | None = None
    #: the column that holds the partition key (`day`, `hour_key`, `as_of`, `_partition`)
    partition_column: str | None = None
    upstream: tuple[str, ...] = ()
    build: str | None = None
    sql: str | None = None
    #: other registered tables this asset writes in the same step (a multi-asset)
    produces: tuple[str, ...] = ()
    #: the asset that writes this table, when it is one of another asset's `produces`
    produced_by: str | None = None
    checks: tuple[Check, ...] = ()
    owner: str = "team:analytics"
    kinds: tuple[str, ...] = ("duckdb",)
    #: the API serves it (tenant-scoped by `tenant_column`, venue-scoped by `venue_column`)
    serve: bool = False
    #: the API's embedded copy keeps the rows in this column's order (the table is read one customer at a
    #: time: DuckDB's per-row-group min/max then skips all but one group); None: the files' order, which
    #: keeps each partition's rows together (what a table read by date wants)
    serve_order: str | None = None
    #: served to analytics.admin tokens only (tables without a tenant column always are)
    admin_only: bool = False
    venue_column: str | None = None
    #: takes the `full_refresh` launchpad option and updates only what new data can change
    incremental: bool = False
    stored: Stored = "table"
    memory: Memory = "normal"
    #: "module:function" (BuildContext, Built) -> dict of extra materialization metadata
    summary: str | None = None
    #: which factory makes the asset: "mart" (the generic one), or a domain's own ("ingestion")
    factory: str = "mart"
    #: schema version notes (additive migrations happen by rewriting partitions/tables)
    columns: dict[str, str] = field(default_factory=dict)
    #: the query layer's measures, dimensions and joins over this mart (registry/semantic.py, cubes.py)
    cube: Cube | None = None

    @property
    def layer(self) -> str:
        for prefix, layer in (("raw_", "raw"), ("stg_", "staging"), ("fct_", "facts")):
            if self.name.startswith(prefix):
                return layer
        return self.group

    @property
    def asset_name(self) -> str:
        return self.produced_by or self.name


def resolve(ref: str) -> Callable:
    """'package.module:function' -> the function."""
    module, _, name = ref.partition(":")
    if not name:
        raise ValueError(f"{ref!r}: expected 'module:function'")
    return getattr(importlib.import_module(module), name)
