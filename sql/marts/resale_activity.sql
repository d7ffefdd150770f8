-- Per event and day: listings created (listed_at), completed resales (completed_at), volume, face value,
-- markup and fees. Inputs: listings_in_range (stg_marketplace_listings, partitions first..last),
-- fct_resales (the range), event_dim.
WITH listed AS (
    SELECT event_id, CAST(listed_at AS DATE) AS day, count(*) AS listings_created
    FROM listings_in_range WHERE CAST(listed_at AS DATE) BETWEEN $first AND $last GROUP BY ALL
), sold AS (
    SELECT event_id, day, count(*) AS resales, sum(sale_cents) AS resale_volume_cents,
           sum(face_value_cents) AS face_value_cents, avg(markup_pct) AS avg_markup_pct,
           sum(platform_fee_cents) AS platform_fees_cents, sum(venue_fee_cents) AS venue_fees_cents,
           any_value(tenant_id) AS tenant_id, any_value(venue_id) AS venue_id
    FROM fct_resales GROUP BY event_id, day
), keys AS (
    SELECT event_id, day FROM listed UNION SELECT event_id, day FROM sold
)
SELECT coalesce(e.tenant_id, s.tenant_id) AS tenant_id, coalesce(e.venue_id, s.venue_id) AS venue_id,
       k.event_id, k.day,
       CAST(coalesce(l.listings_created, 0) AS BIGINT) AS listings_created,
       CAST(coalesce(s.resales, 0) AS BIGINT) AS resales,
       CAST(coalesce(s.resale_volume_cents, 0) AS BIGINT) AS resale_volume_cents,
       CAST(coalesce(s.face_value_cents, 0) AS BIGINT) AS face_value_cents,
       round(s.avg_markup_pct, 4) AS avg_markup_pct,
       CAST(coalesce(s.platform_fees_cents, 0) AS BIGINT) AS platform_fees_cents,
       CAST(coalesce(s.venue_fees_cents, 0) AS BIGINT) AS venue_fees_cents
FROM keys k
LEFT JOIN listed l ON l.event_id = k.event_id AND l.day = k.day
LEFT JOIN sold s ON s.event_id = k.event_id AND s.day = k.day
LEFT JOIN event_dim e ON e.event_id = k.event_id
ORDER BY k.day, k.event_id
