"""`table_catalog`: the registry written into the warehouse, so that an analyst's SQL tool shows what each
table is (`SELECT * FROM table_catalog`), next to the tables themselves."""

from __future__ import annotations

import polars as pl

from analytics_pipelines.marts.reconcile import CheckOutcome
from analytics_pipelines.registry.context import BuildContext, Built


def table_catalog(ctx: BuildContext) -> Built:
    registry = ctx.registry
    rows = [
        {
            "name": t.name,
            "layer": t.layer,
            "group_name": t.group,
            "description": t.description,
            "grain": t.grain,
            "keys": ", ".join(t.keys),
            "tenant_column": t.tenant_column,
            "no_tenant_reason": t.no_tenant_reason,
            "venue_column": t.venue_column,
            "partitioned_by": t.partition_column,
            "upstream": ", ".join(t.upstream),
            "written_by": t.produced_by or t.name,
            "owner": t.owner,
            "served_by_api": t.serve,
            "checks": ", ".join(c.name for c in t.checks),
            "stored": t.stored,
        }
        for t in registry.tables
    ]
    df = pl.DataFrame(rows, schema={k: pl.Boolean if k == "served_by_api" else pl.String for k in rows[0]})
    present = set(ctx.wh.tables())
    return Built(
        {"table_catalog": df},
        metadata={"tables": df.height, "materialized": sum(1 for n in df["name"] if n in present)},
    )


def check_catalog(ctx: BuildContext, built: Built) -> CheckOutcome:
    """Every registered table listed once, with a description and a grain."""
    df = built.frames["table_catalog"]
    names = set(ctx.registry.names())
    missing = names - set(df["name"])
    undocumented = df.filter((pl.col("description").str.len_chars() < 20) | pl.col("grain").is_null()).height
    return CheckOutcome(
        not missing and undocumented == 0,
        {"missing": ", ".join(sorted(missing)) or "none", "undocumented": undocumented},
    )
