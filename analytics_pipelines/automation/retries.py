"""Retries: the step retry policy and run-retry tags of the asset jobs, and which errors are transient."""

import smtplib
from collections.abc import Callable
from datetime import UTC, datetime

import dagster as dg
import duckdb
import psycopg
import sqlalchemy as sa

#: step retries for the assets' jobs (the lead adds `op_retry_policy=RETRY_POLICY` to define_asset_job):
#: 3 retries, 30 s, 60 s, 120 s (+-jitter) -- long enough for a PostgreSQL failover or a network blip
RETRY_POLICY = dg.RetryPolicy(
    max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
#: run retries (need `run_retries: enabled: true` in dagster.yaml): re-execute only the failed steps
RUN_RETRY_TAGS = {"dagster/max_retries": "2", "dagster/retry_strategy": "FROM_FAILURE"}

#: errors worth retrying: lost connections, timeouts, lock/IO trouble -- not bad SQL or bad data
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    sa.exc.OperationalError,
    sa.exc.DisconnectionError,
    duckdb.IOException,
    ConnectionError,
    TimeoutError,
    smtplib.SMTPServerDisconnected,
)


def is_transient(exc: BaseException) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:  # look through wrapped causes too
        if isinstance(exc, TRANSIENT_ERRORS):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def retry_transient(fn: Callable, max_retries: int = 3, seconds_to_wait: float = 30):
    """Run fn(); a transient error becomes dg.RetryRequested (the step is retried, with backoff), anything
    else fails the step at once (retrying a bad query three times helps nobody)."""
    try:
        return fn()
    except Exception as exc:
        if is_transient(exc):
            raise dg.RetryRequested(max_retries=max_retries, seconds_to_wait=seconds_to_wait) from exc
        raise


def now_of(text: str) -> datetime:
    """An ISO time with its zone, in UTC; empty: the wall clock."""
    if not text:
        return datetime.now(UTC)
    now = datetime.fromisoformat(text)
    if now.tzinfo is None:
        raise ValueError(f"now: give a time zone ({text!r} has none)")
    return now.astimezone(UTC)
