"""One customer's own findings (GET /v1/customers/{id}/insights), from the customer marts: the RFM segment
history in scope and the churn model's score. Pure.

- `churn_risk_rising`: the customer moved into an at-risk RFM segment (events.AT_RISK) within the last
  `WINDOW_DAYS` days (from a segment outside it);
- `segment_change`: any other segment change within that window;
- `churn_risk_high`: the churn model's probability >= CHURN_HIGH (0.5) on its latest score.
Ids: the same hash as the venue findings (type + venue + evidence key)."""

from __future__ import annotations

from datetime import timedelta

from analytics_pipelines.insights.events import AT_RISK
from analytics_pipelines.insights.findings import insight_id

WINDOW_DAYS, CHURN_HIGH = 28, 0.5


def customer_findings(user_id: str, rfm: list[dict], churn: dict | None) -> list[dict]:
    """rfm: the customer's customer_rfm_scores rows in scope (as_of, venue_id, segment, recency_days);
    churn: the customer_churn_scores row (as_of, churn_probability) or None."""
    out: list[dict] = []
    by_venue: dict[str | None, list[dict]] = {}
    for r in sorted(rfm, key=lambda r: r["as_of"]):
        by_venue.setdefault(r.get("venue_id"), []).append(r)
    for venue, rows in by_venue.items():
        last = rows[-1]
        since = last["as_of"] - timedelta(days=WINDOW_DAYS)
        before = [r for r in rows if r["as_of"] >= since and r["segment"] != last["segment"]]
        if not before:
            continue
        prev = before[-1]
        risky = last["segment"] in AT_RISK and prev["segment"] not in AT_RISK
        kind = "churn_risk_rising" if risky else "segment_change"
        key = f"{user_id}:{prev['segment']}->{last['segment']}:{last['as_of']}"
        out.append(
            {
                "insight_id": insight_id(kind, venue, key),
                "type": kind,
                "severity": "medium" if risky else "low",
                "venue_id": venue,
                "as_of": last["as_of"],
                "sentence": f"The customer moved from {prev['segment']} to {last['segment']} between "
                f"{prev['as_of']} and {last['as_of']}" + (" (an at-risk segment)." if risky else "."),
                "evidence": {
                    "from_segment": prev["segment"],
                    "from_as_of": prev["as_of"],
                    "to_segment": last["segment"],
                    "to_as_of": last["as_of"],
                    "recency_days": last.get("recency_days"),
                },
            }
        )
    if churn is not None and churn.get("churn_probability") is not None:
        prob = float(churn["churn_probability"])
        if prob >= CHURN_HIGH:
            key = f"{user_id}:churn:{churn['as_of']}"
            out.append(
                {
                    "insight_id": insight_id("churn_risk_high", None, key),
                    "type": "churn_risk_high",
                    "severity": "high" if prob >= 0.8 else "medium",
                    "venue_id": None,
                    "as_of": churn["as_of"],
                    "sentence": f"The churn model gives this customer a {100 * prob:.0f} % probability of "
                    f"not buying again (as of {churn['as_of']}).",
                    "evidence": {"churn_probability": round(prob, 4), "as_of": churn["as_of"]},
                }
            )
    return out
