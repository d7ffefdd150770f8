"""The data platform's schedules (time-zone aware), built by a factory bound to the jobs:

    make_schedules(main_job=main_job, kpi_job=kpi_job, customers_job=customers_job)   # + maintenance_job

- intraday_refresh_schedule: every 15 minutes, today's (UTC) partition of main_job; skipped while the
  previous intraday run is still queued or running (no pile-up on 2 cores);
- nightly_full_schedule: 02:30 local, one run over yesterday..today (late rows of yesterday included);
- hourly_kpi_schedule: at minute 20 (after the :15 intraday refresh), the hour that just ended of kpi_job
  (if given; its materialization triggers the alert evaluation);
- customers_daily_schedule: 06:00 UTC, yesterday's (UTC) customers_job partition (it
  retrains the churn model and refits CLV: there is no separate retrain schedule);
- maintenance_schedule: 03:30 local, maintenance_job (retention, export expiry);
- delivery_sweep_schedule: every 5 minutes (UTC), delivery_sweep_job (at-least-once delivery);
- warehouse_compaction_schedule: hourly at :50 (UTC), warehouse_compaction_job (closed months of the embedded
  warehouse into one file each; a no-op once done, and on the PostgreSQL warehouse).
Local = TT_TIMEZONE (IANA name, default UTC), read when the schedules are built. Partitions stay UTC days.
"""

from datetime import UTC, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg

from analytics_pipelines.jobs.operations import delivery_sweep_job, warehouse_compaction_job
from analytics_pipelines.jobs.operations import maintenance_job as default_maintenance_job
from analytics_pipelines.partitions import RANGE_END_TAG, RANGE_START_TAG

INTRADAY_CRON = "*/15 * * * *"
NIGHTLY_CRON = "30 2 * * *"
MAINTENANCE_CRON = "30 3 * * *"
KPI_CRON = "20 * * * *"
#: daily at 06:00 UTC (UTC days: after the intraday refreshes of the day that ended)
CUSTOMERS_CRON = "0 6 * * *"
DELIVERY_SWEEP_CRON = "*/5 * * * *"
#: hourly, away from the :15/:20 refreshes: compacts a month once, then removes its daily files after the grace
COMPACTION_CRON = "50 * * * *"
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def refresh_today(
    context: dg.ScheduleEvaluationContext, job_name: str, refresh: str
) -> dg.RunRequest | dg.SkipReason:
    """A run of today's (UTC) partition tagged refresh=<refresh>, unless the previous one is still queued
    or running (a refresh that overran its interval is not stacked behind itself)."""
    busy = context.instance.get_runs_count(
        dg.RunsFilter(job_name=job_name, statuses=IN_FLIGHT, tags={"refresh": refresh})
    )
    if busy:
        return dg.SkipReason(f"the previous {refresh} refresh is still queued or running")
    when = context.scheduled_execution_time.astimezone(UTC)
    return dg.RunRequest(
        run_key=f"{refresh}:{when.isoformat()}",
        partition_key=when.date().isoformat(),
        tags={"refresh": refresh},
    )


def schedule_timezone(timezone: str | None = None) -> str:
    tz = timezone or "UTC"
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"TT_TIMEZONE: unknown IANA time zone {tz!r} (e.g. Europe/Berlin, America/New_York)"
        ) from None
    return tz


def tick_schedule(
    name: str, job, cron: str, tz: str, default_status, op: str | tuple[str, ...], run_key, description: str
) -> dg.ScheduleDefinition:
    """A schedule of a maintenance job whose op(s) `op` run as of the tick's time (config `now`, UTC ISO)."""
    ops = (op,) if isinstance(op, str) else op

    @dg.schedule(
        cron_schedule=cron,
        job=job,
        execution_timezone=tz,
        default_status=default_status,
        name=name,
        description=description,
    )
    def _schedule(context: dg.ScheduleEvaluationContext):
        when = context.scheduled_execution_time.astimezone(UTC)
        return dg.RunRequest(
            run_key=run_key(when), run_config={"ops": {o: {"config": {"now": when.isoformat()}} for o in ops}}
        )

    return _schedule


def make_schedules(
    main_job,
    customers_job=None,
    maintenance_job=default_maintenance_job,
    kpi_job=None,
    timezone: str | None = None,
    default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.STOPPED,
    intraday_cron: str = INTRADAY_CRON,
    nightly_cron: str = NIGHTLY_CRON,
    maintenance_cron: str = MAINTENANCE_CRON,
    kpi_cron: str = KPI_CRON,
) -> list[dg.ScheduleDefinition]:
    tz = schedule_timezone(timezone)

    @dg.schedule(
        cron_schedule=intraday_cron,
        job=main_job,
        execution_timezone=tz,
        default_status=default_status,
        name="intraday_refresh_schedule",
        description="Refresh today's (UTC) partition of every asset every 15 minutes.",
    )
    def intraday_refresh_schedule(context: dg.ScheduleEvaluationContext):
        return refresh_today(context, main_job.name, "intraday")

    @dg.schedule(
        cron_schedule=nightly_cron,
        job=main_job,
        execution_timezone=tz,
        default_status=default_status,
        name="nightly_full_schedule",
        description="Nightly: one run over yesterday and today (UTC days), so rows that arrived late "
        "for yesterday are in; the whole-table marts are rebuilt with it.",
    )
    def nightly_full_schedule(context: dg.ScheduleEvaluationContext):
        today = context.scheduled_execution_time.astimezone(UTC).date()
        first, last = (today - timedelta(days=1)).isoformat(), today.isoformat()
        return dg.RunRequest(
            run_key=f"nightly:{last}",
            tags={"refresh": "nightly", RANGE_START_TAG: first, RANGE_END_TAG: last},
        )

    maintenance_schedule = tick_schedule(
        "maintenance_schedule",
        maintenance_job,
        maintenance_cron,
        tz,
        default_status,
        op="run_maintenance",
        run_key=lambda when: f"maintenance:{when.date().isoformat()}",
        description="Nightly retention (kpi_snapshots, alert history, optional raw partitions) and "
        "export expiry.",
    )

    delivery_sweep_schedule = dg.ScheduleDefinition(
        name="delivery_sweep_schedule",
        job=delivery_sweep_job,
        cron_schedule=DELIVERY_SWEEP_CRON,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Every 5 minutes: resend deliveries a crashed sender left in flight (same Message-ID / "
        "Idempotency-Key) and retry failed alert sends that are due.",
    )

    warehouse_compaction_schedule = tick_schedule(
        "warehouse_compaction_schedule",
        warehouse_compaction_job,
        COMPACTION_CRON,
        "UTC",
        default_status,
        op="compact_warehouse",
        run_key=lambda when: f"warehouse_compaction:{when.strftime('%Y-%m-%dT%H')}",
        description="Hourly: closed months of the embedded warehouse -> one Parquet file each (once per month "
        "and table), and the daily files of months compacted more than the grace period ago removed.",
    )

    out = [
        intraday_refresh_schedule,
        nightly_full_schedule,
        maintenance_schedule,
        delivery_sweep_schedule,
        warehouse_compaction_schedule,
    ]
    if kpi_job is not None:

        @dg.schedule(
            cron_schedule=kpi_cron,
            job=kpi_job,
            execution_timezone=tz,
            default_status=default_status,
            name="hourly_kpi_schedule",
            description="KPI snapshot of the hour that just ended (UTC hour partitions).",
        )
        def hourly_kpi_schedule(context: dg.ScheduleEvaluationContext):
            hour = context.scheduled_execution_time.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
            key = (hour - timedelta(hours=1)).strftime("%Y-%m-%d-%H:%M")
            return dg.RunRequest(run_key=f"kpi:{key}", partition_key=key, tags={"refresh": "hourly_kpi"})

        out.append(hourly_kpi_schedule)
    if customers_job is not None:

        @dg.schedule(
            cron_schedule=CUSTOMERS_CRON,
            job=customers_job,
            execution_timezone="UTC",
            default_status=default_status,
            name="customers_daily_schedule",
            description="06:00 UTC: yesterday's (UTC) customer analytics (the RFM day, incremental from "
            "its stored state; retrained churn model, CLV refits, segments, transitions, "
            "cohorts, 360).",
        )
        def customers_daily_schedule(context: dg.ScheduleEvaluationContext):
            day = (context.scheduled_execution_time.astimezone(UTC) - timedelta(days=1)).date().isoformat()
            return dg.RunRequest(run_key=f"customers:{day}", partition_key=day, tags={"refresh": "customers"})

        out.append(customers_daily_schedule)
    return out
