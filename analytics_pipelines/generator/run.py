"""Write a synthetic platform into a source database (PostgreSQL or the embedded DuckDB source).

Clean mode streams typed chunks straight into a typed source and, on PostgreSQL, then applies the platform's
keys and CHECKs (sql/source/add_constraints.sql): a clean dataset that violates them fails loudly here.
Dirty mode renders every table as text (the landing shape), injects bad rows (generator.dirty) and loads an
all-text landing source with no constraints; it materialises the whole dataset, so it stops at `medium`.
"""

from __future__ import annotations

import json
import queue
import tempfile
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import polars as pl
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from analytics_pipelines.generator import dirty as dirty_mod
from analytics_pipelines.generator.synth import DEFAULT_AS_OF, SCALES, generate_frames
from analytics_pipelines.generator.truth import write_truth
from analytics_pipelines.source import contract
from analytics_pipelines.source.db import SourceDB, render_text

DIRTY_SCALES = ("tiny", "small", "medium")
# DuckDB's buffer pool defaults to 80% of RAM; while loading it only needs room for the blocks being written
DUCKDB_MEMORY_LIMIT = "1GB"


def generate(
    url: str,
    scale: str = "small",
    seed: int = 42,
    as_of: date = DEFAULT_AS_OF,
    dirty: bool = False,
    dirty_rate: float = 0.01,
    manifest_path: Path | None = None,
    progress: bool = True,
    truth_path: Path | None = None,
    behavior_dir: Path | None = None,
    mongo_url: str | None = None,
    plant_insights: bool = False,
) -> dict[str, int]:
    """Create the source at `url`, fill it with the `scale` platform and return {table: rows loaded}.

    url: postgresql://... or duckdb:////absolute/path/source.duckdb (SQLAlchemy convention).
    dirty: load an all-text landing source with injected bad rows; the injection manifest
    ({kind: {table: count}, ...}, see generator.dirty) is written to manifest_path when given.
    truth_path: where the planted truth (generator.truth) is written as JSON, when given.
    behavior_dir: where the behavioral MongoDB collections are written as Extended JSON files (the embedded
    default of TT_MONGO_URL); mongo_url: also load those documents into that MongoDB (generator.behavior_docs).
    plant_insights: opt-in venue-insight plants (generator.planted_insights), recorded in the truth.
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}: choose one of {', '.join(SCALES)}")
    if dirty and scale not in DIRTY_SCALES:
        raise ValueError(
            f"dirty mode materialises every table in memory: use it up to 'medium', not {scale!r}"
        )
    db = SourceDB(url)
    db.create(landing=dirty)
    truth: dict = {}
    # the behavioral documents: slices rendered and written one at a time after the tables (bounded memory)
    behavior: list | None = [] if (behavior_dir or mongo_url) else None
    frames: Iterator[tuple[str, pl.DataFrame]] = generate_frames(
        scale, seed, as_of, truth=truth, behavior_stream=behavior, plant_insights=plant_insights
    )
    manifest: dict | None = None
    counts = {t: 0 for t in contract.TABLE_ORDER}
    with _Bar(enabled=progress, scale=scale, dialect=db.dialect) as bar:
        if dirty:
            bar.stage("generating every table as text and injecting bad rows")
            injected, manifest = dirty_mod.inject(_collect_text(frames), seed=seed, rate=dirty_rate)
            frames = ((t, injected[t]) for t in contract.TABLE_ORDER)
        frames = _prefetch(frames)  # build the next chunk while the database ingests this one
        with db.writer() as conn:
            if db.dialect == "duckdb":
                conn.execute("SET enable_progress_bar = false")  # DuckDB's own bar would fight ours
                conn.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")  # bulk appends need little cache
            for table, frame in frames:
                bar.table(table)
                counts[table] += db.load(table, frame, conn=conn)
                bar.rows(frame.height)
    if not dirty and db.dialect == "postgres":
        db.apply_constraints()
    if behavior is not None:
        from analytics_pipelines.generator.behavior_docs import load_into_mongo, write_files

        directory = behavior_dir or Path(tempfile.mkdtemp(prefix="tt-behavior-"))
        write_files(behavior[0], directory)  # fills the truth's planted_bad counts as it renders
        behavior.clear()  # the world the slices held
        if mongo_url:
            load_into_mongo(directory, mongo_url)
    if truth_path is not None:
        write_truth(truth_path, truth)
    if manifest is not None and manifest_path is not None:
        manifest_path.parent.mkdir(parents=True, exist_ok=True)
        manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=True))
    return counts


def _prefetch(
    items: Iterator[tuple[str, pl.DataFrame]], depth: int = 2
) -> Iterator[tuple[str, pl.DataFrame]]:
    """Run `items` in a background thread, at most `depth` chunks ahead (numpy, polars and the database
    drivers release the GIL, so generation and loading overlap); re-raises the producer's error."""
    chunks: queue.Queue = queue.Queue(maxsize=depth)
    end = object()
    failure: list[BaseException] = []
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                chunks.put(item)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            failure.append(exc)
        finally:
            chunks.put(end)

    worker = threading.Thread(target=produce, name="generate-frames", daemon=True)
    worker.start()
    try:
        while (item := chunks.get()) is not end:
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                chunks.get(timeout=0.1)
            except queue.Empty:
                pass
        worker.join()
    if failure:
        raise failure[0]


def _collect_text(frames: Iterator[tuple[str, pl.DataFrame]]) -> dict[str, pl.DataFrame]:
    parts: dict[str, list[pl.DataFrame]] = {t: [] for t in contract.TABLE_ORDER}
    for table, frame in frames:
        parts[table].append(render_text(frame))
    return {t: pl.concat(p) for t, p in parts.items()}


class _Bar:
    """A rich progress display: tables done of all, rows loaded so far; a no-op when disabled."""

    def __init__(self, enabled: bool, scale: str, dialect: str) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            disable=not enabled,
        )
        self._tables = self._progress.add_task(
            f"generate {scale} -> {dialect}", total=len(contract.TABLE_ORDER), detail=""
        )
        self._current: str | None = None
        self._rows = 0

    def __enter__(self) -> _Bar:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None and self._current is not None:
            self._progress.advance(self._tables)
            self._progress.update(self._tables, detail=f"{self._rows:,} rows")
        self._progress.__exit__(*exc)

    def stage(self, text: str) -> None:
        self._progress.update(self._tables, detail=text)

    def table(self, name: str) -> None:
        if name != self._current:
            if self._current is not None:
                self._progress.advance(self._tables)
            self._current = name
        self._progress.update(self._tables, detail=f"{name}: {self._rows:,} rows")

    def rows(self, n: int) -> None:
        self._rows += n
        self._progress.update(self._tables, detail=f"{self._current}: {self._rows:,} rows")
