"""KPI anomaly detection (issue 17): hourly series, robust weekday x hour baselines, scores and severities,
alert episodes, and the seed's z-score rule for comparison. docs/anomalies.md explains the signals."""
