"""`analytics-pipelines pricing list|approve|reject`: the approval workflow from a shell (ops store)."""

from __future__ import annotations

import argparse
import json

import sqlalchemy as sa

from analytics_pipelines.ops import pricing as ops
from analytics_pipelines.ops.db import as_utc, ops_engine
from analytics_pipelines.pricing import webhook
from analytics_pipelines.settings import Settings

#: exit codes: 0 done, 2 not found, 3 not pending (already decided, superseded or expired)
NOT_FOUND, NOT_PENDING = 2, 3


def add_parser(sub) -> None:
    p = sub.add_parser("pricing", help="pricing recommendations: list, approve, reject (ops store)")
    s = p.add_subparsers(dest="pricing_command", required=True)
    ls = s.add_parser("list", help="price changes, newest first")
    ls.add_argument("--status", choices=ops.STATUSES)
    ls.add_argument("--tenant", help="only this tenant")
    ls.add_argument("--event", help="only this event")
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    for name in ("approve", "reject"):
        d = s.add_parser(name, help=f"{name} a pending change")
        d.add_argument("change_id", type=int)
        d.add_argument("--user", required=True, help="who decides (kept in the audit trail)")
        d.add_argument("--note", help="why")
    p.set_defaults(func=cmd_pricing)


def _fmt(v):
    return as_utc(v).isoformat() if hasattr(v, "tzinfo") else v


def cmd_pricing(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    engine = ops_engine(settings.ops_url)
    if args.pricing_command == "list":
        ops.expire_due(engine)
        t = ops.pending_price_changes
        q = sa.select(t).order_by(t.c.id.desc()).limit(args.limit)
        if args.status:
            q = q.where(t.c.status == args.status)
        if args.tenant:
            q = q.where(t.c.tenant_id == args.tenant)
        if args.event:
            q = q.where(t.c.event_id == args.event)
        with engine.connect() as conn:
            rows = [{k: _fmt(v) for k, v in r._mapping.items()} for r in conn.execute(q)]
        retry_at = ops.webhook_next_attempts(engine, [r["id"] for r in rows if r["status"] == "approved"])
        for r in rows:  # a failed webhook's next retry by delivery_sweep_job (None: none scheduled)
            r["webhook_next_attempt_at"] = _fmt(retry_at.get(r["id"]))
        if args.json:
            for r in rows:
                print(json.dumps(r, default=str))
            return 0
        cols = [
            "id",
            "status",
            "ticket_type_id",
            "current_price_cents",
            "recommended_price_cents",
            "confidence",
            "decided_by",
            "decided_at",
            "expires_at",
            "webhook_status",
            "webhook_attempts",
            "webhook_next_attempt_at",
        ]
        print("\t".join(cols))
        for r in rows:
            print("\t".join("" if r[c] is None else str(r[c]) for c in cols))
        return 0
    decision = "approved" if args.pricing_command == "approve" else "rejected"
    try:
        row = ops.decide(engine, args.change_id, decision, args.user, args.note)
    except LookupError as exc:
        print(f"error: {exc}")
        return NOT_FOUND
    except ops.TransitionError as exc:
        print(f"error: {exc}")
        return NOT_PENDING
    if decision == "approved":
        row = webhook.deliver(engine, row, settings.pricing.webhook_url)
        retry = ops.webhook_next_attempts(engine, [row.id]).get(row.id)
        note = (
            f" ({row.webhook_error}); retried from {_fmt(retry)}" if row.webhook_status == "retrying" else ""
        )
        print(f"change {row.id} approved by {row.decided_by}; webhook: {row.webhook_status}{note}")
    else:
        print(f"change {row.id} rejected by {row.decided_by}")
    return 0
