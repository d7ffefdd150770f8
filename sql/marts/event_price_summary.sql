-- Per event: the current price range of its ticket types and how often prices changed. Input: price_history.
SELECT tenant_id, venue_id, event_id, count(DISTINCT ticket_type_id) AS ticket_types,
       min(price_cents) FILTER (WHERE valid_to IS NULL) AS current_min_price_cents,
       max(price_cents) FILTER (WHERE valid_to IS NULL) AS current_max_price_cents,
       CAST(round(avg(price_cents) FILTER (WHERE valid_to IS NULL)) AS BIGINT) AS current_avg_price_cents,
       min(price_cents) AS lowest_price_cents, max(price_cents) AS highest_price_cents,
       CAST(count(*) - count(DISTINCT ticket_type_id) AS BIGINT) AS price_changes
FROM price_history GROUP BY ALL ORDER BY venue_id, event_id
