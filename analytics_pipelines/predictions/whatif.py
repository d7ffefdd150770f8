"""What-if scenarios over the stored demand forecast (no model is fitted per request; no randomness).

- pricing: a price change of c % on a ticket type scales its forecast demand over the horizon by
  (1 + c/100)^e, e = the price elasticity of its category at its venue (price_elasticity, scope
  'category_venue'), else of its category ('category'). The interval combines the forecast's p10..p90 with
  the elasticity's 95 % interval (the widest of the four corners); tickets never exceed what is left;
  revenue = tickets x the new price (cents).
- capacity: tickets added (or removed) change what is left to sell; the sell-out probability is
  P(demand over the horizon >= tickets left) from a piecewise-linear distribution through the horizon's
  p10/p50/p90 (sums of the daily quantiles), and the revenue interval is the quantiles capped at what is
  left, times the average price.

The horizon's p10/p90 are the sums of the daily p10/p90: the quantiles of the sum would be narrower (the days'
errors are not perfectly dependent), so the interval is conservative."""

from __future__ import annotations

import numpy as np
import polars as pl


class WhatIfUnavailable(ValueError):
    """The scenario cannot be answered (why is the message)."""


def horizon_totals(forecast: pl.DataFrame) -> pl.DataFrame:
    """Per ticket type: the horizon's summed quantiles, current price, tickets left, category."""
    return (
        forecast.group_by("ticket_type_id")
        .agg(
            pl.col("venue_id").first(),
            pl.col("category_id").first(),
            pl.col("price_cents").first(),
            pl.col("currency").first(),
            pl.col("remaining_tickets").first(),
            pl.col("day").min().alias("first_day"),
            pl.col("day").max().alias("last_day"),
            *(pl.col(f"tickets_{q}").sum().alias(q) for q in ("p10", "p50", "p90")),
        )
        .sort("ticket_type_id")
    )


def _elasticity_for(elasticity: pl.DataFrame, category_id: str, venue_id: str) -> dict:
    rows = elasticity.filter(pl.col("category").cast(pl.String) == str(category_id))
    venue = rows.filter(
        (pl.col("scope") == "category_venue") & (pl.col("venue_id").cast(pl.String) == str(venue_id))
    )
    cat = rows.filter(pl.col("scope") == "category")
    for cand in (venue, cat):
        est = cand.filter(pl.col("status") == "estimated")
        if est.height:
            return est.row(0, named=True)
    for cand in (venue, cat):
        if cand.height:
            r = cand.row(0, named=True)
            raise WhatIfUnavailable(
                f"price elasticity of category {category_id}: {r.get('status')} "
                f"({r.get('reason') or ''}; {r.get('n_price_changes')} price changes)"
            )
    raise WhatIfUnavailable(f"no price elasticity for category {category_id} (price_elasticity has no row)")


def pricing(forecast: pl.DataFrame, elasticity: pl.DataFrame, changes: dict[str, float]) -> dict:
    """The pricing scenario: per ticket type and in total, baseline and scenario tickets and revenue."""
    totals = horizon_totals(forecast)
    unknown = sorted(set(changes) - set(totals["ticket_type_id"].to_list()))
    if unknown:
        raise WhatIfUnavailable(
            f"ticket types without a demand forecast for this event: {', '.join(unknown)}"
        )
    out, sums = [], {k: 0.0 for k in ("base", "base_rev", "t10", "t50", "t90", "r10", "r50", "r90")}
    for t in totals.iter_rows(named=True):
        pct = float(changes.get(t["ticket_type_id"], 0.0))
        f = 1 + pct / 100
        price = int(t["price_cents"] or 0)
        new_price = round(price * f)
        cap = float(t["remaining_tickets"])
        if pct == 0:
            e = {"elasticity": 0.0, "ci_low": 0.0, "ci_high": 0.0, "scope": None, "model_version": None}
        else:
            e = _elasticity_for(elasticity, t["category_id"], t["venue_id"])
        corners = [f ** float(x) for x in (e["ci_low"], e["ci_high"])]
        mid = min(t["p50"] * f ** float(e["elasticity"]), cap)
        lo = min(min(t["p10"] * c for c in corners), cap)
        hi = min(max(t["p90"] * c for c in corners), cap)
        lo, mid, hi = sorted((lo, mid, hi))
        row = {
            "ticket_type_id": t["ticket_type_id"],
            "price_change_pct": pct,
            "price_cents": price,
            "new_price_cents": new_price,
            "currency": t["currency"],
            "elasticity": e["elasticity"],
            "elasticity_ci": [e["ci_low"], e["ci_high"]],
            "elasticity_scope": e.get("scope"),
            "elasticity_model_version": e.get("model_version"),
            "baseline_tickets": t["p50"],
            "baseline_revenue_cents": round(t["p50"] * price),
            "tickets": {"p10": lo, "p50": mid, "p90": hi},
            "revenue_cents": {
                "p10": round(lo * new_price),
                "p50": round(mid * new_price),
                "p90": round(hi * new_price),
            },
            "tickets_left": int(cap),
        }
        out.append(row)
        for k, v in (
            ("base", t["p50"]),
            ("base_rev", t["p50"] * price),
            ("t10", lo),
            ("t50", mid),
            ("t90", hi),
            ("r10", lo * new_price),
            ("r50", mid * new_price),
            ("r90", hi * new_price),
        ):
            sums[k] += v
    return {
        "ticket_types": out,
        "total": {
            "baseline_tickets": sums["base"],
            "baseline_revenue_cents": round(sums["base_rev"]),
            "tickets": {"p10": sums["t10"], "p50": sums["t50"], "p90": sums["t90"]},
            "revenue_cents": {
                "p10": round(sums["r10"]),
                "p50": round(sums["r50"]),
                "p90": round(sums["r90"]),
            },
            "revenue_change_cents": round(sums["r50"] - sums["base_rev"]),
        },
    }


def exceed_probability(q10: float, q50: float, q90: float, level: float) -> float:
    """P(X >= level) for X piecewise-linear in its CDF through (q10, .1), (q50, .5), (q90, .9), the tails
    extended linearly to 0 and 1 over a quarter of the neighbouring span; a point mass when q10 == q90."""
    if q90 - q10 <= 1e-9:
        return 1.0 if level <= q50 else 0.0
    xs = np.array([max(0.0, q10 - (q50 - q10) * 0.25), q10, q50, q90, q90 + (q90 - q50) * 0.25])
    ps = np.array([0.0, 0.1, 0.5, 0.9, 1.0])
    xs = np.maximum.accumulate(xs + np.arange(5) * 1e-9)  # strictly increasing for interp
    return float(1.0 - np.interp(level, xs, ps, left=0.0, right=1.0))


def capacity(forecast: pl.DataFrame, change: int, ticket_type_id: str | None = None) -> dict:
    """The capacity scenario for the event (or one ticket type): sell-out probability and revenue before
    and after adding `change` tickets (negative: removing)."""
    totals = horizon_totals(forecast)
    if ticket_type_id is not None:
        totals = totals.filter(pl.col("ticket_type_id") == ticket_type_id)
        if not totals.height:
            raise WhatIfUnavailable(f"ticket type {ticket_type_id} has no demand forecast for this event")
    q10, q50, q90 = (float(totals[q].sum()) for q in ("p10", "p50", "p90"))
    left = int(totals["remaining_tickets"].sum())
    new_left = max(0, left + int(change))
    weight = totals["p50"].sum()
    avg_price = (
        float((totals["p50"] * totals["price_cents"]).sum() / weight)
        if weight > 0
        else float(totals["price_cents"].mean() or 0)
    )

    def view(cap: int) -> dict:
        t = {q: min(v, cap) for q, v in (("p10", q10), ("p50", q50), ("p90", q90))}
        return {
            "tickets_left": cap,
            "sell_out_probability": exceed_probability(q10, q50, q90, cap) if cap > 0 else 1.0,
            "tickets": t,
            "revenue_cents": {q: round(v * avg_price) for q, v in t.items()},
        }

    return {
        "ticket_type_id": ticket_type_id,
        "capacity_change": int(change),
        "horizon": [totals["first_day"].min(), totals["last_day"].max()],
        "demand": {"p10": q10, "p50": q50, "p90": q90},
        "average_price_cents": round(avg_price),
        "baseline": view(left),
        "scenario": view(new_left),
    }
