"""Row-level security for the API on a PostgreSQL warehouse.

`enable_tenant_rls` makes every mart of `analytics` that has a tenant_id column readable by the NOLOGIN
role `tt_api_reader` only through the policy `tenant_id = current_setting('app.tenant_id', true)`. The API
connects as its own login user, then per transaction `SET LOCAL ROLE tt_api_reader` (a superuser or the
table owner would bypass RLS) and `set_config('app.tenant_id', <token's tenant>, true)`: a query that
forgets its tenant filter still sees only that tenant's rows, and one without the setting sees none.

The writer (the Dagster run, the tables' owner) is unaffected: the policy applies to `tt_api_reader` only
and RLS is not FORCEd. Idempotent; run at API start and whenever a new mart appears. Also adds a
(tenant_id, venue_id) index where both columns exist, since every API query filters on them, and an index
on each customer column (user_id, buyer_id, seller_id): the customer routes look one customer up."""

from __future__ import annotations

import psycopg
from psycopg import sql as psql

from analytics_pipelines.source.db import normalize_pg_url
from analytics_pipelines.warehouse.base import check_identifier
from analytics_pipelines.warehouse.postgres import SCHEMA

POLICY = "tt_tenant_isolation"


def enable_tenant_rls(
    url: str,
    schema: str = SCHEMA,
    role: str = "tt_api_reader",
    tables: list[str] | None = None,
    shared: tuple[str, ...] = (),
) -> list[str]:
    """Enable tenant RLS on `tables` (default: every table of `schema` with a tenant_id column) and grant
    SELECT on them to `role` (created NOLOGIN if absent). `shared`: served tables that hold no tenant's data
    (no tenant_id column: model metrics, which the API gives to analytics.admin only) are granted SELECT
    without a policy. Returns the protected and granted tables."""
    check_identifier(schema)
    check_identifier(role)
    ident = psql.Identifier
    with psycopg.connect(normalize_pg_url(url), autocommit=False) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('tt_api_rls'))")
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            try:  # roles are cluster-wide: another database's setup may create it at the same moment
                with conn.transaction():
                    conn.execute(psql.SQL("CREATE ROLE {} NOLOGIN").format(ident(role)))
            except (psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
                pass
        # the login user must be able to SET ROLE to it (a superuser can anyway)
        me = conn.execute(
            "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        if not me[1]:
            conn.execute(psql.SQL("GRANT {} TO {}").format(ident(role), ident(me[0])))
        if not conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone():
            conn.commit()
            return []
        conn.execute(psql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(ident(schema), ident(role)))
        rows = conn.execute(
            "SELECT table_name, array_agg(column_name::text) FROM information_schema.columns "
            "WHERE table_schema = %s GROUP BY table_name",
            (schema,),
        ).fetchall()
        cols = {t: set(c) for t, c in rows}
        chosen = [
            t for t in (tables if tables is not None else sorted(cols)) if "tenant_id" in cols.get(t, ())
        ]
        for t in chosen:
            qt = ident(schema, check_identifier(t))
            conn.execute(psql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(qt))
            conn.execute(psql.SQL("DROP POLICY IF EXISTS {} ON {}").format(ident(POLICY), qt))
            conn.execute(
                psql.SQL(
                    "CREATE POLICY {} ON {} FOR SELECT TO {} "
                    "USING (tenant_id::text = current_setting('app.tenant_id', true))"
                ).format(ident(POLICY), qt, ident(role))
            )
            conn.execute(psql.SQL("GRANT SELECT ON {} TO {}").format(qt, ident(role)))
            if "venue_id" in cols[t]:
                conn.execute(
                    psql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (tenant_id, venue_id)").format(
                        ident(f"{t}_tenant_venue_idx"), qt
                    )
                )
            for c in ("user_id", "buyer_id", "seller_id"):  # the customer routes look one customer up
                if c in cols[t]:
                    conn.execute(
                        psql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
                            ident(f"{t}_{c}_idx"), qt, ident(c)
                        )
                    )
        granted = [t for t in shared if t in cols and "tenant_id" not in cols[t]]
        for t in granted:
            conn.execute(
                psql.SQL("GRANT SELECT ON {} TO {}").format(ident(schema, check_identifier(t)), ident(role))
            )
        conn.commit()
    return chosen + granted
