"""Delivery of alert actions: the Notifier (SMTP/webhook settings and the ledger transport), queueing a
new instance's actions in the delivery ledger, and sending them (one alert_notifications row per action)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

from analytics_pipelines import notify, outbox
from analytics_pipelines.ops.alerts import alert_notifications

log = logging.getLogger(__name__)


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(s.strip() for s in (value or "").split(",") if s.strip())


@dataclass
class Notifier:
    """How actions are delivered. Actions without their own recipients use TT_ALERT_EMAILS (comma list)
    and TT_ALERT_WEBHOOK_URL."""

    smtp: notify.SmtpSettings = field(default_factory=notify.SmtpSettings)
    emails: tuple[str, ...] = ()
    webhook_url: str | None = None
    email_retries: int = 2
    webhook_retries: int = 3
    backoff_s: float = 1.0
    webhook_timeout_s: float = 10.0
    sleep: Callable[[float], None] = time.sleep

    def transport(self) -> outbox.Transport:
        """The same settings for sends through the delivery ledger."""
        return outbox.Transport(
            smtp=self.smtp,
            email_retries=self.email_retries,
            webhook_retries=self.webhook_retries,
            backoff_s=self.backoff_s,
            webhook_timeout_s=self.webhook_timeout_s,
            sleep=self.sleep,
        )

    @classmethod
    def from_env(cls, **overrides) -> Notifier:
        from analytics_pipelines.settings import Settings

        s = Settings.from_env()
        return cls(
            **{
                "smtp": s.smtp,
                "emails": list(s.alert_emails),
                "webhook_url": s.alert_webhook_url,
                **overrides,
            }
        )

    def email(self, to: Iterable[str], subject: str, body: str) -> tuple[str, notify.DeliveryResult]:
        to = list(to) or list(self.emails)
        masked = ", ".join(notify.mask_email(t) for t in to) or "(no recipients)"
        if not to:
            return masked, notify.DeliveryResult(
                ok=False, attempts=0, error="no recipients: set TT_ALERT_EMAILS"
            )
        return masked, notify.send_email(
            self.smtp,
            to,
            subject,
            body,
            retries=self.email_retries,
            backoff_s=self.backoff_s,
            sleep=self.sleep,
        )

    def webhook(
        self,
        url: str | None,
        payload: dict,
        headers: Mapping[str, str] | None = None,
        retries: int | None = None,
    ) -> tuple[str, notify.DeliveryResult]:
        url = url or self.webhook_url
        if not url:
            return "(no url)", notify.DeliveryResult(
                ok=False, attempts=0, error="no webhook url: set TT_ALERT_WEBHOOK_URL"
            )
        return notify.mask_url(url), notify.post_webhook(
            url,
            payload,
            retries=self.webhook_retries if retries is None else retries,
            backoff_s=self.backoff_s,
            timeout_s=self.webhook_timeout_s,
            headers=dict(headers or {}),
            sleep=self.sleep,
        )


def _enqueue_actions(conn: sa.Connection, notifier: Notifier, rule: Mapping, instance: Mapping) -> list[dict]:
    """Store every e-mail/webhook action of a new instance in the delivery ledger, in the transaction that
    inserts the instance (so a crash cannot leave an instance whose notifications were never queued); one
    plan per action, in order: {"key"} for a ledger delivery, else {"channel", "target", "error"}."""
    subject = f"[{instance['severity'].upper()}] {rule['name']}"
    scope = instance["scope_key"]
    body = (
        f"{instance['message']}\n\nRule: {rule['name']} (id {rule['id']})\nSeverity: {instance['severity']}\n"
        f"Scope: {scope}\nValue: {instance['trigger_value']}\nTriggered at: {instance['triggered_at']} UTC\n"
        f"Alert instance: {instance['id']} (acknowledge it in the analytics API)\n"
    )
    payload = {
        "alert": rule["name"],
        "rule_id": rule["id"],
        "instance_id": instance["id"],
        "severity": instance["severity"],
        "scope": scope,
        "tenant_id": instance["tenant_id"],
        "venue_id": instance["venue_id"],
        "metric": rule["metric"],
        "operator": rule["operator"],
        "threshold": rule["threshold"],
        "threshold_high": rule.get("threshold_high"),
        "value": instance["trigger_value"],
        "triggered_at": instance["triggered_at"].isoformat(),
        "message": instance["message"],
    }
    plans: list[dict] = []
    for i, action in enumerate(rule["actions"] or [{"type": "log"}]):
        kind = action["type"]
        ledger = dict(
            source="alert",
            source_ref=f"{instance['id']}:{i}",
            created=instance["triggered_at"],
            now=instance["triggered_at"],
        )
        if kind == "email":
            to = list(action.get("to") or ()) or list(notifier.emails)
            plans.append(
                {
                    "key": outbox.enqueue_email(
                        conn, settings=notifier.smtp, to=to, subject=subject, body=body, **ledger
                    )
                }
                if to
                else {
                    "channel": "email",
                    "target": "(no recipients)",
                    "error": "no recipients: set TT_ALERT_EMAILS",
                }
            )
        elif kind == "webhook" or (kind == "slack" and action.get("url")):
            url = action.get("url") or notifier.webhook_url
            request = (
                dict(payload=payload, headers=action.get("headers"), retries=action.get("retries"))
                if kind == "webhook"
                else dict(payload={"text": f"{subject}: {instance['message']}"})
            )
            plans.append(
                {"key": outbox.enqueue_webhook(conn, url=url, **request, **ledger)}
                if url
                else {
                    "channel": "webhook",
                    "target": "(no url)",
                    "error": "no webhook url: set TT_ALERT_WEBHOOK_URL",
                }
            )
        else:  # log, and the old service's sms/dashboard/slack-without-url: a log line is the delivery
            plans.append(
                {"channel": "log", "target": f"{kind} (logged)", "log": f"{subject} {instance['message']}"}
            )
    return plans


def _deliver(engine: sa.Engine, notifier: Notifier, instance: Mapping, plans: list[dict]) -> list[dict]:
    """Send the queued actions of a new instance (each claimed in the ledger first, so a concurrent sweeper
    cannot send it too); one alert_notifications row per action, written with the ledger's outcome."""
    transport, records, local = notifier.transport(), [], []
    now = instance["triggered_at"]
    for plan in plans:
        if "key" in plan:
            done = outbox.dispatch(engine, plan["key"], transport, now)
            if done is not None and done.settled is not None:
                records.append(done.settled)
            continue
        if "log" in plan:
            log.warning("%s", plan["log"])
        note = {
            "instance_id": instance["id"],
            "channel": plan["channel"],
            "target_masked": plan["target"][:300],
            "status": "failed" if plan.get("error") else "sent",
            "attempts": 0 if plan.get("error") else 1,
            "error": plan.get("error"),
            "created_at": datetime.now(UTC),
        }
        records.append(note)
        local.append(note)
    for note in records:
        if note["status"] != "sent":
            log.warning(
                "alert %s: %s to %s failed after %d attempt(s): %s",
                instance["id"],
                note["channel"],
                note["target_masked"],
                note["attempts"],
                note["error"],
            )
    if local:
        with engine.begin() as conn:
            conn.execute(alert_notifications.insert(), local)
    return records
