"""A loopback HTTP server that records the webhook POSTs it gets: the receiving end of the
report and alert webhooks in tests. ``hook`` answers 204, ``failing_hook`` 500 (conftest fixtures)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

Received = list[tuple[str, str, bytes]]  # (path, Content-Type, body) per POST


class Hook(http.server.BaseHTTPRequestHandler):
    status = 204

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, self.headers["Content-Type"], body))  # type: ignore[attr-defined]
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class FailingHook(Hook):
    status = 500


def serve(handler: type[Hook]) -> Iterator[tuple[str, Received]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    received: Received = []
    server.received = received  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/quality", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
