"""The `custom_metrics` mart's builder and check: the ops store's points of the run's days, hourly."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import polars as pl
import sqlalchemy as sa

from analytics_pipelines.marts.reconcile import CheckOutcome
from analytics_pipelines.metrics.custom import hourly
from analytics_pipelines.ops.custom_metrics import custom_metric_points, points_between
from analytics_pipelines.registry.context import BuildContext, Built


def _window(ctx: BuildContext) -> tuple[datetime, datetime]:
    first = datetime.combine(datetime.fromisoformat(ctx.first).date(), time(), UTC)
    last = datetime.combine(datetime.fromisoformat(ctx.last).date(), time(), UTC) + timedelta(days=1)
    return first, last


def _engine(ctx: BuildContext) -> sa.Engine:
    from analytics_pipelines.ops.db import ops_engine

    return ops_engine(ctx.settings.ops_url)


def custom_metrics(ctx: BuildContext) -> pl.DataFrame:
    """Every point recorded for the run's days, per hour, tenant, venue and metric type."""
    start, end = _window(ctx)
    return hourly(points_between(_engine(ctx), start, end))


def check_custom_metrics(ctx: BuildContext, built: Built) -> CheckOutcome:
    """Points and value sums per tenant, venue and metric type over the run's days equal a GROUP BY in the
    ops store itself (its own SQL, not the builder's frames)."""
    start, end = _window(ctx)
    t = custom_metric_points
    q = (
        sa.select(t.c.tenant_id, t.c.venue_id, t.c.metric_type, sa.func.count(), sa.func.sum(t.c.value))
        .where(t.c.recorded_at >= start, t.c.recorded_at < end)
        .group_by(t.c.tenant_id, t.c.venue_id, t.c.metric_type)
    )
    with _engine(ctx).connect() as conn:
        rows = conn.execute(q).all()
    keys = ["tenant_id", "venue_id", "metric_type"]
    want = pl.DataFrame(
        [(r[0], r[1], r[2], int(r[3]), float(r[4])) for r in rows],
        schema={**dict.fromkeys(keys, pl.String), "want_points": pl.Int64, "want_sum": pl.Float64},
        orient="row",
    )
    got = (
        built.frames["custom_metrics"]
        .group_by(keys)
        .agg(got_points=pl.sum("points"), got_sum=pl.sum("value_sum"))
    )
    diff = (
        want.join(got, on=keys, how="full", coalesce=True)
        .fill_null(0)
        .filter(
            (pl.col("want_points") != pl.col("got_points"))
            | ((pl.col("want_sum") - pl.col("got_sum")).abs() > 1e-6 * pl.col("want_sum").abs().clip(1))
        )
    )
    return CheckOutcome(
        diff.height == 0,
        {"groups": want.height, "groups_differing": diff.height},
        differences=diff if diff.height else None,
    )
