-- Primary sales per venue at hour / day / week (ISO, Monday) / month grain, with growth against the
-- calendar-previous period. Periods with no sales are present with zeros (from the venue's first sale to
-- $through), so "previous period" never skips a gap. Growth is NULL when the previous period is 0 or
-- absent (no divide-by-zero, no infinite growth). The hour grain covers only hours >= $hour_since.
-- Inputs: order_history (tenant_id, venue_id, recognized_at, tickets, gross_revenue_cents,
-- ticket_revenue_cents, user_id of every recognized order).
WITH grains(granularity, step) AS (
    VALUES ('hour', INTERVAL 1 HOUR), ('day', INTERVAL 1 DAY), ('week', INTERVAL 7 DAY), ('month', INTERVAL 1 MONTH)
), facts AS (
    SELECT g.granularity, o.tenant_id, o.venue_id, date_trunc(g.granularity, o.recognized_at) AS period_start,
           o.tickets, o.gross_revenue_cents, o.ticket_revenue_cents, o.user_id
    FROM order_history o CROSS JOIN grains g
    WHERE o.venue_id IS NOT NULL AND (g.granularity <> 'hour' OR o.recognized_at >= $hour_since)
), agg AS (
    SELECT granularity, tenant_id, venue_id, period_start, sum(tickets) AS tickets_sold, count(*) AS orders,
           sum(gross_revenue_cents) AS gross_revenue_cents, sum(ticket_revenue_cents) AS ticket_revenue_cents,
           count(DISTINCT user_id) AS unique_customers
    FROM facts GROUP BY ALL
), bounds AS (
    SELECT a.granularity, a.tenant_id, a.venue_id, min(a.period_start) AS first_period,
           date_trunc(a.granularity, CAST($through AS TIMESTAMPTZ)) AS last_period, any_value(g.step) AS step
    FROM agg a JOIN grains g USING (granularity) GROUP BY ALL
), grid AS (
    SELECT b.granularity, b.tenant_id, b.venue_id, unnest(range(b.first_period, b.last_period + b.step, b.step))
           AS period_start
    FROM bounds b
), filled AS (
    SELECT g.granularity, g.tenant_id, g.venue_id, g.period_start,
           coalesce(a.tickets_sold, 0) AS tickets_sold, coalesce(a.orders, 0) AS orders,
           coalesce(a.gross_revenue_cents, 0) AS gross_revenue_cents,
           coalesce(a.ticket_revenue_cents, 0) AS ticket_revenue_cents,
           coalesce(a.unique_customers, 0) AS unique_customers
    FROM grid g LEFT JOIN agg a USING (granularity, tenant_id, venue_id, period_start)
), lagged AS (
    SELECT *, lag(tickets_sold) OVER w AS prev_tickets, lag(gross_revenue_cents) OVER w AS prev_revenue
    FROM filled WINDOW w AS (PARTITION BY granularity, venue_id ORDER BY period_start)
)
SELECT tenant_id, venue_id, granularity, period_start,
       CAST(tickets_sold AS BIGINT) AS tickets_sold, CAST(orders AS BIGINT) AS orders,
       CAST(gross_revenue_cents AS BIGINT) AS gross_revenue_cents,
       CAST(unique_customers AS BIGINT) AS unique_customers,
       CASE WHEN tickets_sold > 0 THEN CAST(round(ticket_revenue_cents / tickets_sold) AS BIGINT)
       END AS avg_ticket_price_cents,
       CASE WHEN prev_tickets > 0 THEN round(100.0 * (tickets_sold - prev_tickets) / prev_tickets, 4)
       END AS tickets_growth_pct,
       CASE WHEN prev_revenue > 0 THEN round(100.0 * (gross_revenue_cents - prev_revenue) / prev_revenue, 4)
       END AS revenue_growth_pct
FROM lagged
ORDER BY granularity, venue_id, period_start
