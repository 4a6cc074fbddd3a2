"""A small base for in-process HTTP fakes of tracker REST APIs (GitLab, Jira).

``FakeServer`` is a real HTTP server (``ThreadingHTTPServer`` on 127.0.0.1, port 0,
in a daemon thread).  A fake subclasses it, registers handlers for route templates
such as ``/rest/api/{version}/issue/{key}`` and keeps its own state; the base reads
requests, counts them by (method, route template), injects faults and writes the
answers.  Handlers run one at a time (under ``lock``), so a fake's state needs no
locking of its own.

Faults (``fail_next``): an HTTP status (with ``Retry-After``), a malformed body, a
connection reset, or a delay longer than the client's timeout; ``after`` carries
the request out first and only then spoils the answer (the write landed, but the
client cannot know it).

``record`` (a list) keeps every request with its headers, to check what reached
the server (a credential that must not); ``tls`` (an ``ssl.SSLContext`` set before
``start``) serves HTTPS; ``connections`` counts the TCP connections accepted, a
failed TLS handshake included (a retry is a new connection).
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.chaos import Chaos


@dataclass
class Request:
    """One request as a handler sees it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # from the route template

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else default

    def args(self, name: str) -> list[str]:
        """Every value of a repeated or comma-separated query parameter."""
        return [part for value in self.query.get(name, []) for part in value.split(",") if part]

    def json(self) -> Any:
        """The body as JSON; a malformed body is a 400."""
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            raise HttpError(400, "the request body is not valid JSON") from None


@dataclass
class Reply:
    """An answer: ``body`` is JSON-encoded unless it is ``bytes``; ``None`` is no body."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class HttpError(Exception):
    """Raised by a handler to answer an error; the fake's ``error_body`` shapes it."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.body = body


@dataclass
class Fault:
    """Instead of the real answer: ``status`` (with ``retry_after`` and an error
    body), or ``kind`` one of ``reset``, ``malformed``, ``delay`` (``seconds``),
    ``echo`` (``status``, default 400, with the request's path and headers in the body).
    ``method`` and ``route`` (a route template, or a regular expression on the
    path) choose which requests it hits; ``after`` serves the request first."""

    status: int | None = None
    retry_after: float | None = None
    kind: str | None = None
    seconds: float = 0.0
    method: str | None = None
    route: str | None = None
    after: bool = False

    def matches(self, method: str, template: str, path: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        return self.route is None or self.route == template or re.search(self.route, path) is not None


Handler = Callable[[Request], Reply]
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _compile(template: str) -> re.Pattern[str]:
    parts = _PLACEHOLDER.split(template)
    regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)" for i, p in enumerate(parts))
    return re.compile(f"^{regex}$")


class FakeServer:
    """The HTTP plumbing of a fake; subclasses add routes and state."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.routes: list[tuple[str, re.Pattern[str], str, Handler]] = []
        self.counts: Counter[tuple[str, str]] = Counter()
        self.faults: list[Fault] = []
        self.injected = 0
        self.chaos: Chaos | None = None  # random faults on a share of requests
        self.on_request: Callable[[str, str], None] | None = None  # called as each request arrives
        self.record: list[Request] | None = None  # a list: every request, headers included, is kept in it
        self.tls: ssl.SSLContext | None = None  # set before start(): serve HTTPS with this context
        self.connections = 0  # TCP connections accepted (a failed TLS handshake counts too)
        self.server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- routes and answers ------------------------------------------------------------

    def route(self, method: str, template: str, handler: Handler) -> None:
        """Serve ``method`` requests whose path matches ``template`` with ``handler``."""
        self.routes.append((method, _compile(template), template, handler))

    def authenticate(self, request: Request) -> None:
        """Raise ``HttpError(401, ...)`` for bad credentials (the default lets all in)."""

    def error_body(self, status: int, message: str) -> Any:
        """The body of an error answer, as the real API shapes it."""
        return {"message": message}

    def _match(self, method: str, path: str) -> tuple[str, Handler | None, dict[str, str]]:
        allowed = False
        for m, pattern, template, handler in self.routes:
            found = pattern.match(path)
            if found:
                if m == method:
                    return template, handler, found.groupdict()
                allowed = True
        return ("<405>" if allowed else "<404>"), None, {}

    def dispatch(self, request: Request, handler: Handler | None) -> Reply:
        """Authenticate, run the handler, and turn ``HttpError`` into an answer."""
        try:
            with self.lock:
                self.authenticate(request)
                if handler is None:
                    raise HttpError(404, f"no such resource: {request.method} {request.path}")
                return handler(request)
        except HttpError as exc:
            body = exc.body if exc.body is not None else self.error_body(exc.status, exc.message)
            return Reply(exc.status, body, exc.headers)

    # -- faults and counts -------------------------------------------------------------

    def fail_next(self, fault: Fault, times: int = 1) -> None:
        """The next ``times`` matching requests get ``fault``; ``times=0`` clears all."""
        with self.lock:
            if times == 0:
                self.faults.clear()
            self.faults.extend(Fault(**vars(fault)) for _ in range(times))

    def _take(self, method: str, template: str, path: str) -> Fault | None:
        with self.lock:
            for i, fault in enumerate(self.faults):
                if fault.matches(method, template, path):
                    del self.faults[i]
                    self.injected += 1
                    return fault
        drawn = self.chaos.draw() if self.chaos is not None else None
        return Fault(**drawn) if drawn is not None else None

    def by_method(self) -> dict[str, int]:
        """Requests counted so far, by method."""
        out: Counter[str] = Counter()
        with self.lock:
            for (method, _), n in self.counts.items():
                out[method] += n
        return dict(out)

    @property
    def writes(self) -> int:
        """Requests other than GET counted so far."""
        return sum(n for m, n in self.by_method().items() if m != "GET")

    def reset_counts(self) -> None:
        with self.lock:
            self.counts.clear()

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> str:
        """Start serving; returns the base URL."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                # headers and body go out in two writes: without this, Nagle's
                # algorithm and delayed ACKs add 40 ms to every request
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                template, handler, params = fake._match(self.command, parts.path)
                request = Request(
                    self.command, parts.path, parse_qs(parts.query, keep_blank_values=True),
                    {k.lower(): v for k, v in self.headers.items()}, body, params,
                )
                with fake.lock:
                    fake.counts[(self.command, template)] += 1
                    if fake.record is not None:
                        fake.record.append(request)
                hook = fake.on_request
                if hook is not None:  # outside the lock: a hook may hold this request
                    hook(self.command, self.path)
                fault = fake._take(self.command, template, parts.path)
                if fault is not None and not fault.after:
                    self._fault(fault)
                    return
                reply = fake.dispatch(request, handler)
                if fault is not None:
                    self._fault(fault)
                    return
                self._send(reply)

            def _send(self, reply: Reply) -> None:
                if reply.body is None:
                    payload = b""
                elif isinstance(reply.body, bytes):
                    payload = reply.body
                else:
                    payload = json.dumps(reply.body).encode()
                if any(name.lower() == "date" for name in reply.headers):  # the answer's own (a proxy's upstream)
                    self.log_request(reply.status)
                    self.send_response_only(reply.status)
                    self.send_header("Server", self.version_string())
                else:
                    self.send_response(reply.status)  # adds Server and Date
                if payload:
                    self.send_header("Content-Type", "application/json;charset=UTF-8")
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _fault(self, fault: Fault) -> None:
                if fault.kind == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                elif fault.kind == "delay":
                    time.sleep(fault.seconds)
                    self.close_connection = True
                elif fault.kind == "malformed":
                    self._send(Reply(200, b'{"issues": [ {"id": "1", "fiel'))
                elif fault.kind == "echo":  # a server that echoes the request, headers and all, in its error
                    secret = ("authorization", "private-token", "x-redmine-api-key")  # first: a body may be cut short
                    headers = sorted(self.headers.items(), key=lambda kv: kv[0].lower() not in secret)
                    text = "; ".join(f"{k}: {v}" for k, v in headers)
                    echoed = {"message": f"bad request ({text})", "error": f"bad request ({text})", "path": self.path}
                    self._send(Reply(fault.status or 400, echoed))
                else:
                    status = fault.status or 500
                    headers = {"Retry-After": str(int(fault.retry_after))} if fault.retry_after is not None else {}
                    self._send(Reply(status, fake.error_body(status, "injected by the test"), headers))

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        class Server(ThreadingHTTPServer):
            def get_request(self) -> tuple[Any, Any]:
                conn, address = super().get_request()
                fake.connections += 1
                if fake.tls is not None:  # the handshake happens here; a failed one is dropped by the server
                    conn = fake.tls.wrap_socket(conn, server_side=True)
                return conn, address

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # a short poll interval: close() waits for the loop to notice, 0.5 s by default
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()
        return self.url

    @property
    def url(self) -> str:
        assert self.server is not None, "start() the fake first"
        return f"{'https' if self.tls is not None else 'http'}://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
