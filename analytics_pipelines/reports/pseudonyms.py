"""Keyed pseudonyms for customer ids in exports: HMAC-SHA256 with TT_EXPORT_PSEUDONYM_KEY.

Stable (the same customer gets the same pseudonym in every export, so files can be joined), keyed (without
the secret nobody can recompute or reverse them, unlike the old service's salted sha256 whose salt was
guessable), and scoped by tenant (one person is unlinkable across tenants). Names and emails never leave.
The key handling and the HMAC are analytics_pipelines/privacy.py's (shared with landing; why exports have
their own key variable is explained there)."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from analytics_pipelines.privacy import (
    DEV_EXPORT_KEY,
    EXPORT_KEY_ENV,
    MIN_KEY_LENGTH,
    PseudonymKeyError,
    hmac_hex,
    load_key,
)

KEY_ENV = EXPORT_KEY_ENV
DEV_KEY = DEV_EXPORT_KEY
__all__ = [
    "DEV_KEY",
    "KEY_ENV",
    "MIN_KEY_LENGTH",
    "PseudonymKeyError",
    "pseudonym",
    "pseudonym_key",
    "pseudonymize",
]


def pseudonym_key(environ: Mapping[str, str] | None = None) -> bytes:
    """The configured key. Outside development (TT_ENV=development) a missing key refuses to run."""
    return load_key(KEY_ENV, DEV_KEY, "customer exports need", environ)


def pseudonym(key: bytes, tenant_id: str, customer_id: str) -> str:
    return f"cus_{hmac_hex(key, f'{tenant_id}:{customer_id}')[:32]}"


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
