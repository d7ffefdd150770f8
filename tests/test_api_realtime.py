"""Realtime routes (issue 21): snapshots from the freshest marts with their as-of times, and Server-Sent Events
pushed by one hub per process when a materialization lands -- through a real uvicorn server."""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import timedelta

import httpx
import polars as pl
import pytest
import uvicorn
from api_helpers import make_api

from analytics_pipelines.warehouse import open_warehouse


@pytest.fixture
def api(tmp_path, warehouse_url):
    a, reader = make_api(warehouse_url, tmp_path, refresh_seconds=0.3)
    yield a
    reader.close()


def _latest_kpis(url: str, tenant: str, venue: str | None) -> tuple[dict, str]:
    """The hand-written answer: the scope's rows of its newest hour in kpi_snapshots."""
    df = open_warehouse(url).read_table("kpi_snapshots")
    cond = pl.col("venue_id") == venue if venue else pl.col("venue_id").is_null()
    df = df.filter((pl.col("tenant_id") == tenant) & cond)
    df = df.filter(pl.col("snapshot_hour") == df["snapshot_hour"].max())
    return dict(zip(df["metric"], df["value"], strict=True)), df["snapshot_hour"][0]


def test_summary_and_metrics_equal_the_latest_hour(api):
    t = api.marts.tenant_ids()[0]
    v = api.marts.tenants[t][1]
    want, hour = _latest_kpis(api.warehouse_url, t, v)
    r = api.get("/v1/realtime/summary", t, v)
    assert r.status_code == 200, r.text
    snap = r.json()["data"]
    assert snap["venue_id"] == v and snap["kpis"] == pytest.approx(want)
    assert snap["as_of"]["kpis"] == hour.isoformat().replace("+00:00", "Z")
    # the sample marts have no velocity or behavioral tables: those parts are null and named
    assert snap["velocity"] is None and set(snap["missing"]) == {"sales_velocity", "conversion_funnel"}
    rows = api.get("/v1/realtime/metrics", t, v).json()["data"]
    assert {r["metric"]: r["value"] for r in rows} == pytest.approx(want)
    assert {r["source"] for r in rows} == {"kpi_snapshots"} and {r["grain"] for r in rows} == {"hour"}
    # tenant-wide (admin): the tenant's rows (venue_id null), not one venue's
    want_t, _ = _latest_kpis(api.warehouse_url, t, None)
    admin = api.get("/v1/realtime/summary", t, role="admin").json()["data"]
    assert admin["venue_id"] is None and admin["kpis"] == pytest.approx(want_t)
    # another venue's realtime data: 403; another tenant's venue: 403 as well (scope comes from the token)
    other = api.marts.tenants[t][0]
    assert api.get(f"/v1/realtime/summary?venue_id={other}", t, v).status_code == 403


class _Server:
    def __init__(self, app):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.server.force_exit = True
        self.thread.join(10)


def _events(resp: httpx.Response):
    """(kind, id, data) per SSE message: kind 'snapshot', 'heartbeat' or 'retry'."""
    block: list[str] = []
    for line in resp.iter_lines():
        if line:
            block.append(line)
            continue
        if not block:
            continue
        fields = dict(
            x.split(": ", 1) if ": " in x else (x.rstrip(":"), "") for x in block if not x.startswith(":")
        )
        if block[0].startswith(": heartbeat"):
            yield "heartbeat", None, None
        elif "retry" in fields:
            yield "retry", None, None
        else:
            yield fields.get("event"), fields.get("id"), json.loads(fields["data"])
        block = []


def _until_snapshot(events, deadline: float | None = None):
    """Read messages up to the next snapshot: (the kinds read, its id, its data)."""
    kinds = []
    for kind, ev_id, data in events:
        kinds.append(kind)
        if kind == "snapshot":
            return kinds, ev_id, data
        assert deadline is None or time.monotonic() < deadline, f"no snapshot in time: {kinds}"
    raise AssertionError(f"stream ended: {kinds}")


def _bump_kpis(url: str, tenant: str, venue: str) -> str:
    """A new hour lands in kpi_snapshots for every scope (a run of the kpi job); returns the new hour."""
    wh = open_warehouse(url)
    df = wh.read_table("kpi_snapshots")
    last = df.filter(pl.col("snapshot_hour") == df["snapshot_hour"].max())
    new = last.with_columns(
        snapshot_hour=pl.col("snapshot_hour") + timedelta(hours=1), value=pl.col("value") + 1.0
    ).with_columns(hour_key=pl.col("snapshot_hour").dt.strftime("%Y-%m-%d-%H:00"))
    wh.replace_table("kpi_snapshots", pl.concat([df, new]))
    return new["snapshot_hour"][0].isoformat().replace("+00:00", "Z")


def test_subscriber_gets_the_new_snapshot_within_5s_of_the_materialization(tmp_path, warehouse_url):
    """On both warehouse backends: the embedded reader notices the new files, the PostgreSQL reader the
    write counters; either way the hub hears it from the reader's own refresh."""
    a, reader = make_api(warehouse_url, tmp_path, refresh_seconds=0.3, sse_heartbeat_seconds=0.5)
    t = a.marts.tenant_ids()[0]
    v = a.marts.tenants[t][0]
    try:
        with _Server(a.client.app) as base, httpx.Client(base_url=base, timeout=20) as c:
            h = a.headers(t, v)
            with c.stream("GET", "/v1/realtime/subscribe", headers=h) as resp:
                assert resp.status_code == 200 and resp.headers["content-type"].startswith(
                    "text/event-stream"
                )
                events = _events(resp)
                kinds, first_id, first = _until_snapshot(events)
                assert kinds == ["retry", "snapshot"]
                old_hour = first["as_of"]["kpis"]
                new_hour = _bump_kpis(a.warehouse_url, t, v)
                landed = time.monotonic()
                kinds, new_id, snap = _until_snapshot(events, deadline=landed + 5)
                took = time.monotonic() - landed
                assert set(kinds[:-1]) <= {"heartbeat"}  # nothing but heartbeats before it
                assert snap["as_of"]["kpis"] == new_hour != old_hour, snap
                assert new_id != first_id and took < 5, took
                want, _ = _latest_kpis(a.warehouse_url, t, v)
                assert snap["kpis"] == pytest.approx(want)
                # the stream stays open: heartbeats follow while nothing changes
                kind, *_ = next(events)
                assert kind == "heartbeat"
            # Last-Event-ID naming the current snapshot: nothing resent, only heartbeats
            with c.stream("GET", "/v1/realtime/subscribe", headers={**h, "Last-Event-ID": new_id}) as resp:
                events = _events(resp)
                assert [next(events)[0], next(events)[0]] == ["retry", "heartbeat"]
            # a stale Last-Event-ID gets the current snapshot at once
            with c.stream("GET", "/v1/realtime/subscribe", headers={**h, "Last-Event-ID": first_id}) as resp:
                events = _events(resp)
                next(events)
                kind, got_id, _ = next(events)
                assert (kind, got_id) == ("snapshot", new_id)
    finally:
        reader.close()


def test_subscribers_are_bounded(tmp_path):
    a, reader = make_api(f"duckdb:///{tmp_path / 'warehouse'}", tmp_path, sse_max_clients=1)
    t = a.marts.tenant_ids()[0]
    v = a.marts.tenants[t][0]
    try:
        with _Server(a.client.app) as base, httpx.Client(base_url=base, timeout=20) as c:
            with c.stream("GET", "/v1/realtime/subscribe", headers=a.headers(t, v)) as first:
                assert first.status_code == 200
                held = _events(first)  # kept: a discarded generator would close the connection
                next(held)
                # a stream too: were the bound not kept, a plain GET would read the second stream forever
                with c.stream("GET", "/v1/realtime/subscribe", headers=a.headers(t, v)) as second:
                    assert second.status_code == 503 and second.headers["retry-after"] == "30"
                    assert second.headers["content-type"].startswith("application/problem+json")
            # the first client left: a new one is admitted
            deadline = time.monotonic() + 5
            while True:
                with c.stream("GET", "/v1/realtime/subscribe", headers=a.headers(t, v)) as again:
                    if again.status_code == 200 or time.monotonic() > deadline:
                        assert again.status_code == 200
                        break
                time.sleep(0.2)
    finally:
        reader.close()
