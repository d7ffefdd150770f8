"""Cross-domain model bookkeeping: the `model_performance` table every model family reports into."""
