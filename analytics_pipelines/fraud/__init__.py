"""Fraud scoring (issue 17, docs/fraud.md): features per user-day, rules + IsolationForest, events, metrics."""
