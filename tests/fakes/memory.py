"""An in-memory tracker: the ``Tracker`` protocol with no HTTP (vdirsyncer's memory storage).

``Memory`` is the tracker: each issue keeps its author, its history (status, label,
due date, assignee, time-left and health status changes, comments public or private), every entry with its
author and instant, its watchers, an ``updated_at`` that moves on every change and a
version.  People change it through its methods; a change without an instant happens
at ``now``.  ``MemoryTracker``, the adapter, reaches it only through ``request``, as
a client reaches a server: one method per request (a list page or a read is a GET,
a write a PUT or POST), counted, authenticated by token (the token's login,
``sla-sync``, is the author of what the request changes) and open to faults
(``fail_next``).  Like the real adapters it fetches through ``assemble``, retries
through ``retrying`` (GETs, PUTs that only set values, watcher POSTs; a PUT with a
note only once a read shows that it did not land), writes an issue's values and
note in one PUT (a step's note and marker land together), and raises ``AuthError``
or a ``TrackerError`` that names the tracker and what to do.
"""

from __future__ import annotations

import copy
import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from sla_sync.adapters.base import RETRY_STATUS, Retryable, assemble, retrying

from sla_sync.errors import AuthError, GoneError, TrackerError
from sla_sync.model import Change, Event, Issue, Observed
from sla_sync.tracker import AdapterOptions, Cached, Fetched, Tracked

T = TypeVar("T")
PAGE = 100  # issues per list request


class HttpStatus(Exception):
    """The tracker's error answer to a request (``retry_after``: its Retry-After)."""

    def __init__(self, status: int, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.retry_after = status, retry_after


@dataclass(frozen=True)
class Fault:
    """An answer instead of the real one; with ``after`` the request is carried out first."""

    status: int
    retry_after: float | None
    method: str | None
    after: bool


@dataclass(frozen=True)
class Note:
    text: str
    author: str
    private: bool
    at: int


@dataclass
class Record:
    """One issue as the tracker holds it."""

    key: str
    project: str
    title: str
    author: str
    created_at: int
    status: str
    priority: str
    updated_at: int
    version: int = 1
    labels: set[str] = field(default_factory=set)
    assignee: str | None = None
    due_date: str | None = None
    remaining: str | None = None  # the time-left field, decimal hours as text
    health_status: str | None = None
    watchers: set[str] = field(default_factory=set)
    notes: list[Note] = field(default_factory=list)
    history: list[Event] = field(default_factory=list)  # status, label and field changes


@dataclass(frozen=True)
class Update:
    """The body of one PUT; ``None`` and empty leave a value alone."""

    due_date: str | None = None
    assignee: str | None = None
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    note: str | None = None
    private: bool = True
    remaining: str | None = None
    health_status: str | None = None


class Memory:
    """The tracker's state, its people's changes, and the API's requests."""

    def __init__(self, *, projects: Sequence[str] = ("helpdesk",), users: Iterable[str] = (), bot: str = "sla-sync",
                 token: str = "memory-token-0123", closed: Iterable[str] = ("Resolved", "Closed"),
                 now: int = 0) -> None:
        self.projects, self.bot, self.token = tuple(projects), bot, token
        self.users = {bot, *users}
        self.closed = frozenset(closed)  # the statuses that close an issue (the tracker's settings)
        self.now = now
        self.issues: dict[str, Record] = {}
        self.counts: Counter[str] = Counter()
        self.faults: list[Fault] = []
        self._numbers = itertools.count(1)

    # -- changes, by people or through the API -------------------------------------------

    def create(self, title: str, *, priority: str, by: str, at: int, status: str = "New",
               project: str | None = None) -> str:
        key = f"MEM-{next(self._numbers)}"
        self.now = max(self.now, at)
        self.issues[key] = Record(key, project or self.projects[0], title, by, at, status, priority, at)
        return key

    def _touch(self, key: str, at: int | None) -> tuple[Record, int]:
        issue, moment = self.issues[key], self.now if at is None else at
        self.now = max(self.now, moment)
        issue.updated_at, issue.version = max(moment, issue.updated_at + 1), issue.version + 1
        return issue, moment

    def comment(self, key: str, text: str, *, by: str, public: bool, at: int | None = None) -> None:
        issue, moment = self._touch(key, at)
        issue.notes.append(Note(text, by, not public, moment))

    def set_status(self, key: str, status: str, *, by: str, at: int | None = None) -> None:
        if status != self.issues[key].status:
            issue, moment = self._touch(key, at)
            issue.history.append(Event(moment, "status", from_=issue.status, to=status, author=by))
            issue.status = status

    def relabel(self, key: str, add: Iterable[str] = (), remove: Iterable[str] = (), *, by: str,
                at: int | None = None) -> None:
        labels = self.issues[key].labels
        added, removed = sorted(set(add) - labels), sorted(set(remove) & labels)
        if added or removed:
            issue, moment = self._touch(key, at)
            issue.history.append(Event(moment, "label", added=tuple(added), removed=tuple(removed), author=by))
            issue.labels = (labels | set(added)) - set(removed)

    def set_field(self, key: str, name: str, value: str | None, *, by: str, at: int | None = None) -> None:
        """Set ``due_date``, ``assignee``, ``remaining`` or ``health_status``."""
        if value != getattr(self.issues[key], name):
            issue, moment = self._touch(key, at)
            issue.history.append(Event(moment, "field", field=name, from_=getattr(issue, name), to=value, author=by))
            setattr(issue, name, value)

    def watch(self, key: str, logins: Iterable[str], *, by: str, at: int | None = None) -> None:
        new = set(logins) - self.issues[key].watchers
        if new:
            issue, _ = self._touch(key, at)
            issue.watchers |= new

    # -- the API: requests, faults and what they serve ----------------------------------------

    def fail_next(self, status: int, times: int = 1, *, retry_after: float | None = None,
                  method: str | None = None, after: bool = False) -> None:
        """The next ``times`` requests (of ``method``, or any) get ``status``; ``times=0`` clears all faults."""
        if times <= 0:
            self.faults.clear()
        self.faults += [Fault(status, retry_after, method, after)] * times

    def request(self, method: str, token: str, serve: Callable[[str], T]) -> T:
        """One request: counted, maybe faulted, authenticated; ``serve`` gets the token's login."""
        self.counts[method] += 1
        fault = next((f for f in self.faults if f.method in (None, method)), None)
        if fault is not None:
            self.faults.remove(fault)
            if not fault.after:
                raise HttpStatus(fault.status, fault.retry_after)
        if token != self.token:
            raise HttpStatus(401)
        answer = serve(self.bot)
        if fault is not None:
            raise HttpStatus(fault.status, fault.retry_after)
        return answer

    def page(self, project: str, offset: int, query: Callable[[Record], bool]) -> list[Record]:
        """One page of the project's issues that match ``query``, least recently updated first (copies)."""
        if project not in self.projects:
            raise HttpStatus(404)
        found = sorted((i for i in self.issues.values() if i.project == project and query(i)),
                       key=lambda i: (i.updated_at, i.key))
        return copy.deepcopy(found[offset:offset + PAGE])

    def read(self, project: str, key: str) -> Record:
        issue = self.issues.get(key)
        if issue is None or issue.project != project:
            raise HttpStatus(404)
        return copy.deepcopy(issue)

    def update(self, project: str, key: str, body: Update, by: str) -> None:
        """One PUT: every value, or nothing when one is refused (422)."""
        self.read(project, key)
        if body.assignee is not None and body.assignee not in self.users:
            raise HttpStatus(422)
        if body.due_date is not None:
            self.set_field(key, "due_date", body.due_date, by=by)
        self.relabel(key, body.add, body.remove, by=by)
        if body.assignee is not None:
            self.set_field(key, "assignee", body.assignee, by=by)
        for name in ("remaining", "health_status"):
            if getattr(body, name) is not None:
                self.set_field(key, name, getattr(body, name), by=by)
        if body.note is not None:
            self.comment(key, body.note, by=by, public=not body.private)

    def add_watchers(self, project: str, key: str, logins: Sequence[str], by: str) -> None:
        self.read(project, key)
        if set(logins) - self.users:
            raise HttpStatus(422)
        self.watch(key, logins, by=by)


class MemoryTracker:
    """The ``Tracker`` over a ``Memory``; agents are ``options.agents_users``
    (without them: anyone but the issue's author); its own notes never count."""

    kind = "memory"
    rereads_written = True  # its history is read per issue, as GitLab's notes and events

    def __init__(self, memory: Memory, *, url: str, project: str, secret: str,
                 options: AdapterOptions | None = None, attempts: int = 5) -> None:
        self.memory, self.url, self.project, self.secret = memory, url, project, secret
        self.options, self.attempts = options or AdapterOptions(), attempts
        self.directory: dict[str, str] = {}  # "self" -> the token's login

    def _where(self, key: str | None) -> str:
        return f"memory tracker {self.url}, project {self.project}" + (f", issue {key}" if key else "")

    def _once(self, method: str, serve: Callable[[str], T]) -> T:
        try:
            return self.memory.request(method, self.secret, serve)
        except HttpStatus as exc:
            if exc.status in RETRY_STATUS or (exc.status >= 500 and method == "GET"):
                raise Retryable(f"HTTP {exc.status}", exc.retry_after) from None
            raise

    def _call(self, what: str, key: str | None, attempt: Callable[[], T]) -> T:
        """Run ``attempt`` with bounded retries, turning the tracker's answers into our errors."""
        try:
            return retrying(self.attempts, self.options.max_wait, self.options.sleep)(attempt)
        except Retryable as exc:
            raise TrackerError(f"{self._where(key)}: {what}: {exc} (gave up after {self.attempts} attempts); "
                               "try again later") from None
        except HttpStatus as exc:
            if exc.status == 401:
                raise AuthError(f"authentication failed for {self.url}: "
                                "check the token in tracker.api_key_env") from None
            if exc.status == 404:
                raise (GoneError if key is not None else TrackerError)(f"{self._where(key)}: {what}: not found (404); "
                                   "check tracker.url and tracker.project") from None
            raise TrackerError(f"{self._where(key)}: {what}: the memory tracker refused it ({exc.status}); "
                               "check the policy's names") from None

    def _get(self, what: str, key: str | None, serve: Callable[[str], T]) -> T:
        return self._call(what, key, lambda: self._once("GET", serve))

    # -- reading ----------------------------------------------------------------------------

    def _list(self, query: Callable[[Record], bool]) -> Iterator[Record]:
        for offset in itertools.count(0, PAGE):  # one request per page
            page = self._page(offset, query)
            yield from page
            if len(page) < PAGE:
                return

    def _page(self, offset: int, query: Callable[[Record], bool]) -> list[Record]:
        return self._get("listing issues", None, lambda _me: self.memory.page(self.project, offset, query))

    def _read(self, key: str) -> Record:
        return self._get("reading the issue", key, lambda _me: self.memory.read(self.project, key))

    def _me(self) -> str:
        if "self" not in self.directory:
            self.directory["self"] = self._get("reading the token's user", None, lambda me: me)
        return self.directory["self"]

    def _events(self, row: Record) -> tuple[Event, ...]:
        me, agents = self._me(), frozenset(self.options.agents_users)
        comments = [Event(n.at, "comment", public=not n.private, author=n.author, by_self=n.author == me,
                          by_agent=n.author != me and (n.author in agents if agents else n.author != row.author))
                    for n in row.notes]
        history = [replace(e, by_self=True) if e.author == me else e for e in row.history]
        return tuple(sorted([*history, *comments], key=lambda e: e.at))

    def _track(self, row: Record, events: tuple[Event, ...]) -> Tracked:
        issue = Issue(key=row.key, created_at=row.created_at, status=row.status, title=row.title, priority=row.priority,
                      project=row.project, labels=tuple(sorted(row.labels)), assignee=row.assignee,
                      due_date=row.due_date, updated_at=row.updated_at, events=events)
        observed = Observed(row.due_date, frozenset(row.labels), row.assignee, remaining=row.remaining,
                            health_status=row.health_status)
        return Tracked(issue, observed, str(row.version), open=row.status not in self.memory.closed)

    def fetch(self, since: int | None, cached: Mapping[str, Cached]) -> Fetched:
        closed = self.memory.closed
        rows = list(self._list(lambda i: i.status not in closed))
        if since is not None:  # the open ones are all in the first list
            rows += self._list(lambda i: i.status in closed and i.updated_at >= since)
        return assemble(rows, since, cached, identify=lambda r: (r.key, str(r.version), r.updated_at),
                        history=lambda r: self._events(self._read(r.key)), track=self._track, where=self._where(None))

    def fetch_changed(self, since: int, cached: Mapping[str, Cached]) -> Fetched:
        rows = list(self._list(lambda i: i.updated_at >= since))
        return assemble(rows, since, cached, identify=lambda r: (r.key, str(r.version), r.updated_at),
                        history=lambda r: self._events(self._read(r.key)), track=self._track, where=self._where(None))

    def in_scope(self, keys: Sequence[str]) -> set[str]:
        wanted, closed = set(keys), self.memory.closed
        return {r.key for r in self._list(lambda i: i.key in wanted and i.status not in closed)}

    def fetch_all(self, since: int | None) -> Iterator[Tracked]:
        for row in self._list(lambda i: since is None or i.created_at >= since):
            yield self._track(row, self._events(self._read(row.key)))

    def refresh(self, keys: Iterable[str], before: Mapping[str, Tracked] | None = None) -> list[Tracked]:
        out = []
        for key in keys:
            try:
                row = self._read(key)
            except GoneError:  # no such issue: left out
                continue
            out.append(self._track(row, self._events(row)))
        return out

    # -- writing ----------------------------------------------------------------------------

    def apply(self, key: str, changes: Sequence[Change]) -> None:
        body = Update()
        watchers: list[str] = []
        for c in changes:
            if c.kind == "due_date":
                body = replace(body, due_date=c.value)
            elif c.kind == "add_labels":
                body = replace(body, add=(*body.add, *c.values))
            elif c.kind == "remove_labels":
                body = replace(body, remove=(*body.remove, *c.values))
            elif c.kind == "assign":
                body = replace(body, assignee=c.value)
            elif c.kind == "remaining":
                body = replace(body, remaining=c.value)
            elif c.kind == "health_status":
                body = replace(body, health_status=c.value)
            elif c.kind == "watchers":
                watchers += [n for n in c.values if n not in watchers]
            elif c.kind == "comment":
                text = c.value or ""
                note = text if body.note is None else f"{body.note}\n\n{text}"
                body = replace(body, note=note, private=body.private and c.private)
            else:
                raise TrackerError(f"{self._where(key)}: the memory tracker cannot write {c.kind!r}; "
                                   "remove tracker.due_field")
        if watchers:  # adding a watcher twice adds it once: safe to retry
            self._call("adding watchers", key, lambda: self._once(
                "POST", lambda me: self.memory.add_watchers(self.project, key, watchers, me)))
        if body != Update():
            self._put(key, body)

    def _put(self, key: str, body: Update) -> None:
        """One PUT.  Without a note it only sets values and is retried as it is; with
        one, each new attempt first reads the issue: the step markers on it mean the
        lost PUT landed.  A note without markers is never sent twice."""
        markers = {lbl for lbl in body.add if "escalated-" in lbl}
        tries = itertools.count()

        def attempt() -> None:
            if next(tries) and body.note is not None:
                if not markers:
                    raise TrackerError(f"{self._where(key)}: writing the issue: the answer was lost and it may have "
                                       "landed; check the issue's notes, the next pass goes on")
                if markers <= self._once("GET", lambda _me: self.memory.read(self.project, key)).labels:
                    return
            self._once("PUT", lambda me: self.memory.update(self.project, key, body, me))

        self._call("writing the issue", key, attempt)

    def check(self, spec_labels: Sequence[str], names: Sequence[str]) -> list[str]:
        """Every user the policy names exists (labels are created on first use)."""
        known = self._get("listing users", None, lambda _me: frozenset(self.memory.users))
        return [f"create the user {n!r} on {self.url}, or remove it from the policy" for n in names if n not in known]
