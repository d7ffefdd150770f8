"""Scaling ratios per asset step from the recorded full-pipeline runs (bench_full.py --record at small, medium
and large): how each step's seconds grow against its input (fct_orders rows), full refresh and one new day.

    python benchmarks/bench_scaling.py            # prints; --record writes benchmarks/results/scaling.md

A step whose cost grows clearly faster than the input (ratio of seconds > 1.5 × ratio of rows, with at least
2 s at the larger scale) is flagged; a step whose one-new-day cost grows with the whole history (its
one-day seconds grow like the input, not like one day) is flagged as re-reading history.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SCALES = ("small", "medium", "large")


def load() -> dict[str, dict]:
    out = {}
    for s in SCALES:
        f = RESULTS / f"full-{s}.json"
        if f.exists():
            out[s] = json.loads(f.read_text())
    return out


def seconds_by_step(run: dict, phase: str, measure: str) -> dict[str, float]:
    acc: dict[str, float] = {}
    for r in run["steps"]:
        if r["phase"] == phase:
            key = f"{r['job']}:{r['step']}"
            acc[key] = acc.get(key, 0.0) + r[measure]
    return acc


def table(runs: dict[str, dict], phase: str) -> list[str]:
    scales = [s for s in SCALES if s in runs]
    # CPU seconds where every run has them (they do not depend on the machine's other load), else wall
    measure = (
        "cpu_seconds" if all("cpu_seconds" in r for s in scales for r in runs[s]["steps"]) else "seconds"
    )
    per = {s: seconds_by_step(runs[s], phase, measure) for s in scales}
    rows = {s: runs[s]["inputs"].get("fct_orders", 0) for s in scales}
    base, top = scales[0], scales[-1]
    input_ratio = rows[top] / rows[base] if rows[base] else float("nan")
    head = " | ".join(f"{s}" for s in scales)
    lines = [
        f"### {phase}: fct_orders rows "
        + ", ".join(f"{s} {rows[s]:,}" for s in scales)
        + f" (input ratio {top}/{base} = {input_ratio:.1f}×); figures: {measure.replace('_', ' ')}",
        "",
        f"| job:step | {head} | ratio {top}/{base} | flag |",
        "|---|" + "---|" * len(scales) + "---|---|",
    ]
    steps = sorted(set().union(*per.values()), key=lambda k: -per[top].get(k, 0.0))
    for k in steps:
        vals = [per[s].get(k) for s in scales]
        lo, hi = per[base].get(k), per[top].get(k)
        ratio = hi / lo if lo and hi is not None and lo > 0.05 else None
        flag = ""
        if ratio is not None and hi >= 2 and ratio > 1.5 * input_ratio:
            flag = "grows faster than its input"
        if phase == "one new day" and ratio is not None and hi >= 2 and ratio > 0.5 * input_ratio:
            flag = "one day costs like the history: re-reads it?"
        cells = " | ".join("—" if v is None else f"{v:.2f}" for v in vals)
        lines.append(f"| {k} | {cells} | {'—' if ratio is None else f'{ratio:.1f}×'} | {flag} |")
    return lines


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--record", action="store_true")
    args = p.parse_args()
    runs = load()
    if len(runs) < 2:
        print("need at least two of results/full-{small,medium,large}.json (bench_full.py --record)")
        return 1
    lines = ["# Scaling per asset step (bench_full.py at " + ", ".join(runs) + ")", ""]
    for phase in ("full refresh", "one new day"):
        lines += table(runs, phase) + [""]
    text = "\n".join(lines)
    print(text)
    if args.record:
        (RESULTS / "scaling.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
