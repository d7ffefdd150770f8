"""The synthetic platform generator: determinism, internal consistency to the cent, realistic rates, the
platform's own constraints in PostgreSQL, and a dirty manifest that matches what can be re-detected."""

from __future__ import annotations

import json
import os
import re
import unicodedata
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import psycopg
import pytest

from analytics_pipelines.generator import dirty, synth
from analytics_pipelines.generator.run import generate
from analytics_pipelines.source import contract
from analytics_pipelines.source.db import SourceDB, render_text

AS_OF = date(2026, 11, 1)
NOW = datetime(2026, 11, 1, tzinfo=UTC)
SEED = 7
PG_ADMIN_URL = os.environ.get("TT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PAID = ("COMPLETED", "CONFIRMED", "REFUNDED")
# timestamps of things that happened (deadlines and schedules may lie in the future)
HAPPENED = (
    "created_at",
    "updated_at",
    "deleted_at",
    "purchased_at",
    "validated_at",
    "checked_in_at",
    "status_changed_at",
    "scanned_at",
    "changed_at",
    "confirmed_at",
    "cancelled_at",
    "refunded_at",
    "listed_at",
    "sold_at",
    "initiated_at",
    "completed_at",
    "failed_at",
)


@pytest.fixture(scope="module")
def t() -> dict[str, pl.DataFrame]:
    return synth.generate_tables("tiny", seed=SEED, as_of=AS_OF)


@pytest.fixture(scope="module")
def injected(t: dict[str, pl.DataFrame]) -> tuple[dict[str, pl.DataFrame], dict]:
    return dirty.inject({name: render_text(df) for name, df in t.items()}, seed=SEED, rate=0.01)


def cents(col: str) -> pl.Expr:
    return (pl.col(col) * 100).round(0).cast(pl.Int64)


# -- determinism and shape -------------------------------------------------------------------------------------
def test_same_seed_gives_byte_identical_frames() -> None:
    a = list(synth.generate_frames("tiny", seed=3, as_of=AS_OF))
    b = list(synth.generate_frames("tiny", seed=3, as_of=AS_OF))
    assert [name for name, _ in a] == [name for name, _ in b]
    for (name, fa), (_, fb) in zip(a, b, strict=True):
        assert fa.write_ipc(None).getvalue() == fb.write_ipc(None).getvalue(), name


def test_behavior_documents_are_built_only_when_asked_and_change_no_table(monkeypatch) -> None:
    """The behavioral documents (large Python objects: 15+ GB at `large` when always built) are made only when
    the caller wants them, from their own random streams: the relational tables are the same either way."""
    from analytics_pipelines.generator.synth import generate_frames

    behavior: dict = {}
    with_docs = list(generate_frames("tiny", 42, behavior=behavior))
    built = []
    real = synth.behavior_documents
    monkeypatch.setattr(synth, "behavior_documents", lambda *a: built.append(1) or real(*a))
    without = list(generate_frames("tiny", 42))
    assert not built
    assert behavior and all(len(v) for v in behavior.values())
    assert [t for t, _ in with_docs] == [t for t, _ in without]
    for (table, a), (_, b) in zip(with_docs, without, strict=True):
        assert a.equals(b), table


def test_behavior_documents_stream_in_slices_with_bounded_memory(tmp_path) -> None:
    """generate writes the behavioral documents slice by slice (generator.behavior.behavior_chunks): several
    slices give the same journeys, campaigns and campaign_performance, unique ObjectIds, and the planted bad
    documents are counted over every slice (ingestion finds exactly the planted duplicates)."""
    from analytics_pipelines.behavior.ingest import ingest
    from analytics_pipelines.behavior.source import FileSource
    from analytics_pipelines.generator.behavior import behavior_chunks
    from analytics_pipelines.generator.behavior_docs import write_files
    from analytics_pipelines.generator.primitives import _Streams
    from analytics_pipelines.generator.reference import SCALES

    def world():
        return synth._build(SCALES["tiny"], SEED, AS_OF, with_behavior=False)

    w1, w3 = world(), world()
    one = write_files(behavior_chunks(_Streams(SEED), w1), tmp_path / "one")
    n = w1.truth["behavior"]["journeys"]
    many = write_files(behavior_chunks(_Streams(SEED), w3, chunk_journeys=n // 3 + 1), tmp_path / "many")
    t1, t3 = w1.truth["behavior"], w3.truth["behavior"]
    assert {k: v for k, v in t1.items() if k != "planted_bad"} == {
        k: v for k, v in t3.items() if k != "planted_bad"
    }
    for coll in ("campaigns", "campaign_performance"):  # rendered once, from every slice's touches
        assert one[coll] == many[coll] > 0
        for f in (tmp_path / "one" / coll).glob("*.json"):
            assert f.read_text() == (tmp_path / "many" / coll / f.name).read_text()
    # the conversions (one per converting journey) are in both; the random parts differ by slice
    assert (
        abs(many["campaign_touchpoints"] - one["campaign_touchpoints"]) < 0.02 * one["campaign_touchpoints"]
    )
    ids = [
        line[:40]
        for c in one
        for f in (tmp_path / "many" / c).glob("*.json")
        for line in f.read_text().splitlines()
    ]
    assert len(ids) == sum(many.values()) and len(set(ids)) == len(ids)
    bad = t3["planted_bad"]
    assert bad["touchpoint_duplicates"] > 0 and bad["negative_spend"] == t1["planted_bad"]["negative_spend"]
    venues = pl.DataFrame(
        {
            "id": w3.venues.ids.take(np.arange(len(w3.venues.ids))),
            "tenant_id": w3.tenant_ids.take(w3.venues.tenant),
        }
    )
    out = ingest(FileSource(tmp_path / "many"), "2026-01-01", "2026-12-31", venues, 720)
    q = out["behavior_quarantine"]
    assert q.filter(pl.col("reason") == "duplicate").height == bad["touchpoint_duplicates"]
    assert out["behavior_ledger"]["docs"].sum() == sum(v for c, v in many.items() if c != "campaigns")


def test_different_seed_gives_different_frames(t: dict[str, pl.DataFrame]) -> None:
    other = synth.generate_tables("tiny", seed=SEED + 1, as_of=AS_OF)
    for name in ("users", "events", "orders", "tickets"):
        assert not other[name].equals(t[name])
    assert set(other["orders"]["id"]).isdisjoint(t["orders"]["id"])


def test_frames_follow_the_contract(t: dict[str, pl.DataFrame]) -> None:
    expected = {
        "uuid": pl.String,
        "varchar": pl.String,
        "text": pl.String,
        "jsonb": pl.String,
        "timestamptz": pl.Datetime("us", "UTC"),
        "numeric": pl.Float64,
        "integer": pl.Int32,
        "bigint": pl.Int64,
        "boolean": pl.Boolean,
    }
    assert list(t) == list(contract.TABLE_ORDER)
    for name, spec in contract.tables().items():
        assert t[name].columns == spec.column_names, name
        for col in spec.columns:
            assert t[name].schema[col.name] == expected[col.base_type], f"{name}.{col.name}"
        assert t[name]["id"].null_count() == 0 and t[name]["id"].n_unique() == t[name].height, name
        for column, vocabulary in spec.statuses.items():
            assert set(t[name][column].drop_nulls()) <= set(vocabulary), f"{name}.{column}"
        for column in spec.money:
            values = t[name][column].drop_nulls()
            if t[name].schema[column] == pl.Float64:
                assert (values.round(2) == values).all(), f"{name}.{column} has more than 2 decimals"


def test_ids_are_canonical_lowercase_uuids(t: dict[str, pl.DataFrame]) -> None:
    pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
    for name in ("venues", "users", "orders", "tickets"):
        assert t[name]["id"].str.contains(pattern).all(), name
    assert "00000000-0000-0000-0000-000000000001" in set(t["events"]["tenant_id"])


def test_scale_sizes_are_roughly_the_targets(t: dict[str, pl.DataFrame]) -> None:
    s = synth.SCALES["tiny"]
    assert t["venues"].height == s.venues and t["events"].height == s.events and t["users"].height == s.users
    assert 0.8 * s.tickets <= t["tickets"].height <= 1.2 * s.tickets
    assert 600 <= t["orders"].height <= 1300
    assert t["events"]["tenant_id"].n_unique() == s.tenants


def test_nothing_happens_after_as_of(t: dict[str, pl.DataFrame]) -> None:
    for name, df in t.items():
        for column in HAPPENED:
            if column in df.columns:
                assert (df[column].drop_nulls() < NOW).all(), f"{name}.{column}"
    launch = NOW - timedelta(days=synth.SCALES["tiny"].history_days)
    for name in contract.fact_tables():
        for column in contract.table(name).partition_time or ():
            assert (t[name][column].drop_nulls() >= launch).all(), f"{name}.{column} precedes the launch"
    starts = t["event_schedules"]["starts_at"]
    assert (starts > NOW).any() and (starts < NOW).any()
    scanned_events = t["ticket_scans"].join(t["event_schedules"], on="event_id")
    assert (scanned_events["doors_open_at"] <= scanned_events["scanned_at"]).all()


# -- consistency to the cent -------------------------------------------------------------------------------------
def test_order_items_and_order_totals_reconcile(t: dict[str, pl.DataFrame]) -> None:
    items = t["order_items"]
    assert (items["total_price_cents"] == items["quantity"] * items["unit_price_cents"]).all()
    sums = items.group_by("order_id").agg(
        pl.sum("total_price_cents").alias("s"), pl.sum("quantity").alias("q")
    )
    o = t["orders"].join(sums, left_on="id", right_on="order_id", how="left")
    assert o["s"].null_count() == 0
    assert (o["subtotal_cents"] == o["s"]).all()
    assert (o["ticket_quantity"] == o["q"]).all()
    total = (
        pl.col("subtotal_cents")
        + pl.col("platform_fee_cents")
        + pl.col("processing_fee_cents")
        + pl.col("tax_cents")
        - pl.col("discount_cents")
    )
    assert o.select((pl.col("total_cents") == total).all()).item()
    assert (o["total_cents"] > 0).all() and (o["discount_cents"] >= 0).all()
    assert (items.group_by("order_id").len()["len"] <= 2).all()
    assert items.group_by("order_id").len()["len"].max() == 2  # some two-tier orders


def test_unit_price_is_the_price_in_effect_at_purchase(t: dict[str, pl.DataFrame]) -> None:
    history = t["ticket_price_history"].sort("ticket_type_id", "changed_at")
    initial = history.group_by("ticket_type_id").agg(pl.first("old_price").alias("initial"))
    types = (
        t["ticket_types"]
        .join(initial, left_on="id", right_on="ticket_type_id", how="left")
        .select(pl.col("id").alias("ticket_type_id"), pl.coalesce("initial", "price").alias("initial"))
    )
    items = (
        t["order_items"]
        .join(t["orders"].select(pl.col("id").alias("order_id"), "confirmed_at", "created_at"), on="order_id")
        .with_columns(pl.coalesce("confirmed_at", "created_at").alias("at"))
        .sort("ticket_type_id", "at")
    )
    priced = (
        items.join_asof(
            history.select("ticket_type_id", "changed_at", "new_price"),
            left_on="at",
            right_on="changed_at",
            by="ticket_type_id",
            strategy="backward",
            check_sortedness=False,
        )
        .join(types, on="ticket_type_id")
        .with_columns(pl.coalesce("new_price", "initial").alias("price"))
    )
    assert (priced["unit_price_cents"] == priced.select(cents("price")).to_series()).all()
    assert priced["new_price"].null_count() < priced.height  # price changes do apply to some orders


def test_price_history_chains_end_at_the_current_price(t: dict[str, pl.DataFrame]) -> None:
    h = t["ticket_price_history"].sort("ticket_type_id", "changed_at")
    assert h.height > 0
    chained = h.with_columns(pl.col("new_price").shift(1).over("ticket_type_id").alias("prev"))
    assert (
        chained.filter(pl.col("prev").is_not_null())
        .select((pl.col("old_price") == pl.col("prev")).all())
        .item()
    )
    assert (h["old_price"] != h["new_price"]).all()
    last = (
        h.group_by("ticket_type_id")
        .agg(pl.last("new_price"))
        .join(t["ticket_types"].select(pl.col("id").alias("ticket_type_id"), "price"), on="ticket_type_id")
    )
    assert (last["new_price"] == last["price"]).all()


def test_tickets_match_paid_order_items(t: dict[str, pl.DataFrame]) -> None:
    paid = t["orders"].filter(pl.col("status").is_in(PAID))
    expected = (
        t["order_items"]
        .join(
            paid.select(pl.col("id").alias("order_id"), "user_id", "confirmed_at", "status", "event_id"),
            on="order_id",
        )
        .group_by("user_id", "ticket_type_id", "confirmed_at", "event_id", "status")
        .agg(pl.sum("quantity").alias("n"), pl.first("unit_price_cents").alias("unit"))
    )
    got = (
        t["tickets"]
        .group_by("original_purchaser_id", "ticket_type_id", "purchased_at", "event_id")
        .agg(
            pl.len().alias("got"),
            cents("price").first().alias("price"),
            cents("face_value").first().alias("face"),
            (pl.col("status") == "refunded").all().alias("refunded"),
            pl.first("created_at"),
        )
    )
    joined = expected.join(
        got,
        left_on=["user_id", "ticket_type_id", "confirmed_at", "event_id"],
        right_on=["original_purchaser_id", "ticket_type_id", "purchased_at", "event_id"],
        how="full",
    )
    assert joined["n"].null_count() == 0 and joined["got"].null_count() == 0
    assert (joined["n"] == joined["got"]).all()
    assert (joined["unit"] == joined["price"]).all() and (joined["unit"] == joined["face"]).all()
    assert (joined["refunded"] == (joined["status"] == "REFUNDED")).all()
    assert (joined["created_at"] == joined["confirmed_at"]).all()
    assert t["tickets"].height == paid["ticket_quantity"].sum()
    assert (t["tickets"]["price_cents"] == t["tickets"]["price"] * 100).all()


def test_sold_quantity_counts_live_tickets_and_never_exceeds_quantity(t: dict[str, pl.DataFrame]) -> None:
    counts = (
        t["tickets"]
        .group_by("ticket_type_id")
        .agg(
            pl.len().alias("issued"),
            pl.col("status").is_in(["active", "used", "transferred"]).sum().alias("live"),
        )
    )
    tt = t["ticket_types"].join(counts, left_on="id", right_on="ticket_type_id", how="left").fill_null(0)
    assert (tt["sold_quantity"] == tt["live"]).all()
    assert (tt["issued"] <= tt["quantity"]).all()
    assert (tt["available_quantity"] == tt["quantity"] - tt["sold_quantity"]).all()
    per_event = tt.group_by("event_id").agg(pl.len().alias("n"), pl.col("name").n_unique().alias("names"))
    assert per_event["n"].is_between(2, 4).all() and (per_event["n"] == per_event["names"]).all()
    capacity = (
        tt.group_by("event_id")
        .agg(pl.sum("quantity"))
        .join(t["events"].select(pl.col("id").alias("event_id"), "venue_id"), on="event_id")
        .join(t["venues"].select(pl.col("id").alias("venue_id"), "max_capacity"), on="venue_id")
    )
    assert (capacity["quantity"] <= capacity["max_capacity"]).all()


def test_refunds(t: dict[str, pl.DataFrame]) -> None:
    o, r = t["orders"], t["order_refunds"]
    refunded = o.filter(pl.col("status") == "REFUNDED")
    assert (o["refunded_at"].is_not_null() == (o["status"] == "REFUNDED")).all()
    assert r["order_id"].n_unique() == r.height and set(r["order_id"]) == set(refunded["id"])
    j = r.join(
        o.select(
            pl.col("id").alias("order_id"),
            "total_cents",
            "platform_fee_cents",
            "processing_fee_cents",
            "refunded_at",
        ),
        on="order_id",
    )
    assert (j["refund_amount_cents"] > 0).all() and (j["refund_amount_cents"] <= j["total_cents"]).all()
    full = j.filter(pl.col("refund_type") == "FULL")
    assert (full["refund_amount_cents"] == full["total_cents"]).all()
    partial = j.filter(pl.col("refund_type") == "PARTIAL")  # the platform keeps its fees
    assert (
        partial["refund_amount_cents"]
        == partial["total_cents"] - partial["platform_fee_cents"] - partial["processing_fee_cents"]
    ).all()
    assert (j["created_at"] == j["refunded_at"]).all() and (j["updated_at"] >= j["created_at"]).all()
    assert set(r["refund_type"]) <= {"FULL", "PARTIAL"} and (r["refund_status"] == "COMPLETED").mean() > 0.8
    # every paid order of a cancelled event is refunded
    cancelled = t["events"].filter(pl.col("status") == "CANCELLED")["id"]
    assert cancelled.len() >= 1
    of_cancelled = o.filter(
        pl.col("event_id").is_in(cancelled.implode()) & pl.col("confirmed_at").is_not_null()
    )
    assert (of_cancelled["status"] == "REFUNDED").all()
    schedules = t["event_schedules"].join(
        t["events"].select(pl.col("id").alias("event_id"), pl.col("status").alias("ev")), on="event_id"
    )
    assert ((schedules["status"] == "CANCELLED") == (schedules["ev"] == "CANCELLED")).all()


def test_orders_without_payment_have_no_tickets(t: dict[str, pl.DataFrame]) -> None:
    o = t["orders"]
    unpaid = o.filter(~pl.col("status").is_in(PAID))
    assert set(unpaid["status"]) == {"CANCELLED", "EXPIRED", "PENDING"}
    assert unpaid["confirmed_at"].null_count() == unpaid.height
    assert (o.filter(pl.col("status") == "CANCELLED")["cancelled_at"].is_not_null()).all()
    paid_keys = o.filter(pl.col("status").is_in(PAID)).select("user_id", "confirmed_at").unique()
    tickets = (
        t["tickets"]
        .select(
            pl.col("original_purchaser_id").alias("user_id"), pl.col("purchased_at").alias("confirmed_at")
        )
        .unique()
    )
    assert tickets.join(paid_keys, on=["user_id", "confirmed_at"], how="anti").height == 0
    assert o["created_at"].null_count() >= 1  # the platform's nullable created_at wart
    assert o.filter(pl.col("created_at").is_null())["confirmed_at"].null_count() == 0
    meta = o.select(
        pl.col("metadata").str.json_decode(pl.Struct({"channel": pl.String, "payment_method": pl.String}))
    ).unnest("metadata")
    assert set(meta["channel"]) <= set(contract.ORDER_CHANNELS) and set(meta["payment_method"]) <= set(
        contract.PAYMENT_METHODS
    )


def test_scans_and_statuses(t: dict[str, pl.DataFrame]) -> None:
    scans = t["ticket_scans"]
    assert scans["ticket_id"].n_unique() == scans.height
    tk = t["tickets"].join(
        scans.select(pl.col("ticket_id").alias("id"), "result", "scanned_at"), on="id", how="left"
    )
    assert (
        tk.filter(pl.col("status") == "refunded")["result"].null_count()
        == tk.filter(pl.col("status") == "refunded").height
    )
    assert (tk.filter(pl.col("status") == "used")["result"] == "valid").all()
    valid = tk.filter(pl.col("result") == "valid")
    assert (valid["checked_in_at"] == valid["scanned_at"]).all() and valid["is_validated"].all()
    assert (
        tk.filter(pl.col("result") != "valid")["checked_in_at"].null_count()
        == tk.filter(pl.col("result") != "valid").height
    )
    assert (
        set(scans["result"]) <= {"valid", "invalid", "duplicate"}
        and (scans["result"] == "valid").mean() > 0.9
    )
    future = t["event_schedules"].filter(pl.col("starts_at") > NOW)["event_id"]
    assert scans.filter(pl.col("event_id").is_in(future.implode())).height == 0


def test_resale_and_platform_fees(t: dict[str, pl.DataFrame]) -> None:
    listings, transfers, fees = t["marketplace_listings"], t["marketplace_transfers"], t["platform_fees"]
    assert listings.height > 0 and transfers.height > 0 and fees.height > 0
    assert listings["ticket_id"].n_unique() == listings.height
    assert (listings["price"] >= (listings["original_face_value"] * 0.9).floor()).all()
    face = listings.join(
        t["tickets"].select(pl.col("id").alias("ticket_id"), cents("face_value").alias("face")),
        on="ticket_id",
    )
    assert (face["original_face_value"] == face["face"]).all()
    done = transfers.filter(pl.col("status") == "completed")
    assert set(done["listing_id"]) == set(listings.filter(pl.col("status") == "sold")["id"])
    assert set(transfers["status"]) <= {"completed", "failed"}
    j = fees.join(
        done.select(pl.col("id").alias("transfer_id"), "usd_value", "listing_id", "completed_at"),
        on="transfer_id",
    ).join(listings.select(pl.col("id").alias("listing_id"), "price", "ticket_id"), on="listing_id")
    assert j.height == fees.height == done.height
    assert (j["seller_payout"] == j["sale_price"] - j["platform_fee_amount"] - j["venue_fee_amount"]).all()
    assert (j["sale_price"] == j["usd_value"]).all() and (j["sale_price"] == j["price"]).all()
    assert (j["platform_fee_amount"] / j["sale_price"]).is_between(0.045, 0.105).all()
    assert (j["venue_fee_amount"] / j["sale_price"]).is_between(0.015, 0.055).all()
    assert (j["created_at"] == j["completed_at"]).all()
    moved = (
        t["tickets"]
        .join(j.select(pl.col("ticket_id").alias("id")), on="id")
        .join(
            done.join(listings.select(pl.col("id").alias("listing_id"), "ticket_id"), on="listing_id").select(
                pl.col("ticket_id").alias("id"), "buyer_id"
            ),
            on="id",
        )
    )
    assert (moved["status"] == "transferred").all() and (moved["user_id"] == moved["buyer_id"]).all()
    assert (moved["user_id"] != moved["original_purchaser_id"]).all() and (moved["transfer_count"] == 1).all()
    crypto = transfers.filter(pl.col("payment_method") == "crypto")
    assert crypto["payment_currency"].is_in(["USDC", "SOL"]).all()


def test_dimensions(t: dict[str, pl.DataFrame]) -> None:
    users = t["users"]
    assert (users["email"] == users["email"].str.to_lowercase()).all() and users[
        "email"
    ].n_unique() == users.height
    assert (users["status"] == "ACTIVE").mean() > 0.8
    assert t["event_categories"]["slug"].to_list() == [
        "music",
        "sports",
        "theater",
        "comedy",
        "arts",
        "conference",
        "workshop",
        "festival",
        "family",
        "nightlife",
    ]
    s = t["event_schedules"].join(
        t["events"].select(pl.col("id").alias("event_id"), "start_date"), on="event_id"
    )
    assert s.height == t["events"].height and (s["ends_at"] > s["starts_at"]).all()
    assert (s["starts_at"] == s["start_date"]).all() and (s["doors_open_at"] < s["starts_at"]).all()
    assert (t["venues"]["max_capacity"] > 0).all() and t["venues"]["slug"].n_unique() == t["venues"].height
    first_order = t["orders"].group_by("user_id").agg(pl.min("created_at"))
    u = users.join(first_order, left_on="id", right_on="user_id")
    assert (u["created_at"] <= u["created_at_right"]).all()


# -- realism -------------------------------------------------------------------------------------------------------
def test_rates_are_in_band(t: dict[str, pl.DataFrame]) -> None:
    o, tk = t["orders"], t["tickets"]
    paid = o.filter(pl.col("status").is_in(PAID))
    assert paid.height / o.height > 0.85
    assert 0.005 < (paid["status"] == "REFUNDED").mean() < 0.2
    past = tk.join(
        t["event_schedules"].select("event_id", "ends_at", pl.col("status").alias("s")), on="event_id"
    ).filter((pl.col("ends_at") < NOW) & (pl.col("s") != "CANCELLED") & (pl.col("status") != "refunded"))
    no_show = 1 - past["id"].is_in(t["ticket_scans"]["ticket_id"].implode()).mean()
    assert 0.02 < no_show < 0.2
    assert 0.01 < t["marketplace_listings"].height / tk.height < 0.12


def test_repeat_buying_is_heterogeneous(t: dict[str, pl.DataFrame]) -> None:
    per_user = t["orders"].group_by("user_id").len()["len"]
    assert 0.7 * t["users"].height < per_user.len() < t["users"].height  # some users never buy
    assert 0.2 < (per_user >= 2).mean() < 0.9  # repeat customers...
    assert per_user.max() >= 6  # ...with a heavy tail


# -- PostgreSQL and DuckDB targets ------------------------------------------------------------------------------
@pytest.fixture
def pg_url():
    """A throwaway database (tests/conftest.py skips postgres-marked tests when the server is unreachable)."""
    name = f"tt_test_gen_{os.getpid()}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield re.sub(r"/[^/]*$", f"/{name}", PG_ADMIN_URL)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.mark.postgres
def test_clean_tiny_passes_the_platform_constraints_in_postgres(
    pg_url: str, t: dict[str, pl.DataFrame]
) -> None:
    counts = generate(
        pg_url, scale="tiny", seed=SEED, as_of=AS_OF, progress=False
    )  # applies add_constraints.sql
    assert counts == {name: df.height for name, df in t.items()}
    db = SourceDB(pg_url)
    checks = db.query("SELECT count(*) AS n FROM pg_constraint WHERE conrelid = 'orders'::regclass")["n"][0]
    assert checks >= 2
    assert (
        db.count(
            "orders",
            "total_cents = subtotal_cents + platform_fee_cents + processing_fee_cents + tax_cents"
            " - discount_cents",
        )
        == counts["orders"]
    )


@pytest.mark.postgres
def test_dirty_tiny_lands_in_postgres(pg_url: str, tmp_path) -> None:
    path = tmp_path / "manifest.json"
    counts = generate(
        pg_url, scale="tiny", seed=SEED, as_of=AS_OF, dirty=True, manifest_path=path, progress=False
    )
    manifest = json.loads(path.read_text())
    db = SourceDB(pg_url)
    assert db.is_landing()
    assert (
        db.count("order_items", "quantity = %s", [dirty.ABSURD_QUANTITY])
        == manifest["absurd_magnitude"]["order_items"]
    )
    assert db.count("order_refunds", "id IS NULL OR id = ''") == manifest["null_key"]["order_refunds"]
    assert counts["tickets"] == db.count("tickets")


def test_generate_into_duckdb(tmp_path, t: dict[str, pl.DataFrame]) -> None:
    url = f"duckdb:///{tmp_path / 'source.duckdb'}"
    counts = generate(url, scale="tiny", seed=SEED, as_of=AS_OF, progress=False)
    db = SourceDB(url)
    assert counts == {name: df.height for name, df in t.items()}
    assert not db.is_landing()
    assert db.count("tickets") == t["tickets"].height
    assert db.query("SELECT sum(total_cents) AS s FROM orders")["s"][0] == t["orders"]["total_cents"].sum()


def test_dirty_mode_refuses_large(tmp_path) -> None:
    with pytest.raises(ValueError, match="medium"):
        generate(f"duckdb:///{tmp_path / 's.duckdb'}", scale="large", dirty=True, progress=False)


# -- dirty injection ---------------------------------------------------------------------------------------------
def test_injection_is_reproducible(t: dict[str, pl.DataFrame], injected) -> None:
    frames, manifest = dirty.inject({name: render_text(df) for name, df in t.items()}, seed=SEED, rate=0.01)
    assert json.dumps(manifest, sort_keys=True) == json.dumps(injected[1], sort_keys=True)
    for name, df in frames.items():
        assert df.equals(injected[0][name]), name
    assert all(df.schema == {c: pl.String for c in df.columns} for df in frames.values())


def _detect(frames: dict[str, pl.DataFrame]) -> dict[str, dict[str, int]]:
    """Count each kind of bad row from the dirty frames alone."""

    def vocab(table: str) -> tuple[str, ...]:
        return contract.table(table).statuses["status"]

    def count(table: str, expr: pl.Expr) -> int:
        return frames[table].select(expr.fill_null(False).sum()).item()

    def no_tz(column: str) -> pl.Expr:
        return pl.col(column).is_not_null() & ~pl.col(column).str.contains(r"[+-]\d\d$")

    out: dict[str, dict[str, int]] = {}
    out["null_key"] = {
        n: count(n, pl.col("id").is_null() | (pl.col("id") == ""))
        for n in ("order_refunds", "ticket_scans", "platform_fees", "order_items")
    }
    out["negative_money"] = {
        n: count(n, pl.col(c).str.starts_with("-"))
        for n, c in (
            ("orders", "total_cents"),
            ("order_refunds", "refund_amount_cents"),
            ("tickets", "price"),
        )
    }
    out["nan_money"] = {
        n: count(n, pl.col(c) == "NaN")
        for n, c in (("ticket_types", "price"), ("tickets", "price"), ("order_items", "total_price_cents"))
    }
    out["money_in_dollars"] = {
        "order_items": count("order_items", pl.col("unit_price_cents").str.contains(r"\."))
    }
    out["unknown_status"] = {
        n: count(n, ~pl.col("status").str.to_lowercase().is_in([v.lower() for v in vocab(n)]))
        for n in ("orders", "tickets", "marketplace_listings")
    }
    out["mixed_case_status"] = {
        n: count(
            n,
            pl.col("status").str.to_lowercase().is_in([v.lower() for v in vocab(n)])
            & ~pl.col("status").is_in(list(vocab(n))),
        )
        for n in ("orders", "tickets")
    }
    out["duplicate_key_conflict"] = {
        n: frames[n]
        .filter(pl.col("id").is_not_null() & (pl.col("id") != ""))
        .select(pl.len() - pl.col("id").n_unique())
        .item()
        for n in ("orders", "tickets", "order_refunds")
    }
    out["orphan_reference"] = {
        "tickets": count("tickets", ~pl.col("event_id").is_in(frames["events"]["id"].implode())),
        "orders": count("orders", ~pl.col("user_id").is_in(frames["users"]["id"].implode())),
    }
    out["future_timestamp"] = {
        n: count(n, pl.col(c).str.slice(0, 4).cast(pl.Int32) > AS_OF.year + 1)
        for n, c in (
            ("tickets", "created_at"),
            ("ticket_scans", "scanned_at"),
            ("order_refunds", "created_at"),
        )
    }
    out["timestamp_without_timezone"] = {
        "orders": count("orders", no_tz("confirmed_at")),
        "tickets": count("tickets", no_tz("purchased_at")),
    }
    odd = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u202a-\u202e\ufeff]"
    out["control_characters"] = {
        n: frames[n]
        .select(
            pl.col(c)
            .map_elements(
                lambda s: bool(re.search(odd, s)) or unicodedata.normalize("NFC", s) != s,
                return_dtype=pl.Boolean,
            )
            .sum()
        )
        .item()
        for n, c in (("events", "name"), ("order_refunds", "refund_reason"))
    }
    out["absurd_magnitude"] = {
        n: count(n, pl.col(c).cast(pl.Int64, strict=False) > 1_000_000)
        for n, c in (("order_items", "quantity"), ("orders", "ticket_quantity"))
    }
    return out


def test_manifest_counts_match_what_can_be_re_detected(injected) -> None:
    frames, manifest = injected
    assert set(dirty.KINDS) <= set(manifest)
    detected = _detect(frames)
    for kind, per_table in detected.items():
        assert per_table == manifest[kind], kind
        assert all(n >= 1 for n in per_table.values()), kind
    assert set(detected) | {"empty_day"} == set(dirty.KINDS)


def test_empty_day_and_its_side_effects(t: dict[str, pl.DataFrame], injected) -> None:
    frames, manifest = injected
    day = manifest["empty_day_date"]
    assert sum(manifest["empty_day"].values()) > 0
    for name in contract.fact_tables():
        clean_day = dirty.partition_day(name, render_text(t[name]))
        assert (clean_day == day).sum() == manifest["empty_day"][name], name
        assert (dirty.partition_day(name, frames[name]) == day).sum() == 0, name
    # orphans by the contract's references: the injected ones plus the empty day's stranded children
    for name, spec in contract.tables().items():
        df = frames[name]
        orphan = pl.lit(False)
        for column, parent in spec.references.items():
            orphan = orphan | (
                pl.col(column).is_not_null() & ~pl.col(column).is_in(frames[parent]["id"].implode())
            )
        expected = manifest["orphan_reference"].get(name, 0) + manifest["empty_day_orphans"].get(name, 0)
        assert df.select(orphan.sum()).item() == expected, name


def test_injected_rows_are_disjoint_across_kinds(injected) -> None:
    _, manifest = injected
    for name in contract.TABLE_ORDER:
        seen: set[str] = set()
        for kind in dirty.KINDS:
            if kind == "empty_day":
                continue
            ids = set(manifest["keys"][kind].get(name, []))
            assert len(ids) == manifest[kind].get(name, 0), (kind, name)
            assert not ids & seen, (kind, name)
            seen |= ids


def test_dirty_values_look_as_documented(t: dict[str, pl.DataFrame], injected) -> None:
    frames, manifest = injected
    items = frames["order_items"].filter(pl.col("unit_price_cents").str.contains(r"\."))
    clean = t["order_items"].select("id", "unit_price_cents", "quantity")
    j = items.join(clean, on="id", suffix="_clean")
    assert (j["unit_price_cents"].cast(pl.Float64) * 100 == j["unit_price_cents_clean"]).all()
    assert (
        j["total_price_cents"].cast(pl.Float64)
        == j["unit_price_cents"].cast(pl.Float64) * j["quantity_clean"]
    ).all()
    naive = frames["orders"].filter(
        pl.col("confirmed_at").is_not_null() & ~pl.col("confirmed_at").str.ends_with("+00")
    )
    assert naive["confirmed_at"].str.contains(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$").all()
    assert naive["created_at"].is_not_null().all()
    assert manifest["seed"] == SEED and manifest["rate"] == 0.01


def test_prefetch_passes_items_through_and_reraises_producer_errors() -> None:
    from analytics_pipelines.generator.run import _prefetch

    def broken():
        yield "a", pl.DataFrame()
        raise RuntimeError("generator failed")

    assert [name for name, _ in _prefetch(iter([("x", pl.DataFrame()), ("y", pl.DataFrame())]))] == ["x", "y"]
    with pytest.raises(RuntimeError, match="generator failed"):
        list(_prefetch(broken()))


def test_generate_writes_the_planted_truth_it_built(tmp_path) -> None:
    from analytics_pipelines.generator.truth import planted_truth, read_truth

    path = tmp_path / "truth.json"
    generate(f"duckdb:///{tmp_path / 'source.duckdb'}", scale="tiny", seed=3, truth_path=path, progress=False)
    assert read_truth(path) == planted_truth("tiny", seed=3, behavior=False)
    assert "behavior" not in read_truth(path)  # no documents generated, no truth about them
    generate(
        f"duckdb:///{tmp_path / 'with_docs.duckdb'}",
        scale="tiny",
        seed=3,
        truth_path=path,
        behavior_dir=tmp_path / "mongo",
        progress=False,
    )
    assert read_truth(path) == planted_truth("tiny", seed=3)
    assert read_truth(path)["behavior"]
