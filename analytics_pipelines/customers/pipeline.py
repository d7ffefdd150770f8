"""Every customer mart in dependency order, without Dagster: the API's tests over real customer marts and
the benchmark on a real warehouse call this; the assets (analytics_pipelines/assets/customers.py) run the
same functions one asset at a time, with their checks and metadata."""

from __future__ import annotations

import resource
import time
from datetime import date, datetime
from pathlib import Path

import polars as pl

from analytics_pipelines.customers import build as CB
from analytics_pipelines.customers import churn, lifetime
from analytics_pipelines.warehouse.base import Warehouse


def _cpu() -> float:
    """CPU seconds of this process (all threads) and of its finished children (the CLV helper processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def build_customer_marts(wh: Warehouse, rfm_weeks: list[date], now: datetime,
                         model_dir: Path | None = None, cpu_seconds: dict[str, float] | None = None
                         ) -> dict[str, float]:
    """Writes customer_attendance, customer_rfm_scores (one partition per as-of date of `rfm_weeks`),
    transitions, churn scores (and the model under `model_dir` when given), CLV with its fits and holdout,
    segments, cohorts and the 360, all as of the last day with recognized sales. Returns seconds per step
    (wall; CPU seconds into `cpu_seconds` when given).

    Each table is written as the asset writes it; what a later step needs of an earlier one's output (the
    RFM partitions just written, attendance, churn scores, CLV) is passed on in memory instead of read back,
    and the order history, refunds, resales and users are read once for all the steps."""
    seconds: dict[str, float] = {}

    def step(name: str, fn):
        t, c = time.perf_counter(), _cpu()
        out = fn()
        seconds[name] = time.perf_counter() - t
        if cpu_seconds is not None:
            cpu_seconds[name] = _cpu() - c
        return out

    through = CB.last_sales_day(wh)
    if through is None:
        raise ValueError("fct_orders is empty: no recognized sales to build customer marts from")
    weeks = sorted(d for d in rfm_weeks if d <= through) or [through]
    history = step("read fct_orders", lambda: CB.orders(wh, through))

    def attendance() -> pl.DataFrame:
        df = CB.attendance(wh, now)
        wh.replace_table("customer_attendance", df)
        return df

    att = step("customer_attendance", attendance)

    def rfm_scores() -> dict[date, pl.DataFrame]:
        df = CB.rfm_scores(wh, weeks, history)
        wh.write_partitions("customer_rfm_scores", df, ["as_of"], [(d.isoformat(),) for d in weeks])
        return {d: df.filter(pl.col("as_of") == d) for d in weeks} if len(weeks) > 1 else {weeks[0]: df}

    written = step("customer_rfm_scores", rfm_scores)
    def transitions() -> None:
        # the table as last built: its pairs of weeks this run did not rewrite are kept
        previous = (wh.read_table("customer_segment_transitions") if "customer_segment_transitions" in wh.tables()
                    else None)
        wh.replace_table("customer_segment_transitions",
                         CB.segment_transitions(wh, written, previous, set(written)))

    step("customer_segment_transitions", transitions)
    inp = step("read refunds, resales, users", lambda: CB.churn_inputs(wh, through, att, history))

    def churn_model() -> pl.DataFrame:
        try:
            result = churn.train(inp, through)
        except churn.NotEnoughHistory:
            scores = churn.rule_scores_only(inp, through)
            wh.replace_table("customer_churn_scores", scores)
            return scores
        if model_dir is not None:
            churn.save_model(result, model_dir, through)
        wh.replace_table("customer_churn_scores", result.scores)
        wh.write_partitions("model_performance", result.performance, ["model_family"], [("churn",)])
        return result.scores

    def clv() -> pl.DataFrame:
        df, fits, perf = lifetime.lifetime_value_and_holdout(history, through, scores)
        wh.replace_table("customer_lifetime_value", df)
        wh.replace_table("customer_clv_fits", fits)
        wh.write_partitions("model_performance", perf, ["model_family"], [("clv",)])
        return df

    scores = step("customer_churn_model", churn_model)
    clv_rows = step("customer_lifetime_value", clv)
    step("customer_segments", lambda: wh.replace_table("customer_segments", CB.customer_segments(
        CB.rfm_at(wh, CB.rfm_as_of_dates(wh)[-1], written), clv_rows)))
    step("customer_cohorts", lambda: wh.replace_table("customer_cohorts", CB.cohorts(history, through)))
    step("customer_360", lambda: wh.replace_table("customer_360", CB.customer_360_from(
        wh, through, inp, written, clv_rows, scores)))
    return seconds
