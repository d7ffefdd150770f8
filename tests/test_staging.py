"""Every bad-input kind is caught, with its reason, and every row is accounted for (pure staging)."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from analytics_pipelines.source import contract
from analytics_pipelines.staging import reasons as R
from analytics_pipelines.staging.normalize import PARTITION, stage

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def uid(i: int) -> str:
    return f"00000000-0000-4000-8000-{i:012d}"


USER, EVENT, TT = uid(900), uid(901), uid(902)
REFS = {
    "users": pl.DataFrame({"id": [USER]}),
    "events": pl.DataFrame({"id": [EVENT]}),
    "orders": pl.DataFrame({"id": [uid(1)]}),
    "ticket_types": pl.DataFrame({"id": [TT]}),
    "ticket_type_prices": pl.DataFrame({"id": [TT], "price_cents": [5000]}),
}


def order(i: int, **over) -> dict:
    row = {c: None for c in contract.table("orders").column_names}
    row.update(
        id=uid(i),
        tenant_id=uid(999),
        user_id=USER,
        event_id=EVENT,
        order_number=f"O{i}",
        status="COMPLETED",
        subtotal_cents="10000",
        platform_fee_cents="500",
        processing_fee_cents="290",
        tax_cents="0",
        discount_cents="0",
        total_cents="10790",
        currency="USD",
        payment_status="paid",
        ticket_quantity="2",
        metadata='{"channel": "web", "payment_method": "card"}',
        created_at="2026-01-01 10:00:00+00",
        confirmed_at="2026-01-01 10:01:00+00",
    )
    row.update(over)
    row[PARTITION] = "2026-01-01"
    return row


def item(i: int, **over) -> dict:
    row = {c: None for c in contract.table("order_items").column_names}
    row.update(
        id=uid(i),
        tenant_id=uid(999),
        order_id=uid(1),
        ticket_type_id=TT,
        quantity="2",
        unit_price_cents="5000",
        total_price_cents="10000",
        created_at="2026-01-01 10:00:00+00",
    )
    row.update(over)
    row[PARTITION] = "2026-01-01"
    return row


def frame(rows: list[dict], table: str) -> pl.DataFrame:
    cols = contract.table(table).column_names + [PARTITION]
    return pl.DataFrame(rows, schema={c: pl.String for c in cols})


def run(table: str, rows: list[dict]):
    res = stage(table, frame(rows, table), refs=REFS, now=NOW)
    assert res.ledger["rows_in"].sum() == len(rows)
    assert res.ledger["rows_in"].sum() == res.ledger["rows_out"].sum() + res.ledger["rows_rejected"].sum()
    assert res.clean.height == res.ledger["rows_out"].sum()
    rejected = res.quarantine.filter(pl.col("disposition") == "rejected")
    assert rejected.height == res.ledger["rows_rejected"].sum()
    return res


CASES = [
    ("null key", order(2, id=None), R.NULL_KEY),
    ("empty key", order(2, id="  "), R.NULL_KEY),
    ("negative money", order(2, total_cents="-100"), R.NEGATIVE_MONEY),
    ("NaN money", order(2, subtotal_cents="NaN"), R.NAN_MONEY),
    ("unknown status", order(2, status="SHIPPED"), R.UNKNOWN_STATUS),
    ("orphan user", order(2, user_id=uid(12345)), R.ORPHAN_REFERENCE),
    ("future timestamp", order(2, confirmed_at="2099-01-01 00:00:00+00"), R.FUTURE_TIMESTAMP),
    ("no time zone", order(2, confirmed_at="2026-01-01 10:01:00"), R.TIMESTAMP_WITHOUT_TIMEZONE),
    ("no time zone, spaced", order(2, confirmed_at=" 2026-01-01 10:01:00 "), R.TIMESTAMP_WITHOUT_TIMEZONE),
    (
        "no time zone, a fraction",
        order(2, confirmed_at="2026-01-01 10:01:00.5"),
        R.TIMESTAMP_WITHOUT_TIMEZONE,
    ),
    ("a time zone, unparsable", order(2, confirmed_at="2026-01-01T10:01:00Z"), R.MALFORMED_VALUE),
    (
        "no time zone in the partition column",
        order(2, created_at="2026-01-01 10:00:00"),
        R.TIMESTAMP_WITHOUT_TIMEZONE,
    ),
    ("absurd quantity", order(2, ticket_quantity="1000000000"), R.ABSURD_MAGNITUDE),
    ("malformed uuid", order(2, id="not-a-uuid"), R.MALFORMED_VALUE),
    ("malformed number", order(2, total_cents="12,50"), R.MALFORMED_VALUE),
]


@pytest.mark.parametrize("name,bad,reason", CASES, ids=[c[0] for c in CASES])
def test_each_bad_order_is_quarantined_with_its_reason(name, bad, reason):
    res = run("orders", [order(1), bad])
    assert res.clean["id"].to_list() == [uid(1)]
    q = res.quarantine.filter(pl.col("disposition") == "rejected")
    assert q["reason_code"].to_list() == [reason]
    assert q["raw_payload"][0].startswith("{")  # the raw row is kept for inspection


def test_dollars_where_cents_expected_is_caught_against_the_tier_price():
    res = run("order_items", [item(10), item(11, unit_price_cents="50", total_price_cents="100")])
    q = res.quarantine.filter(pl.col("disposition") == "rejected")
    assert q["reason_code"].to_list() == [R.MONEY_IN_DOLLARS]
    assert res.clean["unit_price_cents"].to_list() == [5000]


def test_absurd_item_quantity():
    res = run("order_items", [item(10, quantity="1000000000")])
    assert res.quarantine["reason_code"].to_list() == [R.ABSURD_MAGNITUDE]


def test_duplicates_identical_and_conflicting():
    a, b = order(5), order(6)
    conflict = order(6, status="CANCELLED", created_at="2026-01-01 09:00:00+00")
    res = run("orders", [a, dict(a), b, conflict])
    assert sorted(res.clean["id"].to_list()) == [uid(5), uid(6)]
    # the later created_at wins
    assert res.clean.filter(pl.col("id") == uid(6))["status"].to_list() == ["completed"]
    reasons = sorted(res.quarantine["reason_code"].to_list())
    assert reasons == [R.DUPLICATE_KEY_CONFLICT, R.DUPLICATE_KEY_IDENTICAL]


def test_mixed_case_status_is_repaired_not_rejected():
    res = run("orders", [order(1, status="Completed"), order(2, status="cOnFiRmEd")])
    assert res.clean["status"].to_list() == ["completed", "confirmed"]
    assert res.quarantine["disposition"].to_list() == ["repaired", "repaired"]
    assert set(res.quarantine["reason_code"]) == {R.MIXED_CASE_STATUS}
    assert res.ledger["rows_repaired"].sum() == 2


def test_control_characters_are_stripped_and_recorded():
    refund = {c: None for c in contract.table("order_refunds").column_names}
    refund.update(
        id=uid(40),
        tenant_id=uid(999),
        order_id=uid(1),
        refund_amount_cents="100",
        refund_reason="Event\x00 cancelled\u200b\x1b",
        refund_status="COMPLETED",
        refund_type="FULL",
        created_at="2026-01-02 00:00:00+00",
        **{PARTITION: "2026-01-02"},
    )
    res = stage("order_refunds", frame([refund], "order_refunds"), refs=REFS, now=NOW)
    assert res.clean["refund_reason"].to_list() == ["Event cancelled"]
    assert res.quarantine["reason_code"].to_list() == [R.CONTROL_CHARACTERS]


def test_empty_partition_succeeds_and_says_so():
    res = stage("orders", frame([], "orders"), refs=REFS, now=NOW, partitions=["2026-01-03"])
    assert res.clean.height == 0
    assert res.ledger.to_dicts() == [
        {
            "source_table": "orders",
            "partition": "2026-01-03",
            "rows_in": 0,
            "rows_out": 0,
            "rows_rejected": 0,
            "rows_repaired": 0,
        }
    ]


def test_normalization_units_and_case():
    res = run("orders", [order(1)])
    row = res.clean.row(0, named=True)
    assert row["total_cents"] == 10790 and row["currency"] == "USD"
    assert row["channel"] == "web" and row["payment_method"] == "card"
    assert row["created_at"] == datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    tt = {c: None for c in contract.table("ticket_types").column_names}
    tt.update(
        id=TT,
        tenant_id=uid(999),
        event_id=EVENT,
        name="GA",
        price="49.99",
        quantity="100",
        sold_quantity="10",
        is_active="true",
        created_at="2026-01-01 00:00:00+00",
        **{PARTITION: "__snapshot__"},
    )
    res = stage("ticket_types", frame([tt], "ticket_types"), refs=REFS, now=NOW)
    assert res.clean["price_cents"].to_list() == [4999]  # dollars -> cents, exactly
    assert res.clean["is_active"].to_list() == [True]


def test_timestamps_with_other_offsets_and_fractions_are_parsed_to_utc():
    res = run(
        "orders",
        [
            order(1, confirmed_at="2026-01-01 15:31:00.5+05:30"),
            order(2, confirmed_at=" 2026-01-01 10:01:00+00 "),
            order(3, confirmed_at="garbage+00"),
        ],
    )
    got = dict(zip(res.clean["id"].to_list(), res.clean["confirmed_at"].to_list(), strict=True))
    assert got[uid(1)] == datetime(2026, 1, 1, 10, 1, 0, 500000, tzinfo=UTC)
    assert got[uid(2)] == datetime(2026, 1, 1, 10, 1, tzinfo=UTC)
    assert res.quarantine["reason_code"].to_list() == [R.MALFORMED_VALUE]


def test_upper_case_uuids_are_lowercased_and_resolve_their_parents():
    """Keys and references printed in upper or mixed case are kept, lower case (only lower-case values
    take the fast path; the others are looked at again); a uuid with spaces around it is still malformed."""
    user, event = "abcdef01-2345-4678-9abc-def012345678", "fedcba98-7654-4321-8fed-cba987654321"
    refs = {**REFS, "users": pl.DataFrame({"id": [user]}), "events": pl.DataFrame({"id": [event]})}
    key = "0a0b0c0d-0e0f-4a1b-8c2d-3e4f5a6b7c8d"
    rows = [
        order(1, id=key.upper(), user_id=user.upper(), event_id=event),
        order(2, user_id=user, event_id=event[:9] + event[9:].upper()),
        order(3, id=f" {uid(3)} ", user_id=user, event_id=event),
    ]
    res = stage("orders", frame(rows, "orders"), refs=refs, now=NOW)
    assert sorted(res.clean["id"].to_list()) == sorted([key, uid(2)])
    assert set(res.clean["user_id"]) == {user} and set(res.clean["event_id"]) == {event}
    q = res.quarantine.filter(pl.col("disposition") == "rejected")
    assert q["reason_code"].to_list() == [R.MALFORMED_VALUE]
    assert q["source_key"].to_list() == [f" {uid(3)} "]


@pytest.mark.parametrize(
    "key,reason",
    [
        ("\u3000", R.NULL_KEY),  # ideographic space: white space
        ("\u00a0\t\n ", R.NULL_KEY),  # no-break space, tab, new line
        ("\u2003", R.NULL_KEY),  # em space
        ("\u200b", R.MALFORMED_VALUE),  # zero-width space: not white space, so not blank
        ("\u00a0x", R.MALFORMED_VALUE),
    ],
)
def test_a_key_of_white_space_is_blank_as_strip_sees_it(key, reason):
    res = run("orders", [order(1), order(2, id=key)])
    assert res.quarantine["reason_code"].to_list() == [reason]
    assert key.strip() == "" or reason != R.NULL_KEY  # the same white space as Python's strip


def test_blank_timestamp_is_null_not_malformed_and_the_ledger_counts_per_partition():
    rows = [
        order(1, confirmed_at="  "),
        order(2, confirmed_at="\u3000"),
        {**order(3), PARTITION: "2026-01-02"},
        {**order(3), PARTITION: "2026-01-02"},  # an identical duplicate
        {**order(4, total_cents="-1"), PARTITION: "2026-01-02"},
        {**order(5, status="Completed"), PARTITION: "2026-01-03"},
    ]
    res = run("orders", rows)
    assert res.clean.filter(pl.col("id").is_in([uid(1), uid(2)]))["confirmed_at"].null_count() == 2
    counts = dict(res.clean.group_by(PARTITION).len().iter_rows())
    ledger = {r["partition"]: r for r in res.ledger.to_dicts()}
    assert (
        {p: r["rows_out"] for p, r in ledger.items()}
        == counts
        == {"2026-01-01": 2, "2026-01-02": 1, "2026-01-03": 1}
    )
    assert {p: (r["rows_in"], r["rows_rejected"], r["rows_repaired"]) for p, r in ledger.items()} == {
        "2026-01-01": (2, 0, 0),
        "2026-01-02": (3, 2, 0),
        "2026-01-03": (1, 0, 1),
    }
