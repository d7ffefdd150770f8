"""Monthly compaction of the embedded warehouse's daily (or hourly) partitions: the on-disk layout.

A table `T` partitioned by one date-valued column `c` is written as one Parquet file per partition,
`T/c=2025-01-05/data.parquet`. Once a month is closed, `warehouse.compaction` rewrites its partitions as one
file, `T/_months/2025-01.parquet`, and records the month in the table's manifest `T/.tt_months.json`:

- the manifest is the commit point: it is replaced by a rename, so every reader that consults it sees a
  month either as its daily files (not in the manifest) or as its month file (in it), never both or none;
- the daily files of a compacted month are kept for a grace period after the commit (readers that listed
  them under the previous manifest, and analysts' sessions holding the previous catalog, still find them),
  then removed; readers ignore them meanwhile;
- a write of a day inside a compacted month rewrites that month's file (read, replace the day's rows, rename
  the new file into place) under the table's exclusive lock, so a re-run of a day in a closed month keeps
  working and gives the same rows;
- the table lock (`T/.tt_compact.lock`, flock): writers hold it shared, compaction and month rewrites
  exclusive, so compaction never reads a month while a run rewrites one of its days.

This module only knows paths and the manifest; embedded.py and compaction.py use it.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

MANIFEST = ".tt_months.json"
LOCK = ".tt_compact.lock"
MONTHS_DIR = "_months"
_DATED = re.compile(r"^(\d{4}-\d{2})-\d{2}")


def month_of(value: str) -> str | None:
    """'2025-01' for a partition value starting with a date ('2025-01-05', '2025-01-05 03:00:00'), else None."""
    m = _DATED.match(value)
    return m.group(1) if m else None


@dataclass(frozen=True)
class Months:
    """A table's manifest: its partition column and compacted months (with when each was committed)."""

    column: str | None = None
    months: dict[str, float] = field(default_factory=dict)  # month -> unix time of the commit
    ident: tuple[int, int] | None = None  # (inode, mtime_ns) of the manifest read; None: no manifest

    @property
    def compacted(self) -> frozenset[str]:
        return frozenset(self.months)


def manifest_ident(table_dir: Path) -> tuple[int, int] | None:
    """Identity of the current manifest (a new one is renamed in: new inode); None when there is none."""
    try:
        st = os.stat(table_dir / MANIFEST)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def load(table_dir: Path) -> Months:
    path = table_dir / MANIFEST
    try:
        with open(path) as fh:
            st = os.fstat(fh.fileno())
            data = json.load(fh)
    except FileNotFoundError:
        return Months()
    return Months(
        data["column"], {m: float(t) for m, t in data["months"].items()}, (st.st_ino, st.st_mtime_ns)
    )


def save(table_dir: Path, column: str, months: dict[str, float]) -> None:
    """Replace the manifest atomically (write a temporary file, rename it over)."""
    tmp = table_dir / f".{MANIFEST}.{uuid.uuid4().hex}.tmp"
    try:
        tmp.write_text(json.dumps({"column": column, "months": dict(sorted(months.items()))}, indent=1))
        os.replace(tmp, table_dir / MANIFEST)
    finally:
        tmp.unlink(missing_ok=True)


def month_file(table_dir: Path, month: str) -> Path:
    return table_dir / MONTHS_DIR / f"{month}.parquet"


def live(paths: Iterator[str] | list[str], table_dir: Path, months: Months) -> list[str]:
    """The files a reader reads under `months`: the daily files of the months not compacted and the month
    file of each compacted month (month files of a compaction that never committed are left out)."""
    root = str(table_dir) + os.sep
    month_dir = root + MONTHS_DIR + os.sep
    daily = root + f"{months.column}=" if months.column else None
    out = []
    for p in paths:
        if p.startswith(month_dir):
            if p[len(month_dir) :].removesuffix(".parquet") in months.months:
                out.append(p)
        elif (
            daily is None
            or not p.startswith(daily)
            or month_of(unquote(p[len(daily) :])) not in months.months
        ):
            out.append(p)
    return out


def view_filter(column: str, months: frozenset[str], file_column: str) -> str:
    """SQL keeping, of a glob over every Parquet file of the table, what `live` keeps (for the catalog's
    views: DuckDB evaluates it on the file names, before opening any file)."""
    if not months:
        return f"NOT contains({file_column}, '/{MONTHS_DIR}/')"
    alt = "|".join(re.escape(m) for m in sorted(months))
    return (
        f"NOT regexp_matches({file_column}, '/{re.escape(column)}=({alt})-') "
        f"AND (NOT contains({file_column}, '/{MONTHS_DIR}/') "
        f"OR regexp_matches({file_column}, '/{MONTHS_DIR}/({alt})\\.parquet$'))"
    )


@contextmanager
def table_lock(table_dir: Path, exclusive: bool) -> Iterator[None]:
    """The table's compaction lock (flock: released by the kernel if the holder is killed)."""
    table_dir.mkdir(parents=True, exist_ok=True)
    with open(table_dir / LOCK, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
