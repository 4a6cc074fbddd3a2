"""A loopback HTTP proxy in front of a real server, to count requests and inject faults.

The real Redmine cannot be asked to answer 429 or to time out; this proxy stands
between the adapter and Redmine, forwards every request unchanged, counts them by
method and path, and replaces the answer of chosen requests with a fault.  It is a
``FakeServer`` (``http.py``) whose one handler forwards: faults, chaos, hooks and
counts work as on the GitLab and Jira fakes.  ``on_reply`` may rewrite an answer
(its headers, such as ``Date``) before it goes back.  thin sends no ``Date``; the
proxy then adds its own, as a front web server would.

Two more servers in the same shape: ``Redirector`` answers every request with a
redirect to another server, ``Answering`` with ``200`` and one fixed body.
"""

from __future__ import annotations

import http.client
import re
from collections.abc import Callable
from urllib.parse import urlencode, urlsplit

from tests.fakes.http import FakeServer, Fault, Handler, Reply, Request

__all__ = ["Answering", "Fault", "FaultProxy", "Redirector", "path_pattern"]


def path_pattern(path: str) -> str:
    """``/issues/12.json?include=journals`` → ``/issues/N.json``."""
    return re.sub(r"/\d+", "/N", path.split("?", 1)[0])


class FaultProxy(FakeServer):
    """Forwards to ``upstream``; ``url`` is where clients should connect."""

    def __init__(self, upstream: str) -> None:
        super().__init__()
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.on_reply: Callable[[Request, Reply], Reply] | None = None  # rewrites an answer from upstream
        self.start()

    def _match(self, method: str, path: str) -> tuple[str, Handler | None, dict[str, str]]:
        return path_pattern(path), None, {}

    def dispatch(self, request: Request, handler: Handler | None) -> Reply:
        """Forward, without the fake's lock: requests to Redmine run side by side."""
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
        try:
            query = urlencode(request.query, doseq=True)
            target = request.path + (f"?{query}" if query else "")
            headers = {k: v for k, v in request.headers.items() if k not in ("host", "connection")}
            conn.request(request.method, target, body=request.body or None, headers=headers)
            response = conn.getresponse()
            skip = ("transfer-encoding", "connection", "content-length", "content-type")
            kept = {k: v for k, v in response.getheaders() if k.lower() not in skip}
            reply = Reply(response.status, response.read(), kept)
            rewrite = self.on_reply
            return rewrite(request, reply) if rewrite is not None else reply
        finally:
            conn.close()

    def clear(self) -> None:
        with self.lock:
            self.faults.clear()
            self.counts.clear()
        self.on_request = None
        self.on_reply = None
        self.chaos = None


class Redirector(FakeServer):
    """Answers every request with a redirect (``status``: 301, 302, 307, 308) to the
    same path and query on ``target``: a tracker that moved, or a hostile one."""

    def __init__(self, target: str, status: int = 302) -> None:
        super().__init__()
        self.target, self.status = target.rstrip("/"), status
        self.start()

    def _match(self, method: str, path: str) -> tuple[str, Handler | None, dict[str, str]]:
        return path_pattern(path), None, {}

    def dispatch(self, request: Request, handler: Handler | None) -> Reply:
        query = urlencode(request.query, doseq=True)
        location = self.target + request.path + (f"?{query}" if query else "")
        return Reply(self.status, None, {"Location": location})


class Answering(FakeServer):
    """Answers every request, whatever its method and path, with ``200`` and the
    same body (``b"{}"``, ``b"[]"``, ``b"null"``...): a URL that is not the tracker's
    API, or a tracker that answers nonsense."""

    def __init__(self, body: bytes) -> None:
        super().__init__()
        self.body = body
        self.start()

    def _match(self, method: str, path: str) -> tuple[str, Handler | None, dict[str, str]]:
        return path_pattern(path), None, {}

    def dispatch(self, request: Request, handler: Handler | None) -> Reply:
        return Reply(200, self.body, {"Content-Type": "application/json"})
