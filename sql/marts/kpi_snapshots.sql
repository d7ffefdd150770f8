-- Business KPIs as of $at (the end of the snapshot hour), per tenant (venue_id NULL) and per venue, in long
-- form (metric, value). 24 h windows are (at - 24 h, at]; the hourly revenue compares (at - 1 h, at] with
-- the hour before (change NULL when the previous hour had no revenue); hourly_orders / hourly_refunds count
-- the recognized orders and completed refunds of (at - 1 h, at] (the KPI anomaly detector's series).
-- Inputs: stg_venues, stg_events, stg_ticket_types, orders_window, refunds_window, resales_window
-- (fct rows of the last 48 hours or more).
WITH venue_keys AS (
    SELECT tenant_id, id AS venue_id FROM stg_venues
), o AS (
    SELECT tenant_id, venue_id,
           sum(tickets) FILTER (WHERE recognized_at > $at - INTERVAL 24 HOUR AND recognized_at <= $at) AS tickets_sold_24h,
           sum(gross_revenue_cents) FILTER (WHERE recognized_at > $at - INTERVAL 24 HOUR AND recognized_at <= $at) AS gross_revenue_24h_cents,
           sum(gross_revenue_cents) FILTER (WHERE recognized_at > $at - INTERVAL 1 HOUR AND recognized_at <= $at) AS hourly_revenue_cents,
           sum(gross_revenue_cents) FILTER (WHERE recognized_at > $at - INTERVAL 2 HOUR AND recognized_at <= $at - INTERVAL 1 HOUR) AS prev_hour_revenue_cents,
           count(*) FILTER (WHERE recognized_at > $at - INTERVAL 1 HOUR AND recognized_at <= $at) AS hourly_orders
    FROM orders_window GROUP BY ALL
), r AS (
    SELECT tenant_id, venue_id, sum(refund_cents) AS refunds_24h_cents,
           count(*) FILTER (WHERE refunded_at > $at - INTERVAL 1 HOUR) AS hourly_refunds
    FROM refunds_window
    WHERE refunded_at > $at - INTERVAL 24 HOUR AND refunded_at <= $at GROUP BY ALL
), x AS (
    SELECT tenant_id, venue_id, sum(sale_cents) AS resale_volume_24h_cents FROM resales_window
    WHERE completed_at > $at - INTERVAL 24 HOUR AND completed_at <= $at GROUP BY ALL
), per_venue AS (
    SELECT k.tenant_id, k.venue_id,
           coalesce(o.tickets_sold_24h, 0) AS tickets_sold_24h, coalesce(o.gross_revenue_24h_cents, 0) AS gross_revenue_24h_cents,
           coalesce(r.refunds_24h_cents, 0) AS refunds_24h_cents, coalesce(x.resale_volume_24h_cents, 0) AS resale_volume_24h_cents,
           coalesce(o.hourly_revenue_cents, 0) AS hourly_revenue_cents, coalesce(o.prev_hour_revenue_cents, 0) AS prev_hour_revenue_cents,
           coalesce(o.hourly_orders, 0) AS hourly_orders, coalesce(r.hourly_refunds, 0) AS hourly_refunds
    FROM venue_keys k
    LEFT JOIN o USING (tenant_id, venue_id) LEFT JOIN r USING (tenant_id, venue_id) LEFT JOIN x USING (tenant_id, venue_id)
), rolled AS (
    SELECT tenant_id, venue_id, tickets_sold_24h, gross_revenue_24h_cents, refunds_24h_cents, resale_volume_24h_cents,
           hourly_revenue_cents, prev_hour_revenue_cents, hourly_orders, hourly_refunds FROM per_venue
    UNION ALL
    SELECT tenant_id, NULL, sum(tickets_sold_24h), sum(gross_revenue_24h_cents), sum(refunds_24h_cents),
           sum(resale_volume_24h_cents), sum(hourly_revenue_cents), sum(prev_hour_revenue_cents),
           sum(hourly_orders), sum(hourly_refunds)
    FROM per_venue GROUP BY tenant_id
), tenant_only AS (
    SELECT v.tenant_id,
           count(*) FILTER (WHERE v.created_at <= $at AND (v.deleted_at IS NULL OR v.deleted_at > $at)) AS venues_total,
           count(*) FILTER (WHERE v.status = 'active' AND v.created_at <= $at AND v.deleted_at IS NULL) AS venues_active
    FROM stg_venues v GROUP BY ALL
), ev AS (
    SELECT e.tenant_id,
           count(*) FILTER (WHERE e.status IN ('published', 'on_sale', 'sold_out') AND e.created_at <= $at
                            AND e.deleted_at IS NULL) AS events_published,
           count(*) FILTER (WHERE e.deleted_at IS NULL AND e.status NOT IN ('cancelled', 'postponed', 'draft')
                            AND EXISTS (SELECT 1 FROM stg_ticket_types t WHERE t.event_id = e.id AND t.is_active
                                        AND t.sale_start <= $at AND (t.sale_end IS NULL OR t.sale_end > $at)))
               AS events_on_sale
    FROM stg_events e GROUP BY ALL
), wide AS (
    SELECT r.tenant_id, r.venue_id,
           CAST(t.venues_total AS DOUBLE) AS venues_total, CAST(t.venues_active AS DOUBLE) AS venues_active,
           CAST(e.events_published AS DOUBLE) AS events_published, CAST(e.events_on_sale AS DOUBLE) AS events_on_sale,
           CAST(r.tickets_sold_24h AS DOUBLE) AS tickets_sold_24h,
           CAST(r.gross_revenue_24h_cents AS DOUBLE) AS gross_revenue_24h_cents,
           CAST(r.refunds_24h_cents AS DOUBLE) AS refunds_24h_cents,
           CASE WHEN r.gross_revenue_24h_cents > 0 THEN round(100.0 * r.refunds_24h_cents / r.gross_revenue_24h_cents, 4) END
               AS refund_rate_24h_pct,
           CAST(r.resale_volume_24h_cents AS DOUBLE) AS resale_volume_24h_cents,
           CAST(r.hourly_revenue_cents AS DOUBLE) AS hourly_revenue_cents,
           CASE WHEN r.prev_hour_revenue_cents > 0
                THEN round(100.0 * (r.hourly_revenue_cents - r.prev_hour_revenue_cents) / r.prev_hour_revenue_cents, 4) END
               AS hourly_revenue_change_pct,
           CAST(r.hourly_orders AS DOUBLE) AS hourly_orders, CAST(r.hourly_refunds AS DOUBLE) AS hourly_refunds
    FROM rolled r
    LEFT JOIN tenant_only t ON t.tenant_id = r.tenant_id AND r.venue_id IS NULL
    LEFT JOIN ev e ON e.tenant_id = r.tenant_id AND r.venue_id IS NULL
)
SELECT CAST($at AS TIMESTAMPTZ) - INTERVAL 1 HOUR AS snapshot_hour, tenant_id, venue_id, metric, CAST(value AS DOUBLE) AS value
FROM (UNPIVOT wide ON venues_total, venues_active, events_published, events_on_sale, tickets_sold_24h,
      gross_revenue_24h_cents, refunds_24h_cents, refund_rate_24h_pct, resale_volume_24h_cents, hourly_revenue_cents,
      hourly_revenue_change_pct, hourly_orders, hourly_refunds INTO NAME metric VALUE value)
ORDER BY tenant_id, venue_id NULLS FIRST, metric
