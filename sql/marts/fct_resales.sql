-- Completed marketplace transfers at completed_at, with listing prices and the platform/venue fees.
-- Inputs: stg_marketplace_transfers (partitions that can hold transfers completed in the range),
-- listings (the transfers' listings), fees (stg_platform_fees of those transfers), stg_events.
WITH fee AS (
    SELECT transfer_id, sum(platform_fee_amount_cents) AS platform_fee_cents,
           sum(venue_fee_amount_cents) AS venue_fee_cents, sum(seller_payout_cents) AS seller_payout_cents
    FROM fees GROUP BY transfer_id
)
SELECT
    t.id AS transfer_id, t.listing_id, l.ticket_id, t.tenant_id, coalesce(t.venue_id, e.venue_id) AS venue_id,
    t.event_id, e.primary_category_id AS category_id, t.buyer_id, t.seller_id, t.payment_method,
    'resale:' || coalesce(t.payment_method, 'unknown') AS revenue_line,
    t.completed_at, CAST(t.completed_at AS DATE) AS day,
    t.usd_value_cents AS sale_cents, l.price_cents AS listing_price_cents,
    l.original_face_value_cents AS face_value_cents,
    CASE WHEN l.original_face_value_cents > 0
         THEN round(100.0 * (t.usd_value_cents - l.original_face_value_cents) / l.original_face_value_cents, 4)
    END AS markup_pct,
    coalesce(f.platform_fee_cents, 0) AS platform_fee_cents, coalesce(f.venue_fee_cents, 0) AS venue_fee_cents,
    f.seller_payout_cents, t.currency
FROM stg_marketplace_transfers t
LEFT JOIN listings l ON l.id = t.listing_id
LEFT JOIN fee f ON f.transfer_id = t.id
LEFT JOIN stg_events e ON e.id = t.event_id
WHERE t.status = 'completed' AND CAST(t.completed_at AS DATE) BETWEEN $first AND $last
ORDER BY day, transfer_id
