"""Operational tables of alerting: rules, their instances and every notification attempt.

At most one open (active or acknowledged) instance per rule and scope is enforced by a partial unique
index, so "an acknowledged alert fires again every minute" cannot happen even if two evaluators race."""

from __future__ import annotations

import sqlalchemy as sa

from analytics_pipelines.ops.db import metadata, migration

alert_rules = sa.Table(
    "alert_rules",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(36)),  # null: every tenant
    sa.Column("venue_id", sa.String(36)),  # null: tenant-wide (or per venue, see scope)
    sa.Column("name", sa.String(200), nullable=False),  # unique per tenant (indexes below)
    sa.Column("description", sa.Text),
    sa.Column("metric", sa.String(100), nullable=False),  # a kpi_snapshots metric
    sa.Column("scope", sa.String(20), nullable=False, server_default="tenant"),  # tenant | venue
    sa.Column(
        "aggregation", sa.String(10), nullable=False, server_default="last"
    ),  # last|sum|avg|min|max|count
    sa.Column("window_minutes", sa.Integer, nullable=False, server_default="60"),
    sa.Column(
        "operator", sa.String(20), nullable=False
    ),  # gt gte lt lte eq ne between not_between change_percent
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("threshold_high", sa.Float),  # upper bound for between / not_between
    sa.Column(
        "severity", sa.String(10), nullable=False, server_default="warning"
    ),  # info warning error critical
    sa.Column(
        "schedule", sa.JSON, nullable=False, default=dict
    ),  # timezone, active_hours, active_days, excluded_dates
    sa.Column("actions", sa.JSON, nullable=False, default=list),  # [{"type": "email"|"webhook"|"log", ...}]
    sa.Column("cooldown_minutes", sa.Integer, nullable=False, server_default="60"),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_by", sa.String(100)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("last_triggered_at", sa.DateTime(timezone=True)),
    sa.Column("trigger_count", sa.Integer, nullable=False, server_default="0"),
    # names are unique within a tenant, and among the platform's own rules (tenant_id null: the seeded
    # defaults, whose seeders rely on it under concurrency). Databases created before this had a global
    # UNIQUE(name): relax_rule_names (run with the ops store's creation) replaces it with these.
    sa.Index("alert_rules_tenant_name", "tenant_id", "name", unique=True),
    sa.Index(
        "alert_rules_platform_name",
        "name",
        unique=True,
        sqlite_where=sa.text("tenant_id IS NULL"),
        postgresql_where=sa.text("tenant_id IS NULL"),
    ),
)

alert_instances = sa.Table(
    "alert_instances",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rule_id", sa.Integer, sa.ForeignKey("alert_rules.id", ondelete="CASCADE"), nullable=False),
    sa.Column("tenant_id", sa.String(36)),
    sa.Column("venue_id", sa.String(36)),
    sa.Column("scope_key", sa.String(80), nullable=False),  # "tenant:<id>" or "venue:<id>"
    sa.Column("status", sa.String(15), nullable=False),  # active | acknowledged | resolved
    sa.Column("severity", sa.String(10), nullable=False),
    sa.Column("triggered_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("trigger_value", sa.Float),
    sa.Column("message", sa.Text),
    sa.Column("acknowledged_by", sa.String(100)),
    sa.Column("acknowledged_at", sa.DateTime(timezone=True)),
    sa.Column("notes", sa.Text),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    sa.Column("last_evaluated_at", sa.DateTime(timezone=True)),
    sa.Index(
        "alert_instances_one_open",
        "rule_id",
        "scope_key",
        unique=True,
        sqlite_where=sa.text("status IN ('active', 'acknowledged')"),
        postgresql_where=sa.text("status IN ('active', 'acknowledged')"),
    ),
)

alert_notifications = sa.Table(
    "alert_notifications",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "instance_id", sa.Integer, sa.ForeignKey("alert_instances.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("channel", sa.String(20), nullable=False),  # email | webhook | log
    sa.Column("target_masked", sa.String(300)),
    sa.Column("status", sa.String(10), nullable=False),  # sent | failed
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)


@migration
def relax_rule_names(engine: sa.Engine) -> bool:
    """Migrate an ops store created when rule names were unique platform-wide (UNIQUE(name) on the column)
    to names unique per tenant (the two indexes above); True when it did. Rows, ids and the instances that
    reference them are kept. PostgreSQL drops the constraint and creates the indexes; SQLite cannot drop a
    column constraint, so the table is rebuilt the way SQLite documents (foreign keys off, new table, copy,
    drop, rename, foreign_key_check, in one transaction). Idempotent; under the caller's DDL lock on
    PostgreSQL."""
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        if "alert_rules" not in inspector.get_table_names():
            return False
        old = [u for u in inspector.get_unique_constraints("alert_rules") if u["column_names"] == ["name"]]
        columns = [c["name"] for c in inspector.get_columns("alert_rules")]
    if not old:
        return False
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('tt_ops_ddl'))"))
            for u in old:
                name = conn.dialect.identifier_preparer.quote(u["name"])
                conn.execute(sa.text(f"ALTER TABLE alert_rules DROP CONSTRAINT IF EXISTS {name}"))
            for index in alert_rules.indexes:
                index.create(conn, checkfirst=True)
        return True
    keep = ", ".join(f'"{c}"' for c in columns if c in alert_rules.c)
    new = alert_rules.to_metadata(sa.MetaData(), name="alert_rules__new")
    ddl = [str(sa.schema.CreateTable(new).compile(dialect=engine.dialect))]
    ddl += [str(sa.schema.CreateIndex(i).compile(dialect=engine.dialect)) for i in new.indexes]
    raw = engine.raw_connection()  # pysqlite would commit DDL on its own: BEGIN and COMMIT by hand
    db = raw.driver_connection
    isolation, db.isolation_level = db.isolation_level, None
    cur = db.cursor()
    try:
        cur.execute("PRAGMA foreign_keys=OFF")  # a no-op inside a transaction: before it
        cur.execute("BEGIN IMMEDIATE")
        try:
            if not _sqlite_unique_name(cur):  # another process migrated it since we looked
                cur.execute("COMMIT")
                return False
            for statement in ddl:
                cur.execute(statement)
            cur.execute(f"INSERT INTO alert_rules__new ({keep}) SELECT {keep} FROM alert_rules")
            cur.execute("DROP TABLE alert_rules")
            cur.execute("ALTER TABLE alert_rules__new RENAME TO alert_rules")
            broken = cur.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"alert_rules rebuild would break foreign keys: {broken[:5]}")
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
    finally:
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()
        db.isolation_level = isolation
        raw.close()
    return True


def _sqlite_unique_name(cur) -> bool:
    """Whether alert_rules still has the UNIQUE(name) constraint (SQLite's index of origin 'u' on name)."""
    for _seq, index, _unique, origin, *_ in cur.execute("PRAGMA index_list('alert_rules')").fetchall():
        cols = [r[2] for r in cur.execute(f"PRAGMA index_info('{index}')").fetchall()]
        if origin == "u" and cols == ["name"]:
            return True
    return False
