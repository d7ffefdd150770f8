-- Per venue, day and revenue line: primary:<channel> from orders and refunds, resale:<payment_method>
-- from completed transfers (gross = sale value, fees = platform + venue fee). Inputs: fct_* (the range).
WITH lines AS (
    SELECT tenant_id, venue_id, day, revenue_line, 'primary' AS source, channel, tickets,
           1 AS transactions, gross_revenue_cents, 0 AS refunds_cents, fees_cents
    FROM fct_orders
    UNION ALL
    SELECT tenant_id, venue_id, day, revenue_line, 'primary', channel, 0, 0, 0, refund_cents, 0
    FROM fct_refunds
    UNION ALL
    SELECT tenant_id, venue_id, day, revenue_line, 'resale', coalesce(payment_method, 'unknown'), 1, 1,
           sale_cents, 0, platform_fee_cents + venue_fee_cents
    FROM fct_resales
)
SELECT tenant_id, venue_id, day, revenue_line, source, channel,
       CAST(sum(tickets) AS BIGINT) AS tickets, CAST(sum(transactions) AS BIGINT) AS transactions,
       CAST(sum(gross_revenue_cents) AS BIGINT) AS gross_revenue_cents,
       CAST(sum(refunds_cents) AS BIGINT) AS refunds_cents, CAST(sum(fees_cents) AS BIGINT) AS fees_cents,
       CAST(sum(gross_revenue_cents) - sum(refunds_cents) AS BIGINT) AS net_revenue_cents
FROM lines
GROUP BY ALL
ORDER BY day, tenant_id, venue_id, revenue_line
