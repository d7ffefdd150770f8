"""A real InfluxDB 1.6.7 (Debian's `influxdb` package) for the publication tests, and the thinnest
`/api/v2/write` forwarder in front of it (tests/influx_forwarder.py).

`influxd` runs from a temporary config: its own meta/data/wal directories under a temp dir, a free HTTP port
and a free RPC port on 127.0.0.1, no usage reporting, no internal monitor database. It is stopped by its PID.

The CI calls it as a script: `python tests/influxdb_server.py` starts the server and the forwarder, prints
`INFLUX_1X_URL=...` and `INFLUX_V2_URL=...` and runs until interrupted (a quick manual check of the stand-in).
When `influxd` is missing the tests skip with the reason, except under CI=true, where .ci/influxdb.sh must
have installed it (they fail instead).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

INFLUXD = os.environ.get("TT_TEST_INFLUXD") or shutil.which("influxd") or "/usr/bin/influxd"
DATABASE = "tickettoken"

CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{root}/meta"
  logging-enabled = false

[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false
  trace-logging-enabled = false

[coordinator]
  log-queries-after = "0s"

[retention]
  enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = false
  log-enabled = false
  write-tracing = false
  pprof-enabled = false

[continuous_queries]
  enabled = false

[subscriber]
  enabled = false
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available() -> str | None:
    """None when influxd can be run, else why not."""
    if not Path(INFLUXD).exists():
        return (
            f"influxd not found ({INFLUXD}): install Debian's InfluxDB 1.6.7 with "
            "`apt-get install -y influxdb` (.ci/influxdb.sh does it in CI)"
        )
    return None


def required() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@dataclass
class Influx1:
    """A running influxd: its HTTP URL, PID and root directory."""

    url: str
    pid: int
    root: Path

    def query(self, q: str, db: str = DATABASE, epoch: str = "s") -> list[dict]:
        """InfluxQL over HTTP `/query`: the statement's series, as InfluxDB returns them."""
        params = urllib.parse.urlencode({"db": db, "q": q, "epoch": epoch})
        req = urllib.request.Request(f"{self.url}/query?{params}", method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = json.loads(resp.read())
        result = body["results"][0]
        if "error" in result:
            raise RuntimeError(f"{q}: {result['error']}")
        return result.get("series", [])

    def rows(self, q: str, db: str = DATABASE, epoch: str = "s") -> list[dict]:
        """The statement's rows as dicts (tags of GROUP BY series merged in)."""
        out = []
        for s in self.query(q, db, epoch):
            for values in s.get("values", []):
                out.append({**s.get("tags", {}), **dict(zip(s["columns"], values, strict=True))})
        return out

    def create_database(self, db: str = DATABASE) -> None:
        self.query(f'CREATE DATABASE "{db}"', db="")

    def drop_database(self, db: str = DATABASE) -> None:
        self.query(f'DROP DATABASE "{db}"', db="")


def _wait_ready(url: str, proc: subprocess.Popen, log: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"influxd exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=1) as resp:
                if resp.status == 204:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"influxd not ready after {seconds} s: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def influxd() -> Iterator[Influx1]:
    """Start influxd 1.x from a temp config, yield it with database `tickettoken` created, stop it by PID."""
    root = Path(tempfile.mkdtemp(prefix="tt-influxd-"))
    http_port, rpc_port = free_port(), free_port()
    config = root / "influxdb.conf"
    config.write_text(CONFIG.format(root=root, http_port=http_port, rpc_port=rpc_port))
    log = root / "influxd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [INFLUXD, "run", "-config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "INFLUXDB_REPORTING_DISABLED": "true"},
        )
    server = Influx1(f"http://127.0.0.1:{http_port}", proc.pid, root)
    try:
        _wait_ready(server.url, proc, log)
        server.create_database()
        yield server
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    """Start influxd 1.6.7 and the /api/v2/write forwarder; print their URLs; run until interrupted."""
    from influx_forwarder import forwarder  # tests/ is sys.path[0] when run as a script

    problem = available()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    with influxd() as server, forwarder(server.url) as v2:
        print(f"INFLUX_1X_URL={server.url}", flush=True)
        print(f"INFLUX_V2_URL={v2}", flush=True)
        print(f"INFLUXD_PID={server.pid}", flush=True)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
