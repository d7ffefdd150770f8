-- Monthly acquisition cohorts x months since the first purchase, per scope (venue, tenant, platform):
-- a customer's cohort is the UTC month of their first recognized order in the scope; month k (0 = the
-- cohort month) counts the cohort's customers with an order in calendar month cohort + k and their gross
-- revenue. Zero-filled from month 0 up to the month of $through, so each cohort is a complete matrix row.
-- Input: cells (scope, scope_id, tenant_id, venue_id, cohort_month, month, active_customers, revenue_cents:
-- the per-customer aggregation, done in polars by customers.build.cohorts). Params: $through (DATE).
WITH c AS (
    SELECT *, CAST(date_diff('month', cohort_month, month) AS BIGINT) AS months_since_first FROM cells
), sizes AS (
    SELECT scope, scope_id, tenant_id, venue_id, cohort_month, active_customers AS cohort_customers
    FROM c WHERE months_since_first = 0
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
LEFT JOIN c USING (scope, scope_id, cohort_month, months_since_first)
ORDER BY g.scope, g.scope_id, g.cohort_month, g.months_since_first
