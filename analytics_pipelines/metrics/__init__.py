"""Custom metrics (issue 21): points venue systems record through the API, kept in the ops store and turned
into the `custom_metrics` mart by a sensor-triggered asset."""
