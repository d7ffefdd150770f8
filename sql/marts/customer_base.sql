-- Per customer and scope, everything the customer marts start from: recognized primary sales (fct_orders)
-- up to and including $as_of, per venue (tenant_id, venue_id), per tenant (venue_id NULL) and platform-wide
-- (tenant_id and venue_id NULL). Orders without a customer (user_id NULL) belong to nobody and are left out.
-- Input: orders (fct_orders: tenant_id, venue_id, user_id, recognized_at, day, tickets, gross_revenue_cents,
-- currency). Params: $as_of (DATE).
WITH o AS (
    SELECT * FROM orders WHERE day <= $as_of AND user_id IS NOT NULL
), g AS (
    SELECT
        CASE grouping(tenant_id, venue_id) WHEN 0 THEN 'venue' WHEN 1 THEN 'tenant' ELSE 'platform' END AS scope,
        tenant_id, venue_id, user_id,
        min(recognized_at) AS first_purchase_at,
        max(recognized_at) AS last_purchase_at,
        min(day) AS first_day,
        max(day) AS last_day,
        CAST(count(*) AS BIGINT) AS orders,
        CAST(count(DISTINCT day) AS BIGINT) AS purchase_days,
        CAST(sum(tickets) AS BIGINT) AS tickets,
        CAST(sum(gross_revenue_cents) AS BIGINT) AS monetary_cents,
        min(currency) AS currency,
        max(currency) AS max_currency
    FROM o
    GROUP BY GROUPING SETS ((tenant_id, venue_id, user_id), (tenant_id, user_id), (user_id))
)
SELECT scope, coalesce(venue_id, tenant_id, 'platform') AS scope_id, tenant_id, venue_id, user_id,
       first_purchase_at, last_purchase_at, first_day, last_day,
       CAST($as_of - last_day AS BIGINT) AS recency_days, orders, purchase_days, tickets, monetary_cents,
       currency, max_currency
FROM g
ORDER BY scope, scope_id, user_id
