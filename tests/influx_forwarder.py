"""The thinnest `/api/v2/write` -> `/write?db=<bucket>&precision=<p>` forwarder, so that influxdb-client's
2.x write API can talk to Debian's InfluxDB 1.6.7 (which has no `/api/v2/write`).

It lives under tests/ because it is a test stand-in only: a real deployment points TT_INFLUX_URL at an
InfluxDB 2.x (or 1.8+, which serves `/api/v2/write` itself). It does nothing but forward: the line-protocol
body is passed through byte for byte (gzip included, with its Content-Encoding), `bucket` becomes `db`
(a `db/rp` bucket also sets `rp`, as 1.8's compatibility API does), `precision` is kept, `org` and the token
are dropped (1.6.7 runs without auth here), and InfluxDB's status and body come back unchanged. `/ping`
and `/health` are answered from the 1.x `/ping` (influxdb-client's ping uses them).
"""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: v2 precision names -> 1.x /write precision (the same letters; 1.x also accepts u for us)
PRECISION = {"ns": "ns", "us": "u", "ms": "ms", "s": "s"}


def _handler(target: str):
    class Forward(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet: the tests read InfluxDB, not the access log
            pass

        def _reply(self, status: int, body: bytes, content_type: str | None = None) -> None:
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _upstream(self, path: str, body: bytes | None, method: str, headers: dict) -> None:
            req = urllib.request.Request(target + path, data=body, method=method, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    self._reply(resp.status, resp.read(), resp.headers.get("Content-Type"))
            except urllib.error.HTTPError as err:
                self._reply(err.code, err.read(), err.headers.get("Content-Type"))
            except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
                self._reply(503, json.dumps({"code": "unavailable", "message": str(err)}).encode())

        def do_POST(self):  # noqa: N802 - http.server's hook name
            url = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if url.path != "/api/v2/write":
                self._reply(404, b'{"code":"not found","message":"only /api/v2/write is forwarded"}')
                return
            q = urllib.parse.parse_qs(url.query)
            bucket = (q.get("bucket") or [""])[0]
            if not bucket:
                self._reply(400, b'{"code":"invalid","message":"bucket is required"}')
                return
            db, _, rp = bucket.partition("/")
            params = {"db": db, "precision": PRECISION.get((q.get("precision") or ["ns"])[0], "ns")}
            if rp:
                params["rp"] = rp
            headers = {"Content-Type": self.headers.get("Content-Type", "text/plain; charset=utf-8")}
            if self.headers.get("Content-Encoding"):
                headers["Content-Encoding"] = self.headers["Content-Encoding"]
            self._upstream("/write?" + urllib.parse.urlencode(params), body, "POST", headers)

        def do_GET(self):  # noqa: N802
            if urllib.parse.urlsplit(self.path).path in ("/ping", "/health"):
                self._upstream("/ping", None, "GET", {})
                return
            self._reply(404, b'{"code":"not found"}')

        def do_HEAD(self):  # noqa: N802
            self.do_GET()

    return Forward


@contextlib.contextmanager
def forwarder(target: str, port: int = 0) -> Iterator[str]:
    """Serve the forwarder to `target` (an InfluxDB 1.x URL) on 127.0.0.1; yield its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(target.rstrip("/")))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
