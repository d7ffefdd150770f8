"""Report sensors: due export requests -> export_job; due subscription deliveries -> report_delivery_job."""

import dagster as dg

from analytics_pipelines.exports import delivery, lifecycle
from analytics_pipelines.jobs.reports import (
    DeliveryConfig,
    ExportRequestConfig,
    export_job,
    report_delivery_job,
)
from analytics_pipelines.resources import OpsResource


@dg.sensor(job=export_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def export_request_sensor(context: dg.SensorEvaluationContext, ops: OpsResource):
    """One export_job run per pending request whose next attempt is due."""
    due = lifecycle.due_requests(ops.engine())
    if not due:
        return dg.SkipReason("no pending export requests are due")
    return [
        dg.RunRequest(
            run_key=r.run_key,
            tags={"export_id": r.id, "attempt": str(r.attempts)},
            run_config=dg.RunConfig(ops={"process_export_request": ExportRequestConfig(request_id=r.id)}),
        )
        for r in due
    ]


@dg.sensor(
    job=report_delivery_job, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING
)
def report_delivery_sensor(context: dg.SensorEvaluationContext, ops: OpsResource):
    """Every 5 minutes: one run per subscription whose period is due (its local time has passed in its time
    zone) and not yet sent; failed sends come back after their backoff with a new run key."""
    due = delivery.due_deliveries(ops.engine())
    if not due:
        return dg.SkipReason("no subscription deliveries are due")
    return [
        dg.RunRequest(
            run_key=d.run_key,
            tags={"subscription_id": str(d.subscription_id), "period": d.period},
            run_config=dg.RunConfig(
                ops={"deliver_report": DeliveryConfig(subscription_id=d.subscription_id, period=d.period)}
            ),
        )
        for d in due
    ]


sensors = [export_request_sensor, report_delivery_sensor]
