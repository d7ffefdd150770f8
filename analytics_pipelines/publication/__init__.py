"""Publication of time series to InfluxDB (issue 18): lines.py (rows -> line protocol), series.py (what is
published), writer.py (influxdb-client's write API), steps.py (publish a partition range). docs/publication.md."""
