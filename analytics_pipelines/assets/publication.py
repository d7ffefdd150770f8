"""Registry entries with factory="publication" -> Dagster assets that publish their source's partitions to
InfluxDB (analytics_pipelines/publication/steps.py). Partitioned like their source, with a single-run
backfill policy; each asset depends on its source only, and nothing depends on it, so a failed publication
(InfluxDB down) fails that asset alone and is alerted on by run_failure_alert_sensor."""

import dagster as dg

from analytics_pipelines.assets.factory import _meta, check_result, partitions_def
from analytics_pipelines.publication.series import PUBLISHERS
from analytics_pipelines.publication.steps import NOT_CONFIGURED, publish
from analytics_pipelines.registry import Registry, Table, resolve
from analytics_pipelines.registry.context import BuildContext, Built
from analytics_pipelines.resources import InfluxResource, OpsResource, WarehouseResource
from analytics_pipelines.settings import Settings


def publication_asset(registry: Registry, t: Table, settings: Settings) -> dg.AssetsDefinition:
    publisher = PUBLISHERS[t.name]
    part = partitions_def(t, settings)
    check_specs = [
        dg.AssetCheckSpec(
            c.name,
            asset=t.name,
            blocking=c.blocking,
            description=c.description + ("" if c.blocking else f" Warns only: {c.why_not_blocking}"),
        )
        for c in t.checks
    ]

    @dg.asset(
        name=t.name,
        group_name=t.group,
        owners=[t.owner],
        kinds=set(t.kinds),
        description=t.description,
        deps=[dg.AssetDep(d) for d in t.upstream],
        metadata={
            "source_table": publisher.source,
            "measurement": publisher.measurement,
            "grain": t.grain,
            "point_identity": ", ".join(t.keys),
        },
        partitions_def=part,
        backfill_policy=dg.BackfillPolicy.single_run() if part is not None else None,
        check_specs=check_specs,
    )
    def _publish(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        influx: InfluxResource,
        ops: OpsResource,
    ):
        target = influx.settings()
        keys = sorted(context.partition_keys) if part is not None else []
        engine = ops.engine() if target.url else None
        wh = warehouse.get()
        meta, prepared = publish(wh, publisher, keys, target, engine, run_id=context.run.run_id)
        if meta["status"] == NOT_CONFIGURED:
            context.log.info(f"{t.name}: InfluxDB not configured (TT_INFLUX_URL): nothing published")
        else:
            context.log.info(f"{t.name}: {meta['status']}, {meta['points']} points")
        ctx = BuildContext(wh, t, keys, settings=Settings.from_env(), registry=registry, log=context.log)
        built = Built({}, extras={"prepared": prepared})
        checks = [check_result(t.name, c.name, resolve(c.fn)(ctx, built), c.blocking) for c in t.checks]
        return dg.MaterializeResult(
            metadata=_meta({**meta, **({"partitions": len(keys)} if part is not None else {})}),
            check_results=checks,
        )

    return _publish


def publication_assets(registry: Registry, settings: Settings) -> list[dg.AssetsDefinition]:
    return [publication_asset(registry, t, settings) for t in registry.by_factory("publication")]
