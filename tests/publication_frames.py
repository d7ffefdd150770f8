"""Synthetic frames with the contract columns of the published tables (contracts.md) and small helpers
to load them into a warehouse and read InfluxDB's schema back (tests/test_publication*.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from influxdb_server import Influx1

from analytics_pipelines.settings import InfluxSettings
from analytics_pipelines.warehouse import open_warehouse

T1, T2 = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
V1, V2 = "aaaaaaaa-0000-0000-0000-000000000001", "aaaaaaaa-0000-0000-0000-000000000002"


def target(url: str, bucket: str, **kw) -> InfluxSettings:
    return InfluxSettings(url=url, bucket=bucket, org="tickettoken", token="t", **kw)


def sales_velocity() -> pl.DataFrame:
    start = datetime(2026, 10, 30, 23, 50, tzinfo=UTC)
    buckets = [start + timedelta(minutes=5 * i) for i in range(6)]  # crosses midnight: two day partitions
    return pl.DataFrame(
        {
            "tenant_id": [T1] * 6,
            "venue_id": [V1] * 6,
            "event_id": ["e1", "e2"] * 3,
            "bucket_start": buckets,
            "day": [b.date() for b in buckets],
            "tickets": [5, 0, 12, 3, 7, 1],
            "per_minute_5m": [1.0, 0.0, 2.4, 0.6, 1.4, 0.2],
            "per_minute_15m": [0.5, 0.1, 1.2, 0.3, 1.1, 0.3],
            "per_minute_60m": [0.2, 0.1, 0.4, 0.2, 0.5, 0.2],
            "acceleration": [0.5, -0.1, 1.2, 0.3, 0.3, -0.1],
            "tickets_sold": [100, 40, 112, 43, 119, 44],
            "capacity": [500, None, 500, None, 500, None],
            "remaining": [400, None, 388, None, 381, None],
            "trend": ["accelerating", "steady"] * 3,
            "high_velocity": [False] * 6,
            "sellout_imminent": [False] * 6,
        },
        schema_overrides={
            "bucket_start": pl.Datetime("us", "UTC"),
            "capacity": pl.Int64,
            "remaining": pl.Int64,
        },
    )


def kpi_anomalies() -> pl.DataFrame:
    hours = [datetime(2026, 10, 31, 21, tzinfo=UTC), datetime(2026, 10, 31, 22, tzinfo=UTC)]
    return pl.DataFrame(
        {
            "tenant_id": [T1, T1, T2],
            "venue_id": [V1, None, V2],
            "metric": ["gross_revenue_24h_cents", "tickets_sold_24h", "refund_rate"],
            "hour": [hours[0], hours[0], hours[1]],
            "hour_key": [h.strftime("%Y-%m-%d-%H:%M") for h in (hours[0], hours[0], hours[1])],
            "value": [120000.0, 40.0, 0.31],
            "baseline": [50000.0, 38.0, 0.05],
            "scale": [4000.0, 3.0, 0.02],
            "score": [17.5, 0.67, 13.0],
            "severity": ["critical", "low", "high"],
            "direction": ["up", "up", "up"],
            "detector_version": ["mad-1"] * 3,
        },
        schema_overrides={"hour": pl.Datetime("us", "UTC")},
    )


def fraud_metrics() -> pl.DataFrame:
    hours = [datetime(2026, 10, 31, h, tzinfo=UTC) for h in (9, 10)]
    return pl.DataFrame(
        {
            "tenant_id": [T1, T2],
            "venue_id": [V1, V2],
            "hour": hours,
            "day": [h.date() for h in hours],
            "orders": [40, 0],
            "flagged_orders": [3, 0],
            "fraud_pct": [7.5, None],  # no orders: no ratio (the field is left out, the point stays)
        },
        schema_overrides={"hour": pl.Datetime("us", "UTC"), "fraud_pct": pl.Float64},
    )


def load(tmp_path, name: str, df: pl.DataFrame, column: str):
    wh = open_warehouse(f"duckdb:///{tmp_path / 'warehouse'}")
    keys = sorted({str(v) for v in df[column].cast(pl.String)})
    wh.write_partitions(name, df, [column], [(k,) for k in keys])
    return wh, keys


def fields(influx1: Influx1, bucket: str, measurement: str) -> dict[str, str]:
    return {k: t for k, t in influx1.query(f"SHOW FIELD KEYS FROM {measurement}", db=bucket)[0]["values"]}


def tags(influx1: Influx1, bucket: str, measurement: str) -> set[str]:
    return {v[0] for v in influx1.query(f"SHOW TAG KEYS FROM {measurement}", db=bucket)[0]["values"]}


def count(influx1: Influx1, bucket: str, measurement: str, field: str) -> int:
    series = influx1.query(f'SELECT count("{field}") FROM {measurement}', db=bucket)
    return series[0]["values"][0][1] if series else 0
