"""The adapters' shared toolkit: retries, fetch assembly, secrets, request counting.

The ``Tracker`` protocol and the types that cross between the sync and an adapter
live in ``sla_sync.tracker``; this module is what every adapter builds on:

- ``Retryable``, ``retry_after`` and ``retrying``: one retry policy (tenacity,
  bounded, the tracker's ``Retry-After`` honoured, an injectable sleep);
- ``assemble``: the shared part of every ``fetch`` (de-duplication, cached
  history, odd rows skipped and counted, the cursor candidate);
- ``read_secret``: the API key from the environment or a file, never echoed;
- ``RequestCounter``: requests by method, for tests and benchmarks;
- ``guard_session``, ``certificate_error``, ``warn_plain_http``: what every
  adapter's HTTP session does about redirects to another host, certificates that
  do not verify, and tokens sent in the clear;
- ``ODD_ANSWER``, ``Answers`` and ``odd_answer``: the one check of an answer's
  shape, through each adapter's ``_call`` (``{}``, ``[]`` or ``null`` where a
  record or a list is due is a one-line ``TrackerError`` naming the request and
  what came back, never a traceback).
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import requests
import tenacity

from sla_sync.errors import TrackerError, UserError
from sla_sync.model import Event, Issue
from sla_sync.schema import TrackerSpec
from sla_sync.secrets import read_reference
from sla_sync.tracker import Cached, Fetched, Tracked

# -- retries: shared by every adapter --------------------------------------------------

RETRY_STATUS = frozenset({429, 502, 503, 504})


class Retryable(Exception):
    """An answer worth another attempt (429, 502-504, a timeout, a reset, a garbled
    body); ``retry_after`` is the wait the tracker asked for, if it did."""

    def __init__(self, what: str, retry_after: float | None = None) -> None:
        super().__init__(what)
        self.retry_after = retry_after


def _seconds_until(value: str | None, response: requests.Response) -> float | None:
    """An HTTP date relative to the response's own ``Date`` (no local clock)."""
    sent = response.headers.get("Date")
    if not value or not sent:
        return None
    try:
        return (parsedate_to_datetime(value) - parsedate_to_datetime(sent)).total_seconds()
    except (TypeError, ValueError):
        return None


def retry_after(response: requests.Response | None) -> float | None:
    """The wait a response asks for: ``Retry-After`` (seconds or a date), else
    ``RateLimit-Reset`` (epoch seconds, against the response's ``Date``)."""
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    wait: float | None = None
    if value is not None:
        try:
            wait = float(value)
        except ValueError:
            wait = _seconds_until(value, response)
    elif response.headers.get("RateLimit-Reset") and response.headers.get("Date"):
        try:
            reset = float(response.headers["RateLimit-Reset"])
            wait = reset - parsedate_to_datetime(response.headers["Date"]).timestamp()
        except (TypeError, ValueError):
            wait = None
    return None if wait is None else max(0.0, wait)


def retrying(attempts: int, max_wait: float, sleep: Callable[[float], None] | None) -> tenacity.Retrying:
    """Bounded attempts at what raises ``Retryable``: the wait the tracker asked for,
    else exponential back-off from 0.5 s, never more than ``max_wait``; waits go
    through ``sleep`` (tests inject a recorder; ``None`` is ``time.sleep``)."""

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, Retryable) and exc.retry_after is not None:
            return min(exc.retry_after, max_wait)
        return float(min(max_wait, 0.5 * 2 ** (state.attempt_number - 1)))

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(Retryable),
        stop=tenacity.stop_after_attempt(attempts),
        wait=wait,
        sleep=time.sleep if sleep is None else sleep,  # an empty recorder is falsy: test for None
        reraise=True,
    )


Row = TypeVar("Row")
Settings = TypeVar("Settings", bound=TrackerSpec)


def settings_of(spec: TrackerSpec, model: type[Settings]) -> Settings:
    """The adapter's own settings model (the policy file chose it by ``kind``)."""
    if isinstance(spec, model):
        return spec
    raise UserError(f"tracker.kind {spec.kind!r}: these settings are not {model.__name__} settings; "
                    "run `sla-sync check` on the policy file")


def assemble(
    rows: Iterable[Row],
    since: int | None,
    cached: Mapping[str, Cached],
    *,
    identify: Callable[[Row], tuple[str, str, int]],
    history: Callable[[Row], tuple[Event, ...]],
    track: Callable[[Row, tuple[Event, ...]], Tracked],
    where: str,
    same: Callable[[Row, Issue], bool] | None = None,
) -> Fetched:
    """The shared part of every adapter's ``fetch``.

    ``rows`` are the list rows (open issues and issues updated since the cursor,
    possibly twice); ``identify`` gives a row's key, version and update instant.
    Rows are de-duplicated by key and taken oldest update first; history comes from
    ``cached`` when the version is unchanged (and, with ``same``, the row agrees
    with the cached issue: a tracker whose version misses some changes), else
    from ``history`` (a request).  A
    row the adapter cannot read (missing or odd fields) is skipped and reported in
    ``problems``, never a crash; a request that fails is the adapter's error.
    """
    problems: list[str] = []
    found: dict[str, tuple[int, str, Tracked]] = {}  # key -> (update instant, version, issue)
    refetched = 0
    for row in rows:  # each row is mapped at once and dropped: memory holds no raw payloads
        try:
            key, version, stamp = identify(row)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            problems.append(f"{where}: an issue with unreadable data was skipped ({_odd(exc)})")
            continue
        seen = found.get(key)
        if seen is not None and (seen[0], seen[1]) >= (stamp, version):
            continue  # listed twice (open, and updated since the cursor)
        hit = cached.get(key)
        try:
            if hit is not None and hit.version == version and (same is None or same(row, hit.issue)):
                events = hit.issue.events
            else:
                events = history(row)
                refetched += 1
            found[key] = (stamp, version, track(row, events))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            problems.append(f"{where}, issue {key}: unreadable data, skipped ({_odd(exc)})")
    ordered = sorted(found.items(), key=lambda kv: (kv[1][0], kv[0]))
    stamps = [stamp for _, (stamp, _, _) in ordered]
    cursor = max([*stamps, since]) if since is not None else (max(stamps) if stamps else None)
    return Fetched([tracked for _, (_, _, tracked) in ordered], cursor, refetched, problems)


def _odd(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc}"
    return f"{exc.__class__.__name__}: {exc}"[:200]


def read_secret(spec: TrackerSpec, env: Mapping[str, str]) -> str:
    """The API key from the variable ``api_key_env`` or the file ``api_key_file``
    (``sla_sync.secrets``: alone on one line; errors never show it)."""
    return read_reference(spec.api_key_env, spec.api_key_file, env, what="API key",
                          missing="the policy names no API key: set tracker.api_key_env or tracker.api_key_file")


@dataclass
class RequestCounter:
    """Counts requests by method (tests and benchmarks read it)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, method: str) -> None:
        self.counts[method] = self.counts.get(method, 0) + 1

    @property
    def writes(self) -> int:
        return sum(n for m, n in self.counts.items() if m != "GET")


# -- the connection: redirects, certificates, plain HTTP ------------------------------------


class ConnectionSettingError(TrackerError, UserError):
    """A connection that must not go on, whatever a retry would bring: a redirect to
    another host (the session would carry the credentials there) or a certificate
    that does not verify.  A setting to fix: exit 2, never retried."""


DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL, the port filled in from the scheme."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(scheme)


def host_port(url: str) -> str:
    """``host:port`` as a message names a server."""
    parts = urlsplit(url)
    return parts.netloc.rsplit("@", 1)[-1] or url


def _same_server(source: str, target: str) -> bool:
    """Whether a redirect stays on the server it came from: the same scheme, host
    and port, or the one upgrade requests itself trusts (http:80 to https:443 on
    the same host)."""
    a, b = origin(source), origin(target)
    return a == b or (a[1] == b[1] and (a[0], a[2], b[0], b[2]) == ("http", 80, "https", 443))


ODD_ANSWER = (KeyError, TypeError, AttributeError, IndexError, ValueError)
"""What reading an answer of the wrong shape raises (``{}``, ``[]`` or ``null``
where a list or a record was due), in the client library or in the adapter."""


class Answers:
    """A session's response hook that keeps the last answer, in one line: the
    request, and the start of what came back (never a header)."""

    SHOWN = 120

    def __init__(self) -> None:
        self.last: str | None = None

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        method = response.request.method if response.request is not None else "GET"
        body = "(a stream)" if kwargs.get("stream") else " ".join(
            response.content[:self.SHOWN].decode("utf-8", "replace").split()) or "(nothing)"
        more = "..." if not kwargs.get("stream") and len(response.content) > self.SHOWN else ""
        self.last = f"{method} {urlsplit(response.url).path} answered {body}{more} (HTTP {response.status_code})"
        return response


def odd_answer(where: str, what: str, exc: BaseException, answers: Answers | None, hint: str,
               secret: str | None = None) -> TrackerError:
    """The one error for an answer of an unexpected shape: which request, what came
    back, and what to check.  Not retried: the same URL gives the same answer."""
    seen = f"; {answers.last}" if answers is not None and answers.last else ""
    why = (_odd(exc).splitlines() or [exc.__class__.__name__])[0]
    message = " ".join(f"{where}: {what}: an answer of an unexpected shape ({why}){seen}; {hint}".split())
    return TrackerError(message.replace(secret, "***") if secret and len(secret) >= 4 else message)


def guard_session(session: requests.Session, tracker: str) -> Answers:
    """Refuse to follow a redirect to another server.  requests drops
    ``Authorization`` on such a redirect but sends every other header along, so
    GitLab's ``PRIVATE-TOKEN`` and Redmine's ``X-Redmine-API-Key`` would reach the
    other host; whatever the header, a tracker that sends its API elsewhere is a
    ``tracker.url`` to fix, not a hop to follow.  A response hook, so it sees every
    hop before requests follows it.  Also keeps the last answer (``Answers``), for
    the message about an odd one, and returns it."""

    def refuse(response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        if not response.is_redirect:
            return response
        target = urljoin(response.url, response.headers.get("location") or "")
        if _same_server(response.url, target):
            return response
        response.close()
        method = response.request.method if response.request is not None else "GET"
        raise ConnectionSettingError(
            f"{tracker} {host_port(response.url)} redirected {method} {urlsplit(response.url).path} "
            f"(HTTP {response.status_code}) to another host, {host_port(target)}: sla-sync does not send its "
            f"credentials to another host; if the tracker moved, set tracker.url to its new address "
            f"({urlsplit(target).scheme}://{host_port(target)})"
        )

    answers = Answers()
    session.hooks["response"] += [refuse, answers]
    return answers


def certificate_error(tracker: str, url: str, exc: BaseException) -> ConnectionSettingError:
    """A TLS certificate that does not verify: what happened and how to fix it."""
    reason = str(exc)
    why = "it has expired" if "expired" in reason else (
        "it does not name this host" if "hostname" in reason or "match" in reason else
        "it is not signed by a certificate authority this machine trusts")
    return ConnectionSettingError(
        f"{tracker} {host_port(url)}: the server's TLS certificate does not verify ({why}): if the tracker uses "
        "a private certificate authority, point REQUESTS_CA_BUNDLE at a PEM file with that authority's "
        "certificate (several may be concatenated); otherwise check tracker.url and the server's certificate"
    )


LOG = logging.getLogger("sla_sync")
_WARNED: set[str] = set()


def _loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def warn_plain_http(tracker: str, url: str) -> None:
    """Once per host and process, a warning when the token would travel in the
    clear: ``http://`` to a host other than loopback."""
    scheme, host, _ = origin(url)
    if scheme != "http" or _loopback(host) or host in _WARNED:
        return
    _WARNED.add(host)
    LOG.warning(
        "%s %s: tracker.url is http://, so the API key or token crosses the network unencrypted: use https://",
        tracker, host_port(url), extra={"run_id": "-", "policy": "-", "issue": "-"},
    )
