-- Per scope (venue, tenant, platform) and RFM segment at one as-of date: customers, revenue, orders,
-- average order value, average purchase frequency and average predicted 12-month CLV, every one of the 11
-- segments listed for every scope (zero customers where empty).
-- Inputs: rfm (customer_rfm_scores rows of one as-of date), clv (customer_lifetime_value: tenant_id,
-- venue_id, user_id, clv_12m_cents), segments (segment, segment_order). A customer's CLV in a tenant or on
-- the platform is the sum of their per-venue CLVs there.
WITH clv_scoped AS (
    SELECT CASE grouping(tenant_id, venue_id) WHEN 0 THEN 'venue' WHEN 1 THEN 'tenant' ELSE 'platform' END AS scope,
           coalesce(venue_id, tenant_id, 'platform') AS scope_id, user_id, sum(clv_12m_cents) AS clv_12m_cents
    FROM clv
    GROUP BY GROUPING SETS ((tenant_id, venue_id, user_id), (tenant_id, user_id), (user_id))
), scopes AS (
    SELECT DISTINCT as_of, scope, scope_id, tenant_id, venue_id FROM rfm
), per AS (
    SELECT r.scope, r.scope_id, r.segment,
           count(*) AS customers, sum(r.monetary_cents) AS revenue_cents, sum(r.frequency) AS orders,
           avg(r.frequency) AS avg_purchase_frequency, avg(c.clv_12m_cents) AS avg_clv_12m_cents,
           count(c.clv_12m_cents) AS customers_with_clv
    FROM rfm r LEFT JOIN clv_scoped c USING (scope, scope_id, user_id)
    GROUP BY 1, 2, 3
)
SELECT s.as_of, s.scope, s.scope_id, s.tenant_id, s.venue_id, g.segment,
       CAST(coalesce(p.customers, 0) AS BIGINT) AS customers,
       CAST(coalesce(p.revenue_cents, 0) AS BIGINT) AS revenue_cents,
       CAST(coalesce(p.orders, 0) AS BIGINT) AS orders,
       CAST(round(p.revenue_cents / p.orders) AS BIGINT) AS avg_order_value_cents,
       p.avg_purchase_frequency,
       p.avg_clv_12m_cents,
       CAST(coalesce(p.customers_with_clv, 0) AS BIGINT) AS customers_with_clv,
       round(100.0 * coalesce(p.customers, 0) / sum(coalesce(p.customers, 0)) OVER w, 4) AS customers_pct,
       round(100.0 * coalesce(p.revenue_cents, 0) / nullif(sum(coalesce(p.revenue_cents, 0)) OVER w, 0), 4)
           AS revenue_pct
FROM scopes s
CROSS JOIN segments g
LEFT JOIN per p ON p.scope = s.scope AND p.scope_id = s.scope_id AND p.segment = g.segment
WINDOW w AS (PARTITION BY s.scope, s.scope_id)
ORDER BY s.scope, s.scope_id, g.segment_order
