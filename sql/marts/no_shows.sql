-- Per event that has ended (ends_at before $now) and was neither cancelled nor postponed: sold tickets
-- (status sold, minted, active, transferred, checked_in, used) and how many of them never had a valid
-- scan. Inputs: tickets (stg_tickets: id, event_id, status), scans (stg_ticket_scans: ticket_id, result),
-- event_dim. Scanned = the ticket id is among the valid scans' ticket ids (a semi join; cheaper than a
-- left join to the distinct valid scans at 10M tickets).
WITH sold AS (
    SELECT t.event_id, count(*) AS tickets_sold,
           count(*) FILTER (WHERE t.id IN (SELECT ticket_id FROM scans WHERE result = 'valid')) AS tickets_scanned
    FROM tickets t
    WHERE t.status IN ('sold', 'minted', 'active', 'transferred', 'checked_in', 'used')
    GROUP BY t.event_id
)
SELECT e.tenant_id, e.venue_id, e.event_id, e.ends_at AS ended_at,
       CAST(s.tickets_sold AS BIGINT) AS tickets_sold, CAST(s.tickets_scanned AS BIGINT) AS tickets_scanned,
       CAST(s.tickets_sold - s.tickets_scanned AS BIGINT) AS no_shows,
       round(100.0 * (s.tickets_sold - s.tickets_scanned) / s.tickets_sold, 4) AS no_show_pct
FROM event_dim e JOIN sold s USING (event_id)
WHERE e.ends_at < $now AND NOT e.cancelled_or_postponed AND s.tickets_sold > 0
ORDER BY e.venue_id, e.ends_at, e.event_id
