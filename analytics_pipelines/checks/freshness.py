"""Freshness of the marts: how old each fact, mart and KPI table's last update may be (from the registry),
as last-update freshness checks (WARN: a stale mart must not stop the runs that would refresh it; the
stale_mart_alert_sensor notifies) and as Dagster FreshnessPolicies on the same assets."""

import warnings
from datetime import timedelta

import dagster as dg

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
    return {
        t.name: INTRADAY_MAX_LAG if t.partitioning else NIGHTLY_MAX_LAG
        for t in registry.tables
        if t.group in ("facts", "marts", "kpis") and t.produced_by is None
    }


def make_freshness_checks(
    lags: dict[str, timedelta] | None = None, severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.WARN
) -> list[dg.AssetChecksDefinition]:
    """One last-update freshness check per mart (grouped by allowed lag)."""
    by_lag: dict[timedelta, list[dg.AssetKey]] = {}
    for name, lag in (lags or mart_freshness()).items():
        by_lag.setdefault(lag, []).append(dg.AssetKey(name))
    checks = []
    with warnings.catch_warnings():  # "superseded" by FreshnessPolicy, whose state no sensor can alert on yet
        warnings.simplefilter("ignore", dg.SupersessionWarning)
        for lag, keys in sorted(by_lag.items()):
            checks.extend(
                dg.build_last_update_freshness_checks(assets=keys, lower_bound_delta=lag, severity=severity)
            )
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
        return spec.replace_attributes(
            freshness_policy=dg.FreshnessPolicy.time_window(fail_window=lag, warn_window=lag / 2)
        )

    return [a.map_asset_specs(attach) if isinstance(a, dg.AssetsDefinition) else a for a in assets]


freshness_checks = make_freshness_checks()
