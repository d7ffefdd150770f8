"""Dagster wiring of reports and exports (thin: the work is in analytics_pipelines.reports and
analytics_pipelines.exports). Exposes `assets`, `jobs`, `sensors`, `schedules` and `resources` for the one
Definitions.

- export_request_sensor -> export_job: one run per due pending request, run_key "<id>:<attempts>" (a sensor
  tick or daemon restart never launches a second run for the same attempt; the claim in the ops table
  makes sure only one run works on a request even if two were launched).
- export_maintenance_schedule -> export_maintenance_job (hourly): expired exports deleted and marked expired,
  runs that died mid-export put back for retry.
- daily_venue_reports (daily partitions) and weekly_executive_reports (weekly partitions, Monday-Sunday UTC,
  key = the Monday): PDF, XLSX and CSV for every venue with activity, under data/reports/; their jobs run
  from daily_venue_reports_schedule (06:30 UTC, yesterday) and weekly_executive_reports_schedule (Monday
  07:00 UTC, last week). Keep group "reports" out of main_job: rendering every venue for every day of history
  is slow, and the weekly partitions cannot share main_job's daily ones.
- report_delivery_sensor -> report_delivery_job: one run per due (subscription, period, attempt); the
  delivery ledger makes each report go out once.
"""

import os
from datetime import date, timedelta
from pathlib import Path

import dagster as dg

from analytics_pipelines.exports import delivery, lifecycle
from analytics_pipelines.notify import SmtpSettings
from analytics_pipelines.partitions import PARTITION_START, daily_partitions
from analytics_pipelines.paths import data_dir
from analytics_pipelines.reports.builders import daily_venue_report, executive_report, venues_with_activity
from analytics_pipelines.reports.writers import render
from analytics_pipelines.resources import OpsResource, WarehouseResource

OWNERS = ["team:data-platform"]
TAGS = {"team": "data-platform"}
REPORT_FORMATS = ("pdf", "xlsx", "csv")
DAILY_REPORT_DEPS = ["venue_analytics", "venue_analytics_hourly", "revenue_by_channel", "revenue_by_category",
                     "event_analytics", "event_performance"]
WEEKLY_REPORT_DEPS = ["venue_analytics", "revenue_by_channel", "event_analytics", "event_performance"]


def _first_monday(start: str) -> str:
    d = date.fromisoformat(start)
    return (d + timedelta(days=(7 - d.weekday()) % 7)).isoformat()


#: ISO weeks (Monday-Sunday, UTC), keyed by their Monday; the first full week of history onward
weekly_partitions = dg.WeeklyPartitionsDefinition(start_date=_first_monday(PARTITION_START), day_offset=1,
                                                  timezone="UTC")


def reports_dir() -> Path:
    return data_dir() / "reports"


# --- export requests --------------------------------------------------------------------------------------

class ExportRequestConfig(dg.Config):
    request_id: str


@dg.op(tags=TAGS)
def process_export_request(context: dg.OpExecutionContext, config: ExportRequestConfig, ops: OpsResource,
                           warehouse: WarehouseResource) -> dict:
    """Claim the request, build its report from the marts, write the file, record path/size/checksum."""
    row = lifecycle.run_export(ops.engine(), warehouse.get(), config.request_id, run_id=context.run_id)
    if row is None:
        context.log.info(f"export {config.request_id} not claimable (already taken, finished or not due)")
        return {"request_id": config.request_id, "status": "not_claimed"}
    context.add_output_metadata({"status": row["status"], "file_path": row["file_path"] or "",
                                 "file_size": row["file_size"] or 0, "attempts": row["attempts"]})
    if row["status"] != "completed":
        raise dg.Failure(f"export {config.request_id} {row['status']}: {row['error_message']}",
                         metadata={"status": row["status"], "attempts": row["attempts"]})
    return {"request_id": config.request_id, "status": row["status"], "file_path": row["file_path"]}


@dg.job(tags=TAGS, description="Produce one export request (op config: request_id).")
def export_job():
    process_export_request()


@dg.sensor(job=export_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def export_request_sensor(context: dg.SensorEvaluationContext, ops: OpsResource):
    """One export_job run per pending request whose next attempt is due."""
    due = lifecycle.due_requests(ops.engine())
    if not due:
        return dg.SkipReason("no pending export requests are due")
    return [dg.RunRequest(run_key=r.run_key, tags={"export_id": r.id, "attempt": str(r.attempts)},
                          run_config=dg.RunConfig(ops={"process_export_request":
                                                       ExportRequestConfig(request_id=r.id)}))
            for r in due]


@dg.op(tags=TAGS)
def expire_and_recover_exports(context: dg.OpExecutionContext, ops: OpsResource) -> dict:
    """Delete the files of exports past expires_at (rows marked expired); put dead runs' requests back."""
    engine = ops.engine()
    expired = lifecycle.expire_due(engine)
    recovered = lifecycle.recover_stale(engine)
    stuck = delivery.stuck_sending(engine)
    if stuck:
        context.log.warning(f"deliveries left in 'sending' by a dead sender (not resent): {stuck}")
    context.add_output_metadata({"expired": len(expired), "recovered": len(recovered), "stuck_deliveries": len(stuck)})
    return {"expired": expired, "recovered": recovered}


@dg.job(tags=TAGS, description="Export housekeeping: expire old files, recover interrupted requests.")
def export_maintenance_job():
    expire_and_recover_exports()


export_maintenance_schedule = dg.ScheduleDefinition(
    name="export_maintenance_schedule",
    job=export_maintenance_job, cron_schedule="15 * * * *", execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING)


# --- report files -----------------------------------------------------------------------------------------

def _write_all(report, base: Path) -> list[Path]:
    return [render(report, fmt, base) for fmt in REPORT_FORMATS]


def _result(files: list[Path], venues: int) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={
        "venues": venues, "files": len(files), "bytes": sum(p.stat().st_size for p in files),
        "directory": dg.MetadataValue.path(str(files[0].parent) if files else str(reports_dir())),
    })


@dg.asset(partitions_def=daily_partitions, deps=DAILY_REPORT_DEPS, group_name="reports", owners=OWNERS,
          kinds={"pdf", "xlsx", "csv"}, backfill_policy=dg.BackfillPolicy.single_run())
def daily_venue_reports(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Daily venue report per venue with sales that UTC day: key figures, sales by local hour, revenue by
    channel and category, top events. PDF, XLSX and CSV under data/reports/daily_venue/<day>/."""
    wh = warehouse.get()
    files, venues = [], 0
    for key in context.partition_keys:
        day = date.fromisoformat(key)
        for tenant_id, venue_id in venues_with_activity(wh, day, day).iter_rows():
            report = daily_venue_report(wh, venue_id, day, tenant_id)
            files += _write_all(report, reports_dir() / "daily_venue" / key / venue_id)
            venues += 1
    return _result(files, venues)


@dg.asset(partitions_def=weekly_partitions, deps=WEEKLY_REPORT_DEPS, group_name="reports", owners=OWNERS,
          kinds={"pdf", "xlsx", "csv"})
def weekly_executive_reports(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Weekly executive report per venue with sales that week (Monday-Sunday UTC): totals against the week
    before, daily trend, top events, refunds/fees/net by revenue line. PDF, XLSX and CSV under
    data/reports/weekly_executive/<monday>/."""
    wh = warehouse.get()
    window = context.partition_time_window
    first, last = window.start.date(), window.end.date() - timedelta(days=1)
    files, venues = [], 0
    for tenant_id, venue_id in venues_with_activity(wh, first, last).iter_rows():
        report = executive_report(wh, venue_id, first, last, tenant_id)
        files += _write_all(report, reports_dir() / "weekly_executive" / first.isoformat() / venue_id)
        venues += 1
    return _result(files, venues)


daily_venue_reports_job = dg.define_asset_job(
    "daily_venue_reports_job", selection=[daily_venue_reports], tags=TAGS,
    description="Daily venue report files for a day range (one run for any range).")
weekly_executive_reports_job = dg.define_asset_job(
    "weekly_executive_reports_job", selection=[weekly_executive_reports],
    tags=TAGS, description="Weekly executive report files for a week.")


@dg.schedule(job=daily_venue_reports_job, cron_schedule="30 6 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING)
def daily_venue_reports_schedule(context: dg.ScheduleEvaluationContext):
    """06:30 UTC: yesterday's daily venue reports (the day is complete and its marts rebuilt)."""
    day = (context.scheduled_execution_time.date() - timedelta(days=1)).isoformat()
    return dg.RunRequest(run_key=day, partition_key=day)


@dg.schedule(job=weekly_executive_reports_job, cron_schedule="0 7 * * 1", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING)
def weekly_executive_reports_schedule(context: dg.ScheduleEvaluationContext):
    """Mondays 07:00 UTC: the week that ended on Sunday."""
    monday = (context.scheduled_execution_time.date() - timedelta(days=7)).isoformat()
    return dg.RunRequest(run_key=monday, partition_key=monday)


# --- subscriptions ----------------------------------------------------------------------------------------

class DeliveryConfig(dg.Config):
    subscription_id: int
    period: str


@dg.op(tags=TAGS)
def deliver_report(context: dg.OpExecutionContext, config: DeliveryConfig, ops: OpsResource,
                   warehouse: WarehouseResource) -> dict:
    """Claim the (subscription, period) ledger row; only the claimant renders and emails the report."""
    outcome = delivery.deliver(ops.engine(), warehouse.get(), config.subscription_id, config.period,
                               SmtpSettings.from_env(), link_base=os.environ.get("TT_REPORT_LINK_BASE") or None)
    context.add_output_metadata({"status": outcome.status, "attempts": outcome.attempts,
                                 "attached": outcome.attached, "file_path": outcome.file_path or ""})
    if outcome.status == "failed":
        raise dg.Failure(f"delivery {config.subscription_id}/{config.period} failed: {outcome.error}")
    return {"status": outcome.status}


@dg.job(tags=TAGS, description="Send one subscription's report for one period (exactly once, via the ledger).")
def report_delivery_job():
    deliver_report()


@dg.sensor(job=report_delivery_job, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING)
def report_delivery_sensor(context: dg.SensorEvaluationContext, ops: OpsResource):
    """Every 5 minutes: one run per subscription whose period is due (its local time has passed in its time
    zone) and not yet sent; failed sends come back after their backoff with a new run key."""
    due = delivery.due_deliveries(ops.engine())
    if not due:
        return dg.SkipReason("no subscription deliveries are due")
    return [dg.RunRequest(run_key=d.run_key, tags={"subscription_id": str(d.subscription_id), "period": d.period},
                          run_config=dg.RunConfig(ops={"deliver_report": DeliveryConfig(
                              subscription_id=d.subscription_id, period=d.period)}))
            for d in due]


assets = [daily_venue_reports, weekly_executive_reports]
jobs = [export_job, export_maintenance_job, report_delivery_job, daily_venue_reports_job,
        weekly_executive_reports_job]
sensors = [export_request_sensor, report_delivery_sensor]
schedules = [export_maintenance_schedule, daily_venue_reports_schedule, weekly_executive_reports_schedule]
resources = {"ops": OpsResource()}
