-- One row per event: venue, category, schedule window and capacity (shared input of several marts).
-- capacity = the schedule's capacity_override when set, else the sum of the ticket types' quantities;
-- Deleted events are kept (flag `deleted`): their sales still count.
-- sold_quantity = the ticket types' current sold_quantity (active + used + transferred tickets).
WITH sched AS (
    SELECT event_id, min(starts_at) AS starts_at, max(coalesce(ends_at, starts_at)) AS ends_at,
           max(capacity_override) AS capacity_override,
           bool_or(status IN ('cancelled', 'postponed')) AS schedule_cancelled
    FROM stg_event_schedules WHERE deleted_at IS NULL GROUP BY event_id
), tiers AS (
    SELECT event_id, sum(quantity) AS quantity, sum(sold_quantity) AS sold_quantity
    FROM stg_ticket_types GROUP BY event_id
)
SELECT
    e.tenant_id, e.venue_id, e.id AS event_id, e.name AS event_name, e.primary_category_id AS category_id,
    c.name AS category_name, e.status, coalesce(s.starts_at, e.start_date) AS starts_at,
    coalesce(s.ends_at, s.starts_at, e.start_date) AS ends_at,
    CAST(coalesce(s.capacity_override, t.quantity, 0) AS BIGINT) AS capacity,
    CAST(coalesce(t.sold_quantity, 0) AS BIGINT) AS sold_quantity,
    (e.status IN ('cancelled', 'postponed') OR coalesce(s.schedule_cancelled, false)) AS cancelled_or_postponed,
    e.deleted_at IS NOT NULL AS deleted
FROM stg_events e
LEFT JOIN sched s ON s.event_id = e.id
LEFT JOIN tiers t ON t.event_id = e.id
LEFT JOIN stg_event_categories c ON c.id = e.primary_category_id
