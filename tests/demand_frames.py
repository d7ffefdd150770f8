"""Hand-built inputs of the demand model (no warehouse): events with two ticket types each, whose daily sales
follow a ramp towards the event and a weekly pattern (Poisson, seeded), and the frames the what-if reads."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

from analytics_pipelines.predictions import demand_data as D

START = date(2026, 1, 1)


def toy_inputs(events: int = 40, days: int = 240, seed: int = 5) -> tuple[D.DemandInputs, date]:
    """(inputs, last sales day). Event k starts on day 50 + 5k; its types sell for 60 days before it."""
    rng = np.random.default_rng(seed)
    ev_rows, type_rows, orders, items = [], [], [], []
    through = START + timedelta(days=days - 1)
    for k in range(events):
        eid, venue = f"e{k:03d}", f"v{k % 3}"
        start = START + timedelta(days=50 + 5 * k)
        ev_rows.append(
            {
                "event_id": eid,
                "tenant_id": f"t{k % 2}",
                "venue_id": venue,
                "category_id": f"c{k % 4}",
                "status": "cancelled" if k == 7 else "published",
                "starts_at": datetime.combine(start, datetime.min.time(), UTC),
                "cancelled_or_postponed": k == 7,
                "deleted": False,
            }
        )
        for j, (tier, base, price) in enumerate((("general", 6.0, 4000), ("vip", 1.5, 12000))):
            tid = f"{eid}-t{j}"
            sale_start = start - timedelta(days=60)
            type_rows.append(
                {
                    "id": tid,
                    "tenant_id": f"t{k % 2}",
                    "event_id": eid,
                    "category": tier,
                    "price_cents": price,
                    "currency": "USD",
                    "quantity": 2000,
                    "sale_start": datetime.combine(sale_start, datetime.min.time(), UTC),
                    "sale_end": datetime.combine(start, datetime.min.time(), UTC),
                    "is_active": True,
                }
            )
            if k == 7:
                continue
            for d in range(60):
                day = sale_start + timedelta(days=d)
                if day > through:
                    break
                dte = 60 - d
                lam = base * (1 + 3 * np.exp(-dte / 10)) * (1.4 if day.weekday() >= 5 else 1.0)
                n = int(rng.poisson(lam))
                if n:
                    oid = f"o-{tid}-{d}"
                    orders.append({"order_id": oid, "day": day, "event_id": eid})
                    items.append({"order_id": oid, "ticket_type_id": tid, "quantity": n})
    # an event without ticket types
    ev_rows.append(
        {**ev_rows[0], "event_id": "e-none", "status": "published", "cancelled_or_postponed": False}
    )
    inp = D.assemble(
        pl.DataFrame(orders),
        pl.DataFrame(items),
        pl.DataFrame(type_rows),
        pl.DataFrame(ev_rows),
        pl.DataFrame(
            {
                "id": ["v0", "v1", "v2"],
                "venue_type": ["arena", "club", "arena"],
                "max_capacity": [9000, 800, 5000],
            }
        ),
        pl.DataFrame(
            schema={
                "ticket_type_id": pl.String,
                "price_cents": pl.Int64,
                "valid_from": pl.Datetime("us", "UTC"),
            }
        ),
    )
    return inp, through


def elasticity_frame(tenant: str, category: str, venue: str | None, **kw) -> pl.DataFrame:
    row = {
        "tenant_id": tenant,
        "scope": "category_venue" if venue else "category",
        "category": category,
        "venue_id": venue,
        "elasticity": -1.2,
        "std_error": 0.2,
        "ci_low": -1.6,
        "ci_high": -0.8,
        "n_price_changes": 12,
        "n_observations": 400,
        "status": "estimated",
        "reason": None,
        "model_version": "elasticity-test",
        "trained_at": datetime(2026, 10, 31, tzinfo=UTC),
        **kw,
    }
    return pl.DataFrame([row], schema_overrides={"venue_id": pl.String, "reason": pl.String})
