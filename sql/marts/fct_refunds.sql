-- Completed refunds on their own date, attributed to the order's venue, event, customer and channel.
-- Inputs: stg_order_refunds (partitions first..last), orders (the refunded orders, any date), stg_events.
SELECT
    r.id AS refund_id, r.order_id, coalesce(o.tenant_id, r.tenant_id) AS tenant_id, e.venue_id, o.event_id,
    e.primary_category_id AS category_id, o.user_id, coalesce(o.channel, 'unknown') AS channel,
    'primary:' || coalesce(o.channel, 'unknown') AS revenue_line,
    r.created_at AS refunded_at, CAST(r.created_at AS DATE) AS day, r.refund_type,
    r.refund_amount_cents AS refund_cents, r.currency
FROM stg_order_refunds r
LEFT JOIN orders o ON o.id = r.order_id
LEFT JOIN stg_events e ON e.id = o.event_id
WHERE r.refund_status = 'completed' AND CAST(r.created_at AS DATE) BETWEEN $first AND $last
ORDER BY day, refund_id
