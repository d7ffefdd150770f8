"""Registry entries of the landing and staging layers, derived from the source contract
(sql/source/create_tables.sql, analytics_pipelines/source/contract.py): one raw and one staging table per
source table, plus the quarantine, the ledger, unplaceable rows and the audit. Their assets come from the
ingestion factory (analytics_pipelines/assets/ingestion.py)."""

from __future__ import annotations

from analytics_pipelines.registry.model import Table
from analytics_pipelines.source import contract

OWNER = "team:data-platform"


def _common(spec: contract.TableSpec) -> dict:
    """What the raw and the staging table of a source table share: owner, factory, key, tenant, partitions."""
    tenant = "tenant_id" if any(c.name == "tenant_id" for c in spec.columns) else None
    return dict(
        owner=OWNER,
        factory="ingestion",
        kinds=("polars",),
        keys=(spec.key,),
        tenant_column=tenant,
        no_tenant_reason=None if tenant else "the source table has no tenant column",
        partitioning="daily" if spec.partitioned else None,
        partition_column="_partition" if spec.partitioned else None,
    )


def _raw(spec: contract.TableSpec) -> Table:
    when = (
        f"Daily partitions by `coalesce({', '.join(spec.partition_time)})` (UTC)."
        if spec.partitioned
        else "Unpartitioned: a full snapshot each run."
    )
    return Table(
        name=f"raw_{spec.name}",
        group="raw",
        description=f"Landing copy of source `{spec.name}`: every contract column as text, personal data "
        f"pseudonymized. {spec.description} {when} Re-materializing replaces the partition.",
        grain=f"one row per source row of {spec.name}",
        **_common(spec),
    )


def _stg(spec: contract.TableSpec) -> Table:
    parents = sorted(
        set(spec.references.values()) | ({"ticket_types"} if spec.name == "order_items" else set())
    )
    return Table(
        name=f"stg_{spec.name}",
        group="staging",
        description=f"Typed, normalized `{spec.name}`: money as integer cents (`*_cents` + `currency`), statuses "
        f"lower case, timestamps UTC, duplicates resolved (latest updated_at/created_at wins). "
        f"Rejected rows go to `quarantine` with a reason; `ingestion_ledger` balances rows_in = "
        f"rows_out + rows_rejected per partition.",
        grain=f"one row per {spec.name} key",
        **_common(spec),
        upstream=(f"raw_{spec.name}", *(f"stg_{p}" for p in parents)),
    )


def tables() -> tuple[Table, ...]:
    specs = list(contract.tables().values())
    facts = contract.fact_tables()
    return (
        *(_raw(s) for s in specs),
        *(_stg(s) for s in specs),
        Table(
            name="raw_unplaceable_rows",
            group="raw",
            owner=OWNER,
            factory="ingestion",
            kinds=("polars",),
            upstream=tuple(f"raw_{t}" for t in facts),
            keys=("source_table", "source_key"),
            stored="elsewhere",
            tenant_column=None,
            no_tenant_reason="rows no partition can hold are kept as raw text payloads",
            grain="one row per unplaceable source row",
            description="Fact rows that no daily partition can hold (partition timestamp missing, garbled, "
            "before the first partition or after today): quarantined under partition "
            "`__unplaceable__` (rows of the `quarantine` table) so that every source row is "
            "accounted for.",
        ),
        Table(
            name="ingestion_audit",
            group="staging",
            owner=OWNER,
            factory="ingestion",
            kinds=("polars",),
            upstream=("raw_unplaceable_rows", *(f"stg_{s.name}" for s in specs)),
            keys=("source_table",),
            tenant_column=None,
            no_tenant_reason="row counts per source table, no tenant's data",
            grain="one row per source table",
            description="Per source table: rows in the source, raw, staging, rejected and repaired, and whether "
            "every source row is accounted for. A run recounts only its own days (source rows of those days, "
            "their raw and staged partitions), the days whose ledger changed since they were counted, and the "
            "dimensions; the other days keep their rows in `ingestion_audit_days`, so one new day does not "
            "re-read all history while the summary still covers the whole source. A day whose source rows "
            "change later is re-run, and with it re-audited, by the source-change sensor "
            "(automation/source_changes.py); a run without partitions recounts every day.",
        ),
        Table(
            name="ingestion_audit_days",
            group="staging",
            owner=OWNER,
            factory="none",
            keys=("source_table", "day"),
            tenant_column=None,
            no_tenant_reason="row counts per fact table and day",
            grain="one row per fact table and ingested day",
            description="The audit per fact table and day: source rows of the day, raw and staged rows of its "
            "partition, and the ledger's rows_in / rows_out / rows_rejected / rows_repaired when it was "
            "counted. Written by `ingestion_audit`, which recounts only the days of its run.",
        ),
        Table(
            name="quarantine",
            group="staging",
            owner=OWNER,
            factory="none",
            keys=("source_table", "source_key"),
            tenant_column=None,
            no_tenant_reason="rejected rows keep their raw payload as text; platform operators only",
            grain="one row per rejected or repaired source row",
            partitioning="daily",
            partition_column="partition",
            description="Rows staging rejected or repaired, with the source table, key, reason code, detail, "
            "raw payload and partition. Written by every staging asset.",
        ),
        Table(
            name="ingestion_ledger",
            group="staging",
            owner=OWNER,
            factory="none",
            keys=("source_table", "partition"),
            tenant_column=None,
            no_tenant_reason="row counts per table and partition",
            grain="one row per table and partition",
            partitioning="daily",
            partition_column="partition",
            description="rows_in / rows_out / rows_rejected / rows_repaired per table and partition. Written by "
            "every staging asset.",
        ),
    )
