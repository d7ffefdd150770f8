-- One row per venue that exists on the day (zero-filled), for every day first..last.
-- Inputs: fct_orders, fct_refunds, fct_resales (the range), stg_venues, event_dim.
WITH days AS (
    SELECT CAST(d AS DATE) AS day FROM range(CAST($first AS DATE), CAST($last AS DATE) + 1, INTERVAL 1 DAY) r(d)
), grid AS (
    SELECT v.tenant_id, v.id AS venue_id, d.day
    FROM stg_venues v CROSS JOIN days d
    WHERE CAST(v.created_at AS DATE) <= d.day AND (v.deleted_at IS NULL OR CAST(v.deleted_at AS DATE) > d.day)
), sales AS (
    SELECT venue_id, day, sum(tickets) AS tickets_sold, count(*) AS orders,
           sum(gross_revenue_cents) AS gross_revenue_cents, sum(ticket_revenue_cents) AS ticket_revenue_cents,
           sum(fees_cents) AS fees_cents, sum(tax_cents) AS tax_cents,
           count(DISTINCT user_id) AS unique_customers, count(DISTINCT event_id) AS events_active
    FROM fct_orders GROUP BY ALL
), refunds AS (
    SELECT venue_id, day, sum(refund_cents) AS refunds_cents FROM fct_refunds GROUP BY ALL
), resales AS (
    SELECT venue_id, day, count(*) AS resale_sales, sum(sale_cents) AS resale_volume_cents
    FROM fct_resales GROUP BY ALL
), held AS (  -- events taking place that day (UTC date of the start), not cancelled/postponed
    SELECT venue_id, CAST(starts_at AS DATE) AS day, sum(capacity) AS capacity, sum(sold_quantity) AS sold
    FROM event_dim WHERE NOT cancelled_or_postponed GROUP BY ALL
), keys AS (  -- the grid plus any venue/day with activity (a venue deleted later still reports its sales)
    SELECT tenant_id, venue_id, day FROM grid
    UNION SELECT tenant_id, venue_id, day FROM fct_orders WHERE venue_id IS NOT NULL
    UNION SELECT tenant_id, venue_id, day FROM fct_refunds WHERE venue_id IS NOT NULL
    UNION SELECT tenant_id, venue_id, day FROM fct_resales WHERE venue_id IS NOT NULL
)
SELECT
    k.tenant_id, k.venue_id, k.day,
    CAST(coalesce(s.tickets_sold, 0) AS BIGINT) AS tickets_sold,
    CAST(coalesce(s.orders, 0) AS BIGINT) AS orders,
    CAST(coalesce(s.gross_revenue_cents, 0) AS BIGINT) AS gross_revenue_cents,
    CAST(coalesce(s.ticket_revenue_cents, 0) AS BIGINT) AS ticket_revenue_cents,
    CAST(coalesce(r.refunds_cents, 0) AS BIGINT) AS refunds_cents,
    CAST(coalesce(s.fees_cents, 0) AS BIGINT) AS fees_cents,
    CAST(coalesce(s.tax_cents, 0) AS BIGINT) AS tax_cents,
    CAST(coalesce(s.gross_revenue_cents, 0) - coalesce(r.refunds_cents, 0) AS BIGINT) AS net_revenue_cents,
    CAST(coalesce(s.unique_customers, 0) AS BIGINT) AS unique_customers,
    CAST(coalesce(s.events_active, 0) AS BIGINT) AS events_active,
    CASE WHEN h.capacity > 0 THEN round(100.0 * h.sold / h.capacity, 4) END AS capacity_sold_pct,
    CASE WHEN s.tickets_sold > 0 THEN CAST(round(s.ticket_revenue_cents / s.tickets_sold) AS BIGINT)
    END AS avg_ticket_price_cents,
    CAST(coalesce(x.resale_sales, 0) AS BIGINT) AS resale_sales,
    CAST(coalesce(x.resale_volume_cents, 0) AS BIGINT) AS resale_volume_cents
FROM keys k
LEFT JOIN sales s USING (venue_id, day)
LEFT JOIN refunds r USING (venue_id, day)
LEFT JOIN resales x USING (venue_id, day)
LEFT JOIN held h USING (venue_id, day)
ORDER BY k.day, k.tenant_id, k.venue_id
