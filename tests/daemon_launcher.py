"""`dagster-daemon` for the daemon scenario (tests/test_daemon_postgres.py), with one constant changed: the
backfill loop's pause between iterations.

Dagster's backfill daemon submits the next runs of an asset backfill only on its next iteration, and sleeps
`dagster._daemon.controller.DEFAULT_DAEMON_INTERVAL_SECONDS` (30 s, not configurable in dagster.yaml) between
iterations: a backfill of the raw, staging and facts layers waits ~30 s per layer, two backfills ~4 minutes of a
CI worker asleep. The scenario checks what the daemon does, not how long it naps, so it sets the pause from
the first argument (seconds) and runs the real `dagster-daemon` command line with the rest. The same constant
is the asset daemon's default interval, which has nothing to evaluate here (the project declares no automation
conditions); the scheduler, sensor, run-queue and monitoring daemons have their own. Production keeps
Dagster's 30 s (docs/deploy.md)."""

from __future__ import annotations

import sys

if __name__ == "__main__":
    import dagster._daemon.controller as controller

    controller.DEFAULT_DAEMON_INTERVAL_SECONDS = float(sys.argv.pop(1))
    from dagster._daemon.cli import main

    sys.argv[0] = "dagster-daemon"
    main()
