"""GitLab, through python-gitlab.

Reading: every open issue of the project, plus every closed issue updated since the
cursor, which the sync has moved back by the overlap window (``updated_after`` is inclusive), each once, in
pages of 100 (``order_by=updated_at, sort=asc``).  The history is read only for
issues whose ``updated_at`` differs from the state store's copy, or whose row shows
a note count (``user_notes_count``), labels or first assignee other than the
copy's (``Mapper.unchanged``): GitLab moves ``updated_at`` for a note, a label or
an assignee change only through ``Issue#touch``, which it throttles to once a
minute (``ThrottledTouch``), so such a change within a minute of the issue's last
update keeps the old version; for the same reason every ``updated_after`` reaches
back one minute more than the cursor and the overlap say.  Three lists per
issue (``resource_state_events``, ``resource_label_events``, ``notes``), and a
fourth, ``resource_milestone_events``, only when the policy reads the milestone
(``milestones``: the adapter's option, which ``Policy.uses_milestones`` in
``adapters.base`` decides; default off, as each list is a request per changed issue).

Reading back what it wrote (``refresh`` after a pass's writes): the written issues'
rows in one list query per 100 (``iids[]``).  Each row is checked against the copy
the pass planned on plus sla-sync's own writes: the labels it added and removed,
its due date and assignees, the same state, type and milestone, and
``user_notes_count`` up by exactly the notes it posted.  When all of that holds,
nobody else changed the issue since the copy was read (a person's comment, label,
state, due-date, assignee, type or milestone change each shows in the row), and the
history is the copy's plus the events of sla-sync's writes, built from GitLab's
answers to them (``Mapper.after_writes``: the notes as their ``POST`` answered, the
label, due-date and assignee changes at the ``PUT``'s ``updated_at``, to the
second): no history request.  Otherwise (any difference, a write whose answer was
lost, a label that moves the status or the priority, a scoped label GitLab swapped,
a ``PUT`` that GitLab's throttled touch left undated) the issue's history is read
whole, as ``fetch`` reads it.  What such a row cannot
show is a change undone within those seconds (a label added and removed again, a
comment posted and another deleted): such a pair is missing from the mirror's copy
until the issue's next change (a new ``updated_at``, note count, labels or first
assignee) has its history read whole.

Mapping to the neutral issue:

- key: the issue's ``iid`` (``"42"``); version: its ``updated_at``.
- status: a closed issue is ``closed``; an open one takes the value of its scoped
  label with the prefix ``tracker.status_labels`` (``status::waiting`` → ``waiting``),
  or ``opened`` without one.  With several such labels (scoped labels are
  exclusive only on GitLab Premium) the one added last wins.
- priority: the value of the scoped label ``tracker.priority_labels``; type: the
  ``issue_type``; milestone: its title; assignee: the first assignee's username;
  ``fields``: ``severity`` and ``weight`` when GitLab sends them.
- history: the label events become ``label`` events; the status (and priority)
  is replayed over the label and state events together (``closed``/``reopened``;
  the creation is not recorded), starting from the state before the first event,
  which is worked out backwards from the current labels, so labels set when the
  issue was created count whether or not GitLab recorded events for them.  Events
  of the same second are one change.  Notes: ``system`` notes are not comments;
  ``internal`` (or the older ``confidential``) notes are private; a note is by an
  agent when its author is one of ``tracker.agents`` (users, or members of the
  groups, inherited membership included), or, without that setting, anyone but
  the issue's author.  sla-sync's own notes (the token's user) never count.
  Due-date, assignee and type changes exist only as system notes ("changed due
  date to November 5, 2026", "assigned to @a and unassigned @b", "changed type from
  issue to incident", in older GitLab "changed issue type to incident"): they
  become ``field`` events (``field_events``) named ``due_date``, ``assignee`` (the
  first assignee's username) and ``type`` (the ``issue_type``: ``test case`` →
  ``test_case``), ``by_self`` when the note's author is the token's user.
  Priority changes (the priority label's value) are ``field`` events ``priority``
  replayed with the labels.  With ``milestones``, the milestone events become
  ``field`` events ``milestone`` (the title; ``milestone_events``).  GitLab has no
  custom fields over REST: no other ``field`` events.

Writing: ``due_date``; labels only through ``add_labels``/``remove_labels``, never
a full replace, so a person's labels are never dropped; ``assignee_ids`` from
usernames looked up exactly (GitLab assigns users only, not groups); the step
comments as notes, ``internal`` when private; ``watchers`` as an internal note
``cc @user ...``: the REST API cannot subscribe somebody else to an issue, a
mention is how GitLab notifies a person and makes them a participant.  GitLab
creates a missing label when a user with at least the Reporter role adds it, and
silently drops it (and an assignee who is not a member) otherwise: the answer of
the write is checked and a dropped label or assignee is an error.

Health status (``writeback.health_status``, GitLab Premium or Ultimate): the issue
JSON carries ``health_status`` (``on_track``, ``needs_attention``, ``at_risk``)
only where the licence has the feature, but the REST API cannot set it (``PUT
/issues/:iid`` ignores the parameter): it is written with GraphQL's ``updateIssue``
mutation (``healthStatus: onTrack``), after the ``PUT``, and its answer is
checked: a status GitLab did not keep (no Premium) is an error.  Setting a value
is idempotent, so the ``POST`` is retried like a ``PUT``.  GitLab records the
change as a system note by the token's user.

Exactly-once notes.  GitLab cannot write a note and labels in one request, so
an escalation step is written in two: first its note, then one ``PUT`` with the
due date, the labels (including the step's marker label ``<prefix>escalated-N``)
and the assignee.  Every step's note ends with a hidden marker,
``<!-- sla-sync: sla:escalated-N -->`` (`` cycle C`` added for a step on a
repeating metric, which fires once per cycle; `` cc`` on a watchers note), and
before posting, the adapter reads the issue's notes (or takes those the same pass
read for the issue's history: nobody but sla-sync writes its notes, and the pass
holds the policy's lock) and leaves out the steps whose marker is already in a
note *of the token's user* (anyone who may comment can type the marker: a Guest's
copy of it is not sla-sync's note).  So:

- a crash (or failure) after the note and before the ``PUT`` leaves no marker
  label; the next pass fires the step again, finds the note's marker and writes
  only the labels: the note is not repeated;
- a failure before the note writes nothing; the next pass does it all;
- a ``POST`` whose answer is lost (timeout, reset, 5xx) is retried only after a
  read of the notes shows that it did not land; when that read fails too, the
  pass gives up on the issue instead of risking a second note.

Steps that fire together share one note (their texts, one marker each); a step
whose marker is already in a note is left out of it.  Labels first and note
second would lose the note for good after a crash (the marker label would stop
the step from firing again), so the note goes first.  The note's marker also
holds when GitLab drops the marker label (a token without the Reporter role):
the step then fires on every pass and fails on its ``PUT``, but its note is
written once.  The one window left is a ``POST`` that times out and lands on
GitLab only after the check read it; the back-off wait before the check makes
that unlikely.  A 500 to a ``POST`` is not retried: the next pass checks.

Online check (``check``): the project exists and the token can see it; the
token's user has at least the Reporter role (else it cannot create labels or
write internal notes), and only then are missing labels reported (GitLab creates
a missing label on first use for a Reporter; nobody has to add them); every user
named by the policy exists (a username, exactly) and, unless it is an agent, is a
member of the project (GitLab assigns members only); every agents group exists;
with ``writeback.health_status``, an issue of the project shows ``health_status``
(the only sign of the licence a project member can see; a project without issues
cannot tell).

Retries: python-gitlab, left to itself, obeys 429 by sleeping ``Retry-After``
(or until ``RateLimit-Reset``) with ``time.sleep`` up to ``max_retries=10`` times
per request, and with ``retry_transient_errors`` also 5xx and timeouts; none of
that wait is injectable.  Here the ``requests`` session it is given
(``RetryingSession``) answers those cases itself before python-gitlab sees them:
GETs and PUTs (which only set values: adding a label twice adds it once) are
retried with tenacity, bounded by ``tracker.max_attempts``, backing off
exponentially or as ``Retry-After``/``RateLimit-Reset`` ask (at most
``max_wait``), through the injectable ``options.sleep``; a POST is sent once and
the adapter decides (see above).  Pages of a lazy list are retried one by one.

Shape, as every adapter: the client (python-gitlab over ``RetryingSession``), the
pure ``Mapper`` (payload → neutral issue and observed values), and ``GitLabTracker``.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, ClassVar, TypeVar, assert_never

import gitlab
import requests
import tenacity
from gitlab import exceptions as gex

from sla_sync.calendar import iso_utc
from sla_sync.errors import AuthError, GoneError, TrackerError, UserError
from sla_sync.model import Change, ChangeKind, Event, Issue, Observed
from sla_sync.policy import marker
from sla_sync.schema import GitLabSpec, TrackerSpec
from sla_sync.tracker import AdapterOptions, Cached, Fetched, Tracked

from .base import (
    ODD_ANSWER,
    RETRY_STATUS,
    RequestCounter,
    Retryable,
    assemble,
    certificate_error,
    guard_session,
    odd_answer,
    retry_after,
    retrying,
    settings_of,
    warn_plain_http,
)

T = TypeVar("T")

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT"})
REPORTER = 20  # GitLab's access level that may create labels and write internal notes
TOUCH_S = 60  # GitLab's ThrottledTouch: a note, label or assignee change moves updated_at at most once a minute
HEALTH_MUTATION = (
    "mutation($path: ID!, $iid: String!, $health: HealthStatus) {"
    " updateIssue(input: {projectPath: $path, iid: $iid, healthStatus: $health})"
    " { issue { healthStatus } errors } }"
)
TAG = re.compile(r"<!-- sla-sync: ([^<>]*?) -->")
ODD_HINT = "is tracker.url the GitLab server (https://gitlab.example.com), not a page or a proxy's?"


# -- HTTP: one session that counts, retries and waits as told ------------------------


class _Unknown(Exception):
    """A write whose outcome cannot be known now: not to be retried blindly."""


class RetryingSession(requests.Session):
    """The ``requests`` session python-gitlab sends through (see the module docstring)."""

    def __init__(self, *, attempts: int, max_wait: float, sleep: Callable[[float], None],
                 counter: RequestCounter) -> None:
        super().__init__()
        self.attempts = attempts
        self.max_wait = max_wait
        self.sleep = sleep
        self.counter = counter

    def retrying(self) -> tenacity.Retrying:
        return retrying(self.attempts, self.max_wait, self.sleep)

    def send_once(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """One HTTP request; ``Retryable`` for what may pass on a second try."""
        method = (request.method or "GET").upper()
        where = (request.url or "").split("?")[0]
        self.counter.add(method)
        try:
            response = super().send(request, **kwargs)
        except requests.exceptions.SSLError as exc:  # a ConnectionError, but no retry will change it
            raise certificate_error("GitLab", where, exc) from None
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise Retryable(f"{exc.__class__.__name__} talking to {where}") from None
        code = response.status_code
        if code in RETRY_STATUS or (code >= 500 and method in IDEMPOTENT):
            wait = retry_after(response)
            response.close()
            raise Retryable(f"HTTP {code} from {where}", wait)
        return response

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if (request.method or "GET").upper() not in IDEMPOTENT:
            return self.send_once(request, **kwargs)
        response: requests.Response = self.retrying()(self.send_once, request, **kwargs)
        return response


# -- mapping ---------------------------------------------------------------------


def graphql_health(value: str) -> str:
    """REST's ``needs_attention`` as GraphQL's enum value ``needsAttention``."""
    first, *rest = value.split("_")
    return first + "".join(part.title() for part in rest)


def same_health(a: Any, b: str) -> bool:
    """REST's ``at_risk``, GraphQL's ``atRisk`` (or, GitLab 13.x, ``AT_RISK``): the same status."""
    return isinstance(a, str) and a.replace("_", "").lower() == b.replace("_", "").lower()


def instant(text: str) -> int:
    """GitLab's ``2016-01-04T15:31:51.081Z`` → epoch seconds."""
    return int(datetime.fromisoformat(text).timestamp() // 1)


def scoped(labels: Iterable[str], prefix: str | None, recency: Mapping[str, int]) -> str | None:
    """The value of the scoped label ``prefix<value>``; the latest added wins."""
    if not prefix:
        return None
    found = [lbl for lbl in labels if lbl.startswith(prefix) and len(lbl) > len(prefix)]
    if not found:
        return None
    return max(found, key=lambda lbl: (recency.get(lbl, -1), lbl))[len(prefix):]


def recency_of(events: Iterable[Event]) -> dict[str, int]:
    """Label → the order in which it was last added (for ``scoped``)."""
    order: dict[str, int] = {}
    for n, label in enumerate(lbl for e in events if e.kind == "label" for lbl in e.added):
        order[label] = n
    return order


def _assignees(row: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The issue's assignees (``assignee`` alone on a GitLab before multiple assignees)."""
    people = row.get("assignees") or ([row["assignee"]] if row.get("assignee") else [])
    return list(people)


def _first_assignee(row: Mapping[str, Any]) -> str | None:
    """The first assignee's username, as ``tracked`` names the issue's assignee."""
    people = _assignees(row)
    return people[0].get("username") if people else None


def _username(entry: Mapping[str, Any], key: str = "user") -> str | None:
    who = entry.get(key) or {}
    name = who.get("username")
    return str(name) if name is not None else None


LABEL, STATE = 0, 1
Entry = tuple[int, int, int, Mapping[str, Any]]  # (instant, LABEL or STATE, id, event)


def _entries(label_events: Sequence[Mapping[str, Any]], state_events: Sequence[Mapping[str, Any]]) -> list[Entry]:
    """Both histories in one list, oldest first (a deleted label's events carry no label)."""
    entries: list[Entry] = [(instant(e["created_at"]), LABEL, int(e.get("id") or 0), e)
                            for e in label_events if e.get("label")]
    entries += [(instant(e["created_at"]), STATE, int(e.get("id") or 0), e) for e in state_events]
    return sorted(entries, key=lambda x: x[:3])


def _before(row: Mapping[str, Any], entries: Sequence[Entry]) -> tuple[set[str], str]:
    """The labels and state before the first event, worked out back from the current ones."""
    labels, state = set(row.get("labels") or ()), str(row.get("state") or "opened")
    for _, kind, _, e in reversed(entries):
        if kind == LABEL:
            (labels.discard if e.get("action") == "add" else labels.add)(e["label"]["name"])
        elif e.get("state") in ("closed", "reopened"):  # "opened" marks a creation, not a change
            state = "opened" if e["state"] == "closed" else "closed"
    return labels, state


DUE_NOTE = re.compile(r"\b(changed|removed) due date(?: to)?(?: ([A-Z][a-z]+ +\d{1,2}, \d{4}))?")


def _due_change(body: str) -> tuple[bool, str | None]:
    """A system note's due-date change ("changed due date to November 5, 2026",
    "removed due date"): whether it is one, and the new date (``None``: removed)."""
    found = DUE_NOTE.search(body)
    if found is None or (found.group(1) == "changed" and found.group(2) is None):
        return False, None
    if found.group(1) == "removed":
        return True, None
    return True, datetime.strptime(" ".join(found.group(2).split()), "%B %d, %Y").date().isoformat()


def _assignee_change(body: str) -> tuple[list[str], list[str], bool] | None:
    """A system note's assignee change ("assigned to @a and @b and unassigned @c",
    "removed assignee"): (added, removed, whether it replaced all), else ``None``."""
    text = body.strip()
    if text in ("removed assignee", "removed all assignees"):
        return [], [], True
    if not text.startswith(("assigned to @", "unassigned @", "reassigned to @")):
        return None
    added: list[str] = []
    removed: list[str] = []
    target: list[str] | None = None
    for word in text.replace(",", " ").split():
        if word in ("assigned", "reassigned", "unassigned", "additionally"):
            # "assigned to @a additionally to @b" (old GitLab): @b was assigned already
            target = {"unassigned": removed, "additionally": None}.get(word, added)
        elif word.startswith("@") and target is not None:
            target.append(word[1:])
    return added, removed, text.startswith("reassigned")


TYPE_NOTE = re.compile(r"^changed (?:issue )?type (?:from ([a-z][a-z ]*?) )?to ([a-z][a-z ]*)$", re.IGNORECASE)


def _type_change(body: str) -> tuple[str | None, str] | None:
    """A system note's type change, as (the type before, if the note says it, the
    type after), each as the ``issue_type`` names it (``test case`` → ``test_case``):
    "changed type from issue to incident" (current GitLab), "changed issue type to
    incident" (older GitLab); else ``None``."""
    found = TYPE_NOTE.match(" ".join(body.split()))
    if found is None:
        return None
    old, new = found.group(1), found.group(2)
    return (_issue_type(old) if old else None), _issue_type(new)


def _issue_type(words: str) -> str:
    """A type as a note words it (Rails' ``humanize``: ``test case``) → the ``issue_type``."""
    return words.strip().lower().replace(" ", "_")


def milestone_events(events: Sequence[Mapping[str, Any]], me: int | None) -> list[Event]:
    """GitLab's milestone events as ``field`` events ``milestone`` (by title, as
    ``tracked`` names the milestone), ``by_self`` when the event's user is ``me``.
    GitLab records one event per change: ``add`` with the new milestone (also when it
    replaces another), or ``remove`` with the old one; an event whose milestone was
    deleted since (no title) is left out."""
    ordered = sorted(events, key=lambda e: (instant(e["created_at"]), int(e.get("id") or 0)))
    current: str | None = None
    out: list[Event] = []
    for e in ordered:
        title = (e.get("milestone") or {}).get("title")
        if title is None:
            continue
        removed = e.get("action") == "remove"
        old = (current or str(title)) if removed else current
        new = None if removed else str(title)
        if old != new:
            out.append(Event(instant(e["created_at"]), "field", field="milestone", from_=old, to=new,
                             author=_username(e), by_self=me is not None and (e.get("user") or {}).get("id") == me))
        current = new
    return out


def _note_event(note: Mapping[str, Any], field: str, old: str | None, new: str | None, me: int | None) -> Event:
    author = note.get("author") or {}
    return Event(instant(note["created_at"]), "field", field=field, from_=old, to=new, author=_username(note, "author"),
                 by_self=me is not None and author.get("id") == me)


def field_events(row: Mapping[str, Any], notes: Sequence[Mapping[str, Any]], me: int | None) -> list[Event]:
    """Due-date, assignee and type changes, which GitLab records only as system
    notes, as ``field`` events (``by_self`` when the note's author is the user
    ``me``).  The assignee is the first one, as ``tracked`` shows it; who was
    assigned before the first note is worked out back from the current assignees.
    A due date's value before the first note is not recorded (``from_`` is
    ``None``), nor is a type's before the first note of the older wording."""
    system = [n for n in notes if n.get("system")]
    out: list[Event] = []
    due: str | None = None
    for note in system:
        changed, new = _due_change(str(note.get("body") or ""))
        if changed:
            out.append(_note_event(note, "due_date", due, new, me))
            due = new
    ops = [(n, op) for n in system if (op := _assignee_change(str(n.get("body") or ""))) is not None]
    people = [str(p.get("username")) for p in row.get("assignees") or [] if p.get("username")]
    for _, (added, removed, replaced) in reversed(ops):
        people = [] if replaced else [p for p in people if p not in added] + [p for p in removed if p not in people]
    for note, (added, removed, replaced) in ops:
        before = people[0] if people else None
        kept = [] if replaced else [p for p in people if p not in removed]
        people = kept + [p for p in added if p not in kept]
        if (now := people[0] if people else None) != before:
            out.append(_note_event(note, "assignee", before, now, me))
    kind: str | None = None
    for note in system:
        if (change := _type_change(str(note.get("body") or ""))) is not None:
            old, new = change
            if (old or kind) != new:
                out.append(_note_event(note, "type", old or kind, new, me))
            kind = new
    return out


@dataclass(frozen=True)
class Mapper:
    """Turns GitLab's issue payloads into the neutral issue (pure)."""

    status_prefix: str | None
    priority_prefix: str | None
    project: str

    def status(self, state: str, labels: Iterable[str], recency: Mapping[str, int]) -> str:
        if state == "closed":
            return "closed"
        return scoped(labels, self.status_prefix, recency) or "opened"

    def changes(self, row: Mapping[str, Any], label_events: Sequence[Mapping[str, Any]],
                state_events: Sequence[Mapping[str, Any]], me: int | None = None) -> list[Event]:
        """Label, status and priority events, replayed over both event lists; an
        event is ``by_self`` when every change in it was made by the user ``me``."""
        entries = _entries(label_events, state_events)
        labels, state = _before(row, entries)
        recency: dict[str, int] = {}
        status, priority = self.status(state, labels, recency), scoped(labels, self.priority_prefix, recency)
        out: list[Event] = []
        seq = itertools.count()
        for at, group in itertools.groupby(entries, key=lambda x: x[0]):
            changed: dict[bool, tuple[list[str], list[str], str | None]] = {}  # by the user `me`? -> changes
            who: str | None = None
            ours = me is not None
            for _, kind, _, e in group:
                who = _username(e) or who
                mine = me is not None and (e.get("user") or {}).get("id") == me
                ours = ours and mine
                if kind == STATE:
                    state = "closed" if e.get("state") == "closed" else "opened"
                    continue
                added, removed, _ = changed.setdefault(mine, ([], [], _username(e)))
                if e.get("action") == "add":
                    labels.add(e["label"]["name"])
                    recency[e["label"]["name"]] = next(seq)
                    added.append(e["label"]["name"])
                else:
                    labels.discard(e["label"]["name"])
                    removed.append(e["label"]["name"])
            for mine, (added, removed, author) in sorted(changed.items()):  # a person's first, then sla-sync's
                out.append(Event(at, "label", added=tuple(added), removed=tuple(removed), author=author, by_self=mine))
            if (now := self.status(state, labels, recency)) != status:
                out.append(Event(at, "status", from_=status, to=now, author=who, by_self=ours))
                status = now
            if (level := scoped(labels, self.priority_prefix, recency)) != priority:
                out.append(Event(at, "field", field="priority", from_=priority, to=level, author=who, by_self=ours))
                priority = level
        return out

    def comments(self, row: Mapping[str, Any], notes: Sequence[Mapping[str, Any]], me: int | None,
                 agents: frozenset[str] | None) -> list[Event]:
        """The people's notes (not ``system`` ones) as comment events."""
        author_id = (row.get("author") or {}).get("id")
        out = []
        for n in notes:
            if n.get("system"):
                continue
            who = n.get("author") or {}
            login = who.get("username")
            mine = me is not None and who.get("id") == me
            agent = login in agents if agents is not None else who.get("id") != author_id
            private = bool(n.get("internal") or n.get("confidential"))
            out.append(Event(instant(n["created_at"]), "comment", public=not private, by_agent=agent and not mine,
                             author=login, by_self=mine))
        return out

    @staticmethod
    def unchanged(row: Mapping[str, Any], issue: Issue) -> bool:
        """Whether a row whose ``updated_at`` is the copy's shows nothing the copy
        lacks.  GitLab moves ``updated_at`` for a note, a label or an assignee change
        only through ``Issue#touch``, which it throttles to once a minute
        (``ThrottledTouch``): such a change within a minute of the last update keeps
        the old version, and only the row's note count (``user_notes_count``; a row
        without one tells nothing), labels and first assignee show it."""
        notes = row.get("user_notes_count")
        return ((notes is None or notes == sum(e.kind == "comment" for e in issue.events))
                and set(row.get("labels") or ()) == set(issue.labels) and _first_assignee(row) == issue.assignee)

    def after_writes(self, row: Mapping[str, Any], before: Tracked, wrote: Wrote, me: int,
                     my_name: str) -> tuple[Event, ...] | None:
        """The history of an issue sla-sync just wrote, without reading it again:
        the copy it planned on (``before``) and the events its own writes made, as
        GitLab answered them (``wrote``).  ``None`` when the row, read after the
        writes, shows anything else: labels, state, due date, assignees, type,
        milestone or number of notes other than the copy and the writes make (a
        person's change since the copy was read, or a write GitLab did more with,
        such as a scoped label replacing another), or a write that would move the
        status or the priority, or a ``PUT`` whose answer kept the copy's
        ``updated_at`` (GitLab's throttled touch: the answer does not date the
        write); the history must then be read whole."""
        issue = before.issue
        add = [lbl for lbl in wrote.add if lbl not in issue.labels]
        remove = [lbl for lbl in wrote.remove if lbl in issue.labels]
        prefixes = tuple(p for p in (self.status_prefix, self.priority_prefix) if p)
        if set(wrote.add) & set(wrote.remove) or any(lbl.startswith(prefixes) for lbl in add + remove):
            return None
        due = (wrote.body["due_date"] or None) if "due_date" in wrote.body else issue.due_date
        people, first = _assignees(row), _first_assignee(row)
        comments = sum(e.kind == "comment" for e in issue.events)
        if (set(row.get("labels") or ()) != (set(issue.labels) - set(remove)) | set(add)
                or before.open != (row.get("state") == "opened")
                or (row.get("due_date") or None) != due
                or row.get("issue_type") != issue.type
                or (row.get("milestone") or {}).get("title") != issue.milestone
                or row.get("user_notes_count") != comments + len(wrote.notes)
                or any((n.get("author") or {}).get("id") != me or n.get("system") for n in wrote.notes)
                or ([p.get("id") for p in people] != list(wrote.body["assignee_ids"]) if "assignee_ids" in wrote.body
                    else first != issue.assignee)):
            return None
        ours: list[Event] = []
        if wrote.put is not None:
            if str(wrote.put["updated_at"]) == before.version:
                return None  # GitLab's throttled touch did not date the write: when it happened is unknown
            at = instant(str(wrote.put["updated_at"]))
            if add or remove:
                if any(e.at == at and e.kind == "label" and e.by_self for e in issue.events):
                    return None  # a re-read would make one event of the two
                ours.append(Event(at, "label", added=tuple(add), removed=tuple(remove), author=my_name, by_self=True))
            if "due_date" in wrote.body and due != issue.due_date:
                old = next((e.to for e in reversed(issue.events) if e.kind == "field" and e.field == "due_date"), None)
                ours.append(Event(at, "field", field="due_date", from_=old, to=due, author=my_name, by_self=True))
            if "assignee_ids" in wrote.body and first != issue.assignee:
                ours.append(Event(at, "field", field="assignee", from_=issue.assignee, to=first, author=my_name,
                                  by_self=True))
        ours += self.comments(row, wrote.notes, me, None)
        return tuple(sorted((*issue.events, *ours), key=lambda e: (e.at, _rank(e))))

    def tracked(self, row: Mapping[str, Any], events: tuple[Event, ...]) -> Tracked:
        labels = tuple(row.get("labels") or ())
        assignee = _first_assignee(row)
        recency = recency_of(events)
        project = str((row.get("references") or {}).get("full") or "").rsplit("#", 1)[0] or self.project
        issue = Issue(
            key=str(row["iid"]),
            title=row.get("title") or "",
            created_at=instant(row["created_at"]),
            updated_at=instant(row["updated_at"]),
            status=self.status(str(row.get("state")), labels, recency),
            priority=scoped(labels, self.priority_prefix, recency),
            type=row.get("issue_type"),
            project=project,
            labels=labels,
            assignee=assignee,
            milestone=(row.get("milestone") or {}).get("title"),
            due_date=row.get("due_date"),
            fields={k: row[k] for k in ("severity", "weight") if row.get(k) is not None},
            events=events,
        )
        health = row.get("health_status")
        observed = Observed(row.get("due_date"), frozenset(labels), assignee,
                            health_status=health if isinstance(health, str) else None)
        return Tracked(issue, observed, str(row["updated_at"]), open=row.get("state") == "opened")


def markers(notes: Iterable[Mapping[str, Any]], me: int) -> set[str]:
    """The step markers in the notes that the user ``me`` (the token's) wrote.  A
    marker in anybody else's note is a copy or a forgery: anyone who may comment
    can type it."""
    return {m for n in notes if not n.get("system") and (n.get("author") or {}).get("id") == me
            for m in TAG.findall(str(n.get("body") or ""))}


@dataclass(frozen=True)
class Wrote:
    """What one ``apply`` wrote, as GitLab answered it: the notes it posted (their
    ``POST`` answers, oldest first), the labels it asked to add and remove, the
    ``PUT``'s body and its answer (``None``: no ``PUT``)."""

    notes: tuple[Mapping[str, Any], ...]
    add: tuple[str, ...]
    remove: tuple[str, ...]
    body: Mapping[str, Any]
    put: Mapping[str, Any] | None


def _rank(event: Event) -> int:
    """Where a re-read puts an event among those of its second (``_events``): the
    label, status and priority replay, the system notes' fields, the milestone
    events, the comments."""
    if event.kind == "comment":
        return 3
    if event.kind == "field" and event.field == "milestone":
        return 2
    return 1 if event.kind == "field" and event.field in ("due_date", "assignee", "type") else 0


@dataclass(frozen=True)
class _Note:
    """A note to post: its visible text, privacy and hidden step markers."""

    text: str
    private: bool
    tags: tuple[str, ...]

    @property
    def body(self) -> str:
        return self.text + "".join(f"\n\n<!-- sla-sync: {t} -->" for t in self.tags)


# -- the adapter -------------------------------------------------------------------


class GitLabTracker:
    """The ``Tracker`` for GitLab (REST API v4), self-managed or gitlab.com."""

    # What the history cannot give (``check --online`` warns a policy that reads it)
    HISTORY_GAPS: ClassVar[dict[str, str]] = {
        "custom_fields": "GitLab has no custom fields over REST (severity and weight changes are not mapped)",
    }

    kind = "gitlab"
    rereads_written = True  # one list query per 100 written issues, their histories from the writes' answers

    def __init__(self, spec: GitLabSpec, secret: str, options: AdapterOptions, *,
                 milestones: bool | None = None) -> None:
        self.url = spec.url.rstrip("/")
        self.spec = spec
        self.options = options
        # read the milestone history (a request per changed issue) only when the policy
        # reads the milestone: ``milestones``, else ``options.milestones`` (``Policy.uses_milestones``)
        self.milestones = options.milestones if milestones is None else milestones
        self.counter = RequestCounter()
        self.session = RetryingSession(
            attempts=spec.max_attempts, max_wait=options.max_wait,
            sleep=options.sleep if options.sleep is not None else time.sleep, counter=self.counter
        )
        self.answers = guard_session(self.session, "GitLab")
        self.gl = gitlab.Gitlab(
            self.url, private_token=secret, timeout=spec.timeout, retry_transient_errors=False, session=self.session
        )
        self.project = self.gl.projects.get(spec.project, lazy=True)
        self.mapper = Mapper(spec.status_labels, spec.priority_labels, spec.project)
        self.directory: dict[str, str] = {}  # "self" / "user:alice" -> id
        self._agents: frozenset[str] | None = None
        self._agents_known = False
        self._path: str | None = None  # the project's full path, for GraphQL
        self._wrote: dict[str, Wrote] = {}  # this pass's writes, as GitLab answered them: for ``refresh``
        self._markers: dict[str, set[str]] = {}  # the step markers in the notes this pass read, per issue

    # -- errors ----------------------------------------------------------------------

    def _where(self, key: str | None) -> str:
        return f"GitLab {self.url}, project {self.spec.project}" + (f", issue {key}" if key else "")

    def _call(self, what: str, fn: Callable[[], T], key: str | None = None) -> T:
        """Run a client call, turning its errors into ours (never with the token)."""
        where = self._where(key)
        try:
            return fn()
        except gex.GitlabAuthenticationError:
            token = self.spec.api_key_env or self.spec.api_key_file or "the token"
            raise AuthError(
                f"authentication failed for {self.url}: check the token in {token} "
                "(a personal, group or project access token with the api scope, not expired)"
            ) from None
        except Retryable as exc:
            raise TrackerError(
                f"{where}: {what}: {exc} (gave up after {self.session.attempts} attempts); try again later"
            ) from None
        except gex.GitlabParsingError as exc:
            if "dictionary" in str(exc):  # JSON, but a list or null where GitLab sends an object
                raise odd_answer(where, what, exc, self.answers, ODD_HINT, self.gl.private_token) from None
            raise TrackerError(f"{where}: {what}: the answer was not JSON; is tracker.url a GitLab?") from None
        except gex.GitlabError as exc:
            gone = key is not None and exc.response_code == 404
            raise (GoneError if gone else TrackerError)(f"{where}: {what}: {self._explain(exc)}") from None
        except requests.RequestException as exc:
            raise TrackerError(f"{where}: {what}: {exc.__class__.__name__}; check tracker.url") from None
        except ODD_ANSWER as exc:
            raise odd_answer(where, what, exc, self.answers, ODD_HINT, self.gl.private_token) from None

    def _explain(self, exc: gex.GitlabError) -> str:
        code = exc.response_code
        if code == 403:
            return ("forbidden (403); give the token's user at least the Reporter role in the project "
                    "and the token the api scope")
        if code == 404:
            return ("not found (404); check tracker.url and tracker.project (the project's path, like group/project, "
                    "or its numeric id) and that the token's user is a member of the project")
        if code in (400, 409, 422):
            return f"GitLab refused it ({code}): {exc.error_message}"
        if code is None:
            return f"{exc.error_message}".splitlines()[0] if exc.error_message else exc.__class__.__name__
        return f"HTTP {code}; try again later"

    # -- reading -----------------------------------------------------------------------

    def _list(self, **filters: Any) -> list[dict[str, Any]]:
        found = self.project.issues.list(order_by="updated_at", sort="asc", iterator=True, per_page=100, **filters)
        return [i.asdict() for i in found]

    def fetch_all(self, since: int | None) -> Iterator[Tracked]:
        filters: dict[str, Any] = {"state": "all", "order_by": "created_at", "sort": "asc"}
        if since is not None:
            filters["created_after"] = iso_utc(since)
        pages = iter(self._call("listing issues",
                                lambda: self.project.issues.list(iterator=True, per_page=100, **filters)))
        while True:  # the list pages lazily: each step may be a request
            found = self._call("listing issues", lambda: next(pages, None))
            if found is None:
                return
            row = found.asdict()
            if since is None or instant(row["created_at"]) >= since:
                yield self.mapper.tracked(row, self._events(row))

    def fetch(self, since: int | None, cached: Mapping[str, Cached]) -> Fetched:
        self._new_pass()
        rows = self._call("listing open issues", lambda: self._list(state="opened"))
        if since is not None:
            start = iso_utc(since - TOUCH_S)  # a minute more: a change GitLab did not date (``Mapper.unchanged``)
            # the open ones are all in the first list: only closed issues updated since the cursor
            rows += self._call("listing closed issues", lambda: self._list(state="closed", updated_after=start))
        return self._assemble(rows, since, cached)

    def fetch_changed(self, since: int, cached: Mapping[str, Cached]) -> Fetched:
        self._new_pass()
        start = iso_utc(since - TOUCH_S)  # a minute more: a change GitLab did not date (``Mapper.unchanged``)
        rows = self._call("listing updated issues", lambda: self._list(state="all", updated_after=start))
        return self._assemble(rows, since, cached)

    def _new_pass(self) -> None:
        """Forget what the last pass read and wrote (a tracker lives on in ``watch``)."""
        self._wrote.clear()
        self._markers.clear()

    def in_scope(self, keys: Sequence[str]) -> set[str]:
        found: set[str] = set()
        numbers = [int(k) for k in keys if k.isdigit()]
        for i in range(0, len(numbers), 100):
            part = numbers[i:i + 100]
            rows = self._call("checking issues are in scope", partial(self._list, state="opened", iids=part))
            found |= {str(r["iid"]) for r in rows}
        return found

    def _assemble(self, rows: list[dict[str, Any]], since: int | None, cached: Mapping[str, Cached]) -> Fetched:
        if not rows:  # any server can answer []: the token's user (remembered once read) says it is GitLab
            self._self_id()
        return assemble(
            rows, since, cached,
            identify=lambda r: (str(r["iid"]), str(r["updated_at"]), instant(r["updated_at"])),
            history=partial(self._events, keep_markers=True), track=self.mapper.tracked,
            where=f"GitLab {self.url}", same=self.mapper.unchanged,
        )

    def refresh(self, keys: Iterable[str], before: Mapping[str, Tracked] | None = None) -> list[Tracked]:
        """The issues anew: their rows in one list query per 100 (``iids[]``), and
        each one's history (notes, label and state events), which no list carries.
        An issue this pass wrote, given in ``before`` (the copy the pass planned
        on), whose row shows nothing but sla-sync's writes since that copy, is
        built from the copy and the writes' answers instead (``Mapper.after_writes``):
        no history read.  Any other change (a person's comment, label, state, due
        date, assignee, type or milestone since the copy) and its history is read
        whole."""
        numbers = [int(k) for k in keys if k.isdigit()]
        out = []
        for i in range(0, len(numbers), 100):
            part = numbers[i:i + 100]
            rows = self._call("re-reading the written issues", partial(self._list, state="all", iids=part))
            for row in rows:
                key = str(row["iid"])
                wrote, known = self._wrote.pop(key, None), (before or {}).get(key)
                events = None
                if wrote is not None and known is not None:
                    me, name = self._self_id(), self._self_name()
                    try:
                        events = self.mapper.after_writes(row, known, wrote, me, name)
                    except (KeyError, TypeError, ValueError, AttributeError):
                        events = None  # an answer of odd shape: the history is read whole, as ``fetch`` reads it
                out.append(self.mapper.tracked(row, events if events is not None else self._events(row)))
        return out

    def _events(self, row: Mapping[str, Any], *, keep_markers: bool = False) -> tuple[Event, ...]:
        """The issue's history; with ``keep_markers`` (a pass's fetch, which may write
        next), the step markers of its notes are kept for ``_post_notes``."""
        key = str(row["iid"])
        issue = self.project.issues.get(int(row["iid"]), lazy=True)

        def pages(manager: Any, **extra: Any) -> list[dict[str, Any]]:
            return [e.asdict() for e in manager.list(iterator=True, per_page=100, **extra)]

        labels = self._call("reading the label history", lambda: pages(issue.resourcelabelevents), key)
        states = self._call("reading the state history", lambda: pages(issue.resourcestateevents), key)
        notes = self._call("reading the notes", lambda: pages(issue.notes, sort="asc", order_by="created_at"), key)
        if keep_markers:
            self._markers[key] = markers(notes, self._self_id())
        events = self.mapper.changes(row, labels, states, self._self_id())
        events += field_events(row, notes, self._self_id())
        if self.milestones:
            marks = self._call("reading the milestone history", lambda: pages(issue.resourcemilestoneevents), key)
            events += milestone_events(marks, self._self_id())
        if any(not n.get("system") for n in notes):
            events += self.mapper.comments(row, notes, self._self_id(), self._agent_names())
        return tuple(sorted(events, key=lambda e: e.at))

    # -- names -----------------------------------------------------------------------------

    def _me(self) -> dict[str, Any]:
        """The token's user (``GET /user``), remembered as ``self`` in the directory."""
        self.gl.auth()
        assert self.gl.user is not None
        me = self.gl.user.asdict()
        self.directory["self"] = str(me["id"])
        self.directory["self:username"] = str(me["username"])
        return me

    def _self_id(self) -> int:
        if "self" not in self.directory:
            self._call("reading the token's user", self._me)
        return int(self.directory["self"])

    def _self_name(self) -> str:
        if "self:username" not in self.directory:  # a directory saved before it was kept
            self._call("reading the token's user", self._me)
        return self.directory["self:username"]

    def _find_user(self, login: str) -> int | None:
        key = f"user:{login}"
        if key not in self.directory:
            found = self._call(
                f"looking up the user {login}",
                lambda: [u.asdict() for u in self.gl.users.list(username=login, iterator=True)],
            )
            exact = [u for u in found if str(u.get("username", "")).lower() == login.lower()]
            if not exact:
                return None
            self.directory[key] = str(exact[0]["id"])
        return int(self.directory[key])

    def _user_id(self, login: str) -> int:
        uid = self._find_user(login)
        if uid is None:
            raise TrackerError(
                f"GitLab {self.url}: no user with the username {login!r} (GitLab assigns users only, not groups); "
                "fix the policy or create the user"
            )
        return uid

    def _group_members(self, name: str) -> set[str] | None:
        """Usernames of a group's members, inherited ones included; ``None``: no such group."""
        group = self.gl.groups.get(name, lazy=True)

        def members() -> set[str] | None:
            try:
                return {str(m.asdict()["username"]) for m in group.members_all.list(iterator=True, per_page=100)}
            except gex.GitlabError as exc:
                if exc.response_code == 404:
                    return None
                raise

        return self._call(f"reading the members of the group {name}", members)

    def _agent_names(self) -> frozenset[str] | None:
        """Usernames of the agents the policy names; ``None`` when it names none."""
        users, groups = self.options.agents_users, self.options.agents_groups
        if not users and not groups:
            return None
        if not self._agents_known:
            names = set(users)
            for group in groups:
                found = self._group_members(group)
                if found is None:
                    raise TrackerError(
                        f"GitLab {self.url}: no group {group!r} (tracker.agents.groups), or the token's user cannot "
                        "see it: fix the policy; `sla-sync check --online POLICY` lists what is missing"
                    )
                names |= found
            self._agents, self._agents_known = frozenset(names), True
        return self._agents

    # -- writing -------------------------------------------------------------------------

    def apply(self, key: str, changes: Sequence[Change]) -> None:
        iid = int(key)
        body: dict[str, Any] = {}
        add: list[str] = []
        remove: list[str] = []
        health: str | None = None
        for change in changes:
            match change.kind:
                case ChangeKind.DUE_DATE:
                    body["due_date"] = change.value
                case ChangeKind.ADD_LABELS:
                    add += [v for v in change.values if v not in add]
                case ChangeKind.REMOVE_LABELS:
                    remove += [v for v in change.values if v not in remove]
                case ChangeKind.ASSIGN:
                    body["assignee_ids"] = [self._user_id(change.value)] if change.value else []
                case ChangeKind.COMMENT | ChangeKind.WATCHERS:
                    pass  # notes, posted below
                case ChangeKind.DUE_INSTANT:
                    pass  # never planned: GitLab's settings have no due_field
                case ChangeKind.REMAINING:
                    pass  # never planned: `check` refuses writeback.remaining_field on GitLab
                case ChangeKind.HEALTH_STATUS:
                    health = change.value
                case unknown:
                    assert_never(unknown)
        self._wrote.pop(key, None)
        notes = self._post_notes(iid, key, changes, add)
        if add:
            body["add_labels"] = ",".join(add)
        if remove:
            body["remove_labels"] = ",".join(remove)
        put = self._put(iid, key, body, add) if body else None
        if health:
            self._set_health(key, health)
        if notes is not None:  # every note's answer in hand: ``refresh`` may do without a read
            self._wrote[key] = Wrote(tuple(notes), tuple(add), tuple(remove), body, put)

    def _project_path(self) -> str:
        """The project's full path (GraphQL names projects by path, not id)."""
        if self._path is None:
            ref = self.spec.project.strip("/")
            self._path = ref if not ref.isdigit() else str(self._call(
                "reading the project", lambda: self.gl.projects.get(ref).asdict()["path_with_namespace"]))
        return self._path

    def _set_health(self, key: str, health: str) -> None:
        """The issue's health status, through GraphQL (see the module docstring)."""
        variables = {"path": self._project_path(), "iid": key, "health": graphql_health(health)}

        def post() -> Any:
            return self.session.retrying()(self.gl.http_post, f"{self.url}/api/graphql",
                                           post_data={"query": HEALTH_MUTATION, "variables": variables})

        answer = self._call("setting the health status", post, key)
        answer = answer if isinstance(answer, dict) else {}
        result = (answer.get("data") or {}).get("updateIssue") or {}
        problems = [str(e.get("message") if isinstance(e, dict) else e) for e in answer.get("errors") or []]
        problems += [str(e) for e in result.get("errors") or []]
        if problems or not same_health((result.get("issue") or {}).get("healthStatus"), health):
            said = f" (GitLab said: {'; '.join(problems)[:300]})" if problems else ""
            raise TrackerError(
                f"{self._where(key)}: GitLab did not set the health status to {health}{said}: health status needs "
                "GitLab Premium or Ultimate and the Reporter role; remove writeback.health_status otherwise"
            )

    @staticmethod
    def _notes(changes: Sequence[Change], add: Sequence[str], posted: set[str]) -> list[_Note]:
        """The step comments as one note, the watchers as another (``cc @...``),
        leaving out the steps whose marker is in ``posted``."""

        def tag(change: Change, suffix: str = "") -> tuple[str, ...]:
            if change.step is None:
                return ()
            mark = next((lbl for lbl in add if lbl.endswith(marker("", change.step))), f"step-{change.step}")
            cycle = f" cycle {change.cycle}" if change.cycle is not None else ""  # a repeating metric's: once per cycle
            return (mark + cycle + suffix,)

        comments = [c for c in changes if c.kind is ChangeKind.COMMENT and c.value and not set(tag(c)) & posted]
        watchers = [c for c in changes
                    if c.kind is ChangeKind.WATCHERS and c.values and not set(tag(c, " cc")) & posted]
        out = []
        if comments:
            out.append(_Note("\n\n".join(c.value or "" for c in comments), all(c.private for c in comments),
                             tuple(t for c in comments for t in tag(c))))
        if watchers:
            names = dict.fromkeys(n for c in watchers for n in c.values)
            out.append(_Note("cc " + " ".join(f"@{n}" for n in names), True,
                             tuple(t for c in watchers for t in tag(c, " cc"))))
        return out

    def _posted(self, iid: int) -> set[str]:
        """The step markers on the issue, its notes read now (raises ``Retryable``
        and client errors)."""
        notes = [n.asdict() for n in self.project.issues.get(iid, lazy=True).notes.list(iterator=True, per_page=100)]
        return markers(notes, self._self_id())

    def _post_notes(self, iid: int, key: str, changes: Sequence[Change],
                    add: Sequence[str]) -> list[dict[str, Any]] | None:
        """Post the step notes that are not on the issue yet (their markers from the
        notes this pass's fetch read, else from one read of the notes first); the
        answers GitLab gave to each ``POST``, ``None`` if one is not in hand."""
        steps = [c for c in changes if c.kind in ("comment", "watchers")]
        if not steps:
            return []
        posted: set[str] = set()
        if any(c.step is not None for c in steps):
            # the notes this pass read for the history, else read now
            seen = self._markers.pop(key, None)
            posted = seen if seen is not None else self._call("reading the notes before writing",
                                                              lambda: self._posted(iid), key)
        answers = [self._create(iid, key, note) for note in self._notes(changes, add, posted)]
        return [a for a in answers if a is not None] if all(a is not None for a in answers) else None

    def _create(self, iid: int, key: str, note: _Note) -> dict[str, Any] | None:
        """POST one note: GitLab's answer, ``None`` when an earlier attempt's answer
        was lost and the note was found on the issue.  After a lost answer, each new
        attempt (after the back-off wait) first reads the notes: a note that landed
        is not posted again."""
        data: dict[str, Any] = {"body": note.body, "internal": note.private}
        if note.private:
            data["confidential"] = True  # the name before GitLab 15.3
        manager = self.project.issues.get(iid, lazy=True).notes
        tries = itertools.count(1)

        def attempt() -> dict[str, Any] | None:
            if next(tries) > 1:
                try:
                    if set(note.tags) <= self._posted(iid):
                        return None
                except Retryable:
                    raise _Unknown("its answer was lost and the notes could not be read back") from None
            try:
                return dict(manager.create(data).asdict())
            except Retryable as exc:
                if not note.tags:  # no marker to look for: never risk a second copy
                    raise _Unknown(f"{exc}; it may or may not have been written") from None
                raise

        def post() -> dict[str, Any] | None:
            answer: dict[str, Any] | None = self.session.retrying()(attempt)
            return answer

        try:
            return self._call("writing a note", post, key)
        except _Unknown as exc:
            raise TrackerError(
                f"{self._where(key)}: writing a note: {exc}; the next pass checks it and goes on"
            ) from None

    def _put(self, iid: int, key: str, body: dict[str, Any], add: Sequence[str]) -> dict[str, Any]:
        result = self._call("writing the issue", lambda: self.project.issues.update(iid, body), key)
        missing = [lbl for lbl in add if lbl not in (result.get("labels") or ())]
        if missing:
            raise TrackerError(
                f"{self._where(key)}: GitLab did not add the labels {', '.join(missing)}: the token's user needs at "
                "least the Reporter role to create labels; run `sla-sync check --online POLICY`"
            )
        wanted = set(body.get("assignee_ids") or ())
        if wanted - {a.get("id") for a in result.get("assignees") or ()}:
            raise TrackerError(
                f"{self._where(key)}: GitLab did not assign the issue (GitLab assigns members of the project only); "
                "run `sla-sync check --online POLICY`"
            )
        return dict(result)

    # -- online check -------------------------------------------------------------------

    def _access(self) -> tuple[dict[str, Any] | None, int]:
        """The project (``None`` when not found) and the token user's access level."""
        try:
            project = self.gl.projects.get(self.spec.project).asdict()
        except gex.GitlabGetError as exc:
            if exc.response_code == 404:
                return None, 0
            raise
        perms = project.get("permissions") or {}
        level = max(int((perms.get(k) or {}).get("access_level") or 0) for k in ("project_access", "group_access"))
        return project, level

    def check(self, spec_labels: Sequence[str], names: Sequence[str]) -> list[str]:
        """Project, token role, labels, users and groups; see the module docstring."""
        project, level = self._call("reading the project", self._access)
        if project is None:
            return [f"project {self.spec.project!r} not found at {self.url}, or the token's user cannot see it: "
                    "fix tracker.project (path like group/project, or the numeric id) or add the user to the project"]
        todo: list[str] = []
        me = self._call("reading the token's user", self._me)
        admin = bool(me.get("is_admin"))
        if level < REPORTER and not admin:
            todo.append("give the token's user at least the Reporter role in the project: sla-sync edits issues "
                        "and writes internal notes")
            have = {lbl.asdict()["name"] for lbl in self._call(
                "listing labels", lambda: list(self.project.labels.list(iterator=True, per_page=100)))}
            missing = [lbl for lbl in spec_labels if lbl not in have]
            if missing:
                todo.append(f"create the project labels {' '.join(missing)} (GitLab creates missing labels on "
                            "first use only for a user with at least the Reporter role)")
        if self.options.health_status:
            todo += self._check_health()
        for name in names:
            todo += self._check_name(name)
        return todo

    def _check_health(self) -> list[str]:
        """Whether the project's issues show a health status (only a licence with
        the feature shows it); a project without issues cannot tell, and says nothing."""
        rows = self._call("listing one issue", lambda: [
            i.asdict() for i in self.project.issues.list(per_page=1, get_all=False)])
        if rows and "health_status" not in rows[0]:
            return [f"GitLab shows no health status on the issues of {self.spec.project!r}: it is a GitLab Premium "
                    "(or Ultimate) feature; upgrade, or remove writeback.health_status (the sla: labels work on "
                    "every tier)"]
        return []

    def _check_name(self, name: str) -> list[str]:
        if name in self.options.agents_groups:
            if self._group_members(name) is None:
                return [f"create the group {name!r} or fix tracker.agents.groups"]
            return []
        uid = self._find_user(name)
        if uid is None:
            return [f"create the user {name!r} (a username; GitLab assigns and mentions users, not groups), "
                    "or remove it from the policy"]
        if name in self.options.agents_users:
            return []

        def member() -> bool:
            try:
                self.project.members_all.get(uid)
            except gex.GitlabGetError as exc:
                if exc.response_code == 404:
                    return False
                raise
            return True

        if self._call(f"checking that {name} is a member", member):
            return []
        return [f"add the user {name!r} to the project {self.spec.project!r} (GitLab assigns members only)"]


def create(spec: TrackerSpec, secret: str, options: AdapterOptions, *,
           milestones: bool | None = None) -> GitLabTracker:
    """Entry point ``sla_sync.adapters: gitlab``.  ``milestones``: read the milestone
    history (``Policy.uses_milestones``); ``None`` takes ``options.milestones``."""
    if not spec.url.startswith(("http://", "https://")):
        raise UserError(f"tracker.url {spec.url!r} must start with http:// or https://")
    warn_plain_http("GitLab", spec.url)
    return GitLabTracker(settings_of(spec, GitLabSpec), secret, options, milestones=milestones)
