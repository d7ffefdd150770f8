-- One row per tenant and customer: every user of stg_users (in their tenant) plus every (tenant, customer) with
-- activity in that tenant (orders, refunds, resales, attended events). One person's activity is never summed
-- across tenants: each tenant's row holds that tenant's orders, refunds, resales, attendance, CLV and RFM
-- segment only. Customer ids only (no names, emails or phones). Purchases are recognized orders up to the
-- end of $through.
-- Inputs, one row per (tenant_id, user_id) each (aggregated in polars by customers.build.customer_360): buyers
-- (orders, tickets, spend, first/last purchase, venues, events), fav (favourite category: most tickets,
-- then most spend, then the smallest id), ref (completed refunds), bought/sold (marketplace
-- purchases/sales), att (tickets of ended events and no-shows, by the event's tenant), clv_c
-- (customer_lifetime_value summed over the tenant's venues, P(alive) the highest over them); users
-- (stg_users: id, tenant_id, status, created_at: account columns on every row of the user), categories
-- (id, name), rfm (tenant-scope customer_rfm_scores rows of the latest as-of date), churn
-- (customer_churn_scores of the platform-wide model, keyed to the customer's home tenant: NULL elsewhere).
-- A NULL tenant_id (orders of no known tenant) is a tenant of its own: joins use IS NOT DISTINCT FROM.
WITH ids AS (
    SELECT * FROM (
        SELECT tenant_id, id AS user_id FROM users
        UNION SELECT tenant_id, user_id FROM buyers
        UNION SELECT tenant_id, user_id FROM ref
        UNION SELECT tenant_id, user_id FROM bought
        UNION SELECT tenant_id, user_id FROM sold
        UNION SELECT tenant_id, user_id FROM att
    ) a WHERE user_id IS NOT NULL
)
SELECT i.tenant_id, i.user_id, u.status AS account_status,
       u.created_at AS signed_up_at,
       b.first_purchase_at, b.last_purchase_at,
       CAST($through - CAST(b.first_purchase_at AS DATE) AS BIGINT) AS tenure_days,
       CAST($through - CAST(b.last_purchase_at AS DATE) AS BIGINT) AS days_since_last_purchase,
       CAST(coalesce(b.orders, 0) AS BIGINT) AS orders,
       CAST(coalesce(b.tickets, 0) AS BIGINT) AS tickets,
       CAST(coalesce(b.spend_cents, 0) AS BIGINT) AS spend_cents,
       CAST(coalesce(r.refunds_cents, 0) AS BIGINT) AS refunds_cents,
       CAST(coalesce(b.spend_cents, 0) - coalesce(r.refunds_cents, 0) AS BIGINT) AS net_spend_cents,
       CAST(round(b.spend_cents / b.orders) AS BIGINT) AS avg_order_value_cents,
       CAST(coalesce(b.venues, 0) AS BIGINT) AS venues,
       CAST(coalesce(b.events, 0) AS BIGINT) AS events,
       CAST(coalesce(r.refunds, 0) AS BIGINT) AS refunds,
       CAST(coalesce(bo.n, 0) AS BIGINT) AS resales_bought,
       CAST(coalesce(so.n, 0) AS BIGINT) AS resales_sold,
       f.favourite_category_id, c.name AS favourite_category,
       CAST(coalesce(a.tickets_ended, 0) AS BIGINT) AS tickets_ended,
       CAST(coalesce(a.no_shows, 0) AS BIGINT) AS no_shows,
       round(100.0 * a.no_shows / nullif(a.tickets_ended, 0), 4) AS no_show_rate_pct,
       rf.segment, rf.rfm_code, rf.as_of AS segment_as_of,
       v.clv_12m_cents, v.clv_24m_cents, v.p_alive, v.expected_purchases_12m,
       ch.churn_probability, ch.churn_flag,
       $through AS as_of
FROM ids i
LEFT JOIN users u ON u.id = i.user_id
LEFT JOIN buyers b ON b.user_id = i.user_id AND b.tenant_id IS NOT DISTINCT FROM i.tenant_id
LEFT JOIN fav f ON f.user_id = i.user_id AND f.tenant_id IS NOT DISTINCT FROM i.tenant_id
LEFT JOIN categories c ON c.id = f.favourite_category_id
LEFT JOIN ref r ON r.user_id = i.user_id AND r.tenant_id IS NOT DISTINCT FROM i.tenant_id
LEFT JOIN bought bo ON bo.user_id = i.user_id AND bo.tenant_id IS NOT DISTINCT FROM i.tenant_id
LEFT JOIN sold so ON so.user_id = i.user_id AND so.tenant_id IS NOT DISTINCT FROM i.tenant_id
LEFT JOIN att a ON a.user_id = i.user_id AND a.tenant_id IS NOT DISTINCT FROM i.tenant_id
LEFT JOIN rfm rf ON rf.user_id = i.user_id AND rf.tenant_id IS NOT DISTINCT FROM i.tenant_id
LEFT JOIN clv_c v ON v.user_id = i.user_id AND v.tenant_id IS NOT DISTINCT FROM i.tenant_id
LEFT JOIN churn ch ON ch.user_id = i.user_id AND ch.tenant_id IS NOT DISTINCT FROM i.tenant_id

