"""Shared by tests/test_api_dashboards.py and tests/test_widgets.py: an API over the sample marts (the query
marts too) with the ops store of the `ops_url` backend, tokens for named users, the audit rows."""

from __future__ import annotations

import sqlalchemy as sa
from api_helpers import make_api
from query_sample import build_query_marts

from analytics_pipelines.ops.audit import api_audit
from analytics_pipelines.ops.db import ops_engine
from analytics_pipelines.warehouse import open_warehouse

READ = ("analytics.read",)
WRITE = ("analytics.read", "analytics.write")
R = ["2026-10-12", "2026-10-31"]


def open_api(warehouse_url: str, tmp, ops_url: str | None = None):
    api, reader = make_api(warehouse_url, tmp)
    build_query_marts(open_warehouse(warehouse_url), api.marts)
    reader.refresh()
    if ops_url:
        api.client.app.state.ops = ops_engine(ops_url)
    return api, reader


class User:
    """One token's requests (`user` is its subject)."""

    def __init__(self, api, tenant, venue=None, user="alice", permissions=WRITE, **kw):
        self.api, self.h = api, api.headers(tenant, venue, user_id=user, permissions=permissions, **kw)
        self.tenant, self.venue, self.user = tenant, venue, user

    def _h(self, etag=None):
        return self.h | ({"If-Match": etag} if etag else {})

    def get(self, url, **kw):
        return self.api.client.get(url, headers=self.h, **kw)

    def post(self, url, body=None, etag=None):
        return self.api.client.post(url, headers=self._h(etag), json=body)

    def put(self, url, body, etag=None):
        return self.api.client.put(url, headers=self._h(etag), json=body)

    def delete(self, url, etag=None):
        return self.api.client.delete(url, headers=self._h(etag))


def audit_rows(api, entity: str, entity_id) -> list[tuple[str, str]]:
    with api.client.app.state.ops.connect() as conn:
        q = (
            sa.select(api_audit.c.action, api_audit.c.actor)
            .where(api_audit.c.entity == entity, api_audit.c.entity_id == str(entity_id))
            .order_by(api_audit.c.id)
        )
        return [tuple(r) for r in conn.execute(q)]


def widget_body(title="Revenue", measures=("venue_analytics.gross_revenue",), **kw) -> dict:
    body = {
        "title": title,
        "type": "line",
        "query": {
            "measures": list(measures),
            "time_dimension": {"dimension": "venue_analytics.day", "granularity": "day", "date_range": R},
        },
        "x": 0,
        "y": 0,
        "width": 6,
        "height": 4,
    }
    return body | kw
