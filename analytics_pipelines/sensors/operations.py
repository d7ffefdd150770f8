"""Operations sensors: run-failure notifications, the freshness checks' evaluation and stale-mart
notifications (email + webhook through the alerting Notifier)."""

import json
import warnings

import dagster as dg

from analytics_pipelines.automation.notifications import notify_ops
from analytics_pipelines.checks.freshness import freshness_checks

#: AssetCheckExecutionRecordStatus values (compared by value: the enum lives in a private Dagster module)
SUCCEEDED, FAILED = "SUCCEEDED", "FAILED"


def _error_text(err) -> str:
    """A SerializableErrorInfo's message and its causes' (the user's exception is usually the cause)."""
    parts = []
    while err is not None and len(parts) < 5:
        parts.append(err.message.strip())
        err = err.cause or getattr(err, "context", None)
    return " <- ".join(parts)


def failure_notice(
    job_name: str, run_id: str, error: str, partition: str | None = None
) -> tuple[str, str, dict]:
    """(subject, body, payload) of a run-failure notification."""
    subject = f"[ERROR] Dagster run failed: {job_name}"
    where = f" (partition {partition})" if partition else ""
    body = (
        f"Run {run_id} of job {job_name}{where} failed.\n\n{error}\n\n"
        f"Open it in the Dagster UI: /runs/{run_id}\n"
    )
    return (
        subject,
        body,
        {
            "event": "run_failure",
            "job": job_name,
            "run_id": run_id,
            "partition": partition,
            "error": error[:2000],
        },
    )


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Email (TT_ALERT_EMAILS) and webhook (TT_ALERT_WEBHOOK_URL) for every failed "
    "run of this code location.",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext):
    run = context.dagster_run
    error = context.failure_event.message or "no message"
    steps = context.get_step_failure_events()
    for e in steps:
        if e.event_specific_data and e.event_specific_data.error:
            error += f"\nstep {e.step_key}: {_error_text(e.event_specific_data.error)}"
    subject, body, payload = failure_notice(
        run.job_name, run.run_id, error, run.tags.get("dagster/partition")
    )
    for s in notify_ops(subject, body, payload):
        context.log.info(
            f"run-failure notification {s.channel} to {s.target_masked}: "
            f"{'sent' if s.result.ok else 'FAILED ' + str(s.result.error)}"
        )


def make_stale_alert_sensor(
    checks: list[dg.AssetChecksDefinition],
    name: str = "stale_mart_alert_sensor",
    minimum_interval_seconds: int = 300,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
) -> dg.SensorDefinition:
    """Notifies once when a freshness check fails, and again only after the mart was fresh in between.
    Cursor: the check keys currently notified as stale."""
    keys = sorted((spec.key for c in checks for spec in c.check_specs), key=lambda k: k.to_user_string())

    @dg.sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Sends an email/webhook notification (TT_ALERT_EMAILS, TT_ALERT_WEBHOOK_URL) when a "
        "mart's freshness check fails.",
    )
    def _sensor(context: dg.SensorEvaluationContext):
        notified = set(json.loads(context.cursor or "[]"))
        stale = []
        for key in keys:
            rec = context.instance.get_latest_asset_check_evaluation_record(key)
            status = rec.status.value if rec is not None else None
            name_ = key.to_user_string()
            if status == SUCCEEDED:
                notified.discard(name_)  # fresh again: the next failure is a new episode
            elif status == FAILED and name_ not in notified:
                evaluation = rec.event.asset_check_evaluation if rec.event else None
                stale.append((key.asset_key.to_user_string(), evaluation.description if evaluation else ""))
                notified.add(name_)
        context.update_cursor(json.dumps(sorted(notified)))
        if not stale:
            return dg.SkipReason("no newly stale marts")
        lines = "\n".join(f"- {asset}: {desc}" for asset, desc in stale)
        sent = notify_ops(
            f"[WARNING] {len(stale)} stale mart(s): {', '.join(a for a, _ in stale)}",
            f"Freshness checks failed:\n{lines}\n",
            {"event": "stale_marts", "assets": [{"asset": a, "detail": d} for a, d in stale]},
        )
        for s in sent:
            context.log.info(
                f"stale-mart notification {s.channel} to {s.target_masked}: "
                f"{'sent' if s.result.ok else 'FAILED ' + str(s.result.error)}"
            )
        return dg.SkipReason(f"notified {len(stale)} stale mart(s)")

    return _sensor


def make_freshness_checks_sensor(
    checks: list[dg.AssetChecksDefinition], name: str = "mart_freshness_checks_sensor"
) -> dg.SensorDefinition:
    """Dagster's sensor that launches the checks' evaluation when a mart may have become stale."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.SupersessionWarning)
        return dg.build_sensor_for_freshness_checks(
            freshness_checks=checks,
            minimum_interval_seconds=300,
            name=name,
            default_status=dg.DefaultSensorStatus.RUNNING,
        )


freshness_checks_sensor = make_freshness_checks_sensor(freshness_checks)
stale_mart_alert_sensor = make_stale_alert_sensor(freshness_checks)
sensors = [run_failure_alert_sensor, freshness_checks_sensor, stale_mart_alert_sensor]
