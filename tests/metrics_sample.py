"""The custom_metrics and sales_velocity marts for the query layer's tests, for the sample's tenants, venues,
events and days (tests/api_sample.py): custom metric points aggregated by the mart's own builder
(analytics_pipelines.metrics.custom.hourly) and 5-minute velocity rows of the last day's last hour, with the
columns of the real builders' schemas. `custom_points` gives the raw points back for hand aggregations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
from api_sample import SampleMarts

from analytics_pipelines.metrics.custom import hourly
from analytics_pipelines.monitoring.velocity import SCHEMA as VELOCITY_SCHEMA

CUSTOM_TYPES = {"sales": (0, 50), "revenue": (0, 90_000), "conversion": (0.0, 100.0)}
CUSTOM_DAYS = 10


def custom_points(marts: SampleMarts, seed: int = 23) -> pl.DataFrame:
    """Points (id, tenant_id, venue_id, metric_type, value, recorded_at) over the sample's last 10 days:
    0-3 per venue, type and day, some in the same hour."""
    rng = np.random.default_rng(seed)
    rows, pid = [], 0
    for t, vs in marts.tenants.items():
        for v in vs:
            for i in range(CUSTOM_DAYS):
                day = marts.last_day - timedelta(days=i)
                for metric, (lo, hi) in CUSTOM_TYPES.items():
                    for _ in range(int(rng.integers(0, 4))):
                        pid += 1
                        hour = int(rng.choice([9, 9, 14, 20]))
                        at = datetime(
                            day.year, day.month, day.day, hour, int(rng.integers(0, 60)), tzinfo=UTC
                        )
                        value = (
                            float(rng.uniform(lo, hi))
                            if isinstance(lo, float)
                            else float(rng.integers(lo, hi))
                        )
                        rows.append((pid, t, v, metric, round(value, 2), at))
    return pl.DataFrame(
        rows,
        orient="row",
        schema={
            "id": pl.Int64,
            "tenant_id": pl.String,
            "venue_id": pl.String,
            "metric_type": pl.String,
            "value": pl.Float64,
            "recorded_at": pl.Datetime("us", "UTC"),
        },
    )


def velocity_rows(marts: SampleMarts, seed: int = 29) -> pl.DataFrame:
    """sales_velocity rows: the first two events of every venue, 5-minute buckets of the last day's 23:00 hour
    (about a third left out, so the venues' newest buckets differ)."""
    rng = np.random.default_rng(seed)
    hour = datetime(marts.last_day.year, marts.last_day.month, marts.last_day.day, 23, tzinfo=UTC)
    rows = []
    for t, vs in marts.tenants.items():
        for v in vs:
            for e in marts.events[v][:2]:
                sold = 0
                for k in range(12):
                    if rng.uniform() < 0.3:
                        continue
                    tickets = int(rng.integers(1, 80))
                    sold += tickets
                    rate5 = tickets / 5
                    rows.append(
                        {
                            "tenant_id": t,
                            "venue_id": v,
                            "event_id": e,
                            "bucket_start": hour + timedelta(minutes=5 * k),
                            "day": marts.last_day,
                            "tickets": tickets,
                            "per_minute_5m": rate5,
                            "per_minute_15m": rate5 * float(rng.uniform(0.5, 1.5)),
                            "per_minute_60m": rate5 * float(rng.uniform(0.3, 1.2)),
                            "acceleration": 0.0,
                            "tickets_sold": sold,
                            "capacity": 5_000,
                            "remaining": 5_000 - sold,
                            "trend": ("accelerating", "steady", "decelerating")[int(rng.integers(0, 3))],
                            "high_velocity": rate5 > 10,
                            "sellout_imminent": bool(rng.uniform() < 0.2),
                            "sold_out": False,
                            "oversold": False,
                            "eta_linear_minutes": None,
                            "capacity_reason": None,
                        }
                    )
    return pl.DataFrame(rows, schema=VELOCITY_SCHEMA)


def build_metric_marts(wh, marts: SampleMarts) -> None:
    cm = hourly(custom_points(marts))
    days = sorted({d.isoformat() for d in cm["day"].to_list()})
    wh.write_partitions("custom_metrics", cm, ["day"], [(d,) for d in days])
    wh.write_partitions("sales_velocity", velocity_rows(marts), ["day"], [(marts.last_day.isoformat(),)])
