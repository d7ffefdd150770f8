-- Hours with sales per venue; local_hour in the venue's own time zone (the old service's intraday view).
-- Inputs: fct_orders (the range), stg_venues.
SELECT
    o.tenant_id, o.venue_id, o.day, date_trunc('hour', o.recognized_at) AS hour_utc,
    CAST(hour(timezone(coalesce(v.timezone, 'UTC'), date_trunc('hour', o.recognized_at))) AS INTEGER) AS local_hour,
    CAST(sum(o.tickets) AS BIGINT) AS tickets_sold, count(*) AS orders,
    CAST(sum(o.gross_revenue_cents) AS BIGINT) AS gross_revenue_cents,
    count(DISTINCT o.user_id) AS unique_customers
FROM fct_orders o LEFT JOIN stg_venues v ON v.id = o.venue_id
WHERE o.venue_id IS NOT NULL
GROUP BY o.tenant_id, o.venue_id, o.day, date_trunc('hour', o.recognized_at), v.timezone
ORDER BY hour_utc, o.venue_id
