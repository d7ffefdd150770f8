-- Completed refunds per UTC day of created_at, tenant (the order's, else the refund's) and revenue line of
-- their order, straight from staging.
SELECT CAST(r.created_at AT TIME ZONE 'UTC' AS DATE) AS day,
       coalesce(o.tenant_id, r.tenant_id) AS tenant_id,
       'primary:' || coalesce(o.channel, 'unknown') AS revenue_line,
       count(*) AS refunds, sum(r.refund_amount_cents) AS refunds_cents
FROM stg_order_refunds r LEFT JOIN stg_orders o ON o.id = r.order_id
WHERE r.refund_status = 'completed' AND CAST(r.created_at AT TIME ZONE 'UTC' AS DATE) BETWEEN $first AND $last
GROUP BY 1, 2, 3
