"""A chat service's webhook, on loopback: it records every message Apprise posts.

Apprise's ``json://HOST:PORT/PATH`` posts ``{"version", "title", "message", "type"}``
as JSON; ``form://`` posts the same fields as a form.  ``Receiver.messages`` holds
``(path, title, body)`` in arrival order.  ``hold`` makes the next requests wait
(until ``release``) after recording them, as a server that received a message
but answers late.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


class Receiver:
    def __init__(self, status: int = 200) -> None:
        self.messages: list[tuple[str, str, str]] = []
        self.status = status
        self.arrived = threading.Event()
        self._release = threading.Event()
        self._release.set()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    doc: dict[str, Any] = json.loads(raw)
                else:
                    doc = {k: v[0] for k, v in parse_qs(raw).items()}
                owner.messages.append((self.path, doc.get("title", ""), doc.get("message", "")))
                owner.arrived.set()
                owner._release.wait(30)
                self.send_response(owner.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, scheme: str = "json", path: str = "/hook") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def hold(self) -> None:
        self._release.clear()

    def release(self) -> None:
        self._release.set()

    def close(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()
