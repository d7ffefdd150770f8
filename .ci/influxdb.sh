#!/usr/bin/env bash
# CI: make Debian's InfluxDB 1.6.7 (`influxdb` package) available to tests/test_publication.py, which starts its
# own influxd from a temp config on a free port (tests/influxdb_server.py) and fails under CI=true without it.
# Call it before `make test` (e.g. from .ci/run); a no-op when influxd is already installed.
set -euo pipefail
if ! command -v influxd >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends influxdb
    # the packaged service is not used (the tests run their own influxd); stop it where it was started
    $SUDO systemctl disable --now influxdb >/dev/null 2>&1 || $SUDO service influxdb stop >/dev/null 2>&1 || true
fi
influxd version
