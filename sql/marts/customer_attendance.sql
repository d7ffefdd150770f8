-- Per ticket holder, tenant (the event's) and day an event ended: sold tickets of ended events and how many never had a valid
-- scan (the no_shows mart's rules: events ended before $now, not cancelled or postponed; ticket statuses
-- sold, minted, active, transferred, checked_in, used). The holder is tickets.user_id (who holds the
-- ticket at the event, after any transfer), else original_purchaser_id.
-- Inputs: tickets (stg_tickets: id, event_id, status, user_id, original_purchaser_id),
-- scans (stg_ticket_scans: ticket_id, result), event_dim. Params: $now.
WITH valid_scans AS (
    SELECT DISTINCT ticket_id FROM scans WHERE result = 'valid'
)
SELECT coalesce(t.user_id, t.original_purchaser_id) AS user_id, e.tenant_id, CAST(e.ends_at AS DATE) AS ended_day,
       CAST(count(*) AS BIGINT) AS tickets_ended,
       CAST(count(*) - count(v.ticket_id) AS BIGINT) AS no_shows
FROM tickets t
JOIN event_dim e ON e.event_id = t.event_id
LEFT JOIN valid_scans v ON v.ticket_id = t.id
WHERE t.status IN ('sold', 'minted', 'active', 'transferred', 'checked_in', 'used')
  AND e.ends_at < $now AND NOT e.cancelled_or_postponed
  AND coalesce(t.user_id, t.original_purchaser_id) IS NOT NULL
GROUP BY 1, 2, 3
-- (unordered: every consumer aggregates per customer; sorting 3.8 M rows here cost ~5 s at `large`)
