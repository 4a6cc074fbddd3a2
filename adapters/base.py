"""The one seam between the sync and a tracker: the ``Tracker`` protocol.

A tracker adapter translates its tracker into neutral ``Issue``s (with the values
sla-sync manages, as ``Observed``) and applies ``Change``s back.  It owns its
client library, its retries (tenacity, bounded, with an injectable wait) and its
error messages.  Adapters are found by ``tracker.kind`` through the entry-point
group ``sla_sync.adapters``: an entry point names a factory
``(spec: TrackerSpec, secret: str, options: AdapterOptions) -> Tracker``.

Errors an adapter raises (all from ``sla_sync.errors``):

- ``AuthError``: the credentials were rejected ("authentication failed for <url>");
- ``TrackerError``: a request failed for good after the retries, or the tracker
  answered something unusable; the message names the tracker, the issue if any,
  and what to do.  An error while fetching aborts the pass before any write.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

import requests
import tenacity

from sla_sync.errors import UserError
from sla_sync.model import Change, Event, Issue
from sla_sync.plan import Observed
from sla_sync.policy import TrackerSpec


@dataclass(frozen=True)
class Tracked:
    """A fetched issue: the neutral issue, the managed values, and its version.

    ``version`` changes whenever the issue changes on the tracker (Redmine's
    ``updated_on``); an unchanged version lets the sync reuse cached history.
    """

    issue: Issue
    observed: Observed
    version: str
    open: bool = True


@dataclass(frozen=True)
class Cached:
    """What the state store remembers of an issue between passes."""

    version: str
    issue: Issue


@dataclass(frozen=True)
class Fetched:
    """The result of one fetch: the issues and the new cursor candidate.

    ``cursor`` is the latest ``updated`` instant seen (epoch seconds); the sync
    moves its stored cursor there only when every issue was processed.
    ``refetched`` counts the issues whose history was fetched anew.
    """

    issues: list[Tracked]
    cursor: int | None
    refetched: int = 0
    problems: list[str] = field(default_factory=list)  # issues skipped: odd data from the tracker


@dataclass(frozen=True)
class AdapterOptions:
    """Knobs the sync and the tests hand to an adapter."""

    agents_users: tuple[str, ...] = ()
    agents_groups: tuple[str, ...] = ()
    sleep: Callable[[float], None] | None = None  # None: time.sleep; tests inject a fake
    max_wait: float = 60.0  # the longest single back-off wait, in seconds


@runtime_checkable
class Tracker(Protocol):
    """A tracker as the sync sees it: fetch, apply, and an online check."""

    kind: str
    url: str
    directory: dict[str, str]
    """Names the adapter resolved to tracker ids ("user:alice" → "5"); the sync
    keeps them in the state store between passes so that steady passes need no
    look-ups."""

    def fetch(self, since: int | None, cached: Mapping[str, Cached]) -> Fetched:
        """Every open issue, and every issue updated at or after ``since``
        (minus the overlap window), each once.  History (events) is fetched only
        for issues whose version differs from ``cached``; the others reuse it."""
        ...

    def fetch_all(self, since: int | None) -> Iterator[Tracked]:
        """Every issue (open or not) created at or after ``since`` (all when
        ``None``), with its history, lazily: what ``sla-sync export`` streams."""
        ...

    def refresh(self, keys: Iterable[str]) -> list[Tracked]:
        """Fetch these issues anew (after writes), with their history."""
        ...

    def apply(self, key: str, changes: Sequence[Change]) -> None:
        """Write the changes to one issue.  A step's comment and its marker label
        are written so that a retry or a crash never writes the comment twice."""
        ...

    def check(self, spec_labels: Sequence[str], names: Sequence[str]) -> list[str]:
        """Online check: what an admin must add or fix; empty when all is set."""
        ...


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


def assemble(
    rows: Iterable[Row],
    since: int | None,
    cached: Mapping[str, Cached],
    *,
    identify: Callable[[Row], tuple[str, str, int]],
    history: Callable[[Row], tuple[Event, ...]],
    track: Callable[[Row, tuple[Event, ...]], Tracked],
    where: str,
) -> Fetched:
    """The shared part of every adapter's ``fetch``.

    ``rows`` are the list rows (open issues and issues updated since the cursor,
    possibly twice); ``identify`` gives a row's key, version and update instant.
    Rows are de-duplicated by key and taken oldest update first; history comes from
    ``cached`` when the version is unchanged, else from ``history`` (a request).  A
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
            if hit is not None and hit.version == version:
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


TrackerFactory = Callable[[TrackerSpec, str, AdapterOptions], Tracker]


def read_secret(spec: TrackerSpec, env: Mapping[str, str]) -> str:
    """The API key from the variable ``api_key_env`` or the file ``api_key_file``.

    The error names where the key was looked for, never the key."""
    if spec.api_key_env:
        value = env.get(spec.api_key_env, "").strip()
        if value:
            return value
        if not spec.api_key_file:
            raise UserError(f"the environment variable {spec.api_key_env} is empty or unset: set it to the API key")
    if spec.api_key_file:
        path = Path(spec.api_key_file).expanduser()
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UserError(f"cannot read the API key file {path}: {exc.strerror}") from None
        if value:
            return value
        raise UserError(f"the API key file {path} is empty")
    raise UserError("the policy names no API key: set tracker.api_key_env or tracker.api_key_file")


def load_factory(kind: str) -> TrackerFactory:
    """The adapter factory registered for ``kind`` (entry-point group ``sla_sync.adapters``)."""
    found = {ep.name: ep for ep in entry_points(group="sla_sync.adapters")}
    if kind not in found:
        known = ", ".join(sorted(found)) or "none"
        raise UserError(f"no adapter for tracker kind {kind!r} (installed: {known}); install its plugin or fix tracker.kind")
    factory: TrackerFactory = found[kind].load()
    return factory


@dataclass
class RequestCounter:
    """Counts requests by method (tests and benchmarks read it)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, method: str) -> None:
        self.counts[method] = self.counts.get(method, 0) + 1

    @property
    def writes(self) -> int:
        return sum(n for m, n in self.counts.items() if m != "GET")
