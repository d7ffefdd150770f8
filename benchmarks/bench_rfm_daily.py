"""Daily RFM: one incremental day (customers/rfm_daily.py) against a full rebuild (rfm.rfm_scores over all the
orders), on bench_customers' synthetic order history (in memory; warehouse reads and writes not timed).

    .venv/bin/python benchmarks/bench_rfm_daily.py --customers 200000
    .venv/bin/python benchmarks/bench_rfm_daily.py --customers 1000000 --repeat 3

Reports the best of `repeat` runs of each step, the rows, and the Parquet size (zstd) of one day's state and
one as-of date's scores (what the retention of daily partitions multiplies).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_customers import THROUGH, synthesize  # noqa: E402

from analytics_pipelines.customers import keys as K  # noqa: E402
from analytics_pipelines.customers import rfm, rfm_daily  # noqa: E402


def best(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def parquet_mb(df: pl.DataFrame) -> float:
    buf = io.BytesIO()
    df.write_parquet(buf, compression="zstd")
    return buf.tell() / 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    orders = synthesize(args.customers)["orders"]
    day, prev_day = THROUGH, THROUGH - timedelta(days=1)
    t_codes, coded = best(lambda: K.with_user_codes(orders), 1)
    t_full, full = best(lambda: rfm.rfm_scores(coded, day), args.repeat)
    t_base, _ = best(lambda: rfm.customer_base(coded, day), args.repeat)
    prev = rfm_daily.rfm_state_full(coded, prev_day)  # yesterday's state (setup: read from its partition)
    of_day = orders.filter(pl.col("day") == day)  # the day's fct_orders partition (no customer codes)
    t_adv, state = best(lambda: rfm_daily.rfm_state_advance(prev, of_day, day), args.repeat)
    t_score, inc = best(lambda: rfm_daily.rfm_scores_from_state(state, day), args.repeat)
    # the daily run with late orders (module doc of rfm_daily): the settled state (D - 8) advanced by one
    # day, the current one from it and the orders of D - 7 .. D in one merge, then the scores of D
    settled = rfm_daily.rfm_state_full(coded, day - timedelta(days=9))
    recent = orders.filter(pl.col("day") >= day - timedelta(days=8))  # the last nine partitions
    d8 = day - timedelta(days=8)
    t_settle, new_settled = best(
        lambda: rfm_daily.rfm_state_advance(settled, recent.filter(pl.col("day") == d8), d8), args.repeat
    )
    t_catch, current = best(lambda: rfm_daily.rfm_state_catch_up(new_settled, recent, day), args.repeat)
    same_run = (
        rfm_daily.rfm_scores_from_state(current, day)
        .sort(["scope", "scope_id", "tenant_id", "venue_id", "user_id"])
        .equals(full.sort(["scope", "scope_id", "tenant_id", "venue_id", "user_id"]))
    )
    key = ["scope", "scope_id", "tenant_id", "venue_id", "user_id"]
    same = inc.sort(key).equals(full.sort(key))
    print(
        f"customers {args.customers:,}, orders {orders.height:,}, orders of the day {of_day.height:,}, "
        f"RFM rows {full.height:,}, incremental == full: {same}"
    )
    print(
        f"full rebuild: customer codes {t_codes:.2f} s (once per history read) + rfm_scores {t_full:.2f} s "
        f"(customer_base {t_base:.2f} s, scoring {t_full - t_base:.2f} s)"
    )
    print(
        f"incremental day: rfm_state_advance {t_adv:.2f} s + rfm_scores_from_state {t_score:.2f} s = "
        f"{t_adv + t_score:.2f} s ({(t_adv + t_score) / (t_full + t_codes):.0%} of the full rebuild)"
    )
    run = t_settle + t_catch + t_score
    print(
        f"daily run with the 7-day lookback: settled advance {t_settle:.2f} s + catch-up over 8 days "
        f"({recent.filter(pl.col('day') > d8).height:,} orders) {t_catch:.2f} s + scores {t_score:.2f} s = "
        f"{run:.2f} s ({run / (t_full + t_codes):.0%} of the full rebuild); equal to full: {same_run}"
    )
    print(
        f"Parquet (zstd): state of one day {parquet_mb(state):.0f} MB, scores of one as-of {parquet_mb(inc):.0f} MB"
    )
    with tempfile.TemporaryDirectory() as d:  # what each reads: all of fct_orders, or one state and 9 days
        history, state_file = Path(d) / "orders.parquet", Path(d) / "state.parquet"
        orders.select(rfm_daily.ORDER_COLUMNS).write_parquet(history, compression="zstd")
        state.write_parquet(state_file, compression="zstd")
        t_history, _ = best(lambda: pl.read_parquet(history), args.repeat)
        t_state, _ = best(lambda: pl.read_parquet(state_file), args.repeat)
    print(
        f"reads (one local Parquet file each): the order history {t_history:.2f} s, one state {t_state:.2f} s"
    )
    return 0 if same and same_run else 1


if __name__ == "__main__":
    sys.exit(main())
