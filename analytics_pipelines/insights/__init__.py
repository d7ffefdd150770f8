"""Venue insights (issue 21): statistically supported findings per venue, built daily by the `venue_insights`
asset from the marts (rules.py: sales changes; events.py: events, anomalies, pricing, churn risk; steps.py:
the builder), served by api/insights.py. docs/insights.md."""
