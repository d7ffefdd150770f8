-- Completed transfers per UTC day of completed_at, tenant (the transfer's) and payment method, with their platform/venue fees.
SELECT CAST(t.completed_at AT TIME ZONE 'UTC' AS DATE) AS day,
       t.tenant_id,
       'resale:' || coalesce(t.payment_method, 'unknown') AS revenue_line,
       count(*) AS resales, sum(t.usd_value_cents) AS resale_volume_cents,
       sum(coalesce(f.pf, 0)) AS platform_fees_cents, sum(coalesce(f.vf, 0)) AS venue_fees_cents
FROM stg_marketplace_transfers t
LEFT JOIN (SELECT transfer_id, sum(platform_fee_amount_cents) AS pf, sum(venue_fee_amount_cents) AS vf
           FROM stg_platform_fees GROUP BY transfer_id) f ON f.transfer_id = t.id
WHERE t.status = 'completed' AND CAST(t.completed_at AT TIME ZONE 'UTC' AS DATE) BETWEEN $first AND $last
GROUP BY 1, 2, 3
