"""An in-process fake of GitLab's REST API v4: the part that sla-sync uses.

A real HTTP server (``tests.fakes.http.FakeServer``) that python-gitlab talks to
over loopback.  It is stateful: a write is visible on the next read, every change
moves the issue's ``updated_at``, label and state changes are recorded as
resource events with the acting user (as GitLab does), and so are milestone
changes (``resource_milestone_events``: one ``add`` of the new milestone, or one
``remove`` of the old, per change, as ``ResourceEvents::ChangeMilestoneService``
records them; an issue created with a milestone gets an ``add`` at its creation),
due-date, assignee and type changes leave system notes ("changed type from issue
to incident", as ``SystemNotes::IssuablesService#change_issue_type`` words it), and
a note mentioning ``@someone`` makes them a participant.  The payloads follow the shapes in
``/work/shared/tracker-payloads/gitlab/`` (GitLab's own API documentation).

Endpoints (all under ``/api/v4``): ``GET /user``, ``GET /users?username=``,
``GET /groups/:id`` and its ``members`` and ``members/all``, ``GET /projects/:id``
(numeric id or URL-encoded path), ``GET /projects/:id/labels``,
``GET /projects/:id/members/all/:user_id``, ``GET|POST /projects/:id/issues``,
``GET|PUT /projects/:id/issues/:iid``, ``GET|POST .../notes``,
``GET .../resource_state_events``, ``GET .../resource_label_events``,
``GET .../resource_milestone_events``, ``GET .../participants``, and
``POST /api/graphql`` for the one mutation sla-sync sends (``updateIssue`` with
``healthStatus``).  Lists are paginated like GitLab (``page``,
``per_page`` up to 100, ``Link`` with ``rel="next"``, ``X-Next-Page``, ``X-Page``,
``X-Per-Page``, ``X-Total``, ``X-Total-Pages``).  Errors carry GitLab's bodies:
``{"message": "401 Unauthorized"}``, ``{"message": "404 Project Not Found"}``,
``{"error": "... is invalid"}`` (400, parameter validation),
``{"message": {"title": [...]}}`` (422).

Time: the seeding helpers take the instant of each change; writes through the
API happen at ``now`` (set it to the pass's ``--now``).  ``updated_at`` moves
forward by at least a millisecond on a change of the issue's own columns (title,
due date, state, milestone, type, health status), but a note, a label change or
an assignee change moves it only through ``Issue#touch``, which GitLab throttles
(``ThrottledTouch``, one minute): within a minute of the last update it stays
where it is, and only the row's ``user_notes_count``, ``labels`` and
``assignees`` show the change (``throttle = False`` turns that off).
Scoped labels are exclusive (GitLab Premium): adding ``status::b`` removes
``status::a``, recorded as a removal.  A missing label is created on use when the
acting user has at least the Reporter role, silently dropped otherwise; an
assignee who is not a member of the project is silently dropped (both as GitLab).

Health status (``premium=True``; GitLab Premium and Ultimate): the issue JSON
carries ``health_status`` (``on_track``, ``needs_attention``, ``at_risk`` or
``null``) and GraphQL's ``updateIssue`` sets it (a Reporter at least), leaving a
system note "changed health status to **on track**" by the acting user.  Without
it the key is absent and the mutation keeps nothing (``healthStatus: null``), as
on a GitLab without the licence.  The REST ``PUT`` does not take
``health_status`` (GitLab's neither).
"""

from __future__ import annotations

import contextlib
import math
import re
import socket
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote, urlencode

from tests.fakes.http import FakeServer, Fault, HttpError, Reply, Request

API = "/api/v4"
GUEST, REPORTER, DEVELOPER, MAINTAINER = 10, 20, 30, 40
MENTION = re.compile(r"(?<![\w.@])@([A-Za-z0-9_][A-Za-z0-9_.-]*)")
HIDDEN = re.compile(r"<!--.*?-->", re.S)
HEALTH = {"onTrack": "on_track", "needsAttention": "needs_attention", "atRisk": "at_risk"}  # GraphQL -> REST
TOUCH_INTERVAL = timedelta(minutes=1)  # GitLab's ThrottledTouch::TOUCH_INTERVAL
NO_ACCESS = ("The resource that you are attempting to access does not exist or you don't have permission to "
             "perform this action")


def stamp(moment: datetime) -> str:
    """GitLab's instants: ``2016-01-04T15:31:51.081Z``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def names(value: Any) -> list[str]:
    """Labels as GitLab takes them: a comma-separated string or a list."""
    if value is None:
        return []
    parts = value if isinstance(value, list) else str(value).split(",")
    return [str(p).strip() for p in parts if str(p).strip()]


def sentence(words: Sequence[str]) -> str:
    """Rails' ``to_sentence``: ``a``, ``a and b``, ``a, b, and c``."""
    if len(words) <= 2:
        return " and ".join(words)
    return ", ".join(words[:-1]) + ", and " + words[-1]


def truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1")


def scope(label: str) -> str | None:
    """``status::waiting`` → ``status``; ``a::b::c`` → ``a::b``; plain labels → None."""
    return label.rsplit("::", 1)[0] if "::" in label else None


@dataclass
class User:
    id: int
    username: str
    name: str
    admin: bool = False


@dataclass
class Group:
    id: int
    path: str
    members: dict[int, int] = field(default_factory=dict)  # user id -> access level
    parent: int | None = None


@dataclass
class Label:
    id: int
    name: str
    color: str = "#6699cc"
    description: str = ""


@dataclass
class Milestone:
    id: int
    iid: int
    title: str


@dataclass
class Issue:
    id: int
    iid: int
    project_id: int
    title: str
    author_id: int
    created_at: datetime
    updated_at: datetime
    description: str = ""
    state: str = "opened"
    closed_at: datetime | None = None
    closed_by: int | None = None
    labels: list[str] = field(default_factory=list)
    assignee_ids: list[int] = field(default_factory=list)
    due_date: str | None = None
    milestone: str | None = None
    issue_type: str = "issue"
    health_status: str | None = None  # on_track, needs_attention, at_risk (Premium)
    notes: list[dict[str, Any]] = field(default_factory=list)
    label_events: list[dict[str, Any]] = field(default_factory=list)
    state_events: list[dict[str, Any]] = field(default_factory=list)
    milestone_events: list[dict[str, Any]] = field(default_factory=list)
    mentioned: set[str] = field(default_factory=set)


@dataclass
class Project:
    id: int
    path: str  # path_with_namespace
    members: dict[int, int] = field(default_factory=dict)
    labels: dict[str, Label] = field(default_factory=dict)
    issues: dict[int, Issue] = field(default_factory=dict)
    next_iid: int = 1
    milestones: dict[str, Milestone] = field(default_factory=dict)  # title -> milestone


class GitLabFake(FakeServer):
    """GitLab's REST API v4, in memory (see the module docstring)."""

    def __init__(self, now: datetime | None = None, *, premium: bool = False) -> None:
        super().__init__()
        self.now = now or datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
        self.premium = premium  # the licence has health status (see the module docstring)
        self.throttle = True  # notes, labels and assignees move updated_at at most once a minute (``_touch``)
        self.users: dict[int, User] = {}
        self.tokens: dict[str, int] = {}
        self.groups: dict[int, Group] = {}
        self.projects: dict[int, Project] = {}
        self._ids: dict[str, int] = {}
        self.current: User | None = None  # the token's user of the request being served
        self._routes()

    def start(self) -> str:
        url = super().start()
        assert self.server is not None
        # Headers and body leave in two writes: without TCP_NODELAY every answer
        # waits ~40 ms for the client's delayed ACK (Nagle).
        self.server.RequestHandlerClass.disable_nagle_algorithm = True  # type: ignore[attr-defined]
        return url

    def close(self) -> None:
        """Stop serving without waiting out ``serve_forever``'s half-second poll."""
        server = self.server
        if server is None:
            return
        stopper = threading.Thread(target=server.shutdown, daemon=True)
        stopper.start()
        while stopper.is_alive():  # a connection wakes the loop up to see the stop
            with contextlib.suppress(OSError):
                socket.create_connection(server.server_address[:2], timeout=0.2).close()
            stopper.join(0.01)
        server.server_close()
        self.server = None

    def _next(self, kind: str, start: int = 1) -> int:
        self._ids[kind] = self._ids.get(kind, start - 1) + 1
        return self._ids[kind]

    # -- seeding (directly, no HTTP) --------------------------------------------------

    def add_user(self, username: str, name: str | None = None, *, admin: bool = False) -> User:
        with self.lock:
            user = User(self._next("user"), username, name or username.replace("-", " ").title(), admin)
            self.users[user.id] = user
            return user

    def token_for(self, username: str, token: str | None = None) -> str:
        """A personal access token of the user: ``token``, or one made on first use."""
        with self.lock:
            uid = self.user(username).id
            if token is None:
                token = next((t for t, owner in self.tokens.items() if owner == uid), f"glpat-{username}-{uid:04d}")
            self.tokens[token] = uid
            return token

    def add_group(self, path: str, members: Mapping[str, int] | Iterable[str] = (), parent: str | None = None) -> Group:
        with self.lock:
            levels = members if isinstance(members, Mapping) else dict.fromkeys(members, DEVELOPER)
            group = Group(self._next("group"), path, {self.user(n).id: lv for n, lv in levels.items()},
                          self.group(parent).id if parent else None)
            self.groups[group.id] = group
            return group

    def add_project(self, path: str, members: Mapping[str, int] | Iterable[str] = (),
                    labels: Iterable[str] = ()) -> Project:
        with self.lock:
            levels = members if isinstance(members, Mapping) else dict.fromkeys(members, DEVELOPER)
            project = Project(self._next("project", 100), path, {self.user(n).id: lv for n, lv in levels.items()})
            for name in labels:
                project.labels[name] = Label(self._next("label"), name)
            self.projects[project.id] = project
            return project

    def create_issue(self, project: str | int, title: str, *, author: str, created_at: datetime,
                     labels: Sequence[str] = (), assignee: str | None = None, due_date: str | None = None,
                     milestone: str | None = None, issue_type: str = "issue", description: str = "",
                     record_labels: bool = True) -> int:
        """A new issue; its labels are recorded as label events at ``created_at``
        (as GitLab does) unless ``record_labels`` is false, and its milestone (made
        if missing) as a milestone event.  Returns the iid."""
        with self.lock:
            proj = self.project(project)
            user = self.user(author)
            issue = Issue(self._next("issue", 500), proj.next_iid, proj.id, title, user.id, created_at, created_at,
                          description=description, due_date=due_date, issue_type=issue_type)
            proj.next_iid += 1
            proj.issues[issue.iid] = issue
            if milestone:
                self._milestone(proj, issue, self._ensure_milestone(proj, milestone), user, created_at, bump=False)
            self._ensure_labels(proj, labels)
            if record_labels:
                self._relabel(proj, issue, list(labels), [], user, created_at, bump=False)
            else:
                issue.labels = list(labels)
            if assignee:
                issue.assignee_ids = [self.user(assignee).id]
            return issue.iid

    def add_note(self, project: str | int, iid: int, body: str, *, by: str, at: datetime,
                 internal: bool = False, system: bool = False) -> dict[str, Any]:
        with self.lock:
            proj = self.project(project)
            return self._note(proj, proj.issues[iid], body, self.user(by), at, internal=internal, system=system)

    def change_labels(self, project: str | int, iid: int, *, add: Sequence[str] = (), remove: Sequence[str] = (),
                      by: str, at: datetime) -> None:
        with self.lock:
            proj = self.project(project)
            self._ensure_labels(proj, add)
            self._relabel(proj, proj.issues[iid], list(add), list(remove), self.user(by), at)

    def set_state(self, project: str | int, iid: int, event: str, *, by: str, at: datetime) -> None:
        """``event`` is ``close`` or ``reopen``."""
        with self.lock:
            proj = self.project(project)
            self._state(proj, proj.issues[iid], event, self.user(by), at)

    def set_due_date(self, project: str | int, iid: int, due: str | None, *, by: str,
                     at: datetime | None = None) -> None:
        with self.lock:
            proj = self.project(project)
            self._due(proj, proj.issues[iid], due, self.user(by), at or self.now)

    def set_assignees(self, project: str | int, iid: int, usernames: Sequence[str], *, by: str,
                      at: datetime | None = None) -> None:
        with self.lock:
            proj = self.project(project)
            self._assign(proj, proj.issues[iid], [self.user(n).id for n in usernames], self.user(by), at or self.now)

    def add_milestone(self, project: str | int, title: str) -> Milestone:
        """A project milestone (the one of that title if there is one)."""
        with self.lock:
            return self._ensure_milestone(self.project(project), title)

    def set_milestone(self, project: str | int, iid: int, title: str | None, *, by: str,
                      at: datetime | None = None) -> None:
        """A person sets the issue's milestone (made if missing), or removes it (``None``)."""
        with self.lock:
            proj = self.project(project)
            found = self._ensure_milestone(proj, title) if title else None
            self._milestone(proj, proj.issues[iid], found, self.user(by), at or self.now)

    def set_issue_type(self, project: str | int, iid: int, issue_type: str, *, by: str,
                       at: datetime | None = None) -> None:
        """A person changes the issue's type (``issue``, ``incident``, ``test_case``, ``task``)."""
        with self.lock:
            proj = self.project(project)
            self._issue_type(proj, proj.issues[iid], issue_type, self.user(by), at or self.now)

    def set_health_status(self, project: str | int, iid: int, health: str | None, *, by: str,
                          at: datetime | None = None) -> None:
        """A person sets the health status (``on_track``, ``needs_attention``, ``at_risk`` or ``None``)."""
        with self.lock:
            proj = self.project(project)
            self._health(proj, proj.issues[iid], health, self.user(by), at or self.now)

    def backdate_writes(self, project: str | int, iid: int, username: str, at: datetime) -> None:
        """The user's notes and resource events on the issue made later than ``at``
        move to ``at``: for a test whose passes run behind the fake's clock."""
        with self.lock:
            issue = self.project(project).issues[iid]
            uid = self.user(username).id
            for row in (*issue.notes, *issue.label_events, *issue.state_events, *issue.milestone_events):
                if (row.get("author") or row.get("user") or {}).get("id") == uid and parse_time(row["created_at"]) > at:
                    row["created_at"] = stamp(at)

    def reset_issues(self) -> None:
        """Forget every issue, fault and request count (users, groups, projects stay)."""
        with self.lock:
            for proj in self.projects.values():
                proj.issues.clear()
                proj.next_iid = 1
            self.faults.clear()
            self.counts.clear()

    # -- fault shortcuts ------------------------------------------------------------------

    def fail(self, status: int, times: int = 1, *, retry_after: float | None = None, method: str | None = None,
             route: str | None = None, after: bool = False) -> None:
        """The next ``times`` matching requests get ``status`` (``times=0`` clears all faults)."""
        self.fail_next(Fault(status=status, retry_after=retry_after, method=method, route=route, after=after), times)

    def stall(self, seconds: float, times: int = 1, *, method: str | None = None, route: str | None = None,
              after: bool = False) -> None:
        """The next requests get no answer for ``seconds`` (more than the client's timeout)."""
        self.fail_next(Fault(kind="delay", seconds=seconds, method=method, route=route, after=after), times)

    def reset_connection(self, times: int = 1, *, method: str | None = None, route: str | None = None,
                         after: bool = False) -> None:
        self.fail_next(Fault(kind="reset", method=method, route=route, after=after), times)

    def malformed(self, times: int = 1, *, method: str | None = None, route: str | None = None) -> None:
        self.fail_next(Fault(kind="malformed", method=method, route=route), times)

    # -- lookups ------------------------------------------------------------------------------

    def user(self, username: str) -> User:
        for u in self.users.values():
            if u.username.lower() == username.lower():
                return u
        raise KeyError(f"no user {username!r} in the fake")

    def group(self, ref: str | int) -> Group:
        for g in self.groups.values():
            if str(ref) in (str(g.id), g.path):
                return g
        raise KeyError(ref)

    def project(self, ref: str | int) -> Project:
        for p in self.projects.values():
            if str(ref) in (str(p.id), p.path):
                return p
        raise KeyError(ref)

    def issue(self, project: str | int, iid: int) -> Issue:
        with self.lock:
            return self.project(project).issues[int(iid)]

    def access(self, proj: Project, user: User) -> int:
        """The user's access level in the project, groups' membership included."""
        return max(proj.members.get(user.id, 0), self._group_access(proj, user))

    def _group_access(self, proj: Project, user: User) -> int:
        namespace = proj.path.rsplit("/", 1)[0] if "/" in proj.path else None
        levels = [g.members.get(user.id, 0) for g in self.groups.values()
                  if namespace and (g.path == namespace or namespace.startswith(g.path + "/"))]
        return max(levels, default=0)

    def _ensure_milestone(self, proj: Project, title: str) -> Milestone:
        if title not in proj.milestones:
            proj.milestones[title] = Milestone(self._next("milestone", 60), len(proj.milestones) + 1, title)
        return proj.milestones[title]

    def _ensure_labels(self, proj: Project, labels: Iterable[str]) -> None:
        for name in labels:
            if name not in proj.labels:
                proj.labels[name] = Label(self._next("label"), name)

    # -- the changes, as GitLab records them ---------------------------------------------

    def _touch(self, issue: Issue, at: datetime, *, throttled: bool = False) -> None:
        """Move ``updated_at``, as GitLab does: a change of the issue's own columns
        (title, due date, state, milestone, type, health status) always; a note, a
        label or an assignee change only through ``Issue#touch``, which GitLab
        throttles (``ThrottledTouch``): not within a minute of the last update."""
        if throttled and self.throttle and timedelta(0) <= at - issue.updated_at <= TOUCH_INTERVAL:
            return  # (a change seeded before the last update, which GitLab cannot have, still moves it)
        issue.updated_at = max(at, issue.updated_at + timedelta(milliseconds=1))

    def _label_event(self, proj: Project, issue: Issue, name: str, action: str, user: User, at: datetime) -> None:
        label = proj.labels[name]
        issue.label_events.append({
            "id": self._next("label_event", 140), "user": self._user_json(user), "created_at": stamp(at),
            "resource_type": "Issue", "resource_id": issue.id,
            "label": {"id": label.id, "name": label.name, "color": label.color, "description": label.description},
            "action": action,
        })

    def _relabel(self, proj: Project, issue: Issue, add: list[str], remove: list[str], user: User, at: datetime,
                 *, bump: bool = True) -> bool:
        before = list(issue.labels)
        for name in remove:
            if name in issue.labels:
                issue.labels.remove(name)
                self._label_event(proj, issue, name, "remove", user, at)
        for name in add:
            if name in issue.labels:
                continue
            if name not in proj.labels:
                if self.access(proj, user) < REPORTER and not user.admin:
                    continue  # GitLab drops labels the user may not create
                proj.labels[name] = Label(self._next("label"), name)
            kind = scope(name)
            for old in [lbl for lbl in issue.labels if kind is not None and scope(lbl) == kind]:
                issue.labels.remove(old)
                self._label_event(proj, issue, old, "remove", user, at)
            issue.labels.append(name)
            self._label_event(proj, issue, name, "add", user, at)
        changed = sorted(before) != sorted(issue.labels)
        if changed and bump:
            self._touch(issue, at, throttled=True)
        return changed

    def _state(self, proj: Project, issue: Issue, event: str, user: User, at: datetime) -> bool:
        target = {"close": "closed", "reopen": "opened"}[event]
        if issue.state == target:
            return False
        issue.state = target
        issue.closed_at, issue.closed_by = (at, user.id) if target == "closed" else (None, None)
        issue.state_events.append({
            "id": self._next("state_event", 140), "user": self._user_json(user), "created_at": stamp(at),
            "resource_type": "Issue", "resource_id": issue.id, "state": "closed" if target == "closed" else "reopened",
        })
        self._touch(issue, at)
        return True

    def _due(self, proj: Project, issue: Issue, due: str | None, user: User, at: datetime) -> bool:
        if (due or None) == issue.due_date:
            return False
        old, issue.due_date = issue.due_date, due or None
        self._touch(issue, at)  # a column: the note's touch may be throttled, the save is not
        # GitLab 16+ (SystemNotes::TimeTrackingService, Rails' :long date format)
        text = (f"changed due date to {date.fromisoformat(due):%B %-d, %Y}" if due
                else f"removed due date {date.fromisoformat(old):%B %-d, %Y}" if old else "removed due date")
        self._note(proj, issue, text, user, at, system=True)
        return True

    def _milestone(self, proj: Project, issue: Issue, milestone: Milestone | None, user: User, at: datetime, *,
                   bump: bool = True) -> bool:
        """One milestone event per change (ResourceEvents::ChangeMilestoneService):
        ``add`` of the new milestone, or ``remove`` of the old one."""
        old = proj.milestones.get(issue.milestone) if issue.milestone else None
        if (milestone.title if milestone else None) == issue.milestone:
            return False
        issue.milestone = milestone.title if milestone else None
        shown = milestone or old
        issue.milestone_events.append({
            "id": self._next("milestone_event", 140), "user": self._user_json(user), "created_at": stamp(at),
            "resource_type": "Issue", "resource_id": issue.id,
            "milestone": self._milestone_json(proj, shown) if shown else None,
            "action": "add" if milestone else "remove",
        })
        if bump:
            self._touch(issue, at)
        return True

    def _issue_type(self, proj: Project, issue: Issue, issue_type: str, user: User, at: datetime) -> bool:
        if issue_type == issue.issue_type:
            return False
        old, issue.issue_type = issue.issue_type, issue_type
        self._touch(issue, at)
        # as SystemNotes::IssuablesService#change_issue_type words it (humanize(capitalize: false))
        self._note(proj, issue, f"changed type from {old.replace('_', ' ')} to {issue_type.replace('_', ' ')}",
                   user, at, system=True)
        return True

    def _health(self, proj: Project, issue: Issue, health: str | None, user: User, at: datetime) -> bool:
        if health == issue.health_status:
            return False
        old, issue.health_status = issue.health_status, health
        self._touch(issue, at)
        # as EE's SystemNotes::IssuablesService words it
        text = (f"changed health status to **{health.replace('_', ' ')}**" if health
                else f"removed health status **{(old or '').replace('_', ' ')}**")
        self._note(proj, issue, text, user, at, system=True)
        return True

    def _assign(self, proj: Project, issue: Issue, ids: list[int], user: User, at: datetime) -> bool:
        ids = [i for i in dict.fromkeys(ids) if i in self.users and self.access(proj, self.users[i]) > 0]
        if ids == issue.assignee_ids:
            return False
        gone = [self.users[i].username for i in issue.assignee_ids if i not in ids]
        new = [self.users[i].username for i in ids if i not in issue.assignee_ids]
        issue.assignee_ids = ids
        # as SystemNotes::IssuablesService#change_issuable_assignees words it (Rails' to_sentence)
        parts = ([f"assigned to {sentence(['@' + n for n in new])}"] if new else []) + (
            [f"unassigned {sentence(['@' + n for n in gone])}"] if gone else [])
        self._note(proj, issue, " and ".join(parts), user, at, system=True)
        return True

    def _note(self, proj: Project, issue: Issue, body: str, user: User, at: datetime, *, internal: bool = False,
              system: bool = False) -> dict[str, Any]:
        note = {
            "id": self._next("note", 300), "type": None, "body": body, "attachment": None,
            "author": {**self._user_json(user), "email": f"{user.username}@example.com",
                       "created_at": "2013-09-30T13:46:01Z"},
            "created_at": stamp(at), "updated_at": stamp(at), "system": system,
            "noteable_id": issue.id, "noteable_type": "Issue", "project_id": proj.id, "noteable_iid": issue.iid,
            "resolvable": False, "confidential": internal, "internal": internal,
            "imported": False, "imported_from": "none",
        }
        issue.notes.append(note)
        if not system:
            known = {u.username.lower(): u.username for u in self.users.values()}
            issue.mentioned |= {known[m.lower()] for m in MENTION.findall(HIDDEN.sub("", body)) if m.lower() in known}
        self._touch(issue, at, throttled=True)  # Note#touch_noteable
        return note

    # -- JSON as GitLab shapes it -----------------------------------------------------------

    def _base(self) -> str:
        return self.url if self.server is not None else "http://gitlab.example.com"

    def _user_json(self, user: User) -> dict[str, Any]:
        return {"id": user.id, "username": user.username, "name": user.name, "state": "active",
                "avatar_url": None, "web_url": f"{self._base()}/{user.username}"}

    def _milestone_json(self, proj: Project, m: Milestone) -> dict[str, Any]:
        return {"id": m.id, "iid": m.iid, "project_id": proj.id, "title": m.title, "description": "",
                "state": "active", "created_at": "2016-01-04T15:31:39.996Z", "updated_at": "2016-01-04T15:31:39.996Z",
                "due_date": None, "start_date": None, "web_url": f"{self._base()}/{proj.path}/-/milestones/{m.iid}"}

    def _issue_json(self, proj: Project, issue: Issue) -> dict[str, Any]:
        people = [self._user_json(self.users[i]) for i in issue.assignee_ids]
        closed_by = self._user_json(self.users[issue.closed_by]) if issue.closed_by else None
        known = proj.milestones.get(issue.milestone) if issue.milestone else None
        milestone = self._milestone_json(proj, known) if known else None
        web = f"{self._base()}/{proj.path}/-/issues/{issue.iid}"
        links = f"{self._base()}{API}/projects/{proj.id}"
        extra = {"health_status": issue.health_status} if self.premium else {}
        return {
            **extra,
            "id": issue.id, "iid": issue.iid, "project_id": proj.id, "title": issue.title,
            "description": issue.description, "state": issue.state,
            "created_at": stamp(issue.created_at), "updated_at": stamp(issue.updated_at),
            "closed_at": stamp(issue.closed_at) if issue.closed_at else None, "closed_by": closed_by,
            "labels": sorted(issue.labels), "milestone": milestone, "assignees": people,
            "assignee": people[0] if people else None, "author": self._user_json(self.users[issue.author_id]),
            "type": "ISSUE", "user_notes_count": sum(not n["system"] for n in issue.notes),
            "merge_requests_count": 0, "upvotes": 0, "downvotes": 0, "due_date": issue.due_date,
            "confidential": False, "discussion_locked": None, "issue_type": issue.issue_type, "severity": "UNKNOWN",
            "web_url": web, "moved_to_id": None, "imported": False, "imported_from": "none",
            "references": {"short": f"#{issue.iid}", "relative": f"#{issue.iid}", "full": f"{proj.path}#{issue.iid}"},
            "time_stats": {"time_estimate": 0, "total_time_spent": 0, "human_time_estimate": None,
                           "human_total_time_spent": None},
            "has_tasks": False, "task_completion_status": {"count": 0, "completed_count": 0},
            "_links": {"self": f"{links}/issues/{issue.iid}", "notes": f"{links}/issues/{issue.iid}/notes",
                       "award_emoji": f"{links}/issues/{issue.iid}/award_emoji", "project": links,
                       "closed_as_duplicate_of": None},
        }

    def _project_json(self, proj: Project, user: User) -> dict[str, Any]:
        level = proj.members.get(user.id)
        namespace, _, path = proj.path.rpartition("/")
        group_level = self._group_access(proj, user)
        return {
            "id": proj.id, "description": None, "name": path, "path": path,
            "name_with_namespace": proj.path.replace("/", " / "), "path_with_namespace": proj.path,
            "created_at": "2016-01-04T15:31:39.996Z", "default_branch": "main", "visibility": "private",
            "web_url": f"{self._base()}/{proj.path}",
            "namespace": {"name": namespace, "path": namespace, "full_path": namespace, "kind": "group"},
            "permissions": {
                "project_access": {"access_level": level, "notification_level": 3} if level else None,
                "group_access": {"access_level": group_level, "notification_level": 3} if group_level else None,
            },
        }

    # -- HTTP plumbing --------------------------------------------------------------------

    def authenticate(self, request: Request) -> None:
        token = request.headers.get("private-token") or request.headers.get("authorization", "").removeprefix("Bearer ")
        uid = self.tokens.get(token or "")
        if uid is None:
            raise HttpError(401, "401 Unauthorized")
        self.current = self.users[uid]

    def error_body(self, status: int, message: str) -> Any:
        if message.startswith("no such resource"):
            return {"error": "404 Not Found"}
        if message[:3].isdigit():
            return {"message": message}
        return {"message": f"{status} {HTTPStatus(status).phrase}"}

    def _me(self) -> User:
        assert self.current is not None
        return self.current

    def _page(self, request: Request, items: list[Any]) -> Reply:
        """One page of a list, with GitLab's pagination headers."""
        try:
            page = max(1, int(request.arg("page", "1") or 1))
            per_page = min(100, max(1, int(request.arg("per_page", "20") or 20)))
        except ValueError:
            raise HttpError(400, "page is invalid", body={"error": "page is invalid, per_page is invalid"}) from None
        pages = max(1, math.ceil(len(items) / per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        host = request.headers.get("host", self.url.removeprefix("http://"))

        def link(number: int) -> str:
            query = {k: v for k, v in request.query.items() if k != "page"}
            query["page"] = [str(number)]
            return f"http://{host}{request.path}?{urlencode(query, doseq=True)}"

        rels = [("prev", page - 1)] if page > 1 else []
        rels += [("next", page + 1)] if page < pages else []
        rels += [("first", 1), ("last", pages)]
        headers = {
            "X-Page": str(page), "X-Per-Page": str(per_page), "X-Total": str(len(items)),
            "X-Total-Pages": str(pages), "X-Next-Page": str(page + 1) if page < pages else "",
            "X-Prev-Page": str(page - 1) if page > 1 else "",
            "Link": ", ".join(f'<{link(n)}>; rel="{rel}"' for rel, n in rels),
        }
        return Reply(200, chunk, headers)

    def _visible_project(self, request: Request) -> Project:
        ref = unquote(request.params["pid"])
        try:
            proj = self.project(ref)
        except KeyError:
            raise HttpError(404, "404 Project Not Found") from None
        me = self._me()
        if not me.admin and self.access(proj, me) == 0:
            raise HttpError(404, "404 Project Not Found")
        return proj

    def _issue(self, request: Request) -> tuple[Project, Issue]:
        proj = self._visible_project(request)
        try:
            return proj, proj.issues[int(request.params["iid"])]
        except (KeyError, ValueError):
            raise HttpError(404, "404 Issue Not Found") from None

    def _routes(self) -> None:
        table: list[tuple[str, str, Callable[[Request], Reply]]] = [
            ("GET", "/user", self._get_user),
            ("GET", "/users", self._list_users),
            ("GET", "/groups/{gid}", self._get_group),
            ("GET", "/groups/{gid}/members", self._group_members),
            ("GET", "/groups/{gid}/members/all", self._group_members),
            ("GET", "/projects/{pid}", self._get_project),
            ("GET", "/projects/{pid}/labels", self._list_labels),
            ("GET", "/projects/{pid}/members/all/{uid}", self._get_member),
            ("GET", "/projects/{pid}/issues", self._list_issues),
            ("POST", "/projects/{pid}/issues", self._create_issue),
            ("GET", "/projects/{pid}/issues/{iid}", self._get_issue),
            ("PUT", "/projects/{pid}/issues/{iid}", self._update_issue),
            ("GET", "/projects/{pid}/issues/{iid}/notes", self._list_notes),
            ("POST", "/projects/{pid}/issues/{iid}/notes", self._create_note),
            ("GET", "/projects/{pid}/issues/{iid}/resource_state_events", self._state_events),
            ("GET", "/projects/{pid}/issues/{iid}/resource_label_events", self._label_events),
            ("GET", "/projects/{pid}/issues/{iid}/resource_milestone_events", self._milestone_events),
            ("GET", "/projects/{pid}/issues/{iid}/participants", self._participants),
        ]
        for method, template, handler in table:
            self.route(method, API + template, handler)
        self.route("POST", "/api/graphql", self._graphql)

    # -- handlers -------------------------------------------------------------------------

    def _get_user(self, request: Request) -> Reply:
        me = self._me()
        body = {**self._user_json(me), "email": f"{me.username}@example.com", "bot": False}
        if me.admin:
            body["is_admin"] = True
        return Reply(200, body)

    def _list_users(self, request: Request) -> Reply:
        wanted = request.arg("username")
        found = [u for u in sorted(self.users.values(), key=lambda u: u.id)
                 if wanted is None or u.username.lower() == wanted.lower()]
        return self._page(request, [self._user_json(u) for u in found])

    def _find_group(self, request: Request) -> Group:
        try:
            return self.group(unquote(request.params["gid"]))
        except KeyError:
            raise HttpError(404, "404 Group Not Found") from None

    def _get_group(self, request: Request) -> Reply:
        g = self._find_group(request)
        return Reply(200, {"id": g.id, "name": g.path.rsplit("/", 1)[-1], "path": g.path.rsplit("/", 1)[-1],
                           "full_path": g.path, "visibility": "private", "parent_id": g.parent,
                           "web_url": f"{self._base()}/groups/{g.path}"})

    def _group_members(self, request: Request) -> Reply:
        g = self._find_group(request)
        levels = dict(g.members)
        if request.path.endswith("/all"):
            parent = g.parent
            while parent is not None:
                for uid, lv in self.groups[parent].members.items():
                    levels[uid] = max(lv, levels.get(uid, 0))
                parent = self.groups[parent].parent
        rows = [{**self._user_json(self.users[uid]), "access_level": lv, "created_at": "2016-01-04T15:31:39.996Z",
                 "expires_at": None, "membership_state": "active"} for uid, lv in sorted(levels.items())]
        return self._page(request, rows)

    def _get_project(self, request: Request) -> Reply:
        return Reply(200, self._project_json(self._visible_project(request), self._me()))

    def _list_labels(self, request: Request) -> Reply:
        proj = self._visible_project(request)
        rows = [{"id": lb.id, "name": lb.name, "color": lb.color, "text_color": "#FFFFFF",
                 "description": lb.description or None, "is_project_label": True, "subscribed": False,
                 "priority": None} for lb in sorted(proj.labels.values(), key=lambda lb: lb.name)]
        return self._page(request, rows)

    def _get_member(self, request: Request) -> Reply:
        proj = self._visible_project(request)
        uid = int(request.params["uid"]) if request.params["uid"].isdigit() else -1
        level = self.access(proj, self.users[uid]) if uid in self.users else 0
        if not level:
            raise HttpError(404, "404 Not found")
        return Reply(200, {**self._user_json(self.users[uid]), "access_level": level, "expires_at": None,
                           "membership_state": "active"})

    def _list_issues(self, request: Request) -> Reply:
        proj = self._visible_project(request)
        items = list(proj.issues.values())
        state = request.arg("state", "all")
        if state not in ("opened", "closed", "all"):
            raise HttpError(400, "state", body={"error": "state does not have a valid value"})
        if state != "all":
            items = [i for i in items if i.state == state]
        bounds: dict[str, tuple[Callable[[Issue], datetime], bool]] = {
            "updated_after": (lambda i: i.updated_at, True), "updated_before": (lambda i: i.updated_at, False),
            "created_after": (lambda i: i.created_at, True), "created_before": (lambda i: i.created_at, False),
        }
        for name, (get, after) in bounds.items():
            value = request.arg(name)
            if value is None:
                continue
            try:
                limit = parse_time(value)
            except ValueError:
                raise HttpError(400, name, body={"error": f"{name} is invalid"}) from None
            items = [i for i in items if (get(i) >= limit if after else get(i) <= limit)]
        wanted = set(request.args("labels"))
        items = [i for i in items if wanted <= set(i.labels)]
        iids = {int(v) for v in request.query.get("iids[]", [])}
        items = [i for i in items if not iids or i.iid in iids]
        order_by, sort = request.arg("order_by", "created_at"), request.arg("sort", "desc")
        if order_by not in ("created_at", "updated_at"):
            raise HttpError(400, "order_by", body={"error": "order_by does not have a valid value"})
        if sort not in ("asc", "desc"):
            raise HttpError(400, "sort", body={"error": "sort does not have a valid value"})
        items.sort(key=lambda i: (getattr(i, order_by), i.id), reverse=sort == "desc")
        return self._page(request, [self._issue_json(proj, i) for i in items])

    def _create_issue(self, request: Request) -> Reply:
        proj = self._visible_project(request)
        data = {**{k: v[0] for k, v in request.query.items()}, **(request.json() or {})}
        if not str(data.get("title") or "").strip():
            raise HttpError(400, "title", body={"error": "title is missing"})
        me = self._me()
        iid = self.create_issue(proj.id, str(data["title"]), author=me.username, created_at=self.now,
                                labels=names(data.get("labels")), description=str(data.get("description") or ""))
        return Reply(201, self._issue_json(proj, proj.issues[iid]))

    def _get_issue(self, request: Request) -> Reply:
        proj, issue = self._issue(request)
        return Reply(200, self._issue_json(proj, issue))

    UPDATABLE = ("title", "description", "labels", "add_labels", "remove_labels", "due_date", "assignee_ids",
                 "assignee_id", "state_event", "confidential", "milestone_id", "issue_type", "weight")

    def _update_issue(self, request: Request) -> Reply:
        proj, issue = self._issue(request)
        data = {**{k: v[0] for k, v in request.query.items()}, **(request.json() or {})}
        if not any(k in data for k in self.UPDATABLE):
            raise HttpError(400, "missing", body={
                "error": ", ".join(self.UPDATABLE) + " are missing, at least one parameter must be provided"})
        self._validate_update(data)
        me, at, before = self._me(), self.now, issue.updated_at
        if "title" in data and data["title"] != issue.title:
            issue.title = str(data["title"])
            self._touch(issue, at)
        if "labels" in data:
            new = names(data["labels"])
            self._relabel(proj, issue, [n for n in new if n not in issue.labels],
                          [n for n in issue.labels if n not in new], me, at)
        if "add_labels" in data or "remove_labels" in data:
            self._relabel(proj, issue, names(data.get("add_labels")), names(data.get("remove_labels")), me, at)
        if "due_date" in data:
            self._due(proj, issue, data["due_date"] or None, me, at)
        if "assignee_ids" in data or "assignee_id" in data:
            raw = data.get("assignee_ids", [data.get("assignee_id")])
            ids = [int(v) for v in (raw if isinstance(raw, list) else names(raw)) if v not in (None, "", 0, "0")]
            self._assign(proj, issue, ids, me, at)
        if "milestone_id" in data:
            wanted = str(data["milestone_id"] or "")
            found = next((m for m in proj.milestones.values() if str(m.id) == wanted), None)
            if found is not None or wanted in ("", "0"):  # GitLab ignores a milestone of another project
                self._milestone(proj, issue, found, me, at)
        if data.get("issue_type"):
            self._issue_type(proj, issue, str(data["issue_type"]), me, at)
        if data.get("state_event"):
            self._state(proj, issue, str(data["state_event"]), me, at)
        if issue.updated_at != before:  # one request, one new version
            issue.updated_at = max(at, before + timedelta(milliseconds=1))
        return Reply(200, self._issue_json(proj, issue))

    @staticmethod
    def _validate_update(data: Mapping[str, Any]) -> None:
        due = data.get("due_date")
        if due:
            try:
                date.fromisoformat(str(due))
            except ValueError:
                raise HttpError(400, "due_date", body={"error": "due_date is invalid"}) from None
        if data.get("issue_type") not in (None, "", "issue", "incident", "test_case", "task"):
            raise HttpError(400, "issue_type", body={"error": "issue_type does not have a valid value"})
        if data.get("state_event") not in (None, "", "close", "reopen"):
            raise HttpError(400, "state_event", body={"error": "state_event does not have a valid value"})
        if "title" in data and len(str(data["title"] or "")) > 255:
            raise HttpError(422, "title", body={"message": {"title": ["is too long (maximum is 255 characters)"]}})
        if "title" in data and not str(data["title"] or "").strip():
            raise HttpError(422, "title", body={"message": {"title": ["can't be blank"]}})

    def _list_notes(self, request: Request) -> Reply:
        _, issue = self._issue(request)
        order_by, sort = request.arg("order_by", "created_at"), request.arg("sort", "desc")
        if order_by not in ("created_at", "updated_at") or sort not in ("asc", "desc"):
            raise HttpError(400, "sort", body={"error": "order_by, sort does not have a valid value"})
        notes = sorted(issue.notes, key=lambda n: (n[order_by], n["id"]), reverse=sort == "desc")
        return self._page(request, notes)

    def _create_note(self, request: Request) -> Reply:
        proj, issue = self._issue(request)
        data = {**{k: v[0] for k, v in request.query.items()}, **(request.json() or {})}
        body = str(data.get("body") or "")
        if not body.strip():
            raise HttpError(400, "body", body={"error": "body is missing"})
        if len(body) > 1_000_000:
            raise HttpError(422, "body", body={"message": {"note": ["is too long (maximum is 1000000 characters)"]}})
        internal = truthy(data["internal"]) if "internal" in data else truthy(data.get("confidential"))
        return Reply(201, self._note(proj, issue, body, self._me(), self.now, internal=internal))

    def _state_events(self, request: Request) -> Reply:
        return self._page(request, self._issue(request)[1].state_events)

    def _label_events(self, request: Request) -> Reply:
        return self._page(request, self._issue(request)[1].label_events)

    def _milestone_events(self, request: Request) -> Reply:
        return self._page(request, self._issue(request)[1].milestone_events)

    def _graphql(self, request: Request) -> Reply:
        """``updateIssue(input: {projectPath, iid, healthStatus})``, with variables
        ``path``, ``iid`` and ``health`` as the adapter sends them; GraphQL answers
        200 with ``errors`` when something is wrong."""
        data = request.json() or {}
        query, variables = str(data.get("query") or ""), data.get("variables") or {}
        if "updateIssue" not in query or "healthStatus" not in query:
            return Reply(200, {"errors": [{"message": "the fake serves the updateIssue healthStatus mutation only"}]})
        wanted = variables.get("health")
        if wanted is not None and wanted not in HEALTH:
            return Reply(200, {"errors": [{"message": f"Variable $health of type HealthStatus was provided invalid "
                                                      f"value ({wanted!r})"}]})
        me = self._me()
        try:
            proj = self.project(str(variables.get("path")))
            issue = proj.issues[int(str(variables.get("iid")))]
        except (KeyError, ValueError):
            return Reply(200, {"data": {"updateIssue": None},
                               "errors": [{"message": NO_ACCESS, "path": ["updateIssue"]}]})
        if self.access(proj, me) < REPORTER and not me.admin:
            return Reply(200, {"data": {"updateIssue": None},
                               "errors": [{"message": NO_ACCESS, "path": ["updateIssue"]}]})
        if self.premium:
            self._health(proj, issue, HEALTH.get(wanted) if wanted else None, me, self.now)
        shown = next((k for k, v in HEALTH.items() if v == issue.health_status), None) if self.premium else None
        return Reply(200, {"data": {"updateIssue": {"issue": {"healthStatus": shown}, "errors": []}}})

    def _participants(self, request: Request) -> Reply:
        _, issue = self._issue(request)
        ids = {issue.author_id, *issue.assignee_ids}
        ids |= {n["author"]["id"] for n in issue.notes if not n["system"]}
        ids |= {self.user(m).id for m in issue.mentioned}
        return self._page(request, [self._user_json(self.users[i]) for i in sorted(ids)])
