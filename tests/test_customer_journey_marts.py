"""The rules of the two customer marts the customer routes read (issue 20): customer_ticket_events (tickets to
their purchaser, scans to the ticket's holder) and customer_email_keys (the landing pseudonyms of customer_360's
customers), as pure functions; the routes over them are tested in tests/test_api_customers_ops.py."""

from __future__ import annotations


def test_ticket_events_attribute_tickets_to_purchasers_and_scans_to_holders():
    from datetime import UTC, datetime

    import polars as pl

    from analytics_pipelines.customers.ticket_events import ticket_event_rows

    at = datetime(2026, 10, 20, 12, tzinfo=UTC)
    tickets = pl.DataFrame(
        {
            "id": ["t1", "t2", "t3"],
            "tenant_id": ["A", "A", "A"],
            "event_id": ["e1", "e1", "e9"],
            "user_id": ["bob", None, None],  # t1 resold to bob; t3 has nobody
            "original_purchaser_id": ["ann", "ann", None],
            "price_cents": [5000, 4000, 100],
            "currency": ["USD"] * 3,
            "status": ["transferred", "sold", "available"],
            "created_at": [at] * 3,
        }
    )
    old = tickets.head(1).with_columns(
        id=pl.lit("t0"), user_id=pl.lit("cid"), created_at=pl.lit(at).dt.offset_by("-90d")
    )
    scans = pl.DataFrame(
        {
            "id": ["s1", "s2", "s0", "s3"],
            "ticket_id": ["t1", "t2", "t0", "t3"],
            "event_id": ["e1", "e1", None, "e9"],
            "scanned_at": [at.replace(day=25)] * 4,
            "result": ["valid", "duplicate", "valid", "valid"],
        }
    )
    out = ticket_event_rows(
        tickets, scans, pl.concat([tickets, old]), pl.DataFrame({"id": ["e1"], "venue_id": ["V"]})
    )
    got = {(r["event_type"], r["ref_id"]): r for r in out.iter_rows(named=True)}
    assert set(got) == {("ticket", "t1"), ("ticket", "t2"), ("scan", "s1"), ("scan", "s2"), ("scan", "s0")}
    assert got["ticket", "t1"]["user_id"] == "ann" and got["ticket", "t1"]["amount_cents"] == 5000
    assert got["scan", "s1"]["user_id"] == "bob" and got["scan", "s1"]["detail"] == "valid"
    assert got["scan", "s2"]["user_id"] == "ann" and got["scan", "s2"]["amount_cents"] is None
    # a scan of a ticket created long before the range: its holder and event come from that ticket
    assert got["scan", "s0"]["user_id"] == "cid" and got["scan", "s0"]["event_id"] == "e1"
    assert {r["venue_id"] for r in got.values()} == {"V"}


def test_email_keys_are_the_landing_pseudonyms_of_customer_360_rows():
    import polars as pl

    from analytics_pipelines import privacy
    from analytics_pipelines.customers.email_keys import check_email_keys_frame, email_keys

    key = b"k" * 32
    users = privacy.pseudonymize_landing(
        pl.DataFrame({"id": ["u1", "u2", "u3"], "email": [" Ann@X.org", "bob@x.org", None]}), "users", key
    )
    c360 = pl.DataFrame({"tenant_id": ["A", "B", "A", "A"], "user_id": ["u1", "u1", "u2", "u3"]})
    out = email_keys(users, c360)
    assert out.select("tenant_id", "user_id").rows() == [("A", "u1"), ("A", "u2"), ("B", "u1")]
    assert (
        out.filter(pl.col("user_id") == "u1")["email_pseudonym"].to_list()
        == [privacy.pseudonym_for_email(key, "ann@x.org")] * 2
    )
    assert "ann@x.org" not in str(out.rows()).lower()
    assert check_email_keys_frame(out, c360).passed
    bad = pl.concat([out, out.head(1).with_columns(email_pseudonym=pl.lit("ann@x.org"))])
    outcome = check_email_keys_frame(bad, c360)
    assert (
        not outcome.passed
        and outcome.metadata["duplicates"] == 1
        and outcome.metadata["not_a_pseudonym"] == 1
    )
