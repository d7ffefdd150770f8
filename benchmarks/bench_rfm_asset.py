"""The customer_rfm_scores asset as the factory runs it (build, write, checks; warehouse reads and writes
included): one daily run from the stored state against a full rebuild (full_refresh), on a copy of a
warehouse that holds fct_orders (e.g. generated `small` or `medium` after main_job).

    .venv/bin/python benchmarks/bench_rfm_asset.py --warehouse-url duckdb:////path/to/warehouse --repeat 3

Setup (untimed): a run for the day before the last sales day, which writes the settled state. Then, each
`repeat` times: the last sales day incremental, the same day with full_refresh (which leaves the same
state behind). Reports the best and worst of each.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from analytics_pipelines.assets import factory
from analytics_pipelines.customers.build import last_sales_day
from analytics_pipelines.registry import default_registry
from analytics_pipelines.registry.context import BuildContext
from analytics_pipelines.warehouse import open_warehouse


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--warehouse-url", required=True, help="duckdb:///<dir> (copied, not changed)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    reg = default_registry()
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "wh"
        shutil.copytree(args.warehouse_url.removeprefix("duckdb://"), copy)
        wh = open_warehouse(f"duckdb:///{copy}")
        day = last_sales_day(wh)
        now = datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=6)

        def run(key: str, full: bool) -> tuple[float, dict]:
            ctx = BuildContext(wh, reg.table("customer_rfm_scores"), [key], now, full, registry=reg)
            t = [time.perf_counter()]
            built = factory.build(ctx, reg)
            t.append(time.perf_counter())
            factory.write(ctx, reg, built)
            t.append(time.perf_counter())
            factory.evaluate(ctx, reg, built)
            t.append(time.perf_counter())
            phases = ", ".join(
                f"{n} {t[i + 1] - t[i]:.2f}" for i, n in enumerate(("build", "write", "checks"))
            )
            return t[-1] - t[0], {**built.metadata, "phases": phases}

        run((day - timedelta(days=1)).isoformat(), False)  # setup: the previous day writes the state
        times: dict[str, list[float]] = {"incremental": [], "full": []}
        for _ in range(args.repeat):
            for mode in times:
                seconds, meta = run(day.isoformat(), mode == "full")
                times[mode].append(seconds)
                print(
                    f"{mode:12s} {seconds:6.2f} s ({meta['phases']})  {meta['mode']}; orders read {meta['orders_read']:,}; "
                    f"state rows {meta['state_rows']:,}",
                    flush=True,
                )
        rows = wh.count("customer_rfm_scores", "as_of = %s", [day])
        print(f"{rows:,} RFM rows as of {day}; fct_orders {wh.count('fct_orders'):,} rows")
        for mode, ts in times.items():
            print(f"{mode}: best {min(ts):.2f} s, worst {max(ts):.2f} s (build, write and checks)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
