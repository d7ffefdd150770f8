"""Every customer mart in dependency order, without Dagster: the API's tests over real customer marts and
the benchmark on a real warehouse call this; the assets (analytics_pipelines/assets/customers.py) run the
same functions one asset at a time, with their checks and metadata."""

from __future__ import annotations

import time
from datetime import date, datetime
from pathlib import Path

from analytics_pipelines.customers import build as CB
from analytics_pipelines.customers import churn, lifetime
from analytics_pipelines.warehouse.base import Warehouse


def build_customer_marts(wh: Warehouse, rfm_weeks: list[date], now: datetime,
                         model_dir: Path | None = None) -> dict[str, float]:
    """Writes customer_rfm_scores (one partition per as-of date of `rfm_weeks`), transitions, churn scores
    (and the model under `model_dir` when given), CLV with its fits and holdout, segments, cohorts and the
    360, all as of the last day with recognized sales. Returns seconds per step."""
    seconds: dict[str, float] = {}

    def step(name: str, fn) -> None:
        t = time.perf_counter()
        fn()
        seconds[name] = time.perf_counter() - t

    through = CB.last_sales_day(wh)
    if through is None:
        raise ValueError("fct_orders is empty: no recognized sales to build customer marts from")
    weeks = sorted(d for d in rfm_weeks if d <= through) or [through]
    step("customer_rfm_scores", lambda: wh.write_partitions(
        "customer_rfm_scores", CB.rfm_scores(wh, weeks), ["as_of"], [(d.isoformat(),) for d in weeks]))
    step("customer_segment_transitions", lambda: wh.replace_table(
        "customer_segment_transitions", CB.segment_transitions(wh)))

    def churn_model() -> None:
        inp = CB.churn_inputs(wh, through, now)
        try:
            result = churn.train(inp, through)
        except churn.NotEnoughHistory:
            wh.replace_table("customer_churn_scores", churn.rule_scores_only(inp, through))
            return
        if model_dir is not None:
            churn.save_model(result, model_dir, through)
        wh.replace_table("customer_churn_scores", result.scores)
        wh.write_partitions("model_performance", result.performance, ["model_family"], [("churn",)])

    def clv() -> None:
        history = CB.orders(wh, through)
        df, fits = lifetime.lifetime_value(history, through, CB.churn_scores(wh))
        wh.replace_table("customer_lifetime_value", df)
        wh.replace_table("customer_clv_fits", fits)
        wh.write_partitions("model_performance", lifetime.holdout_validation(history, through),
                            ["model_family"], [("clv",)])

    step("customer_churn_model", churn_model)
    step("customer_lifetime_value", clv)
    step("customer_segments", lambda: wh.replace_table("customer_segments", CB.customer_segments(
        CB.rfm_at(wh, CB.rfm_as_of_dates(wh)[-1]), wh.read_table("customer_lifetime_value"))))
    step("customer_cohorts", lambda: wh.replace_table("customer_cohorts", CB.cohorts(CB.orders(wh, through),
                                                                                      through)))
    step("customer_360", lambda: wh.replace_table("customer_360", CB.customer_360_from(wh, through, now)))
    return seconds
