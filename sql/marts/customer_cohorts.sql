-- Monthly acquisition cohorts x months since the first purchase, per scope (venue, tenant, platform):
-- a customer's cohort is the UTC month of their first recognized order in the scope; month k (0 = the
-- cohort month) counts the cohort's customers with an order in calendar month cohort + k and their gross
-- revenue. Zero-filled from month 0 up to the month of $through, so each cohort is a complete matrix row.
-- Input: orders (fct_orders rows). Params: $through (DATE).
WITH o AS (
    SELECT tenant_id, venue_id, user_id, CAST(date_trunc('month', day) AS DATE) AS month, gross_revenue_cents
    FROM orders WHERE day <= $through AND user_id IS NOT NULL
), per_month AS (
    SELECT CASE grouping(tenant_id, venue_id) WHEN 0 THEN 'venue' WHEN 1 THEN 'tenant' ELSE 'platform' END AS scope,
           coalesce(venue_id, tenant_id, 'platform') AS scope_id, tenant_id, venue_id, user_id, month,
           sum(gross_revenue_cents) AS revenue_cents
    FROM o
    GROUP BY GROUPING SETS ((tenant_id, venue_id, user_id, month), (tenant_id, user_id, month), (user_id, month))
), firsts AS (
    SELECT *, min(month) OVER (PARTITION BY scope, scope_id, user_id) AS cohort_month FROM per_month
), cells AS (
    SELECT scope, scope_id, any_value(tenant_id) AS tenant_id, any_value(venue_id) AS venue_id, cohort_month,
           CAST(date_diff('month', cohort_month, month) AS BIGINT) AS months_since_first,
           count(*) AS active_customers, sum(revenue_cents) AS revenue_cents
    FROM firsts GROUP BY scope, scope_id, cohort_month, month
), sizes AS (
    SELECT scope, scope_id, tenant_id, venue_id, cohort_month, active_customers AS cohort_customers
    FROM cells WHERE months_since_first = 0
), grid AS (
    SELECT s.*, CAST(k AS BIGINT) AS months_since_first
    FROM sizes s, range(0, date_diff('month', s.cohort_month, CAST(date_trunc('month', $through) AS DATE)) + 1) r(k)
)
SELECT g.scope, g.scope_id, g.tenant_id, g.venue_id, g.cohort_month, g.months_since_first,
       CAST(g.cohort_month + to_months(CAST(g.months_since_first AS INTEGER)) AS DATE) AS activity_month,
       CAST(g.cohort_customers AS BIGINT) AS cohort_customers,
       CAST(coalesce(c.active_customers, 0) AS BIGINT) AS active_customers,
       round(100.0 * coalesce(c.active_customers, 0) / g.cohort_customers, 4) AS retention_pct,
       CAST(coalesce(c.revenue_cents, 0) AS BIGINT) AS revenue_cents,
       CAST(sum(coalesce(c.revenue_cents, 0)) OVER (PARTITION BY g.scope, g.scope_id, g.cohort_month
            ORDER BY g.months_since_first) AS BIGINT) AS cumulative_revenue_cents,
       CAST(round(sum(coalesce(c.revenue_cents, 0)) OVER (PARTITION BY g.scope, g.scope_id, g.cohort_month
            ORDER BY g.months_since_first) / g.cohort_customers) AS BIGINT) AS cumulative_revenue_per_customer_cents
FROM grid g
LEFT JOIN cells c USING (scope, scope_id, cohort_month, months_since_first)
ORDER BY g.scope, g.scope_id, g.cohort_month, g.months_since_first
