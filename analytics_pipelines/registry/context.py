"""What a builder or a check sees of the run: the warehouse, the partition keys, the clock and what changed
upstream. The Dagster asset factory fills it from the asset's context; nothing here imports Dagster, so
builders and checks stay plain functions that tests call directly."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from analytics_pipelines.registry.model import Table
from analytics_pipelines.settings import Settings
from analytics_pipelines.warehouse.base import Warehouse

log = logging.getLogger(__name__)

#: run tag that pins the clock a run's builders see ("as of"), e.g. for tests and reproducible reruns
NOW_TAG = "tt/now"


def _never_materialized(upstream: str) -> list[str] | None:
    return None


@dataclass
class BuildContext:
    warehouse: Warehouse
    table: Table
    #: the run's partition keys (sorted); empty for an unpartitioned table
    partition_keys: list[str] = field(default_factory=list)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    full_refresh: bool = False
    log: logging.Logger | logging.LoggerAdapter = log
    #: upstream asset -> its partitions materialized since this asset was last materialized (Dagster's event
    #: log); None when this asset was never materialized (build everything)
    changed_since_last: Callable[[str], list[str] | None] = _never_materialized
    settings: Settings = field(default_factory=Settings.from_env)
    #: the registry the table came from (the SQL-file builder reads its upstream tables' partitioning)
    registry: object | None = None

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    @property
    def wh(self) -> Warehouse:
        return self.warehouse

    @property
    def first(self) -> str:
        return self.partition_keys[0]

    @property
    def last(self) -> str:
        return self.partition_keys[-1]


class Markdown(str):
    """Metadata text the Dagster UI renders as markdown."""


def md_table(df: pl.DataFrame, n: int = 10) -> Markdown:
    """A markdown table of the first n rows (no pandas/tabulate needed)."""
    if df.width == 0:
        return Markdown("_(no columns)_")
    head = df.head(n)
    cells = [
        [("" if v is None else str(v)).replace("|", "\\|").replace("\n", " ")[:60] for v in row]
        for row in head.iter_rows()
    ]
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * head.width]
    lines += ["| " + " | ".join(r) + " |" for r in cells]
    if df.height > n:
        lines.append(f"\n_{df.height - n} more rows_")
    if df.height == 0:
        lines.append("\n_(no rows)_")
    return Markdown("\n".join(lines))


@dataclass
class Built:
    """A builder's result when one frame is not enough to say it."""

    frames: dict[str, pl.DataFrame]
    #: partition keys written per table (default: the run's keys for partitioned tables)
    written: dict[str, list[str]] = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    data_version: str | None = None
    #: outputs written by the builder itself (a model artifact, a table it manages): not written again
    already_written: tuple[str, ...] = ()
    #: what the builder hands its checks beyond the frames (e.g. the inputs it read)
    extras: dict = field(default_factory=dict)


class StageClock:
    """Wall and process-CPU seconds of a builder's stages, for its materialization metadata
    (`stage_seconds`: "read 3.1 s (2.0 CPU) · features ..."): where a model asset's time goes at scale."""

    def __init__(self) -> None:
        import time

        self._time = time
        self._last = (time.perf_counter(), time.process_time())
        self.stages: list[tuple[str, float, float]] = []

    def lap(self, name: str) -> None:
        wall, cpu = self._time.perf_counter(), self._time.process_time()
        self.stages.append((name, wall - self._last[0], cpu - self._last[1]))
        self._last = (wall, cpu)

    def summary(self) -> str:
        return " · ".join(f"{n} {w:.1f} s ({c:.1f} CPU)" for n, w, c in self.stages)
