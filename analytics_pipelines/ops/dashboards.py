"""Operational tables of dashboards (issue 21): a venue's dashboards, who they are shared with, and their
widgets. A widget's `query` is a query-layer request (analytics_pipelines/query/model.py) stored as JSON and
compiled for the reading token every time its data is asked for; nothing here holds mart data.

Names and titles are user text stored as bound parameters (never spliced into SQL); a dashboard's name is
limited to 100 characters of [a-zA-Z0-9 _-] by the API (analytics_pipelines/dashboards/model.py)."""

from __future__ import annotations

import sqlalchemy as sa

from analytics_pipelines.ops.db import metadata

dashboards = sa.Table(
    "dashboards",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(36), nullable=False),
    sa.Column("venue_id", sa.String(36), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("layout", sa.JSON, nullable=False, default=dict),  # {"columns": 12, ...}: the client's grid
    sa.Column("is_default", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("dashboards_venue", "tenant_id", "venue_id"),
    # at most one default dashboard per venue (two first GET /v1/dashboard racing build it once)
    sa.Index(
        "dashboards_one_default",
        "tenant_id",
        "venue_id",
        unique=True,
        sqlite_where=sa.text("is_default"),
        postgresql_where=sa.text("is_default"),
    ),
)

dashboard_shares = sa.Table(
    "dashboard_shares",
    metadata,
    sa.Column(
        "dashboard_id", sa.Integer, sa.ForeignKey("dashboards.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("subject", sa.String(100), primary_key=True),  # a token's subject (user id)
    sa.Column("access", sa.String(4), nullable=False),  # view | edit
    sa.Column("granted_by", sa.String(100)),
    sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("dashboard_shares_subject", "subject"),
)

widgets = sa.Table(
    "widgets",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dashboard_id", sa.Integer, sa.ForeignKey("dashboards.id", ondelete="CASCADE"), nullable=False),
    sa.Column("tenant_id", sa.String(36), nullable=False),  # the dashboard's (denormalized for scoping)
    sa.Column("venue_id", sa.String(36), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("type", sa.String(10), nullable=False),  # number | line | bar | table | pie
    sa.Column("query", sa.JSON, nullable=False),  # a query-layer request
    sa.Column("x", sa.Integer, nullable=False, server_default="0"),
    sa.Column("y", sa.Integer, nullable=False, server_default="0"),
    sa.Column("width", sa.Integer, nullable=False, server_default="6"),  # 1-12 grid columns
    sa.Column("height", sa.Integer, nullable=False, server_default="4"),  # 1-12 grid rows
    sa.Column("options", sa.JSON, nullable=False, default=dict),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("widgets_dashboard", "dashboard_id"),
)
