-- Segment transitions between two consecutive as-of dates of customer_rfm_scores, per scope: how many
-- customers went from each segment to each segment, and the revenue they added in between.
-- Inputs: prev, cur (customer_rfm_scores rows of one as-of date each). A customer who is in cur but not in
-- prev (first purchase in the scope in between) comes from '(new)'; RFM keeps every past customer, so
-- nobody leaves.
SELECT (SELECT max(as_of) FROM prev) AS from_as_of, c.as_of AS to_as_of, c.scope, c.scope_id,
       c.tenant_id, c.venue_id,
       coalesce(p.segment, '(new)') AS from_segment, c.segment AS to_segment,
       CAST(count(*) AS BIGINT) AS customers,
       CAST(sum(c.monetary_cents - coalesce(p.monetary_cents, 0)) AS BIGINT) AS revenue_between_cents
FROM cur c
LEFT JOIN prev p ON p.scope = c.scope AND p.scope_id = c.scope_id AND p.user_id = c.user_id
GROUP BY ALL
ORDER BY c.scope, c.scope_id, from_segment, to_segment
