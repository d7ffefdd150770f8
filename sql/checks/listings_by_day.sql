-- Marketplace listings created per UTC day of listed_at and tenant (the listing's).
SELECT CAST(listed_at AT TIME ZONE 'UTC' AS DATE) AS day, tenant_id, count(*) AS listings_created
FROM stg_marketplace_listings
WHERE CAST(listed_at AT TIME ZONE 'UTC' AS DATE) BETWEEN $first AND $last
GROUP BY 1, 2
