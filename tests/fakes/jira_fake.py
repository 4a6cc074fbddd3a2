"""A stateful in-process fake of the Jira REST API, Cloud or Data Center.

It serves, over real HTTP (``tests/fakes/http.py``), the part of Jira that the
``jira`` client library and sla-sync's adapter use, in the shapes of the payloads
in ``/work/shared/tracker-payloads/jira/`` (where the v3 documentation examples carry
placeholders, such as ``"updated": 1``, a bare list for ``comment`` and a changelog
item ``"field": "fields"``, it follows the real v2 captures and Jira's behaviour):

- ``serverInfo`` (``deploymentType`` ``Cloud`` or ``Server``), ``myself`` (with the
  API user's ``timeZone``), ``project/{key}``, ``field``;
- search: Cloud ``GET /rest/api/{2,3}/search/jql`` (``nextPageToken``/``isLast``;
  the old ``/search`` answers 410 Gone), Data Center ``GET /rest/api/2/search``
  (``startAt``/``maxResults``/``total``; ``/search/jql`` is 404), each also by POST
  with the parameters in a JSON body; a page holds at most ``page_cap`` issues, or
  ``key_page_cap`` when only ``key``/``id`` are asked for; a GET whose request line
  is over 8 KB is refused (414), as Tomcat and the proxies before Jira do.  A small JQL
  subset: ``project``, ``key``, ``status`` and ``statusCategory`` with ``=``,
  ``!=``, ``in``; ``updated``/``created`` compared with ``"yyyy-MM-dd HH:mm"``
  read in the API user's timezone; ``AND``, ``OR``, parentheses; ``ORDER BY``.
  ``expand=changelog`` embeds at most ``changelog_cap`` histories (``total`` says
  how many there are), ``expand=names`` adds the field names;
- ``issue/{key}`` GET and PUT (``fields``: duedate, assignee, labels, priority,
  issuetype, fixVersions, custom fields; ``update.labels`` add/remove/set; a number field takes a JSON
  number only and answers it as a float, ``3.0``, as Jira does), ``issue/{key}/changelog``
  (Cloud only, paged), comments GET (``expand=properties``) and POST (JSM's
  ``sd.public.comment`` property makes a comment internal: ``jsdPublic: false``),
  watchers GET and POST;
- ``user`` (exact), ``user/search`` (prefix matches, as Jira does),
  ``group/member`` (paged).

State: every write is visible on the next read, moves the issue's ``updated`` and,
except comments (Jira keeps those out of the changelog), appends a changelog
history by the acting user.  The fake's clock ``now`` never reads the real clock:
a test sets it, seeding moves it up to the latest seeded instant, and each write
through the API ticks it by a second.

Errors look like Jira's (``{"errorMessages": [...], "errors": {...}}``): 401 for
bad credentials, 404, 400 for bad input or JQL; faults (429 with Retry-After, 5xx,
resets, delays, malformed bodies) come from ``FakeServer.fail_next``.  Requests are
counted by (method, route template) in ``counts`` and logged in ``log``.

Seeding (``add_user``, ``create_issue``, ``transition``, ``edit``, ``comment``)
writes the state directly, with explicit timestamps and users, and is not counted.
"""

from __future__ import annotations

import base64
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from .http import FakeServer, Fault, HttpError, Reply, Request

STATUS_CATEGORIES = {
    "new": {"id": 2, "key": "new", "colorName": "blue-gray", "name": "To Do"},
    "indeterminate": {"id": 4, "key": "indeterminate", "colorName": "yellow", "name": "In Progress"},
    "done": {"id": 3, "key": "done", "colorName": "green", "name": "Done"},
}
DEFAULT_STATUSES = {
    "Open": "new",
    "In Progress": "indeterminate",
    "Waiting for customer": "indeterminate",
    "Pending": "indeterminate",
    "Workaround provided": "indeterminate",
    "Resolved": "done",
    "Closed": "done",
    "Done": "done",
    "Canceled": "done",
}
DEFAULT_PRIORITIES = ("Blocker", "Highest", "High", "Medium", "Low", "Lowest")
DEFAULT_TYPES = ("Incident", "Service Request", "Question", "Problem", "Task")
CUSTOM_TYPES = {
    "datetime": "com.atlassian.jira.plugin.system.customfieldtypes:datetime",
    "date": "com.atlassian.jira.plugin.system.customfieldtypes:datepicker",
    "option": "com.atlassian.jira.plugin.system.customfieldtypes:select",
    "string": "com.atlassian.jira.plugin.system.customfieldtypes:textfield",
    "number": "com.atlassian.jira.plugin.system.customfieldtypes:float",
    "sd-feedback": "com.atlassian.servicedesk:sd-request-feedback",
}
SYSTEM_FIELDS = (
    ("summary", "Summary", "string"), ("status", "Status", "status"), ("priority", "Priority", "priority"),
    ("issuetype", "Issue Type", "issuetype"), ("project", "Project", "project"), ("labels", "Labels", "array"),
    ("assignee", "Assignee", "user"), ("reporter", "Reporter", "user"), ("creator", "Creator", "user"),
    ("created", "Created", "datetime"), ("updated", "Updated", "datetime"), ("duedate", "Due date", "date"),
    ("fixVersions", "Fix Version/s", "array"), ("comment", "Comment", "comments-page"),
    ("resolution", "Resolution", "resolution"),
)
JIRA_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4}$")
JQL_DATE_FORMATS = ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d")


@dataclass
class User:
    login: str  # Data Center username; the fake's handle for the user
    display_name: str
    email: str | None
    account_id: str  # Cloud id
    key: str  # Data Center user key
    time_zone: str = "UTC"
    email_visible: bool = True
    groups: set[str] = field(default_factory=set)


@dataclass
class History:
    id: int
    author: str  # login
    created: datetime
    items: list[dict[str, Any]]


@dataclass
class Comment:
    id: int
    author: str
    body: str
    created: datetime
    public: bool = True
    properties: list[dict[str, Any]] = field(default_factory=list)
    visibility: dict[str, str] | None = None


@dataclass
class FakeIssue:
    id: int
    key: str
    project: str
    summary: str
    status: str
    priority: str | None
    issuetype: str
    reporter: str
    created: datetime
    updated: datetime
    assignee: str | None = None
    labels: list[str] = field(default_factory=list)
    duedate: str | None = None
    fix_versions: list[str] = field(default_factory=list)
    custom: dict[str, Any] = field(default_factory=dict)  # field id -> stored value
    comments: list[Comment] = field(default_factory=list)
    histories: list[History] = field(default_factory=list)
    watchers: set[str] = field(default_factory=set)

    @property
    def number(self) -> int:
        return int(self.key.rsplit("-", 1)[1])


@dataclass
class CustomField:
    id: str
    name: str
    type: str  # a key of CUSTOM_TYPES


def jira_error(status: int, *messages: str, **errors: str) -> HttpError:
    """An error answer shaped like Jira's."""
    return HttpError(status, "; ".join(messages), body={"errorMessages": list(messages), "errors": dict(errors)})


def _utc(moment: datetime) -> datetime:
    assert moment.tzinfo is not None, "the fake takes aware datetimes only"
    return moment.astimezone(UTC)


class JiraFake(FakeServer):
    """Jira Cloud (``cloud=True``) or Data Center, for one API user.

    ``timezone`` is the API user's profile timezone: JQL dates are read in it and
    timestamps are rendered with its offset, as Jira does.  ``token`` is the API
    token (Cloud, with the user's e-mail in basic auth) or the personal access
    token (Data Center, bearer)."""

    def __init__(
        self,
        *,
        cloud: bool = True,
        timezone: str = "America/New_York",
        api_user: str = "sla-bot",
        token: str = "sla-sync-secret",
        page_cap: int = 100,
        key_page_cap: int = 1000,
        changelog_cap: int = 40,
        comment_cap: int = 5000,
    ) -> None:
        super().__init__()
        self.cloud = cloud
        self.tz = ZoneInfo(timezone)
        self.token = token
        self.page_cap = page_cap
        self.key_page_cap = key_page_cap
        self.changelog_cap = changelog_cap
        self.comment_cap = comment_cap
        self.now = datetime(2026, 1, 1, tzinfo=UTC)
        self.users: dict[str, User] = {}
        self.groups: dict[str, set[str]] = {}
        self.projects: dict[str, dict[str, Any]] = {}
        self.statuses = dict(DEFAULT_STATUSES)
        self.priorities = list(DEFAULT_PRIORITIES)
        self.issuetypes = list(DEFAULT_TYPES)
        self.versions: list[str] = []  # the project versions by name; a version's id is 10000 + its index
        self.custom_fields: dict[str, CustomField] = {}
        self.issues: dict[str, FakeIssue] = {}
        self.log: list[Request] = []
        self._cursors: dict[str, tuple[str, list[FakeIssue]]] = {}  # search id -> (JQL, results): the pages' cursor
        self._cursor_ids = itertools.count(1)
        self._ids = itertools.count(10000)
        self._numbers: dict[str, itertools.count[int]] = {}
        self.api_user = api_user
        self.add_user(api_user, "SLA Sync Bot", email=f"{api_user}@example.com", time_zone=timezone)
        self._routes()

    # -- seeding ---------------------------------------------------------------------

    def add_user(self, login: str, display_name: str | None = None, *, email: str | None = None,
                 groups: tuple[str, ...] | list[str] = (), time_zone: str = "UTC",
                 email_visible: bool = True) -> str:
        """A user; returns the id an API client uses (accountId on Cloud, username on DC)."""
        n = len(self.users) + 1
        account = f"5b10a2844c20165700ede{n:03d}"
        user = User(login, display_name or login, email if email is not None else f"{login}@example.com",
                    account, f"JIRAUSER{10000 + n}", time_zone, email_visible)
        self.users[login] = user
        for name in groups:
            self.add_group(name, login)
        return self.user_id(login)

    def add_group(self, name: str, *logins: str) -> None:
        members = self.groups.setdefault(name, set())
        for login in logins:
            members.add(login)
            self.users[login].groups.add(name)

    def add_project(self, key: str, name: str | None = None) -> None:
        self.projects[key] = {"id": str(10000 + len(self.projects)), "key": key, "name": name or key}
        self._numbers[key] = itertools.count(1)

    def add_field(self, field_id: str, name: str, type_: str) -> None:
        """A custom field (``type_``: datetime, date, option, string, number, sd-feedback)."""
        assert type_ in CUSTOM_TYPES, type_
        self.custom_fields[field_id] = CustomField(field_id, name, type_)

    def user_id(self, login: str) -> str:
        user = self.users[login]
        return user.account_id if self.cloud else user.login

    def login_of(self, user_id: str | None) -> str | None:
        """The login of an API user id (accountId on Cloud, username on DC)."""
        if user_id is None:
            return None
        for user in self.users.values():
            if user_id == (user.account_id if self.cloud else user.login):
                return user.login
        return None

    def create_issue(self, project: str, summary: str, *, created: datetime, by: str, status: str = "Open",
                     priority: str | None = "Medium", issuetype: str = "Incident", labels: tuple[str, ...] = (),
                     assignee: str | None = None, duedate: str | None = None,
                     custom: dict[str, Any] | None = None, fix_versions: tuple[str, ...] = ()) -> str:
        """An issue reported by ``by`` at ``created``; returns its key."""
        if project not in self.projects:
            self.add_project(project)
        with self.lock:
            key = f"{project}-{next(self._numbers[project])}"
            at = _utc(created)
            self.now = max(self.now, at)
            self.issues[key] = FakeIssue(
                next(self._ids), key, project, summary, status, priority, issuetype, by, at, at,
                assignee=assignee, labels=sorted(labels), duedate=duedate, fix_versions=list(fix_versions),
                custom={k: self._custom_value(self.custom_fields[k], v) for k, v in (custom or {}).items()},
            )
        return key

    def transition(self, key: str, status: str, *, at: datetime, by: str) -> None:
        """A person moves the issue to ``status`` at ``at``."""
        assert status in self.statuses, status
        with self.lock:
            issue = self.issues[key]
            item = self._item("status", self._status_id(issue.status), issue.status, self._status_id(status), status)
            issue.status = status
            self._record(issue, by, _utc(at), [item])

    def edit(self, key: str, *, at: datetime | None = None, by: str, **values: Any) -> None:
        """A person edits fields (duedate, assignee (login), labels, priority, issuetype
        (a name), fixVersions (a list of names), customfield_N)."""
        with self.lock:
            issue = self.issues[key]
            items = [i for name, value in values.items() for i in self._changes(issue, name, value)]
            self._record(issue, by, _utc(at) if at else self._tick(), items)

    def comment(self, key: str, body: str, *, at: datetime, by: str, public: bool = True,
                properties: list[dict[str, Any]] | None = None) -> None:
        """A person comments at ``at`` (``public=False``: an internal JSM comment).
        ``properties`` are comment properties the person set with it: Jira lets
        anyone who may comment set any property, sla-sync's own key included."""
        with self.lock:
            issue = self.issues[key]
            props = [] if public else [{"key": "sd.public.comment", "value": {"internal": True}}]
            props += [dict(p) for p in properties or ()]
            issue.comments.append(Comment(next(self._ids), by, body, _utc(at), public, props))
            issue.updated = max(issue.updated, _utc(at))
            self.now = max(self.now, _utc(at))

    def reset_issues(self) -> None:
        """Forget every issue, fault, count and logged request (users, groups and fields stay)."""
        with self.lock:
            self.issues.clear()
            self._numbers = {key: itertools.count(1) for key in self.projects}
            self.faults.clear()
            self.counts.clear()
            self.log.clear()
            self.now = datetime(2026, 1, 1, tzinfo=UTC)

    # -- reading back (for assertions) -------------------------------------------------

    def issue(self, key: str) -> FakeIssue:
        return self.issues[key]

    def count(self, method: str, route_suffix: str) -> int:
        """Requests of ``method`` to routes whose template ends with ``route_suffix``."""
        with self.lock:
            return sum(n for (m, t), n in self.counts.items() if m == method and t.endswith(route_suffix))

    def fail_next(self, fault: Fault | None = None, times: int = 1, **kwargs: Any) -> None:
        """``fail_next(status=429, retry_after=7, method="GET")`` or with a ``Fault``."""
        super().fail_next(fault if fault is not None else Fault(**kwargs), times)

    # -- HTTP plumbing -------------------------------------------------------------------

    def authenticate(self, request: Request) -> None:
        self.log.append(request)
        if request.method == "GET" and len(request.path) + len(urlencode(request.query, doseq=True)) > 8192:
            raise jira_error(414, "Request-URI Too Long")
        header = request.headers.get("authorization", "")
        me = self.users[self.api_user]
        if self.cloud:
            expected = "Basic " + base64.b64encode(f"{me.email}:{self.token}".encode()).decode()
        else:
            expected = f"Bearer {self.token}"
        if header != expected:
            raise jira_error(401, "You are not authenticated. Authentication required to perform this operation.")

    def error_body(self, status: int, message: str) -> Any:
        return {"errorMessages": [message], "errors": {}}

    def _routes(self) -> None:
        api = "/rest/api/{version}"
        for method, template, handler in (
            ("GET", f"{api}/serverInfo", self._server_info),
            ("GET", f"{api}/myself", self._myself),
            ("GET", f"{api}/project/{{key}}", self._project),
            ("GET", f"{api}/field", self._fields),
            ("GET", f"{api}/search", self._search_dc),
            ("POST", f"{api}/search", partial(self._by_post, self._search_dc)),
            ("GET", f"{api}/search/jql", self._search_cloud),
            ("POST", f"{api}/search/jql", partial(self._by_post, self._search_cloud)),
            ("GET", f"{api}/issue/{{key}}", self._get_issue),
            ("PUT", f"{api}/issue/{{key}}", self._put_issue),
            ("GET", f"{api}/issue/{{key}}/changelog", self._changelog),
            ("GET", f"{api}/issue/{{key}}/comment", self._get_comments),
            ("POST", f"{api}/issue/{{key}}/comment", self._post_comment),
            ("GET", f"{api}/issue/{{key}}/watchers", self._get_watchers),
            ("POST", f"{api}/issue/{{key}}/watchers", self._post_watcher),
            ("GET", f"{api}/user", self._user),
            ("GET", f"{api}/user/search", self._user_search),
            ("GET", f"{api}/group/member", self._group_member),
        ):
            self.route(method, template, handler)

    def _base(self, request: Request) -> str:
        return f"{self.url}/rest/api/{request.params.get('version', '2')}"

    def _tick(self) -> datetime:
        self.now = self.now + timedelta(seconds=1)
        return self.now

    # -- rendering -------------------------------------------------------------------------

    def ts(self, moment: datetime) -> str:
        """A timestamp as Jira renders it: in the API user's zone, with milliseconds."""
        local = moment.astimezone(self.tz)
        return local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}" + local.strftime("%z")

    def _user_json(self, login: str | None) -> dict[str, Any] | None:
        if login is None:
            return None
        u = self.users[login]
        out: dict[str, Any] = {"displayName": u.display_name, "active": True, "timeZone": u.time_zone,
                               "avatarUrls": {"48x48": f"{self.url}/secure/useravatar?size=large&ownerId={u.key}"}}
        if self.cloud:
            out.update({"self": f"{self.url}/rest/api/2/user?accountId={u.account_id}", "accountId": u.account_id,
                        "accountType": "atlassian"})
            if u.email and u.email_visible:
                out["emailAddress"] = u.email
        else:
            out.update({"self": f"{self.url}/rest/api/2/user?username={u.login}", "name": u.login, "key": u.key,
                        "emailAddress": u.email})
        return out

    def _status_id(self, name: str) -> str:
        return str(list(self.statuses).index(name) + 1)

    def _status_json(self, name: str) -> dict[str, Any]:
        category = dict(STATUS_CATEGORIES[self.statuses[name]])
        category["self"] = f"{self.url}/rest/api/2/statuscategory/{category['id']}"
        return {"self": f"{self.url}/rest/api/2/status/{self._status_id(name)}", "description": "",
                "iconUrl": f"{self.url}/images/icons/statuses/generic.png", "name": name,
                "id": self._status_id(name), "statusCategory": category}

    def _priority_json(self, name: str | None) -> dict[str, Any] | None:
        if name is None:
            return None
        pid = str(self.priorities.index(name) + 1)
        return {"self": f"{self.url}/rest/api/2/priority/{pid}",
                "iconUrl": f"{self.url}/images/icons/priorities/{pid}.svg",
                "name": name, "id": pid}

    def _body(self, text: str, version: str) -> Any:
        if version != "3":
            return text
        return {"type": "doc", "version": 1,
                "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}]}

    def _comment_json(self, issue: FakeIssue, c: Comment, version: str, properties: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "self": f"{self.url}/rest/api/{version}/issue/{issue.id}/comment/{c.id}", "id": str(c.id),
            "author": self._user_json(c.author), "body": self._body(c.body, version),
            "updateAuthor": self._user_json(c.author), "created": self.ts(c.created), "updated": self.ts(c.created),
            "jsdPublic": c.public,
        }
        if c.visibility:
            out["visibility"] = c.visibility
        if properties:
            out["properties"] = [dict(p) for p in c.properties]
        return out

    def _history_json(self, h: History) -> dict[str, Any]:
        return {"id": str(h.id), "author": self._user_json(h.author), "created": self.ts(h.created),
                "items": [dict(i) for i in h.items]}

    def _custom_json(self, f: CustomField, value: Any) -> Any:
        if value is None:
            return None
        if f.type == "datetime":
            return self.ts(value)
        if f.type == "option":
            return {"self": f"{self.url}/rest/api/2/customFieldOption/1", "value": value, "id": "1"}
        if f.type == "sd-feedback":
            return {"rating": value}
        return value

    def _field_values(self, issue: FakeIssue, version: str) -> dict[str, Any]:
        comments = issue.comments[: self.comment_cap]
        values: dict[str, Any] = {
            "summary": issue.summary,
            "status": self._status_json(issue.status),
            "priority": self._priority_json(issue.priority),
            "issuetype": {"self": f"{self.url}/rest/api/2/issuetype/{self.issuetypes.index(issue.issuetype) + 10000}",
                          "id": str(self.issuetypes.index(issue.issuetype) + 10000), "name": issue.issuetype,
                          "subtask": False},
            "project": {"self": f"{self.url}/rest/api/2/project/{self.projects[issue.project]['id']}",
                        **self.projects[issue.project], "projectTypeKey": "service_desk"},
            "labels": list(issue.labels),
            "assignee": self._user_json(issue.assignee),
            "reporter": self._user_json(issue.reporter),
            "creator": self._user_json(issue.reporter),
            "created": self.ts(issue.created),
            "updated": self.ts(issue.updated),
            "duedate": issue.duedate,
            "fixVersions": [{"self": f"{self.url}/rest/api/2/version/{self._version_id(n)}", "id": self._version_id(n),
                             "name": n, "archived": False, "released": False} for n in issue.fix_versions],
            "resolution": {"name": "Done"} if self.statuses[issue.status] == "done" else None,
            "comment": {"comments": [self._comment_json(issue, c, version, False) for c in comments],
                        "self": f"{self.url}/rest/api/{version}/issue/{issue.id}/comment",
                        "maxResults": len(comments), "total": len(issue.comments), "startAt": 0},
        }
        for fid, f in self.custom_fields.items():
            values[fid] = self._custom_json(f, issue.custom.get(fid))
        return values

    def _names(self) -> dict[str, str]:
        names = {fid: name for fid, name, _ in SYSTEM_FIELDS}
        names.update({fid: f.name for fid, f in self.custom_fields.items()})
        return names

    def _issue_json(self, issue: FakeIssue, request: Request, *, changelog_cap: int | None,
                    default_all: bool = True) -> dict[str, Any]:
        """An issue as GET issue and search render it; without ``fields`` Cloud's
        search/jql returns no fields (only ids), the others all of them."""
        version = request.params.get("version", "2")
        wanted = request.args("fields")
        values = self._field_values(issue, version)
        if not wanted:
            chosen = values if default_all else {}
        elif "*all" in wanted or "*navigable" in wanted:
            chosen = values
        else:
            chosen = {k: v for k, v in values.items() if k in wanted}
        out: dict[str, Any] = {
            "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
            "id": str(issue.id), "self": f"{self.url}/rest/api/{version}/issue/{issue.id}", "key": issue.key,
            "fields": chosen,
        }
        if "changelog" in request.args("expand"):
            shown = issue.histories if changelog_cap is None else issue.histories[:changelog_cap]
            out["changelog"] = {"startAt": 0, "maxResults": len(shown), "total": len(issue.histories),
                                "histories": [self._history_json(h) for h in shown]}
        return out

    # -- endpoints ---------------------------------------------------------------------------

    def _server_info(self, request: Request) -> Reply:
        if self.cloud:
            info = {"baseUrl": self.url, "version": "1001.0.0-SNAPSHOT", "versionNumbers": [1001, 0, 0],
                    "deploymentType": "Cloud", "buildNumber": 100277, "scmInfo": "fake", "serverTitle": "Jira"}
        else:
            info = {"baseUrl": self.url, "version": "9.12.15", "versionNumbers": [9, 12, 15],
                    "deploymentType": "Server", "buildNumber": 9120015, "scmInfo": "fake", "serverTitle": "Jira"}
        info["buildDate"] = self.ts(datetime(2025, 10, 1, tzinfo=UTC))
        info["serverTime"] = self.ts(self.now)
        return Reply(200, info)

    def _myself(self, request: Request) -> Reply:
        me = self._user_json(self.api_user)
        assert me is not None
        me["timeZone"] = str(self.tz)
        me["locale"] = "en_US"
        return Reply(200, me)

    def _project(self, request: Request) -> Reply:
        key = request.params["key"]
        project = self.projects.get(key) or next((p for p in self.projects.values() if p["id"] == key), None)
        if project is None:
            raise jira_error(404, f"No project could be found with key '{key}'.")
        return Reply(200, {"self": f"{self.url}/rest/api/2/project/{project['id']}", **project,
                           "projectTypeKey": "service_desk", "simplified": False, "style": "classic"})

    def _fields(self, request: Request) -> Reply:
        out: list[dict[str, Any]] = [
            {"id": fid, "key": fid, "name": name, "custom": False, "orderable": True, "navigable": True,
             "searchable": True, "clauseNames": [fid], "schema": {"type": kind, "system": fid}}
            for fid, name, kind in SYSTEM_FIELDS
        ]
        for fid, f in self.custom_fields.items():
            number = fid.rsplit("_", 1)[1]
            kind = {"option": "option", "string": "string", "number": "number",
                    "sd-feedback": "sd-feedback"}.get(f.type, f.type)
            out.append({"id": fid, "key": fid, "name": f.name, "custom": True, "orderable": True, "navigable": True,
                        "searchable": True, "clauseNames": [f"cf[{number}]", f.name],
                        "schema": {"type": kind, "custom": CUSTOM_TYPES[f.type], "customId": int(number)}})
        return Reply(200, out)

    def _search(self, request: Request) -> list[FakeIssue]:
        jql = request.arg("jql") or ""
        return JqlQuery(jql, self).run(list(self.issues.values()))

    @staticmethod
    def _by_post(handler: Callable[[Request], Reply], request: Request) -> Reply:
        """A search sent by POST: the JSON body's parameters, as a GET's query."""
        body = request.json()
        if not isinstance(body, dict):
            raise jira_error(400, "the search body must be a JSON object")
        query = {name: [",".join(map(str, value)) if isinstance(value, list) else str(value)]
                 for name, value in body.items() if value is not None and value != []}
        return handler(replace(request, query=query))

    def _page_size(self, request: Request) -> int:
        fields = set(request.args("fields"))
        cap = self.key_page_cap if fields and fields <= {"key", "id"} else self.page_cap
        try:
            return max(0, min(int(request.arg("maxResults") or 50), cap))
        except ValueError:
            raise jira_error(400, "maxResults must be a number") from None

    def _search_cloud(self, request: Request) -> Reply:
        if not self.cloud:
            raise jira_error(404, "null for uri: " + request.path)
        token = request.arg("nextPageToken")
        try:  # a token is "<search>:<offset>": the search's results are kept, as a cursor on the server
            search, start = (base64.urlsafe_b64decode(token.encode() + b"==").decode().split(":") if token
                             else ("", "0"))
            start_at = int(start)
        except ValueError:
            raise jira_error(400, "The provided next page token is invalid or expired.") from None
        kept = self._cursors.get(search)
        if kept is None or kept[0] != (request.arg("jql") or ""):
            search = str(next(self._cursor_ids))
            kept = (request.arg("jql") or "", self._search(request))
            self._cursors[search] = kept
            while len(self._cursors) > 8:  # the oldest searches expire
                del self._cursors[next(iter(self._cursors))]
        found, start = kept[1], start_at
        size = self._page_size(request)
        page = found[start:start + size]
        out: dict[str, Any] = {"issues": [self._issue_json(i, request, changelog_cap=self.changelog_cap,
                                                           default_all=False)
                                          for i in page]}
        if start + size < len(found):
            out["nextPageToken"] = base64.urlsafe_b64encode(f"{search}:{start + size}".encode()).decode().rstrip("=")
        out["isLast"] = "nextPageToken" not in out
        if "names" in request.args("expand"):
            out["names"] = self._names()
        return Reply(200, out)

    def _search_dc(self, request: Request) -> Reply:
        if self.cloud:
            raise jira_error(410, "The requested API has been removed. "
                                  "Please migrate to the /rest/api/3/search/jql API. "
                                  "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046")
        found = self._search(request)
        start = int(request.arg("startAt") or 0)
        size = self._page_size(request)
        page = found[start:start + size]
        out: dict[str, Any] = {"expand": "schema,names", "startAt": start, "maxResults": size, "total": len(found),
                               "issues": [self._issue_json(i, request, changelog_cap=self.changelog_cap) for i in page]}
        if "names" in request.args("expand"):
            out["names"] = self._names()
        return Reply(200, out)

    def _issue_or_404(self, key: str) -> FakeIssue:
        issue = self.issues.get(key) or next((i for i in self.issues.values() if str(i.id) == key), None)
        if issue is None:
            raise jira_error(404, "Issue does not exist or you do not have permission to see it.")
        return issue

    def _get_issue(self, request: Request) -> Reply:
        issue = self._issue_or_404(request.params["key"])
        out = self._issue_json(issue, request, changelog_cap=100 if self.cloud else None)
        if "names" in request.args("expand"):
            out["names"] = self._names()
        return Reply(200, out)

    def _changelog(self, request: Request) -> Reply:
        if not self.cloud:
            raise jira_error(404, "null for uri: " + request.path)
        issue = self._issue_or_404(request.params["key"])
        start = int(request.arg("startAt") or 0)
        size = max(1, min(int(request.arg("maxResults") or 100), 100))
        page = issue.histories[start:start + size]
        base = f"{self._base(request)}/issue/{issue.key}/changelog"
        out: dict[str, Any] = {"self": f"{base}?startAt={start}&maxResults={size}", "maxResults": size,
                               "startAt": start, "total": len(issue.histories),
                               "isLast": start + size >= len(issue.histories),
                               "values": [self._history_json(h) for h in page]}
        if not out["isLast"]:
            out["nextPage"] = f"{base}?&startAt={start + size}&maxResults={size}"
        return Reply(200, out)

    def _get_comments(self, request: Request) -> Reply:
        issue = self._issue_or_404(request.params["key"])
        start = int(request.arg("startAt") or 0)
        size = max(1, min(int(request.arg("maxResults") or 5000), 5000))
        ordered = list(issue.comments)
        if request.arg("orderBy") == "-created":
            ordered.reverse()
        page = ordered[start:start + size]
        version = request.params.get("version", "2")
        properties = "properties" in request.args("expand")
        return Reply(200, {"startAt": start, "maxResults": size, "total": len(ordered),
                           "comments": [self._comment_json(issue, c, version, properties) for c in page]})

    def _post_comment(self, request: Request) -> Reply:
        issue = self._issue_or_404(request.params["key"])
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("body"), str) or not body["body"].strip():
            raise jira_error(400, comment="Comment body can not be empty!")
        properties = body.get("properties") or []
        if not isinstance(properties, list) or not all(isinstance(p, dict) and "key" in p for p in properties):
            raise jira_error(400, properties="Properties must be a list of {key, value}.")
        internal = any(p["key"] == "sd.public.comment" and (p.get("value") or {}).get("internal") for p in properties)
        at = self._tick()
        comment = Comment(next(self._ids), self.api_user, body["body"], at, not internal,
                          [dict(p) for p in properties], body.get("visibility"))
        issue.comments.append(comment)
        issue.updated = max(issue.updated, at)
        return Reply(201, self._comment_json(issue, comment, request.params.get("version", "2"), False))

    def _get_watchers(self, request: Request) -> Reply:
        issue = self._issue_or_404(request.params["key"])
        return Reply(200, {"self": f"{self._base(request)}/issue/{issue.key}/watchers",
                           "isWatching": self.api_user in issue.watchers, "watchCount": len(issue.watchers),
                           "watchers": [self._user_json(w) for w in sorted(issue.watchers)]})

    def _post_watcher(self, request: Request) -> Reply:
        issue = self._issue_or_404(request.params["key"])
        ref = request.json()
        login = self.login_of(ref) if isinstance(ref, str) else None
        if login is None:
            raise jira_error(404, f"The user \"{ref}\" does not exist.")
        issue.watchers.add(login)
        return Reply(204)

    def _user(self, request: Request) -> Reply:
        wanted = request.arg("accountId") if self.cloud else (request.arg("username") or request.arg("key"))
        for u in self.users.values():  # Data Center usernames ignore case
            if wanted and (wanted == u.account_id if self.cloud else wanted.lower() in (u.login, u.key.lower())):
                return Reply(200, self._user_json(u.login))
        if self.cloud and request.arg("username"):
            raise jira_error(400, "The query parameter 'username' is not supported in GDPR strict mode.")
        raise jira_error(404, f"The user with account ID '{wanted}' does not exist." if self.cloud
                         else f"The user named '{wanted}' does not exist")

    def _user_search(self, request: Request) -> Reply:
        query = (request.arg("query") if self.cloud else (request.arg("username") or request.arg("query"))) or ""
        if not query:
            raise jira_error(400, "The query parameter 'query' is required." if self.cloud
                             else "The username query parameter was not provided")
        q = query.lower()
        found = []
        for u in self.users.values():
            words = u.display_name.lower().split()
            candidates = [u.display_name.lower(), *words]
            if u.email and (u.email_visible or not self.cloud):
                candidates.append(u.email.lower())
            if not self.cloud:
                candidates.append(u.login.lower())
            if any(c.startswith(q) for c in candidates):
                found.append(self._user_json(u.login))
        start = int(request.arg("startAt") or 0)
        size = int(request.arg("maxResults") or 50)
        return Reply(200, found[start:start + size])

    def _group_member(self, request: Request) -> Reply:
        name = request.arg("groupname") or ""
        if name not in self.groups:
            raise jira_error(404, f"Group '{name}' does not exist." if not self.cloud else "Group not found")
        members = sorted(self.groups[name])
        start = int(request.arg("startAt") or 0)
        size = max(1, min(int(request.arg("maxResults") or 50), 50))
        page = members[start:start + size]
        out: dict[str, Any] = {"self": f"{self._base(request)}/group/member?groupname={name}&startAt={start}"
                                       f"&maxResults={size}",
                               "maxResults": size, "startAt": start, "total": len(members),
                               "isLast": start + size >= len(members), "values": [self._user_json(m) for m in page]}
        if not out["isLast"]:
            out["nextPage"] = (f"{self._base(request)}/group/member?groupname={name}&startAt={start + size}"
                               f"&maxResults={size}")
        return Reply(200, out)

    # -- editing ---------------------------------------------------------------------------------

    def _put_issue(self, request: Request) -> Reply:
        issue = self._issue_or_404(request.params["key"])
        body = request.json()
        if not isinstance(body, dict):
            raise jira_error(400, "Can not deserialize the request body.")
        fields, update = body.get("fields") or {}, body.get("update") or {}
        errors: dict[str, str] = {}
        planned: list[tuple[str, Any]] = []
        for name, value in fields.items():
            try:
                planned.append((name, self._parse_value(name, value)))
            except ValueError as exc:
                errors[name] = str(exc)
        for name, ops in update.items():
            if name != "labels":
                errors[name] = f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."
                continue
            try:
                planned.append(("labels", self._label_ops(issue, [v for n, v in planned if n == "labels"], ops)))
            except ValueError as exc:
                errors["labels"] = str(exc)
        if errors:
            raise jira_error(400, **errors)
        at = self._tick()
        items = [i for name, value in planned for i in self._changes(issue, name, value)]
        self._record(issue, self.api_user, at, items)
        return Reply(204)

    def _parse_value(self, name: str, value: Any) -> Any:
        """A field value from a request body, in the fake's stored form."""
        if name == "duedate":
            if value is not None:
                try:
                    date.fromisoformat(value)
                except (TypeError, ValueError):
                    raise ValueError("Error parsing date string: " + str(value)) from None
            return value
        if name == "assignee":
            if value is None:
                return None
            wanted = value.get("accountId") if self.cloud else value.get("name")
            if self.cloud and "name" in value and "accountId" not in value:
                raise ValueError("'name' is not supported in GDPR strict mode: use 'accountId'.")
            login = self.login_of(wanted) if isinstance(wanted, str) else None
            if login is None:
                raise ValueError(f"User '{wanted}' does not exist.")
            return login
        if name == "labels":
            return self._check_labels(value)
        if name == "priority":
            wanted = value.get("name") or (self.priorities[int(value["id"]) - 1] if "id" in value else None)
            if wanted not in self.priorities:
                raise ValueError("The priority selected is invalid.")
            return wanted
        if name == "issuetype":
            wanted = value.get("name") if isinstance(value, dict) else None
            if isinstance(value, dict) and "id" in value and str(value["id"]).isdigit():
                index = int(value["id"]) - 10000
                wanted = self.issuetypes[index] if 0 <= index < len(self.issuetypes) else None
            if wanted not in self.issuetypes:
                raise ValueError("Specify a valid issue type")
            return wanted
        if name == "fixVersions":
            if not isinstance(value, list) or not all(isinstance(v, dict) and v.get("name") for v in value):
                raise ValueError("Fix Version/s: each version is an object with a name")
            return [str(v["name"]) for v in value]
        if name in self.custom_fields:
            return self._custom_value(self.custom_fields[name], value)
        raise ValueError(f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown.")

    def _custom_value(self, f: CustomField, value: Any) -> Any:
        if value is None:
            return None
        if f.type == "datetime":
            if isinstance(value, datetime):
                return _utc(value)
            if not isinstance(value, str) or not JIRA_DATETIME.match(value):
                raise ValueError("Invalid date format. "
                                 "Please enter the date in the format \"yyyy-MM-dd'T'HH:mm:ss.SSSZ\".")
            return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z").astimezone(UTC)
        if f.type == "option":
            return value.get("value") if isinstance(value, dict) else value
        if f.type == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError("Operation value must be a number")  # Jira's words for a string
            return float(value)
        return value

    def _check_labels(self, labels: Any) -> list[str]:
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise ValueError("Labels must be a list of strings.")
        for label in labels:
            if not label or any(ch.isspace() for ch in label):
                raise ValueError(f"The label '{label}' contains spaces which is invalid.")
        return sorted(set(labels))

    def _label_ops(self, issue: FakeIssue, earlier: list[Any], ops: Any) -> list[str]:
        labels = set(earlier[-1] if earlier else issue.labels)
        if not isinstance(ops, list):
            raise ValueError("update.labels must be a list of operations")
        for op in ops:
            if not isinstance(op, dict) or len(op) != 1:
                raise ValueError("each label operation is one of add, remove, set")
            (verb, value), = op.items()
            if verb == "add":
                labels |= set(self._check_labels([value]))
            elif verb == "remove":
                labels.discard(value)
            elif verb == "set":
                labels = set(self._check_labels(value))
            else:
                raise ValueError(f"unknown label operation {verb!r}")
        return sorted(labels)

    def _item(self, field_id: str, from_: Any, from_s: Any, to: Any, to_s: Any, *, name: str | None = None,
              custom: bool = False) -> dict[str, Any]:
        return {"field": name or field_id, "fieldtype": "custom" if custom else "jira", "fieldId": field_id,
                "from": from_, "fromString": from_s, "to": to, "toString": to_s}

    def _changes(self, issue: FakeIssue, name: str, value: Any) -> list[dict[str, Any]]:
        """Set one field; its changelog items (none if nothing changed)."""
        if name == "fixVersions":
            return self._set_versions(issue, list(value))
        item = self._set(issue, name, value)
        return [item] if item else []

    def _set(self, issue: FakeIssue, name: str, value: Any) -> dict[str, Any] | None:
        """Set one field (stored form); the changelog item, or ``None`` if nothing changed."""
        if name == "status":
            raise AssertionError("use transition()")
        if name == "labels":
            value = sorted(value)
            if value == issue.labels:
                return None
            old, issue.labels = issue.labels, value
            return self._item("labels", None, " ".join(old), None, " ".join(value))
        if name == "duedate":
            value = value.isoformat() if isinstance(value, date) else value
            if value == issue.duedate:
                return None
            old, issue.duedate = issue.duedate, value
            return self._item("duedate", old, f"{old} 00:00:00.0" if old else None, value,
                              f"{value} 00:00:00.0" if value else None)
        if name == "assignee":
            if value == issue.assignee:
                return None
            old, issue.assignee = issue.assignee, value
            return self._item("assignee", self.user_id(old) if old else None,
                              self.users[old].display_name if old else None,
                              self.user_id(value) if value else None,
                              self.users[value].display_name if value else None)
        if name == "priority":
            if value == issue.priority:
                return None
            old, issue.priority = issue.priority, value
            return self._item("priority", str(self.priorities.index(old) + 1) if old else None, old,
                              str(self.priorities.index(value) + 1), value)
        if name == "issuetype":
            if value not in self.issuetypes:
                self.issuetypes.append(value)
            if value == issue.issuetype:
                return None
            old, issue.issuetype = issue.issuetype, value
            return self._item("issuetype", str(self.issuetypes.index(old) + 10000), old,
                              str(self.issuetypes.index(value) + 10000), value)
        if name == "fixVersions":
            raise AssertionError("fixVersions: one item per version, see _set_versions")
        f = self.custom_fields[name]
        value = self._custom_value(f, value)
        if value == issue.custom.get(name):
            return None
        old = issue.custom.get(name)
        issue.custom[name] = value

        def text(v: Any) -> Any:
            if isinstance(v, float) and v.is_integer():
                return str(int(v))  # a number field's changelog shows 3, not 3.0
            return None if v is None else (self.ts(v) if isinstance(v, datetime) else str(v))

        return self._item(name, text(old), text(old), text(value), text(value), name=f.name, custom=True)

    def _version_id(self, name: str) -> str:
        if name not in self.versions:
            self.versions.append(name)
        return str(10000 + self.versions.index(name))

    def _set_versions(self, issue: FakeIssue, names: list[str]) -> list[dict[str, Any]]:
        """Set the fix versions; Jira records one item per version added (``to``) or
        removed (``from``), field ``Fix Version``, id ``fixVersions``."""
        wanted = list(dict.fromkeys(names))
        gone = [n for n in issue.fix_versions if n not in wanted]
        new = [n for n in wanted if n not in issue.fix_versions]
        issue.fix_versions = wanted
        return ([self._item("fixVersions", self._version_id(n), n, None, None, name="Fix Version") for n in gone]
                + [self._item("fixVersions", None, None, self._version_id(n), n, name="Fix Version") for n in new])

    def _record(self, issue: FakeIssue, by: str, at: datetime, items: list[dict[str, Any]]) -> None:
        self.now = max(self.now, at)
        if not items:
            return
        issue.histories.append(History(next(self._ids), by, at, items))
        issue.updated = max(issue.updated, at)


# -- a small JQL subset --------------------------------------------------------------------------

_TOKEN = re.compile(r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<op>!=|>=|<=|=|>|<|\(|\)|,)|"""
                    r"""(?P<word>[^\s=!<>(),"']+))""")
_KEYWORDS = {"and", "or", "order", "by", "in", "not", "asc", "desc"}


class JqlQuery:
    """Parses the JQL the adapter sends; anything else is Jira's 400."""

    def __init__(self, jql: str, fake: JiraFake) -> None:
        self.fake = fake
        self.tokens = self._lex(jql)
        self.pos = 0
        self.order: list[tuple[str, bool]] = []
        self.test = self._query()

    @staticmethod
    def _lex(jql: str) -> list[tuple[str, str]]:
        out, pos = [], 0
        while pos < len(jql):
            if jql[pos:].strip() == "":
                break
            m = _TOKEN.match(jql, pos)
            if not m:
                raise jira_error(400, f"Error in the JQL Query: the character '{jql[pos]}' "
                                      "is a reserved JQL character.")
            kind = m.lastgroup or "word"
            text = m.group(kind)
            if kind == "str":
                text = re.sub(r"\\(.)", r"\1", text[1:-1])
            out.append((kind, text))
            pos = m.end()
        return out

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _next(self, what: str) -> tuple[str, str]:
        tok = self._peek()
        if tok is None:
            raise jira_error(400, f"Error in the JQL Query: Expecting {what} but reached the end of the query.")
        self.pos += 1
        return tok

    def _is_word(self, word: str) -> bool:
        tok = self._peek()
        return tok is not None and tok[0] == "word" and tok[1].lower() == word

    def _query(self) -> Any:
        test = (lambda issue: True) if self._peek() is None or self._is_word("order") else self._or()
        if self._is_word("order"):
            self.pos += 1
            if not self._is_word("by"):
                raise jira_error(400, "Error in the JQL Query: Expecting 'by' after 'order'.")
            self.pos += 1
            while True:
                name = self._next("a field name")[1].lower()
                asc = True
                if self._is_word("asc") or self._is_word("desc"):
                    asc = self._next("asc or desc")[1].lower() == "asc"
                if name not in ("updated", "created", "key", "issuekey"):
                    raise jira_error(400, f"Not able to sort using field '{name}'.")
                self.order.append((name, asc))
                tok = self._peek()
                if tok == ("op", ","):
                    self.pos += 1
                    continue
                break
        if self._peek() is not None:
            raise jira_error(400, f"Error in the JQL Query: unexpected '{self._peek()[1]}'.")  # type: ignore[index]
        return test

    def _or(self) -> Any:
        parts = [self._and()]
        while self._is_word("or"):
            self.pos += 1
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else (lambda issue: any(p(issue) for p in parts))

    def _and(self) -> Any:
        parts = [self._factor()]
        while self._is_word("and"):
            self.pos += 1
            parts.append(self._factor())
        return parts[0] if len(parts) == 1 else (lambda issue: all(p(issue) for p in parts))

    def _factor(self) -> Any:
        if self._peek() == ("op", "("):
            self.pos += 1
            inner = self._or()
            if self._next("')'") != ("op", ")"):
                raise jira_error(400, "Error in the JQL Query: Expecting ')'.")
            return inner
        return self._clause()

    def _values(self) -> list[str]:
        if self._next("'('") != ("op", "("):
            raise jira_error(400, "Error in the JQL Query: Expecting '(' after 'in'.")
        values = [self._next("a value")[1]]
        while self._peek() == ("op", ","):
            self.pos += 1
            values.append(self._next("a value")[1])
        if self._next("')'") != ("op", ")"):
            raise jira_error(400, "Error in the JQL Query: Expecting ')'.")
        return values

    def _clause(self) -> Any:
        kind, name = self._next("a field name")
        if kind != "word" or name.lower() in _KEYWORDS:
            raise jira_error(400, f"Error in the JQL Query: Expecting a field name but got '{name}'.")
        field_name = name.lower()
        if self._is_word("in") or self._is_word("not"):
            negate = self._next("in")[1].lower() == "not"
            if negate and not self._is_word("in"):
                raise jira_error(400, "Error in the JQL Query: Expecting 'in' after 'not'.")
            if negate:
                self.pos += 1
            op, values = ("!=" if negate else "="), self._values()
        else:
            kind, op = self._next("an operator")
            if kind != "op" or op not in ("=", "!=", ">=", "<=", ">", "<"):
                raise jira_error(400, f"Error in the JQL Query: Expecting an operator but got '{op}'.")
            values = [self._next("a value")[1]]
        return self._predicate(field_name, op, values)

    def _predicate(self, name: str, op: str, values: list[str]) -> Any:
        fake = self.fake
        if name in ("key", "issuekey"):  # Jira refuses the whole search over a key that does not exist
            known = {k.lower() for k in fake.issues}
            for value in values:
                if value.lower() not in known:
                    raise jira_error(400, f"An issue with key '{value}' does not exist for field 'key'.")
        getters: dict[str, Any] = {
            "project": lambda i: {x.lower() for x in fake.projects[i.project].values()},
            "key": lambda i: {i.key.lower()},
            "issuekey": lambda i: {i.key.lower()},
            "status": lambda i: {i.status.lower()},
            "statuscategory": lambda i: {STATUS_CATEGORIES[fake.statuses[i.status]]["name"].lower(),
                                         fake.statuses[i.status]},
        }
        if name in ("updated", "created"):
            if op not in (">=", ">", "<=", "<", "="):
                raise jira_error(400, f"The operator '{op}' is not supported by the '{name}' field.")
            bound = self._date(name, values[0])
            compare = {">=": lambda a: a >= bound, ">": lambda a: a > bound, "<=": lambda a: a <= bound,
                       "<": lambda a: a < bound, "=": lambda a: a == bound}[op]
            return lambda i: compare(getattr(i, name))
        if name not in getters:
            raise jira_error(400, f"Field '{name}' does not exist or you do not have permission to view it.")
        if op not in ("=", "!="):
            raise jira_error(400, f"The operator '{op}' is not supported by the '{name}' field.")
        if name == "project":  # as Jira resolves a project value: by key, else by name, else by id
            keys = []
            for value in values:
                found = [p["key"] for field in ("key", "name", "id") for p in fake.projects.values()
                         if p[field].lower() == value.lower()]
                if not found:
                    raise jira_error(400, f"The value '{value}' does not exist for the field 'project'.")
                keys.append(found[0])
            values = keys
            getters["project"] = lambda i: {i.project.lower()}
        wanted = {v.lower() for v in values}
        get = getters[name]
        return (lambda i: bool(get(i) & wanted)) if op == "=" else (lambda i: not get(i) & wanted)

    def _date(self, name: str, text: str) -> datetime:
        for fmt in JQL_DATE_FORMATS:
            try:
                return datetime.strptime(text, fmt).replace(tzinfo=self.fake.tz).astimezone(UTC)
            except ValueError:
                continue
        raise jira_error(400, f"Date value '{text}' for field '{name}' is invalid. Valid formats include: "
                              "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', "
                              "or a period format e.g. '-5d', '4w 2d'.")

    def run(self, issues: list[FakeIssue]) -> list[FakeIssue]:
        found = [i for i in issues if self.test(i)]
        found.sort(key=lambda i: (i.project, i.number))
        for name, asc in reversed(self.order):
            if name in ("key", "issuekey"):
                found.sort(key=lambda i: (i.project, i.number), reverse=not asc)
            else:
                found.sort(key=lambda i, n=name: getattr(i, n), reverse=not asc)  # type: ignore[misc]
        return found
