"""Ingestion assets: one raw and one staging asset per source table, plus unplaceable rows and an audit.

Fact tables are daily-partitioned by their event time and take a whole partition range in one run
(BackfillPolicy.single_run), so a backfill over hundreds of days pays Dagster's per-run cost once.
Dimensions are snapshots. The work itself lives in analytics_pipelines.ingestion.
"""

import warnings

import dagster as dg
import polars as pl

from analytics_pipelines.assets.metadata import table_metadata
from analytics_pipelines.partitions import RANGE_END_TAG, RANGE_START_TAG, partitions
from analytics_pipelines.registry.context import md_table
from analytics_pipelines.resources import SourceResource, WarehouseResource
from analytics_pipelines.settings import Settings
from analytics_pipelines.source import contract
from analytics_pipelines.staging import audit, checks, ingestion

OWNERS = ["team:data-platform"]
warnings.filterwarnings("ignore", category=dg.BetaWarning)
CHECK_UNIQUE = "unique_key"
CHECK_NOT_NULL = "not_null_key"
CHECK_FK = "foreign_keys_resolve"
CHECK_LEDGER = "ledger_balanced"
#: Dagster's run tag of a single-partition run (documented tag name)
PARTITION_TAG = "dagster/partition"
#: Dagster's op tag ordering the steps ready to run (higher first). The dimensions' raw and staging steps
#: take it: every fact's staging waits for the dimensions it references (its orphan checks), so they are the
#: head of the run's longest chain. Without it the multiprocess executor started them in name order: one day
#: at `large`, raw_users (11 s) began 10 s into the run, behind the 14 small raw steps, and held up stg_users,
#: stg_orders and everything after them.
PRIORITY_TAG = "dagster/priority"
DIMENSION_PRIORITY = {PRIORITY_TAG: "1"}


def _partitions(context: dg.AssetExecutionContext) -> list[str]:
    # an unpartitioned asset inside a partitioned run still sees the run's range: ignore it
    if context.assets_def.partitions_def is None:
        return [ingestion.SNAPSHOT]
    return list(context.partition_keys)


def _raw_asset(entry, daily_partitions: dg.DailyPartitionsDefinition, kind: str) -> dg.AssetsDefinition:
    table = entry.name.removeprefix("raw_")
    spec = contract.table(table)
    partitioned = spec.partitioned

    @dg.asset(
        name=ingestion.raw_table(table),
        group_name="raw",
        owners=OWNERS,
        kinds={kind, "polars"},
        partitions_def=daily_partitions if partitioned else None,
        backfill_policy=dg.BackfillPolicy.single_run() if partitioned else None,
        op_tags=None if partitioned else DIMENSION_PRIORITY,
        description=entry.description,
        metadata={"source_table": table, "warehouse_table": ingestion.raw_table(table)},
    )
    def _raw(
        context: dg.AssetExecutionContext, source: SourceResource, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        wh, db = warehouse.get(), source.db()
        if partitioned:
            days = list(context.partition_keys)
            stats = ingestion.ingest_raw_facts(db, wh, table, days)
            context.log.info(
                f"{table}: {stats.rows} rows over {len(days)} day(s), {len(stats.empty_partitions)} empty"
            )
            meta = {
                "partitions": len(days),
                "empty_partitions": dg.MetadataValue.text(", ".join(stats.empty_partitions[:20]) or "none"),
                "rows_by_day": dg.MetadataValue.md(
                    md_table(
                        pl.DataFrame(
                            {"day": list(stats.per_partition), "rows": list(stats.per_partition.values())}
                        ).tail(14)
                    )
                ),
            }
        else:
            stats = ingestion.ingest_raw_dimension(db, wh, table)
            meta = {}
        return dg.MaterializeResult(
            metadata={**table_metadata(wh, ingestion.raw_table(table), stats.rows), **meta}
        )

    return _raw


def _stg_asset(entry, daily_partitions: dg.DailyPartitionsDefinition, kind: str) -> dg.AssetsDefinition:
    table = entry.name.removeprefix("stg_")
    spec = contract.table(table)
    partitioned = spec.partitioned
    key = dg.AssetKey(ingestion.stg_table(table))
    parents = sorted(set(spec.references.values()) | ({"ticket_types"} if table == "order_items" else set()))
    checks = [
        dg.AssetCheckSpec(
            CHECK_UNIQUE, asset=key, blocking=True, description=f"`{spec.key}` is unique over the table"
        ),
        dg.AssetCheckSpec(
            CHECK_NOT_NULL, asset=key, blocking=True, description=f"`{spec.key}` is never null"
        ),
        dg.AssetCheckSpec(
            CHECK_LEDGER,
            asset=key,
            blocking=True,
            description="per partition: raw rows = staged + rejected, re-counted from the tables themselves",
        ),
    ]
    if parents:
        checks.append(
            dg.AssetCheckSpec(
                CHECK_FK,
                asset=key,
                blocking=True,
                description="every reference resolves: "
                + ", ".join(f"{c} -> stg_{p}" for c, p in spec.references.items()),
            )
        )

    @dg.asset(
        key=key,
        group_name="staging",
        owners=OWNERS,
        kinds={kind, "polars"},
        partitions_def=daily_partitions if partitioned else None,
        backfill_policy=dg.BackfillPolicy.single_run() if partitioned else None,
        op_tags=None if partitioned else DIMENSION_PRIORITY,
        deps=[dg.AssetDep(ingestion.raw_table(table))]
        + [dg.AssetDep(ingestion.stg_table(p)) for p in parents],
        check_specs=checks,
        description=entry.description,
        metadata={"source_table": table, "warehouse_table": ingestion.stg_table(table)},
    )
    def _stg(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        wh = warehouse.get()
        parts = _partitions(context)
        result = ingestion.stage_partitions(wh, table, parts)
        rej = result.quarantine.filter(pl.col("disposition") == "rejected")
        by_reason = (
            result.quarantine.group_by("disposition", "reason_code").len().sort("len", descending=True)
        )
        ledger = result.ledger.select(pl.sum("rows_in", "rows_out", "rows_rejected", "rows_repaired")).row(0)
        empty = result.ledger.filter(pl.col("rows_in") == 0)["partition"].to_list()
        if empty:
            context.log.info(f"{table}: {len(empty)} empty partition(s): {', '.join(empty[:10])}")
        return dg.MaterializeResult(
            metadata={
                **table_metadata(wh, ingestion.stg_table(table), result.rows_out, preview=result.preview),
                "rows_in": ledger[0],
                "rows_out": ledger[1],
                "rows_rejected": ledger[2],
                "rows_repaired": ledger[3],
                "empty_partitions": len(empty),
                "quarantine_by_reason": dg.MetadataValue.md(md_table(by_reason, 20)),
                "rejected_sample": dg.MetadataValue.md(
                    md_table(rej.select("source_key", "reason_code", "reason_detail"), 5)
                ),
            },
            check_results=_staging_checks(wh, table, parts, parents),
        )

    return _stg


def _staging_checks(wh, table: str, parts: list[str], parents: list[str]) -> list[dg.AssetCheckResult]:
    """Re-derive the staging invariants from the tables themselves (independent of the staging code), for
    the run's partitions only (staging/checks.py: a semi-join on the key column against the rest of the
    table, the run's references against the parents' keys), so one new day does not re-read all history."""
    found = checks.key_checks(wh, table, parts)
    out = [
        dg.AssetCheckResult(
            check_name=CHECK_UNIQUE,
            passed=found["duplicate_keys"] == 0,
            metadata={"duplicate_keys": found["duplicate_keys"], "partitions_checked": len(parts)},
        ),
        dg.AssetCheckResult(
            check_name=CHECK_NOT_NULL,
            passed=found["null_keys"] == 0,
            metadata={"null_keys": found["null_keys"]},
        ),
    ]
    if parents:
        missing = {k: n for k, n in found.items() if k.startswith("unresolved_")}
        out.append(
            dg.AssetCheckResult(check_name=CHECK_FK, passed=sum(missing.values()) == 0, metadata=missing)
        )
    bal = ledger_balance(wh, table, parts)
    bad = bal.filter(~pl.col("balanced"))
    out.append(
        dg.AssetCheckResult(
            check_name=CHECK_LEDGER,
            passed=bad.height == 0,
            metadata={
                "partitions_checked": bal.height,
                "unbalanced": bad.height,
                "unbalanced_sample": dg.MetadataValue.md(md_table(bad, 10)),
            },
        )
    )
    return out


def ledger_balance(wh, table: str, parts: list[str]) -> pl.DataFrame:
    """raw rows = staged rows + rejected quarantine rows, per partition, counted from the three tables
    (only the files of the run's partitions: Warehouse.read_partitions)."""
    spec = contract.table(table)
    lo, hi = min(parts), max(parts)

    def per_part(name: str) -> pl.DataFrame:
        span = (lo, hi) if spec.partitioned else ()
        return checks.rows_per_partition(wh, name, *span).rename({"day": "part"})

    raw = per_part(ingestion.raw_table(table))
    stg = per_part(ingestion.stg_table(table))
    rej = wh.read(
        f"SELECT partition AS part, count(*) AS n FROM {ingestion.QUARANTINE_TABLE} "
        f"WHERE source_table = %s AND disposition = 'rejected' AND partition >= %s AND partition <= %s "
        f"GROUP BY 1",
        [table, lo, hi],
    ).cast({"part": pl.String, "n": pl.Int64})
    frame = pl.DataFrame({"part": parts})
    return (
        frame.join(raw.rename({"n": "raw"}), on="part", how="left")
        .join(stg.rename({"n": "staged"}), on="part", how="left")
        .join(rej.rename({"n": "rejected"}), on="part", how="left")
        .fill_null(0)
        .with_columns((pl.col("raw") == pl.col("staged") + pl.col("rejected")).alias("balanced"))
    )


def run_days(tags: dict[str, str]) -> list[str] | None:
    """The days of the run (its partition range tags, or its single partition), None when the run has no
    partitions (the audit then recounts every ingested day)."""
    if RANGE_START_TAG in tags and RANGE_END_TAG in tags:
        return ingestion.day_range(tags[RANGE_START_TAG], tags[RANGE_END_TAG])
    if PARTITION_TAG in tags:
        return [tags[PARTITION_TAG]]
    return None


def _ledger_assets(
    entries: dict, daily_partitions: dg.DailyPartitionsDefinition, kind: str
) -> list[dg.AssetsDefinition]:
    """raw_unplaceable_rows and ingestion_audit."""

    @dg.asset(
        name="raw_unplaceable_rows",
        group_name="raw",
        owners=OWNERS,
        kinds={kind, "polars"},
        deps=[dg.AssetDep(ingestion.raw_table(t)) for t in contract.fact_tables()],
        description=entries["raw_unplaceable_rows"].description,
    )
    def raw_unplaceable_rows(source: SourceResource, warehouse: WarehouseResource) -> dg.MaterializeResult:
        keys = daily_partitions.get_partition_keys()
        counts = ingestion.collect_unplaceable(source.db(), warehouse.get(), keys[0], keys[-1])
        return dg.MaterializeResult(
            metadata={"rows": sum(counts.values()), **{f"{t}": n for t, n in counts.items()}}
        )

    @dg.asset(
        name="ingestion_audit",
        group_name="staging",
        owners=OWNERS,
        kinds={kind, "polars"},
        deps=[dg.AssetDep("raw_unplaceable_rows")]
        + [dg.AssetDep(ingestion.stg_table(t)) for t in contract.tables()],
        check_specs=[
            dg.AssetCheckSpec(
                "every_source_row_accounted",
                asset="ingestion_audit",
                # not blocking: nothing is downstream of the audit, and it compares the whole warehouse
                # with the whole source, so a concurrent run ingesting other days makes it transiently
                # unbalanced; a failure is an ERROR on the check (and the UI), not a failed run
                blocking=False,
                description="source = raw + unplaceable, raw = staged + rejected, per table (warns the run: "
                "nothing is downstream, and concurrent runs on other days unbalance it transiently)",
            )
        ],
        description=entries["ingestion_audit"].description,
    )
    def ingestion_audit(
        context: dg.AssetExecutionContext, source: SourceResource, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        wh = warehouse.get()
        days = run_days(context.run.tags)
        table = audit.audit(source.db(), wh, days)
        wh.replace_table("ingestion_audit", table)
        bad = table.filter(~pl.col("balanced"))
        return dg.MaterializeResult(
            metadata={
                "days_recounted": "all" if days is None else len(days),
                "tables": table.height,
                "unbalanced_tables": bad.height,
                "audit": dg.MetadataValue.md(md_table(table, 20)),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name="every_source_row_accounted",
                    passed=bad.height == 0,
                    metadata={"unbalanced": dg.MetadataValue.md(md_table(bad, 20))},
                )
            ],
        )

    return [raw_unplaceable_rows, ingestion_audit]


def ingestion_assets(registry, settings: Settings) -> list[dg.AssetsDefinition]:
    """The assets of the registry's landing and staging tables (registry/ingestion.py)."""
    daily, kind = partitions(settings.partition_start).daily, settings.warehouse_kind
    entries = {t.name: t for t in registry.by_factory("ingestion")}
    out = []
    for t in entries.values():
        if t.name.startswith("raw_") and t.name != "raw_unplaceable_rows":
            out.append(_raw_asset(t, daily, kind))
        elif t.name.startswith("stg_"):
            out.append(_stg_asset(t, daily, kind))
    ledger = {a.key.to_user_string(): a for a in _ledger_assets(entries, daily, kind)}
    return out + [ledger[n] for n in entries if n in ledger]
