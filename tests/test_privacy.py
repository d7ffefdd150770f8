"""Keyed pseudonyms at landing (analytics_pipelines/privacy.py): the SQL HMAC is Python's hmac, no
e-mail (in clear or as a plain sha256) reaches any warehouse table, the key is required outside
development, and the key id in the raw rows says which key made them."""

from __future__ import annotations

import hashlib
import logging
import random
from datetime import UTC, datetime

import polars as pl
import pytest

from analytics_pipelines import privacy
from analytics_pipelines.generator.run import generate
from analytics_pipelines.source.db import SourceDB
from analytics_pipelines.staging import ingestion, pipeline
from analytics_pipelines.warehouse import open_warehouse
from tests.privacy_scan import assert_no_plain_values, scan

FIRST, LAST = "2026-06-01", "2026-11-10"
NOW = datetime(2026, 11, 5, tzinfo=UTC)
KEY_A = "landing-key-A-0123456789abcdef"
KEY_B = "landing-key-B-fedcba9876543210"

ODD = [
    "",
    " ",
    "a",
    "\\x41",
    "O'Brien",
    'quote "q"',
    "Zoë Ünïcödé",
    "日本語のメール",
    "emoji 🎟️",
    "tab\tnew\nline",
    "ß",
    "İstanbul",
    "x" * 64,
    "y" * 65,
    "z" * 1000,
    "100%",
    "--; DROP TABLE users",
]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> str:
    url = f"duckdb:///{tmp_path_factory.mktemp('src') / 'source.duckdb'}"
    generate(url, scale="tiny", seed=5, progress=False)
    return url


@pytest.fixture(scope="module")
def person(source) -> dict:
    """A user with an e-mail, names and a phone, from the generated source."""
    return (
        SourceDB(source)
        .query(
            "SELECT email, first_name, last_name, phone FROM users WHERE email LIKE %s AND email NOT LIKE %s "
            "AND phone IS NOT NULL ORDER BY id LIMIT 1",
            ["%@%", "deleted_%"],
        )
        .row(0, named=True)
    )


def _random_strings(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    codes = (*range(32, 127), *range(0xA0, 0x250), *range(0x3040, 0x30FF), 0x1F600, 0x200B)
    alphabet = [chr(c) for c in codes]
    return [
        " " * rng.randint(0, 2) + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        for _ in range(n)
    ]


# ---- (a) the SQL HMAC is HMAC-SHA256 ---------------------------------------------------------------
@pytest.mark.parametrize(
    "key", [b"k" * 16, b"0123456789abcdef" * 4, b"long" * 17, "clé-ünï-🔑-0123456789".encode()]
)
def test_sql_hmac_equals_python_hmac(key):
    values = [*ODD, *_random_strings(2000)]
    df = pl.DataFrame({"v": [*values, None], "other": range(len(values) + 1)})
    out = privacy.keyed(df, key, ["v"])
    expected = [privacy.hmac_hex(key, v) for v in values] + [None]
    assert out["v"].to_list() == expected
    assert expected[0] == privacy.hmac_hex(key, "") and len(expected[0]) == 64
    assert out["other"].to_list() == df["other"].to_list()  # row order and other columns kept
    assert (out[privacy.KEY_ID_COLUMN] == privacy.key_id(key)).all()
    empty = privacy.keyed(df.clear(), key, ["v"])
    assert empty.height == 0 and privacy.KEY_ID_COLUMN in empty.columns


def test_both_ways_of_keying_give_the_hmac_in_row_order(monkeypatch):
    """A column of repeated values is keyed per distinct value and mapped back; a column of distinct values
    is keyed row by row, in parallel over Arrow batches (here of 7 rows, so the scan spans many): both give
    each row its own HMAC, in the frame's order, NULLs kept."""
    monkeypatch.setattr(privacy, "DIRECT_BATCH_ROWS", 7)
    key = b"k" * 16
    distinct = _random_strings(3000)
    names = [["Ann", "Bo", None, "Ann", "Cy"][i % 5] for i in range(3000)]
    phones = [None if i % 11 == 0 else v for i, v in enumerate(distinct)]
    df = pl.DataFrame({"first_name": names, "email": distinct, "phone": phones, "n": range(3000)})
    out = privacy.keyed(df, key, ["first_name", "email", "phone"])
    for c, values in (("first_name", names), ("email", distinct), ("phone", phones)):
        assert out[c].to_list() == [None if v is None else privacy.hmac_hex(key, v) for v in values], c
    assert out["n"].to_list() == list(range(3000))


def test_emails_are_normalized_the_same_way_as_the_lookup():
    key = KEY_A.encode()
    emails = ["  Jane.Doe@Example.COM\t", "jane.doe@example.com", "ÄNNE@Straße.de ", "", "\n"]
    out = privacy.keyed(pl.DataFrame({"email": emails}), key, ["email"], emails=["email"])
    assert out["email"].to_list() == [privacy.pseudonym_for_email(key, e) for e in emails]
    assert out["email"][0] == out["email"][1] == privacy.hmac_hex(key, "jane.doe@example.com")
    assert privacy.pseudonym_for_email(key, None) is None


# ---- (b) the acceptance test: no e-mail, in clear or plain sha256, anywhere in the warehouse ----------
def test_no_personal_value_in_clear_or_plain_sha256_anywhere(source, person, warehouse_url, monkeypatch):
    monkeypatch.setenv(privacy.LANDING_KEY_ENV, KEY_A)
    monkeypatch.setenv("TT_ENV", "production")
    wh = open_warehouse(warehouse_url)
    audit = pipeline.ingest_everything(SourceDB(source), wh, FIRST, LAST, now=NOW)
    assert audit["balanced"].all(), audit
    assert_no_plain_values(wh, [person["email"], person["email"].upper(), person["phone"]])
    assert not scan(wh, [hashlib.sha256(person["email"].encode()).hexdigest().upper()])
    # the e-mail is findable only through its keyed pseudonym, and the raw rows name the key
    key = KEY_A.encode()
    raw = wh.read_table("raw_users")
    assert raw.filter(pl.col("email") == privacy.pseudonym_for_email(key, person["email"])).height == 1
    assert raw.filter(pl.col("phone") == privacy.hmac_hex(key, person["phone"])).height == 1
    assert set(raw[privacy.KEY_ID_COLUMN]) == {privacy.key_id(key)}
    assert set(wh.read_table("raw_venues")[privacy.KEY_ID_COLUMN]) == {privacy.key_id(key)}
    assert not {"email", "first_name", "last_name", "phone"} & set(wh.read_table("stg_users").columns)


def test_the_scan_finds_planted_values(tmp_path):
    wh = open_warehouse(f"duckdb:///{tmp_path / 'wh'}")
    digest = hashlib.sha256(b"jane@example.com").hexdigest()
    payload = ['{"e": "x"}', f'{{"h": "{digest.upper()}"}}']
    wh.replace_table("t", pl.DataFrame({"n": [1, 2], "payload": payload, "note": ["JANE@example.com", None]}))
    with pytest.raises(AssertionError, match="payload"):
        assert_no_plain_values(wh, ["jane@example.com"])
    assert {(t, c) for t, c, _ in scan(wh, ["jane@example.com"])} == {("t", "note")}


def test_the_scan_matches_names_as_whole_words(tmp_path):
    wh = open_warehouse(f"duckdb:///{tmp_path / 'wh'}")
    wh.replace_table("a", pl.DataFrame({"note": ["an in-sample metric", "sampled"]}))
    wh.replace_table("b", pl.DataFrame({"note": ["paid by Sam Smith", None]}))
    assert scan(wh, [], words=["sam"]) == [("b", "note", "sam")]
    with pytest.raises(AssertionError, match="'b', 'note'"):
        assert_no_plain_values(wh, [], words=["Sam"])


# ---- (c) the key is required outside development -----------------------------------------------------
@pytest.mark.parametrize("env", [{}, {"TT_ENV": "production"}, {"TT_ENV": "staging"}])
def test_landing_key_is_required_outside_development(env):
    with pytest.raises(privacy.PseudonymKeyError, match="TT_LANDING_PSEUDONYM_KEY is not set"):
        privacy.landing_key(env)


def test_short_keys_are_refused_and_development_uses_a_fixed_key(caplog):
    with pytest.raises(privacy.PseudonymKeyError, match="TT_LANDING_PSEUDONYM_KEY must be at least 16"):
        privacy.landing_key({"TT_LANDING_PSEUDONYM_KEY": "short", "TT_ENV": "development"})
    assert privacy.landing_key({"TT_LANDING_PSEUDONYM_KEY": KEY_A}) == KEY_A.encode()
    with caplog.at_level(logging.WARNING, logger="analytics_pipelines.privacy"):
        assert privacy.landing_key({"TT_ENV": "development"}) == privacy.DEV_LANDING_KEY
    assert "TT_LANDING_PSEUDONYM_KEY is not set" in caplog.text
    # landing and exports have their own keys (privacy.py says why)
    assert privacy.DEV_LANDING_KEY != privacy.DEV_EXPORT_KEY
    assert privacy.landing_key_for("orders", {}) is None  # no personal columns: no key needed
    # exports share the implementation: the same HMAC, their own variable and development key
    from analytics_pipelines.reports.pseudonyms import pseudonym, pseudonym_key

    assert pseudonym(KEY_A.encode(), "t", "u") == "cus_" + privacy.hmac_hex(KEY_A.encode(), "t:u")[:32]
    with pytest.raises(privacy.PseudonymKeyError, match="TT_EXPORT_PSEUDONYM_KEY is not set"):
        pseudonym_key({privacy.LANDING_KEY_ENV: KEY_A})


def test_landing_users_without_a_key_refuses_before_writing(source, tmp_path, monkeypatch):
    monkeypatch.delenv(privacy.LANDING_KEY_ENV, raising=False)
    monkeypatch.setenv("TT_ENV", "production")
    wh = open_warehouse(f"duckdb:///{tmp_path / 'wh'}")
    with pytest.raises(privacy.PseudonymKeyError, match="TT_LANDING_PSEUDONYM_KEY"):
        ingestion.ingest_raw_dimension(SourceDB(source), wh, "users")
    assert "raw_users" not in wh.tables()
    ingestion.ingest_raw_dimension(SourceDB(source), wh, "event_categories")  # nothing personal: lands


def test_cli_run_needs_a_key_for_a_real_source_not_for_the_sample(monkeypatch, capsys):
    from analytics_pipelines.cli import _landing_key_ready, main

    monkeypatch.delenv(privacy.LANDING_KEY_ENV, raising=False)
    monkeypatch.setenv("TT_SOURCE_URL", "postgresql://platform.invalid/tickettoken")
    monkeypatch.delenv("TT_ENV", raising=False)
    assert main(["run"]) == 2  # refused before anything runs or connects
    assert "TT_LANDING_PSEUDONYM_KEY is not set" in capsys.readouterr().err
    monkeypatch.setenv("TT_ENV", "production")
    assert main(["run"]) == 2
    monkeypatch.setenv(privacy.LANDING_KEY_ENV, KEY_A)
    assert _landing_key_ready()
    # the embedded generated sample: development unless TT_ENV says otherwise
    monkeypatch.delenv(privacy.LANDING_KEY_ENV)
    monkeypatch.delenv("TT_SOURCE_URL")
    monkeypatch.delenv("TT_ENV", raising=False)
    assert _landing_key_ready() and privacy.is_development()
    assert "TT_ENV=development" in capsys.readouterr().err
    monkeypatch.setenv("TT_ENV", "production")
    assert not _landing_key_ready()


# ---- (d) different keys, different pseudonyms; the key id shows a re-key ---------------------------------
def test_keys_and_key_ids(source, person, tmp_path, monkeypatch):
    a, b = KEY_A.encode(), KEY_B.encode()
    email = person["email"]
    assert privacy.pseudonym_for_email(a, email) == privacy.pseudonym_for_email(a, email)
    assert privacy.pseudonym_for_email(a, email) != privacy.pseudonym_for_email(b, email)
    assert privacy.key_id(a) == hashlib.sha256(a).hexdigest()[:8] != privacy.key_id(b)
    wh = open_warehouse(f"duckdb:///{tmp_path / 'wh'}")
    src = SourceDB(source)
    landed = {}
    for name, key in (("a", KEY_A), ("b", KEY_B)):
        monkeypatch.setenv(privacy.LANDING_KEY_ENV, key)
        ingestion.ingest_raw_dimension(src, wh, "users")
        landed[name] = wh.read_table("raw_users").sort("id")
        assert set(landed[name][privacy.KEY_ID_COLUMN]) == {privacy.key_id(key.encode())}
    assert landed["a"]["id"].equals(landed["b"]["id"])
    for c in ("email", "first_name", "last_name", "phone"):
        both = landed["a"].select("id", c).join(landed["b"].select("id", c), on="id").drop_nulls()
        assert both.height and (both[c] != both[f"{c}_right"]).all(), c
    assert privacy.pseudonym_for_email(b, email) in landed["b"]["email"].to_list()
    assert privacy.pseudonym_for_email(a, email) not in landed["b"]["email"].to_list()
