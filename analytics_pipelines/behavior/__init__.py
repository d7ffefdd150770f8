"""Behavioral analytics (issue 18): MongoDB ingestion, funnel, attribution, campaigns (docs/behavior.md)."""
