"""`make bench`: the benchmarks at `medium` (large ones take long: run them by hand, see README.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = [
    [sys.executable, str(HERE / "bench_generate.py"), "--scale", "medium", "--target", "duckdb"],
    [sys.executable, str(HERE / "bench_generate.py"), "--scale", "medium", "--target", "postgres"],
    [sys.executable, str(HERE / "bench_ingest.py"), "--scale", "medium", "--source", "postgres"],
    [sys.executable, str(HERE / "bench_clv.py")],
    [sys.executable, str(HERE / "bench_marts.py"), "--scale", "medium"],
    [sys.executable, str(HERE / "bench_api.py")],
]

if __name__ == "__main__":
    failed = 0
    for cmd in RUNS:
        print("$", " ".join(cmd[1:]), flush=True)
        failed += subprocess.call(cmd) != 0
    sys.exit(1 if failed else 0)
