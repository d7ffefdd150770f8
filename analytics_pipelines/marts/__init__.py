"""Marts: venue, event, revenue, resale, no-show, price and KPI tables built from staging.

`sqlrun.run` executes one `sql/marts/*.sql` file in an in-memory DuckDB over polars frames (pure: frames in,
frame out). `build` reads the inputs of each mart from the warehouse (only the partitions a date range
needs) and calls it. `reconcile` re-derives mart totals from staging by independent SQL for the asset checks.
See docs/marts.md for every table, its grain and the revenue-recognition rule.
"""
