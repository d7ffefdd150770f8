"""Export requests (lifecycle over the ops tables) and scheduled report delivery. Dagster wiring lives in
`analytics_pipelines.exports.dagster`."""
