-- Per event and day with sales or refunds. cumulative_tickets_sold counts every ticket sold up to and
-- including the day (refunds do not un-sell); sell-through = cumulative / capacity.
-- Inputs: order_history (event_id, day, tickets, orders, gross_revenue_cents of fct_orders up to $last),
-- fct_refunds (the range), event_dim.
WITH daily AS (
    SELECT event_id, day, sum(tickets) AS tickets_sold, sum(orders) AS orders,
           sum(gross_revenue_cents) AS gross_revenue_cents
    FROM order_history GROUP BY ALL
), cum AS (
    SELECT *, sum(tickets_sold) OVER (PARTITION BY event_id ORDER BY day) AS cumulative_tickets_sold
    FROM daily
), refunds AS (
    SELECT event_id, day, sum(refund_cents) AS refunds_cents FROM fct_refunds GROUP BY ALL
), keys AS (
    SELECT event_id, day FROM daily WHERE day BETWEEN $first AND $last
    UNION SELECT event_id, day FROM refunds WHERE event_id IS NOT NULL
), last_cum AS (  -- for refund-only days: the cumulative count as of that day
    SELECT k.event_id, k.day, max(c.cumulative_tickets_sold) AS cumulative_tickets_sold
    FROM keys k LEFT JOIN cum c ON c.event_id = k.event_id AND c.day <= k.day GROUP BY ALL
)
SELECT
    e.tenant_id, e.venue_id, k.event_id, k.day,
    CAST(coalesce(d.tickets_sold, 0) AS BIGINT) AS tickets_sold,
    CAST(coalesce(d.orders, 0) AS BIGINT) AS orders,
    CAST(coalesce(d.gross_revenue_cents, 0) AS BIGINT) AS gross_revenue_cents,
    CAST(coalesce(r.refunds_cents, 0) AS BIGINT) AS refunds_cents,
    CAST(coalesce(d.gross_revenue_cents, 0) - coalesce(r.refunds_cents, 0) AS BIGINT) AS net_revenue_cents,
    e.capacity,
    CAST(coalesce(l.cumulative_tickets_sold, 0) AS BIGINT) AS cumulative_tickets_sold,
    CASE WHEN e.capacity > 0 THEN round(100.0 * coalesce(l.cumulative_tickets_sold, 0) / e.capacity, 4)
    END AS sell_through_pct,
    CAST(date_diff('day', k.day, CAST(e.starts_at AS DATE)) AS INTEGER) AS days_to_event
FROM keys k
JOIN event_dim e ON e.event_id = k.event_id
LEFT JOIN daily d ON d.event_id = k.event_id AND d.day = k.day
LEFT JOIN refunds r ON r.event_id = k.event_id AND r.day = k.day
LEFT JOIN last_cum l ON l.event_id = k.event_id AND l.day = k.day
ORDER BY k.day, k.event_id
