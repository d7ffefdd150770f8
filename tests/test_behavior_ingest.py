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


def _per_document(d: Path, coll: str, lo, hi) -> tuple[pl.DataFrame, list]:
    """The per-document way (FileSource.read: json_util per line, then normalize's function)."""
    from analytics_pipelines.behavior.columnar import SPECS

    stats = ReadStats()
    return SPECS[coll].fn(list(FileSource(d).read(coll, lo, hi, stats))), stats.unparseable


def test_columnar_decoding_equals_the_per_document_way_on_awkward_lines(tmp_path):
    """behavior.columnar gives normalize's frame row for row, whatever the line: canonical wrappers on the
    fast path; other wrappers, non-object or lenient JSON, duplicate keys, odd types on the per-document way."""
    from datetime import datetime

    from analytics_pipelines.behavior.columnar import decode

    def oid(n: int) -> str:  # written 2026-07-01, n x 10 minutes after midnight UTC
        return '{"$oid":"' + f"{1782864000 + 600 * n:08x}" + "0" * 16 + '"}'

    ms = '{"$date":{"$numberLong":"1782950400000"}}'
    lines = {
        "campaign_touchpoints": [
            '{"_id":OID,"customerId":"c1","timestamp":MS,"channel":"Email ","action":"click","value":2.675}',
            '{"_id":OID,"customer_id":"c\\u00e9\\"2","event_time":MS,"timestamp":MS,"channel":"sms","value":0.125}',
            '{"_id":OID,"customerId":"c3","timestamp":"2026-07-01","value":"12"}',
            '{"_id":OID,"customerId":"c4","value":true,"orderId":null,"order_id":"o4"}',
            '{"_id":OID,"customerId":7,"timestamp":MS,"value":12}',
            '{"_id":OID,"customerId":"c6","timestamp":{"$date":"2026-07-01T10:00:00Z"},"value":1}',
            '{"_id":OID,"customerId":"c7","timestamp":MS,"value":{"$numberDouble":"1.5"}}',
            '{"_id":OID,"customerId":"c8","timestamp":MS,"value":1,}',
            '{"_id":OID,"customerId":"c9","customerId":"c9b","timestamp":MS}',
            '{"_id":OID,"customerId":"c10","timestamp":MS,"value":1,"extra":NaN}',
            '{"_id":OID,"customerId":"c11","timestamp":{"a":1},"campaign":"x","value":-0.005}',
            '{"_id":"plain-id","customerId":"c12","timestamp":MS}',
            "",
            '{"_id":OID,"customerId":"c14" broken',
            '{"customerId":"c16","timestamp":MS,"value":123456789012}',
        ],
        "raw_analytics": [
            '{"_id":OID,"event_type":"user_action","timestamp":MS,"data":{"action":"add_to_cart","amount":3.335,"quantity":2.9}}',
            '{"_id":OID,"eventType":"ticket_purchase","eventTime":MS,"properties":{"orderId":"o2","amount":"9.99","quantity":"2"}}',
            '{"_id":OID,"event_type":"page_view","timestamp":MS,"data":"oops"}',
            '{"_id":OID,"event_type":"page_view","timestamp":MS,"data":null,"properties":{"query":"a\\\\b"}}',
            '{"_id":OID,"event_type":"search_query","timestamp":MS,"data":{},"properties":{"query":"x"}}',
            '{"_id":OID,"event_type":"user_action","timestamp":MS,"data":{"amount":1,"amount":2}}',
            '{"_id":OID,"event_type":"user_action","timestamp":MS,"data":{"amount":false,"quantity":true}}',
        ],
        "user_behavior": [
            '{"_id":OID,"venue_id":"v","timestamp":MS,"device_info":{"type":"mobile","os":"iOS"},"geoInfo":{"city":"Oslo"},"duration":12.7}',
            '{"_id":OID,"venueId":"v","createdAt":MS,"timestamp":MS,"device_info":"desktop","duration":"5"}',
            '{"_id":OID,"venue_id":"v","timestamp":null,"deviceInfo":[],"geo_info":{"country":null}}',
        ],
        "campaign_performance": [
            '{"_id":OID,"campaign_id":"k","date":MS,"metrics":{"impressions":10,"clicks":1.5,"spend":-2.5,"revenue":1e2}}',
            '{"_id":OID,"campaignId":"k","date":MS,"metrics":null}',
            '{"_id":OID,"campaign_id":"k","date":MS,"metrics":{"spend":"x","conversions":-3}}',
        ],
    }
    d = tmp_path / "mongo"
    n = 0
    for coll, rows in lines.items():
        (d / coll).mkdir(parents=True)
        text = []
        for row in rows:
            n += 1
            text.append(row.replace("OID", oid(n)).replace("MS", ms))
        (d / coll / "2026-07-01.json").write_text("\n".join(text) + "\n")
    for lo, hi in ((None, None), (datetime(2026, 7, 1, 2), datetime(2026, 7, 2))):
        for coll in lines:
            stats = ReadStats()
            got = decode(coll, FileSource(d).lines(coll, lo, hi), lo, hi, stats)
            want, unparseable = _per_document(d, coll, lo, hi)
            assert got.frame.equals(want), coll
            assert stats.unparseable == unparseable, coll
            docs = list(FileSource(d).read(coll, lo, hi, ReadStats()))
            assert [got.document(i) for i in range(len(docs))] == docs
    # the touchpoints' warts reached the fast path and the slow one, and money rounds as Python's round
    tp, _ = _per_document(d, "campaign_touchpoints", None, None)
    assert tp["value_cents"].to_list()[:2] == [int(round(2.675 * 100)), int(round(0.125 * 100))]
