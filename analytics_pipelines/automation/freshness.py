"""Freshness of the marts: each mart declares how old its last update may be (last-update freshness checks,
visible on the asset in the UI as a WARN check), a sensor that evaluates the checks, and a sensor that
sends one notification per stale episode (email + webhook, like run failures)."""

import json
import warnings
from datetime import timedelta

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from analytics_pipelines.automation.notifications import notify_ops

#: daily-partitioned marts and the hourly kpi_snapshots: the intraday schedule rewrites today every
#: 15 minutes, so an update older than 2 hours means the refresh is broken or stopped
INTRADAY_MAX_LAG = timedelta(hours=2)
#: whole-table marts: at least the nightly full run (plus 2 hours of slack)
NIGHTLY_MAX_LAG = timedelta(hours=26)


def mart_freshness(registry=None) -> dict[str, timedelta]:
    """How old each fact, mart and KPI table may be, from the registry: partitioned ones are rewritten by the
    intraday refresh, whole tables by the nightly run. Customer analytics run weekly and have none here."""
    from analytics_pipelines.registry import default_registry

    registry = registry or default_registry()
    return {t.name: INTRADAY_MAX_LAG if t.partitioning else NIGHTLY_MAX_LAG for t in registry.tables
            if t.group in ("facts", "marts", "kpis") and t.produced_by is None}


def make_freshness_checks(lags: dict[str, timedelta] | None = None,
                          severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.WARN
                          ) -> list[dg.AssetChecksDefinition]:
    """One last-update freshness check per mart (grouped by allowed lag)."""
    by_lag: dict[timedelta, list[dg.AssetKey]] = {}
    for name, lag in (lags or mart_freshness()).items():
        by_lag.setdefault(lag, []).append(dg.AssetKey(name))
    checks = []
    with warnings.catch_warnings():  # "superseded" by FreshnessPolicy, whose state no sensor can alert on yet
        warnings.simplefilter("ignore", dg.SupersessionWarning)
        for lag, keys in sorted(by_lag.items()):
            checks.extend(dg.build_last_update_freshness_checks(assets=keys, lower_bound_delta=lag,
                                                                severity=severity))
    return checks


def with_freshness_policies(assets: list, lags: dict[str, timedelta] | None = None) -> list:
    """The same assets with Dagster's FreshnessPolicy (fail after the allowed lag, warn at half of it)
    attached to every mart in `lags`: the UI's native freshness badge. The checks above stay the alerting
    path (a failed check record is what stale_mart_alert_sensor reads)."""
    lags = lags or mart_freshness()

    def attach(spec: dg.AssetSpec) -> dg.AssetSpec:
        lag = lags.get(spec.key.to_user_string())
        if lag is None:
            return spec
        return spec.replace_attributes(freshness_policy=dg.FreshnessPolicy.time_window(
            fail_window=lag, warn_window=lag / 2))

    return [a.map_asset_specs(attach) if isinstance(a, dg.AssetsDefinition) else a for a in assets]


def make_stale_alert_sensor(checks: list[dg.AssetChecksDefinition], name: str = "stale_mart_alert_sensor",
                            minimum_interval_seconds: int = 300,
                            default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING
                            ) -> dg.SensorDefinition:
    """Notifies once when a freshness check fails, and again only after the mart was fresh in between.
    Cursor: the check keys currently notified as stale."""
    keys = sorted((spec.key for c in checks for spec in c.check_specs), key=lambda k: k.to_user_string())

    @dg.sensor(name=name, minimum_interval_seconds=minimum_interval_seconds, default_status=default_status,
               description="Sends an email/webhook notification (TT_ALERT_EMAILS, TT_ALERT_WEBHOOK_URL) when a "
                           "mart's freshness check fails.")
    def _sensor(context: dg.SensorEvaluationContext):
        notified = set(json.loads(context.cursor or "[]"))
        stale = []
        for key in keys:
            rec = context.instance.get_latest_asset_check_evaluation_record(key)
            status = rec.status if rec is not None else None
            name_ = key.to_user_string()
            if status == AssetCheckExecutionRecordStatus.SUCCEEDED:
                notified.discard(name_)  # fresh again: the next failure is a new episode
            elif status == AssetCheckExecutionRecordStatus.FAILED and name_ not in notified:
                evaluation = rec.event.asset_check_evaluation if rec.event else None
                stale.append((key.asset_key.to_user_string(), evaluation.description if evaluation else ""))
                notified.add(name_)
        context.update_cursor(json.dumps(sorted(notified)))
        if not stale:
            return dg.SkipReason("no newly stale marts")
        lines = "\n".join(f"- {asset}: {desc}" for asset, desc in stale)
        sent = notify_ops(f"[WARNING] {len(stale)} stale mart(s): {', '.join(a for a, _ in stale)}",
                          f"Freshness checks failed:\n{lines}\n",
                          {"event": "stale_marts", "assets": [{"asset": a, "detail": d} for a, d in stale]})
        for s in sent:
            context.log.info(f"stale-mart notification {s.channel} to {s.target_masked}: "
                             f"{'sent' if s.result.ok else 'FAILED ' + str(s.result.error)}")
        return dg.SkipReason(f"notified {len(stale)} stale mart(s)")

    return _sensor


def make_freshness_checks_sensor(checks: list[dg.AssetChecksDefinition], name: str = "mart_freshness_checks_sensor"
                                 ) -> dg.SensorDefinition:
    """Dagster's sensor that launches the checks' evaluation when a mart may have become stale."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.SupersessionWarning)
        return dg.build_sensor_for_freshness_checks(freshness_checks=checks, minimum_interval_seconds=300,
                                                    name=name, default_status=dg.DefaultSensorStatus.RUNNING)


freshness_checks = make_freshness_checks()
freshness_checks_sensor = make_freshness_checks_sensor(freshness_checks)
stale_mart_alert_sensor = make_stale_alert_sensor(freshness_checks)
