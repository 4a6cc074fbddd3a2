"""Each adapter maps what its tracker records of an issue's history into neutral
events: assignee, priority, type, milestone and custom field changes as ``field``
events, with the instant the tracker recorded (to the second), the author, and
``by_self`` for what the tracker's API user did (by user id); comments with
``public``, ``by_agent`` and ``by_self`` (sla-sync's own notes are never an
agent's reply).

A person (or the API user, seeded as such) changes the issue on the tracker: the
real Redmine, or the GitLab and Jira fakes; a fresh adapter (no cache, no
directory) fetches it, and its history says who changed what, from what to what,
and when.  What each change costs in requests is counted where it could cost one.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sla_sync.adapters.gitlab import GitLabTracker, field_events, milestone_events
from sla_sync.adapters.gitlab import create as create_gitlab
from sla_sync.adapters.jira import MAPPER
from sla_sync.adapters.jira import create as create_jira
from sla_sync.adapters.redmine import custom_events

from sla_sync.model import Change, ChangeKind, Issue
from sla_sync.policy import parse_policy
from sla_sync.schema import GitLabSpec, JiraSpec
from sla_sync.tracker import AdapterOptions, Tracked
from tests.contract.harness import BODY
from tests.fakes.gitlab_fake import DEVELOPER, GUEST, MAINTAINER, GitLabFake
from tests.fakes.jira_fake import JiraFake

FieldChange = tuple[str | None, int, str | None, str | None, str | None, bool]  # field, at, from, to, author, by_self


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def ts(text: str) -> int:
    return int(at(text).timestamp())


def changes(issue: Issue, *fields: str) -> list[FieldChange]:
    return [(e.field, e.at, e.from_, e.to, e.author, e.by_self) for e in issue.events
            if e.kind == "field" and e.field in fields]


def only(fetched: list[Tracked], key: str) -> Tracked:
    (tracked,) = [t for t in fetched if t.issue.key == key]
    return tracked


def no_sleep(_seconds: float) -> None:
    raise AssertionError("no retry wait was expected")


# -- GitLab ---------------------------------------------------------------------------

GL_PROJECT = "support/helpdesk"
GL_TOKEN = "glpat-history-test-0001"
GL_HISTORY = "/api/v4/projects/{pid}/issues/{iid}/"
MILESTONE_EVENTS = GL_HISTORY + "resource_milestone_events"


@pytest.fixture
def gitlab_fake() -> Iterator[GitLabFake]:
    fake = GitLabFake(now=at("2026-11-02T08:00:00"))
    for login in ("sla-sync", "alice", "bob", "erin", "manager"):
        fake.add_user(login)
    fake.add_project(GL_PROJECT, {"sla-sync": MAINTAINER, "alice": DEVELOPER, "bob": DEVELOPER,
                                  "manager": DEVELOPER, "erin": GUEST})
    fake.token_for("sla-sync", GL_TOKEN)
    fake.start()
    yield fake
    fake.close()


def gitlab(fake: GitLabFake, options: AdapterOptions | None = None, *,
           milestones: bool | None = None) -> GitLabTracker:
    spec = GitLabSpec.model_validate({"kind": "gitlab", "url": fake.url, "project": GL_PROJECT,
                                      "api_key_env": "GL_TEST_TOKEN", "priority_labels": "priority::", "timeout": 2})
    return create_gitlab(spec, GL_TOKEN, options or AdapterOptions(agents_users=("alice", "bob"), sleep=no_sleep),
                         milestones=milestones)


def history_requests(fake: GitLabFake) -> dict[str, int]:
    return {template.removeprefix(GL_HISTORY): n for (method, template), n in fake.counts.items()
            if method == "GET" and template.startswith(GL_HISTORY)}


def test_gitlab_assignee_priority_and_type_changes_are_field_events(gitlab_fake: GitLabFake) -> None:
    fake = gitlab_fake
    iid = fake.create_issue(GL_PROJECT, "Checkout down", author="erin", created_at=at("2026-11-02T08:00:00"),
                            labels=["priority::2"])
    fake.set_assignees(GL_PROJECT, iid, ["bob"], by="alice", at=at("2026-11-02T08:10:00"))  # "assigned to @bob"
    fake.change_labels(GL_PROJECT, iid, add=["priority::1"], by="bob", at=at("2026-11-02T08:20:00"))
    fake.set_issue_type(GL_PROJECT, iid, "incident", by="alice", at=at("2026-11-02T08:30:00"))
    fake.change_labels(GL_PROJECT, iid, add=["priority::3"], by="sla-sync", at=at("2026-11-02T08:40:00"))
    fake.now = at("2026-11-02T09:00:00")
    gitlab(fake).apply(str(iid), [Change(ChangeKind.ASSIGN, value="manager")])  # "assigned to @manager and ..."

    issue = only(gitlab(fake).fetch(None, {}).issues, str(iid)).issue

    assert changes(issue, "assignee", "priority", "type") == [
        ("priority", ts("2026-11-02T08:00:00"), None, "2", "erin", False),  # GitLab records the creation's labels
        ("assignee", ts("2026-11-02T08:10:00"), None, "bob", "alice", False),
        ("priority", ts("2026-11-02T08:20:00"), "2", "1", "bob", False),
        ("type", ts("2026-11-02T08:30:00"), "issue", "incident", "alice", False),
        ("priority", ts("2026-11-02T08:40:00"), "1", "3", "sla-sync", True),  # the token's user's label change
        ("assignee", ts("2026-11-02T09:00:00"), "bob", "manager", "sla-sync", True),
    ]
    assert (issue.assignee, issue.priority, issue.type) == ("manager", "3", "incident")  # the last change of each


def test_gitlab_milestone_events_are_read_only_when_the_policy_reads_the_milestone(gitlab_fake: GitLabFake) -> None:
    fake = gitlab_fake
    iid = fake.create_issue(GL_PROJECT, "Checkout down", author="alice", created_at=at("2026-11-02T08:00:00"),
                            milestone="v1.0")  # GitLab records the creation's milestone as an "add"
    fake.set_milestone(GL_PROJECT, iid, "v1.1", by="alice", at=at("2026-11-02T08:10:00"))  # one "add v1.1"
    fake.set_milestone(GL_PROJECT, iid, None, by="bob", at=at("2026-11-02T08:20:00"))  # "remove v1.1"
    fake.set_milestone(GL_PROJECT, iid, "v2.0", by="sla-sync", at=at("2026-11-02T08:30:00"))

    issue = only(gitlab(fake, milestones=True).fetch(None, {}).issues, str(iid)).issue

    assert changes(issue, "milestone") == [
        ("milestone", ts("2026-11-02T08:00:00"), None, "v1.0", "alice", False),
        ("milestone", ts("2026-11-02T08:10:00"), "v1.0", "v1.1", "alice", False),
        ("milestone", ts("2026-11-02T08:20:00"), "v1.1", None, "bob", False),
        ("milestone", ts("2026-11-02T08:30:00"), None, "v2.0", "sla-sync", True),
    ]
    assert issue.milestone == "v2.0"
    assert history_requests(fake) == {"resource_label_events": 1, "resource_state_events": 1, "notes": 1,
                                      "resource_milestone_events": 1}  # 4 with milestones

    fake.reset_counts()
    plain = only(gitlab(fake).fetch(None, {}).issues, str(iid)).issue  # a policy without milestones
    assert changes(plain, "milestone") == []
    assert plain.milestone == "v2.0"  # the value now is in the issue row anyway
    assert history_requests(fake) == {"resource_label_events": 1, "resource_state_events": 1, "notes": 1}


def test_gitlab_takes_milestones_from_the_options_when_the_sync_sets_them(gitlab_fake: GitLabFake) -> None:
    fake = gitlab_fake
    iid = fake.create_issue(GL_PROJECT, "Checkout down", author="alice", created_at=at("2026-11-02T08:00:00"))
    fake.set_milestone(GL_PROJECT, iid, "v1.0", by="bob", at=at("2026-11-02T08:05:00"))

    tracker = gitlab(fake, AdapterOptions(sleep=no_sleep, milestones=True))

    assert tracker.milestones
    assert changes(only(tracker.fetch(None, {}).issues, str(iid)).issue, "milestone") == [
        ("milestone", ts("2026-11-02T08:05:00"), None, "v1.0", "bob", False)]
    assert fake.counts[("GET", MILESTONE_EVENTS)] == 1
    assert not gitlab(fake, AdapterOptions(sleep=no_sleep)).milestones


POLICY_HEAD = """name: history
calendars:
  always: {timezone: UTC, hours: 24x7}
levels:
  P1: {calendar: always, first_response: 30m, resolution: 8h}
  P2: {calendar: always, first_response: 2h, resolution: 24h}
"""


def test_a_policy_uses_milestones_when_a_rule_or_a_pause_condition_reads_one() -> None:
    by_milestone = parse_policy(POLICY_HEAD + "classify:\n  - if: {milestone: ['2.0'], priority: High}\n"
                                "    level: P1\n  - level: P2\n", "<rules>")
    by_priority = parse_policy(POLICY_HEAD + "classify:\n  - if: {priority: High}\n    level: P1\n"
                               "  - level: P2\n", "<plain>")
    paused = parse_policy(POLICY_HEAD.replace("resolution: 8h}", "resolution: 8h, handover: 4h}")
                          + "classify:\n  - level: P1\nmetrics:\n  handover:\n    start: [created]\n"
                          "    stop: [resolved]\n    pause_when: {milestone: [later]}\n", "<metrics>")

    assert (by_milestone.uses_milestones, by_priority.uses_milestones, paused.uses_milestones) == (
        True, False, True)


def system_note(body: str, user: int, at: str) -> dict[str, Any]:
    return {"id": 1, "body": body, "system": True, "created_at": at,
            "author": {"id": user, "username": {1: "sla-sync", 2: "alice"}[user]}}


def test_gitlab_type_notes_in_both_wordings_are_type_events() -> None:
    notes = [
        system_note("changed issue type to incident", 2, "2026-11-02T10:00:00.000Z"),  # older GitLab: no "from"
        system_note("changed type from incident to test case", 1, "2026-11-02T10:05:00.750Z"),
        system_note("changed issue type to issue", 2, "2026-11-02T10:10:00.000Z"),
        system_note("changed the description", 2, "2026-11-02T10:15:00.000Z"),
        {**system_note("changed type from issue to task", 2, "2026-11-02T10:20:00.000Z"), "system": False},
    ]
    events = field_events({"assignees": [], "issue_type": "issue"}, notes, me=1)
    assert [(e.field, e.at, e.from_, e.to, e.author, e.by_self) for e in events] == [
        ("type", ts("2026-11-02T10:00:00"), None, "incident", "alice", False),
        ("type", ts("2026-11-02T10:05:00"), "incident", "test_case", "sla-sync", True),  # to the second
        ("type", ts("2026-11-02T10:10:00"), "test_case", "issue", "alice", False),
    ]


def test_gitlab_milestone_events_before_the_first_recorded_and_of_deleted_milestones() -> None:
    def event(n: int, action: str, title: str | None, created: str) -> dict[str, Any]:
        return {"id": n, "user": {"id": 2, "username": "alice"}, "created_at": created, "resource_type": "Issue",
                "resource_id": 7, "milestone": {"id": 60 + n, "title": title} if title else None, "action": action}

    events = milestone_events([
        event(3, "add", "v2", "2026-11-02T10:10:00.000Z"),
        event(1, "remove", "v0.9", "2026-11-02T10:00:00.000Z"),  # set before GitLab kept milestone events
        event(2, "add", None, "2026-11-02T10:05:00.000Z"),  # a milestone deleted since: its title is gone
    ], me=1)
    assert [(e.at, e.from_, e.to, e.author, e.by_self) for e in events] == [
        (ts("2026-11-02T10:00:00"), "v0.9", None, "alice", False),
        (ts("2026-11-02T10:10:00"), None, "v2", "alice", False),
    ]


# -- Jira ------------------------------------------------------------------------------

JIRA_TOKEN = "sla-sync-secret"
JIRA_USER_ENV, JIRA_TOKEN_ENV = "HISTORY_JIRA_USER", "HISTORY_JIRA_TOKEN"
SEVERITY, HOURS = "customfield_10060", "customfield_10061"


@pytest.fixture(params=[True, False], ids=["cloud", "dc"])
def jira_fake(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[JiraFake]:
    fake = JiraFake(cloud=request.param, token=JIRA_TOKEN)  # the API user lives in New York: -0500 timestamps
    for login in ("alice", "bob", "erin", "manager"):
        fake.add_user(login, login.title())
    fake.add_project("SD", "Service Desk")
    fake.add_field(SEVERITY, "Severity", "option")
    fake.add_field(HOURS, "Hours booked", "number")
    fake.start()
    monkeypatch.setenv(JIRA_USER_ENV, "sla-bot@example.com")
    monkeypatch.setenv(JIRA_TOKEN_ENV, JIRA_TOKEN)
    yield fake
    fake.close()


def jira(fake: JiraFake) -> Any:
    spec = JiraSpec(kind="jira", url=fake.url, project="SD", api_key_env=JIRA_TOKEN_ENV,
                    user_env=JIRA_USER_ENV if fake.cloud else None, timeout=2)
    return create_jira(spec, JIRA_TOKEN, AdapterOptions(sleep=no_sleep))


def test_jira_changelog_gives_priority_type_milestone_custom_field_and_assignee_events(jira_fake: JiraFake) -> None:
    fake = jira_fake
    key = fake.create_issue("SD", "Checkout down", created=at("2026-11-02T09:00:00"), by="erin", priority="Medium",
                            issuetype="Incident", fix_versions=("2026.11",), custom={SEVERITY: "S2"})
    fake.edit(key, at=at("2026-11-02T09:10:00"), by="alice", priority="High")
    fake.edit(key, at=at("2026-11-02T09:20:00"), by="alice", issuetype="Problem")
    fake.edit(key, at=at("2026-11-02T09:30:00"), by="bob", fixVersions=["2026.12"])  # one item out, one in
    fake.edit(key, at=at("2026-11-02T09:40:00"), by="alice", fixVersions=["2026.12", "2027.01"])  # first unchanged
    fake.edit(key, at=at("2026-11-02T09:50:00"), by="alice", fixVersions=["2027.01"])
    fake.edit(key, at=at("2026-11-02T10:00:00"), by="alice", **{SEVERITY: "S1"})
    fake.edit(key, at=at("2026-11-02T10:10:00"), by=fake.api_user, **{SEVERITY: "S3"})  # with sla-sync's credentials
    fake.edit(key, at=at("2026-11-02T10:20:00"), by="alice", **{HOURS: 3})
    fake.edit(key, at=at("2026-11-02T10:30:00"), by="alice", assignee="bob")
    manager = "manager@example.com" if fake.cloud else "manager"
    jira(fake).apply(key, [Change(ChangeKind.ASSIGN, value=manager)])  # the fake's clock: 10:30:01

    issue = only(jira(fake).fetch(None, {}).issues, key).issue  # a fresh adapter: assignees by user id
    alice, bob, bot = fake.user_id("alice"), fake.user_id("bob"), fake.user_id(fake.api_user)
    assert changes(issue, "priority", "type", "milestone", "Severity", "Hours booked", "assignee") == [
        ("priority", ts("2026-11-02T09:10:00"), "Medium", "High", alice, False),
        ("type", ts("2026-11-02T09:20:00"), "Incident", "Problem", alice, False),
        ("milestone", ts("2026-11-02T09:30:00"), "2026.11", "2026.12", bob, False),
        ("milestone", ts("2026-11-02T09:50:00"), "2026.12", "2027.01", alice, False),
        ("Severity", ts("2026-11-02T10:00:00"), "S2", "S1", alice, False),
        ("Severity", ts("2026-11-02T10:10:00"), "S1", "S3", bot, True),
        ("Hours booked", ts("2026-11-02T10:20:00"), None, "3.0", alice, False),  # as the field's value shows it
        ("assignee", ts("2026-11-02T10:30:00"), None, bob, alice, False),
        ("assignee", ts("2026-11-02T10:30:01"), bob, fake.user_id("manager"), bot, True),
    ]
    # the last change of each is the value the issue holds now, named as ``fields`` and the issue name it
    assert (issue.priority, issue.type, issue.milestone) == ("High", "Problem", "2027.01")
    assert (issue.fields["Severity"], str(issue.fields["Hours booked"])) == ("S3", "3.0")


def test_jira_items_without_a_field_id_are_named_by_their_field() -> None:
    """Data Center's changelog items may carry the field's name only (no ``fieldId``)."""
    row = {"fields": {"reporter": {"name": "erin"}, "fixVersions": [{"name": "1.1"}, {"name": "1.0"}],
                      SEVERITY: {"value": "S1"}}}
    items = [
        {"field": "Severity", "fieldtype": "custom", "from": "10020", "fromString": "S2", "to": "10019",
         "toString": "S1"},
        {"field": "issuetype", "fieldtype": "jira", "from": "1", "fromString": "Bug", "to": "3", "toString": "Task"},
        {"field": "Fix Version", "fieldtype": "jira", "from": None, "fromString": None, "to": "10001",
         "toString": "1.1"},
    ]
    histories = [{"created": "2026-11-02T10:00:00.000+0100", "author": {"name": "alice"}, "items": items}]
    events = MAPPER.events(row, histories, [], me="sla-bot", agents=None, field_names={SEVERITY: "Severity"})
    assert [(e.field, e.at, e.from_, e.to, e.author) for e in events] == [
        ("Severity", ts("2026-11-02T09:00:00"), "S2", "S1", "alice"),
        ("type", ts("2026-11-02T09:00:00"), "Bug", "Task", "alice"),
        ("milestone", ts("2026-11-02T09:00:00"), "1.0", "1.1", "alice"),  # 1.1 put first: the milestone changed
    ]


# -- Redmine (the real one) ---------------------------------------------------------------


def version(redmine: Any, name: str) -> int:
    """The project's version ``name`` (made once; versions outlive the issues)."""
    code, body = redmine.admin.request("GET", "/projects/support/versions.json")
    assert code == 200, (code, body)
    found = [v["id"] for v in body["versions"] if v["name"] == name]
    if found:
        return int(found[0])
    code, body = redmine.admin.request("POST", "/projects/support/versions.json", {"version": {"name": name}})
    assert code == 201, (code, body)
    return int(body["version"]["id"])


def change(redmine: Any, key: str, by: str, fields: dict[str, Any], when: str) -> None:
    redmine._put(key, by, fields)
    redmine._stamp(key, at(when))  # the journal just written happened at ``when``


def test_redmine_journals_give_priority_type_milestone_custom_field_and_assignee_events(redmine: Any) -> None:
    fx = redmine.fx
    first, second = version(redmine, "2026.11"), version(redmine, "2026.12")
    key = redmine.create_issue("Checkout down", priority="P1", created_at=at("2026-11-02T08:00:00"))  # Support, Urgent
    change(redmine, key, "alice", {"priority_id": fx["priorities"]["High"]}, "2026-11-02T08:10:00")
    change(redmine, key, "alice", {"tracker_id": fx["trackers"]["Bug"]}, "2026-11-02T08:20:00")
    change(redmine, key, "alice", {"fixed_version_id": first}, "2026-11-02T08:30:00")
    change(redmine, key, "bob", {"fixed_version_id": second}, "2026-11-02T08:40:00")
    change(redmine, key, "alice", {"custom_fields": [{"id": fx["custom_fields"]["CSAT"], "value": "4"}]},
           "2026-11-02T08:50:00")
    change(redmine, key, "alice", {"assigned_to_id": fx["users"]["bob"]["id"]}, "2026-11-02T09:00:00")
    policy = redmine.policy(BODY)
    redmine.tracker(policy).apply(key, [Change(ChangeKind.ASSIGN, value="manager")])
    redmine._stamp(key, at("2026-11-02T09:10:00"))

    redmine.reset_requests()
    issue = only(redmine.tracker(policy).fetch(None, {}).issues, key).issue

    assert changes(issue, "priority", "type", "milestone", "CSAT", "assignee") == [
        ("priority", ts("2026-11-02T08:10:00"), "Urgent", "High", "Alice Agent", False),
        ("type", ts("2026-11-02T08:20:00"), "Support", "Bug", "Alice Agent", False),
        ("milestone", ts("2026-11-02T08:30:00"), None, "2026.11", "Alice Agent", False),
        ("milestone", ts("2026-11-02T08:40:00"), "2026.11", "2026.12", "Bob Agent", False),
        ("CSAT", ts("2026-11-02T08:50:00"), None, "4", "Alice Agent", False),
        ("assignee", ts("2026-11-02T09:00:00"), None, "bob", "Alice Agent", False),
        ("assignee", ts("2026-11-02T09:10:00"), "bob", "manager", "Redmine Admin", True),  # the API user
    ]
    assert (issue.priority, issue.type, issue.milestone, issue.fields["CSAT"]) == ("High", "Bug", "2026.12", "4")
    counts = redmine.proxy.counts
    assert counts[("GET", "/issues/N.json")] == 1  # the journals: the one request per changed issue
    assert counts[("GET", "/trackers.json")] == 1  # Support, which the issue no longer shows: the list, once
    assert counts[("GET", "/projects/support/versions.json")] == 1  # 2026.11, likewise
    assert counts[("GET", "/versions/N.json")] == 0


def test_redmine_multi_value_custom_fields_are_told_as_they_stood_after_each_journal() -> None:
    """A multi-value field's journal has a detail per value added or removed."""
    full = {
        "custom_fields": [{"id": 1, "name": "SLA", "multiple": True, "value": ["sla:P1"]},
                          {"id": 7, "name": "Products", "multiple": True, "value": ["shop", "api"]},
                          {"id": 8, "name": "Severity", "value": "S1"}],
        "journals": [
            {"created_on": "2026-11-02T08:00:00Z", "details": [
                {"property": "cf", "name": "7", "old_value": None, "new_value": "shop"},
                {"property": "cf", "name": "7", "old_value": None, "new_value": "web"},
                {"property": "cf", "name": "8", "old_value": "", "new_value": "S2"}]},
            {"created_on": "2026-11-02T08:10:00Z", "details": [
                {"property": "cf", "name": "7", "old_value": "web", "new_value": None},
                {"property": "cf", "name": "7", "old_value": None, "new_value": "api"},
                {"property": "cf", "name": "8", "old_value": "S2", "new_value": "S1"},
                {"property": "cf", "name": "9", "old_value": "a", "new_value": "b"}]},  # a field the issue lacks
        ],
    }
    assert custom_events(full, skip="1") == {
        (0, "7"): ("Products", None, "shop,web"),
        (0, "8"): ("Severity", None, "S2"),
        (1, "7"): ("Products", "shop,web", "shop,api"),  # the current value, in Redmine's order
        (1, "8"): ("Severity", "S2", "S1"),
    }


# -- comments, on every tracker ------------------------------------------------------------

KINDS = ["redmine", "gitlab", "jira", "jira_dc"]


@pytest.fixture(params=KINDS)
def harness(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(request.param)


def test_comments_say_public_by_agent_and_by_self_and_sla_syncs_own_never_count(harness: Any) -> None:
    key = harness.create_issue("Checkout down", priority="P1", created_at=at("2026-11-02T08:00:00"))
    harness.comment(key, "Still down for us", by="erin", public=True, at=at("2026-11-02T08:10:00"))
    harness.comment(key, "Looking at the logs", by="alice", public=False, at=at("2026-11-02T08:20:00"))
    harness.comment(key, "We are on it", by="alice", public=True, at=at("2026-11-02T08:30:00"))
    policy = harness.policy(BODY)
    harness.tracker(policy).apply(key, [Change(ChangeKind.COMMENT, value="SLA: noted", private=False)])
    harness.tracker(policy).apply(key, [Change(ChangeKind.COMMENT, value="SLA: escalated", private=True)])

    issue = only(harness.tracker(policy).fetch(None, {}).issues, key).issue
    comments = [e for e in issue.events if e.kind == "comment"]
    people = sorted((e.at, e.public, e.by_agent, e.by_self) for e in comments if not e.by_self)
    ours = sorted((e.public, e.by_agent, e.by_self) for e in comments if e.by_self)

    assert people == [
        (ts("2026-11-02T08:10:00"), True, False, False),  # the customer
        (ts("2026-11-02T08:20:00"), False, True, False),  # an agent's internal note
        (ts("2026-11-02T08:30:00"), True, True, False),  # an agent's public reply
    ]
    assert ours == [(False, False, True), (True, False, True)]  # sla-sync's notes: never an agent's reply
    assert all(e.author for e in comments)  # who wrote each, as the tracker names them
