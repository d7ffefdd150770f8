"""schemathesis over the whole OpenAPI document, stateful (issue 20): its state machine walks the links of
api/openapi_doc.py (create -> read -> update -> delete: POST on a collection -> the item's operations through
`Location`; a list -> the first listed object's operations) and every response is held to the document:
no server error, a documented status code, the documented content type, the documented headers and a body
that conforms to its schema; after a create the object is there, after a delete it is gone.

On main today that walks exports (create -> status -> download) and alert instances (list -> acknowledge);
routes merged later that follow the conventions are walked with no change here. The document is also
checked by hand: the links exist, FastAPI's 422 schema is gone, every 4xx answer is a problem body."""

from __future__ import annotations

import time
import uuid

import pytest
import schemathesis
from api_helpers import make_api
from fastapi import FastAPI, HTTPException, Request, Response
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import FlakyStrategyDefinition
from pydantic import BaseModel, ConfigDict, Field
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi import stateful
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ensure_resource_availability,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    use_after_free,
)
from test_api import _alert

from analytics_pipelines.api import openapi_doc, problems
from analytics_pipelines.api.problems import PROBLEM_SCHEMA
from analytics_pipelines.api.writes import object_response
from analytics_pipelines.ops.db import ops_engine


def no_server_error(ctx, response, case):
    """not_a_server_error, but a mart that is not materialized yet is the documented 503 problem (the sample
    marts do not include every mart), not a server error."""
    if response.status_code == 503 and response.json().get("type", "").endswith("/not-materialized"):
        return None
    return not_a_server_error(ctx, response, case)


CHECKS = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    use_after_free,
    ensure_resource_availability,
]


@pytest.fixture
def api(tmp_path):
    a, reader = make_api(f"duckdb:///{tmp_path / 'warehouse'}", tmp_path)
    yield a
    reader.close()


def test_document_links_and_problem_bodies(api):
    doc = api.client.get("/openapi.json").json()
    paths = doc["paths"]
    created = paths["/v1/exports"]["post"]["responses"]["202"]["links"]
    assert {link["operationId"] for link in created.values()} >= {
        paths["/v1/exports/{export_id}"]["get"]["operationId"],
        paths["/v1/exports/{export_id}/download"]["get"]["operationId"],
    }
    assert all("Location#regex:" in link["parameters"]["export_id"] for link in created.values())
    listed = paths["/v1/alerts/instances"]["get"]["responses"]["200"]["links"]
    assert [link["parameters"] for link in listed.values()] == [{"instance_id": "$response.body#/data/0/id"}]
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, ops in paths.items():
        for method, op in ops.items():
            for code, resp in op["responses"].items():
                if code.startswith("4"):
                    assert resp["content"] == {"application/problem+json": {"schema": PROBLEM_SCHEMA}}, (
                        method,
                        path,
                        code,
                    )
            if path.startswith("/v1/"):
                assert {"401", "403", "429", "503"} <= set(op["responses"]), (method, path)
                assert "Retry-After" in op["responses"]["429"]["headers"]


def _roots_without_scope_foreign_keys(monkeypatch):
    """schemathesis' dependency analysis takes `venue_id` (a scope filter whose value comes from the token)
    for a foreign key to a "Venue" resource that no operation creates, and so drops every venue-scoped
    collection (POST /v1/exports, GET /v1/alerts/instances, ...) from the state machine's entry points,
    leaving only GET /v1/marts. Put them back by schemathesis' own rule: a POST, or a GET without path
    parameters, that has outgoing links."""
    original = stateful.classify_root_transitions

    def roots(operations, transitions, graph):
        found = original(operations, transitions, graph)
        by_label = {op.label: op for op in operations}
        for label in list(found.fallback):
            op = by_label[label]
            if op.method == "post" or (op.method == "get" and not op.path_parameters):
                found.reliable.add(label)
        return found

    monkeypatch.setattr(stateful, "classify_root_transitions", roots)


def test_stateful_walk_over_the_whole_document(api, monkeypatch):
    _roots_without_scope_foreign_keys(monkeypatch)
    t = api.marts.tenant_ids()[0]
    v = api.marts.tenants[t][0]
    engine = ops_engine(api.settings.ops_url)
    for _ in range(3):
        _alert(engine, t, v)  # instances to list and acknowledge (the API creates none)
    headers = api.headers(t, v, role="admin", permissions=("analytics.read", "analytics.export"))
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.client.app)
    failures: list[str] = []
    calls: list[tuple[str, str, int]] = []

    class Workflow(schema.as_state_machine()):
        def get_call_kwargs(self, case):
            return {"headers": headers}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            calls.append((case.method, case.path, response.status_code))
            try:
                case.validate_response(
                    response,
                    checks=CHECKS,
                    headers=headers,
                    transport_kwargs=kwargs or None,
                    recorder=getattr(self, "recorder", None),
                )
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collected, reported at once
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {exc}"[:600])

    started = time.monotonic()
    linked: set = set()
    # the walk draws its chains at random: a new run (at most 3) until two linked families were reached
    flaky = 0
    for _ in range(3):
        try:
            Workflow.run(
                settings=settings(
                    max_examples=80,
                    stateful_step_count=8,
                    deadline=None,
                    database=None,
                    phases=[Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
            )
        except FlakyStrategyDefinition:
            # hypothesis' own complaint that a replayed chain drew differently (the links follow ids the
            # server created in an earlier step): a statement about the generator, not about the API; the
            # responses checked so far stay in `failures`, and three such runs in a row still fail the test
            flaky += 1
            continue
        # an item operation answers 2xx only with an id a link carried (a random id is 404); on main today:
        # an export's status after its create, an instance's acknowledgement after the list
        linked = {(m, p) for m, p, s in calls if s < 300 and "{" in p}
        if len(linked) >= 2:
            break
    elapsed = time.monotonic() - started
    assert flaky < 3, "every run of the state machine ended in FlakyStrategyDefinition"
    assert not failures, f"{len(failures)} failing responses:\n" + "\n".join(sorted(set(failures))[:15])
    assert len(linked) >= 2, sorted({(m, p) for m, p, s in calls if s < 300})
    assert elapsed < 120, elapsed


def test_every_operation_conforms(api):
    """The operations the links do not reach, too: every operation of the document, generated requests
    (valid and invalid), each response held to the same checks (the stateful ones aside). This is also the
    API's fuzz test: no server error on any generated request (test_api's own schemathesis pass, 3 examples
    per operation checking only that, was a subset of this one and is gone)."""
    t = api.marts.tenant_ids()[0]
    headers = api.headers(t, api.marts.tenants[t][0], permissions=("analytics.read", "analytics.export"))
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.client.app)
    failures, seen = [], set()
    for result in schema.get_all_operations():
        op = result.ok()

        @settings(
            max_examples=6,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=op.as_strategy())
        def check(case):
            response = case.call(headers=headers)
            seen.add((case.method, case.path, response.status_code))
            try:
                case.validate_response(response, checks=CHECKS[:5], headers=headers)
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collected, reported at once
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {exc}"[:600])

        check()
    assert not failures, f"{len(failures)} failing responses:\n" + "\n".join(sorted(set(failures))[:15])
    operations = {(m, p) for m, p, _ in seen}
    assert len(operations) == len(list(schema.get_all_operations())) > 50
    answered = {(m, p) for m, p, s in seen if s == 200}
    assert len(answered) >= 15, answered  # not only refused (random ids are unknown: 404)


class Thing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=20)


def _crud_app(delete_works: bool = True):
    """A route family shaped like the ones other branches are adding (POST create answering Location via
    writes.object_response, GET/PUT/DELETE on the item, list as {"data": [...]}), on the API's problems and
    document conventions, over an in-memory dict."""
    app, store = FastAPI(), {}
    problems.install(app)

    @app.post("/v1/things", status_code=201, responses={201: {"description": "created"}})
    def create(request: Request, body: Thing):
        obj = {"id": str(uuid.uuid4()), "name": body.name}
        store[obj["id"]] = obj
        return object_response(request, obj, 201, f"/v1/things/{obj['id']}")

    @app.get("/v1/things/{thing_id}")
    def read(request: Request, thing_id: uuid.UUID):
        if str(thing_id) not in store:
            raise HTTPException(404, "no such thing")
        return object_response(request, store[str(thing_id)])

    @app.put("/v1/things/{thing_id}")
    def update(request: Request, thing_id: uuid.UUID, body: Thing):
        if str(thing_id) not in store:
            raise HTTPException(404, "no such thing")
        store[str(thing_id)]["name"] = body.name
        return object_response(request, store[str(thing_id)])

    @app.delete("/v1/things/{thing_id}", status_code=204)
    def delete(thing_id: uuid.UUID):
        if str(thing_id) not in store:
            raise HTTPException(404, "no such thing")
        if delete_works:
            del store[str(thing_id)]
        return Response(status_code=204)

    openapi_doc.install(app)
    return app


def _walk(app, until, examples: int = 60) -> tuple[list[str], set]:
    """The state machine over `app`, run again (at most 3 times: its chains are drawn at random) until
    `until(calls, failures)`."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures, calls = [], []

    class Workflow(schema.as_state_machine()):
        def validate_response(self, response, case, additional_checks=None, **kwargs):
            calls.append((case.method, case.path, response.status_code))
            try:
                case.validate_response(
                    response, checks=CHECKS, transport_kwargs=kwargs or None, recorder=self.recorder
                )
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collected, reported at once
                failures.append(f"{case.method} {case.path} -> {response.status_code}: {exc}"[:300])

    for _ in range(3):
        Workflow.run(
            settings=settings(
                max_examples=examples,
                stateful_step_count=6,
                deadline=None,
                database=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
        )
        if until(set(calls), failures):
            break
    return failures, set(calls)


def test_a_new_crud_route_is_walked_with_no_change():
    item = "/v1/things/{thing_id}"
    # create -> read -> update -> delete through the links (random ids would be 404)
    crud = {("POST", "/v1/things", 201), ("GET", item, 200), ("PUT", item, 200), ("DELETE", item, 204)}
    failures, calls = _walk(_crud_app(), until=lambda calls, _: crud <= calls)
    assert not failures, failures[:5]
    assert crud <= calls, sorted(calls)


def test_a_delete_that_deletes_nothing_is_caught():
    """The same walk fails when DELETE answers 204 but the object is still there (use_after_free)."""
    failures, _ = _walk(_crud_app(delete_works=False), until=lambda _, failures: failures)
    assert any(
        f.startswith("GET /v1/things/{thing_id} -> 200") and "Deleted resource still available" in f
        for f in failures
    ), failures[:5]
