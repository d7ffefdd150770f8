"""Alert rules over the API (issue 20; the seed's alerts.routes): list, read, create, replace, delete,
toggle, the rule's instances, and a dry run (`test`) over the materialized kpi_snapshots.

The rules are the alert engine's own (analytics_pipelines/alerting: validation, evaluation by
alert_evaluation_job after every kpi_snapshots materialization); the routes only scope, validate the body
for a tenant (alerting/policy.py), write with an audit row in the same transaction, and answer.

Who may do what (docs/monitoring.md, "Alert rules"):
- reading (list, one rule, its instances, `test`): analytics.read; a venue token sees its venue's rules,
  an admin's (role admin or analytics.admin) every rule of its tenant;
- writing a venue's rule: analytics.write (the seed's permission) on that venue's token, or an admin;
- writing a tenant-wide rule (venue_id null: scope tenant, or scope venue over every venue): an admin.
Another tenant's rule -- and the platform's own seeded rules, which have no tenant -- answer 404 (their ids
must not leak); another venue's rule of the same tenant answers 403."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal
from uuid import UUID

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from analytics_pipelines import notify
from analytics_pipelines.alerting.policy import (
    FieldError,
    error_field,
    rule_type,
    type_condition,
    validate_api_rule,
)
from analytics_pipelines.alerting.preview import KPI_TABLE, dry_run
from analytics_pipelines.alerting.rules import RULE_TYPES, SEVERITIES, RuleError
from analytics_pipelines.api.auth import READ, WRITE, Principal, require
from analytics_pipelines.api.common import Auth, LimitQ, OffsetQ, VenueQ, json_response, jsonable, scoped
from analytics_pipelines.api.problems import ProblemError, problem_responses
from analytics_pipelines.api.writes import (
    audit,
    check_if_match,
    check_owner,
    list_response,
    object_response,
    ops_engine_of,
    paginate,
    row_dict,
)
from analytics_pipelines.ops.alerts import alert_instances, alert_rules
from analytics_pipelines.warehouse import open_warehouse

router = APIRouter(prefix="/v1", tags=["alerts"])
ENTITY = "alert_rule"
AlertId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The rule's id (a 32-bit integer)")]


# -- bodies ---------------------------------------------------------------------------------------------
class ActiveHours(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: str = Field(max_length=5, description="HH:MM, local time of the schedule's time zone")
    end: str = Field(max_length=5, description="HH:MM, exclusive; earlier than start wraps midnight")


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timezone: str | None = Field(None, max_length=64, description="IANA time zone (default UTC)")
    active_hours: ActiveHours | None = None
    active_days: list[int] | None = Field(None, max_length=7, description="0 = Sunday .. 6 = Saturday")
    excluded_dates: list[str] = Field(
        default_factory=list, max_length=366, description="YYYY-MM-DD, local dates"
    )


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str = Field(max_length=20, description="email or webhook (the only delivered actions)")
    to: list[Annotated[str, Field(max_length=254)]] | None = Field(
        None, max_length=50, description="email: the recipients"
    )
    url: str | None = Field(None, max_length=2000, description="webhook: https URL")


class RuleBody(BaseModel):
    """A rule as the client sends it (POST, and PUT, which replaces the whole rule)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, description="Unique within the tenant")
    description: str | None = Field(None, max_length=2000)
    metric: str = Field(max_length=100, description="A kpi_snapshots metric (422 lists them)")
    operator: str = Field(max_length=30, description="gt gte lt lte eq ne between not_between change_percent")
    threshold: float
    threshold_high: float | None = Field(None, description="between / not_between: the upper bound")
    aggregation: str = Field("last", max_length=10, description="last sum avg min max count")
    window_minutes: int = Field(60, ge=0, le=10**9, description="A multiple of 60 (hourly snapshots)")
    severity: str = Field("warning", max_length=10, description="info warning error critical")
    scope: Literal["tenant", "venue"] | None = Field(
        None, description="tenant: the tenant-wide rows; venue: per venue (default for venue tokens)"
    )
    venue_id: UUID | None = Field(None, description="scope venue: this venue only")
    schedule: Schedule = Field(default_factory=Schedule)
    actions: list[Action] = Field(max_length=10)
    cooldown_minutes: int = Field(60, ge=0, le=10**9)
    enabled: bool = True


class ToggleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool | None = Field(None, description="Set this state; omitted: flip the current one")


class TestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: AwareDatetime | None = Field(None, description="Evaluate as of this time (default: now)")


# -- helpers --------------------------------------------------------------------------------------------
def _public(row) -> dict:
    d = row_dict(row)
    d["type"] = rule_type(d)
    return d


def _audit_view(obj: dict | None) -> dict | None:
    """The rule for the audit trail: webhook URLs masked (their paths often carry tokens)."""
    if obj is None:
        return None
    actions = [
        {**a, "url": notify.mask_url(a["url"])} if a.get("url") else a for a in obj.get("actions") or []
    ]
    return {**obj, "actions": actions}


def _invalid(exc: RuleError) -> ProblemError:
    field = error_field(exc)
    extra = exc.extra if isinstance(exc, FieldError) else {}
    errors = [{"field": field, "in": "body", "msg": str(exc), "type": "value_error"}]
    return ProblemError(422, str(exc), errors=errors, **extra)


def _can_write(p: Principal) -> None:
    if not p.is_admin:
        require(p, WRITE)


def _placement(p: Principal, body: RuleBody) -> dict:
    """scope and venue_id of the rule a token may write: a venue token only its own venue's."""
    venue = str(body.venue_id) if body.venue_id else None
    scope = body.scope or ("venue" if venue or not p.is_admin else "tenant")
    if p.is_admin:
        return {"scope": scope, "venue_id": venue}
    require(p, WRITE)
    if not p.venue_id:
        raise HTTPException(403, "Forbidden: the token names no venue and is not an admin's")
    if scope != "venue" or (venue and venue != p.venue_id):
        raise HTTPException(
            403, "Forbidden: a venue token manages only its own venue's rules (tenant-wide: analytics.admin)"
        )
    return {"scope": "venue", "venue_id": p.venue_id}


def _validated(request: Request, p: Principal, body: RuleBody) -> dict:
    data = body.model_dump(mode="json", exclude={"scope", "venue_id"}) | _placement(p, body)
    try:
        return validate_api_rule(
            data, tenant_id=p.tenant_id, development=request.app.state.settings.development
        )
    except RuleError as exc:
        raise _invalid(exc) from None


def _name_conflict(engine: sa.Engine, p: Principal, name: str) -> ProblemError:
    with engine.connect() as conn:
        mine = conn.execute(
            sa.select(alert_rules.c.id).where(
                alert_rules.c.tenant_id == p.tenant_id, alert_rules.c.name == name
            )
        ).first()
    if mine is not None:
        detail = f"name: an alert rule named {name!r} already exists in your tenant (id {mine.id})"
    else:  # a database from before per-tenant names: someone else's rule; say nothing about it
        detail = f"name: {name!r} cannot be used; choose another name"
    return ProblemError(409, detail, errors=[{"field": "name", "in": "body", "msg": detail}])


def _locked(conn: sa.Connection, p: Principal, alert_id: int):
    """The rule inside a write transaction, locked against a concurrent write first (a no-op UPDATE takes
    PostgreSQL's row lock and SQLite's write lock), then checked: 404 other tenant, 403 other venue."""
    conn.execute(
        alert_rules.update()
        .where(alert_rules.c.id == alert_id)
        .values(trigger_count=alert_rules.c.trigger_count)
    )
    row = conn.execute(sa.select(alert_rules).where(alert_rules.c.id == alert_id)).first()
    check_owner(p, row, "alert rule")
    return row


def _read(request: Request, p: Principal, alert_id: int):
    require(p, READ)
    with ops_engine_of(request).connect() as conn:
        row = conn.execute(sa.select(alert_rules).where(alert_rules.c.id == alert_id)).first()
    check_owner(p, row, "alert rule")
    return row


def _audit(conn, p: Principal, action: str, before: dict | None, after: dict | None) -> None:
    audit(conn, p, ENTITY, action, _audit_view(before), _audit_view(after))


def _fetch(conn, alert_id: int) -> dict:
    return _public(conn.execute(sa.select(alert_rules).where(alert_rules.c.id == alert_id)).first())


# -- routes ---------------------------------------------------------------------------------------------
@router.get("/alerts", responses=problem_responses(401, 403, 422))
def list_alerts(
    request: Request,
    p: Auth,
    venue_id: VenueQ = None,
    enabled: Annotated[bool | None, Query(description="Only enabled (true) or disabled rules")] = None,
    severity: Annotated[Literal.__getitem__(SEVERITIES) | None, Query()] = None,  # type: ignore[valid-type]
    kind: Annotated[
        Literal.__getitem__(RULE_TYPES) | None,  # type: ignore[valid-type]
        Query(alias="type", description="threshold | trend (change_percent) | anomaly"),
    ] = None,
    metric: Annotated[str | None, Query(max_length=100, pattern=r"^[a-z0-9_:]+$")] = None,
    limit: LimitQ = 100,
    offset: OffsetQ = 0,
):
    """The alert rules of the token's venue (admins: of the tenant, or of one venue), by id."""
    require(p, READ)
    venues = scoped(p, venue_id)
    t = alert_rules
    q = sa.select(t).where(t.c.tenant_id == p.tenant_id)
    if venues:
        q = q.where(t.c.venue_id == venues[0])
    if enabled is not None:
        q = q.where(t.c.enabled.is_(enabled))
    if severity:
        q = q.where(t.c.severity == severity)
    if kind:
        q = q.where(type_condition(t, kind))
    if metric:
        q = q.where(t.c.metric == metric)
    with ops_engine_of(request).connect() as conn:
        rows, total = paginate(conn, q.order_by(t.c.id), limit, offset)
    for r in rows:
        r["type"] = rule_type(r)
    return list_response(request, rows, limit, offset, total)


@router.post("/alerts", status_code=201, responses=problem_responses(401, 403, 409, 413, 422))
def create_alert(request: Request, p: Auth, body: RuleBody):
    """Create a rule (201, ETag, Location). Venue tokens need analytics.write and create rules on their
    venue; tenant-wide rules need an admin."""
    row = _validated(request, p, body)
    now = datetime.now(UTC)
    engine = ops_engine_of(request)
    try:
        with engine.begin() as conn:
            new_id = conn.execute(
                alert_rules.insert()
                .values(**row, created_by=p.user_id, created_at=now, updated_at=now)
                .returning(alert_rules.c.id)
            ).scalar_one()
            after = _fetch(conn, new_id)
            _audit(conn, p, "create", None, after)
    except sa.exc.IntegrityError:
        raise _name_conflict(engine, p, row["name"]) from None
    return object_response(request, after, 201, location=f"/v1/alerts/{new_id}")


@router.get("/alerts/{alert_id}", responses=problem_responses(401, 403, 404))
def get_alert(request: Request, p: Auth, alert_id: AlertId):
    """One rule, with its ETag (send it as If-Match on PUT, DELETE and toggle)."""
    return object_response(request, _public(_read(request, p, alert_id)))


@router.put("/alerts/{alert_id}", responses=problem_responses(401, 403, 404, 409, 412, 413, 422))
def replace_alert(request: Request, p: Auth, alert_id: AlertId, body: RuleBody):
    """Replace the rule's definition (the whole body, as POST; counters and history are kept).
    412 when If-Match names an older version."""
    _can_write(p)
    row = _validated(request, p, body)
    engine = ops_engine_of(request)
    try:
        with engine.begin() as conn:
            before = _public(_locked(conn, p, alert_id))
            check_if_match(request, before)
            conn.execute(
                alert_rules.update()
                .where(alert_rules.c.id == alert_id)
                .values(**row, updated_at=datetime.now(UTC))
            )
            after = _fetch(conn, alert_id)
            _audit(conn, p, "update", before, after)
    except sa.exc.IntegrityError:
        raise _name_conflict(engine, p, row["name"]) from None
    return object_response(request, after)


@router.delete(
    "/alerts/{alert_id}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(401, 403, 404, 412),
)
def delete_alert(request: Request, p: Auth, alert_id: AlertId):
    """Delete the rule with its instances and their notification records (the audit row keeps the
    rule's last definition). 412 when If-Match names an older version."""
    _can_write(p)
    with ops_engine_of(request).begin() as conn:
        before = _public(_locked(conn, p, alert_id))
        check_if_match(request, before)
        conn.execute(alert_instances.delete().where(alert_instances.c.rule_id == alert_id))
        conn.execute(alert_rules.delete().where(alert_rules.c.id == alert_id))
        _audit(conn, p, "delete", before, None)
    return Response(status_code=204)


@router.post("/alerts/{alert_id}/toggle", responses=problem_responses(401, 403, 404, 412, 422))
def toggle_alert(request: Request, p: Auth, alert_id: AlertId, body: ToggleBody | None = None):
    """Enable or disable the rule (flip, or the state the body names). A disabled rule is not evaluated;
    its open instances stay as they are. 412 when If-Match names an older version."""
    _can_write(p)
    with ops_engine_of(request).begin() as conn:
        before = _public(_locked(conn, p, alert_id))
        check_if_match(request, before)
        target = (not before["enabled"]) if body is None or body.enabled is None else body.enabled
        conn.execute(
            alert_rules.update()
            .where(alert_rules.c.id == alert_id)
            .values(enabled=target, updated_at=datetime.now(UTC))
        )
        after = _fetch(conn, alert_id)
        _audit(conn, p, "toggle", before, after)
    return object_response(request, after)


@router.get("/alerts/{alert_id}/instances", responses=problem_responses(401, 403, 404, 422))
def rule_instances(
    request: Request,
    p: Auth,
    alert_id: AlertId,
    status: Annotated[
        Literal["active", "acknowledged", "resolved"] | None,
        Query(description="Only instances in this status"),
    ] = None,
    limit: LimitQ = 100,
    offset: OffsetQ = 0,
):
    """The rule's instances (its alert history), newest first."""
    _read(request, p, alert_id)
    t = alert_instances
    q = sa.select(t).where(t.c.rule_id == alert_id, t.c.tenant_id == p.tenant_id)
    if status:
        q = q.where(t.c.status == status)
    with ops_engine_of(request).connect() as conn:
        rows, total = paginate(conn, q.order_by(t.c.triggered_at.desc(), t.c.id.desc()), limit, offset)
    return list_response(request, rows, limit, offset, total)


@router.post("/alerts/{alert_id}/test", responses=problem_responses(401, 403, 404, 422, 503))
def test_alert(request: Request, p: Auth, alert_id: AlertId, body: TestBody | None = None):
    """Evaluate the rule now (or `at`) against the materialized kpi_snapshots, as alert_evaluation_job
    would, sending nothing and creating no instance: per scope the window's aggregate, the compared value,
    the threshold(s), whether the condition holds and whether a new instance would open (`would_fire`:
    not already open, not in cooldown, rule enabled); the window and whether the schedule is active."""
    row = _read(request, p, alert_id)
    at = body.at if body and body.at else datetime.now(UTC)
    wh = open_warehouse(request.app.state.settings.warehouse_url)
    if KPI_TABLE not in wh.tables():
        raise ProblemError(
            503,
            "kpi_snapshots is not materialized yet",
            type="not-materialized",
            headers={"Retry-After": "300"},
            table=KPI_TABLE,
        )
    try:
        result = dry_run(ops_engine_of(request), wh, dict(row._mapping), at)
    except RuleError as exc:  # a stored row edited by hand into nonsense: the evaluator skips it too
        raise HTTPException(409, f"the stored rule is invalid and is not evaluated: {exc}") from None
    return json_response(request, {"data": jsonable(result)}, cache=False)
