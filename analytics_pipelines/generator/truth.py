"""The planted truth: what the generator put into the data for the models to find.

Each planting step of the generator records its true values in `_World.truth` under its own domain key
("pricing", "no_show", "monitoring", "fraud", "behavior", ...). `generate(..., truth_path=F)` and
`analytics-pipelines generate --truth F` write it as JSON; the embedded default writes `data/truth.json`.
Models and assets never read it: only tests and benchmarks compare their estimates against it.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np

from analytics_pipelines.generator.reference import DEFAULT_AS_OF, SCALES


def planted_truth(
    scale: str = "tiny", seed: int = 42, as_of: date = DEFAULT_AS_OF, behavior: bool = True
) -> dict:
    """The truth planted in the dataset `generate(scale, seed, as_of)` writes (JSON-safe). `behavior`: whether
    the behavioral documents are generated too (their truth exists only then: `generate` makes them only
    when given a behavior_dir or mongo_url)."""
    from analytics_pipelines.generator.synth import _build

    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}: choose one of {', '.join(SCALES)}")
    return json_safe(_build(SCALES[scale], seed, as_of, with_behavior=behavior).truth)


def json_safe(value: object) -> object:
    """numpy scalars and arrays to plain Python, recursively (dict keys to str)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_truth(path: Path, truth: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_safe(truth), indent=2, sort_keys=True, ensure_ascii=True))


def read_truth(path: Path) -> dict:
    return json.loads(path.read_text())
