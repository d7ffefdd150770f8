"""The shared fixture dataset: `tiny` generated data materialized through the real Dagster jobs (main_job
over a day range, kpi_job over a few hours, the anomaly jobs (KPI and velocity), sellout_model_job, monitoring_job over the last three days, the model
jobs (predictions, pricing, behavior) before customers_job so that model_performance holds their families,
customers_job over a few weeks of days, fraud_job, the KPI publication (not configured), insights_job as of LAST), once per test session
and backend. Every test that needs built marts reads this instead of building its own copy."""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from analytics_pipelines.definitions import build_definitions
from analytics_pipelines.generator.run import generate
from analytics_pipelines.registry import default_registry
from analytics_pipelines.registry.context import NOW_TAG
from analytics_pipelines.runner import run_job
from analytics_pipelines.settings import Settings

FIRST, LAST = "2026-06-01", "2026-10-31"
NOW = datetime(2026, 11, 1, tzinfo=UTC)
KPI_HOURS = ("2026-10-31-21:00", "2026-10-31-23:00")
#: RFM days (partition keys = as-of dates): the Sundays 2026-10-18, 10-25 and 11-01 and the days between
RFM_DAYS = ("2026-10-18", "2026-11-01")
#: fraud_job's days: tiny's whole history (launch 2026-07-04), one single-run backfill
FRAUD_DAYS = ("2026-07-01", "2026-10-31")
LOG_LEVEL = os.environ.get("TT_TEST_RUN_LOG_LEVEL", "WARNING")
#: sales_velocity days (and the sell-out forecast as of NOW)
VELOCITY_DAYS = ("2026-10-29", "2026-10-31")


@contextmanager
def environment(env: dict[str, str]):
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass
class Materialized:
    data_dir: Path
    source_url: str
    warehouse_url: str
    results: dict[str, dg.ExecuteInProcessResult]
    instance: dg.DagsterInstance
    env: dict[str, str]

    def checks(self) -> list:
        """Every asset check evaluation of the runs."""
        return [
            e.event_specific_data
            for r in self.results.values()
            for e in r.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"
        ]

    def rerun(self, job: str, first: str, last: str) -> dg.ExecuteInProcessResult:
        """Run a job again over a range, on the same instance, warehouse and clock."""
        with environment(self.env):
            defs = build_definitions(default_registry(), Settings.from_env())
            return run_job(
                job,
                first,
                last,
                instance=self.instance,
                defs=defs,
                tags={NOW_TAG: NOW.isoformat()},
                log_level="WARNING",
            )

    def failed_checks(self) -> list[tuple[str, str, str]]:
        return [
            (c.asset_key.to_user_string(), c.check_name, c.severity.value)
            for c in self.checks()
            if not c.passed
        ]


def materialize_everything(
    base: Path,
    warehouse_url: str | None = None,
    seed: int = 7,
    source_url: str | None = None,
    runs: tuple[tuple[str, str | None, str | None], ...] = (
        ("main_job", FIRST, LAST),
        ("kpi_job", *KPI_HOURS),
        ("anomaly_job", *KPI_HOURS),
        ("velocity_anomaly_job", *VELOCITY_DAYS),  # before the alert job, which evaluates its rule
        ("monitoring_alert_job", "", ""),
        ("sellout_model_job", None, None),  # the daily curve library the 5-minute forecast reads
        ("monitoring_job", *VELOCITY_DAYS),
        ("predictions_job", None, None),  # before customers_job: model_performance collects its rows
        ("pricing_job", None, None),  # unpartitioned; before customers_job (model_performance reads it)
        ("behavior_job", FIRST, LAST),  # before customers_job: model_performance collects its rows
        ("customers_job", *RFM_DAYS),
        ("kpi_publication_job", *KPI_HOURS),
        ("fraud_job", *FRAUD_DAYS),
        ("custom_metrics_job", LAST, LAST),  # after record_custom_points (below)
        ("insights_job", LAST, LAST),  # last: reads the marts, anomalies, pricing and RFM of the runs above
    ),
) -> Materialized:
    """Generate `tiny` (unless a source is given) and run `runs` (job, first key, last key) in order on one
    local Dagster instance (local_instance), the clock pinned to NOW."""
    data = base / "data"
    data.mkdir(parents=True, exist_ok=True)
    if source_url is None:
        source_url = f"duckdb:///{data / 'source.duckdb'}"
        generate(source_url, scale="tiny", seed=seed, progress=False, behavior_dir=data / "mongo")
    warehouse_url = warehouse_url or f"duckdb:///{data / 'warehouse'}"
    env = {
        "TT_DATA_DIR": str(data),
        "TT_SOURCE_URL": source_url,
        "TT_WAREHOUSE_URL": warehouse_url,
        "TT_OPS_URL": f"sqlite:///{data / 'ops.sqlite'}",
        "TT_PARTITION_START": "2025-11-01",
        # publication not configured, whatever the developer's shell says: the assets publish nothing
        "TT_INFLUX_URL": "",
    }
    with environment(env):
        defs = build_definitions(default_registry(), Settings.from_env())
        instance = local_instance(base / "dagster")
        tags = {NOW_TAG: NOW.isoformat()}
        results = {}
        for job, first, last in runs:
            if job == "custom_metrics_job":
                record_custom_points(warehouse_url)
            results[job] = run_job(
                job, first, last, instance=instance, defs=defs, tags=tags, log_level=LOG_LEVEL
            )
            if not results[job].success:
                failures = [e.message for e in results[job].all_events if e.is_failure]
                raise RuntimeError(f"{job} failed: {failures}")
    return Materialized(data, source_url, warehouse_url, results, instance, env)


def local_instance(home: Path) -> dg.DagsterInstance:
    """A Dagster instance in `home` with the local default's storage (dagster.yaml: SQLite run storage,
    analytics_pipelines.instance.FastSqliteEventLogStorage), what `make run` records to. Not Dagster's
    ephemeral instance: its in-memory event log opens a connection per statement, which made this fixture
    ~1.4x slower (46-57 s against 34-36 s, measured 2026-12-07)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(
        "run_storage:\n  module: dagster._core.storage.runs\n  class: SqliteRunStorage\n"
        f"  config:\n    base_dir: {home / 'history'}\n"
        "event_log_storage:\n  module: analytics_pipelines.instance\n  class: FastSqliteEventLogStorage\n"
        f"  config:\n    base_dir: {home / 'history' / 'runs'}\n"
        "schedule_storage:\n  module: dagster._core.storage.schedules\n  class: SqliteScheduleStorage\n"
        f"  config:\n    base_dir: {home / 'schedules'}\n"
        "telemetry:\n  enabled: false\n"
    )
    return dg.DagsterInstance.from_config(str(home))


def record_custom_points(warehouse_url: str) -> None:
    """Custom metric points on LAST for two venues of each of two tenants, as POST /v1/metrics records them
    (the ops store of the environment)."""
    from analytics_pipelines.ops.custom_metrics import record
    from analytics_pipelines.ops.db import ops_engine
    from analytics_pipelines.warehouse import open_warehouse

    venues = open_warehouse(warehouse_url).read(
        "SELECT DISTINCT tenant_id, venue_id FROM venue_analytics ORDER BY 1, 2"
    )
    at = datetime.fromisoformat(LAST).replace(tzinfo=UTC)
    for tenant in venues["tenant_id"].unique(maintain_order=True).to_list()[:2]:
        mine = venues.filter(venues["tenant_id"] == tenant)["venue_id"].to_list()[:2]
        points = [
            {
                "venue_id": v,
                "metric_type": metric,
                "value": value,
                "recorded_at": at.replace(hour=h),
                "dimensions": {},
            }
            for v in mine
            for h, metric, value in ((9, "sales", 12.0), (9, "sales", 3.0), (18, "conversion", 4.5))
        ]
        record(ops_engine(), tenant, "materialized-fixture", points, f"fixture-{tenant}")
