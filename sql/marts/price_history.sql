-- Every price of every ticket type as validity intervals [valid_from, valid_to), valid_to NULL = current.
-- Price points: the type's first price from its creation (the first change's old price, else today's
-- price), every ticket_price_history change, and every daily snapshot of ticket_types.price (which catches
-- changes the platform did not record in its history table). Consecutive equal prices are merged.
-- Inputs: price_changes (stg_ticket_price_history), stg_ticket_types, snapshots
-- (ticket_type_price_snapshots), event_dim.
WITH first_change AS (
    SELECT ticket_type_id, arg_min(old_price_cents, changed_at) AS old_price_cents
    FROM price_changes GROUP BY ticket_type_id
), points AS (
    SELECT t.id AS ticket_type_id, t.created_at AS effective_at, coalesce(f.old_price_cents, t.price_cents) AS price_cents,
           'initial' AS source, 0 AS prio
    FROM stg_ticket_types t LEFT JOIN first_change f ON f.ticket_type_id = t.id
    UNION ALL
    SELECT ticket_type_id, changed_at, new_price_cents, 'price_history', 1 FROM price_changes
    UNION ALL
    SELECT ticket_type_id, CAST(snapshot_date AS TIMESTAMPTZ), price_cents, 'snapshot', 2 FROM snapshots
), ordered AS (
    SELECT *, lag(price_cents) OVER w AS prev_price
    FROM points WHERE effective_at IS NOT NULL AND price_cents IS NOT NULL
    WINDOW w AS (PARTITION BY ticket_type_id ORDER BY effective_at, prio)
), changes AS (
    SELECT * FROM ordered WHERE prev_price IS NULL OR prev_price <> price_cents
)
SELECT e.tenant_id, e.venue_id, t.event_id, c.ticket_type_id, t.name AS ticket_type_name, c.price_cents,
       c.effective_at AS valid_from,
       lead(c.effective_at) OVER (PARTITION BY c.ticket_type_id ORDER BY c.effective_at, c.prio) AS valid_to,
       c.source, t.currency
FROM changes c
JOIN stg_ticket_types t ON t.id = c.ticket_type_id
LEFT JOIN event_dim e ON e.event_id = t.event_id
ORDER BY c.ticket_type_id, valid_from
