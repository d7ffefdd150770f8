"""Report and export jobs: one export request, export housekeeping, one subscription delivery, and the
report-file asset jobs. The work is in analytics_pipelines.exports and analytics_pipelines.reports.

- export_job: one run per due pending request (export_request_sensor, run_key "<id>:<attempts>"; the claim
  in the ops table makes sure only one run works on a request even if two were launched);
- export_maintenance_job (hourly): expired exports deleted and marked expired, dead runs' requests put back;
- report_delivery_job: one run per due (subscription, period, attempt); the delivery ledger makes each
  report go out at least once and never twice once recorded (docs/reports.md);
- daily_venue_reports_job / weekly_executive_reports_job: the report files for a day / week range.
"""

import dagster as dg

from analytics_pipelines.exports import delivery, lifecycle
from analytics_pipelines.resources import OpsResource, WarehouseResource
from analytics_pipelines.settings import Settings

TAGS = {"team": "data-platform"}


# --- export requests --------------------------------------------------------------------------------------


class ExportRequestConfig(dg.Config):
    request_id: str


@dg.op(tags=TAGS)
def process_export_request(
    context: dg.OpExecutionContext,
    config: ExportRequestConfig,
    ops: OpsResource,
    warehouse: WarehouseResource,
) -> dict:
    """Claim the request, build its report from the marts, write the file, record path/size/checksum."""
    row = lifecycle.run_export(ops.engine(), warehouse.get(), config.request_id, run_id=context.run_id)
    if row is None:
        context.log.info(f"export {config.request_id} not claimable (already taken, finished or not due)")
        return {"request_id": config.request_id, "status": "not_claimed"}
    context.add_output_metadata(
        {
            "status": row["status"],
            "file_path": row["file_path"] or "",
            "file_size": row["file_size"] or 0,
            "attempts": row["attempts"],
        }
    )
    if row["status"] == "cancelled":  # cancelled while it ran: its file was discarded; not a failure
        context.log.info(f"export {config.request_id} was cancelled while it ran; result discarded")
        return {"request_id": config.request_id, "status": "cancelled"}
    if row["status"] != "completed":
        raise dg.Failure(
            f"export {config.request_id} {row['status']}: {row['error_message']}",
            metadata={"status": row["status"], "attempts": row["attempts"]},
        )
    return {"request_id": config.request_id, "status": row["status"], "file_path": row["file_path"]}


@dg.job(tags=TAGS, description="Produce one export request (op config: request_id).")
def export_job():
    process_export_request()


@dg.op(tags=TAGS)
def expire_and_recover_exports(context: dg.OpExecutionContext, ops: OpsResource) -> dict:
    """Delete the files of exports past expires_at (rows marked expired); put dead runs' requests back."""
    engine = ops.engine()
    expired = lifecycle.expire_due(engine)
    recovered = lifecycle.recover_stale(engine)
    stuck = delivery.stuck_sending(engine)
    if stuck:
        context.log.warning(f"deliveries left in 'sending' by a dead sender (not resent): {stuck}")
    context.add_output_metadata(
        {"expired": len(expired), "recovered": len(recovered), "stuck_deliveries": len(stuck)}
    )
    return {"expired": expired, "recovered": recovered}


@dg.job(tags=TAGS, description="Export housekeeping: expire old files, recover interrupted requests.")
def export_maintenance_job():
    expire_and_recover_exports()


daily_venue_reports_job = dg.define_asset_job(
    "daily_venue_reports_job",
    selection=["daily_venue_reports"],
    tags=TAGS,
    description="Daily venue report files for a day range (one run for any range).",
)
weekly_executive_reports_job = dg.define_asset_job(
    "weekly_executive_reports_job",
    selection=["weekly_executive_reports"],
    tags=TAGS,
    description="Weekly executive report files for a week.",
)


# --- subscriptions ----------------------------------------------------------------------------------------


class DeliveryConfig(dg.Config):
    subscription_id: int
    period: str


@dg.op(tags=TAGS)
def deliver_report(
    context: dg.OpExecutionContext, config: DeliveryConfig, ops: OpsResource, warehouse: WarehouseResource
) -> dict:
    """Claim the (subscription, period) ledger row; only the claimant renders and emails the report."""
    settings = Settings.from_env()
    outcome = delivery.deliver(
        ops.engine(),
        warehouse.get(),
        config.subscription_id,
        config.period,
        settings.smtp,
        link_base=settings.report_link_base,
    )
    context.add_output_metadata(
        {
            "status": outcome.status,
            "attempts": outcome.attempts,
            "attached": outcome.attached,
            "file_path": outcome.file_path or "",
        }
    )
    if outcome.status == "failed":
        raise dg.Failure(f"delivery {config.subscription_id}/{config.period} failed: {outcome.error}")
    return {"status": outcome.status}


@dg.job(
    tags=TAGS, description="Send one subscription's report for one period (exactly once, via the ledger)."
)
def report_delivery_job():
    deliver_report()


jobs = [
    export_job,
    export_maintenance_job,
    report_delivery_job,
    daily_venue_reports_job,
    weekly_executive_reports_job,
]
