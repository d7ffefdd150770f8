-- Per venue, day and event category (primary sales and refunds). Inputs: fct_orders, fct_refunds,
-- stg_event_categories.
WITH lines AS (
    SELECT tenant_id, venue_id, day, category_id, tickets, 1 AS orders, gross_revenue_cents, 0 AS refunds_cents
    FROM fct_orders
    UNION ALL
    SELECT tenant_id, venue_id, day, category_id, 0, 0, 0, refund_cents FROM fct_refunds
)
SELECT l.tenant_id, l.venue_id, l.day, l.category_id, coalesce(c.name, 'Uncategorized') AS category_name,
       CAST(sum(l.tickets) AS BIGINT) AS tickets, CAST(sum(l.orders) AS BIGINT) AS orders,
       CAST(sum(l.gross_revenue_cents) AS BIGINT) AS gross_revenue_cents,
       CAST(sum(l.refunds_cents) AS BIGINT) AS refunds_cents,
       CAST(sum(l.gross_revenue_cents) - sum(l.refunds_cents) AS BIGINT) AS net_revenue_cents
FROM lines l LEFT JOIN stg_event_categories c ON c.id = l.category_id
GROUP BY ALL
ORDER BY l.day, l.tenant_id, l.venue_id, category_name
