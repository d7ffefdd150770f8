"""Outbound notifications shared by alerting and report delivery: SMTP email (with attachments) and
JSON webhooks with retries and exponential backoff. Recipients are masked in everything we log."""

from __future__ import annotations

import json
import logging
import re
import smtplib
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid

log = logging.getLogger(__name__)


def mask_email(address: str) -> str:
    """`jane.doe@example.com` -> `j***@example.com` (logs never carry a full address)."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def mask_url(url: str) -> str:
    """Keep scheme, host and port; hide the path and query, which often carry tokens."""
    m = re.match(r"^([a-z]+://[^/?#]+)", url, re.I)
    return f"{m.group(1)}/***" if m else "***"


@dataclass(frozen=True)
class SmtpSettings:
    """Outgoing e-mail; the configured one is Settings.smtp (TT_SMTP_*)."""

    host: str = "127.0.0.1"
    port: int = 25
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    use_ssl: bool = False
    sender: str = "analytics@tickettoken.local"
    timeout_s: float = 30.0


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mime_type: str = "application/octet-stream"


@dataclass
class DeliveryResult:
    ok: bool
    attempts: int
    error: str | None = None
    message_id: str | None = None
    status_code: int | None = None
    log: list[str] = field(default_factory=list)


def build_email(
    settings: SmtpSettings,
    to: Sequence[str],
    subject: str,
    body: str,
    attachments: Sequence[Attachment] = (),
    html: str | None = None,
    message_id: str | None = None,
) -> EmailMessage:
    """The message `send_email` sends; `message_id` (e.g. a delivery ledger's) or a fresh one."""
    msg = EmailMessage()
    msg["From"] = settings.sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Message-ID"] = message_id or make_msgid(domain=settings.sender.partition("@")[2] or None)
    msg.set_content(body)
    if html:
        msg.add_alternative(html, subtype="html")
    for a in attachments:
        maintype, _, subtype = a.mime_type.partition("/")
        msg.add_attachment(
            a.content, maintype=maintype, subtype=subtype or "octet-stream", filename=a.filename
        )
    return msg


def send_email(
    settings: SmtpSettings,
    to: Sequence[str],
    subject: str,
    body: str,
    attachments: Sequence[Attachment] = (),
    html: str | None = None,
    retries: int = 2,
    backoff_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    message_id: str | None = None,
) -> DeliveryResult:
    """Send one message to `to` via SMTP; transient failures are retried with exponential backoff."""
    if not to:
        return DeliveryResult(ok=False, attempts=0, error="no recipients")
    msg = build_email(settings, to, subject, body, attachments, html, message_id)
    return send_message(settings, msg, to, retries=retries, backoff_s=backoff_s, sleep=sleep)


def send_message(
    settings: SmtpSettings,
    msg: EmailMessage,
    to: Sequence[str],
    retries: int = 2,
    backoff_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryResult:
    """Send a built message (its headers, Message-ID included, as they are) to `to`, with retries."""
    if not to:
        return DeliveryResult(ok=False, attempts=0, error="no recipients")
    subject = msg["Subject"]
    masked = ", ".join(mask_email(t) for t in to)
    result = DeliveryResult(ok=False, attempts=0, message_id=msg["Message-ID"])
    for attempt in range(1, retries + 2):
        result.attempts = attempt
        try:
            cls = smtplib.SMTP_SSL if settings.use_ssl else smtplib.SMTP
            with cls(settings.host, settings.port, timeout=settings.timeout_s) as smtp:
                if settings.starttls:
                    smtp.starttls()
                if settings.username:
                    smtp.login(settings.username, settings.password or "")
                smtp.send_message(msg, from_addr=settings.sender, to_addrs=list(to))
            result.ok, result.error = True, None
            log.info("email %r sent to %s (attempt %d)", subject, masked, attempt)
            return result
        except (smtplib.SMTPException, OSError) as exc:
            result.error = f"{type(exc).__name__}: {exc}"
            log.warning("email %r to %s failed (attempt %d): %s", subject, masked, attempt, result.error)
            permanent = isinstance(exc, smtplib.SMTPRecipientsRefused | smtplib.SMTPAuthenticationError)
            if permanent or attempt > retries:
                return result
            sleep(backoff_s * 2 ** (attempt - 1))
    return result


def post_webhook(
    url: str,
    payload: dict,
    retries: int = 3,
    backoff_s: float = 0.5,
    timeout_s: float = 10.0,
    headers: dict[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryResult:
    """POST `payload` as JSON. 5xx, 429 and connection errors are retried with exponential backoff
    (backoff_s, 2*backoff_s, ...); other 4xx are permanent."""
    data = json.dumps(payload, default=str).encode()
    hdrs = {"Content-Type": "application/json", "User-Agent": "tickettoken-analytics/1", **(headers or {})}
    result = DeliveryResult(ok=False, attempts=0)
    for attempt in range(1, retries + 2):
        result.attempts = attempt
        req = urllib.request.Request(url, data=data, headers=hdrs, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                result.ok, result.status_code, result.error = True, resp.status, None
                log.info("webhook %s -> %d (attempt %d)", mask_url(url), resp.status, attempt)
                return result
        except urllib.error.HTTPError as exc:
            result.status_code, result.error = exc.code, f"HTTP {exc.code}"
            retryable = exc.code >= 500 or exc.code == 429
        except (urllib.error.URLError, OSError) as exc:
            result.error, retryable = f"{type(exc).__name__}: {exc}", True
        log.warning("webhook %s failed (attempt %d): %s", mask_url(url), attempt, result.error)
        if not retryable or attempt > retries:
            return result
        sleep(backoff_s * 2 ** (attempt - 1))
    return result
