"""Merging the mart's findings with what people did with them (the ops store's insight_states), and the
filters / counts of GET /v1/insights and /v1/insights/stats. Pure."""

from __future__ import annotations

import json
from collections import Counter

SEVERITY_RANK = {"high": 0, "medium": 1, "low": 2}
STATUSES = ("open", "dismissed", "actioned")


def with_status(rows: list[dict], states: dict[str, dict]) -> list[dict]:
    """The findings with their status (open unless dismissed or actioned), who decided and when; evidence
    and query parsed from their JSON."""
    out = []
    for r in rows:
        s = states.get(r["insight_id"])
        out.append(
            {
                **r,
                "evidence": json.loads(r["evidence"])
                if isinstance(r.get("evidence"), str)
                else r.get("evidence"),
                "query": json.loads(r["query"]) if isinstance(r.get("query"), str) else r.get("query"),
                "status": s["status"] if s else "open",
                "status_by": s["updated_by"] if s else None,
                "status_at": s["updated_at"] if s else None,
                "action": s["action"] if s else None,
                "note": s["note"] if s else None,
            }
        )
    return out


def select(rows: list[dict], kind: str | None, severity: str | None, status: str | None) -> list[dict]:
    """Filtered (status None: every status) and ordered: severity, then |score|, then id."""
    got = [
        r
        for r in rows
        if (kind is None or r["type"] == kind)
        and (severity is None or r["severity"] == severity)
        and (status is None or r["status"] == status)
    ]
    return sorted(got, key=lambda r: (SEVERITY_RANK[r["severity"]], -abs(r["score"] or 0), r["insight_id"]))


def stats(rows: list[dict]) -> dict:
    return {
        "total": len(rows),
        "by_type": dict(sorted(Counter(r["type"] for r in rows).items())),
        "by_severity": dict(sorted(Counter(r["severity"] for r in rows).items())),
        "by_status": {s: sum(1 for r in rows if r["status"] == s) for s in STATUSES},
    }
