"""Report files as assets (group `reports`): daily venue reports and weekly executive reports per venue with
activity, in PDF, XLSX, CSV and JSON under data/reports/. The rendering is analytics_pipelines.reports."""

from datetime import date, timedelta
from pathlib import Path

import dagster as dg

from analytics_pipelines.partitions import partitions
from analytics_pipelines.paths import data_dir
from analytics_pipelines.reports.builders import daily_venue_reports as build_daily_reports
from analytics_pipelines.reports.builders import executive_reports
from analytics_pipelines.reports.writers import render
from analytics_pipelines.resources import WarehouseResource
from analytics_pipelines.settings import Settings

OWNERS = ["team:data-platform"]
REPORT_FORMATS = ("pdf", "xlsx", "csv", "json")
DAILY_REPORT_DEPS = [
    "venue_analytics",
    "venue_analytics_hourly",
    "revenue_by_channel",
    "revenue_by_category",
    "event_analytics",
    "event_performance",
]
WEEKLY_REPORT_DEPS = ["venue_analytics", "revenue_by_channel", "event_analytics", "event_performance"]


def reports_dir() -> Path:
    return data_dir() / "reports"


# --- report files -----------------------------------------------------------------------------------------


def _write_all(report, base: Path) -> list[Path]:
    return [render(report, fmt, base) for fmt in REPORT_FORMATS]


def _result(files: list[Path], venues: int) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={
            "venues": venues,
            "files": len(files),
            "bytes": sum(p.stat().st_size for p in files),
            "directory": dg.MetadataValue.path(str(files[0].parent) if files else str(reports_dir())),
        }
    )


def report_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    """The report-file assets, partitioned like the configured history."""
    parts = partitions(settings.partition_start)

    @dg.asset(
        partitions_def=parts.daily,
        deps=DAILY_REPORT_DEPS,
        group_name="reports",
        owners=OWNERS,
        kinds={"pdf", "xlsx", "csv"},
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def daily_venue_reports(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        """Daily venue report per venue with sales that UTC day: key figures, sales by local hour, revenue by
        channel and category, top events. PDF, XLSX, CSV and JSON under data/reports/daily_venue/<day>/."""
        wh = warehouse.get()
        files, venues = [], 0
        for key in context.partition_keys:
            day = date.fromisoformat(key)
            for _, venue_id, report in build_daily_reports(wh, day):  # each mart read once per day
                files += _write_all(report, reports_dir() / "daily_venue" / key / venue_id)
                venues += 1
        return _result(files, venues)

    @dg.asset(
        partitions_def=parts.report_weekly,
        deps=WEEKLY_REPORT_DEPS,
        group_name="reports",
        owners=OWNERS,
        kinds={"pdf", "xlsx", "csv"},
    )
    def weekly_executive_reports(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        """Weekly executive report per venue with sales that week (Monday-Sunday UTC): totals against the week
        before, daily trend, top events, refunds/fees/net by revenue line. PDF, XLSX, CSV and JSON under
        data/reports/weekly_executive/<monday>/."""
        wh = warehouse.get()
        window = context.partition_time_window
        first, last = window.start.date(), window.end.date() - timedelta(days=1)
        files, venues = [], 0
        for _, venue_id, report in executive_reports(wh, first, last):  # each mart read once per week
            files += _write_all(report, reports_dir() / "weekly_executive" / first.isoformat() / venue_id)
            venues += 1
        return _result(files, venues)

    return [daily_venue_reports, weekly_executive_reports]
