"""Event, anomaly, pricing and churn-risk findings. Pure functions over polars frames.

- event_stalling: an upcoming event whose orders of the last 7 days are far below its rate of the 21 days
  before: expected lam = 7 x (orders in days -27..-7) / 21 >= 6, observed <= 25 % of lam and the Poisson
  probability of seeing so few, P(X <= observed | lam), <= 0.001. Evidence key: the event and its last day
  with sales before the stall (the same stall keeps its id while it lasts).
- event_sellout_pacing: an upcoming, not sold-out event whose pessimistic rate (the last 7 days' tickets
  minus 1.645 standard deviations, tickets ~ orders x basket size) still sells the remaining capacity before
  the event. Evidence key: the event (one pacing finding per event).
- kpi_anomaly / velocity_anomaly: the anomaly marts' rows of the last 7 days with severity medium or worse.
- pending_price_recommendations: the pricing mart's live `recommended` rows, per event.
- churn_risk_rising: the share of a venue's customers in the at-risk RFM segments now against 7 days before,
  a two-proportion z-test (z >= 3) and at least 5 points up.
- segment_shift: the segment whose share moved most in 28 days, z >= 4 and >= 5 points (segment_findings).
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import polars as pl

from analytics_pipelines.insights.findings import finding, query_request, severity_of

RECENT, BASE = 7, 21
STALL_MIN_EXPECTED, STALL_MAX_SHARE, STALL_P = 6.0, 0.25, 0.001
PACE_MIN_ORDERS, PACE_Z = 5, 1.645
AT_RISK = ("At Risk", "Can't Lose Them", "About to Sleep", "Hibernating")
CHURN_Z, CHURN_MIN_POINTS = 3.0, 5.0


def poisson_cdf(k: int, lam: float) -> float:
    """P(X <= k) for X ~ Poisson(lam)."""
    term = total = math.exp(-lam)
    for i in range(1, k + 1):
        term *= lam / i
        total += term
    return min(total, 1.0)


def _upcoming(events: pl.DataFrame, as_of: date) -> pl.DataFrame:
    start = datetime(as_of.year, as_of.month, as_of.day) + timedelta(days=1)
    return events.filter(
        (pl.col("starts_at").dt.replace_time_zone(None) >= start)
        & ~pl.col("status").is_in(["cancelled", "completed"])
    )


def _windows(event_daily: pl.DataFrame, as_of: date) -> pl.DataFrame:
    recent_from = as_of - timedelta(days=RECENT - 1)
    base_from = recent_from - timedelta(days=BASE)
    d = event_daily.filter(pl.col("day") <= as_of)
    return d.group_by("event_id").agg(
        recent_orders=pl.col("orders").filter(pl.col("day") >= recent_from).sum(),
        recent_tickets=pl.col("tickets_sold").filter(pl.col("day") >= recent_from).sum(),
        base_orders=pl.col("orders").filter(pl.col("day").is_between(base_from, recent_from, "left")).sum(),
        sold=pl.col("tickets_sold").sum(),
        last_sale_before=pl.col("day").filter((pl.col("day") < recent_from) & (pl.col("orders") > 0)).max(),
    )


def event_findings(event_daily: pl.DataFrame, events: pl.DataFrame, as_of: date) -> list[dict]:
    """Stalling and sell-out pacing. event_daily: event_analytics rows (event_id, day, orders,
    tickets_sold); events: event_performance rows (tenant_id, venue_id, event_id, event_name, starts_at,
    status, capacity)."""
    up = _upcoming(events, as_of).join(_windows(event_daily, as_of), on="event_id", how="inner")
    first = as_of - timedelta(days=RECENT + BASE - 1)
    out: list[dict] = []
    for r in up.iter_rows(named=True):
        lam = RECENT * r["base_orders"] / BASE
        seen = int(r["recent_orders"])
        q = query_request(
            "event_analytics.orders", first, as_of, "day", venue_id=r["venue_id"], event_id=r["event_id"]
        )
        days_left = (r["starts_at"].date() - as_of).days
        if lam >= STALL_MIN_EXPECTED and seen <= STALL_MAX_SHARE * lam:
            p = poisson_cdf(seen, lam)
            if p <= STALL_P:
                out.append(
                    finding(
                        as_of=as_of,
                        tenant_id=r["tenant_id"],
                        venue_id=r["venue_id"],
                        kind="event_stalling",
                        severity="high" if seen == 0 and days_left <= 30 else "medium",
                        evidence_key=f"{r['event_id']}:{r['last_sale_before']}",
                        subject_id=r["event_id"],
                        score=-math.log10(max(p, 1e-300)),
                        sentence=f"Sales of {r['event_name']} have stalled: {seen} orders in the last "
                        f"{RECENT} days against {lam:.1f} expected from the {BASE} days before "
                        f"(p = {p:.1e}), {days_left} days before the event.",
                        evidence={
                            "event_id": r["event_id"],
                            "recent_orders": seen,
                            "expected_orders": round(lam, 2),
                            "base_orders": int(r["base_orders"]),
                            "poisson_p": p,
                            "days_to_event": days_left,
                            "recent_days": RECENT,
                            "base_days": BASE,
                        },
                        query=q,
                    )
                )
        remaining = (r["capacity"] or 0) - int(r["sold"])
        if r["capacity"] and remaining > 0 and seen >= PACE_MIN_ORDERS and days_left > 0:
            s = float(r["recent_tickets"])
            per_order = s / seen
            rate_lo = max(0.0, s - PACE_Z * math.sqrt(s * per_order)) / RECENT
            if rate_lo * days_left >= remaining:
                eta = remaining / (s / RECENT)
                out.append(
                    finding(
                        as_of=as_of,
                        tenant_id=r["tenant_id"],
                        venue_id=r["venue_id"],
                        kind="event_sellout_pacing",
                        severity="high" if eta <= 7 else "medium" if eta <= 30 else "low",
                        evidence_key=str(r["event_id"]),
                        subject_id=r["event_id"],
                        score=rate_lo * days_left / remaining,
                        sentence=f"{r['event_name']} is pacing to sell out: {remaining} of {r['capacity']} "
                        f"seats left, {s:.0f} tickets sold in the last {RECENT} days, sold out in about "
                        f"{eta:.0f} days ({days_left} days before the event).",
                        evidence={
                            "event_id": r["event_id"],
                            "capacity": int(r["capacity"]),
                            "sold": int(r["sold"]),
                            "remaining": remaining,
                            "recent_tickets": s,
                            "rate_per_day_low": round(rate_lo, 3),
                            "eta_days": round(eta, 1),
                            "days_to_event": days_left,
                        },
                        query=query_request(
                            "event_analytics.tickets_sold",
                            as_of - timedelta(days=RECENT - 1),
                            as_of,
                            "day",
                            venue_id=r["venue_id"],
                            event_id=r["event_id"],
                        ),
                    )
                )
    return out


def anomaly_findings(anomalies: pl.DataFrame, kind: str, as_of: date) -> list[dict]:
    """kpi_anomaly / velocity_anomaly: rows (tenant_id, venue_id, metric, hour, value, baseline, score,
    severity, direction) of the 7 days up to as_of with severity medium or worse."""
    if anomalies.is_empty() or anomalies.schema.get("hour") == pl.Null:
        return []  # none (a PostgreSQL read of no rows types the timestamps Null)
    lo = datetime(as_of.year, as_of.month, as_of.day) - timedelta(days=RECENT - 1)
    hi = datetime(as_of.year, as_of.month, as_of.day) + timedelta(days=1)
    rows = anomalies.filter(
        pl.col("hour").dt.replace_time_zone(None).is_between(lo, hi, "left")
        & pl.col("severity").is_in(["medium", "high", "critical"])
    )
    out = []
    for r in rows.iter_rows(named=True):
        day = r["hour"].date()
        out.append(
            finding(
                as_of=as_of,
                tenant_id=r["tenant_id"],
                venue_id=r["venue_id"],
                kind=kind,
                severity="high" if r["severity"] in ("high", "critical") else "medium",
                evidence_key=f"{r['metric']}:{r['hour'].isoformat()}",
                subject_id=r["metric"],
                score=float(r["score"]),
                sentence=f"{r['metric'].replace('_', ' ').capitalize()} was {r['direction']} at "
                f"{r['hour']:%Y-%m-%d %H:00} UTC: {r['value']:g} against a usual {r['baseline']:g} "
                f"(score {r['score']:.1f}, {r['severity']}).",
                evidence={k: r[k] for k in ("metric", "hour", "value", "baseline", "score", "severity")},
                query=query_request("venue_analytics.orders", day, day, "day", venue_id=r["venue_id"]),
            )
        )
    return out


def pricing_findings(recs: pl.DataFrame, as_of: date, now: datetime) -> list[dict]:
    """Live `recommended` pricing_recommendations rows, one finding per event."""
    live = recs.filter((pl.col("status") == "recommended") & (pl.col("expires_at") > now))
    out = []
    for (tenant, venue, event), g in live.group_by("tenant_id", "venue_id", "event_id", maintain_order=True):
        gain = int(g["expected_revenue_change_cents"].sum())
        key = ",".join(
            sorted(f"{t}={p}" for t, p in zip(g["ticket_type_id"], g["recommended_price_cents"], strict=True))
        )
        out.append(
            finding(
                as_of=as_of,
                tenant_id=tenant,
                venue_id=venue,
                kind="pending_price_recommendations",
                severity="medium" if gain > 0 else "low",
                evidence_key=f"{event}:{key}",
                subject_id=event,
                score=gain / 100.0,
                sentence=f"{g.height} price recommendation(s) await review for event {event}: expected "
                f"revenue change {gain / 100:+,.2f}.",
                evidence={
                    "event_id": event,
                    "recommendations": g.height,
                    "expected_revenue_change_cents": gain,
                    "ticket_types": g["ticket_type_id"].to_list(),
                    "change_pct": g["change_pct"].to_list(),
                },
                query=query_request(
                    "event_analytics.tickets_sold",
                    as_of - timedelta(days=13),
                    as_of,
                    "day",
                    venue_id=venue,
                    event_id=event,
                ),
            )
        )
    return out


def churn_findings(rfm: pl.DataFrame, as_of: date) -> list[dict]:
    """rfm: venue-scope customer_rfm_scores rows (tenant_id, venue_id, as_of, user_id, segment) of as_of and
    as_of - 7 days."""
    before = as_of - timedelta(days=7)
    shares = (
        rfm.filter(pl.col("as_of").is_in([as_of, before]))
        .group_by("tenant_id", "venue_id", "as_of")
        .agg(n=pl.len(), risk=pl.col("segment").is_in(list(AT_RISK)).sum())
    )
    now_ = shares.filter(pl.col("as_of") == as_of)
    was = shares.filter(pl.col("as_of") == before).select("venue_id", n0="n", risk0="risk")
    out = []
    for r in now_.join(was, on="venue_id").iter_rows(named=True):
        p1, p0 = r["risk"] / r["n"], r["risk0"] / r["n0"]
        pool = (r["risk"] + r["risk0"]) / (r["n"] + r["n0"])
        se = math.sqrt(max(pool * (1 - pool) * (1 / r["n"] + 1 / r["n0"]), 1e-12))
        z = (p1 - p0) / se
        if z < CHURN_Z or 100 * (p1 - p0) < CHURN_MIN_POINTS:
            continue
        out.append(
            finding(
                as_of=as_of,
                tenant_id=r["tenant_id"],
                venue_id=r["venue_id"],
                kind="churn_risk_rising",
                severity=severity_of(z, 4.0, 6.0),
                evidence_key=f"at_risk:{as_of}",
                score=z,
                sentence=f"The share of customers at risk of churning rose from {100 * p0:.1f} % to "
                f"{100 * p1:.1f} % in 7 days ({r['risk']} of {r['n']} customers; z = {z:.1f}).",
                evidence={
                    "share": round(p1, 4),
                    "share_before": round(p0, 4),
                    "at_risk": r["risk"],
                    "customers": r["n"],
                    "at_risk_before": r["risk0"],
                    "customers_before": r["n0"],
                    "segments": list(AT_RISK),
                    "z": round(z, 3),
                },
                query=query_request(
                    "customer_rfm_scores.customers",
                    as_of,
                    as_of,
                    "day",
                    venue_id=r["venue_id"],
                    dimensions=("customer_rfm_scores.segment",),
                ),
            )
        )
    return out


SHIFT_DAYS, SHIFT_Z, SHIFT_MIN_POINTS = 28, 4.0, 5.0


def segment_findings(rfm: pl.DataFrame, as_of: date) -> list[dict]:
    """segment_shift: the RFM segment whose share of the venue's customers moved most in SHIFT_DAYS days,
    when that move is a two-proportion z >= SHIFT_Z (4: segments drift as customers age, so the bar is higher
    than the churn rule's) and >= SHIFT_MIN_POINTS points. One finding per venue and ISO week of as_of.
    rfm: venue-scope customer_rfm_scores rows (tenant_id, venue_id, as_of, user_id, segment)."""
    before = as_of - timedelta(days=SHIFT_DAYS)
    both = rfm.filter(pl.col("as_of").is_in([as_of, before]))
    if both.height == 0:
        return []
    counts = both.group_by("tenant_id", "venue_id", "as_of", "segment").agg(k=pl.len())
    totals = both.group_by("venue_id", "as_of").agg(n=pl.len())
    c = counts.join(totals, on=["venue_id", "as_of"])
    out = []
    week = as_of.isocalendar()
    for (tenant, venue), g in c.group_by("tenant_id", "venue_id", maintain_order=True):
        now_ = {
            r["segment"]: (r["k"], r["n"]) for r in g.filter(pl.col("as_of") == as_of).iter_rows(named=True)
        }
        was = {
            r["segment"]: (r["k"], r["n"]) for r in g.filter(pl.col("as_of") == before).iter_rows(named=True)
        }
        if not now_ or not was:
            continue
        n1, n0 = next(iter(now_.values()))[1], next(iter(was.values()))[1]
        best = None
        for seg in set(now_) | set(was):
            k1, k0 = now_.get(seg, (0, n1))[0], was.get(seg, (0, n0))[0]
            p1, p0 = k1 / n1, k0 / n0
            pool = (k1 + k0) / (n1 + n0)
            se = math.sqrt(max(pool * (1 - pool) * (1 / n1 + 1 / n0), 1e-12))
            z = (p1 - p0) / se
            if best is None or abs(z) > abs(best[1]):
                best = (seg, z, p1, p0, k1, k0)
        seg, z, p1, p0, k1, k0 = best
        if abs(z) < SHIFT_Z or 100 * abs(p1 - p0) < SHIFT_MIN_POINTS:
            continue
        out.append(
            finding(
                as_of=as_of,
                tenant_id=tenant,
                venue_id=venue,
                kind="segment_shift",
                severity=severity_of(abs(z), 6.0, 9.0),
                evidence_key=f"{seg}:{'up' if z > 0 else 'down'}:{week.year}-W{week.week:02d}",
                subject_id=seg,
                score=z,
                sentence=f"{seg} went from {100 * p0:.1f} % to {100 * p1:.1f} % of the venue's customers in "
                f"{SHIFT_DAYS} days (z = {z:.1f}).",
                evidence={
                    "segment": seg,
                    "share": round(p1, 4),
                    "share_before": round(p0, 4),
                    "customers_in_segment": k1,
                    "customers_in_segment_before": k0,
                    "customers": n1,
                    "customers_before": n0,
                    "days": SHIFT_DAYS,
                    "z": round(z, 3),
                },
                query=query_request(
                    "customer_rfm_scores.customers",
                    as_of,
                    as_of,
                    "day",
                    venue_id=venue,
                    dimensions=("customer_rfm_scores.segment",),
                ),
            )
        )
    return out
