-- Independent re-derivation for the reconciliation checks (control_totals), straight from staging.
-- Recognized primary sales per UTC day, tenant (the order's) and revenue line, straight from staging (the partitions read: first - 31 days .. last + 1).
SELECT CAST(coalesce(o.confirmed_at, o.created_at) AT TIME ZONE 'UTC' AS DATE) AS day,
       o.tenant_id,
       'primary:' || o.channel AS revenue_line,
       count(*) AS orders,
       sum(coalesce(i.q, 0)) AS tickets,
       sum(o.total_cents) AS gross_revenue_cents,
       sum(o.subtotal_cents - coalesce(o.discount_cents, 0)) AS ticket_revenue_cents,
       sum(coalesce(o.platform_fee_cents, 0) + coalesce(o.processing_fee_cents, 0)) AS fees_cents
FROM stg_orders o
LEFT JOIN (SELECT order_id, sum(quantity) AS q FROM stg_order_items GROUP BY order_id) i ON i.order_id = o.id
WHERE o.status IN ('confirmed', 'completed', 'refunded')
  AND CAST(coalesce(o.confirmed_at, o.created_at) AT TIME ZONE 'UTC' AS DATE) BETWEEN $first AND $last
GROUP BY 1, 2, 3
