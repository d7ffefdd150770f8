"""The customer routes' logic without FastAPI (api/customer_routes.py is the thin layer over it): what a search
query is, the one-customer timeline's SQL, the list filters and the churn-risk bands. SQL is the dialect both
warehouse backends share, with %s placeholders (parameters only, never values in the text).

Scopes (docs/customers.md): a venue-scoped read sees the venue's rows of each customer mart (RFM scope
'venue', the venue's facts); a tenant-wide admin read sees the tenant's (RFM scope 'tenant', the tenant's
facts). The platform scope spans tenants and is never served."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from analytics_pipelines.privacy import pseudonym_for_email

#: the shortest search query (a shorter one is refused with 422: a two-letter prefix would enumerate customers)
MIN_QUERY = 6
#: a customer-id search needs at least this many hex digits of the id (16^8 ids per prefix: no enumeration)
MIN_ID_PREFIX = 8
MAX_QUERY = 254  # the longest e-mail address SMTP allows
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ID = re.compile(r"^[0-9a-f-]+$")
#: churn-risk bands over the churn model's probability: the seed flagged a customer above 70 (of 100)
CHURN_BANDS = {"low": (0.0, 0.3), "medium": (0.3, 0.7), "high": (0.7, 1.0)}


class QueryError(ValueError):
    """The search query is neither an e-mail address nor a long enough customer-id prefix."""


@dataclass(frozen=True)
class Search:
    kind: str  # "email" | "id"
    #: the keyed e-mail pseudonym (kind email) or the lower-case id prefix (kind id); never the address
    value: str


def classify(q: str, landing_key: Callable[[], bytes]) -> Search:
    """An e-mail address becomes its keyed pseudonym at once (the address goes no further); anything else
    must be a customer id or a prefix of one (hex and hyphens, at least MIN_ID_PREFIX hex digits).
    `landing_key` is called for e-mails only (privacy.landing_key: it raises PseudonymKeyError unset)."""
    text = q.strip()
    if "@" in text:
        if not _EMAIL.match(text):
            raise QueryError("q: not an e-mail address (expected name@domain.tld)")
        return Search("email", pseudonym_for_email(landing_key(), text))
    text = text.lower()
    if not _ID.match(text):
        raise QueryError("q: neither an e-mail address nor a customer id (hex digits and hyphens)")
    if len(text.replace("-", "")) < MIN_ID_PREFIX:
        raise QueryError(f"q: a customer-id search needs at least {MIN_ID_PREFIX} hex digits")
    return Search("id", text)


@dataclass(frozen=True)
class CustomerScope:
    """The tenant (always) and the venue (venue-scoped reads) a customer query is limited to."""

    tenant_id: str
    venue_id: str | None

    @property
    def rfm_scope(self) -> str:
        return "venue" if self.venue_id else "tenant"

    def facts(self, alias: str = "") -> tuple[str, list]:
        """Condition on a fact table's tenant_id (and venue_id)."""
        a = f"{alias}." if alias else ""
        if self.venue_id:
            return f"{a}tenant_id = %s AND {a}venue_id = %s", [self.tenant_id, self.venue_id]
        return f"{a}tenant_id = %s", [self.tenant_id]

    def rfm(self, alias: str = "") -> tuple[str, list]:
        """Condition on a scoped customer mart (scope, tenant, scope_id)."""
        a = f"{alias}." if alias else ""
        if self.venue_id:
            return (
                f"{a}scope = 'venue' AND {a}tenant_id = %s AND {a}venue_id = %s",
                [self.tenant_id, self.venue_id],
            )
        return f"{a}scope = 'tenant' AND {a}tenant_id = %s AND {a}scope_id = %s", [
            self.tenant_id,
            self.tenant_id,
        ]


#: the timeline's event types, in the order they sort within one instant
EVENT_TYPES = ("order", "ticket", "scan", "refund", "resale_purchase", "resale_sale", "segment_change")
JOURNEY_COLUMNS = (
    "occurred_at",
    "event_type",
    "ref_id",
    "venue_id",
    "event_id",
    "ticket_id",
    "amount_cents",
    "fees_cents",
    "currency",
    "tickets",
    "detail",
    "from_segment",
    "to_segment",
)


def journey_union(scope: CustomerScope, user_id: str) -> tuple[str, list]:
    """The customer's events in scope as one UNION ALL (JOURNEY_COLUMNS), with its parameters:
    - order (fct_orders): at recognized_at; amount = gross_revenue_cents (what the buyer paid), fees =
      fees_cents, tickets, detail = channel;
    - ticket (customer_ticket_events): a ticket issued to the customer as purchaser, at its creation; amount
      = its price, one ticket, detail = its status; scan: a scan of a ticket the customer holds, at scanned_at,
      no amount, detail = the scan result;
    - refund (fct_refunds): at refunded_at; amount = refund_cents (money back, positive), detail = refund_type;
    - resale_purchase / resale_sale (fct_resales, the customer as buyer / seller): at completed_at; amount =
      sale_cents (buyer) or seller_payout_cents (seller), fees = platform + venue fees, one ticket,
      detail = payment_method;
    - segment_change (customer_rfm_scores, the scope's rows): at the end of the as-of day whose segment
      differs from the customer's previous as-of date ('(new)' before the first), no amount.
    `ticket_id` is set on tickets, scans and resales."""
    f, fp = scope.facts()
    r, rp = scope.rfm()
    n = "CAST(NULL AS VARCHAR)"
    sql = f"""
        SELECT recognized_at AS occurred_at, 'order' AS event_type, order_id AS ref_id, venue_id, event_id,
               {n} AS ticket_id, CAST(gross_revenue_cents AS BIGINT) AS amount_cents, CAST(fees_cents AS BIGINT) AS fees_cents,
               currency, CAST(tickets AS BIGINT) AS tickets, channel AS detail,
               {n} AS from_segment, {n} AS to_segment
        FROM fct_orders WHERE user_id = %s AND {f}
        UNION ALL
        SELECT occurred_at, event_type, ref_id, venue_id, event_id, ticket_id, CAST(amount_cents AS BIGINT),
               CAST(NULL AS BIGINT), currency, CAST(1 AS BIGINT), detail, {n}, {n}
        FROM customer_ticket_events WHERE user_id = %s AND {f}
        UNION ALL
        SELECT refunded_at, 'refund', refund_id, venue_id, event_id, {n}, CAST(refund_cents AS BIGINT),
               CAST(NULL AS BIGINT), currency, CAST(NULL AS BIGINT), refund_type, {n}, {n}
        FROM fct_refunds WHERE user_id = %s AND {f}
        UNION ALL
        SELECT completed_at, 'resale_purchase', transfer_id, venue_id, event_id, ticket_id,
               CAST(sale_cents AS BIGINT),
               CAST(coalesce(platform_fee_cents, 0) + coalesce(venue_fee_cents, 0) AS BIGINT), currency,
               CAST(1 AS BIGINT), payment_method, {n}, {n}
        FROM fct_resales WHERE buyer_id = %s AND {f}
        UNION ALL
        SELECT completed_at, 'resale_sale', transfer_id, venue_id, event_id, ticket_id,
               CAST(seller_payout_cents AS BIGINT),
               CAST(coalesce(platform_fee_cents, 0) + coalesce(venue_fee_cents, 0) AS BIGINT), currency,
               CAST(1 AS BIGINT), payment_method, {n}, {n}
        FROM fct_resales WHERE seller_id = %s AND {f}
        UNION ALL
        SELECT CAST(as_of + 1 AS TIMESTAMPTZ), 'segment_change', CAST(as_of AS VARCHAR), venue_id,
               {n}, {n}, CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), currency, CAST(NULL AS BIGINT), rfm_code,
               coalesce(prev_segment, '(new)'), segment
        FROM (SELECT as_of, venue_id, currency, rfm_code, segment,
                     LAG(segment) OVER (ORDER BY as_of) AS prev_segment
              FROM customer_rfm_scores WHERE user_id = %s AND {r}) s
        WHERE prev_segment IS NULL OR prev_segment <> segment"""
    # the customer first: DuckDB applies the scan's filters in order, and the API's copy keeps these facts
    # in customer order (the registry's serve_order), so the first filter prunes row groups
    return sql, [user_id, *fp, user_id, *fp, user_id, *fp, user_id, *fp, user_id, *fp, user_id, *rp]


JOURNEY_TABLES = ("fct_orders", "customer_ticket_events", "fct_refunds", "fct_resales", "customer_rfm_scores")


#: the page query's extra column: the timeline's length (a window count over the whole union)
TOTAL_COLUMN = "__total"


def journey_sql(scope: CustomerScope, user_id: str, descending: bool, limit: int, offset: int):
    """(page SQL, its params, count SQL, its params): the timeline ordered by time (then type and id: a
    stable order across pages), newest first when `descending`. The page carries the timeline's length in
    TOTAL_COLUMN (one pass over the facts instead of two); the count query is for a page past the end."""
    union, params = journey_union(scope, user_id)
    direction = "DESC" if descending else "ASC"
    rank = " ".join(f"WHEN '{t}' THEN {i}" for i, t in enumerate(EVENT_TYPES))
    order = f"occurred_at {direction}, CASE event_type {rank} END, ref_id"
    page = (
        f"SELECT {', '.join(JOURNEY_COLUMNS)}, count(*) OVER () AS {TOTAL_COLUMN} FROM ({union}) j "
        f"ORDER BY {order} LIMIT %s OFFSET %s"
    )
    count = f"SELECT count(*) AS n FROM ({union}) j"
    return page, [*params, limit, offset], count, params


def churn_band(band: str) -> tuple[float, float]:
    """[low, high) of a churn-risk band (the top band includes 1.0)."""
    if band not in CHURN_BANDS:
        raise ValueError(f"churn_risk: one of {', '.join(CHURN_BANDS)}")
    return CHURN_BANDS[band]


def list_conditions(
    segment: str | None,
    churn_risk: str | None,
    min_clv_cents: int | None,
    max_clv_cents: int | None,
    last_purchase_from,
    last_purchase_to,
    alias: str = "c",
) -> tuple[list[str], list]:
    """The list route's filters as SQL conditions over a row with segment, churn_probability, clv_12m_cents
    and last_purchase_at (`alias`). A churn band or CLV bound excludes customers without that figure."""
    a = f"{alias}."
    cond, params = [], []
    if segment:
        cond.append(f"{a}segment = %s")
        params.append(segment)
    if churn_risk:
        lo, hi = churn_band(churn_risk)
        cond.append(f"{a}churn_probability >= %s AND {a}churn_probability {'<=' if hi >= 1 else '<'} %s")
        params += [lo, hi]
    if min_clv_cents is not None:
        cond.append(f"{a}clv_12m_cents >= %s")
        params.append(min_clv_cents)
    if max_clv_cents is not None:
        cond.append(f"{a}clv_12m_cents <= %s")
        params.append(max_clv_cents)
    if last_purchase_from is not None:
        cond.append(f"CAST({a}last_purchase_at AS DATE) >= %s")
        params.append(last_purchase_from)
    if last_purchase_to is not None:
        cond.append(f"CAST({a}last_purchase_at AS DATE) <= %s")
        params.append(last_purchase_to)
    return cond, params


def clv_summary(rows: list[dict]) -> dict:
    """One customer's CLV over the venues of a read: sums of the predictions, the highest P(alive) (alive at
    one venue is alive), the highest churn probability; NULL where no row has a fit."""

    def total(col):
        vals = [r[col] for r in rows if r.get(col) is not None]
        return sum(vals) if vals else None

    def top(col):
        vals = [r[col] for r in rows if r.get(col) is not None]
        return max(vals) if vals else None

    return {
        "venues": len(rows),
        "orders": total("orders"),
        "historic_value_cents": total("historic_value_cents"),
        "p_alive": top("p_alive"),
        "expected_purchases_90d": total("expected_purchases_90d"),
        "expected_purchases_12m": total("expected_purchases_12m"),
        "clv_12m_cents": total("clv_12m_cents"),
        "clv_24m_cents": total("clv_24m_cents"),
        "churn_probability": top("churn_probability"),
    }
