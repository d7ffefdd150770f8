"""Local Dagster instance storage tuned for single-run backfills.

A single run over N daily partitions records one materialization event per partition and asset (a
`make run` over two years writes ~20,000 events). Dagster's SQLite event log uses WAL but opens, commits
and closes a connection per event with SQLite's default synchronous=FULL, so every event pays fsyncs:
~100 ms per partition here, i.e. most of a `make run` spent on bookkeeping. This storage
- sets synchronous=NORMAL on its connections (SQLite's recommended setting with WAL: a crash cannot
  corrupt the database, at worst the last events before a power loss are lost), and
- keeps a pooled engine per shard (Dagster's creates an engine, opens a connection, compiles the
  statements anew and closes it, checkpointing the WAL, for every event), touching the run's database
  file after each write so that its watchers (the UI's live run log) still wake.
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
The pooled engines (2026-12-07): one new day of main_job at `large` (~650 events, most not batched: step
events, check evaluations), the same data dir, runs alternated on an idle machine: 53.0 and 51.6 s with the
engine per event, 47.2, 44.9 and 48.2 s pooled; profiled at `small`, storing the run's events went from 10.3 to
5.4 s.
The supported way to the same speed without private API is the PostgreSQL instance.
Private API: PRIVATE_API below lists every private member used; tests/test_instance.py pins the Dagster
version and those signatures (it fails on an upgrade and says what to re-check) and compares what this
storage and the stock one read back after the same single-run backfill.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager, suppress

# Private Dagster API (dagster._core): the storage below subclasses a private class and calls private members.
# tests/test_instance.py pins the version and the signatures below and fails on an upgrade.
from dagster._core.events import ASSET_EVENTS
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import QueuePool

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
    ("SqliteEventLogStorage", "_initdb"): ("self", "engine", "for_index_shard"),
    ("SqliteEventLogStorage", "path_for_shard"): ("self", "run_id"),
    ("SqliteEventLogStorage", "wipe"): ("self",),
    ("SqliteEventLogStorage", "dispose"): ("self",),
    ("SqlEventLogStorage", "index_transaction"): ("self",),
    ("SqlEventLogStorage", "_event_to_row"): ("self", "event"),
    ("SqlEventLogStorage", "_store_asset_event_tags"): ("self", "conn", "events", "event_ids"),
    ("SqlEventLogStorage", "_store_asset_event"): ("self", "conn", "event", "event_id"),
    ("EventLogStorage", "store_event_batch"): ("self", "events"),
}


#: the private attributes of a SqliteEventLogStorage it uses (set in __init__): the lock Dagster holds around
#: every connection, and the shards whose database was initialized
PRIVATE_ATTRIBUTES = ("_db_lock", "_initialized_dbs")
#: run shards' engines kept per process beside the index shard's (a run worker writes to one)
KEEP_RUN_ENGINES = 4
#: engines of a parent process, in a forked child: never used or closed there (SQLite: a connection must not
#: cross a fork; closing it could checkpoint the parent's database)
_FORKED: list = []


class FastSqliteEventLogStorage(SqliteEventLogStorage):
    """SqliteEventLogStorage with synchronous=NORMAL and a pooled engine per shard."""

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
        """A connection in a transaction, as Dagster's, from a pooled engine per shard and process."""
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn:
                sqlite = conn.connection.dbapi_connection
                changes = sqlite.total_changes
                with conn.begin():
                    yield conn
            if shard != INDEX_SHARD_NAME and sqlite.total_changes != changes:
                # a run's watchers (the UI's live log: Dagster's watchdog on <run>.db) wake on a change to the
                # file; with kept-open connections a commit only writes <run>.db-wal. Only after a write: a
                # watcher reads through this storage, and touching on reads would wake it again, forever.
                with suppress(FileNotFoundError):
                    os.utime(self.path_for_shard(shard))

    def _own_engines(self) -> OrderedDict:
        """This process's engines (shard -> engine); in a forked child the parent's go to _FORKED first."""
        if self.__dict__.get("_engines_pid") != os.getpid():
            _FORKED.extend(self.__dict__.get("_engines", {}).values())
            self.__dict__["_engines"] = OrderedDict()
            self.__dict__["_engines_pid"] = os.getpid()
        return self.__dict__["_engines"]

    def _engine(self, shard: str) -> Engine:
        engines = self._own_engines()
        engine = engines.get(shard)
        if engine is None:
            engine = create_engine(
                self.conn_string_for_shard(shard),
                poolclass=QueuePool,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
            )
            event.listen(engine, "connect", _set_synchronous)
            engines[shard] = engine
            runs = [s for s in engines if s != INDEX_SHARD_NAME]
            for old in runs[:-KEEP_RUN_ENGINES]:
                engines.pop(old).dispose()
        engines.move_to_end(shard)
        return engine

    def _dispose_engines(self) -> None:
        engines = self._own_engines()
        for engine in engines.values():
            engine.dispose()
        engines.clear()

    def wipe(self) -> None:
        with self._db_lock:
            self._dispose_engines()
        super().wipe()

    def dispose(self) -> None:
        with self._db_lock:
            self._dispose_engines()
        super().dispose()


def _set_synchronous(dbapi_connection, _record) -> None:
    # PRAGMA synchronous must be set outside a transaction, i.e. when the connection opens
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def storage_env(storage_dir: str) -> dict[str, str]:
    """The environment dagster.yaml reads: one storage root, laid out like Dagster's default."""
    return {
        "TT_DAGSTER_STORAGE": storage_dir,
        "TT_DAGSTER_STORAGE_HISTORY": f"{storage_dir}/history",
        "TT_DAGSTER_STORAGE_EVENTS": f"{storage_dir}/history/runs",
        "TT_DAGSTER_STORAGE_SCHEDULES": f"{storage_dir}/schedules",
    }
