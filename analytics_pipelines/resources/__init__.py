"""Dagster resources: the platform source and the warehouse, each chosen by one URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from analytics_pipelines.settings import Settings
from analytics_pipelines.source.db import SourceDB
from analytics_pipelines.warehouse import Warehouse, open_warehouse


def default_source_url() -> str:
    return Settings.from_env().source_url


def default_warehouse_url() -> str:
    return Settings.from_env().warehouse_url


class SourceResource(dg.ConfigurableResource):
    """The TicketToken platform database: PostgreSQL (the real platform or a copy) or the embedded
    DuckDB source that `analytics-pipelines generate` writes. Empty url: TT_SOURCE_URL or the embedded one."""

    url: str = ""

    def db(self) -> SourceDB:
        return SourceDB(self.url or default_source_url())

    @contextmanager
    def yield_for_execution(self, context) -> Iterator[SourceResource]:
        """An embedded source is held open while the resource is (SourceDB.held): for the whole run when
        the steps run in one process (`analytics-pipelines run`, `make run`), for the step otherwise; every
        extract then reuses the loaded database instead of reading its catalog again (~20 ms an open and
        close at `large`, 47 in a day's main_job). PostgreSQL: nothing held."""
        with self.db().held():
            yield self


class WarehouseResource(dg.ConfigurableResource):
    """Where every layer is written: embedded DuckDB over Parquet (default) or PostgreSQL schema
    `analytics`. Empty url: TT_WAREHOUSE_URL or the embedded one under the data directory."""

    url: str = ""

    def get(self) -> Warehouse:
        return open_warehouse(self.url or default_warehouse_url())


class OpsResource(dg.ConfigurableResource):
    """The operational database (alert rules and instances, export requests, subscriptions, delivery ledger):
    SQLite under the data directory by default, PostgreSQL (schema `ops`) when TT_OPS_URL or `url` says so."""

    url: str = ""

    def engine(self):
        from analytics_pipelines.ops.db import ops_engine

        return ops_engine(self.url or None)


class InfluxResource(dg.ConfigurableResource):
    """Where the time series are published (influxdb-client's 2.x write API): empty values come from
    TT_INFLUX_URL / _ORG / _BUCKET / _TOKEN / _PRECISION / _BATCH_SIZE / _MAX_RETRIES (settings.py); no URL at
    all: not configured, the publication assets publish nothing and say so."""

    url: str = ""
    org: str = ""
    bucket: str = ""
    token: str = ""
    precision: str = ""
    batch_size: int = 0
    max_retries: int = -1

    def settings(self):
        import dataclasses

        base = Settings.from_env().influx
        given = {
            "url": self.url.rstrip("/") or None,
            "org": self.org,
            "bucket": self.bucket,
            "token": self.token,
            "precision": self.precision,
            "batch_size": self.batch_size or None,
            "max_retries": None if self.max_retries < 0 else self.max_retries,
        }
        return dataclasses.replace(base, **{k: v for k, v in given.items() if v not in (None, "")})
