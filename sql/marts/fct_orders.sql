-- Recognized primary sales, one row per paid order (docs/marts.md, revenue-recognition rule).
-- Inputs: stg_orders and stg_order_items (partitions that can hold orders recognized in the range),
-- stg_events. Params: $first, $last (DATE, inclusive).
WITH paid AS (
    SELECT o.*, coalesce(o.confirmed_at, o.created_at) AS recognized_at
    FROM stg_orders o
    WHERE o.status IN ('confirmed', 'completed', 'refunded')
), items AS (
    SELECT order_id, sum(quantity) AS tickets FROM stg_order_items GROUP BY order_id
)
SELECT
    p.id AS order_id, p.tenant_id, e.venue_id, p.event_id, e.primary_category_id AS category_id, p.user_id,
    p.status, p.channel, p.payment_method, 'primary:' || p.channel AS revenue_line,
    p.recognized_at, CAST(p.recognized_at AS DATE) AS day,
    CAST(coalesce(i.tickets, 0) AS BIGINT) AS tickets,
    p.subtotal_cents - coalesce(p.discount_cents, 0) AS ticket_revenue_cents,
    coalesce(p.platform_fee_cents, 0) AS platform_fee_cents,
    coalesce(p.processing_fee_cents, 0) AS processing_fee_cents,
    coalesce(p.platform_fee_cents, 0) + coalesce(p.processing_fee_cents, 0) AS fees_cents,
    coalesce(p.tax_cents, 0) AS tax_cents,
    coalesce(p.discount_cents, 0) AS discount_cents,
    p.total_cents AS gross_revenue_cents,
    p.currency
FROM paid p
LEFT JOIN items i ON i.order_id = p.id
LEFT JOIN stg_events e ON e.id = p.event_id
WHERE CAST(p.recognized_at AS DATE) BETWEEN $first AND $last
-- The reference of the rule: build.fct_orders computes the same rows in polars, sorted by day, order_id
-- (tests/test_marts.py runs this file on the same inputs and compares).
