"""Run a job in-process over a partition range, on the local Dagster instance (recorded for the UI)."""

from __future__ import annotations

import dagster as dg

from analytics_pipelines.marts import shared
from analytics_pipelines.partitions import RANGE_END_TAG, RANGE_START_TAG


def run_job(
    job_name: str = "main_job",
    first: str | None = None,
    last: str | None = None,
    instance: dg.DagsterInstance | None = None,
    log_level: str = "INFO",
    defs: dg.Definitions | None = None,
    tags: dict[str, str] | None = None,
) -> dg.ExecuteInProcessResult:
    """Materialize the job's assets for partitions [first, last] (default: all) in ONE run: every
    partitioned asset has a single-run backfill policy and reads its whole range at once."""
    if defs is None:
        from analytics_pipelines.definitions import defs

    try:
        return _execute(defs.resolve_job_def(job_name), first, last, instance, log_level, tags)
    finally:
        shared.forget()  # what the run's steps shared (marts/shared.py) is not kept for the next job


def _execute(job, first, last, instance, log_level, tags) -> dg.ExecuteInProcessResult:
    job_name = job.name
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    if job.partitions_def is None:  # an unpartitioned job (predictions_job, pricing_job): one run, no range
        return job.execute_in_process(
            instance=instance or dg.DagsterInstance.get(),
            tags=tags or {},
            run_config=run_config,
            raise_on_error=False,
        )
    keys = job.partitions_def.get_partition_keys()
    first, last = first or keys[0], last or keys[-1]
    if first not in keys or last not in keys:
        raise ValueError(f"{job_name} partitions run from {keys[0]} to {keys[-1]}; got {first}..{last}")
    return job.execute_in_process(
        instance=instance or dg.DagsterInstance.get(),
        tags={RANGE_START_TAG: first, RANGE_END_TAG: last, **(tags or {})},
        # the console shows one line per asset (its progress); every event is still in the instance
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        raise_on_error=False,
    )


def last_partition_keys(job_name: str, n: int) -> tuple[str, str]:
    """The first and last of the job's latest `n` partition keys (e.g. the last 24 hours of kpi_job)."""
    from analytics_pipelines.definitions import defs

    keys = defs.resolve_job_def(job_name).partitions_def.get_partition_keys()
    return keys[-n:][0], keys[-1]


def key_for(job_name: str, day) -> str:
    """The job's partition key that holds noon UTC of `day` (a date)."""
    from datetime import UTC, datetime, time

    from analytics_pipelines.definitions import defs

    noon = datetime.combine(day, time(12), UTC)
    return defs.resolve_job_def(job_name).partitions_def.get_partition_key_for_timestamp(noon.timestamp())


def everything_else(warehouse_url: str, log=print) -> list[tuple[str, dg.ExecuteInProcessResult]]:
    """After main_job over the history: what the schedules would add, once, so that a newcomer sees every
    output: the last 24 hourly KPI snapshots, the customer analytics and models as of the last sales day,
    the sales velocity of that day's last week and the sell-out forecast, the daily venue reports of that day
    and the executive reports of the week before it, and fraud_job over every day so far."""
    from datetime import timedelta

    from analytics_pipelines.customers.build import last_sales_day
    from analytics_pipelines.warehouse import open_warehouse

    kpi_hours = last_partition_keys("kpi_job", 24)
    # publication to InfluxDB: without TT_INFLUX_URL the assets say "not configured" and publish nothing
    runs = [
        ("kpi_job", *kpi_hours),
        ("anomaly_job", *kpi_hours),
        ("monitoring_alert_job", None, None),
        ("kpi_publication_job", *kpi_hours),
    ]
    through = last_sales_day(open_warehouse(warehouse_url))
    if through is not None:
        # behavioral data over the whole history up to the last sales day (docs/behavior.md)
        runs.append(("behavior_job", last_partition_keys("behavior_job", 10**6)[0], through.isoformat()))
        customers = key_for("customers_job", through)
        runs += [
            # sales velocity of the last week of sales and the sell-out forecast as of now (before
            # customers_job: model_performance collects its backtest)
            ("sellout_model_job", None, None),  # the daily curve library the 5-minute forecast reads
            ("monitoring_job", (through - timedelta(days=6)).isoformat(), through.isoformat()),
            # velocity anomalies of the same week (monitoring_alert_job evaluates them on its next run)
            ("velocity_anomaly_job", (through - timedelta(days=6)).isoformat(), through.isoformat()),
            ("predictions_job", None, None),  # before customers_job: model_performance collects its rows
            ("pricing_job", None, None),  # before customers_job: model_performance collects its metrics
            ("customers_job", customers, customers),
            ("daily_venue_reports_job", through.isoformat(), through.isoformat()),
            ("daily_publication_job", through.isoformat(), through.isoformat()),
            (
                "custom_metrics_job",
                through.isoformat(),
                through.isoformat(),
            ),  # points recorded so far that day
            # venue insights as of the last sales day: after the marts, anomalies, pricing and customers
            ("insights_job", through.isoformat(), through.isoformat()),
        ]
        week = key_for("weekly_executive_reports_job", through - timedelta(days=7))
        runs.append(("weekly_executive_reports_job", week, week))
        first_day = last_partition_keys("fraud_job", 10**6)[0]  # every day so far: one single-run backfill
        runs.append(("fraud_job", first_day, through.isoformat()))
    # every job runs even when one before it failed (a model refused by its gate must not keep the customer
    # analytics or the reports from being built); the summary names every failure and the run exits 1
    out = []
    for job, first, last in runs:
        log(f"{job}: {first}..{last}" if first else job)
        out.append((job, run_job(job, first=first, last=last)))
    return out


def never_materialized(instance: dg.DagsterInstance, defs: dg.Definitions | None = None) -> list[str]:
    """The assets of the definitions this instance has never materialized (any partition counts): after
    `make run` there must be none, so that `make dev` shows every asset materialized."""
    if defs is None:
        from analytics_pipelines.definitions import defs
    keys = sorted(defs.resolve_asset_graph().materializable_asset_keys)
    done = {
        r.asset_entry.asset_key
        for r in instance.get_asset_records(keys)
        if r.asset_entry.last_materialization_record is not None
    }
    return [k.to_user_string() for k in keys if k not in done]


def summary(
    results: list[tuple[str, dg.ExecuteInProcessResult]], seconds: float, source_url: str, warehouse_url: str
) -> None:
    """What a newcomer needs after `make run`: tables, counts, quarantine, the runs and their checks, the
    report files and models, and where to look at all of it."""
    from rich.console import Console
    from rich.table import Table

    from analytics_pipelines.paths import data_dir
    from analytics_pipelines.warehouse import open_warehouse

    console = Console()
    wh = open_warehouse(warehouse_url)
    tables = Table(title=f"warehouse tables ({wh.location()})")
    tables.add_column("table")
    tables.add_column("rows", justify="right")
    for t in wh.tables():
        tables.add_row(t, f"{wh.count(t):,}")
    console.print(tables)
    if "quarantine" in wh.tables() and wh.count("quarantine") == 0:
        console.print(
            "quarantine: no rejected or repaired rows (try `generate --dirty` for a source with bad rows)"
        )
    elif "quarantine" in wh.tables():
        q = wh.read(
            "SELECT source_table, disposition, reason_code, count(*) AS n FROM quarantine "
            "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        )
        qt = Table(title="quarantine (rejected rows and repairs, with reasons)")
        for c in q.columns:
            qt.add_column(c)
        for row in q.iter_rows():
            qt.add_row(*[f"{v:,}" if isinstance(v, int) else str(v) for v in row])
        console.print(qt)
    for job, result in results:
        failed = [e.step_key for e in result.all_events if e.is_step_failure]
        checks = [
            e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
        ]
        failed_checks = [f"{c.asset_key.to_user_string()}:{c.check_name}" for c in checks if not c.passed]
        status = "[green]succeeded[/green]" if result.success else "[red]FAILED[/red]"
        console.print(
            f"{job} run {result.run_id} {status}; {len(checks)} asset checks, "
            f"{len(failed_checks)} failed {failed_checks if failed_checks else ''}"
        )
        if failed:
            console.print(f"[red]failed steps: {failed}[/red]")
    console.print(f"all runs: {seconds:.1f} s")
    missing = never_materialized(dg.DagsterInstance.get())
    if missing:
        console.print(f"[red]never materialized on this instance: {', '.join(missing)}[/red]")
    else:
        console.print("every asset of the definitions is materialized on this instance")
    reports = data_dir() / "reports"
    by_format: dict[str, list] = {}
    for f in sorted(reports.rglob("*.*")) if reports.exists() else []:
        by_format.setdefault(f.suffix.lstrip("."), []).append(f)
    for fmt, files in sorted(by_format.items()):
        console.print(f"reports ({fmt}): {len(files)} files, e.g. {files[0]}")
    for model in sorted((data_dir() / "models").rglob("*.joblib")):
        console.print(f"model: {model}")
    console.print(f"source: {source_url}")
    if wh.kind == "duckdb":
        console.print(f"warehouse: Parquet under {wh.location()}; DuckDB catalog {wh.catalog_path}")
        console.print(
            f'  query:  analytics-pipelines sql "select * from table_catalog"   '
            f"(or: duckdb -readonly {wh.catalog_path})"
        )
    else:
        console.print(f"warehouse: {wh.location()}  (psql, schema analytics)")
    console.print("UI: make dev  -> http://127.0.0.1:3000 (same instance: these runs are listed there)")
    console.print(
        "API: make api, then `analytics-pipelines token --tenant <uuid> --role admin` and "
        "GET http://127.0.0.1:8000/v1/marts (docs at /docs)"
    )
