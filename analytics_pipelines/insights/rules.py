"""Week-over-week and year-over-year sales changes beyond the series' own noise. Pure functions over polars
frames.

The statistic: per venue and metric (tickets, net revenue), the weekly totals of complete ISO weeks; the
change of a week is the log ratio d_t = ln((x_t + c) / (x_b + c)) to its base week b (the week before for
week-over-week, the same ISO week 52 weeks earlier for year-over-year), c = 1 + 0.1 x the median weekly level
(keeps near-empty weeks from producing huge ratios). This week's change is scored against the venue's own
past changes (the previous `HISTORY` = 12 changes of the same kind): robust z = (d_t - median) / scale, scale
= max(1.4826 x MAD, the Poisson floor sqrt(1/(n_t + 1) + 1/(n_b + 1)) over the ticket counts, 0.05). A
change is a finding when |z| >= Z_MIN (3.0; 0 false positives in 900 noise series, tests/test_insights.py), the change is at least MIN_PCT
(20 %) either way, the two weeks hold at least MIN_TICKETS (10) tickets together and at least MIN_PAST (8)
past changes exist. Severity: |z| >= 5 medium, >= 8 high.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import polars as pl

from analytics_pipelines.insights.findings import finding, last_complete_week, query_request, severity_of

HISTORY, MIN_PAST = 12, 8
Z_MIN, Z_MEDIUM, Z_HIGH = 3.0, 5.0, 8.0
MIN_PCT, MIN_TICKETS = 20.0, 10
METRICS = {  # metric -> (daily column, query-layer measure, unit word)
    "tickets": ("tickets_sold", "venue_analytics.tickets_sold", "tickets"),
    "revenue": ("net_revenue_cents", "venue_analytics.net_revenue", "net revenue"),
}


def weekly(daily: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Complete ISO weeks ending on or before as_of: tenant_id, venue_id, week (Monday), tickets, revenue.
    `daily`: venue_analytics rows (tenant_id, venue_id, day, tickets_sold, net_revenue_cents), zero-filled;
    a week counts only when all 7 days are present."""
    _, last_sunday = last_complete_week(as_of)
    return (
        daily.filter(pl.col("day") <= last_sunday)
        .with_columns(week=pl.col("day").dt.truncate("1w"))
        .group_by("tenant_id", "venue_id", "week")
        .agg(
            days=pl.len(),
            tickets=pl.col("tickets_sold").sum().cast(pl.Float64),
            revenue=pl.col("net_revenue_cents").sum().cast(pl.Float64),
        )
        .filter(pl.col("days") == 7)
        .drop("days")
        .sort("tenant_id", "venue_id", "week")
    )


def robust_z(d: float, past: np.ndarray, floor: float) -> tuple[float, float, float]:
    """(z, median, scale) of the change `d` against the past changes."""
    med = float(np.median(past))
    mad = float(np.median(np.abs(past - med)))
    scale = max(1.4826 * mad, floor, 0.05)
    return (d - med) / scale, med, scale


def _changes(x: np.ndarray, n: np.ndarray, lag: int, c: float) -> tuple[np.ndarray, np.ndarray]:
    """Log-ratio changes of x against x `lag` weeks earlier, and their Poisson floors from the counts n."""
    d = np.log((x[lag:] + c) / (x[:-lag] + c))
    floor = np.sqrt(1 / (n[lag:] + 1) + 1 / (n[:-lag] + 1))
    return d, floor


def sales_changes(daily: pl.DataFrame, as_of: date) -> list[dict]:
    """Week-over-week and year-over-year findings of the last complete week, per venue and metric."""
    weeks = weekly(daily, as_of)
    monday, sunday = last_complete_week(as_of)
    out: list[dict] = []
    for (tenant, venue), g in weeks.group_by("tenant_id", "venue_id", maintain_order=True):
        # a contiguous weekly grid up to the last complete week (missing weeks: the venue did not exist)
        if g.height == 0 or g["week"][-1] != monday:
            continue
        g = _contiguous(g)
        n = g["tickets"].to_numpy()
        for metric, (_col, measure, word) in METRICS.items():
            x = g[metric].to_numpy()
            c = 1.0 + 0.1 * float(np.median(x[-HISTORY - 1 :]))
            for kind, lag in (("wow", 1), ("yoy", 52)):
                if x.size < lag + MIN_PAST + 1:
                    continue
                d, floor = _changes(x, n, lag, c)
                past = d[-HISTORY - 1 : -1]
                if past.size < MIN_PAST:
                    continue
                z, med, scale = robust_z(float(d[-1]), past, float(floor[-1]))
                now_v, base_v = float(x[-1]), float(x[-1 - lag])
                pct = 100.0 * (now_v - base_v) / base_v if base_v > 0 else math.inf
                if abs(z) < Z_MIN or abs(pct) < MIN_PCT or n[-1] + n[-1 - lag] < MIN_TICKETS:
                    continue
                base_monday = monday - timedelta(weeks=lag)
                rel = "the week before" if kind == "wow" else "the same week a year earlier"
                money = metric == "revenue"
                shown = (lambda v: f"{v / 100:,.2f}") if money else (lambda v: f"{v:,.0f}")
                sentence = (
                    f"{word.capitalize()} {'rose' if now_v > base_v else 'fell'} "
                    f"{'' if math.isinf(pct) else f'{abs(pct):.0f} % '}in the week of {monday} "
                    f"({shown(now_v)} against {shown(base_v)} {rel}), {abs(z):.1f} times the venue's usual "
                    f"weekly variation."
                )
                first = base_monday if kind == "wow" else monday
                out.append(
                    finding(
                        as_of=as_of,
                        tenant_id=tenant,
                        venue_id=venue,
                        kind=f"{metric}_{kind}",
                        severity=severity_of(abs(z), Z_MEDIUM, Z_HIGH),
                        evidence_key=f"{metric}:{kind}:{monday}",
                        score=z,
                        sentence=sentence,
                        evidence={
                            "metric": metric,
                            "week": monday,
                            "week_end": sunday,
                            "value": now_v,
                            "base_week": base_monday,
                            "base_value": base_v,
                            "change_pct": None if math.isinf(pct) else round(pct, 2),
                            "log_change": round(float(d[-1]), 4),
                            "past_changes_median": round(med, 4),
                            "scale": round(scale, 4),
                            "z": round(z, 3),
                            "past_changes": int(past.size),
                            "threshold_z": Z_MIN,
                            "unit": "cents" if money else "tickets",
                        },
                        query=query_request(measure, first, sunday, "week", venue_id=venue),
                    )
                )
    return out


def _contiguous(g: pl.DataFrame) -> pl.DataFrame:
    grid = pl.DataFrame({"week": pl.date_range(g["week"].min(), g["week"].max(), "1w", eager=True)}).join(
        g, on="week", how="left"
    )
    return grid.with_columns(pl.col("tickets", "revenue").fill_null(0.0))
