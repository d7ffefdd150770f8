-- The old service's seasonality, over venue_analytics of the two years up to $through: per (month, year)
-- sums, then per calendar month the average tickets, revenue (net, cents) and days with sales, the stddev of
-- tickets (sample), volatility = stddev / avg x 100 (NULL when avg is 0), and the ratio of the month's
-- average tickets to the mean of the venue's monthly averages: > 1.2 Peak, > 0.8 Normal, else Off Season.
-- Inputs: va (venue_analytics rows).
WITH monthly AS (
    SELECT tenant_id, venue_id, month(day) AS month, year(day) AS year, sum(tickets_sold) AS tickets,
           sum(net_revenue_cents) AS revenue, count(*) FILTER (WHERE tickets_sold > 0) AS days_with_sales
    FROM va WHERE day > CAST($through AS DATE) - INTERVAL 2 YEAR AND day <= CAST($through AS DATE)
    GROUP BY ALL
), per_month AS (
    SELECT tenant_id, venue_id, month, avg(tickets) AS avg_tickets, avg(revenue) AS avg_revenue,
           avg(days_with_sales) AS avg_event_days, stddev_samp(tickets) AS stddev_tickets
    FROM monthly GROUP BY ALL
), ratio AS (
    SELECT *, CASE WHEN avg(avg_tickets) OVER (PARTITION BY venue_id) > 0
                   THEN avg_tickets / avg(avg_tickets) OVER (PARTITION BY venue_id) END AS seasonality_ratio
    FROM per_month
)
SELECT tenant_id, venue_id, CAST(month AS INTEGER) AS month, round(avg_tickets, 4) AS avg_tickets,
       CAST(round(avg_revenue) AS BIGINT) AS avg_revenue_cents, round(avg_event_days, 4) AS avg_event_days,
       round(stddev_tickets, 4) AS stddev_tickets,
       CASE WHEN avg_tickets > 0 THEN round(coalesce(stddev_tickets, 0) / avg_tickets * 100, 4) END AS volatility_pct,
       round(seasonality_ratio, 4) AS seasonality_ratio,
       -- the season follows the ratio as stored (rounded): a reader never sees 0.8000 labelled Normal
       CASE WHEN round(seasonality_ratio, 4) > 1.2 THEN 'Peak' WHEN round(seasonality_ratio, 4) > 0.8 THEN 'Normal'
            ELSE 'Off Season' END AS season
FROM ratio
ORDER BY venue_id, month
