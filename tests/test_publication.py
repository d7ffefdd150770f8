"""Publication to InfluxDB (issue 18), against a real InfluxDB 1.6.7 (Debian's package, started per module
from a temp config: tests/influxdb_server.py, fixtures in conftest.py) behind the /api/v2/write forwarder
(tests/influx_forwarder.py), queried back with InfluxQL over HTTP /query. An InfluxDB 2 is tested only when
TT_TEST_INFLUX_URL is given. The runs through the Dagster jobs: test_publication_jobs.py."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, date, datetime

import polars as pl
import pytest
from publication_frames import (
    T1,
    T2,
    V1,
    count,
    fields,
    fraud_metrics,
    kpi_anomalies,
    load,
    sales_velocity,
    tags,
    target,
)

from analytics_pipelines.ops import publications
from analytics_pipelines.ops.db import ops_engine
from analytics_pipelines.publication.lines import Series, to_lines
from analytics_pipelines.publication.series import PUBLISHERS
from analytics_pipelines.publication.steps import NOT_CONFIGURED, publish
from analytics_pipelines.publication.writer import PublicationError
from analytics_pipelines.registry import default_registry
from analytics_pipelines.settings import InfluxSettings, Settings

# -- line protocol (no server) -------------------------------------------------------------------------------


def test_line_protocol_escaping_types_and_accounting():
    ts = datetime(2026, 10, 31, 21, tzinfo=UTC)
    df = pl.DataFrame(
        {
            "t": [ts, ts, None, ts],
            "tenant": ["a b", "x,y=z", "t", "t"],
            "venue": [None, "v", "v", "v"],
            "f": [1.5, float("nan"), 2.0, None],
            "i": [3, None, 1, None],
            "s": ['say "hi"', None, "x", None],
            "b": [True, None, False, None],
        },
        schema_overrides={"t": pl.Datetime("us", "UTC")},
    )
    series = Series(
        "m 1",
        "t",
        {"tenant": "tenant", "venue": "venue"},
        {"f": ("f", "float"), "i": ("i", "int"), "s": ("s", "string"), "b": ("b", "bool")},
    )
    lines, skipped = to_lines(df, series, "s")
    epoch = int(ts.timestamp())
    assert lines.to_list() == [
        f'm\\ 1,tenant=a\\ b f=1.5,i=3i,s="say \\"hi\\"",b=true {epoch}'  # NULL venue: no tag
    ]
    # row 2: NaN float, NULL int/string/bool -> no field; row 3: no timestamp; row 4: nothing but NULLs
    assert skipped == {"no_timestamp": 1, "no_field_value": 2}
    ms, _ = to_lines(df.head(1), series, "ms")
    assert ms[0].endswith(f" {epoch * 1000}")
    with pytest.raises(KeyError, match="missing"):
        to_lines(df.drop("f"), series, "s")


@pytest.mark.parametrize("precision", ["s", "ms", "ns"])
def test_event_sales_round_trip_and_overwrite(influx1, v2_url, bucket, tmp_path, precision, ops_url):
    """The publication cursor in both ops stores (SQLite, PostgreSQL): one row per published partition,
    updated in place on re-publication."""
    df = sales_velocity()
    wh, keys = load(tmp_path, "sales_velocity", df, "day")
    assert keys == ["2026-10-30", "2026-10-31"]
    engine = ops_engine(ops_url)
    meta, _ = publish(wh, "influx_event_sales", keys, target(v2_url, bucket, precision=precision), engine)
    assert meta["status"] == "published" and meta["points"] == 6 and meta["precision"] == precision
    assert fields(influx1, bucket, "event_sales") == {
        "velocity": "float",
        "acceleration": "float",
        "tickets_sold": "integer",
        "remaining": "integer",
        "tickets": "integer",
        "velocity_15m": "float",
        "velocity_60m": "float",
    }
    assert tags(influx1, bucket, "event_sales") == {"event_id", "tenant", "venue"}
    rows = influx1.rows("SELECT * FROM event_sales WHERE event_id = 'e1' ORDER BY time", db=bucket)
    expected = df.filter(pl.col("event_id") == "e1")
    assert [r["time"] for r in rows] == [int(t.timestamp()) for t in expected["bucket_start"]]
    assert [r["velocity"] for r in rows] == expected["per_minute_5m"].to_list()
    assert [r["tickets_sold"] for r in rows] == expected["tickets_sold"].to_list()
    assert [r["remaining"] for r in rows] == expected["remaining"].to_list()
    assert {(r["tenant"], r["venue"]) for r in rows} == {(T1, V1)}
    e2 = influx1.rows("SELECT remaining, tickets_sold FROM event_sales WHERE event_id = 'e2'", db=bucket)
    assert [r["remaining"] for r in e2] == [None] * 3 and [r["tickets_sold"] for r in e2] == [40, 43, 44]

    # re-publish one day with changed values: the same points are overwritten, none added
    changed = df.with_columns(pl.col("per_minute_5m") * 10)
    wh.write_partitions(
        "sales_velocity", changed.filter(pl.col("day") == date(2026, 10, 31)), ["day"], [("2026-10-31",)]
    )
    meta2, _ = publish(
        wh, "influx_event_sales", ["2026-10-31"], target(v2_url, bucket, precision=precision), engine
    )
    assert meta2["points"] == 4
    assert count(influx1, bucket, "event_sales", "velocity") == 6
    after = influx1.rows("SELECT velocity FROM event_sales WHERE event_id = 'e1' ORDER BY time", db=bucket)
    assert [r["velocity"] for r in after] == [1.0, 24.0, 14.0]  # 23:50 (Oct 30) kept, Oct 31 overwritten

    cursor = publications.published(engine, "influx_event_sales")
    assert [(r["partition_key"], r["points"]) for r in cursor] == [("2026-10-30", 2), ("2026-10-31", 4)]
    assert cursor[1]["last_time"] == datetime(2026, 10, 31, 0, 15, tzinfo=UTC)


def test_anomaly_and_fraud_round_trip(influx1, v2_url, bucket, tmp_path):
    engine = ops_engine(f"sqlite:///{tmp_path / 'ops.sqlite'}")
    wh, keys = load(tmp_path, "kpi_anomalies", kpi_anomalies(), "hour_key")
    meta, _ = publish(wh, "influx_kpi_anomalies", keys, target(v2_url, bucket), engine)
    assert meta["points"] == 3
    assert fields(influx1, bucket, "kpi_anomaly") == {
        "value": "float",
        "baseline": "float",
        "scale": "float",
        "score": "float",
        "severity": "string",
        "direction": "string",
        "detector_version": "string",
    }
    assert tags(influx1, bucket, "kpi_anomaly") == {"tenant", "venue", "metric"}
    tenant_wide = influx1.rows("SELECT * FROM kpi_anomaly WHERE venue = ''", db=bucket)
    assert [(r["metric"], r["severity"], r["score"]) for r in tenant_wide] == [
        ("tickets_sold_24h", "low", 0.67)
    ]
    # re-scored (severity changed): the point is overwritten, not a second series
    rescored = kpi_anomalies().with_columns(pl.lit("medium").alias("severity"))
    wh.write_partitions("kpi_anomalies", rescored, ["hour_key"], [(k,) for k in keys])
    publish(wh, "influx_kpi_anomalies", keys, target(v2_url, bucket), engine)
    assert count(influx1, bucket, "kpi_anomaly", "score") == 3
    assert {r["severity"] for r in influx1.rows("SELECT severity FROM kpi_anomaly", db=bucket)} == {"medium"}

    wh, keys = load(tmp_path, "fraud_metrics_hourly", fraud_metrics(), "day")
    meta, _ = publish(wh, "influx_fraud_metrics", keys, target(v2_url, bucket), engine)
    assert meta["points"] == 2 and meta["skipped_rows"] == 0
    assert fields(influx1, bucket, "fraud_metrics") == {
        "orders": "integer",
        "flagged_orders": "integer",
        "fraud_pct": "float",
    }
    rows = influx1.rows("SELECT * FROM fraud_metrics ORDER BY time", db=bucket)
    assert [(r["time"], r["tenant"], r["orders"], r["fraud_pct"]) for r in rows] == [
        (int(datetime(2026, 10, 31, 9, tzinfo=UTC).timestamp()), T1, 40, 7.5),
        (int(datetime(2026, 10, 31, 10, tzinfo=UTC).timestamp()), T2, 0, None),
    ]


def test_not_configured_publishes_nothing(tmp_path):
    wh, keys = load(tmp_path, "fraud_metrics_hourly", fraud_metrics(), "day")
    meta, prepared = publish(wh, "influx_fraud_metrics", keys, InfluxSettings(url=None))
    assert meta["status"] == NOT_CONFIGURED and meta["points"] == 0 and prepared is None
    assert Settings.from_env({}).influx.url is None


def test_refused_write_raises(influx1, v2_url, tmp_path):
    wh, keys = load(tmp_path, "fraud_metrics_hourly", fraud_metrics(), "day")
    with pytest.raises(PublicationError, match="database not found"):  # 1.6.7's 404, passed through
        publish(wh, "influx_fraud_metrics", keys, target(v2_url, "no_such_db", max_retries=0))


def test_every_publisher_has_a_registry_entry_and_asset():
    names = {t.name for t in default_registry().tables if t.factory == "publication"}
    assert names == set(PUBLISHERS)
    for t in default_registry().tables:
        if t.factory == "publication":
            assert t.partition_column == PUBLISHERS[t.name].partition_column
            assert t.partitioning == PUBLISHERS[t.name].partitioning
            assert all(not c.blocking for c in t.checks)


# -- a real InfluxDB 2 (opt-in) -----------------------------------------------------------------------------

INFLUX2 = os.environ.get("TT_TEST_INFLUX_URL")


@pytest.mark.skipif(not INFLUX2, reason="TT_TEST_INFLUX_URL not set (a real InfluxDB 2.x to test against)")
def test_round_trip_against_a_real_influxdb2(tmp_path):
    from influxdb_client import InfluxDBClient

    token, org = (
        os.environ.get("TT_TEST_INFLUX_TOKEN", ""),
        os.environ.get("TT_TEST_INFLUX_ORG", "tickettoken"),
    )
    bucket = os.environ.get("TT_TEST_INFLUX_BUCKET", "tickettoken")
    run = uuid.uuid4().hex[:8]
    df = fraud_metrics().with_columns(pl.col("tenant_id") + f"-{run}")
    wh, keys = load(tmp_path, "fraud_metrics_hourly", df, "day")
    settings = InfluxSettings(url=INFLUX2, org=org, bucket=bucket, token=token)
    for _ in range(2):  # twice: overwritten, not duplicated
        meta, _ = publish(wh, "influx_fraud_metrics", keys, settings)
        assert meta["points"] == 2
    flux = f"""from(bucket: "{bucket}") |> range(start: 2026-10-31T00:00:00Z, stop: 2026-11-01T00:00:00Z)
      |> filter(fn: (r) => r._measurement == "fraud_metrics" and r.tenant =~ /-{run}$/ and r._field == "orders")"""
    with InfluxDBClient(url=INFLUX2, token=token, org=org) as client:
        records = [r for t in client.query_api().query(flux) for r in t.records]
    assert sorted((r["tenant"], r.get_value()) for r in records) == [(f"{T1}-{run}", 40), (f"{T2}-{run}", 0)]


# -- the Grafana dashboard's queries run on the real server ---------------------------------------------------


def test_grafana_dashboard_queries_run_against_the_published_series(influx1, v2_url, bucket, tmp_path):
    import json

    from analytics_pipelines.api.grafana import GRANULARITIES, SALES_FIELDS
    from analytics_pipelines.paths import PROJECT_ROOT

    engine = ops_engine(f"sqlite:///{tmp_path / 'ops.sqlite'}")
    for name, frame, col, pub in (
        ("sales_velocity", sales_velocity(), "day", "influx_event_sales"),
        ("kpi_anomalies", kpi_anomalies(), "hour_key", "influx_kpi_anomalies"),
        ("fraud_metrics_hourly", fraud_metrics(), "day", "influx_fraud_metrics"),
    ):
        wh, keys = load(tmp_path, name, frame, col)
        publish(wh, pub, keys, target(v2_url, bucket), engine)
    ts = datetime(2026, 10, 31, 21, tzinfo=UTC)
    kpi = pl.DataFrame(
        {
            "snapshot_hour": [ts, ts],
            "hour_key": ["2026-10-31-21:00"] * 2,
            "tenant_id": [T1, T1],
            "venue_id": [None, V1],
            "metric": ["gross_revenue_24h_cents", "tickets_sold_24h"],
            "value": [125000.0, 12.0],
        },
        schema_overrides={"snapshot_hour": pl.Datetime("us", "UTC"), "venue_id": pl.String},
    )
    wh, keys = load(tmp_path, "kpi_snapshots", kpi, "hour_key")
    publish(wh, "influx_kpi_snapshots", keys, target(v2_url, bucket), engine)

    path = PROJECT_ROOT / "deploy" / "grafana" / "dashboards" / "tickettoken-publication.json"
    dash = json.loads(path.read_text())
    macros = {
        "$timeFilter": "time >= '2026-10-30T00:00:00Z' AND time <= '2026-11-01T00:00:00Z'",
        "$__interval": "1h",
        "$tenant": T1,
        "$venue": ".*",
    }
    ran = 0
    for panel in dash["panels"]:
        for t in panel["targets"]:
            if t["datasource"]["uid"] == "tt-influxdb":
                q = t["query"]
                for k, v in macros.items():
                    q = q.replace(k, v)
                assert influx1.query(q, db=bucket), (panel["title"], q)  # runs, and finds the points
                ran += 1
            else:  # the API's simple-JSON names (analytics_pipelines/api/grafana.py)
                kind, *rest = t["target"].split(".")
                assert (kind == "kpi" and len(rest) == 1) or (
                    kind == "sales" and rest[0] in GRANULARITIES and rest[1] in SALES_FIELDS
                ), t["target"]
    assert ran == 6
    for var in dash["templating"]["list"]:
        q = var["query"].replace("$tenant", T1)
        assert influx1.query(q, db=bucket), var["name"]
