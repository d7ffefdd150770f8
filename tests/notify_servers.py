"""Real local servers for notification tests: an SMTP server (aiosmtpd) that keeps every message, and an
HTTP server whose responses follow a script (e.g. 500, 500, 200)."""

from __future__ import annotations

import contextlib
import email
import json
import socket
import threading
from collections.abc import Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Inbox:
    def __init__(self):
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 OK"


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[int, list[tuple[list[str], Message]]]]:
    """(port, messages): a real SMTP server on 127.0.0.1."""
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox.messages
    finally:
        controller.stop()


@contextlib.contextmanager
def http_server(statuses: list[int], default: int = 200) -> Iterator[tuple[str, list[dict]]]:
    """(url, received): answers the n-th POST with statuses[n] (then `default`); keeps every JSON body."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append({"body": json.loads(body), "headers": dict(self.headers), "path": self.path})
            status = statuses[len(received) - 1] if len(received) <= len(statuses) else default
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hooks/secret-token", received
    finally:
        server.shutdown()
        server.server_close()
