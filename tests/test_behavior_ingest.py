"""Behavioral ingestion (issue 18): the file path and the pymongo path give identical tables (pymongo against
the SecantusDB server, a MongoDB wire-protocol implementation started here, and against mongomock; against a
real MongoDB when TT_TEST_MONGO_URL is given), transient errors are retried (failCommand), every document is
accounted for, and the planted bad documents are quarantined with their reasons."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from datetime import date
from pathlib import Path

import polars as pl
import pymongo
import pytest

from analytics_pipelines.behavior.ingest import ingest
from analytics_pipelines.behavior.source import FileSource, MongoSource, ReadStats
from analytics_pipelines.generator.behavior_docs import COLLECTIONS, load_into_mongo, write_files
from analytics_pipelines.generator.reference import DEFAULT_AS_OF, SCALES
from analytics_pipelines.generator.synth import _build

ROOT = Path(__file__).resolve().parent.parent
FIRST, LAST = "2026-07-01", "2026-10-31"
LAG = 720


@pytest.fixture(scope="module")
def world():
    return _build(SCALES["tiny"], 42, DEFAULT_AS_OF)


@pytest.fixture(scope="module")
def files(world, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("mongo") / "mongo"
    write_files(world.behavior, d)
    return d


@pytest.fixture(scope="module")
def venues(world) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": world.venues.ids.take(pl.Series(range(len(world.venues.ids))).to_numpy()),
            "tenant_id": world.tenant_ids.take(world.venues.tenant),
        }
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def secantus_url():
    """A SecantusDB server (MongoDB wire protocol, failCommand fail points) on a free port."""
    port = _free_port()
    proc = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/secantusd-py"),
            "--port",
            str(port),
            "--storage-path",
            ":memory:",
            "--enable-test-commands",
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    try:
        deadline = time.time() + 60
        while True:
            try:
                pymongo.MongoClient(url, serverSelectionTimeoutMS=500).admin.command("ping")
                break
            except pymongo.errors.PyMongoError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("secantusd did not start") from None
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _assert_same(a: dict[str, pl.DataFrame], b: dict[str, pl.DataFrame]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].height > 0 or name == "behavior_quarantine", name
        assert a[name].equals(b[name]), name


def test_file_path_equals_pymongo_path_secantus(files, venues, secantus_url):
    loaded = load_into_mongo(files, secantus_url, db="tt_equal")
    assert loaded == {c: sum(1 for f in (files / c).glob("*.json") for _ in f.open()) for c in COLLECTIONS}
    from_files = ingest(FileSource(files), FIRST, LAST, venues, LAG)
    src = MongoSource(secantus_url, "tt_equal", batch_size=500)
    try:
        from_mongo = ingest(src, FIRST, LAST, venues, LAG)
    finally:
        src.close()
    _assert_same(from_files, from_mongo)


def test_transient_error_is_retried_from_the_last_id(files, venues, secantus_url):
    from bson import json_util

    src = MongoSource(secantus_url, "tt_retry", batch_size=200, backoff=0.01)
    docs = [
        json_util.loads(x) for f in sorted((files / "campaign_touchpoints").glob("*.json")) for x in f.open()
    ]
    src.db["campaign_touchpoints"].insert_many(docs)
    admin = src.client.admin
    try:
        clean = ReadStats()
        expected = [d["_id"] for d in src.read("campaign_touchpoints", None, None, clean)]
        admin.command(
            {
                "configureFailPoint": "failCommand",
                "mode": {"times": 1},
                "data": {"failCommands": ["getMore"], "errorCode": 262},
            }
        )
        stats = ReadStats()
        got = [d["_id"] for d in src.read("campaign_touchpoints", None, None, stats)]
        assert stats.retries == 1
        assert got == expected and len(got) == len(docs)  # nothing lost, nothing read twice
        admin.command(
            {
                "configureFailPoint": "failCommand",
                "mode": {"times": 10},
                "data": {"failCommands": ["getMore"], "errorCode": 262},
            }
        )
        with pytest.raises(pymongo.errors.PyMongoError):
            list(src.read("campaign_touchpoints", None, None, ReadStats()))
    finally:
        admin.command({"configureFailPoint": "failCommand", "mode": "off"})
        src.close()


def test_file_path_equals_pymongo_path_mongomock(files, venues):
    import mongomock
    from bson import json_util

    client = mongomock.MongoClient()
    for c in COLLECTIONS:
        docs = [json_util.loads(line) for f in sorted((files / c).glob("*.json")) for line in f.open()]
        client["tt"][c].insert_many(docs)
    src = MongoSource(None, "tt", batch_size=300, client=client)
    _assert_same(ingest(FileSource(files), FIRST, LAST, venues, LAG), ingest(src, FIRST, LAST, venues, LAG))


@pytest.mark.skipif(not os.environ.get("TT_TEST_MONGO_URL"), reason="TT_TEST_MONGO_URL not set (opt-in)")
def test_file_path_equals_pymongo_path_real_mongodb(files, venues):
    url = os.environ["TT_TEST_MONGO_URL"]
    load_into_mongo(files, url, db="tt_behavior_test")
    src = MongoSource(url, "tt_behavior_test")
    try:
        _assert_same(
            ingest(FileSource(files), FIRST, LAST, venues, LAG), ingest(src, FIRST, LAST, venues, LAG)
        )
    finally:
        src.client.drop_database("tt_behavior_test")
        src.close()


def test_every_document_is_accounted_for_once(world, files, venues):
    start = date.fromordinal(date.fromisoformat("2026-11-01").toordinal() - 130).isoformat()
    everything = ingest(FileSource(files), start, "2026-12-31", venues, LAG)
    n_docs = sum(
        1 for c in COLLECTIONS if c != "campaigns" for f in (files / c).glob("*.json") for _ in f.open()
    )
    ledger = everything["behavior_ledger"]
    assert ledger["docs"].sum() == n_docs
    assert ledger["docs_accepted"].sum() + ledger["docs_quarantined"].sum() == n_docs
    accepted = sum(
        everything[t].height
        for t in ("raw_behavior_events", "raw_campaign_touchpoints", "raw_campaign_performance")
    )
    assert accepted == ledger["docs_accepted"].sum()
    assert everything["behavior_quarantine"].height == ledger["docs_quarantined"].sum()
    # the planted bad documents, each with its reason
    bad = world.truth["behavior"]["planted_bad"]
    by_reason = everything["behavior_quarantine"].group_by("collection", "reason").len()
    reasons = {f"{c}:{r}": n for c, r, n in by_reason.iter_rows()}
    assert reasons["campaign_touchpoints:unknown_channel"] == bad["touchpoint_unknown_channel"]
    assert reasons["campaign_touchpoints:missing_id"] == bad["touchpoint_missing_customer"]
    assert reasons["campaign_touchpoints:duplicate"] == bad["touchpoint_duplicates"]
    assert reasons.get("campaign_touchpoints:late_write", 0) == bad["touchpoint_late_writes"]
    assert reasons["campaign_performance:negative_spend"] == bad["negative_spend"]
    assert reasons["raw_analytics:unknown_event_type"] == bad["unknown_event_type"]
    assert reasons["raw_analytics:unparseable"] == bad["unparseable_timestamp"]
    assert reasons["user_behavior:no_event_time"] == bad["page_view_no_timestamp"]
    assert ledger["docs_repaired"].sum() == bad["touchpoint_channel_spelling"]
    # partitions do not depend on the range run: two halves give the same rows as the whole
    a = ingest(FileSource(files), FIRST, "2026-08-31", venues, LAG)
    b = ingest(FileSource(files), "2026-09-01", LAST, venues, LAG)
    whole = ingest(FileSource(files), FIRST, LAST, venues, LAG)
    for name, df in whole.items():
        assert pl.concat([a[name], b[name]]).sort(df.columns).equals(df.sort(df.columns)), name


def test_unparseable_line_is_quarantined(files, venues, tmp_path):
    d = tmp_path / "mongo"
    (d / "campaign_touchpoints").mkdir(parents=True)
    src = next(iter(sorted((files / "campaign_touchpoints").glob("2026-08-1*.json"))))
    lines = src.read_text().splitlines()
    (d / "campaign_touchpoints" / src.name).write_text(
        "\n".join([lines[0], '{"_id": {"$oid": "zz', *lines[1:]]) + "\n"
    )
    out = ingest(FileSource(d), src.stem, src.stem, venues, LAG)
    q = out["behavior_quarantine"].filter(pl.col("reason") == "unparseable")
    assert q.height == 1 and q["doc_id"][0] is None and src.name in q["detail"][0]
    assert out["behavior_ledger"]["docs_quarantined"].sum() >= 1


def test_funnel_days_do_not_depend_on_the_range(files, venues):
    from analytics_pipelines.behavior.funnel import conversion_funnel

    ev = ingest(FileSource(files), "2026-08-01", "2026-08-20", venues, LAG, kinds=("events",))
    ev = ev["raw_behavior_events"]
    whole = conversion_funnel(ev)
    days = [conversion_funnel(g) for _, g in ev.group_by("day")]
    cols = ["tenant_id", "venue_id", "event_id", "day", "channel", "device"]
    assert whole.height > 0 and whole["purchases"].sum() > 0
    assert pl.concat(days).sort(cols, nulls_last=True).equals(whole.sort(cols, nulls_last=True))
