-- Hours with sales per venue; local_hour in the venue's own time zone (the old service's intraday view).
-- local_hour is added in Python per time zone (build.venue_analytics_hourly): DuckDB's timezone() with a
-- per-row zone name builds a calendar per call (16 s for 300k rows). Inputs: fct_orders, stg_venues.
WITH hourly AS (
    SELECT tenant_id, venue_id, day, date_trunc('hour', CAST(recognized_at AS TIMESTAMP)) AS hour_naive,
           CAST(sum(tickets) AS BIGINT) AS tickets_sold, count(*) AS orders,
           CAST(sum(gross_revenue_cents) AS BIGINT) AS gross_revenue_cents,
           count(DISTINCT user_id) AS unique_customers
    FROM fct_orders WHERE venue_id IS NOT NULL
    GROUP BY ALL
)
SELECT h.tenant_id, h.venue_id, h.day, CAST(h.hour_naive AS TIMESTAMPTZ) AS hour_utc,
       coalesce(v.timezone, 'UTC') AS venue_timezone,
       h.tickets_sold, h.orders, h.gross_revenue_cents, h.unique_customers
FROM hourly h LEFT JOIN stg_venues v ON v.id = h.venue_id
-- The reference of the rule: build.venue_analytics_hourly computes the same rows in polars (tests/test_marts.py
-- runs this file on the same inputs and compares), adds local_hour, sorts by hour_utc, venue_id.
