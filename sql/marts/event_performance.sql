-- Every event with its all-time primary sales, refunds and capacity utilization, ranked per venue by
-- gross revenue (ties: more tickets first, then event id). Inputs: order_history, refund_history, event_dim.
WITH sales AS (
    SELECT event_id, sum(tickets) AS tickets_sold, sum(gross_revenue_cents) AS gross_revenue_cents
    FROM order_history GROUP BY event_id
), refunds AS (
    SELECT event_id, sum(refund_cents) AS refunds_cents FROM refund_history GROUP BY event_id
), perf AS (
    SELECT e.tenant_id, e.venue_id, e.event_id, e.event_name, e.category_name, e.starts_at, e.status,
           CAST(coalesce(s.tickets_sold, 0) AS BIGINT) AS tickets_sold,
           CAST(coalesce(s.gross_revenue_cents, 0) AS BIGINT) AS gross_revenue_cents,
           CAST(coalesce(s.gross_revenue_cents, 0) - coalesce(r.refunds_cents, 0) AS BIGINT) AS net_revenue_cents,
           e.capacity,
           CASE WHEN e.capacity > 0 THEN round(100.0 * coalesce(s.tickets_sold, 0) / e.capacity, 4) ELSE 0 END
               AS capacity_utilization_pct
    FROM event_dim e LEFT JOIN sales s USING (event_id) LEFT JOIN refunds r USING (event_id)
)
SELECT *, CAST(row_number() OVER (PARTITION BY venue_id ORDER BY gross_revenue_cents DESC, tickets_sold DESC,
                                  event_id) AS INTEGER) AS revenue_rank,
       row_number() OVER (PARTITION BY venue_id ORDER BY gross_revenue_cents DESC, tickets_sold DESC,
                          event_id) <= 10 AS is_top_10
FROM perf
ORDER BY venue_id, revenue_rank
