"""The report and export routes of issue 20 on SQLite and PostgreSQL ops stores: templates from the code's
declarations, generate, schedule CRUD round trips with audit rows, ETag/If-Match (412) and scoping (another
tenant 404, another venue 403), bad input 422 naming the field; the export history, cancel (including a
render that finishes after the cancel: discarded, never downloadable) and retry."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import mart_frames as mf
import pytest
import sqlalchemy as sa
from api_helpers import SECRET
from fastapi.testclient import TestClient

from analytics_pipelines.api import Settings, create_app, report_routes
from analytics_pipelines.api.auth import mint_token
from analytics_pipelines.exports import lifecycle
from analytics_pipelines.ops.audit import api_audit
from analytics_pipelines.ops.db import ops_engine
from analytics_pipelines.ops.exports import analytics_exports
from analytics_pipelines.reports.export_types import EXPORT_SPECS
from analytics_pipelines.warehouse import open_warehouse
from analytics_pipelines.warehouse.readers import open_reader

NOW = datetime(2026, 11, 5, 10, 0, tzinfo=UTC)
RW = ["analytics.read", "analytics.export"]


class Client:
    def __init__(self, client: TestClient, settings: Settings, engine: sa.Engine):
        self.client, self.settings, self.engine = client, settings, engine

    def h(self, tenant=mf.T1, venue=mf.V1, role="user", perms=RW, **extra) -> dict:
        tok = mint_token(self.settings, tenant_id=tenant, venue_id=venue, role=role, permissions=perms)
        return {"Authorization": f"Bearer {tok}", **extra}

    def admin(self, tenant=mf.T1, **extra) -> dict:
        return self.h(tenant, None, "admin", **extra)

    def audit(self, entity: str, entity_id) -> list[tuple]:
        t = api_audit
        q = sa.select(t.c.action, t.c.actor, t.c.before, t.c.after).where(
            t.c.entity == entity, t.c.entity_id == str(entity_id)
        )
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(q.order_by(t.c.id))]


@pytest.fixture
def api(ops_url, marts_url, tmp_path, monkeypatch):
    monkeypatch.setattr(report_routes, "_now", lambda: NOW)
    monkeypatch.setenv("TT_DATA_DIR", str(tmp_path / "data"))
    settings = Settings(
        warehouse_url=marts_url,
        jwt_secret=SECRET,
        ops_url=ops_url,
        export_dir=(tmp_path / "data" / "exports").resolve(),
    )
    reader = open_reader(marts_url, refresh_seconds=3600)
    yield Client(TestClient(create_app(settings, reader=reader)), settings, ops_engine(ops_url))
    reader.close()


def _problem(r, status: int, field: str | None = None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    if field:
        assert field in {e["field"] for e in body.get("errors", [])}, body
    return body


# --- templates and generate -------------------------------------------------------------------------------


def test_templates_are_the_declared_report_types(api):
    r = api.client.get("/v1/reports/templates", headers=api.h(perms=["analytics.read"]))
    assert r.status_code == 200, r.text
    body = r.json()
    by = {t["report_type"]: t for t in body["data"]}
    assert set(by) == {*EXPORT_SPECS, "daily_venue", "weekly_executive"}
    assert body["meta"]["total"] == len(by)
    fin = by["financial_report"]
    assert [f["name"] for f in fin["filters"]] == ["date_from", "date_to", "venue_ids"]
    assert fin["formats"] == ["csv", "xlsx", "pdf", "json"] and fin["generate"] is True
    assert {f["name"]: f["type"] for f in by["analytics_report"]["filters"]}["segments"] == "array of strings"
    assert by["daily_venue"]["frequencies"] == ["daily", "once"] and by["daily_venue"]["generate"] is False
    assert by["raw_data"]["options"] == ["table"]


def test_the_declared_filters_are_the_ones_generate_accepts(api):
    """Each export type: every filter it declares is accepted, every other one refused (the templates are
    what the code enforces, not a copy of it)."""
    values = {
        "date_from": "2026-11-02",
        "date_to": "2026-11-04",
        "event_ids": [str(uuid.uuid4())],
        "category_ids": [str(uuid.uuid4())],
        "venue_ids": [mf.V1],
    }
    templates = api.client.get("/v1/reports/templates", headers=api.h()).json()["data"]
    checked = 0
    for t in templates:
        if t["kind"] != "export":
            continue
        options = {"table": "fct_orders"} if t["report_type"] == "raw_data" else {}
        declared = {f["name"] for f in t["filters"]}
        for name, value in values.items():
            body = {
                "report_type": t["report_type"],
                "format": "json",
                "filters": {name: value},
                "options": options,
            }
            r = api.client.post("/v1/reports/generate", json=body, headers=api.h())
            assert r.status_code == (202 if name in declared else 400), (t["report_type"], name, r.text)
            checked += 1
    assert checked == 6 * len(values)


def test_generate_queues_an_export_that_the_runner_completes(api, marts_url):
    body = {
        "report_type": "financial_report",
        "format": "csv",
        "filters": {"date_from": "2026-11-02", "date_to": "2026-11-08"},
    }
    r = api.client.post("/v1/reports/generate", json=body, headers=api.h())
    assert r.status_code == 202, r.text
    export = r.json()["data"]
    assert r.headers["location"] == f"/v1/exports/{export['id']}" and r.headers["etag"]
    assert export["status"] == "pending" and export["export_type"] == "financial_report"
    assert export["filters"]["venue_ids"] == [mf.V1]
    ((action, actor, before, after),) = api.audit("export", export["id"])
    assert action == "create" and before is None and after["id"] == export["id"]
    row = lifecycle.run_export(
        api.engine, open_warehouse(marts_url), export["id"], out_dir=api.settings.export_dir
    )
    assert row["status"] == "completed"
    d = api.client.get(f"/v1/exports/{export['id']}/download", headers=api.h())
    assert d.status_code == 200 and d.content[:2] == b"PK"  # several sections: a zip of CSVs


# --- schedules --------------------------------------------------------------------------------------------

WEEKLY = {
    "report": "weekly_executive",
    "format": "pdf",
    "recipients": ["gm@venue.example"],
    "frequency": "weekly",
    "day_of_week": "friday",
    "local_time": "08:30",
    "timezone": "Europe/Berlin",
}


def test_schedule_crud_round_trip_with_audit_and_if_match(api):
    h = api.h()
    r = api.client.post("/v1/reports/schedules", json=WEEKLY, headers=h)
    assert r.status_code == 201, r.text
    s = r.json()["data"]
    url = f"/v1/reports/schedules/{s['id']}"
    assert r.headers["location"] == url
    assert s["next_run_at"] == "2026-11-06T07:30:00Z" and s["status"] == "active"
    assert (s["frequency"], s["day_of_week"], s["venue_id"]) == ("weekly", "friday", mf.V1)
    got = api.client.get(url, headers=h)
    assert got.json()["data"] == s and got.headers["etag"] == r.headers["etag"]
    listed = api.client.get("/v1/reports/schedules?limit=10", headers=h).json()
    assert [x["id"] for x in listed["data"]] == [s["id"]] and listed["meta"]["total"] == 1

    monthly = {
        **WEEKLY,
        "frequency": "monthly",
        "day_of_week": None,
        "day_of_month": 31,
        "local_time": "09:00",
    }
    stale = api.client.put(url, json=monthly, headers={**h, "If-Match": '"0123456789abcdef01234567"'})
    _problem(stale, 412)
    assert api.client.get(url, headers=h).json()["data"] == s  # nothing changed
    put = api.client.put(url, json=monthly, headers={**h, "If-Match": got.headers["etag"]})
    assert put.status_code == 200, put.text
    m = put.json()["data"]
    assert (m["frequency"], m["day_of_month"], m["day_of_week"]) == ("monthly", 31, None)
    assert m["next_run_at"] == "2026-11-30T08:00:00Z"  # the 31st of a 30-day month: its last day, CET
    # the old ETag is stale now
    _problem(api.client.post(url + "/pause", headers={**h, "If-Match": got.headers["etag"]}), 412)
    p = api.client.post(url + "/pause", headers={**h, "If-Match": put.headers["etag"]})
    assert p.json()["data"]["status"] == "paused" and p.json()["data"]["next_run_at"] is None
    assert api.client.post(url + "/pause", headers=h).json()["data"]["status"] == "paused"  # idempotent
    res = api.client.post(url + "/resume", headers=h).json()["data"]
    assert res["status"] == "active" and res["next_run_at"] == "2026-11-30T08:00:00Z"
    etag = api.client.get(url, headers=h).headers["etag"]
    _problem(api.client.delete(url, headers={**h, "If-Match": '"stale"'}), 412)
    assert api.client.delete(url, headers={**h, "If-Match": etag}).status_code == 204
    _problem(api.client.get(url, headers=h), 404)
    again = api.client.post("/v1/reports/schedules", json=WEEKLY, headers=h).json()["data"]
    assert again["id"] > s["id"]  # ids are never reused: the sensor's run keys stay unique
    trail = api.audit("report_schedule", s["id"])
    assert [a for a, *_ in trail] == ["create", "update", "pause", "resume", "delete"]  # no-op pause: none
    assert trail[1][2]["frequency"] == "weekly" and trail[1][3]["frequency"] == "monthly"
    assert trail[4][3] is None and trail[4][2]["status"] == "active"
    assert {actor for _, actor, *_ in trail} == {"dev-user"}


def test_schedule_scoping(api):
    mine = api.client.post("/v1/reports/schedules", json=WEEKLY, headers=api.h()).json()["data"]
    url = f"/v1/reports/schedules/{mine['id']}"
    _problem(api.client.get(url, headers=api.h(mf.T2, mf.V3)), 404)  # another tenant: does not exist
    _problem(api.client.get(url, headers=api.h(mf.T1, mf.V2)), 403)  # another venue of the tenant
    _problem(api.client.delete(url, headers=api.h(mf.T1, mf.V2)), 403)
    _problem(api.client.post(url + "/pause", headers=api.h(mf.T2, mf.V3)), 404)
    _problem(
        api.client.post("/v1/reports/schedules", json={**WEEKLY, "venue_id": mf.V2}, headers=api.h()), 403
    )
    _problem(api.client.get("/v1/reports/schedules", headers=api.h(perms=["analytics.read"])), 403)
    theirs = api.client.post(
        "/v1/reports/schedules", json={**WEEKLY, "venue_id": mf.V2}, headers=api.admin()
    ).json()["data"]
    assert theirs["venue_id"] == mf.V2
    assert [x["id"] for x in api.client.get("/v1/reports/schedules", headers=api.h()).json()["data"]] == [
        mine["id"]
    ]
    admin_list = api.client.get("/v1/reports/schedules", headers=api.admin()).json()
    assert admin_list["meta"]["total"] == 2
    one_venue = api.client.get(f"/v1/reports/schedules?venue_id={mf.V2}", headers=api.admin()).json()
    assert [x["id"] for x in one_venue["data"]] == [theirs["id"]]
    assert api.client.get("/v1/reports/schedules", headers=api.h(mf.T2, mf.V3)).json()["data"] == []


BAD_SCHEDULES = [
    ({"local_time": "24:30"}, "local_time"),
    ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ({"frequency": "once", "day_of_week": None, "run_date": "2026-02-31"}, "run_date"),
    ({"frequency": "once", "day_of_week": None, "run_date": "2026-11-04"}, "run_date"),  # past
    ({"frequency": "once", "day_of_week": None}, "run_date"),
    (
        {"frequency": "once", "day_of_week": None, "run_date": "9999-12-31", "timezone": "America/New_York"},
        "run_date",
    ),
    ({"end_date": "0001-01-01", "timezone": "Asia/Tokyo"}, "end_date"),
    ({"report": "analytics_report", "frequency": "daily"}, "day_of_week"),
    ({"report": "daily_venue"}, "frequency"),
    ({"day_of_week": "funday"}, "day_of_week"),
    ({"frequency": "monthly", "day_of_week": None, "day_of_month": 32}, "day_of_month"),
    ({"end_date": "2026-11-01"}, "end_date"),
    ({"recipients": ["not-an-address"]}, "recipients"),
    ({"recipients": []}, "recipients"),
    ({"filters": {"event_ids": [str(uuid.uuid4())]}}, "filters"),  # a venue report takes none
    ({"report": "financial_report", "filters": {"date_from": "2026-11-01"}}, "filters.date_from"),
    ({"report": "financial_report", "filters": {"event_ids": [str(uuid.uuid4())]}}, "filters"),
    ({"format": "docx"}, "format"),
    ({"every": "day"}, "every"),
]


def test_bad_schedules_are_422_naming_the_field(api):
    """Impossible times (24:30, 31 February, a zone that does not exist, a date in the past) and inconsistent
    bodies: 422 with the field at fault; nothing stored."""
    for change, field in BAD_SCHEDULES:
        body = {k: v for k, v in {**WEEKLY, **change}.items() if v is not None}
        _problem(api.client.post("/v1/reports/schedules", json=body, headers=api.h()), 422, field)
    assert api.client.get("/v1/reports/schedules", headers=api.h()).json()["meta"]["total"] == 0


def test_unknown_schedule_is_404(api):
    _problem(api.client.get("/v1/reports/schedules/999999", headers=api.h()), 404)
    _problem(api.client.put("/v1/reports/schedules/999999", json=WEEKLY, headers=api.h()), 404)
    _problem(api.client.get("/v1/reports/schedules/0", headers=api.h()), 422)
    _problem(api.client.get(f"/v1/reports/schedules/{2**40}", headers=api.h()), 422)  # past the INTEGER key


# --- exports: history, cancel, retry ------------------------------------------------------------------------


def _export(api, headers=None, **body) -> dict:
    b = {"export_type": "financial_report", "format": "csv", **body}
    r = api.client.post("/v1/exports", json=b, headers=headers or api.h())
    assert r.status_code == 202, r.text
    return r.json()["data"]


def test_export_history_filters_and_pages(api):
    a = _export(api)
    b = _export(api, export_type="event_summary", format="json")
    c = _export(api, headers=api.h(mf.T1, mf.V2))
    with api.engine.begin() as conn:  # b was created three days earlier
        conn.execute(
            analytics_exports.update()
            .where(analytics_exports.c.id == b["id"])
            .values(created_at=datetime.now(UTC) - timedelta(days=3))
        )
    h = api.h()

    def ids(q, headers=h):
        r = api.client.get("/v1/exports" + q, headers=headers)
        assert r.status_code == 200, r.text
        return [x["id"] for x in r.json()["data"]], r.json()["meta"]

    assert ids("")[0] == [a["id"], b["id"]]  # newest first, only the token's venue
    assert ids("?type=event_summary")[0] == [b["id"]]
    assert ids("?status=cancelled")[0] == []
    today = datetime.now(UTC).date()
    assert ids(f"?created_from={today}")[0] == [a["id"]]
    assert ids(f"?created_to={today - timedelta(days=1)}")[0] == [b["id"]]
    assert ids("?created_from=0001-01-01&created_to=9999-12-31")[0] == [a["id"], b["id"]]
    page, meta = ids("?limit=1&offset=1", api.admin())
    assert len(page) == 1 and meta == {"limit": 1, "offset": 1, "returned": 1, "total": 3}
    assert set(ids("?limit=10", api.admin())[0]) == {a["id"], b["id"], c["id"]}
    assert ids("", api.h(mf.T2, mf.V3))[0] == []
    _problem(api.client.get("/v1/exports?status=lost", headers=h), 422, "status")
    _problem(api.client.get(f"/v1/exports?venue_id={mf.V2}", headers=h), 403)


def test_cancel_round_trip(api):
    e = _export(api)
    url = f"/v1/exports/{e['id']}"
    _problem(api.client.post(url + "/cancel", headers=api.h(mf.T2, mf.V3)), 404)
    _problem(api.client.post(url + "/cancel", headers=api.h(mf.T1, mf.V2)), 403)
    _problem(api.client.post(url + "/cancel", headers=api.h(**{"If-Match": '"old"'})), 412)
    etag = api.client.get(url, headers=api.h()).headers["etag"]
    r = api.client.post(url + "/cancel", headers=api.h(**{"If-Match": etag}))
    assert r.status_code == 200 and r.json()["data"]["status"] == "cancelled"
    _problem(api.client.post(url + "/cancel", headers=api.h()), 409)
    assert lifecycle.due_requests(api.engine) == []
    (create, cancel) = api.audit("export", e["id"])
    assert cancel[0] == "cancel" and cancel[2]["status"] == "pending" and cancel[3]["status"] == "cancelled"
    _problem(api.client.get(url + "/download", headers=api.h()), 409)


def test_a_render_finishing_after_the_cancel_is_discarded(api, marts_url, monkeypatch):
    """Cancelled between the runner's claim and its completion: the completion is refused, the file deleted,
    the export never downloadable; through run_export (the export job's own step) and by hand."""
    wh = open_warehouse(marts_url)
    e = _export(api)
    real_render, written = lifecycle.render, []

    def render_then_cancel(report, fmt, target):
        assert lifecycle.get(api.engine, e["id"])["status"] == "processing"
        r = api.client.post(f"/v1/exports/{e['id']}/cancel", headers=api.h())
        assert r.status_code == 200 and r.json()["data"]["status"] == "cancelled"
        path = real_render(report, fmt, target)
        written.append(path)
        return path

    monkeypatch.setattr(lifecycle, "render", render_then_cancel)
    row = lifecycle.run_export(api.engine, wh, e["id"], out_dir=api.settings.export_dir)
    assert row["status"] == "cancelled" and row["file_path"] is None and row["completed_at"] is None
    assert written and not written[0].exists()
    _problem(api.client.get(f"/v1/exports/{e['id']}/download", headers=api.h()), 409)
    # by hand: claim, cancel, the completion arrives late
    e2 = _export(api)
    assert lifecycle.claim(api.engine, e2["id"])
    assert api.client.post(f"/v1/exports/{e2['id']}/cancel", headers=api.h()).status_code == 200
    late = api.settings.export_dir / "late.csv"
    late.parent.mkdir(parents=True, exist_ok=True)
    late.write_text("day\n")
    with pytest.raises(lifecycle.Cancelled):
        lifecycle.complete(api.engine, e2["id"], late)
    assert not late.exists() and lifecycle.get(api.engine, e2["id"])["status"] == "cancelled"


def test_retry_round_trip_keeps_the_attempt_count(api, marts_url, monkeypatch):
    wh = open_warehouse(marts_url)
    monkeypatch.setenv("TT_ENV", "production")  # no pseudonym key: customer_list fails at once
    monkeypatch.delenv("TT_EXPORT_PSEUDONYM_KEY", raising=False)
    e = _export(api, export_type="customer_list")
    url = f"/v1/exports/{e['id']}"
    _problem(api.client.post(url + "/retry", headers=api.h()), 409)  # pending: nothing to retry
    row = lifecycle.run_export(api.engine, wh, e["id"], out_dir=api.settings.export_dir)
    assert row["status"] == "failed" and row["attempts"] == 1
    _problem(api.client.post(url + "/retry", headers=api.h(mf.T1, mf.V2)), 403)
    r = api.client.post(url + "/retry", headers=api.h())
    assert r.status_code == 202, r.text
    d = r.json()["data"]
    assert (d["status"], d["attempts"], d["retries"], d["id"]) == ("pending", 1, 1, e["id"])
    assert [x.run_key for x in lifecycle.due_requests(api.engine)] == [f"{e['id']}:1:r1"]  # a new run key
    monkeypatch.setenv("TT_EXPORT_PSEUDONYM_KEY", "test-pseudonym-key-0123456789")
    row = lifecycle.run_export(api.engine, wh, e["id"], out_dir=api.settings.export_dir)
    assert row["status"] == "completed" and row["attempts"] == 1
    _problem(api.client.post(url + "/retry", headers=api.h()), 409)  # completed
    # expired: download 410, retry -> pending again with a run key never used before
    lifecycle.expire_due(api.engine, now=datetime.now(UTC) + timedelta(days=30))
    _problem(api.client.get(url + "/download", headers=api.h()), 410)
    r = api.client.post(url + "/retry", headers=api.h())
    assert r.json()["data"]["status"] == "pending" and r.json()["data"]["retries"] == 2
    assert "download_url" not in r.json()["data"]
    assert [x.run_key for x in lifecycle.due_requests(api.engine)] == [f"{e['id']}:1:r2"]
    actions = [(a, b["status"], c["status"]) for a, _, b, c in api.audit("export", e["id"])[1:]]
    assert actions == [("retry", "failed", "pending"), ("retry", "expired", "pending")]
