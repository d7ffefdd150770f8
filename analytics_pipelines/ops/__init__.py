"""Operational tables: state that users and jobs update row by row (alert rules and instances, export
requests, report subscriptions, delivery ledger). Kept apart from the analytical warehouse, whose tables are
only ever replaced whole or by partition."""
