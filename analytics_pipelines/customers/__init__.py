"""Customer analytics: RFM scores and segments, probabilistic CLV, the churn model, cohorts and the customer
360 (pure polars/DuckDB/numpy/scikit-learn; the Dagster assets are in analytics_pipelines.assets.customers).
Rules and columns: docs/customers.md."""
