"""Automation logic behind the schedules, sensors and operations jobs (no Dagster objects here: those live
in assets/, checks/, jobs/, schedules/ and sensors/): maintenance and retention, source-change detection,
operational notifications, retries."""
