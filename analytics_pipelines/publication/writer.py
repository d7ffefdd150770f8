"""Writing line-protocol records with influxdb-client's write API: batching (batch_size records per request,
flushed on close), retries with exponential backoff on 429/5xx and connection errors, the precision given
explicitly on every write, org/bucket/token from the settings. The batching API reports failures through
callbacks on its own thread; they are collected and raised after the flush, so a failed batch fails the
publication (never a silent loss)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from analytics_pipelines.settings import InfluxSettings


class PublicationError(RuntimeError):
    """InfluxDB refused or could not be reached for some batches (after the retries)."""


@dataclass
class WriteReport:
    records: int = 0
    batches_ok: int = 0
    batches_failed: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)


def masked(url: str | None) -> str:
    """The URL without credentials (for metadata and logs)."""
    if not url:
        return ""
    from urllib.parse import urlsplit

    u = urlsplit(url)
    host = u.hostname or ""
    return f"{u.scheme}://{host}{':' + str(u.port) if u.port else ''}{u.path}"


def write_lines(target: InfluxSettings, lines: list[str]) -> WriteReport:
    """Write the records to target.bucket; raise PublicationError when any batch failed."""
    from influxdb_client import InfluxDBClient, WriteOptions
    from influxdb_client.client.write_api import WriteType

    if not target.url:
        raise PublicationError("InfluxDB is not configured (TT_INFLUX_URL)")
    report = WriteReport(records=len(lines))
    if not lines:
        return report
    lock = threading.Lock()

    def ok(conf, data):
        with lock:
            report.batches_ok += 1

    def error(conf, data, exc):
        with lock:
            report.batches_failed += 1
            report.errors.append(f"{type(exc).__name__}: {str(exc)[:300]}")

    def retry(conf, data, exc):
        with lock:
            report.retries += 1

    options = WriteOptions(
        write_type=WriteType.batching,
        batch_size=target.batch_size,
        flush_interval=target.flush_interval_ms,
        retry_interval=target.retry_interval_ms,
        max_retries=target.max_retries,
        max_retry_delay=max(target.retry_interval_ms * 8, 1),
        max_retry_time=max(target.retry_interval_ms * 2 ** (target.max_retries + 1), 1)
        if target.max_retries
        else 0,
        exponential_base=2,
    )
    with InfluxDBClient(
        url=target.url, token=target.token or "unused", org=target.org, timeout=target.timeout_ms
    ) as client:
        api = client.write_api(
            write_options=options, success_callback=ok, error_callback=error, retry_callback=retry
        )
        try:
            api.write(bucket=target.bucket, org=target.org, record=lines, write_precision=target.precision)
        finally:
            api.close()  # flushes every batch (and waits for their retries)
    if report.batches_failed:
        raise PublicationError(
            f"{report.batches_failed} of {report.batches_failed + report.batches_ok} batch(es) to "
            f"{masked(target.url)} bucket {target.bucket} failed after {report.retries} retries: "
            + "; ".join(report.errors[:3])
        )
    return report
