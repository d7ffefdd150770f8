"""Monitoring analytics (issue 17): sales velocity and sell-out ETA (docs/monitoring.md)."""
