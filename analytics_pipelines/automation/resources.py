"""The operational database as a Dagster resource (alert rules/instances, exports)."""

import dagster as dg
import sqlalchemy as sa

from analytics_pipelines.ops.db import ops_engine


class OpsResource(dg.ConfigurableResource):
    """Row-updated operational state: SQLite under the data directory by default, PostgreSQL (schema
    `ops`) when TT_OPS_URL or `url` says so."""

    url: str = ""

    def engine(self) -> sa.Engine:
        return ops_engine(self.url or None)
