"""Independent numpy tasks (the per-venue CLV fits and predictions) on the calling process plus helper
processes.

The machine the customer marts run on has two cores, and the ~500 per-venue BG/NBD + Gamma-Gamma fits are
single-threaded Python/numpy (scipy's L-BFGS-B loop, 3-4 parameters): a second process halves them. The
calling process works through the tasks itself and hands tasks to the helpers once they have started
("spawn" processes: a fork of a process running polars' thread pool is unsafe), so a slow helper start
delays nothing, and small inputs never wait for one. BLAS and OpenMP are held to one thread in the helpers
(as the callers do in this process): the fits are many tiny BLAS calls, and each process is one core.

Tasks are plain functions of numpy arrays and numbers, so a task gives the same result, bit for bit, in
whichever process runs it; results come back in task order.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from threadpoolctl import threadpool_limits

#: processes working on the tasks, the calling one included (TT_CUSTOMER_WORKERS overrides; 1 = no helpers)
DEFAULT_WORKERS = 2


def default_workers() -> int:
    env = os.environ.get("TT_CUSTOMER_WORKERS")
    if env:
        return max(1, int(env))
    return max(1, min(DEFAULT_WORKERS, os.cpu_count() or 1))


def _init_helper() -> None:
    # kept for the life of the helper (not a context manager): one BLAS/OpenMP thread per process
    threadpool_limits(limits=1)


def _ready() -> int:
    return os.getpid()


class TaskPool:
    """`workers` processes in all: this one and `workers - 1` spawned helpers (none for workers <= 1).

    Use as a context manager; the helpers start right away, so create the pool before other work to let
    them import while that runs."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = default_workers() if workers is None else max(1, workers)
        self._executor: ProcessPoolExecutor | None = None
        self._started: list[Future] = []
        self.helper_tasks = 0  # tasks the helpers ran (the rest ran in this process)
        if self.workers > 1:
            self._executor = ProcessPoolExecutor(max_workers=self.workers - 1,
                                                 mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_init_helper)
            self._started = [self._executor.submit(_ready) for _ in range(self.workers - 1)]

    def __enter__(self) -> TaskPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def wait_ready(self, timeout: float | None = None) -> int:
        """Block until the helpers have started (or failed to); returns how many are ready."""
        wait(self._started, timeout=timeout)
        return self._helpers_ready()

    def _helpers_ready(self) -> int:
        return sum(1 for f in self._started if f.done() and f.exception() is None)

    def map(self, fn: Callable[..., Any], tasks: Sequence[tuple]) -> list[Any]:
        """[fn(*task) for task in tasks], shared between this process and the helpers that have started.

        `fn` must be a module-level function (helpers import it by name)."""
        results: list[Any] = [None] * len(tasks)
        if self._executor is None or len(tasks) < 2:
            return [fn(*t) for t in tasks]
        todo = deque(range(len(tasks)))
        pending: dict[Future, int] = {}
        while todo or pending:
            # keep two tasks queued per started helper (taken from the back: this process takes the front)
            for _ in range(2 * self._helpers_ready() - len(pending)):
                if not todo:
                    break
                i = todo.pop()
                pending[self._executor.submit(fn, *tasks[i])] = i
            if todo:
                i = todo.popleft()
                results[i] = fn(*tasks[i])
                done = [f for f in pending if f.done()]
            else:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                i = pending.pop(f)
                try:
                    results[i] = f.result()
                    self.helper_tasks += 1
                except BrokenProcessPool:  # a helper died (killed, out of memory): do its tasks here
                    self._started = []
                    results[i] = fn(*tasks[i])
        return results


def run_all(pool: TaskPool | None, fn: Callable[..., Any], tasks: Sequence[tuple]) -> list[Any]:
    """pool.map, or a plain loop without a pool."""
    return pool.map(fn, tasks) if pool is not None else [fn(*t) for t in tasks]
