"""Independent numpy tasks (the per-venue CLV fits and predictions) on the calling process plus helper
processes.

The machine the customer marts run on has two cores, and the ~500 per-venue BG/NBD + Gamma-Gamma fits are
single-threaded Python/numpy (scipy's L-BFGS-B loop, 3-4 parameters): a second process halves them. The
calling process works through the tasks itself and hands tasks to a helper only once it has started, so
a slow start delays nothing and small inputs never wait for one.

A helper is a fresh interpreter running this module (``python -m analytics_pipelines.customers.parallel``,
not multiprocessing: that would fork a process running polars' thread pool, or with "spawn" import the
caller's main module, e.g. all of Dagster or scikit-learn, in every helper). It imports the modules named
by the pool, then runs pickled ``(function, arguments)`` requests from a pipe, one at a time, and pickles
the results back. BLAS, OpenMP and polars are held to one thread there (environment variables, set before
any library loads; the callers hold BLAS to one thread in this process too): each process is one core,
and a multi-threaded BLAS would also sum in another order.

Tasks are module-level functions of numpy arrays and numbers, so a task gives the same result, bit for
bit, in whichever process runs it; results come back in task order. TT_CUSTOMER_WORKERS sets the number of
processes (the calling one included; 1 = no helpers).
"""

from __future__ import annotations

import importlib
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

#: processes working on the tasks, the calling one included (TT_CUSTOMER_WORKERS overrides; 1 = no helpers)
DEFAULT_WORKERS = 2
_ONE_THREAD = {
    v: "1" for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "POLARS_MAX_THREADS")
}


def default_workers() -> int:
    from analytics_pipelines.settings import Settings

    configured = Settings.from_env().customer_workers
    if configured:
        return max(1, configured)
    return max(1, min(DEFAULT_WORKERS, os.cpu_count() or 1))


def _send(pipe: BinaryIO, obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    pipe.write(struct.pack("<Q", len(data)) + data)
    pipe.flush()


def _receive(pipe: BinaryIO) -> Any:
    head = pipe.read(8)
    if len(head) < 8:
        raise EOFError("helper pipe closed")
    (size,) = struct.unpack("<Q", head)
    data = pipe.read(size)
    if len(data) < size:
        raise EOFError("helper pipe closed")
    return pickle.loads(data)


class _Helper:
    """One helper process. A thread reads its "ready" message as soon as it comes (`started` is set then,
    or when the helper failed to start); `call` runs a task there (from one thread at a time)."""

    def __init__(self, preload: Sequence[str]) -> None:
        # the helper finds this package where this process did (installed or not)
        root = str(Path(__file__).resolve().parents[2])
        # the helper inherits this process's environment (not a setting read: passed through unchanged)
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", __name__, *preload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, **_ONE_THREAD, "PYTHONPATH": path},
            close_fds=True,
        )
        self.ready = False
        self.started = threading.Event()
        self._watcher = threading.Thread(target=self._wait_ready, daemon=True)
        self._watcher.start()

    def _wait_ready(self) -> None:
        try:
            self.ready = _receive(self.proc.stdout) == "ready"
        except (EOFError, OSError, ValueError, pickle.UnpicklingError):
            self.ready = False
        finally:
            self.started.set()

    def call(self, fn: Callable[..., Any], args: tuple) -> Any:
        _send(self.proc.stdin, (fn, args))
        ok, value = _receive(self.proc.stdout)
        if not ok:
            raise value
        return value

    def close(self) -> None:
        if self.ready:
            try:
                self.proc.stdin.close()  # a started helper exits at the end of its input, at once
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
        else:
            self.proc.kill()  # still importing: not worth waiting for
        self.proc.wait()
        self._watcher.join()
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass


class TaskPool:
    """`workers` processes in all: this one and `workers - 1` helpers (none for workers <= 1), which import
    the `preload` modules (those of the task functions) while the caller does other work.

    Use as a context manager; create the pool before other work so that the helpers start meanwhile."""

    def __init__(
        self,
        workers: int | None = None,
        preload: Sequence[str] = (
            "analytics_pipelines.customers.lifetime_fit",
            "analytics_pipelines.customers.lifetime",
        ),
    ) -> None:
        self.workers = default_workers() if workers is None else max(1, workers)
        self._helpers = [_Helper(preload) for _ in range(self.workers - 1)]
        self.helper_tasks = 0  # tasks the helpers ran (the rest ran in this process)

    def __enter__(self) -> TaskPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for h in self._helpers:
            h.close()
        self._helpers = []

    def wait_ready(self, timeout: float | None = None) -> int:
        """Block until the helpers have started (or failed to); returns how many are ready."""
        for h in self._helpers:
            h.started.wait(timeout)
        return sum(h.ready for h in self._helpers)

    def map(self, fn: Callable[..., Any], tasks: Sequence[tuple]) -> list[Any]:
        """[fn(*task) for task in tasks], shared between this process and the helpers that have started
        (or start meanwhile): this process takes tasks from the front, the helpers from the back. `fn`
        must be a module-level function (helpers import it by name)."""
        if not self._helpers or len(tasks) < 2:
            return [fn(*t) for t in tasks]
        results: list[Any] = [None] * len(tasks)
        todo = deque(range(len(tasks)))
        lock = threading.Lock()
        errors: list[BaseException] = []
        lost: list[int] = []

        def take(front: bool) -> int | None:
            with lock:
                return (todo.popleft() if front else todo.pop()) if todo and not errors else None

        def helper_loop(h: _Helper) -> None:
            while not h.started.wait(0.01):  # starting: give up when the tasks are all taken
                with lock:
                    if not todo or errors:
                        return
            if not h.ready:
                return
            while (i := take(front=False)) is not None:
                try:
                    results[i] = h.call(fn, tasks[i])
                except (EOFError, OSError, pickle.UnpicklingError):  # the helper died: its task runs here
                    h.ready = False
                    with lock:
                        lost.append(i)
                    return
                except BaseException as exc:  # noqa: BLE001 (the task's own error, raised below)
                    with lock:
                        errors.append(exc)
                    return
                with lock:
                    self.helper_tasks += 1

        threads = [threading.Thread(target=helper_loop, args=(h,), daemon=True) for h in self._helpers]
        for t in threads:
            t.start()
        try:
            while (i := take(front=True)) is not None:
                results[i] = fn(*tasks[i])
        except BaseException as exc:
            with lock:
                errors.append(exc)
            raise
        finally:
            for t in threads:
                t.join()
        if errors:
            raise errors[0]
        for i in lost:
            results[i] = fn(*tasks[i])
        return results


def run_all(pool: TaskPool | None, fn: Callable[..., Any], tasks: Sequence[tuple]) -> list[Any]:
    """pool.map, or a plain loop without a pool."""
    return pool.map(fn, tasks) if pool is not None else [fn(*t) for t in tasks]


def _serve(preload: Sequence[str]) -> None:
    """The helper: import `preload`, say ready, then answer requests until the input ends."""
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # prints of the tasks must not corrupt the replies
    for name in preload:
        importlib.import_module(name)
    _send(replies, "ready")
    while True:
        try:
            fn, args = _receive(requests)
        except EOFError:
            break
        try:
            reply = (True, fn(*args))
        except Exception as exc:  # noqa: BLE001 (sent back and raised in the caller)
            reply = (False, exc)
        try:
            _send(replies, reply)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            _send(replies, (False, RuntimeError(f"the helper could not send its result back: {exc!r}")))
    replies.flush()
    os._exit(0)  # no interpreter teardown: the caller may be waiting


if __name__ == "__main__":
    _serve(sys.argv[1:])
