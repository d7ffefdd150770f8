"""`assert_no_plain_values`: no personal value, in clear or as a plain (unkeyed) sha256, anywhere in a
warehouse. Used by tests/test_privacy.py after ingestion and reusable after any materialization."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

import polars as pl

from analytics_pipelines.warehouse import Warehouse


def plain_forms(value: str) -> list[str]:
    """The value itself and its unkeyed sha256 hex (the scan is case-insensitive, so upper-case hex too)."""
    return [value, hashlib.sha256(value.encode()).hexdigest()]


def _text_columns(schema: pl.Schema) -> list[str]:
    skip = (pl.Boolean, pl.Null)
    return [c for c, t in schema.items() if not (t.is_numeric() or t.is_temporal() or t in skip)]


def scan(
    warehouse: Warehouse, values: Iterable[str], words: Iterable[str] = ()
) -> list[tuple[str, str, str]]:
    """(table, column, value) for every value found (case-insensitively, as a substring; `words` only as a
    whole word: a first name such as "Sam" is in "sample") in any column that is not numeric, temporal or
    boolean, of every table of the warehouse. One query per table."""
    whole = {w.lower() for w in words if w}
    needles = sorted({v.lower() for v in values if v} | whole)
    found = []
    for table in warehouse.tables():
        columns = _text_columns(warehouse.read_table(table, "FALSE").schema)
        if not columns or not needles:
            continue
        tests = [(c, v) for c in columns for v in needles]
        where = " OR ".join(f"strpos(lower(CAST({c} AS text)), %s) > 0" for c, _ in tests)
        hits = warehouse.read_table(table, where, [v for _, v in tests], columns=columns)
        for c, v in tests:
            pattern = rf"\b{re.escape(v)}\b" if v in whole else re.escape(v)
            if hits.height and hits[c].cast(pl.String).str.to_lowercase().str.contains(pattern).any():
                found.append((table, c, v))
    return found


def assert_no_plain_values(warehouse: Warehouse, values: Iterable[str], words: Iterable[str] = ()) -> None:
    """Fail if any of `values` or its plain sha256 hex (lower or upper case) occurs in any text column of
    any table of `warehouse`; `words` (names) count in clear only as whole words, their hashes anywhere."""
    words = [w for w in words if w]
    forms = [f for v in values for f in plain_forms(v)] + [plain_forms(w)[1] for w in words]
    assert forms or words, "nothing to look for"
    found = scan(warehouse, forms, words)
    assert not found, f"personal values in clear or plain sha256 in the warehouse: {found[:20]}"
