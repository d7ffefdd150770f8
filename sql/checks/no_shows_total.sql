-- Sold tickets of ended, not cancelled/postponed events and how many never had a valid scan.
-- Runs over staging frames in memory (reconcile.check_no_shows); $now is the run's time.
SELECT count(*) AS tickets_sold,
       count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM stg_ticket_scans s
                                          WHERE s.ticket_id = t.id AND s.result = 'valid')) AS no_shows
FROM stg_tickets t JOIN stg_events e ON e.id = t.event_id
WHERE t.status IN ('sold', 'minted', 'active', 'transferred', 'checked_in', 'used')
  AND e.status NOT IN ('cancelled', 'postponed')
  AND NOT EXISTS (SELECT 1 FROM stg_event_schedules c WHERE c.event_id = e.id AND c.deleted_at IS NULL
                  AND c.status IN ('cancelled', 'postponed'))
  AND coalesce((SELECT max(coalesce(c.ends_at, c.starts_at)) FROM stg_event_schedules c
                 WHERE c.event_id = e.id AND c.deleted_at IS NULL), e.start_date) < $now
