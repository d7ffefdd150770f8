"""Benchmark of the BG/NBD and Gamma-Gamma fits of analytics_pipelines.customers.clv against lifetimes 0.11.3.

The CDNOW customers (tests/data/cdnow/) are resampled with replacement to --customers rows with a fixed
seed; both libraries fit the same rows. lifetimes is not a dependency of this project: give the Python
of a separate virtualenv that has it (and pandas/autograd) with --lifetimes-python, e.g.

    python -m venv /tmp/ltvenv && /tmp/ltvenv/bin/pip install lifetimes==0.11.3
    .venv/bin/python benchmarks/bench_clv.py --lifetimes-python /tmp/ltvenv/bin/python \\
        --output benchmarks/results/clv.md

Without --lifetimes-python only this module's side runs. The report (markdown) goes to stdout and, with
--output, to that file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy

from analytics_pipelines.customers import clv

CDNOW = (
    Path(__file__).resolve().parent.parent
    / "tests"
    / "data"
    / "cdnow"
    / "cdnow_customers_summary_with_transactions.csv"
)
AGREEMENT_RTOL = 1e-3
TARGET_SECONDS = 3.0
TARGET_SPEEDUP = 3.0

# Run by --lifetimes-python with the data file and the repeat count as arguments; prints one JSON object.
LIFETIMES_SCRIPT = """
import json, sys, time
import numpy as np
from importlib.metadata import version
from lifetimes import BetaGeoFitter, GammaGammaFitter

data = np.load(sys.argv[1])
repeats = int(sys.argv[2])
x, t_x, T, m = data["frequency"], data["recency"], data["T"], data["monetary_value"]
repeat = x > 0
x_rep, m_rep = x[repeat], m[repeat]  # lifetimes' Gamma-Gamma fit must be given repeat customers only
out = {"bgnbd_seconds": [], "gamma_gamma_seconds": []}
for _ in range(repeats):
    start = time.perf_counter()
    bgf = BetaGeoFitter().fit(x, t_x, T)
    out["bgnbd_seconds"].append(time.perf_counter() - start)
    start = time.perf_counter()
    ggf = GammaGammaFitter().fit(x_rep, m_rep)
    out["gamma_gamma_seconds"].append(time.perf_counter() - start)
out["bgnbd"] = bgf.params_.to_dict()
out["gamma_gamma"] = ggf.params_.to_dict()
out["versions"] = {name: version(name) for name in ("lifetimes", "numpy", "scipy", "pandas", "autograd")}
print(json.dumps(out))
"""


def resample_cdnow(customers: int, seed: int) -> dict[str, np.ndarray]:
    """CDNOW rows (frequency, recency and T in weeks, monetary_value in dollars) drawn with replacement."""
    cdnow = pl.read_csv(CDNOW)
    rows = np.random.default_rng(seed).integers(0, cdnow.height, customers)
    return {
        "frequency": cdnow["x"].to_numpy()[rows].astype(np.float64),
        "recency": cdnow["t_x"].to_numpy()[rows],
        "T": cdnow["T"].to_numpy()[rows],
        "monetary_value": cdnow["zbar"].to_numpy()[rows],
    }


def timed(fit: Callable[[], Any], repeats: int) -> tuple[Any, list[float]]:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fit()
        seconds.append(time.perf_counter() - start)
    return result, seconds


def run_ours(data: dict[str, np.ndarray], repeats: int) -> dict[str, Any]:
    bgnbd, bgnbd_seconds = timed(
        lambda: clv.fit_bgnbd(data["frequency"], data["recency"], data["T"]), repeats
    )
    gamma_gamma, gg_seconds = timed(
        lambda: clv.fit_gamma_gamma(data["frequency"], data["monetary_value"]), repeats
    )
    return {
        "bgnbd_seconds": bgnbd_seconds,
        "gamma_gamma_seconds": gg_seconds,
        "bgnbd": {"r": bgnbd.r, "alpha": bgnbd.alpha, "a": bgnbd.a, "b": bgnbd.b},
        "gamma_gamma": {"p": gamma_gamma.p, "q": gamma_gamma.q, "v": gamma_gamma.v},
        "converged": bgnbd.converged and gamma_gamma.converged,
        "repeat_customers": gamma_gamma.n_customers,
    }


def run_lifetimes(python: str, data: dict[str, np.ndarray], repeats: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "customers.npz")
        np.savez(path, **data)
        completed = subprocess.run(
            [python, "-W", "ignore", "-c", LIFETIMES_SCRIPT, path, str(repeats)],
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def report(
    args: argparse.Namespace, ours: dict[str, Any], lifetimes: dict[str, Any] | None
) -> tuple[str, bool]:
    """The markdown report, and whether every target was met."""
    median = statistics.median
    fits = [("BG/NBD", "bgnbd_seconds"), ("Gamma-Gamma", "gamma_gamma_seconds")]
    ours_total = sum(median(ours[key]) for _, key in fits)
    lines = [
        "# CLV fits: analytics_pipelines.customers.clv vs lifetimes 0.11.3",
        "",
        f"- Date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {cpu_model()}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}",
        f"- This module: Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"polars {pl.__version__}",
        f"- Data: CDNOW ({CDNOW.name}, 2357 customers, weeks) resampled with replacement to "
        f"{args.customers:,} customers (numpy default_rng seed {args.seed}); the Gamma-Gamma fits use the "
        f"{ours['repeat_customers']:,} of them with frequency > 0",
        f"- Timings: wall-clock seconds of each fit call on arrays already in memory, median of {args.repeats} "
        "runs (all runs listed below)",
    ]
    if lifetimes:
        versions = ", ".join(f"{name} {v}" for name, v in lifetimes["versions"].items())
        lines.append(f"- lifetimes side (separate virtualenv, run in a subprocess): {versions}")
        lines.append(
            "  - lifetimes is given the frequency > 0 rows for its Gamma-Gamma fit (outside the timing), as its "
            "docs require; its fit times include the Hessian it computes for standard errors"
        )
    lines += [
        "",
        "## Timings",
        "",
        "| fit | analytics_pipelines.customers.clv (s) | lifetimes 0.11.3 (s) | speed-up |",
        "|---|---:|---:|---:|",
    ]
    lifetimes_total = sum(median(lifetimes[key]) for _, key in fits) if lifetimes else math.nan
    for name, key in fits:
        theirs = median(lifetimes[key]) if lifetimes else math.nan
        lines.append(_timing_row(name, median(ours[key]), theirs))
    lines.append(_timing_row("**both**", ours_total, lifetimes_total))
    lines += [
        "",
        "All runs (s): "
        + "; ".join(
            f"{side} {name}: {', '.join(f'{v:.3f}' for v in result[key])}"
            for side, result in (("clv", ours), ("lifetimes", lifetimes))
            if result
            for name, key in fits
        ),
    ]

    lines += [
        "",
        "## Parameters",
        "",
        "| parameter | analytics_pipelines.customers.clv | lifetimes 0.11.3 | relative difference |",
        "|---|---:|---:|---:|",
    ]
    worst = 0.0
    for model in ("bgnbd", "gamma_gamma"):
        for name, value in ours[model].items():
            if lifetimes:
                theirs = lifetimes[model][name]
                difference = abs(value - theirs) / abs(theirs)
                worst = max(worst, difference)
                lines.append(f"| {model} {name} | {value:.6f} | {theirs:.6f} | {difference:.1e} |")
            else:
                lines.append(f"| {model} {name} | {value:.6f} | not run | |")

    checks = [
        (
            f"our two fits together <= {TARGET_SECONDS:g} s",
            ours_total <= TARGET_SECONDS,
            f"{ours_total:.2f} s",
        )
    ]
    checks.append(("our fits converged", ours["converged"], str(ours["converged"])))
    if lifetimes:
        speedup = lifetimes_total / ours_total
        checks.append(
            (
                f"at least {TARGET_SPEEDUP:g}x faster than lifetimes",
                speedup >= TARGET_SPEEDUP,
                f"{speedup:.1f}x",
            )
        )
        checks.append(
            (
                f"parameters agree to {AGREEMENT_RTOL:g} relative",
                worst <= AGREEMENT_RTOL,
                f"worst {worst:.1e}",
            )
        )
    lines += ["", "## Targets", ""]
    lines += [f"- {what}: {value} ({'met' if ok else 'NOT MET'})" for what, ok, value in checks]
    if not lifetimes:
        lines.append("- lifetimes side not run (no --lifetimes-python)")
    return "\n".join(lines) + "\n", all(ok for _, ok, _ in checks)


def _timing_row(name: str, ours: float, theirs: float) -> str:
    if math.isnan(theirs):
        return f"| {name} | {ours:.3f} | not run | |"
    return f"| {name} | {ours:.3f} | {theirs:.3f} | {theirs / ours:.1f}x |"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20050101)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lifetimes-python", help="Python of a virtualenv with lifetimes 0.11.3 installed")
    parser.add_argument("--output", type=Path, help="also write the markdown report to this file")
    args = parser.parse_args()
    data = resample_cdnow(args.customers, args.seed)
    ours = run_ours(data, args.repeats)
    lifetimes = None
    if args.lifetimes_python:
        lifetimes = run_lifetimes(args.lifetimes_python, data, args.repeats)
    else:
        print(
            "lifetimes side skipped: pass --lifetimes-python /path/to/venv/bin/python to run it",
            file=sys.stderr,
        )
    text, met = report(args, ours, lifetimes)
    print(text)
    if args.output:
        args.output.write_text(text)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
