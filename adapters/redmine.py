"""Redmine, through python-redmine.

Reading: every open issue of the project, plus every closed issue updated since the
cursor (the sync has taken the overlap window off it), each once; one request per 100 issues.
The project's own issues only (``subproject_id=!*``), whatever Redmine's setting
"Display subprojects issues on main projects by default" says, unless
``tracker.include_subprojects`` (``subproject_id=*``); an issue outside that scope
is never read nor written by key either (``_own``).
Journals (``include=journals``) are fetched only for issues whose ``updated_on``
differs from the state store's copy.  Journals map to neutral events: status
changes, notes (public unless ``private_notes``, by an agent when the author is
one of ``tracker.agents`` or, without that setting, anyone but the issue's author;
sla-sync's own notes never count), changes of the labels field, and ``field``
events: ``priority`` (by name), ``due_date``, ``assignee`` (an id named by its
login or group name, asked of Redmine once and kept in the directory), ``type``
(``tracker_id``, by the tracker's name), ``milestone`` (``fixed_version_id``, by
the version's name) and every other custom field that the issue carries, named as
``Issue.fields`` names it (a multi-value field's values joined by commas, as they
stood after the journal).  Names come from what the issue itself shows, else from
a list read once per adapter (trackers; the project's versions) and, for a version
that list lacks, ``GET /versions/ID`` once; no request per issue.  Every event
says whether the API user made it (``by_self``, by user id).

``updated_on``, the cache version, has whole seconds: a change in the same second
as the read a cached copy was made from would leave it unchanged.  A copy read
within that second (by the answer's ``Date``) is kept under an unsure version, so
the next pass reads its journals again (``read_version``).  So a pass does not read
back what it wrote (that read would come in the second of the write): the next
pass's delta query lists the written issues and reads their journals once.

Writing: Redmine has no labels, so sla-sync's labels are the values of a
multi-value list custom field (``tracker.labels_field``, default ``SLA``).  All
of an issue's changes go in one ``PUT /issues/ID.json`` (due date, labels field,
assignee, note), so a step's note and its marker label land together or not at
all; watchers are added first, which is idempotent.  When Redmine refuses a field
(422, "Due date must be greater than start date"), the rest is written without it
and the refusal is reported as an error naming the field: its message names the
field, or else each part is tried on its own (the note and the labels being one).
The time left (``writeback.remaining_field``) is an integer or float custom field
in the same PUT; an integer field gets the value rounded down (``-0.5`` → ``-1``),
which with the default ``remaining_step`` of an hour never happens.

The module has the shape of every adapter: the client wrapper
(``RetryingEngine``: python-redmine 2.5.0 neither retries nor honours a timeout,
so it adds both: bounded attempts with exponential back-off, ``Retry-After``
honoured, GETs retried freely and a PUT retried only after a check that it did not
land), the pure ``Mapper`` (payload → neutral issue and observed values), and the
``RedmineTracker`` that makes the requests and the look-ups.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any, assert_never

import requests
import tenacity
from redminelib import Redmine
from redminelib import exceptions as rex
from redminelib.engines.sync import SyncEngine

from sla_sync.calendar import iso_utc
from sla_sync.errors import AuthError, GoneError, PartialWriteError, TrackerError, UserError
from sla_sync.model import Change, ChangeKind, Event, Issue, Observed
from sla_sync.schema import RedmineSpec, TrackerSpec
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


class RetryingEngine(SyncEngine):  # type: ignore[misc]
    """python-redmine's engine with a timeout, request counting and bounded retries."""

    timeout: float = 30.0
    attempts: int = 5
    max_wait: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    counter: RequestCounter
    last_date: str | None = None  # the ``Date`` header of the latest answer

    def __init__(self, **options: Any) -> None:
        self.timeout = options.pop("timeout", 30.0)
        self.attempts = options.pop("attempts", 5)
        self.max_wait = options.pop("max_wait", 60.0)
        sleep = options.pop("sleep", None)
        self.sleep = sleep if sleep is not None else time.sleep
        self.counter = options.pop("counter", None) or RequestCounter()
        super().__init__(**options)
        self.answers = guard_session(self.session, "Redmine")

    def retrying(self) -> tenacity.Retrying:
        return retrying(self.attempts, self.max_wait, self.sleep)

    def send_once(self, method: str, url: str, headers: Any = None, params: Any = None, data: Any = None) -> Any:
        """One HTTP request; ``Retryable`` for what may pass on a second try."""
        kwargs = self.construct_request_kwargs(method, headers, params, data)
        self.counter.add(method.upper())
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.exceptions.SSLError as exc:  # a ConnectionError, but no retry will change it
            raise certificate_error("Redmine", url, exc) from None
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise Retryable(f"{exc.__class__.__name__} talking to {url.split('?')[0]}") from None
        self.last_date = response.headers.get("Date")  # the server's clock, for ``read_version``
        if response.status_code in RETRY_STATUS or (response.status_code == 500 and method == "get"):
            raise Retryable(f"HTTP {response.status_code} from {url.split('?')[0]}", retry_after(response))
        if response.status_code == 422 and (messages := refusals(response)) is not None:
            raise Refused(messages)
        try:
            return self.process_response(response)
        except rex.JSONDecodeError:  # a garbled answer: worth another try (writes are checked)
            raise Retryable(f"a malformed answer from {url.split('?')[0]}") from None
        except (KeyError, TypeError, ValueError):  # an error body not shaped like Redmine's (a proxy's)
            raise rex.UnknownError(response.status_code) from None

    def request(self, method: str, url: str, headers: Any = None, params: Any = None, data: Any = None) -> Any:
        if method.lower() != "get":
            return self.send_once(method, url, headers, params, data)
        return self.retrying()(self.send_once, method, url, headers, params, data)


class Refused(rex.ValidationError):  # type: ignore[misc]
    """Redmine's 422 with its own list of what it refused (``messages``, its words)."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__(", ".join(messages))
        self.messages = messages


def refusals(response: requests.Response) -> list[str] | None:
    """The messages of a Redmine 422 body (``{"errors": [...]}``); ``None`` for any
    other body (a proxy's), which is then an error like any other."""
    try:
        body = response.json()
    except ValueError:
        return None
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list) or not errors:
        return None
    return [": ".join(map(str, e)) if isinstance(e, list) else str(e) for e in errors]


# The parts of one PUT that Redmine may refuse one by one.  A step's note and its
# marker labels are one part: they land together or not at all.
NOTE_PART = "notes"
REMAINING_PART = "remaining_field"
PART_WORDS = {"due_date": "the due date", "assigned_to_id": "the assignee", "due_field": "the due instant",
              REMAINING_PART: "the time left", NOTE_PART: "the note and labels"}


def split_parts(fields: Mapping[str, Any], labels_id: int | None,
                remaining_id: int | None = None) -> dict[str, dict[str, Any]]:
    """A PUT's fields as the parts ``PART_WORDS`` names (the labels field goes with the note)."""
    parts: dict[str, dict[str, Any]] = {name: {name: fields[name]} for name in ("due_date", "assigned_to_id")
                                        if name in fields}
    note = {k: fields[k] for k in ("notes", "private_notes") if k in fields}
    for cf in fields.get("custom_fields") or []:
        if labels_id is not None and cf.get("id") == labels_id:
            part = note
        else:
            mine = remaining_id is not None and cf.get("id") == remaining_id
            part = parts.setdefault(REMAINING_PART if mine else "due_field", {})
        part.setdefault("custom_fields", []).append(cf)
    if note:
        parts[NOTE_PART] = note
    return parts


def joined(parts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Parts back into one PUT's fields."""
    fields: dict[str, Any] = {}
    for part in parts:
        for name, value in part.items():
            if name == "custom_fields":
                fields.setdefault(name, []).extend(value)
            else:
                fields[name] = value
    return fields


def blame(messages: Sequence[str], labels: Mapping[str, str]) -> dict[str, list[str]] | None:
    """Which part each of Redmine's messages is about, by the field label it starts
    with ("Due date must be greater than start date" → ``due_date``); ``labels``
    maps a lower-case field label to its part.  ``None`` when a message names no
    part (another language, another field): then the parts are tried one by one."""
    found: dict[str, list[str]] = {}
    by_length = sorted(labels.items(), key=lambda kv: -len(kv[0]))
    for message in messages:
        text = message.lower()
        part = next((p for label, p in by_length if text.startswith(label + " ")), None)
        if part is None:
            return None
        found.setdefault(part, []).append(message)
    return found or None


SURE_AFTER = 2  # seconds between updated_on and the read's Date for a cached copy to be trusted


def read_version(updated_on: str, date: str | None) -> str:
    """The cache version of an issue whose journals were read in an answer sent at
    ``date`` (its ``Date`` header): ``updated_on``, or ``updated_on?`` when unsure.

    ``updated_on`` has whole seconds: a change made in the same second, after the
    read, leaves it as it was, and a cached copy under that version would hide the
    change for good.  So the copy is trusted only when the read was at least
    ``SURE_AFTER`` seconds later (one second for the precision, one for the time
    between the read and the ``Date``).  An unsure version never equals a list
    row's, so the next pass reads the journals again.  Without a usable ``Date``
    (thin sends none; a proxy in front usually adds it) the copy is trusted: sla-sync
    reads an issue it wrote a pass later, not just after the write (``rereads_written``)."""
    served: float | None = None
    if date:
        try:
            moment = parsedate_to_datetime(date)
            served = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
        except (TypeError, ValueError):
            served = None
    sure = served is None or served - _instant(updated_on) >= SURE_AFTER
    return updated_on if sure else updated_on + "?"


def field_number(value: str) -> str:
    """The plan's decimal hours as an integer custom field takes them: rounded
    down (``2.5`` → ``2``, ``-0.5`` → ``-1``), so the field never shows more time
    than is left."""
    return str(math.floor(Decimal(value)))


def same_number(a: Any, b: Any) -> bool:
    """Whether two custom field values hold the same number (``"6.0"`` and ``"6"``)."""
    try:
        return Decimal(str(a)) == Decimal(str(b))
    except (InvalidOperation, ValueError):
        return False


REMAINING_HOW = ("format Integer (Float for a remaining_step under an hour), 'Used as a filter' on, for all "
                 "projects or the project {project!r}, and its trackers")


def _check_remaining_format(name: str, raw: Mapping[str, Any], step_s: int) -> list[str]:
    """What the time-left field's own settings lack: a number format, whole hours
    for an integer field."""
    fmt = raw.get("field_format")
    if fmt not in ("int", "float"):
        return [f"custom field {name!r} (writeback.remaining_field) is of format {fmt or 'unknown'}: it must be an "
                "Integer or Float field; create one or point remaining_field at one"]
    if fmt == "int" and step_s % 3600:
        return [f"custom field {name!r} is an Integer field, but writeback.remaining_step is not a whole number of "
                "hours: make the step whole hours (the default, 1h) or use a Float field"]
    return []


def issue_number(key: str) -> int:
    """A Redmine issue key is its number; anything else is a ``UserError``."""
    if not key.strip().isdigit():
        raise UserError(f"issue {key!r}: not a key of this tracker (Redmine: the issue number)")
    return int(key)


def _instant(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


class Mapper:
    """Redmine payloads → neutral issues and managed values.  Pure: the look-ups it
    needs (status and priority names, the API user, the agents, the names of
    principals) are the tracker's, passed in."""

    def __init__(self, labels_field: str, due_field: str | None, remaining_field: str | None = None) -> None:
        self.labels_field, self.due_field, self.remaining_field = labels_field, due_field, remaining_field

    def labels_field_id(self, row: Mapping[str, Any]) -> int | None:
        for cf in row.get("custom_fields") or []:
            if cf.get("name") == self.labels_field:
                return int(cf["id"])
        return None

    def events(
        self, full: Mapping[str, Any], statuses: Mapping[str, str], priorities: Mapping[str, str], *,
        me: int, agents: frozenset[int] | None, principals: Mapping[str, str] | None = None,
        trackers: Mapping[str, str] | None = None, versions: Mapping[str, str] | None = None,
    ) -> tuple[Event, ...]:
        """An issue's journals as events; a note is an agent's when its author is one
        of ``agents`` (or, with none named, anyone but the issue's author), never the API user.
        ``principals``, ``trackers`` and ``versions`` name the ids that assignee, type
        and milestone changes refer to (``_detail_event``); custom fields are named
        by the issue's own list of them (``custom_events``)."""
        field_id = str(self.labels_field_id(full) or "")
        author = (full.get("author") or {}).get("id")
        names = {"assignee": principals or {}, "type": trackers or {}, "milestone": versions or {}}
        custom = custom_events(full, skip=field_id)
        events: list[Event] = []
        for n, j in enumerate(full.get("journals") or []):
            at = _instant(j["created_on"])
            user = (j.get("user") or {}).get("id")
            login = (j.get("user") or {}).get("name")
            mine = user is not None and user == me
            done: set[str] = set()  # multi-value custom fields already told for this journal
            for d in j.get("details") or []:
                prop, name = d.get("property"), d.get("name")
                old, new = d.get("old_value"), d.get("new_value")
                if prop == "attr" and name == "status_id":
                    events.append(Event(at, "status", from_=statuses.get(str(old), old), to=statuses.get(str(new), new),
                                        author=login, by_self=mine))
                elif prop == "attr" and name == "priority_id":
                    events.append(Event(at, "field", field="priority", from_=priorities.get(str(old), old),
                                        to=priorities.get(str(new), new), author=login, by_self=mine))
                elif prop == "cf" and field_id and str(name) == field_id:
                    events.append(Event(at, "label", added=(new,) if new else (), removed=(old,) if old else (),
                                        author=login, by_self=mine))
                elif prop == "cf":
                    if (told := custom.get((n, str(name)))) is not None and str(name) not in done:
                        done.add(str(name))
                        events.append(Event(at, "field", field=told[0], from_=told[1], to=told[2], author=login,
                                            by_self=mine))
                elif (change := _detail_event(at, d, login, mine, names)) is not None:
                    events.append(change)
            if (j.get("notes") or "").strip():
                by_agent = user != me and (user in agents if agents is not None else user != author)
                events.append(Event(at, "comment", public=not j.get("private_notes", False), by_agent=by_agent,
                                    author=login, by_self=mine))
        return tuple(events)

    def tracked(self, row: Mapping[str, Any], events: tuple[Event, ...], directory: Mapping[str, str]) -> Tracked:
        """A list or issue row, with its events, as the sync sees it."""
        fields = {cf["name"]: cf.get("value") for cf in row.get("custom_fields") or []}
        labels_value = fields.get(self.labels_field) or []
        labels = tuple(labels_value if isinstance(labels_value, list) else [labels_value])
        assigned = row.get("assigned_to") or {}
        assignee = name_of(directory, assigned.get("id")) or assigned.get("name")
        status = (row.get("status") or {}).get("name", "")
        version = (row.get("fixed_version") or {}).get("name")
        issue = Issue(
            key=str(row["id"]),
            title=row.get("subject", ""),
            created_at=_instant(row["created_on"]),
            updated_at=_instant(row["updated_on"]),
            status=status,
            priority=(row.get("priority") or {}).get("name"),
            type=(row.get("tracker") or {}).get("name"),
            project=(row.get("project") or {}).get("name"),
            labels=tuple(v for v in labels if v),
            assignee=assignee,
            milestone=version,
            due_date=row.get("due_date"),
            fields={k: v for k, v in fields.items() if k != self.labels_field},
            events=events,
        )
        due_instant = fields.get(self.due_field) if self.due_field else None
        remaining = fields.get(self.remaining_field) if self.remaining_field else None
        observed = Observed(row.get("due_date"), frozenset(issue.labels), assignee, due_instant or None,
                            remaining=str(remaining) if remaining not in (None, "") else None)
        closed = bool((row.get("status") or {}).get("is_closed", False))
        return Tracked(issue, observed, row["updated_on"], open=not closed)


FIELD_ATTRS = {"due_date": "due_date", "assigned_to_id": "assignee", "tracker_id": "type",
               "fixed_version_id": "milestone"}  # journal attr -> neutral field


def _detail_event(at: int, detail: Mapping[str, Any], author: str | None, mine: bool,
                  names: Mapping[str, Mapping[str, str]]) -> Event | None:
    """A journal detail that changed the due date, the assignee, the tracker (the
    type) or the target version (the milestone), as a ``field`` event (``by_self``
    when the API user made it), else ``None``.  An assignee, tracker or version is
    an id, named through ``names[field]`` (the id itself when unknown)."""
    field = FIELD_ATTRS.get(str(detail.get("name"))) if detail.get("property") == "attr" else None
    if field is None:
        return None
    old, new = detail.get("old_value") or None, detail.get("new_value") or None
    if field in names:
        known = names[field]
        old, new = (known.get(str(v), str(v)) if v else None for v in (old, new))
    return Event(at, "field", field=field, from_=old, to=new, author=author, by_self=mine)


def detail_ids(full: Mapping[str, Any], attr: str) -> set[str]:
    """The ids that the journals' changes of ``attr`` (``tracker_id``...) refer to."""
    return {str(v) for j in full.get("journals") or [] for d in j.get("details") or []
            if d.get("property") == "attr" and d.get("name") == attr
            for v in (d.get("old_value"), d.get("new_value")) if v and str(v).isdigit()}


def _joined(values: Sequence[str]) -> str | None:
    return ",".join(values) or None


def custom_events(full: Mapping[str, Any], skip: str = "") -> dict[tuple[int, str], tuple[str, str | None, str | None]]:
    """The custom field changes of an issue's journals, by (journal index, field id):
    (the field's name, its value before, after).  A field is named as ``tracked``
    names it in ``Issue.fields``: only the fields the issue carries (a field no
    longer enabled for it, or hidden from the API user, cannot be named and is left
    out), ``skip`` (the labels field) aside.  A single-value field's change is the
    detail's old and new values (empty is ``None``).  A multi-value field's journal
    has a detail per value added or removed: its values after each journal are
    worked out back from the current ones and told joined by commas, in Redmine's
    order, so that the last change's value is the current one."""
    fields = {str(cf.get("id")): cf for cf in full.get("custom_fields") or [] if str(cf.get("id")) != skip}
    journals = list(full.get("journals") or [])
    out: dict[tuple[int, str], tuple[str, str | None, str | None]] = {}
    values = {fid: [str(v) for v in cf.get("value") or [] if v] for fid, cf in fields.items()
              if isinstance(cf.get("value"), list)}
    for n in range(len(journals) - 1, -1, -1):  # back from now: the multi-value fields' values
        for fid in {str(d.get("name")) for d in journals[n].get("details") or [] if d.get("property") == "cf"}:
            if fid not in fields:
                continue
            details = [d for d in journals[n].get("details") or [] if d.get("property") == "cf"
                       and str(d.get("name")) == fid]
            name = str(fields[fid]["name"])
            if fid not in values:
                last = details[-1]
                out[(n, fid)] = (name, details[0].get("old_value") or None, last.get("new_value") or None)
                continue
            after = list(values[fid])
            before = list(after)
            for d in reversed(details):
                if d.get("new_value") and str(d["new_value"]) in before:
                    before.remove(str(d["new_value"]))
                if d.get("old_value") and str(d["old_value"]) not in before:
                    before.append(str(d["old_value"]))
            values[fid] = before
            if before != after:
                out[(n, fid)] = (name, _joined(before), _joined(after))
    return out


def name_of(directory: Mapping[str, str], principal: int | None) -> str | None:
    """The login or group name the tracker resolved for a principal id, if any."""
    if principal is None:
        return None
    for key, value in directory.items():
        if value == str(principal) and ":" in key:
            return key.split(":", 1)[1]
    return None


class RedmineTracker:
    """The ``Tracker`` for Redmine 4.2 and 5.x."""

    kind = "redmine"
    rereads_written = False  # the next pass reads them back: a read now would come in the second of the write

    def __init__(self, spec: RedmineSpec, secret: str, options: AdapterOptions) -> None:
        self.url = spec.url.rstrip("/")
        self.spec = spec
        self.options = options
        self.counter = RequestCounter()
        self.redmine = Redmine(
            self.url,
            key=secret,
            engine=RetryingEngine,
            timeout=spec.timeout,
            attempts=spec.max_attempts,
            max_wait=options.max_wait,
            sleep=options.sleep,
            counter=self.counter,
        )
        self.engine: RetryingEngine = self.redmine.engine
        self.directory: dict[str, str] = {}  # "user:alice"/"group:l2-team"/"self" -> id
        self._statuses: dict[str, str] | None = None
        self._priorities: dict[str, str] | None = None
        self._agents: frozenset[int] | None = None
        self._field_id: int | None = None
        self._rows: dict[str, dict[str, Any]] = {}  # list rows of the last fetch, for apply
        self._scope: set[int] = set()  # ids of the projects in the policy's scope, as learnt
        self._served: str | None = None  # the Date of the answer with the journals last read (``_read``)
        self._unknown: set[int] = set()  # principal ids Redmine would not name
        self._formats: dict[str, str | None] | None = None  # custom field name -> field_format (admins only)
        self._tracker_names: dict[str, str] | None = None  # tracker id -> name, listed once when needed
        self._version_names: dict[str, str] = {}  # version id -> name (or the id, when Redmine hides it)
        self._versions_listed = False
        self.mapper = Mapper(spec.labels_field, spec.due_field, options.remaining_field)

    # -- errors ------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], Any], key: str | None = None) -> Any:
        """Run a client call, turning its errors into ours (never with the key)."""
        where = f"Redmine {self.url}" + (f", issue {key}" if key else "")
        try:
            return fn()
        except rex.AuthError:
            raise AuthError(
                f"authentication failed for {self.url}: check the API key and that the REST API is enabled"
            ) from None
        except rex.ForbiddenError:
            raise TrackerError(
                f"{where}: {what}: forbidden (403); give the API key's user the needed role or admin rights"
            ) from None
        except rex.ResourceNotFoundError:
            raise (GoneError if key else TrackerError)(
                f"{where}: {what}: not found (404); check tracker.url and tracker.project") from None
        except rex.ValidationError as exc:
            raise TrackerError(f"{where}: {what}: Redmine refused it (422): {exc}") from None
        except rex.JSONDecodeError:
            raise TrackerError(f"{where}: {what}: the answer was not JSON; is tracker.url a Redmine?") from None
        except (rex.ServerError, rex.UnknownError) as exc:
            code = getattr(exc, "status_code", 500)
            raise TrackerError(f"{where}: {what}: HTTP {code}; try again later") from None
        except Retryable as exc:
            raise TrackerError(
                f"{where}: {what}: {exc} (gave up after {self.engine.attempts} attempts); try again later"
            ) from None
        except requests.RequestException as exc:
            raise TrackerError(f"{where}: {what}: {exc.__class__.__name__}") from None
        except ODD_ANSWER as exc:
            raise odd_answer(where, what, exc, self.engine.answers,
                             "is tracker.url the Redmine itself (https://redmine.example.com), with the REST API "
                             "enabled?", self.engine.requests["headers"].get("X-Redmine-API-Key")) from None

    # -- reading -----------------------------------------------------------------

    @property
    def _subprojects(self) -> str:
        """The ``subproject_id`` filter: the project's own issues (``!*``), or its
        subprojects' too (``*``) with ``include_subprojects``.  Without it Redmine
        follows its setting "Display subprojects issues on main projects by
        default", which is on unless an admin turned it off."""
        return "*" if self.spec.include_subprojects else "!*"

    def _list(self, **filters: Any) -> list[dict[str, Any]]:
        rs = self.redmine.issue.filter(project_id=self.spec.project, subproject_id=self._subprojects,
                                       sort="updated_on,id", **filters)
        return [i.raw() for i in rs]

    def _listed(self, row: dict[str, Any]) -> dict[str, Any]:
        """A row of a list of the policy's project: its project is in scope."""
        project = (row.get("project") or {}).get("id")
        if isinstance(project, int):
            self._scope.add(project)
        return row

    def _own(self, row: dict[str, Any], key: str) -> dict[str, Any]:
        """The row, if its issue is in the policy's scope: the project itself, or
        (with ``include_subprojects``) one of its subprojects; else a ``TrackerError``."""
        project = row.get("project") or {}
        pid = project.get("id")
        if pid in self._scope or (isinstance(pid, int) and self._in_scope(pid)):
            return row
        more = "" if self.spec.include_subprojects else " or its subprojects (set tracker.include_subprojects: true)"
        raise TrackerError(
            f"Redmine {self.url}, issue {key}: it belongs to the project {project.get('name')!r}, which is not "
            f"tracker.project {self.spec.project!r}{more}: sla-sync leaves it alone"
        )

    def _in_scope(self, pid: int) -> bool:
        """Whether a project is the policy's (or, with ``include_subprojects``, under
        it); a request per project up the tree, only for issues no list showed."""
        own = int(self._call("reading the project", lambda: self.redmine.project.get(self.spec.project).id))
        self._scope.add(own)
        current: int | None = pid
        seen: set[int] = set()
        while current is not None and current not in seen:
            if current == own:
                self._scope.add(pid)
                return True
            if not self.spec.include_subprojects:
                return False
            seen.add(current)
            current = self._call("reading the project", partial(self._parent_of, current))
        return False

    def _parent_of(self, project: int) -> int | None:
        found = (self.redmine.project.get(project).raw().get("parent") or {}).get("id")
        return int(found) if found is not None else None

    def fetch(self, since: int | None, cached: Mapping[str, Cached]) -> Fetched:
        rows = self._call("listing open issues", lambda: self._list(status_id="open"))
        if since is not None:
            start = iso_utc(since)
            # the open ones are all in the first list: only closed issues updated since the cursor
            rows += self._call("listing closed issues", lambda: self._list(status_id="closed", updated_on=f">={start}"))
        return self._assemble(rows, since, cached)

    def fetch_changed(self, since: int, cached: Mapping[str, Cached]) -> Fetched:
        start = iso_utc(since)
        rows = self._call("listing updated issues", lambda: self._list(status_id="*", updated_on=f">={start}"))
        return self._assemble(rows, since, cached)

    def in_scope(self, keys: Sequence[str]) -> set[str]:
        found: set[str] = set()
        numbers = [k for k in keys if k.isdigit()]
        for i in range(0, len(numbers), 100):
            ids = ",".join(numbers[i:i + 100])
            rows = self._call("checking issues are in scope", partial(self._list, status_id="open", issue_id=ids))
            found |= {str(r["id"]) for r in rows}
        return found

    def _assemble(self, rows: list[dict[str, Any]], since: int | None, cached: Mapping[str, Cached]) -> Fetched:
        self._rows = {}
        served: dict[str, str | None] = {}  # key -> the Date of the answer its journals came in

        def history(row: dict[str, Any]) -> tuple[Event, ...]:
            events = self._events(row)
            served[str(row["id"])] = self._served
            return events

        def track(row: dict[str, Any], events: tuple[Event, ...]) -> Tracked:
            tracked = self._tracked(self._listed(row), events)
            if tracked.issue.key in served:  # read just now: is the copy sure? (see ``read_version``)
                version = read_version(tracked.version, served.pop(tracked.issue.key))
                tracked = replace(tracked, version=version)
            self._rows[tracked.issue.key] = row
            return tracked

        return assemble(
            rows, since, cached,
            identify=lambda r: (str(r["id"]), str(r["updated_on"]), _instant(r["updated_on"])),
            history=history, track=track, where=f"Redmine {self.url}",
        )

    def fetch_all(self, since: int | None) -> Iterator[Tracked]:
        filters: dict[str, Any] = {"status_id": "*", "sort": "id", "subproject_id": self._subprojects}
        if since is not None:
            filters["created_on"] = f">={iso_utc(since)}"
        offset = 0
        while True:  # page by page, so an export streams
            page = self._call("listing issues", lambda o=offset: [  # type: ignore[misc]
                i.raw() for i in self.redmine.issue.filter(project_id=self.spec.project, offset=o, limit=100, **filters)
            ])
            for row in page:
                yield self._tracked(self._listed(row), self._events(row))
            if len(page) < 100:
                return
            offset += 100

    def refresh(self, keys: Iterable[str], before: Mapping[str, Tracked] | None = None) -> list[Tracked]:
        out = []
        for key in keys:
            try:
                row = self._read(key)
            except GoneError:  # deleted, or out of the API user's sight: no such issue, left out
                continue
            version = read_version(row["updated_on"], self._served)
            out.append(replace(self._tracked(row, self._map_journals(row)), version=version))
        return out

    def _read(self, key: str) -> dict[str, Any]:
        """One issue with its journals."""
        number = issue_number(key)
        row: dict[str, Any] = self._call(
            "reading the issue", lambda: self.redmine.issue.get(number, include=["journals"]).raw(), key
        )
        self._served = self.engine.last_date  # when the journals were read (``read_version``)
        return self._own(row, key)

    def _events(self, row: dict[str, Any]) -> tuple[Event, ...]:
        return self._map_journals(self._read(str(self._listed(row)["id"])))

    def _map_journals(self, full: dict[str, Any]) -> tuple[Event, ...]:
        statuses, priorities = self._names()
        return self.mapper.events(full, statuses, priorities, me=self._self_id(), agents=self._agent_ids(),
                                  principals=self._principals(full), trackers=self._trackers(full),
                                  versions=self._versions(full))

    def _tracked(self, row: dict[str, Any], events: tuple[Event, ...]) -> Tracked:
        return self.mapper.tracked(row, events, self.directory)

    # -- names and ids ---------------------------------------------------------

    def _names(self) -> tuple[dict[str, str], dict[str, str]]:
        if self._statuses is None or self._priorities is None:
            self._statuses = {
                str(s.id): s.name
                for s in self._call("listing statuses", lambda: list(self.redmine.issue_status.all()))
            }
            self._priorities = {
                str(p.id): p.name
                for p in self._call("listing priorities",
                                    lambda: list(self.redmine.enumeration.filter(resource="issue_priorities")))
            }
        return self._statuses, self._priorities

    def _self_id(self) -> int:
        if "self" not in self.directory:
            self.directory["self"] = str(self._call("reading the API key's user",
                                                    lambda: self.redmine.user.get("current").id))
        return int(self.directory["self"])

    def _user_id(self, login: str) -> int | None:
        key = f"user:{login}"
        if key not in self.directory:
            found = [u for u in self._call(f"looking up user {login}",
                                           lambda: list(self.redmine.user.filter(name=login, status="")))
                     if u.login == login]
            if not found:
                return None
            self.directory[key] = str(found[0].id)
        return int(self.directory[key])

    def _group_id(self, name: str) -> int | None:
        key = f"group:{name}"
        if key not in self.directory:
            groups = self._call("listing groups", lambda: list(self.redmine.group.all()))
            for g in groups:
                self.directory[f"group:{g.name}"] = str(g.id)
        return int(self.directory[key]) if key in self.directory else None

    def _principal_id(self, name: str) -> int:
        """A login or a group name → its id (exact match), else a ``TrackerError``."""
        uid = self._user_id(name)
        if uid is not None:
            return uid
        gid = self._group_id(name)
        if gid is not None:
            return gid
        raise TrackerError(f"Redmine {self.url}: no user with login {name!r} and no group named {name!r}; "
                           "fix the policy or create it")

    def _principals(self, full: Mapping[str, Any]) -> dict[str, str]:
        """The names of the principals an issue's journals assigned, by id: the names
        ``tracked`` shows for an assignee (the policy's login or group name; other
        users' logins are asked of Redmine once and kept in the directory)."""
        ids = {str(v) for j in full.get("journals") or [] for d in j.get("details") or []
               if d.get("property") == "attr" and d.get("name") == "assigned_to_id"
               for v in (d.get("old_value"), d.get("new_value")) if v and str(v).isdigit()}
        current = full.get("assigned_to") or {}
        names = {}
        for pid in sorted(ids):
            name = name_of(self.directory, int(pid)) or self._look_up(int(pid))
            if name is None and str(current.get("id")) == pid:
                name = current.get("name")  # what ``tracked`` shows for it
            names[pid] = name or pid
        return names

    def _trackers(self, full: Mapping[str, Any]) -> dict[str, str]:
        """The names of the trackers an issue's journals changed it between, by id:
        the issue's own tracker as it shows it, the others from Redmine's list of
        trackers, read once per adapter and only when a journal needs it."""
        ids = detail_ids(full, "tracker_id")
        if not ids:
            return {}
        current = full.get("tracker") or {}
        known = {str(current["id"]): str(current.get("name"))} if current.get("id") is not None else {}
        if ids - known.keys() and self._tracker_names is None:
            self._tracker_names = {str(t.id): t.name for t in self._call(
                "listing trackers", lambda: list(self.redmine.tracker.all()))}
        return {**(self._tracker_names or {}), **known}

    def _versions(self, full: Mapping[str, Any]) -> dict[str, str]:
        """The names of the versions an issue's journals changed its target version
        between, by id: the issue's own as it shows it, the others from the list of
        the project's versions (shared ones included), read once per adapter and only
        when a journal needs it, and, for one that list lacks (a subproject's), its
        own ``GET /versions/ID``, once; one Redmine will not show stays its id."""
        ids = detail_ids(full, "fixed_version_id")
        if not ids:
            return {}
        current = full.get("fixed_version") or {}
        if current.get("id") is not None and current.get("name"):
            self._version_names[str(current["id"])] = str(current["name"])
        if ids - self._version_names.keys() and not self._versions_listed:
            self._versions_listed = True
            listed = self._call("listing the project's versions", lambda: [
                (str(v.id), str(v.name)) for v in self.redmine.version.filter(project_id=self.spec.project)])
            self._version_names.update(dict(listed))
        for vid in sorted(ids - self._version_names.keys()):
            self._version_names[vid] = self._look_up_version(int(vid)) or vid
        return {vid: self._version_names[vid] for vid in ids}

    def _look_up_version(self, vid: int) -> str | None:
        try:
            raw: dict[str, Any] = self._call(f"reading version {vid}", lambda: self.redmine.version.get(vid).raw())
        except AuthError:
            raise
        except TrackerError:  # deleted, or in a project the API user cannot see
            return None
        name = raw.get("name")
        return str(name) if name else None

    def _look_up(self, pid: int) -> str | None:
        """A user's login or a group's name, by id, kept in the directory; ``None``
        when Redmine does not show it to the API user (asked once per tracker)."""
        if pid in self._unknown:
            return None
        for kind, manager in (("user", self.redmine.user), ("group", self.redmine.group)):
            try:
                raw: dict[str, Any] = self._call(f"reading {kind} {pid}", lambda m=manager: m.get(pid).raw())  # type: ignore[misc]
            except AuthError:
                raise
            except TrackerError:  # not a user (a group), or not visible to the API user
                continue
            name = raw.get("login") if kind == "user" else raw.get("name")
            if name:
                self.directory[f"{kind}:{name}"] = str(pid)
                return str(name)
        self._unknown.add(pid)
        return None

    def _agent_ids(self) -> frozenset[int] | None:
        """Ids of the agents the policy names; ``None`` when it names none."""
        users, groups = self.options.agents_users, self.options.agents_groups
        if not users and not groups:
            return None
        if self._agents is None:
            ids: set[int] = set()
            for login in users:
                uid = self._user_id(login)
                if uid is not None:
                    ids.add(uid)
            for name in groups:
                gid = self._group_id(name)
                if gid is None:
                    continue
                ids.update(self._members(name, gid))
            self._agents = frozenset(ids)
        return self._agents

    def _members(self, name: str, gid: int) -> set[int]:
        group: dict[str, Any] = self._call(
            f"reading group {name}", lambda: self.redmine.group.get(gid, include=["users"]).raw()
        )
        return {int(u["id"]) for u in group.get("users") or []}

    # -- writing -------------------------------------------------------------------

    def apply(self, key: str, changes: Sequence[Change]) -> None:
        row = self._rows.pop(key, None)  # as fetched in this pass: no request needed
        if row is None:
            number = issue_number(key)
            read = self._call("reading the issue before writing", lambda: self.redmine.issue.get(number).raw(), key)
            row = self._own(read, key)
        fields: dict[str, Any] = {}
        labels = set(self._tracked(row, ()).issue.labels)
        labels_changed = False
        for change in changes:
            match change.kind:
                case ChangeKind.DUE_DATE:
                    fields["due_date"] = change.value
                case ChangeKind.DUE_INSTANT:
                    if self.spec.due_field:
                        field = {"id": self._custom_field_id(row, self.spec.due_field, key), "value": change.value}
                        fields.setdefault("custom_fields", []).append(field)
                case ChangeKind.ADD_LABELS:
                    labels |= set(change.values)
                    labels_changed = True
                case ChangeKind.REMOVE_LABELS:
                    labels -= set(change.values)
                    labels_changed = True
                case ChangeKind.ASSIGN:
                    if change.value:
                        fields["assigned_to_id"] = self._principal_id(change.value)
                case ChangeKind.WATCHERS:
                    for name in change.values:
                        self._add_watcher(key, self._principal_id(name))
                case ChangeKind.COMMENT:
                    text = change.value or ""
                    fields["notes"] = f"{fields['notes']}\n\n{text}" if "notes" in fields else text
                    fields["private_notes"] = bool(fields.get("private_notes", True)) and change.private
                case ChangeKind.REMAINING:
                    if (entry := self._remaining_field(row, change.value, key)) is not None:
                        fields.setdefault("custom_fields", []).append(entry)
                case ChangeKind.HEALTH_STATUS:
                    pass  # never planned: `check` refuses writeback.health_status on Redmine
                case unknown:
                    assert_never(unknown)
        if labels_changed:
            field_id = self._custom_field_id(row, self.spec.labels_field, key)
            fields.setdefault("custom_fields", []).append({"id": field_id, "value": sorted(labels)})
        if fields:
            self._write(key, row, fields,
                        markers=[lbl for c in changes if c.kind is ChangeKind.ADD_LABELS for lbl in c.values
                                 if "escalated-" in lbl])

    def _remaining_field(self, row: dict[str, Any], value: str | None, key: str) -> dict[str, Any] | None:
        """The time left as the PUT's custom field entry, or ``None`` when the field
        already holds it (an integer field gets it rounded down: ``field_number``)."""
        name = self.options.remaining_field
        if not name or value is None:
            return None
        if "." in value and self._field_format(name) == "int":
            value = field_number(value)
        current = next((cf.get("value") for cf in row.get("custom_fields") or [] if cf.get("name") == name), None)
        if current not in (None, "") and same_number(current, value):
            return None
        return {"id": self._custom_field_id(row, name, key), "value": value}

    def _field_format(self, name: str) -> str | None:
        """A custom field's ``field_format`` (``int``, ``float``...), asked once;
        ``None`` when the API key's user may not list custom fields (admins only)."""
        if self._formats is None:
            def formats() -> dict[str, str | None]:
                try:
                    return {f.name: f.raw().get("field_format") for f in self.redmine.custom_field.all()}
                except rex.ForbiddenError:
                    return {}

            self._formats = self._call("listing custom fields", formats)
        return self._formats.get(name)

    def _custom_field_id(self, row: dict[str, Any], name: str, key: str) -> int:
        for cf in row.get("custom_fields") or []:
            if cf.get("name") == name:
                return int(cf["id"])
        raise TrackerError(
            f"Redmine {self.url}, issue {key}: the custom field {name!r} is not enabled for this issue "
            f"(tracker and project); run `sla-sync check --online POLICY` for what to add"
        )

    def _add_watcher(self, key: str, principal: int) -> None:
        url = f"{self.url}/issues/{int(key)}/watchers.json"
        self._call("adding a watcher",
                   lambda: self.engine.retrying()(self.engine.send_once, "post", url, data={"user_id": principal}),
                   key)

    def _put(self, key: str, fields: dict[str, Any], markers: list[str]) -> None:
        """One PUT; retried only when it certainly did not land.

        A PUT without a note is idempotent and retried as it is.  With a note, a
        failed attempt is followed by a read: if the step markers are on the issue,
        the PUT landed and is not sent again."""
        url = f"{self.url}/issues/{int(key)}.json"

        def attempt() -> None:
            try:
                self.engine.send_once("put", url, data={"issue": fields})
            except Retryable:
                if "notes" in fields and markers and self._landed(key, markers):
                    return
                raise

        def put() -> Refused | None:
            try:
                self.engine.retrying()(attempt)
            except Refused as exc:
                return exc  # raised past ``_call``: ``_write`` tries again without the refused fields
            return None

        refused = self._call("writing the issue", put, key)
        if refused is not None:
            raise refused

    def _write(self, key: str, row: dict[str, Any], fields: dict[str, Any], markers: list[str]) -> None:
        """An issue's changes in one PUT.  When Redmine refuses some fields (422), the
        others are written without them, and the refusal is then a ``TrackerError``
        that names each refused field with Redmine's words."""
        try:
            self._put(key, fields, markers)
        except Refused as exc:
            remaining = self.options.remaining_field
            remaining_id = next((int(cf["id"]) for cf in row.get("custom_fields") or []
                                 if remaining and cf.get("name") == remaining), None)
            parts = split_parts(fields, self.mapper.labels_field_id(row), remaining_id)
            refused = self._write_rest(key, parts, exc.messages, markers)
            words = "; ".join(f"{PART_WORDS[name]} ({name}): {'; '.join(m)}" for name, m in refused.items())
            landed = parts.keys() - refused.keys()
            rest = "the other changes were written" if landed else "nothing was written"
            message = (f"Redmine {self.url}, issue {key}: writing the issue: Redmine refused {words} (422); "
                       f"{rest}; fix the issue or the policy, the next pass tries again")
            if landed:
                raise PartialWriteError(message, steps_landed=NOTE_PART in landed) from None
            raise TrackerError(message) from None

    def _write_rest(self, key: str, parts: dict[str, dict[str, Any]], messages: list[str],
                    markers: list[str]) -> dict[str, list[str]]:
        """After a 422 to ``parts`` with ``messages``: write the parts Redmine did not
        refuse, and return the refused ones with its words.  The messages name the
        fields (``blame``); when one cannot be told, each part is tried on its own.
        A step's note and its marker labels are one part: together or not at all."""
        refused: dict[str, list[str]] = {}
        while parts:
            blamed = blame(messages, self._field_labels())
            if blamed is None or not blamed.keys() <= parts.keys():
                if len(parts) == 1:
                    return refused | dict.fromkeys(parts, messages)
                return refused | self._one_by_one(key, parts, markers)
            refused |= blamed
            parts = {name: part for name, part in parts.items() if name not in blamed}
            try:
                if parts:
                    self._put(key, joined(parts.values()), markers)
                break
            except Refused as exc:
                messages = exc.messages
        return refused

    def _one_by_one(self, key: str, parts: Mapping[str, dict[str, Any]], markers: list[str]) -> dict[str, list[str]]:
        """Each part in a PUT of its own; what Redmine refused, with its words."""
        refused: dict[str, list[str]] = {}
        for name, part in parts.items():
            try:
                self._put(key, part, markers)
            except Refused as exc:
                refused[name] = exc.messages
        return refused

    def _field_labels(self) -> dict[str, str]:
        """Redmine's (English) label of each field sla-sync writes, lower case → its part."""
        labels = {"due date": "due_date", "assignee": "assigned_to_id", "notes": NOTE_PART,
                  "private notes": NOTE_PART, self.spec.labels_field.lower(): NOTE_PART}
        if self.spec.due_field:
            labels[self.spec.due_field.lower()] = "due_field"
        if self.options.remaining_field:
            labels[self.options.remaining_field.lower()] = REMAINING_PART
        return labels

    def _landed(self, key: str, markers: list[str]) -> bool:
        try:
            row = self.engine.retrying()(self.engine.send_once, "get", f"{self.url}/issues/{int(key)}.json")["issue"]
        except Retryable:
            return False
        labels = set(self._tracked(row, ()).issue.labels)
        return all(m in labels for m in markers)

    # -- online check ------------------------------------------------------------------

    def _field_on_issues(self, name: str) -> bool:
        """Whether the project's issues carry the custom field ``name`` (a field "for
        all projects" is not listed among the project's own fields)."""
        rows = self._call("listing one issue", lambda: [i.raw() for i in self.redmine.issue.filter(
            project_id=self.spec.project, status_id="*", limit=1)][:1])
        return not rows or any(cf.get("name") == name for cf in rows[0].get("custom_fields") or [])

    def _check_remaining(self, name: str, fields: Mapping[str, Any], all_fields: Mapping[str, Any],
                         project: Mapping[str, Any]) -> list[str]:
        """The time-left field (``writeback.remaining_field``): there, a number, enabled."""
        field = all_fields.get(name)
        if name not in fields and field is None:
            return [f"create an issue custom field {name!r} (writeback.remaining_field): "
                    + REMAINING_HOW.format(project=self.spec.project)]
        todo: list[str] = []
        if name not in fields and not self._field_on_issues(name):
            todo.append(f"enable the custom field {name!r} for the project {self.spec.project!r}")
        if field is not None:
            raw = field.raw()
            todo += _check_remaining_format(name, raw, self.options.remaining_step_s)
            on = {t["name"] for t in raw.get("trackers") or []}
            off = [t["name"] for t in project.get("trackers") or [] if t["name"] not in on]
            if off:
                todo.append(f"custom field {name!r}: enable it for the trackers {', '.join(off)}")
        return todo

    def check(self, spec_labels: Sequence[str], names: Sequence[str]) -> list[str]:
        todo: list[str] = []
        project = self._call("reading the project",
                             lambda: self.redmine.project.get(self.spec.project,
                                                              include=["trackers", "issue_custom_fields"]).raw())
        fields = {f["name"]: f for f in project.get("issue_custom_fields") or []}
        def custom_fields() -> dict[str, Any] | None:
            try:
                return {f.name: f for f in self.redmine.custom_field.all()}
            except rex.ForbiddenError:
                return None

        listed = self._call("listing custom fields", custom_fields)
        all_fields = listed or {}
        if listed is None:
            todo.append("the API key's user cannot list custom fields (needs admin): possible values were not checked")
        field = all_fields.get(self.spec.labels_field)
        if self.spec.labels_field not in fields and field is None:
            todo.append(
                f"create an issue custom field {self.spec.labels_field!r}: format List, 'Multiple values' on, "
                f"possible values: {' '.join(spec_labels)}; enable it for the project {self.spec.project!r} "
                "and its trackers"
            )
        else:
            if self.spec.labels_field not in fields and not self._field_on_issues(self.spec.labels_field):
                todo.append(f"enable the custom field {self.spec.labels_field!r} for the project {self.spec.project!r}")
            if field is not None:
                raw = field.raw()
                if not raw.get("multiple"):
                    todo.append(f"custom field {self.spec.labels_field!r}: turn on 'Multiple values'")
                have = {v.get("value") for v in raw.get("possible_values") or []}
                missing = [v for v in spec_labels if v not in have]
                if missing:
                    todo.append(f"custom field {self.spec.labels_field!r}: add the possible values {' '.join(missing)}")
                on = {t["name"] for t in raw.get("trackers") or []}
                off = [t["name"] for t in project.get("trackers") or [] if t["name"] not in on]
                if off:
                    todo.append(f"custom field {self.spec.labels_field!r}: enable it for the trackers {', '.join(off)}")
        if self.options.remaining_field:
            todo += self._check_remaining(self.options.remaining_field, fields, all_fields, project)
        for name in names:
            try:
                self._principal_id(name)
            except TrackerError:
                todo.append(f"create the user (login) or group {name!r}, or remove it from the policy")
        return todo


def create(spec: TrackerSpec, secret: str, options: AdapterOptions) -> RedmineTracker:
    """Entry point ``sla_sync.adapters: redmine``."""
    if not spec.url.startswith(("http://", "https://")):
        raise UserError(f"tracker.url {spec.url!r} must start with http:// or https://")
    warn_plain_http("Redmine", spec.url)
    return RedmineTracker(settings_of(spec, RedmineSpec), secret, options)
