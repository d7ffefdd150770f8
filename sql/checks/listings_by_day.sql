-- Marketplace listings created per UTC day of listed_at.
SELECT CAST(listed_at AT TIME ZONE 'UTC' AS DATE) AS day, count(*) AS listings_created
FROM stg_marketplace_listings
WHERE CAST(listed_at AT TIME ZONE 'UTC' AS DATE) BETWEEN $first AND $last
GROUP BY 1
