"""Local Dagster instance storage tuned for single-run backfills.

A single run over N daily partitions records one materialization event per partition and asset (a
`make run` over two years writes ~20,000 events). Dagster's SQLite event log uses WAL but opens, commits
and closes a connection per event with SQLite's default synchronous=FULL, so every event pays fsyncs:
~100 ms per partition here, i.e. most of a `make run` spent on bookkeeping. This storage
- sets synchronous=NORMAL on its connections (SQLite's recommended setting with WAL: a crash cannot
  corrupt the database, at worst the last events before a power loss are lost), and
- keeps one idle connection per shard open, so closing the per-event connection does not checkpoint
  the WAL every time.
It is the local default only; the PostgreSQL instance (deploy/dagster-postgres) is unaffected.

Why it is still needed (measured 2026-12-06, dagster 1.13.27, the 2-core box shared with other jobs, load
average 4-6): `analytics-pipelines run --from 2025-11-01 --to 2026-11-30` (main_job, 395 daily
partitions, `small` data generated with seed 42, DAGSTER_EVENT_BATCH_SIZE=1000, each run on a fresh
TT_DATA_DIR and Dagster storage) took, as the CLI's "succeeded in" (process wall in brackets):
- with this storage: 115.1 s (129 s) and 110.4 s (122 s); a third run, at load average 10 while tests ran
  beside it, 308.8 s (358 s);
- with Dagster's SqliteEventLogStorage (a copy of dagster.yaml with only event_log_storage changed):
  877.9 s (894 s) and 841.4 s (852 s). Storing the run's ASSET_MATERIALIZATION_PLANNED events alone took
  6.5 minutes with it (3 s with this storage), before the first step started.
Both event logs hold the same 23,138 events. Removing it costs ~12 minutes (7x) per full local backfill.
The supported way to the same speed without private API is the PostgreSQL instance.
Private API: PRIVATE_API below lists every private member used; tests/test_instance.py pins the Dagster
version and those signatures (it fails on an upgrade and says what to re-check) and compares what this
storage and the stock one read back after the same single-run backfill.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

# Private Dagster API (dagster._core): the storage below subclasses a private class and calls private members.
# tests/test_instance.py pins the version and the signatures below and fails on an upgrade.
from dagster._core.events import ASSET_EVENTS
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from sqlalchemy import event
from sqlalchemy.engine import Engine

#: the Dagster release this storage was written and checked against (pyproject pins it)
DAGSTER_VERSION = "1.13.27"

#: the private members it relies on: (owner, name) -> parameter names. Re-check each one's body on an
#: upgrade: store_event_batch must write exactly the rows SqlEventLogStorage.store_event writes per event.
PRIVATE_API = {
    ("SqliteEventLogStorage", "_connect"): ("self", "shard"),
    ("SqliteEventLogStorage", "conn_string_for_shard"): ("self", "shard_name"),
    ("SqliteEventLogStorage", "run_connection"): ("self", "run_id"),
    ("SqliteEventLogStorage", "store_event"): ("self", "event"),
    ("SqliteEventLogStorage", "from_config_value"): ("cls", "inst_data", "config_value"),
    ("SqliteEventLogStorage", "__init__"): ("self", "base_dir", "inst_data"),
    ("SqlEventLogStorage", "index_transaction"): ("self",),
    ("SqlEventLogStorage", "_event_to_row"): ("self", "event"),
    ("SqlEventLogStorage", "_store_asset_event_tags"): ("self", "conn", "events", "event_ids"),
    ("SqlEventLogStorage", "_store_asset_event"): ("self", "conn", "event", "event_id"),
    ("EventLogStorage", "store_event_batch"): ("self", "events"),
}


class FastSqliteEventLogStorage(SqliteEventLogStorage):
    """SqliteEventLogStorage with synchronous=NORMAL and a kept-open connection per shard."""

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(inst_data=inst_data, **config_value)

    def store_event_batch(self, events) -> None:
        """Write a batch of asset events (Dagster batches the per-partition planned and materialization
        events of a single-run backfill when DAGSTER_EVENT_BATCH_SIZE > 0) in one transaction per shard.

        The rows are those store_event writes one by one: every event in the run shard and the index
        shard, every event's tags; the per-asset summary row (asset_keys), which each event would
        overwrite in turn, is written once per asset and event type from the last such event."""
        asset_events = [e for e in events if e.is_dagster_event and e.dagster_event_type in ASSET_EVENTS]
        if len(asset_events) != len(events) or len({e.run_id for e in events}) != 1:
            for e in events:
                self.store_event(e)
            return
        rows = [self._event_to_row(e) for e in events]
        with self.run_connection(events[0].run_id) as conn:
            conn.execute(SqlEventLogStorageTable.insert(), rows)
        with self.index_transaction() as conn:
            result = conn.execute(
                SqlEventLogStorageTable.insert().returning(
                    SqlEventLogStorageTable.c.id, sort_by_parameter_order=True
                ),
                rows,
            )
            ids = [r[0] for r in result]
            self._store_asset_event_tags(conn, events, ids)
            last: dict[tuple, int] = {}
            for i, e in enumerate(events):
                last[(e.dagster_event.asset_key, e.dagster_event_type)] = i
            for i in sorted(last.values()):
                self._store_asset_event(conn, events[i], ids[i])

    @contextmanager
    def _connect(self, shard: str) -> Iterator:
        with _normal_sync():
            with super()._connect(shard) as conn:
                yield conn
        self._keep_open(shard)

    def _keep_open(self, shard: str) -> None:
        keep = self.__dict__.setdefault("_keepalive", {})
        if shard not in keep:
            keep[shard] = sqlite3.connect(
                self.conn_string_for_shard(shard).removeprefix("sqlite:///"), check_same_thread=False
            )


_ACTIVE = {"on": 0}


@contextmanager
def _normal_sync() -> Iterator[None]:
    _ACTIVE["on"] += 1
    try:
        yield
    finally:
        _ACTIVE["on"] -= 1


@event.listens_for(Engine, "connect")
def _set_synchronous(dbapi_connection, _record) -> None:
    # PRAGMA synchronous must be set outside a transaction, i.e. when the connection opens
    if _ACTIVE["on"] and isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def storage_env(storage_dir: str) -> dict[str, str]:
    """The environment dagster.yaml reads: one storage root, laid out like Dagster's default."""
    return {
        "TT_DAGSTER_STORAGE": storage_dir,
        "TT_DAGSTER_STORAGE_HISTORY": f"{storage_dir}/history",
        "TT_DAGSTER_STORAGE_EVENTS": f"{storage_dir}/history/runs",
        "TT_DAGSTER_STORAGE_SCHEDULES": f"{storage_dir}/schedules",
    }
