"""A loopback HTTP proxy in front of a real server, to count requests and inject faults.

The real Redmine cannot be asked to answer 429 or to time out; this proxy stands
between the adapter and Redmine, forwards every request unchanged, counts them by
method and path, and replaces the answer of chosen requests with a fault:
an HTTP status (with ``Retry-After``), a malformed body, a connection reset, or a
delay longer than the client's timeout.
"""

from __future__ import annotations

import http.client
import re
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from tests.fakes.chaos import Chaos


@dataclass
class Fault:
    """What to do instead of forwarding: ``status`` (with ``retry_after``), or
    ``kind`` one of ``reset``, ``malformed``, ``delay`` (``seconds``); ``after``
    forwards first (the write lands) and then fails the answer."""

    status: int | None = None
    retry_after: float | None = None
    kind: str | None = None
    seconds: float = 0.0
    method: str | None = None
    path: str | None = None  # a regular expression on the path
    after: bool = False

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (self.path is None or re.search(self.path, path) is not None)


def path_pattern(path: str) -> str:
    """``/issues/12.json?include=journals`` → ``/issues/N.json``."""
    return re.sub(r"/\d+", "/N", path.split("?", 1)[0])


class FaultProxy:
    """Forwards to ``upstream``; ``url`` is where clients should connect."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.counts: Counter[tuple[str, str]] = Counter()
        self.faults: list[Fault] = []
        self.injected = 0
        self.on_request: Callable[[str, str], None] | None = None  # called before forwarding
        self.chaos: Chaos | None = None  # random faults on a share of requests
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                method = self.command
                fault = proxy._take(method, self.path)
                with proxy._lock:
                    proxy.counts[(method, path_pattern(self.path))] += 1
                hook = proxy.on_request
                if hook is not None:
                    hook(method, self.path)
                if fault is not None and not fault.after:
                    self._fault(fault)
                    return
                status, headers, payload = proxy._forward(method, self.path, dict(self.headers), body)
                if fault is not None:
                    self._fault(fault)
                    return
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _fault(self, fault: Fault) -> None:
                if fault.kind == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    return
                if fault.kind == "delay":
                    time.sleep(fault.seconds)
                    self.close_connection = True
                    return
                if fault.kind == "malformed":
                    payload = b'{"issues": [ {"id": 1, "subj'
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                else:
                    payload = b'{"errors": ["injected by the test proxy"]}'
                    self.send_response(fault.status or 500)
                    self.send_header("Content-Type", "application/json")
                    if fault.retry_after is not None:
                        self.send_header("Retry-After", str(int(fault.retry_after)))
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
        try:
            headers = {k: v for k, v in headers.items() if k.lower() not in ("host", "connection")}
            conn.request(method, path, body=body or None, headers=headers)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    def _take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for i, fault in enumerate(self.faults):
                if fault.matches(method, path):
                    del self.faults[i]
                    self.injected += 1
                    return fault
        drawn = self.chaos.draw() if self.chaos is not None else None
        return Fault(**drawn) if drawn is not None else None

    def fail_next(self, fault: Fault, times: int = 1) -> None:
        with self._lock:
            self.faults.extend(Fault(**vars(fault)) for _ in range(times))

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.counts.clear()
            self.on_request = None
            self.chaos = None

    def by_method(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (method, _), n in self.counts.items():
            out[method] += n
        return dict(out)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
