"""Values computed once per run and shared by its steps when they run in one process (the in-process executor of
`make run` and the CLI; with a process per step, each step computes its own).

The asset factory opens `shared_in_run(run_id)` around a step's build and checks; inside it,
`shared_in_this_run(key, compute)` returns the value computed for `key` earlier in the same run, and the next
run starts with none. Only values that cannot change within a run may be shared: a read of tables that are
upstream of every asset asking for it (a run writes those before it builds any such asset; each use is tested
on the asset graph) and that no caller modifies in place (polars frames are not, by the code that shares them).

At `large`, five customer checks asked for the same staging totals of a day (1.3-4 s each over 4.5M orders)
and five customer marts read and coded the same 4.2M orders (~1.5 s each)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


@dataclass
class _Shared:
    run: str | None = None  # the run whose step is executing (None: nothing is shared)
    last_run: str | None = None
    values: dict = field(default_factory=dict)


_SHARED = _Shared()


@contextmanager
def shared_in_run(run_id: str) -> Iterator[None]:
    """Share values among the steps of run `run_id` within the block (a new run drops the last run's)."""
    if _SHARED.last_run != run_id:
        _SHARED.values.clear()
    _SHARED.run = _SHARED.last_run = run_id
    try:
        yield
    finally:
        _SHARED.run = None


def forget() -> None:
    """Drop what the last run shared (runner.run_job calls it when a run ends, so that the shared frames, e.g.
    ~0.5 GB of orders at `large`, are not held while the next job runs)."""
    _SHARED.values.clear()
    _SHARED.last_run = None


def shared_in_this_run(key: Hashable, compute: Callable[[], T]) -> T:
    """compute() once per run for `key` inside shared_in_run; outside any run, every call computes."""
    if _SHARED.run is None:
        return compute()
    if key not in _SHARED.values:
        _SHARED.values[key] = compute()
    return _SHARED.values[key]
