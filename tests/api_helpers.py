"""Fixtures shared by the API tests: sample marts on either backend, an app, tokens."""

from __future__ import annotations

from dataclasses import dataclass

from api_sample import SampleMarts, build_sample_marts
from fastapi.testclient import TestClient

from analytics_pipelines.api import Settings, create_app
from analytics_pipelines.api.auth import mint_token
from analytics_pipelines.warehouse import open_warehouse
from analytics_pipelines.warehouse.readers import open_reader

SECRET = "test-secret-that-is-long-enough-for-production-0123456789"


@dataclass
class Api:
    client: TestClient
    settings: Settings
    marts: SampleMarts
    warehouse_url: str

    def token(
        self,
        tenant: str,
        venue: str | None = None,
        role: str = "user",
        permissions: tuple[str, ...] = ("analytics.read",),
        **kw,
    ) -> str:
        return mint_token(
            self.settings, tenant_id=tenant, venue_id=venue, role=role, permissions=list(permissions), **kw
        )

    def headers(self, tenant: str, venue: str | None = None, **kw) -> dict:
        return {"Authorization": f"Bearer {self.token(tenant, venue, **kw)}"}

    def get(self, url: str, tenant: str, venue: str | None = None, **kw):
        return self.client.get(url, headers=self.headers(tenant, venue, **kw))


def make_api(warehouse_url: str, tmp_path, days: int = 20, refresh_seconds: float = 3600, **settings_kw):
    # the rate limiter runs (its headers are on every response) with a budget no test reaches: a test that
    # is about the limit sets its own (tests/test_api_ratelimit.py)
    settings_kw.setdefault("rate_limit", "1000000/60 seconds")
    wh = open_warehouse(warehouse_url)
    marts = build_sample_marts(wh, tenants=2, venues=2, days=days, events_per_venue=3, kpi_hours=6)
    settings = Settings(
        warehouse_url=warehouse_url,
        jwt_secret=SECRET,
        ops_url=f"sqlite:///{tmp_path / 'ops.sqlite'}",
        export_dir=(tmp_path / "exports").resolve(),
        **settings_kw,
    )
    reader = open_reader(warehouse_url, refresh_seconds=refresh_seconds)
    app = create_app(settings, reader=reader)
    return Api(TestClient(app), settings, marts, warehouse_url), reader
