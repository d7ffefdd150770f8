"""Publication through the real Dagster jobs over the shared tiny materialization (tests/materialized.py):
kpi_snapshots round trip to influxd 1.6.7 via the forwarder, not configured, InfluxDB down (only that asset
fails, the alert goes out), and the publication sensor."""

from __future__ import annotations

import dagster as dg
import polars as pl
from influxdb_server import free_port
from materialized import KPI_HOURS, NOW, environment
from notify_servers import http_server
from publication_frames import fields, tags

from analytics_pipelines.definitions import build_definitions
from analytics_pipelines.ops import publications
from analytics_pipelines.ops.db import ops_engine
from analytics_pipelines.publication.steps import NOT_CONFIGURED
from analytics_pipelines.registry import default_registry
from analytics_pipelines.registry.context import NOW_TAG
from analytics_pipelines.runner import run_job
from analytics_pipelines.settings import Settings
from analytics_pipelines.warehouse import open_warehouse

# -- through the real jobs (the shared tiny materialization) ------------------------------------------------


def _run(m, env: dict, instance: dg.DagsterInstance | None = None) -> dg.ExecuteInProcessResult:
    """kpi_publication_job over the fixture's KPI hours, on a fresh instance, with `env` on top."""
    with environment({**m.env, **env}):
        defs = build_definitions(default_registry(), Settings.from_env())
        return run_job(
            "kpi_publication_job",
            *KPI_HOURS,
            instance=instance or dg.DagsterInstance.ephemeral(),
            defs=defs,
            tags={NOW_TAG: NOW.isoformat()},
            log_level="WARNING",
        )


def _materialization(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    """The metadata of the asset's materializations (one per partition of the single run: all the same)."""
    mats = result.asset_materializations_for_node(asset)
    assert len(mats) == 3 and len({str(m.metadata) for m in mats}) == 1
    return {k: v.value for k, v in mats[0].metadata.items()}


def test_kpi_snapshots_round_trip_through_the_job(materialized, influx1, v2_url, bucket, tmp_path):
    env = {
        "TT_INFLUX_URL": v2_url,
        "TT_INFLUX_BUCKET": bucket,
        "TT_OPS_URL": f"sqlite:///{tmp_path / 'ops.db'}",
    }
    result = _run(materialized, env)
    assert result.success
    meta = _materialization(result, "influx_kpi_snapshots")
    kpis = open_warehouse(materialized.warehouse_url).read_partitions("kpi_snapshots", "hour_key", *KPI_HOURS)
    groups = kpis.select("snapshot_hour", "tenant_id", "venue_id").unique()
    assert meta["status"] == "published" and meta["points"] == groups.height > 0
    assert meta["source_rows"] == groups.height and meta["skipped_rows"] == 0
    # the anomalies of the same hours are published beside them (the fixture runs anomaly_job)
    assert _materialization(result, "influx_kpi_anomalies")["status"] == "published"

    metrics = sorted(kpis["metric"].unique())
    assert fields(influx1, bucket, "kpi") == {m: "float" for m in metrics}
    assert tags(influx1, bucket, "kpi") == {"tenant", "venue"}
    got = pl.DataFrame(influx1.rows("SELECT * FROM kpi", db=bucket))
    assert got.height == groups.height
    # every value, tag and timestamp as in the warehouse (tenant-wide rows: no venue tag)
    long = got.unpivot(index=["time", "tenant", "venue"], on=metrics, variable_name="metric").drop_nulls(
        "value"
    )
    expected = kpis.select(
        pl.col("snapshot_hour").dt.epoch("s").alias("time"),
        pl.col("tenant_id").alias("tenant"),
        pl.col("venue_id").alias("venue"),
        "metric",
        "value",
    )
    cols = ["time", "tenant", "venue", "metric", "value"]
    assert (
        long.select(cols).sort(cols).equals(expected.select(cols).sort(cols).cast(long.select(cols).schema))
    )

    again = _run(materialized, env)  # re-publish the same hours: same points, none added
    assert again.success
    assert pl.DataFrame(influx1.rows("SELECT * FROM kpi", db=bucket)).height == groups.height
    cursor = publications.published(ops_engine(env["TT_OPS_URL"]), "influx_kpi_snapshots")
    assert [r["partition_key"] for r in cursor] == [
        "2026-10-31-21:00",
        "2026-10-31-22:00",
        "2026-10-31-23:00",
    ]
    assert sum(r["points"] for r in cursor) == groups.height


def test_not_configured_job_succeeds_and_says_so(materialized):
    result = materialized.results["kpi_publication_job"]  # the shared fixture runs it, not configured
    assert result.success
    meta = _materialization(result, "influx_kpi_snapshots")
    assert meta["status"] == NOT_CONFIGURED and meta["points"] == 0


def test_influx_down_fails_only_the_publication_and_alerts(materialized, tmp_path, monkeypatch):
    from analytics_pipelines.sensors.operations import run_failure_alert_sensor

    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = {
        "TT_INFLUX_URL": down,
        "TT_INFLUX_MAX_RETRIES": "0",
        "TT_OPS_URL": f"sqlite:///{tmp_path / 'ops.db'}",
    }
    wh = open_warehouse(materialized.warehouse_url)
    before = wh.count("kpi_snapshots")
    instance = dg.DagsterInstance.ephemeral()
    result = _run(materialized, env, instance)
    assert not result.success
    failed = {e.step_key for e in result.all_events if e.is_step_failure}
    assert failed == {"influx_kpi_snapshots"}
    ok = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
    assert "influx_kpi_anomalies" in ok  # the other publisher in the same run is not dragged down
    assert wh.count("kpi_snapshots") == before
    assert publications.published(ops_engine(env["TT_OPS_URL"]), "influx_kpi_snapshots") == []
    # nothing in the pipeline depends on a publication asset, and no data job selects one
    defs = build_definitions(default_registry(), Settings.from_env({**materialized.env}))
    graph = defs.resolve_asset_graph()
    pubs = {dg.AssetKey(t.name) for t in default_registry().tables if t.group == "publication"}
    assert all(not graph.get(k).child_keys for k in pubs)
    for job in ("main_job", "marts_job", "kpi_job", "customers_job", "ingest_job"):
        assert not pubs & set(defs.resolve_job_def(job).asset_layer.executable_asset_keys), job

    # the failure is alerted on through the existing run-failure path
    with http_server([]) as (hook, received):
        monkeypatch.setenv("TT_ALERT_WEBHOOK_URL", hook)
        monkeypatch.delenv("TT_ALERT_EMAILS", raising=False)
        ctx = dg.build_run_status_sensor_context(
            sensor_name="run_failure_alert_sensor",
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            dagster_event=result.get_run_failure_event(),
        ).for_run_failure()
        run_failure_alert_sensor(ctx)
    [payload] = [r["body"] for r in received]
    assert payload["job"] == "kpi_publication_job" and "influx_kpi_snapshots" in payload["error"]


def test_sensor_requests_the_new_partitions(materialized, monkeypatch):
    from analytics_pipelines.jobs.publication import kpi_publication_job
    from analytics_pipelines.sensors.publication import make_publication_sensor

    sensor = make_publication_sensor(kpi_publication_job, "hourly")
    monkeypatch.delenv("TT_INFLUX_URL", raising=False)
    ctx = dg.build_sensor_context(instance=materialized.instance)
    assert isinstance(sensor(ctx), dg.SkipReason)
    monkeypatch.setenv("TT_INFLUX_URL", "http://127.0.0.1:1")
    ctx = dg.build_sensor_context(instance=materialized.instance)
    # the fixture's KPI hours; other tests of this worker may have materialized more hours on the same instance
    ranges = {
        (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
        for r in sensor(ctx)
    }
    assert tuple(KPI_HOURS) in ranges
    again = dg.build_sensor_context(instance=materialized.instance, cursor=ctx.cursor)
    assert isinstance(sensor(again), dg.SkipReason)  # nothing new since the cursor
