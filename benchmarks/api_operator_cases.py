"""The operator routes of issue 20 (and the realtime/custom-metric routes of issue 21) for bench_api.py: objects
created through the API first (alert rules, report schedules, exports, custom metric points), then the read
routes over them and over the customer marts, one request per scope rotating like the mart endpoints.

A case's path may be a list aligned with its headers (a customer's journey is read with the token of the
customer's own venue)."""

from __future__ import annotations

import httpx

from analytics_pipelines.api.auth import mint_token
from analytics_pipelines.warehouse import open_warehouse

PERMS = ["analytics.read", "analytics.write", "analytics.export"]


def _post(client: httpx.Client, path: str, hdr: dict, body: dict) -> None:
    r = client.post(path, json=body, headers=hdr)
    if r.status_code >= 300:
        raise SystemExit(f"setup {path}: {r.status_code} {r.text[:300]}")


def operator_cases(
    base: str, settings, venue_ids: list[tuple[str, str]], warehouse_url: str, last, n: int = 20
):
    """Create the objects for the first `n` venues and return (name, path | [paths], [headers]) cases."""
    venues = venue_ids[:n]
    writer = [
        {
            "Authorization": "Bearer "
            + mint_token(settings, tenant_id=t, venue_id=v, permissions=PERMS, expires_in=7200)
        }
        for t, v in venues
    ]
    with httpx.Client(base_url=base, timeout=30) as c:
        for i, ((_t, _v), h) in enumerate(zip(venues, writer, strict=True)):
            _post(
                c,
                "/v1/alerts",
                h,
                {
                    "name": f"bench refund rate {i}",
                    "metric": "refund_rate_24h_pct",
                    "aggregation": "avg",
                    "window_minutes": 180,
                    "operator": "gt",
                    "threshold": 50,
                    "severity": "warning",
                    "actions": [{"type": "email", "to": ["ops@example.com"]}],
                },
            )
            _post(
                c,
                "/v1/reports/schedules",
                h,
                {"report": "daily_venue", "recipients": ["ops@example.com"], "frequency": "daily"},
            )
            _post(c, "/v1/exports", h, {"export_type": "event_summary", "format": "csv"})
            _post(c, "/v1/metrics", h, {"metric_type": "sales", "value": 5})
        # each venue's default dashboard (made on first request); one of its widgets per venue
        widgets = []
        for h in writer:
            r = c.get("/v1/dashboard", headers=h)
            if r.status_code != 200:
                raise SystemExit(f"setup /v1/dashboard: {r.status_code} {r.text[:300]}")
            widgets.append(r.json()["data"]["widgets"][0]["id"])
    wh = open_warehouse(warehouse_url)
    users = wh.read(
        "SELECT venue_id, min(user_id) AS user_id FROM customer_rfm_scores WHERE scope = 'venue' GROUP BY venue_id"
    )
    by_venue = dict(zip(users["venue_id"].cast(str), users["user_id"].cast(str), strict=True))
    with_user = [(i, by_venue[v]) for i, (_t, v) in enumerate(venues) if v in by_venue]
    cust_h = [writer[i] for i, _ in with_user]
    segment = wh.read(
        "SELECT segment FROM customer_rfm_scores GROUP BY segment ORDER BY count(*) DESC LIMIT 1"
    )["segment"][0]
    first = last.fromordinal(last.toordinal() - 364).isoformat()
    return [
        (
            "widget data (default dashboard's first widget)",
            [f"/v1/widgets/{w}/data" for w in widgets],
            writer,
        ),
        (
            "metrics trend, 365-day daily series (query layer)",
            "/v1/metrics/trends?measure=venue_analytics.tickets_sold&granularity=day"
            f"&start_date={first}&end_date={last.isoformat()}",
            writer,
        ),
        ("alert rules list", "/v1/alerts", writer),
        ("report templates", "/v1/reports/templates", writer),
        ("report schedules list", "/v1/reports/schedules", writer),
        ("exports history", "/v1/exports", writer),
        (
            "customer journey, page of 100",
            [f"/v1/customers/{u}/journey?limit=100" for _, u in with_user],
            cust_h,
        ),
        ("customer rfm", [f"/v1/customers/{u}/rfm" for _, u in with_user], cust_h),
        ("customer clv", [f"/v1/customers/{u}/clv" for _, u in with_user], cust_h),
        ("customers list, page of 50", "/v1/customers/list?limit=50", writer),
        ("segment analysis", f"/v1/customers/segments/{segment.replace(' ', '%20')}/analysis", writer),
        ("realtime summary", "/v1/realtime/summary", writer),
        ("realtime metrics", "/v1/realtime/metrics", writer),
        ("health live", "/health/live", [{}]),
        ("health dependencies", "/health/dependencies", [{}]),
    ]
