"""Keyed pseudonyms for customer ids in exports: HMAC-SHA256 with TT_EXPORT_PSEUDONYM_KEY.

Stable (the same customer gets the same pseudonym in every export, so files can be joined), keyed (without
the secret nobody can recompute or reverse them, unlike the old service's salted sha256 whose salt was
guessable), and scoped by tenant (one person is unlinkable across tenants). Names and emails never leave."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os

import polars as pl

log = logging.getLogger(__name__)

KEY_ENV = "TT_EXPORT_PSEUDONYM_KEY"
DEV_KEY = b"tickettoken-development-only-pseudonym-key"
MIN_KEY_LENGTH = 16


class PseudonymKeyError(RuntimeError):
    """Customer data cannot be exported: no (or a too short) pseudonym key is configured."""


def pseudonym_key(environ: dict | None = None) -> bytes:
    """The configured key. Outside development (TT_ENV=development) a missing key refuses to run."""
    env = os.environ if environ is None else environ
    key = env.get(KEY_ENV, "")
    if key:
        if len(key) < MIN_KEY_LENGTH:
            raise PseudonymKeyError(f"{KEY_ENV} must be at least {MIN_KEY_LENGTH} characters")
        return key.encode()
    if env.get("TT_ENV", "").lower() in ("development", "dev", "local", "test"):
        log.warning("%s is not set; using the development key (TT_ENV=%s)", KEY_ENV, env.get("TT_ENV"))
        return DEV_KEY
    raise PseudonymKeyError(f"{KEY_ENV} is not set: customer exports need a secret for keyed pseudonyms "
                            "(set TT_ENV=development to use a fixed development key locally)")


def pseudonym(key: bytes, tenant_id: str, customer_id: str) -> str:
    digest = hmac.new(key, f"{tenant_id}:{customer_id}".encode(), hashlib.sha256).hexdigest()
    return f"cus_{digest[:32]}"


def pseudonymize(df: pl.DataFrame, key: bytes, tenant_id: str, columns: dict[str, str]) -> pl.DataFrame:
    """Replace each id column (old name -> new name) by its pseudonym; the raw column is dropped."""
    for old, new in columns.items():
        if old in df.columns:
            ids = df[old].cast(pl.Utf8)
            mapping = {v: pseudonym(key, tenant_id, v) for v in ids.drop_nulls().unique().to_list()}
            df = df.with_columns(ids.replace_strict(mapping, default=None, return_dtype=pl.Utf8).alias(new))
            if new != old:
                df = df.drop(old)
    return df
