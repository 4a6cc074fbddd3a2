"""Jira Cloud and Jira Data Center, through the ``jira`` client library (3.10).

Connecting: Cloud authenticates with ``basic_auth=(e-mail, API token)`` (the e-mail
from the variable named by ``tracker.user_env``), Data Center with
``token_auth=personal access token`` when there is no ``user_env``.  ``JIRA()``
reads ``serverInfo`` when it is built; ``deploymentType: Cloud`` selects Cloud's
token-paged search (``enhanced_search_issues``, ``nextPageToken``), anything else
Data Center's ``search_issues`` (``startAt``/``total``); both use REST v2 (v3
would turn comment bodies into ADF documents).  The client would read the whole
field list before its first search, to translate field names into ids; sla-sync's
searches name their fields by id (``*all``, ``key``), so ``_Client`` turns that
translation off.  The client is built on first use, inside the same retries and
error translation as every other call, so a steady pass costs serverInfo, myself
and the search pages.

Reading: one JQL search, ``project = X AND (statusCategory != Done OR updated >=
"yyyy-MM-dd HH:mm") ORDER BY updated ASC, key ASC`` with ``expand=changelog,names``,
100 issues a page, de-duplicated by key (an issue updated while the pages are read
shows up twice).  JQL dates have minute precision and are read in the *API user's*
timezone, so the cursor (the sync has taken ``tracker.overlap`` off it) is written as a wall-clock time
in the ``timeZone`` that ``/myself`` reports, rounded down, and moved one hour
earlier inside a DST fold; if Jira reports no usable zone the window is widened by
14 hours instead.  The changelog embedded in search results is capped (40 on
Cloud): only where ``changelog.total`` exceeds what came is the whole history read
(Cloud: ``/issue/KEY/changelog``, paged; Data Center: the issue with
``expand=changelog``), and only for issues whose ``updated`` differs from the state
store's copy.  Comments come from ``fields.comment`` (read in full only when
truncated); ``jsdPublic: false`` (or a ``visibility`` restriction) makes one
internal.  The changelog already read (no request of its own) gives ``field``
events: ``priority`` and ``type`` (``issuetype``) by name, ``due_date``,
``assignee`` (named as the issue's assignee is, ``_field_event``), ``milestone``
(the first of the ``fixVersions``, as the issue's milestone is read; each version
added or removed is an item of its own, replayed back from the current list,
``fix_version_events``) and every custom field, named by its name as ``fields``
has it (``expand=names``; Data Center's items may carry the name only), with
Jira's ``fromString``/``toString`` texts (a number as the field's value shows it,
``3.0``).  A comment is by an agent when its author is in ``tracker.agents``
(users, or members of groups read from ``/group/member``) or, without that
setting, anyone but the reporter; sla-sync's own comments never count.

Users: the policy names a Data Center user by username; a Cloud user by e-mail
address (recommended), accountId, or a display name that exactly one user has.
``/user/search`` does prefix matching ("Bob" finds "Bobby"), so a name resolves
only by an exact match, and several exact display-name matches are an error
asking for the e-mail or accountId; the client's own ``assign_issue`` and
``add_watcher`` take the first fuzzy match and are not used.  Resolved names are
kept in ``directory`` ("user:NAME" → accountId or username), which also turns the
assignee back into the policy's name; an assignee the policy does not name is
shown by accountId (Cloud) or username (Data Center).

Writing, one issue at a time: watchers (POST, idempotent), then the step's
comment, then one ``PUT /issue/KEY`` with ``duedate``, ``assignee`` (accountId or
name), the due instant in the datetime custom field ``tracker.due_field``, the
time left in the number custom field ``writeback.remaining_field`` (by name or
id, a JSON number), and ``update.labels`` add/remove operations (idempotent, so
retried freely).  The comment and the step's marker label are two requests in
Jira, so the comment goes first and carries a hidden comment property
(``sla-sync.step``: ``{"step": N}``, ``{"step": N, "cycle": C}`` for a step on a
repeating metric) next to JSM's ``sd.public.comment`` (``{"internal": true}`` for private notes).
Before posting it, and again before every retry, the issue's comments are read
with ``expand=properties``: if one of the API user's own comments carries the
step's property, the comment is not posted again (anyone who may comment can set
any comment property, so another author's copy does not count).  So a retry after
a lost answer, or a pass after a crash between the
comment and the label, finishes the step without a second comment, and the label
(written last) means the whole step landed.

Retries: the client's own (``ResilientSession``, 3 by default) retry 429, 503 with
a ``Retry-After``, and connection errors, POSTs included, sleeping for real with
``time.sleep``:
twice the ``Retry-After`` (at least 2 s), or ``10 * 2**n`` s without one, capped
at 60 s and multiplied by a random 0.5-1.0.  They cannot be injected, so they are
switched off (``max_retries=0``).  Here instead: tenacity, ``tracker.max_attempts``
attempts, ``Retry-After`` as given or exponential back-off from 0.5 s (capped by
``options.max_wait``), waits through the injectable ``options.sleep``; 429, 500,
502-504, timeouts and connection errors are retried, for GETs and for writes that
are idempotent or checked as above.  ``tracker.timeout`` goes to every request.

Shape, as every adapter: the client (``jira.JIRA``, built on first use, wrapped by
``_run``/``_call`` in the shared retries and error translation), the pure
``Mapper`` (payload → neutral issue and observed values), and ``JiraTracker``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar, assert_never
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests
from jira import JIRA, JIRAError

from sla_sync.errors import AuthError, GoneError, TrackerError, UserError
from sla_sync.model import Change, ChangeKind, Event, Issue, Observed
from sla_sync.schema import JiraSpec, TrackerSpec
from sla_sync.tracker import AdapterOptions, Cached, Fetched, Tracked

from .base import (
    ODD_ANSWER,
    Answers,
    RequestCounter,
    Retryable,
    assemble,
    certificate_error,
    guard_session,
    odd_answer,
    retry_after,
    settings_of,
    warn_plain_http,
)
from .base import RETRY_STATUS as BASE_RETRY_STATUS
from .base import retrying as base_retrying

T = TypeVar("T")
RETRY_STATUS = BASE_RETRY_STATUS | {500}  # also 500: Jira Cloud answers passing overloads so
MISSING_STATUS = frozenset({400, 404})
PAGE = 100
# a search for the keys only: Jira returns up to 1000 of them a page (Cloud's change
# notice for id/key-only searches; Data Center's default cap), sent by POST so that a
# thousand keys never sit in a URL (proxies and Tomcat refuse request lines over 8 KB)
KEY_PAGE = 1000
FIELDS = "*all"
EXPAND = "changelog,names"
SD_PUBLIC = "sd.public.comment"
STEP_PROPERTY = "sla-sync.step"
WIDEST_OFFSET = 14 * 3600  # no zone is further than this from UTC


# -- values --------------------------------------------------------------------


def _instant(text: str) -> int:
    """Jira's ``2026-11-02T05:05:00.000-0500`` → epoch seconds."""
    return int(datetime.fromisoformat(text).timestamp())


def _version(text: str) -> str:
    """``updated`` as a UTC instant with milliseconds: the same whatever the API
    user's timezone, which Jira renders timestamps in."""
    return datetime.fromisoformat(text).astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def jira_datetime(value: str) -> str:
    """The plan's ``2026-11-05T14:30:00Z`` → what a datetime custom field takes."""
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def jira_number(value: str) -> int | float:
    """The plan's decimal hours (``"3"``, ``"-0.5"``) as a number field takes them."""
    number = float(value)
    return int(number) if number.is_integer() else number


def neutral_number(value: Any) -> str | None:
    """A number field's value (Jira sends ``3.0``) as text, for ``Observed.remaining``."""
    if isinstance(value, bool) or not isinstance(value, int | float | str) or value == "":
        return None
    return str(value)


def neutral_instant(value: Any) -> str | None:
    """A datetime custom field's value → the plan's ``YYYY-MM-DDTHH:MM:SSZ``."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return value


def jql_time(instant: int, tz: ZoneInfo | None) -> str:
    """An instant as a JQL date that Jira, reading it in ``tz`` at minute
    precision, takes for that instant or earlier (never later)."""
    if tz is None:
        return datetime.fromtimestamp(instant - WIDEST_OFFSET, UTC).strftime("%Y-%m-%d %H:%M")
    local = datetime.fromtimestamp(instant, tz)
    other = local.replace(fold=1 - local.fold)
    a, b = local.utcoffset(), other.utcoffset()
    if a is not None and b is not None and a != b:  # a wall time that happens twice
        local = datetime.fromtimestamp(instant - abs(int((a - b).total_seconds())), tz)
    return local.strftime("%Y-%m-%d %H:%M")


def jql_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _plain(value: Any) -> Any:
    """A custom field's JSON value → the plain value a policy condition compares."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        for key in ("value", "rating", "name", "displayName", "key"):
            if key in value:
                return value[key]
    return value


def _check_field(fields: Sequence[Mapping[str, Any]], wanted: str, setting: str, kind: str, type_name: str,
                 missing: str, wrong: Callable[[Mapping[str, Any], str], str]) -> list[str]:
    """What to do about the field ``setting`` names (by id or name) for ``check``:
    it must exist once and be of the schema type ``kind``."""
    found = [f for f in fields if wanted in (f.get("id"), f.get("name"))]
    if not found:
        return [missing]
    if len(found) > 1:
        return [f"several fields are called {wanted!r}: set {setting} to the id (customfield_NNNNN) of the "
                f"{type_name} one"]
    actual = (found[0].get("schema") or {}).get("type")
    return [] if actual == kind else [wrong(found[0], actual or "unknown")]


def _user_id(user: Any) -> str | None:
    """A user object's id: accountId on Cloud, name (username) on Data Center."""
    if not isinstance(user, dict):
        return None
    found = user.get("accountId") or user.get("name")
    return str(found) if found else None


def _item_event(at: int, item: dict[str, Any], author: str | None) -> Event | None:
    """One changelog item → a neutral event (status, priority, type, labels), else ``None``."""
    name = item.get("fieldId") or item.get("field")
    old, new = item.get("fromString"), item.get("toString")
    if name == "status":
        return Event(at, "status", from_=old, to=new, author=author)
    if name == "priority":
        return Event(at, "field", field="priority", from_=old, to=new, author=author)
    if name == "issuetype":
        return Event(at, "field", field="type", from_=old or None, to=new or None, author=author)
    if name == "labels":
        before, after = set((old or "").split()), set((new or "").split())
        return Event(at, "label", added=tuple(sorted(after - before)), removed=tuple(sorted(before - after)),
                     author=author)
    return None


FIELD_ITEMS = {"duedate": "due_date", "assignee": "assignee"}  # changelog field id -> neutral field


def _day(raw: Any, text: Any) -> str | None:
    """A due date in a changelog item (``from``/``to`` ``2026-11-05``, or the
    string ``2026-11-05 00:00:00.0``) as ``YYYY-MM-DD``."""
    for value in (raw, text):
        if isinstance(value, str) and len(value) >= 10 and value[4] == "-" and value[7] == "-":
            return value[:10]
    return None


def _field_event(at: int, item: Mapping[str, Any], author: str | None, directory: Mapping[str, str]) -> Event | None:
    """A changelog item that changed the due date or the assignee, as a ``field``
    event, else ``None``.  An assignee is the user id in ``from``/``to`` (accountId on
    Cloud, the username on Data Center), named as ``tracked`` names the assignee."""
    field = FIELD_ITEMS.get(str(item.get("fieldId") or item.get("field")))
    if field == "due_date":
        return Event(at, "field", field=field, from_=_day(item.get("from"), item.get("fromString")),
                     to=_day(item.get("to"), item.get("toString")), author=author)
    if field == "assignee":
        old, new = (name_of(directory, str(v)) if v else None for v in (item.get("from"), item.get("to")))
        return Event(at, "field", field=field, from_=old, to=new, author=author)
    return None


def _is_fix_version(item: Mapping[str, Any]) -> bool:
    """A changelog item of the fix versions (Cloud: ``fieldId`` ``fixVersions``;
    Data Center's items may carry only the name, ``Fix Version``)."""
    return item.get("fieldId") == "fixVersions" or (
        not item.get("fieldId") and item.get("field") in ("Fix Version", "Fix Version/s", "fixVersions"))


def fix_version_events(row: Mapping[str, Any], histories: Sequence[Mapping[str, Any]], me: str | None) -> list[Event]:
    """The milestone's changes: the issue's milestone is the first of its fix
    versions, and Jira records each version added (``to``, the version's id and
    name) or removed (``from``) as an item of its own.  The versions an issue had
    before each history are worked out back from the current ones; which of them
    came first is their order now where they are still on the issue, else the
    order of their ids (Jira lists fix versions in the project's version order,
    which follows their creation unless somebody reordered them).  A history that
    changed the first version is a ``field`` event ``milestone``, by name."""
    current = [v for v in (row.get("fields") or {}).get("fixVersions") or [] if v.get("name")]
    changes = [(h, [i for i in h.get("items") or [] if _is_fix_version(i)]) for h in histories]
    ordered = sorted([(h, items) for h, items in changes if items], key=lambda c: _instant(c[0]["created"]))
    if not ordered:
        return []
    ids: dict[str, int] = {}
    for item in (i for _, items in ordered for i in items):
        for raw, text in ((item.get("from"), item.get("fromString")), (item.get("to"), item.get("toString"))):
            if text and str(raw or "").isdigit():
                ids.setdefault(str(text), int(str(raw)))
    for v in current:
        if str(v.get("id") or "").isdigit():
            ids[str(v["name"])] = int(str(v["id"]))
    names = list(dict.fromkeys(str(v["name"]) for v in current))
    known = sorted({*ids, *names, *(str(t) for _, items in ordered for i in items
                                     for t in (i.get("fromString"), i.get("toString")) if t)},
                   key=lambda n: (ids.get(n, 1 << 62), n))
    slots = [n for n, name in enumerate(known) if name in names]
    for slot, name in zip(slots, names, strict=True):  # the versions still on it: in their order now
        known[slot] = name
    rank = {name: n for n, name in enumerate(known)}

    def first(versions: set[str]) -> str | None:
        return min(versions, key=lambda name: rank[name]) if versions else None

    versions = set(names)
    states: list[set[str]] = [versions]
    for _, items in reversed(ordered):  # back from now: the versions before each history
        added = {str(i.get("toString")) for i in items if i.get("to") is not None and i.get("toString")}
        removed = {str(i.get("fromString")) for i in items if i.get("from") is not None and i.get("fromString")}
        versions = (versions - added) | removed
        states.append(versions)
    states.reverse()  # states[n]: before ordered[n]; states[n + 1]: after it
    out: list[Event] = []
    for n, (history, _) in enumerate(ordered):
        old, new = first(states[n]), first(states[n + 1])
        if old != new:
            author = _user_id(history.get("author"))
            out.append(Event(_instant(history["created"]), "field", field="milestone", from_=old, to=new,
                             author=author, by_self=author is not None and author == me))
    return out


def _custom_text(value: Any, text: Any) -> str | None:
    """A custom field's changelog text, as the issue's ``fields`` holds the value: a
    number field's ``3`` as ``3.0`` when the field's value is a float."""
    if text is None or text == "":
        return None
    if isinstance(value, float):
        try:
            return str(float(str(text)))
        except ValueError:
            return str(text)
    return str(text)


def _custom_event(at: int, item: Mapping[str, Any], author: str | None, row_fields: Mapping[str, Any],
                  names: Mapping[str, str]) -> Event | None:
    """A changelog item of a custom field, as a ``field`` event named by the field's
    name (``names``: id → name, from ``expand=names``; Data Center's items may carry
    the name only), else ``None``."""
    if item.get("fieldtype") != "custom" and not str(item.get("fieldId") or "").startswith("customfield_"):
        return None
    fid = str(item.get("fieldId") or "")
    name = names.get(fid) if fid else None
    if name is None:
        name = str(item.get("field") or "") or None
        fid = fid or next((k for k, v in names.items() if v == name), "")
    if name is None:
        return None
    value = row_fields.get(fid) if fid else None
    return Event(at, "field", field=name, from_=_custom_text(value, item.get("fromString")),
                 to=_custom_text(value, item.get("toString")), author=author)


def _public(comment: dict[str, Any]) -> bool:
    if "jsdPublic" in comment:
        return bool(comment["jsdPublic"])
    return not comment.get("visibility")


class _NoSuchKey(Exception):
    """Jira refused a search naming keys because one has no issue behind it (400)."""


R = TypeVar("R")


def _naming_keys(keys: Sequence[str], per_search: int, search: Callable[[Sequence[str]], list[R]]) -> list[R]:
    """``search`` over ``keys``, ``per_search`` keys at a time.  Jira refuses a whole
    search that names a key with no issue behind it (deleted, or out of the API user's
    sight): such a search is halved until the refused key stands alone and is left
    out, so a deleted issue costs about 2·log2(per_search) searches, not one per key."""

    def halving(part: Sequence[str]) -> list[R]:
        try:
            return search(part)
        except _NoSuchKey:
            if len(part) == 1:
                return []
            middle = len(part) // 2
            return halving(part[:middle]) + halving(part[middle:])

    return [found for i in range(0, len(keys), per_search) for found in halving(keys[i:i + per_search])]


@dataclass
class _Writes:
    """What ``apply`` sends for one issue, gathered from its changes."""

    fields: dict[str, Any] = field(default_factory=dict)
    labels: list[dict[str, str]] = field(default_factory=list)
    watchers: list[str] = field(default_factory=list)
    comments: list[Change] = field(default_factory=list)


class Mapper:
    """Jira payloads → neutral issues and managed values.  Pure: the look-ups it
    needs (the API user, the agents, field names, the names the policy uses for
    users, the due-instant field) are the tracker's, passed in."""

    def events(
        self, row: Mapping[str, Any], histories: Sequence[Mapping[str, Any]], comments: Sequence[Mapping[str, Any]],
        *, me: str | None, agents: frozenset[str] | None, directory: Mapping[str, str] | None = None,
        field_names: Mapping[str, str] | None = None,
    ) -> tuple[Event, ...]:
        """The changelog and the comments as events, in time order; a comment is an
        agent's when its author is one of ``agents`` (or, with none named, anyone but
        the reporter), never the API user's.  ``directory`` names the assignees of
        assignee changes as ``tracked`` does (``_field_event``); ``field_names``
        (id → name) the custom fields, as ``tracked`` does (``_custom_event``)."""
        row_fields = row.get("fields") or {}
        reporter = _user_id(row_fields.get("reporter"))
        names = field_names or {}
        events: list[Event] = []
        for history in histories:
            at = _instant(history["created"])
            author = _user_id(history.get("author"))
            mine = author is not None and author == me
            events += [replace(e, by_self=True) if mine else e
                       for item in history.get("items") or []
                       if (e := _item_event(at, item, author) or _field_event(at, item, author, directory or {})
                           or _custom_event(at, item, author, row_fields, names)) is not None]
        events += fix_version_events(row, histories, me)
        for comment in comments:
            author = _user_id(comment.get("author"))
            by_agent = author is not None and author != me and (
                author in agents if agents is not None else author != reporter)
            events.append(Event(_instant(comment["created"]), "comment", public=_public(dict(comment)),
                                by_agent=by_agent, author=author, by_self=author is not None and author == me))
        events.sort(key=lambda e: e.at)
        return tuple(events)

    def tracked(
        self, row: Mapping[str, Any], events: tuple[Event, ...], *, field_names: Mapping[str, str],
        directory: Mapping[str, str], due_id: str | None, remaining_id: str | None = None,
    ) -> Tracked:
        """A search or issue row, with its events, as the sync sees it."""
        f = row.get("fields") or {}
        custom: dict[str, Any] = {}
        for fid, value in f.items():
            plain = _plain(value) if fid.startswith("customfield_") else None
            if plain is None:
                continue
            custom[fid] = plain
            name = field_names.get(fid)
            if name:
                custom.setdefault(name, plain)
                custom.setdefault(name.lower(), plain)
        assignee = name_of(directory, _user_id(f.get("assignee")))
        versions = f.get("fixVersions") or []
        status = f.get("status") or {}
        issue = Issue(
            key=row["key"],
            title=f.get("summary") or "",
            created_at=_instant(f["created"]),
            updated_at=_instant(f["updated"]),
            status=status.get("name", ""),
            priority=(f.get("priority") or {}).get("name"),
            type=(f.get("issuetype") or {}).get("name"),
            project=(f.get("project") or {}).get("key"),
            labels=tuple(f.get("labels") or ()),
            assignee=assignee,
            milestone=versions[0].get("name") if versions else None,
            due_date=f.get("duedate"),
            fields=custom,
            events=events,
        )
        observed = Observed(f.get("duedate"), frozenset(issue.labels), assignee,
                            neutral_instant(f.get(due_id)) if due_id else None,
                            remaining=neutral_number(f.get(remaining_id)) if remaining_id else None)
        done = (status.get("statusCategory") or {}).get("key") == "done"
        return Tracked(issue, observed, _version(f["updated"]), open=not done)


MAPPER = Mapper()


def name_of(directory: Mapping[str, str], user_id: str | None) -> str | None:
    """A user id → the name the policy uses for it, else the id itself."""
    if user_id is None:
        return None
    for key, value in directory.items():
        if key.startswith("user:") and value == user_id:
            return key[5:]
    return user_id


class JiraTracker:
    """The ``Tracker`` for Jira Cloud and Jira Data Center (8.x, 9.x, 10.x)."""

    kind = "jira"
    rereads_written = False  # the next pass's search reads them back: it embeds the changelog and the comments

    def __init__(self, spec: JiraSpec, secret: str, options: AdapterOptions, user: str | None) -> None:
        self.url = spec.url.rstrip("/")
        self.spec = spec
        self.options = options
        self.counter = RequestCounter()
        self.directory: dict[str, str] = {}  # "user:NAME" -> accountId/username, "self" -> the API user
        self._secret = secret
        self._email = user
        self._client: JIRA | None = None
        self._answers: Answers | None = None  # the client's last answer, for a message about an odd one
        self._me: dict[str, Any] | None = None
        self._agents: frozenset[str] | None = None
        self._names: dict[str, str] = {}  # field id -> field name, from expand=names
        self._listed: set[str] = set()  # field names looked up in the field list already (``_field_id``)

    # -- the client, retries and errors -------------------------------------------------

    def _new_client(self) -> JIRA:
        auth: dict[str, Any] = ({"basic_auth": (self._email, self._secret)} if self._email
                                else {"token_auth": self._secret})
        client = _Client(server=self.url, timeout=self.spec.timeout, max_retries=0, logging=False,
                         get_server_info=False, **auth)
        self._answers = guard_session(client._session, "Jira")  # before the first request: serverInfo
        client._session.hooks["response"].append(lambda r, *args, **kwargs: self.counter.add(r.request.method or "GET"))
        info = client.server_info()  # what JIRA() reads itself when it is left to
        client._version = tuple(info["versionNumbers"])
        client.deploymentType = info.get("deploymentType")
        return client

    def _connect(self) -> JIRA:
        if self._client is None:
            self._client = self._run("connecting (serverInfo)", self._new_client, None)
        return self._client

    @property
    def cloud(self) -> bool:
        return self._connect().deploymentType == "Cloud"

    def _once(self, fn: Callable[[], T]) -> T:
        """One attempt; ``Retryable`` for what may pass on a second try."""
        try:
            return fn()
        except JIRAError as exc:
            if exc.status_code in RETRY_STATUS:
                raise Retryable(f"HTTP {exc.status_code}", retry_after(exc.response)) from None
            raise
        except requests.exceptions.SSLError as exc:  # a ConnectionError, but no retry will change it
            raise certificate_error("Jira", self.url, exc) from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise Retryable(exc.__class__.__name__) from None

    def _run(self, what: str, fn: Callable[[], T], key: str | None, *, retry: bool = True) -> T:
        """Run ``fn`` with bounded retries, turning errors into ours (never with the secret)."""
        try:
            if not retry:
                return self._once(fn)
            retrying = base_retrying(self.spec.max_attempts, self.options.max_wait, self.options.sleep)
            result: T = retrying(self._once, fn)
            return result
        except (Retryable, JIRAError, json.JSONDecodeError, requests.RequestException) as exc:
            raise self._error(exc, what, key, retry) from None
        except ODD_ANSWER as exc:
            where = f"Jira {self.url}" + (f", issue {key}" if key else "")
            raise odd_answer(where, what, exc, self._answers, "is tracker.url the Jira base URL "
                             "(https://example.atlassian.net, or Data Center's with its context path)?",
                             self._secret) from None

    def _error(self, exc: Exception, what: str, key: str | None, retried: bool) -> TrackerError:
        where = f"Jira {self.url}" + (f", issue {key}" if key else "")
        code = exc.status_code if isinstance(exc, JIRAError) else None
        detail = f": {' '.join(str(exc.text).split())[:300]}" if isinstance(exc, JIRAError) and exc.text else ""
        if code == 401:
            return AuthError(f"authentication failed for {self.url}: check {self._credentials()}")
        if isinstance(exc, Retryable):
            tries = f"gave up after {self.spec.max_attempts} attempts" if retried else "not retried: it may have landed"
            message = f"{where}: {what}: {exc} ({tries}); try again later"
        elif isinstance(exc, json.JSONDecodeError):
            message = f"{where}: {what}: the answer was not JSON; check that tracker.url is the Jira base URL"
        elif code is None:
            message = f"{where}: {what}: {exc.__class__.__name__}; check tracker.url and the network"
        else:
            message = {
                403: f"{where}: {what}: forbidden (403){detail}; give the API user the project permissions "
                     "Browse projects, Edit issues, Add comments and Manage watchers",
                404: f"{where}: {what}: not found (404){detail}; check tracker.url (the Jira base URL) "
                     "and tracker.project",
                400: f"{where}: {what}: Jira refused it (400){detail}; run `sla-sync check --online POLICY` "
                     "for what to fix",
            }.get(code, f"{where}: {what}: HTTP {code}{detail}; try again later")
        kind = GoneError if key is not None and code == 404 else TrackerError
        return kind(message.replace(self._secret, "***") if len(self._secret) >= 4 else message)

    def _credentials(self) -> str:
        key = f"${self.spec.api_key_env}" if self.spec.api_key_env else f"the file {self.spec.api_key_file}"
        if self._email:
            return f"the account e-mail in ${self.spec.user_env} and the API token in {key}"
        return f"the personal access token in {key} (Jira Cloud also needs tracker.user_env)"

    def _call(self, what: str, fn: Callable[[JIRA], T], key: str | None = None, *, retry: bool = True) -> T:
        client = self._connect()
        return self._run(what, lambda: fn(client), key, retry=retry)

    def _maybe(self, what: str, fn: Callable[[JIRA], T], key: str | None = None) -> T | None:
        """Like ``_call``, but ``None`` when Jira answers 404 or 400 (no such thing)."""

        def attempt(client: JIRA) -> T | None:
            try:
                return fn(client)
            except JIRAError as exc:
                if exc.status_code in MISSING_STATUS:
                    return None
                raise

        return self._call(what, attempt, key)

    # -- reading -----------------------------------------------------------------------

    def _myself(self) -> dict[str, Any]:
        if self._me is None:
            me = self._call("reading the API user (/myself)", lambda c: _record(c.myself(), "the API user"))
            self._me = me
            self.directory["self"] = _user_id(me) or ""
        return self._me

    def _timezone(self) -> ZoneInfo | None:
        name = self._myself().get("timeZone")
        try:
            return ZoneInfo(name) if isinstance(name, str) and name else None
        except (ZoneInfoNotFoundError, ValueError):
            return None

    def jql(self, since: int | None) -> str:
        """The search: open issues, plus those updated since the cursor."""
        where = "statusCategory != Done"
        if since is not None:
            where = f'({where} OR updated >= "{jql_time(since, self._timezone())}")'
        return f"project = {jql_string(self.spec.project)} AND {where} ORDER BY updated ASC, key ASC"

    def _pages(self, jql: str, *, naming_keys: bool = False, keys_only: bool = False) -> Iterator[list[dict[str, Any]]]:
        """The search's issues, a page at a time (Cloud: by token; Data Center: by offset).
        ``naming_keys``: the JQL names keys, and Jira refusing it (400: a key with no
        issue behind it) raises ``_NoSuchKey``.  ``keys_only``: no fields nor history,
        ``KEY_PAGE`` issues a page, by POST."""
        shape: dict[str, Any] = {"fields": "key", "expand": None, "size": KEY_PAGE, "post": True} if keys_only else {}

        def read(fn: Callable[[JIRA], dict[str, Any]]) -> dict[str, Any]:
            if not naming_keys:
                return self._call("searching issues", fn)
            page = self._maybe("searching issues", fn)
            if page is None:
                raise _NoSuchKey
            return page

        if self.cloud:
            token: str | None = None
            seen: set[str] = set()
            while True:
                page = read(partial(_cloud_page, jql, token, **shape))
                self._names.update(page.get("names") or {})
                yield page.get("issues") or []
                token = page.get("nextPageToken")
                if not token or page.get("isLast") or token in seen:
                    return
                seen.add(token)
        start = 0
        while True:
            page = read(partial(_dc_page, jql, start, **shape))
            self._names.update(page.get("names") or {})
            issues = page.get("issues") or []
            yield issues
            start += len(issues)
            if not issues or start >= int(page.get("total") or 0):
                return

    def fetch(self, since: int | None, cached: Mapping[str, Cached]) -> Fetched:
        return self._search(self.jql(since), since, cached)

    def fetch_changed(self, since: int, cached: Mapping[str, Cached]) -> Fetched:
        jql = (f'project = {jql_string(self.spec.project)} AND updated >= "{jql_time(since, self._timezone())}" '
               "ORDER BY updated ASC, key ASC")
        return self._search(jql, since, cached)

    def in_scope(self, keys: Sequence[str]) -> set[str]:
        """The keys of open issues of the project among ``keys``: the JQL does the
        checking, and its searches ask for the keys only, ``KEY_PAGE`` a request."""
        project = jql_string(self.spec.project)

        def search(part: Sequence[str]) -> list[str]:
            listed = ", ".join(jql_string(k) for k in part)
            jql = f"project = {project} AND statusCategory != Done AND key in ({listed}) ORDER BY key ASC"
            return [str(row["key"]) for page in self._pages(jql, naming_keys=True, keys_only=True) for row in page]

        return set(_naming_keys(keys, KEY_PAGE, search))

    def _search(self, jql: str, since: int | None, cached: Mapping[str, Cached]) -> Fetched:
        rows = (row for page in self._pages(jql) for row in page)  # page by page
        return assemble(  # de-duplicates: an issue updated while the pages are read comes twice
            rows, since, cached,
            identify=lambda r: (str(r["key"]), _version(r["fields"]["updated"]), _instant(r["fields"]["updated"])),
            history=self._events, track=self._tracked, where=f"Jira {self.url}",
        )

    def fetch_all(self, since: int | None) -> Iterator[Tracked]:
        """Every issue created at or after ``since``, open or not, with its history,
        a search page at a time (the JQL date is rounded down: earlier ones are dropped)."""
        where = f' AND created >= "{jql_time(since, self._timezone())}"' if since is not None else ""
        jql = f"project = {jql_string(self.spec.project)}{where} ORDER BY created ASC, key ASC"
        for page in self._pages(jql):
            for row in page:
                if since is None or _instant(row["fields"]["created"]) >= since:
                    yield self._tracked(row, self._events(row))

    def refresh(self, keys: Iterable[str], before: Mapping[str, Tracked] | None = None) -> list[Tracked]:
        """The issues anew, a search of up to PAGE keys at a time (not a request per
        issue); history beyond what the search embeds is read per issue, as in ``fetch``."""
        project = jql_string(self.spec.project)

        def search(part: Sequence[str]) -> list[Tracked]:
            listed = ", ".join(jql_string(k) for k in part)
            jql = f"project = {project} AND key in ({listed}) ORDER BY key ASC"
            return [self._tracked(row, self._events(row)) for page in self._pages(jql, naming_keys=True)
                    for row in page]

        return _naming_keys(list(keys), PAGE, search)

    def _events(self, row: dict[str, Any]) -> tuple[Event, ...]:
        """The issue's history as neutral events (fetching what search left out)."""
        me = self.directory.get("self") or _user_id(self._myself())
        comments = self._comments(row)
        # the agents (a request per group, once) only for a comment that is not sla-sync's own
        agents = self._agent_ids() if any(_user_id(c.get("author")) != me for c in comments) else None
        return MAPPER.events(row, self._histories(row), comments, me=me, agents=agents,
                             directory=self.directory, field_names=self._names)

    def _histories(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        log = row.get("changelog") or {}
        histories: list[dict[str, Any]] = list(log.get("histories") or [])
        if int(log.get("total") or 0) <= len(histories):
            return histories
        key = row["key"]
        if not self.cloud:  # Data Center has no changelog endpoint: the issue carries all of it
            full = self._call("reading the changelog", partial(_issue_raw, key, "updated", "changelog"), key)
            return list((full.get("changelog") or {}).get("histories") or [])
        values: list[dict[str, Any]] = []
        while True:
            page = self._call("reading the changelog", partial(_get_json, f"issue/{key}/changelog",
                                                                {"startAt": len(values), "maxResults": PAGE}), key)
            got = page.get("values") or []
            values += got
            if not got or page.get("isLast", True) or len(values) >= int(page.get("total") or 0):
                return values

    def _comments(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        page = (row.get("fields") or {}).get("comment") or {}
        comments: list[dict[str, Any]] = list(page.get("comments") or [])
        if int(page.get("total") or 0) <= len(comments):
            return comments
        return self._all_comments(row["key"], properties=False)

    def _all_comments(self, key: str, *, properties: bool, client: JIRA | None = None) -> list[dict[str, Any]]:
        """Every comment of an issue, oldest first (with their properties if asked)."""
        out: list[dict[str, Any]] = []
        expand = "properties" if properties else None
        while True:
            read = partial(_comments_page, key, expand, len(out))
            page = read(client) if client is not None else self._call("reading comments", read, key)
            out += page
            if len(page) < PAGE:
                return out

    def _tracked(self, row: dict[str, Any], events: tuple[Event, ...]) -> Tracked:
        return MAPPER.tracked(row, events, field_names=self._names, directory=self.directory,
                              due_id=self._due_field_id(), remaining_id=self._remaining_field_id())

    # -- users, groups and fields --------------------------------------------------------

    def _name_of(self, user_id: str | None) -> str | None:
        return name_of(self.directory, user_id)

    def _find_user(self, name: str) -> str | None:
        """A policy's name for a user → its id, by exact match only (see the module docstring)."""
        if not self.cloud:  # usernames are exact, though Jira compares them ignoring case
            raw = self._maybe(f"looking up user {name!r}", lambda c: c.user(name).raw)
            return _user_id(raw) if raw and str(raw.get("name", "")).lower() == name.lower() else None
        users: list[dict[str, Any]] = self._call(
            f"looking up user {name!r}", lambda c: [u.raw for u in c.search_users(query=name, maxResults=PAGE)])
        for matches in (
            [u for u in users if u.get("accountId") == name],
            [u for u in users if str(u.get("emailAddress") or "").lower() == name.lower()],
            [u for u in users if u.get("displayName") == name],
        ):
            if len(matches) == 1:
                return _user_id(matches[0])
            if len(matches) > 1:
                raise TrackerError(f"Jira {self.url}: {len(matches)} users are called {name!r}: "
                                   "name the user by e-mail address or accountId in the policy")
        if "@" not in name and " " not in name:  # an accountId the search does not list
            raw = self._maybe(f"looking up user {name!r}", lambda c: c.user(name).raw)
            if raw and raw.get("accountId") == name:
                return name
        return None

    def _user(self, name: str) -> str | None:
        key = f"user:{name}"
        if key not in self.directory:
            found = self._find_user(name)
            if found is None:
                return None
            self.directory[key] = found
        return self.directory[key]

    def _require_user(self, name: str) -> str:
        found = self._user(name)
        if found is None:
            raise TrackerError(f"Jira {self.url}: no user {name!r} (Cloud: by e-mail, accountId or display name; "
                               "Data Center: by username); fix the policy or create the user")
        return found

    def _group_members(self, name: str) -> set[str] | None:
        """Ids of a group's members; ``None`` if there is no such group."""
        members: set[str] = set()
        start = 0
        while True:
            page = self._maybe(f"reading group {name!r}", partial(
                _get_json, "group/member", {"groupname": name, "startAt": start, "maxResults": 50}))
            if page is None:
                return None
            values = page.get("values") or []
            members |= {uid for u in values if (uid := _user_id(u))}
            start += len(values)
            if not values or page.get("isLast", True):
                return members

    def _agent_ids(self) -> frozenset[str] | None:
        """Ids of the agents the policy names; ``None`` when it names none."""
        users, groups = self.options.agents_users, self.options.agents_groups
        if not users and not groups:
            return None
        if self._agents is None:
            ids = {uid for name in users if (uid := self._user(name))}
            for name in groups:
                ids |= self._group_members(name) or set()
            self._agents = frozenset(ids)
        return self._agents

    def _due_field_id(self) -> str | None:
        """``tracker.due_field`` as a field id (it may name the field instead)."""
        return self._field_id(self.spec.due_field)

    def _remaining_field_id(self) -> str | None:
        """``writeback.remaining_field`` as a field id (it names the field, or gives its id)."""
        return self._field_id(self.options.remaining_field)

    def _field_id(self, wanted: str | None) -> str | None:
        """A custom field named by id or by name, as its id; ``None`` when no single
        field goes by that name.  The field list is read once per name at most."""
        if not wanted or wanted.startswith("customfield_"):
            return wanted
        found = [fid for fid, name in self._names.items() if name == wanted]
        if not found and wanted not in self._listed:
            self._listed.add(wanted)
            found = [str(f["id"]) for f in self._call("listing fields", lambda c: c.fields())
                     if f.get("name") == wanted]
            self._names.update({fid: wanted for fid in found})
        return found[0] if len(found) == 1 else None

    # -- writing ------------------------------------------------------------------------

    def _gather(self, key: str, changes: Sequence[Change]) -> _Writes:
        """Resolve every name first, so that nothing is written for a bad one."""
        w = _Writes()
        cloud = self.cloud
        for change in changes:
            match change.kind:
                case ChangeKind.DUE_DATE:
                    w.fields["duedate"] = change.value
                case ChangeKind.DUE_INSTANT:
                    fid = self._due_field_id()
                    if fid is None:
                        raise TrackerError(f"Jira {self.url}, issue {key}: no single field {self.spec.due_field!r} for "
                                           "the due instant; run `sla-sync check --online POLICY` for what to add")
                    w.fields[fid] = jira_datetime(change.value) if change.value else None
                case ChangeKind.ADD_LABELS | ChangeKind.REMOVE_LABELS:
                    verb = "add" if change.kind is ChangeKind.ADD_LABELS else "remove"
                    w.labels += [{verb: label} for label in change.values]
                case ChangeKind.ASSIGN:
                    if change.value:
                        uid = self._require_user(change.value)
                        w.fields["assignee"] = {"accountId": uid} if cloud else {"name": uid}
                case ChangeKind.WATCHERS:
                    w.watchers += [self._require_user(name) for name in change.values]
                case ChangeKind.COMMENT:
                    if change.value:
                        w.comments.append(change)
                case ChangeKind.REMAINING:
                    fid = self._remaining_field_id()
                    if fid is None:
                        raise TrackerError(f"Jira {self.url}, issue {key}: no single field "
                                           f"{self.options.remaining_field!r} for the time left; run "
                                           "`sla-sync check --online POLICY` for what to add")
                    w.fields[fid] = jira_number(change.value) if change.value else None
                case ChangeKind.HEALTH_STATUS:
                    pass  # never planned: `check` refuses writeback.health_status on Jira
                case unknown:
                    assert_never(unknown)
        return w

    def apply(self, key: str, changes: Sequence[Change]) -> None:
        w = self._gather(key, changes)
        for uid in w.watchers:
            self._call("adding a watcher", partial(_post, path=f"issue/{key}/watchers", payload=uid), key)
        for change in w.comments:
            self._comment_once(key, change)
        body: dict[str, Any] = {}
        if w.fields:
            body["fields"] = w.fields
        if w.labels:
            body["update"] = {"labels": w.labels}
        if body:
            self._call("writing the issue", partial(_put, path=f"issue/{key}", payload=body), key)

    def _comment_once(self, key: str, change: Change) -> None:
        """Post a step's comment unless a comment of that step is already there."""
        properties: list[dict[str, Any]] = [{"key": SD_PUBLIC, "value": {"internal": change.private}}]
        payload = {"body": change.value, "properties": properties}
        if change.step is None:  # nothing to recognise it by: one attempt only
            self._call("adding a comment", partial(_post, path=f"issue/{key}/comment", payload=payload), key,
                       retry=False)
            return
        value: dict[str, int] = {"step": change.step}
        if change.cycle is not None:  # a step on a repeating metric: once per cycle
            value["cycle"] = change.cycle
        properties.append({"key": STEP_PROPERTY, "value": value})
        me = self.directory.get("self") or _user_id(self._myself())

        def attempt(client: JIRA) -> None:
            if not self._has_step_comment(client, key, value, me):
                _post(client, f"issue/{key}/comment", payload)

        self._call(f"adding the comment of escalation step {change.step}", attempt, key)

    def _has_step_comment(self, client: JIRA, key: str, value: Mapping[str, int], me: str | None) -> bool:
        """Whether the API user's own comments hold the step's property (its step,
        and its cycle for a step on a repeating metric).  Anyone who may comment can
        set any comment property: only the API user's count."""
        for comment in self._all_comments(key, properties=True, client=client):
            if me is None or _user_id(comment.get("author")) != me:
                continue
            for prop in comment.get("properties") or []:
                held = prop.get("value") or {}
                if prop.get("key") == STEP_PROPERTY and held.get("step") == value["step"] \
                        and held.get("cycle") == value.get("cycle"):
                    return True
        return False

    # -- online check ----------------------------------------------------------------------

    def check(self, spec_labels: Sequence[str], names: Sequence[str]) -> list[str]:
        """Project, the due-instant field and the users and groups the policy names.
        (Jira labels need no set-up.)"""
        todo: list[str] = []
        project = self._maybe("reading the project", lambda c: c.project(self.spec.project).raw)
        if project is None:
            todo.append(f"the project {self.spec.project!r} does not exist or the API user cannot browse it: "
                        "fix tracker.project or grant the user 'Browse projects'")
        due, remaining = self.spec.due_field, self.options.remaining_field
        if due or remaining:
            fields: list[dict[str, Any]] = self._call("listing fields", lambda c: c.fields())  # once for both
            if due:
                todo += _check_field(
                    fields, due, "tracker.due_field", "datetime", "Date Time Picker",
                    f"create a custom field of type Date Time Picker for the exact due instant and add it to the "
                    f"edit screen of project {self.spec.project!r}, then set tracker.due_field to its id "
                    f"(it is {due!r} now, which does not exist)",
                    lambda f, kind: f"the field {due!r} ({f.get('name')}) is of type {kind}, not a date and "
                                    "time: point tracker.due_field at a Date Time Picker custom field")
            if remaining:
                todo += _check_field(
                    fields, remaining, "writeback.remaining_field", "number", "Number Field",
                    f"create a custom field of type Number Field named {remaining!r} for the time left "
                    f"(writeback.remaining_field) and add it to the edit screen of project {self.spec.project!r}",
                    lambda f, kind: f"the field {remaining!r} ({f.get('id')}) is of type {kind}, not a number: point "
                                    "writeback.remaining_field at a Number Field custom field")
        for name in names:
            todo += self._check_name(name)
        return todo

    def _check_name(self, name: str) -> list[str]:
        if name in self.options.agents_groups:
            if self._group_members(name) is None:
                return [f"create the group {name!r} (tracker.agents.groups) or remove it from the policy"]
            return []
        try:
            if self._user(name) is not None:
                return []
        except TrackerError as exc:  # several users go by that name
            return [str(exc).removeprefix(f"Jira {self.url}: ")]
        if self._group_members(name) is not None and name not in self.options.agents_users:
            return [f"{name!r} is a group, but Jira assigns issues and adds watchers to users only: name a user"]
        how = "by e-mail address, accountId or display name" if self.cloud else "by username"
        return [f"create the user {name!r} or fix its name in the policy (Jira {how}), or remove it from the policy"]


# -- requests (each takes the client last, for ``_call``) --------------------------------------


def _record(found: Any, what: str) -> dict[str, Any]:
    """An answer that must be a JSON object; else the ``TypeError`` that ``_run``
    turns into the message about an odd answer."""
    if not isinstance(found, dict):
        raise TypeError(f"{what} is {type(found).__name__}, not an object")
    return found


class _Client(JIRA):
    """The ``jira`` client without the field list it reads (``GET /field``, once per
    process) to turn field names in a search's ``fields`` into ids: sla-sync's
    searches give ids only, so that request bought nothing, on every pass."""

    @property
    def _fields_cache(self) -> dict[str, str]:
        return {}


def _cloud_page(jql: str, token: str | None, client: JIRA, *, fields: str = FIELDS, expand: str | None = EXPAND,
                size: int = PAGE, post: bool = False) -> dict[str, Any]:
    return _record(client.enhanced_search_issues(
        jql, nextPageToken=token, maxResults=size, fields=fields, expand=expand, json_result=True, use_post=post),
        "a search page")


def _dc_page(jql: str, start: int, client: JIRA, *, fields: str = FIELDS, expand: str | None = EXPAND,
             size: int = PAGE, post: bool = False) -> dict[str, Any]:
    return _record(client.search_issues(jql, startAt=start, maxResults=size, fields=fields, expand=expand,
                                        json_result=True, use_post=post), "a search page")


def _issue_raw(key: str, fields: str, expand: str, client: JIRA) -> dict[str, Any]:
    return client.issue(key, fields=fields, expand=expand).raw


def _comments_page(key: str, expand: str | None, start: int, client: JIRA) -> list[dict[str, Any]]:
    return [c.raw for c in client.comments(key, expand=expand, start_at=start, max_results=PAGE)]


def _get_json(path: str, params: dict[str, Any], client: JIRA) -> dict[str, Any]:
    """GET an endpoint the client has no method for (changelog, group members)."""
    return _record(client._get_json(path, params=params), f"the answer to {path}")


def _post(client: JIRA, path: str, payload: Any) -> None:
    """POST JSON; the client's methods for these (``add_watcher``, ``add_comment``) search
    users fuzzily or cannot set the step's comment property."""
    client._session.post(client._get_url(path), data=json.dumps(payload))


def _put(client: JIRA, path: str, payload: Any) -> None:
    """PUT JSON without ``Issue.update``'s reload of the whole issue."""
    client._session.put(client._get_url(path), data=json.dumps(payload))


def create(spec: TrackerSpec, secret: str, options: AdapterOptions) -> JiraTracker:
    """Entry point ``sla_sync.adapters: jira``."""
    if not spec.url.startswith(("http://", "https://")):
        raise UserError(f"tracker.url {spec.url!r} must start with http:// or https://")
    settings = settings_of(spec, JiraSpec)
    warn_plain_http("Jira", spec.url)
    user = None
    if settings.user_env:
        user = os.environ.get(settings.user_env, "").strip()
        if not user:
            raise UserError(f"the environment variable {settings.user_env} is empty or unset: set it to the e-mail of "
                            "the Jira Cloud account (or remove tracker.user_env for Data Center)")
    return JiraTracker(settings, secret, options, user)
