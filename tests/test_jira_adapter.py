"""The Jira adapter through the real ``jira`` client, over real HTTP, against the fake.

Every test runs against Jira Cloud and Jira Data Center (``fake`` is parametrized)
unless it is about one of them.  The fake's API user lives in New York (EST,
UTC-5, in November 2026), so timestamps come back with a -0500 offset and JQL
dates are read in that zone.  Retry waits go to a recorder, never to a real sleep.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sla_sync.adapters.jira import JiraTracker, create, jql_time

from sla_sync.errors import AuthError, TrackerError, UserError
from sla_sync.model import Change, Event
from sla_sync.policy import Policy, parse_policy
from sla_sync.schema import JiraSpec
from sla_sync.state import Store
from sla_sync.sync import run_pass
from sla_sync.tracker import AdapterOptions, Cached
from tests.fakes.http import Fault
from tests.fakes.jira_fake import JiraFake

TOKEN = "sla-sync-secret"
USER_ENV, TOKEN_ENV = "JIRA_TEST_USER", "JIRA_TEST_TOKEN"
DUE = "customfield_10050"
SEVERITY = "customfield_10060"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def ts(text: str) -> int:
    return int(at(text).timestamp())


class Sleeps(list[float]):
    """An injected sleep that records the waits instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def build_fake(cloud: bool, **options: Any) -> JiraFake:
    fake = JiraFake(cloud=cloud, **options)
    for login, name in (("alice", "Alice Agent"), ("carol", "Carol Agent"), ("bob", "Bob"), ("bobby", "Bobby"),
                        ("erin", "Erin Customer"), ("dave", "Dave Customer"), ("manager", "Mona Manager"),
                        ("sam1", "Sam"), ("sam2", "Sam")):
        fake.add_user(login, name)
    fake.add_group("service-desk-team", "alice", "carol")
    fake.add_project("SD", "Service Desk")
    fake.add_field(DUE, "SLA due", "datetime")
    fake.add_field(SEVERITY, "Severity", "option")
    fake.start()
    return fake


@pytest.fixture(params=[True, False], ids=["cloud", "dc"])
def fake(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[JiraFake]:
    jira = build_fake(request.param)
    monkeypatch.setenv(USER_ENV, "sla-bot@example.com")
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    yield jira
    jira.close()


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[JiraFake]:
    jira = build_fake(True)
    monkeypatch.setenv(USER_ENV, "sla-bot@example.com")
    yield jira
    jira.close()


def spec(fake: JiraFake, **overrides: Any) -> JiraSpec:
    values: dict[str, Any] = {
        "kind": "jira", "url": fake.url, "project": "SD", "api_key_env": TOKEN_ENV,
        "user_env": USER_ENV if fake.cloud else None, "due_field": DUE, "timeout": 2, "max_attempts": 3,
    }
    return JiraSpec(**{**values, **overrides})


def tracker(fake: JiraFake, sleeps: Sleeps | None = None, *, secret: str = TOKEN,
            groups: tuple[str, ...] = ("service-desk-team",), **overrides: Any) -> JiraTracker:
    options = AdapterOptions(agents_groups=groups, sleep=sleeps if sleeps is not None else Sleeps())
    return create(spec(fake, **overrides), secret, options)


def manager(fake: JiraFake) -> str:
    """How a policy names the manager: by e-mail on Cloud, by username on Data Center."""
    return "manager@example.com" if fake.cloud else "manager"


def searches(fake: JiraFake) -> int:
    return fake.count("GET", "/search/jql" if fake.cloud else "/search")


# -- reading ------------------------------------------------------------------------


def test_search_pages_through_every_open_issue(fake: JiraFake) -> None:
    fake.page_cap = 2  # Jira decides the page size; the adapter follows its paging
    keys = [fake.create_issue("SD", f"issue {n}", created=at(f"2026-11-02T0{n}:00:00"), by="erin") for n in range(1, 6)]
    fake.create_issue("SD", "done", created=at("2026-11-02T06:30:00"), by="erin", status="Done")

    fetched = tracker(fake).fetch(None, {})

    assert [t.issue.key for t in fetched.issues] == keys  # ordered by updated, the done one left out
    assert fetched.cursor == ts("2026-11-02T05:00:00")
    assert searches(fake) == 3  # 2 + 2 + 1
    pages = [r for r in fake.log if r.path.endswith("/search/jql" if fake.cloud else "/search")]
    if fake.cloud:  # token paging: the first page has no token, the others the one Jira gave
        assert [r.arg("nextPageToken") is None for r in pages] == [True, False, False]
    else:
        assert [r.arg("startAt") for r in pages] == ["0", "2", "4"]


@pytest.mark.parametrize(("zone", "expected"), [
    ("America/New_York", "2026-11-02 10:02"),  # 15:02:30 UTC is 10:02:30 EST
    ("Asia/Kolkata", "2026-11-02 20:32"),  # UTC+5:30
    ("UTC", "2026-11-02 15:02"),
])
def test_the_cursor_is_written_in_the_api_users_timezone(zone: str, expected: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(USER_ENV, "sla-bot@example.com")
    fake = build_fake(True, timezone=zone)
    try:
        fake.create_issue("SD", "closed before the window", created=at("2026-11-02T14:00:00"), by="erin", status="Done")
        inside = fake.create_issue("SD", "closed in the window", created=at("2026-11-02T14:00:00"), by="erin")
        fake.transition(inside, "Done", at=at("2026-11-02T15:03:00"), by="alice")
        since = ts("2026-11-02T15:02:30")  # a cursor of 15:07:30 minus the 5m overlap (the sync takes it off)

        fetched = tracker(fake).fetch(since, {})

        jql = next(r.arg("jql") for r in fake.log if r.path.endswith("/search/jql"))
        assert jql == (f'project = "SD" AND (statusCategory != Done OR updated >= "{expected}") '
                       'ORDER BY updated ASC, key ASC')
        assert [(t.issue.key, t.open) for t in fetched.issues] == [(inside, False)]
    finally:
        fake.close()


def test_a_jql_time_never_reads_later_than_the_instant() -> None:
    new_york = ZoneInfo("America/New_York")
    # 2026-11-01 05:30 UTC is 01:30 EDT; "01:30" would also read as 01:30 EST = 06:30 UTC,
    # an hour too late, so the wall time written is an hour earlier.
    assert jql_time(ts("2026-11-01T05:30:00"), new_york) == "2026-11-01 00:30"
    # 06:30 UTC is 01:30 EST; "01:30" read as EDT is 05:30 UTC: earlier, safe either way.
    assert jql_time(ts("2026-11-01T06:30:00"), new_york) == "2026-11-01 01:30"
    assert jql_time(ts("2026-11-02T15:02:59"), new_york) == "2026-11-02 10:02"  # rounded down
    assert jql_time(ts("2026-11-02T15:02:00"), None) == "2026-11-02 01:02"  # zone unknown: 14h wider


def test_a_truncated_changelog_is_read_in_full_and_only_then(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(USER_ENV, "sla-bot@example.com")
    for cloud in (True, False):
        fake = build_fake(cloud, changelog_cap=3)
        try:
            long = fake.create_issue("SD", "five changes", created=at("2026-11-02T08:00:00"), by="erin")
            for n, status in enumerate(["In Progress", "Waiting for customer", "In Progress", "Pending",
                                        "In Progress"]):
                fake.transition(long, status, at=at(f"2026-11-02T09:0{n}:00"), by="alice")
            short = fake.create_issue("SD", "two changes", created=at("2026-11-02T08:00:00"), by="erin")
            fake.transition(short, "In Progress", at=at("2026-11-02T10:00:00"), by="alice")
            fake.transition(short, "Pending", at=at("2026-11-02T10:01:00"), by="alice")
            adapter = tracker(fake)

            first = adapter.fetch(None, {})

            by_key = {t.issue.key: t for t in first.issues}
            assert [e.to for e in by_key[long].issue.events] == [
                "In Progress", "Waiting for customer", "In Progress", "Pending", "In Progress"]
            assert [e.to for e in by_key[short].issue.events] == ["In Progress", "Pending"]
            assert first.refetched == 2
            if cloud:  # the changelog endpoint, once, for the truncated issue only
                assert fake.count("GET", "/changelog") == 1
                assert [r.path for r in fake.log if r.path.endswith("/changelog")] == [
                    f"/rest/api/2/issue/{long}/changelog"]
            else:  # Data Center: the issue itself with expand=changelog
                assert [r.path for r in fake.log if "/issue/" in r.path] == [f"/rest/api/2/issue/{long}"]

            fake.reset_counts()
            cached = {t.issue.key: Cached(t.version, t.issue) for t in first.issues}
            second = adapter.fetch(None, cached)
            assert second.refetched == 0
            assert [e.to for e in {t.issue.key: t for t in second.issues}[long].issue.events][-1] == "In Progress"
            assert fake.count("GET", "/changelog") + fake.count("GET", "/issue/{key}") == 0
        finally:
            fake.close()


def test_the_cloud_changelog_is_read_page_by_page(cloud: JiraFake) -> None:
    cloud.changelog_cap = 1
    key = cloud.create_issue("SD", "busy", created=at("2026-11-02T08:00:00"), by="erin")
    statuses = ["In Progress", "Pending"] * 60  # 120 changes: the endpoint gives 100 a page
    for n, status in enumerate(statuses):
        cloud.transition(key, status, at=at("2026-11-02T09:00:00").replace(minute=n // 60, second=n % 60), by="alice")

    issue = tracker(cloud).fetch(None, {}).issues[0].issue

    assert [e.to for e in issue.events] == statuses
    assert [r.arg("startAt") for r in cloud.log if r.path.endswith("/changelog")] == ["0", "100"]


def test_fetch_all_streams_every_issue_created_since_with_its_history(fake: JiraFake) -> None:
    fake.page_cap = 2
    fake.create_issue("SD", "older", created=at("2026-11-01T10:00:00"), by="erin")
    fake.create_issue("SD", "same minute, earlier", created=at("2026-11-02T09:00:30"), by="erin")
    resolved = fake.create_issue("SD", "resolved", created=at("2026-11-02T10:00:00"), by="erin")
    fake.transition(resolved, "Resolved", at=at("2026-11-02T11:00:00"), by="alice")
    late = fake.create_issue("SD", "late", created=at("2026-11-03T08:00:00"), by="erin")

    stream = tracker(fake).fetch_all(ts("2026-11-02T09:00:45"))
    first = next(stream)

    assert searches(fake) == 1  # lazily: one page so far
    assert (first.issue.key, first.open, [e.to for e in first.issue.events]) == (resolved, False, ["Resolved"])
    assert [t.issue.key for t in stream] == [late]
    # 09:00:45 UTC is 04:00:45 EST: the JQL minute also matches the issue at 09:00:30, dropped here
    jql = [r.arg("jql") for r in fake.log if r.path.endswith("/search/jql" if fake.cloud else "/search")]
    assert jql == ['project = "SD" AND created >= "2026-11-02 04:00" ORDER BY created ASC, key ASC'] * 2


def seed_history(fake: JiraFake) -> str:
    key = fake.create_issue("SD", "Checkout down", created=at("2026-11-02T09:00:00"), by="erin", priority="High",
                            issuetype="Incident", labels=("a", "b"), assignee="carol", duedate="2026-11-20",
                            custom={SEVERITY: "Sev-2"}, fix_versions=("2026.11", "2026.12"))
    fake.comment(key, "It is down", at=at("2026-11-02T09:10:00"), by="erin")
    fake.comment(key, "Looking at the logs", at=at("2026-11-02T09:20:00"), by="alice", public=False)
    fake.comment(key, "We are on it", at=at("2026-11-02T09:30:00"), by="alice")
    fake.comment(key, "Same here", at=at("2026-11-02T09:40:00"), by="dave")
    fake.transition(key, "In Progress", at=at("2026-11-02T09:50:00"), by="alice")
    fake.edit(key, at=at("2026-11-02T10:00:00"), by="alice", priority="Highest")
    fake.edit(key, at=at("2026-11-02T10:10:00"), by="alice", labels=["b", "c"])
    fake.comment(key, "SLA note", at=at("2026-11-02T10:20:00"), by=fake.api_user)
    fake.transition(key, "Waiting for customer", at=at("2026-11-02T10:30:00"), by="alice")
    return key


def test_history_maps_to_neutral_events(fake: JiraFake) -> None:
    key = seed_history(fake)

    tracked = tracker(fake).fetch(None, {}).issues[0]

    issue = tracked.issue
    alice = fake.user_id("alice")
    assert issue.events == (
        Event(ts("2026-11-02T09:10:00"), "comment", public=True, by_agent=False, author=fake.user_id("erin")),
        Event(ts("2026-11-02T09:20:00"), "comment", public=False, by_agent=True, author=alice),
        Event(ts("2026-11-02T09:30:00"), "comment", public=True, by_agent=True, author=alice),
        Event(ts("2026-11-02T09:40:00"), "comment", public=True, by_agent=False, author=fake.user_id("dave")),
        Event(ts("2026-11-02T09:50:00"), "status", from_="Open", to="In Progress", author=alice),
        Event(ts("2026-11-02T10:00:00"), "field", field="priority", from_="High", to="Highest", author=alice),
        Event(ts("2026-11-02T10:10:00"), "label", added=("c",), removed=("a",), author=alice),
        Event(ts("2026-11-02T10:20:00"), "comment", public=True, by_agent=False, author=fake.user_id(fake.api_user),
              by_self=True),  # the API user's own: never an agent's reply, always sla-sync's evidence
        Event(ts("2026-11-02T10:30:00"), "status", from_="In Progress", to="Waiting for customer", author=alice),
    )
    assert (issue.key, issue.title, issue.status, issue.priority, issue.type) == (
        key, "Checkout down", "Waiting for customer", "Highest", "Incident")
    assert (issue.created_at, issue.updated_at) == (ts("2026-11-02T09:00:00"), ts("2026-11-02T10:30:00"))
    assert (issue.labels, issue.milestone, issue.due_date, issue.project) == (("b", "c"), "2026.11", "2026-11-20", "SD")
    assert issue.assignee == fake.user_id("carol")  # a user the policy does not name: by id
    assert issue.fields == {SEVERITY: "Sev-2", "Severity": "Sev-2", "severity": "Sev-2"}
    assert tracked.version == "2026-11-02T10:30:00.000Z" and tracked.open


def test_without_agents_anyone_but_the_reporter_and_sla_sync_is_an_agent(fake: JiraFake) -> None:
    seed_history(fake)

    events = tracker(fake, groups=()).fetch(None, {}).issues[0].issue.events

    comments = [(e.at, e.by_agent) for e in events if e.kind == "comment"]
    assert comments == [
        (ts("2026-11-02T09:10:00"), False),  # erin reported the issue
        (ts("2026-11-02T09:20:00"), True),
        (ts("2026-11-02T09:30:00"), True),
        (ts("2026-11-02T09:40:00"), True),  # dave is not the reporter
        (ts("2026-11-02T10:20:00"), False),  # sla-sync's own
    ]
    assert fake.count("GET", "/group/member") == 0


# -- writing ------------------------------------------------------------------------


def test_each_kind_of_write_back_lands(fake: JiraFake) -> None:
    key = fake.create_issue("SD", "Checkout down", created=at("2026-11-02T09:00:00"), by="erin",
                            labels=("customer-x", "sla:at-risk"))
    fake.now = at("2026-11-02T12:00:00")
    adapter = tracker(fake)
    adapter.fetch(None, {})
    fake.reset_counts()

    adapter.apply(key, [
        Change("due_date", value="2026-11-05"),
        Change("due_instant", value="2026-11-05T14:30:00Z"),
        Change("add_labels", values=("sla:P1", "sla:escalated-1")),
        Change("remove_labels", values=("sla:at-risk",)),
        Change("watchers", values=(manager(fake),), step=1),
        Change("assign", value=manager(fake), step=1),
        Change("comment", value="Escalated to the manager.", private=True, step=1),
        Change("comment", value="We are on it.", private=False, step=2),
    ])

    issue = fake.issue(key)
    assert issue.duedate == "2026-11-05"
    assert issue.custom[DUE] == at("2026-11-05T14:30:00")
    assert issue.labels == ["customer-x", "sla:P1", "sla:escalated-1"]
    assert issue.assignee == "manager" and issue.watchers == {"manager"}
    assert [(c.body, c.public) for c in issue.comments] == [("Escalated to the manager.", False),
                                                            ("We are on it.", True)]
    assert issue.comments[0].properties == [{"key": "sd.public.comment", "value": {"internal": True}},
                                            {"key": "sla-sync.step", "value": {"step": 1}}]
    assert {h.author for h in issue.histories} == {fake.api_user}
    assert fake.count("PUT", "/issue/{key}") == 1  # fields and labels in one request
    assert fake.writes == 4  # the watcher, two comments, the PUT

    observed = adapter.refresh([key])[0].observed
    assert observed.due_date == "2026-11-05" and observed.due_instant == "2026-11-05T14:30:00Z"
    assert observed.labels == {"customer-x", "sla:P1", "sla:escalated-1"}
    assert observed.assignee == manager(fake)  # the policy's name for the user, not the id


@pytest.mark.parametrize(("name", "login"), [("Bob", "bob"), ("Bobby", "bobby"), ("bobby@example.com", "bobby")])
def test_cloud_users_resolve_exactly_never_to_the_first_fuzzy_match(cloud: JiraFake, name: str, login: str) -> None:
    key = cloud.create_issue("SD", "x", created=at("2026-11-02T09:00:00"), by="erin")
    # Jira's user search matches prefixes: "Bob" finds Bob and Bobby
    adapter = tracker(cloud)

    adapter.apply(key, [Change("assign", value=name)])

    assert cloud.issue(key).assignee == login
    assert adapter.directory[f"user:{name}"] == cloud.user_id(login)


def test_an_account_id_resolves_too(cloud: JiraFake) -> None:
    key = cloud.create_issue("SD", "x", created=at("2026-11-02T09:00:00"), by="erin")

    tracker(cloud).apply(key, [Change("assign", value=cloud.user_id("bobby"))])

    assert cloud.issue(key).assignee == "bobby"


def test_data_center_users_resolve_by_username_exactly() -> None:
    fake = build_fake(False)
    try:
        key = fake.create_issue("SD", "x", created=at("2026-11-02T09:00:00"), by="erin")
        adapter = tracker(fake)
        adapter.apply(key, [Change("assign", value="bob")])
        assert fake.issue(key).assignee == "bob"
        with pytest.raises(TrackerError, match="no user 'Alice Agent'"):  # a display name is not a username
            adapter.apply(key, [Change("assign", value="Alice Agent")])
        assert fake.issue(key).assignee == "bob"
        assert [r.arg("username") for r in fake.log if r.path.endswith("/user")] == ["bob", "Alice Agent"]
    finally:
        fake.close()


@pytest.mark.parametrize(("name", "message"), [
    ("Rob", "no user 'Rob'"),
    ("Sam", "2 users are called 'Sam': name the user by e-mail address or accountId"),
])
def test_an_unknown_or_ambiguous_user_writes_nothing(cloud: JiraFake, name: str, message: str) -> None:
    key = cloud.create_issue("SD", "x", created=at("2026-11-02T09:00:00"), by="erin")
    cloud.reset_counts()

    with pytest.raises(TrackerError, match=message):
        tracker(cloud).apply(key, [Change("add_labels", values=("sla:P1",)), Change("assign", value=name)])

    assert cloud.writes == 0 and cloud.issue(key).labels == []


# -- passes ------------------------------------------------------------------------------

BODY = """
calendars:
  always: {timezone: UTC, hours: 24x7}
levels:
  P1: {calendar: always, first_response: 30m, resolution: 8h}
  P3: {calendar: always, first_response: 8h, resolution: 80h}
classify:
  - if: {priority: Highest}
    level: P1
  - level: P3
escalate:
  - when: resolution breached
    assign: MANAGER
    comment: "Resolution SLA breached: escalated."
"""


def policy(fake: JiraFake) -> Policy:
    head = (
        "name: jira-test\ntracker:\n  kind: jira\n"
        f"  url: {fake.url}\n  project: SD\n  api_key_env: {TOKEN_ENV}\n"
        + (f"  user_env: {USER_ENV}\n" if fake.cloud else "")
        + f"  agents: {{groups: [service-desk-team]}}\n  due_field: {DUE}\n  max_attempts: 3\n"
    )
    return parse_policy(head + BODY.replace("MANAGER", manager(fake)), "<jira-test>")


def one_pass(fake: JiraFake, store: Store, now: str, sleeps: Sleeps | None = None) -> Any:
    pol = policy(fake)
    adapter = tracker(fake, sleeps)
    return run_pass(adapter, pol, store, ts(now), apply=True, run_id="t")


def test_a_second_pass_with_nothing_changed_only_searches(fake: JiraFake, tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.sqlite"))
    key = fake.create_issue("SD", "Checkout down", created=at("2026-11-02T08:00:00"), by="erin", priority="Highest")
    fake.now = at("2026-11-02T17:00:00")

    # 17:00: resolution 9h > 8h, breached at 16:00 UTC; the step fires
    first = one_pass(fake, store, "2026-11-02T17:00:00")
    assert first.errors == []
    issue = fake.issue(key)
    assert (issue.duedate, issue.custom[DUE]) == ("2026-11-02", at("2026-11-02T16:00:00"))
    assert issue.labels == ["sla:P1", "sla:breached", "sla:escalated-1"]
    assert issue.assignee == "manager"
    assert [(c.body, c.public) for c in issue.comments] == [("Resolution SLA breached: escalated.", False)]

    fake.reset_counts()
    second = one_pass(fake, store, "2026-11-02T17:00:00")

    assert [o.plan.changes for o in second.outcomes] == [()]
    # the issue sla-sync wrote is read back from the search itself (its changelog and
    # comments are in it: no re-read after the writes, no request of its own)
    assert second.refetched == 1
    assert fake.writes == 0
    # a new client per pass: serverInfo, /myself for the timezone of the JQL, then the
    # search itself; never the field list (the search names its fields by id)
    assert sorted(t for _, t in fake.counts) == sorted([
        "/rest/api/{version}/serverInfo", "/rest/api/{version}/myself",
        "/rest/api/{version}/search/jql" if fake.cloud else "/rest/api/{version}/search"])
    assert searches(fake) == 1
    third = one_pass(fake, store, "2026-11-02T17:00:00")
    assert third.refetched == 0 and fake.writes == 0


def test_a_due_date_a_person_changed_is_kept(fake: JiraFake, tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.sqlite"))
    key = fake.create_issue("SD", "Typo in invoice", created=at("2026-11-02T09:00:00"), by="erin")
    one_pass(fake, store, "2026-11-02T10:00:00")
    assert fake.issue(key).duedate == "2026-11-05"  # P3: 09:00 + 80h = Nov 5, 17:00
    fake.edit(key, by="alice", duedate="2026-12-24")
    fake.reset_counts()

    result = one_pass(fake, store, "2026-11-02T11:00:00")

    assert fake.issue(key).duedate == "2026-12-24"
    assert [k for k, note in result.kept if "due date changed by hand to 2026-12-24" in note] == [key]
    assert fake.writes == 0


def test_the_step_comment_is_posted_once_across_a_failure_between_comment_and_label(fake: JiraFake,
                                                                                    tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.sqlite"))
    key = fake.create_issue("SD", "Checkout down", created=at("2026-11-02T08:00:00"), by="erin", priority="Highest")
    fake.fail_next(Fault(status=503, method="PUT"), times=3)  # the label write fails for good

    first = one_pass(fake, store, "2026-11-02T17:00:00")

    assert len(first.errors) == 1 and f"issue {key}: writing the issue" in first.errors[0]
    assert [c.body for c in fake.issue(key).comments] == ["Resolution SLA breached: escalated."]
    assert "sla:escalated-1" not in fake.issue(key).labels  # so the next pass fires the step again

    second = one_pass(fake, store, "2026-11-02T17:05:00")

    assert second.errors == []
    assert [o.plan.fired for o in second.outcomes] == [(1,)]
    assert [c.body for c in fake.issue(key).comments] == ["Resolution SLA breached: escalated."]
    assert "sla:escalated-1" in fake.issue(key).labels
    assert fake.count("POST", "/comment") == 1


def test_a_lost_answer_to_the_comment_is_not_posted_twice(fake: JiraFake) -> None:
    key = fake.create_issue("SD", "x", created=at("2026-11-02T08:00:00"), by="erin")
    fake.fail_next(Fault(status=502, method="POST", route=r"/comment$", after=True))  # it lands; the answer is lost
    sleeps = Sleeps()

    tracker(fake, sleeps).apply(key, [Change("comment", value="Escalated.", step=2),
                                      Change("add_labels", values=("sla:escalated-2",))])

    assert [c.body for c in fake.issue(key).comments] == ["Escalated."]
    assert fake.count("POST", "/comment") == 1
    assert fake.issue(key).labels == ["sla:escalated-2"]
    assert sleeps == [0.5]



def test_a_forged_step_property_on_the_reporters_comment_does_not_stop_sla_syncs_own(fake: JiraFake,
                                                                                    tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.sqlite"))
    key = fake.create_issue("SD", "Checkout down", created=at("2026-11-02T08:00:00"), by="erin", priority="Highest")
    # the reporter sets sla-sync's comment property on her own comment
    fake.comment(key, "Anyone there?", at=at("2026-11-02T09:00:00"), by="erin",
                 properties=[{"key": "sla-sync.step", "value": {"step": 1}}])

    first = one_pass(fake, store, "2026-11-02T17:00:00")  # resolution breached at 16:00: the step is due
    second = one_pass(fake, store, "2026-11-02T17:05:00")

    assert first.errors == [] and second.errors == []
    ours = [c.body for c in fake.issue(key).comments if c.author == fake.api_user]
    assert ours == ["Resolution SLA breached: escalated."]  # exactly once, over both passes
    assert "sla:escalated-1" in fake.issue(key).labels


def test_an_issue_of_a_neighbouring_project_is_never_read_nor_written(fake: JiraFake, tmp_path: Path) -> None:
    fake.add_project("OPS", "SD")  # named like our key: Jira's JQL takes a project's key before a name
    theirs = fake.create_issue("OPS", "Printer down", created=at("2026-11-02T08:00:00"), by="erin", priority="Highest")
    ours = fake.create_issue("SD", "Checkout down", created=at("2026-11-02T08:00:00"), by="erin", priority="Highest")

    result = one_pass(fake, Store(str(tmp_path / "s.sqlite")), "2026-11-02T17:00:00")

    assert result.errors == [] and [o.key for o in result.outcomes] == [ours]
    assert "sla:escalated-1" in fake.issue(ours).labels
    issue = fake.issue(theirs)
    assert (issue.labels, issue.duedate, issue.assignee, issue.comments, issue.histories) == ([], None, None, [], [])
    assert not [r.path for r in fake.log if theirs in r.path or "OPS" in r.path]
    searched = [r.arg("jql") or "" for r in fake.log if r.arg("jql") is not None]
    assert searched and all(jql.startswith('project = "SD" AND ') for jql in searched), searched

# -- errors and retries ------------------------------------------------------------------


def test_rejected_credentials_are_an_auth_error_without_the_secret(fake: JiraFake) -> None:
    with pytest.raises(AuthError) as err:
        tracker(fake, secret="wrong-token-1234").fetch(None, {})

    message = str(err.value)
    assert message.startswith(f"authentication failed for {fake.url}: check ")
    assert TOKEN_ENV in message
    assert "wrong-token-1234" not in message and err.value.__cause__ is None and err.value.__suppress_context__
    assert fake.count("GET", "/serverInfo") == 1  # not retried


@pytest.mark.parametrize(("url_suffix", "action", "where"), [
    ("/jira", "fetch", "connecting (serverInfo): not found (404)"),
    ("", "apply", "issue SD-99: writing the issue: not found (404): Issue does not exist"),
])
def test_not_found_names_the_tracker_and_what_to_do(fake: JiraFake, url_suffix: str, action: str, where: str) -> None:
    adapter = tracker(fake, url=fake.url + url_suffix)

    with pytest.raises(TrackerError) as err:
        if action == "fetch":
            adapter.fetch(None, {})
        else:
            adapter.apply("SD-99", [Change("due_date", value="2026-11-05")])

    assert str(err.value).startswith(f"Jira {fake.url}{url_suffix}")
    assert where in str(err.value)
    assert str(err.value).endswith("check tracker.url (the Jira base URL) and tracker.project")


def test_a_rate_limit_is_waited_out_as_retry_after_says(fake: JiraFake) -> None:
    fake.create_issue("SD", "x", created=at("2026-11-02T08:00:00"), by="erin")
    fake.fail_next(Fault(status=429, retry_after=7, route=r"/search"), times=2)
    sleeps = Sleeps()

    fetched = tracker(fake, sleeps).fetch(None, {})

    assert len(fetched.issues) == 1
    assert sleeps == [7, 7]
    assert searches(fake) == 3


@pytest.mark.parametrize("fault", [
    Fault(status=503, method="GET"),
    Fault(status=500, method="GET"),
    Fault(kind="reset", method="GET"),
    Fault(kind="delay", seconds=0.6, method="GET"),  # longer than the 0.2 s timeout
], ids=["503", "500", "reset", "timeout"])
def test_transient_failures_are_retried_with_back_off(fake: JiraFake, fault: Fault) -> None:
    fake.create_issue("SD", "x", created=at("2026-11-02T08:00:00"), by="erin")
    fake.fail_next(fault, times=2)
    sleeps = Sleeps()

    fetched = tracker(fake, sleeps, timeout=0.2, max_attempts=3).fetch(None, {})

    assert len(fetched.issues) == 1
    assert sleeps == [0.5, 1.0]
    assert fake.count("GET", "/serverInfo") == 3  # the first request of all failed twice


def test_exhausted_retries_are_a_tracker_error(fake: JiraFake) -> None:
    fake.fail_next(Fault(status=502), times=10)
    sleeps = Sleeps()

    with pytest.raises(TrackerError) as err:
        tracker(fake, sleeps, max_attempts=3).fetch(None, {})

    assert str(err.value) == (f"Jira {fake.url}: connecting (serverInfo): HTTP 502 "
                              "(gave up after 3 attempts); try again later")
    assert sleeps == [0.5, 1.0]
    assert fake.count("GET", "/serverInfo") == 3


def test_a_malformed_answer_is_a_tracker_error(fake: JiraFake) -> None:
    fake.fail_next(Fault(kind="malformed", route=r"/myself"))

    with pytest.raises(TrackerError, match=r"reading the API user .*: the answer was not JSON"):
        tracker(fake).fetch(ts("2026-11-02T08:00:00"), {})


def test_a_bad_request_says_what_jira_refused(fake: JiraFake) -> None:
    key = fake.create_issue("SD", "x", created=at("2026-11-02T08:00:00"), by="erin")

    with pytest.raises(TrackerError) as err:
        tracker(fake).apply(key, [Change("add_labels", values=("two words",))])

    assert "Jira refused it (400): The label 'two words' contains spaces which is invalid." in str(err.value)
    assert "sla-sync check --online" in str(err.value)


def test_cloud_needs_the_account_email(cloud: JiraFake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(USER_ENV)

    with pytest.raises(UserError, match=f"the environment variable {USER_ENV} is empty or unset"):
        tracker(cloud)


# -- online check --------------------------------------------------------------------------


def test_check_finds_nothing_missing_when_all_is_there(fake: JiraFake) -> None:
    names = ["service-desk-team", manager(fake)]

    assert tracker(fake).check(["sla:P1"], names) == []


def test_check_says_what_an_admin_must_add(cloud: JiraFake) -> None:
    adapter = tracker(cloud, project="NOPE", due_field=SEVERITY, groups=("service-desk-team", "tier-3"))

    todo = adapter.check(["sla:P1"], ["service-desk-team", "tier-3", "ghost", "Sam", "Bob"])

    assert todo == [
        "the project 'NOPE' does not exist or the API user cannot browse it: fix tracker.project or grant the user "
        "'Browse projects'",
        f"the field '{SEVERITY}' (Severity) is of type option, not a date and time: point tracker.due_field at a "
        "Date Time Picker custom field",
        "create the group 'tier-3' (tracker.agents.groups) or remove it from the policy",
        "create the user 'ghost' or fix its name in the policy (Jira by e-mail address, accountId or display name), "
        "or remove it from the policy",
        "2 users are called 'Sam': name the user by e-mail address or accountId in the policy",
    ]


def test_check_wants_a_due_field_that_exists(fake: JiraFake) -> None:
    todo = tracker(fake, due_field="SLA deadline").check([], [])

    assert len(todo) == 1 and todo[0].startswith("create a custom field of type Date Time Picker")
