"""Operational notifications (run failures, stale marts): email to TT_ALERT_EMAILS and a JSON POST to
TT_ALERT_WEBHOOK_URL, through the same Notifier the alert rules use. Never raises on a delivery
problem: the result says what happened, with masked targets."""

import logging
from dataclasses import dataclass

from analytics_pipelines.alerting import Notifier
from analytics_pipelines.notify import DeliveryResult

log = logging.getLogger(__name__)


@dataclass
class Sent:
    channel: str
    target_masked: str
    result: DeliveryResult


def notify_ops(subject: str, body: str, payload: dict, notifier: Notifier | None = None) -> list[Sent]:
    """Send to every configured channel; none configured -> a warning in the log, nothing else."""
    notifier = notifier or Notifier.from_env()
    sent = []
    if notifier.emails:
        target, res = notifier.email(notifier.emails, subject, body)
        sent.append(Sent("email", target, res))
    if notifier.webhook_url:
        target, res = notifier.webhook(notifier.webhook_url, {"subject": subject, **payload})
        sent.append(Sent("webhook", target, res))
    if not sent:
        log.warning("%s (no TT_ALERT_EMAILS / TT_ALERT_WEBHOOK_URL configured: logged only)", subject)
    for s in sent:
        if not s.result.ok:
            log.warning(
                "%s: %s to %s failed after %d attempt(s): %s",
                subject,
                s.channel,
                s.target_masked,
                s.result.attempts,
                s.result.error,
            )
    return sent
