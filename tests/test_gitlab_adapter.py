"""The GitLab adapter through the real python-gitlab, over real HTTP, against the fake.

Every test starts a fresh ``GitLabFake`` on loopback, seeds it as people would
(issues, notes, label and state changes at given instants by given users) and
drives ``sla_sync.adapters.gitlab`` or a whole ``run_pass``; the outcome is read
back from the fake's state.  Retry waits go to an injected ``Sleeps`` list: no
test sleeps for real (the one timeout test waits 0.2 s for the client's timeout).
Times are UTC; expected values are worked out by hand in the comments.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from sla_sync.adapters.gitlab import GitLabTracker, Mapper, create, retry_after
from support import ts

from sla_sync.errors import AuthError, TrackerError, UserError
from sla_sync.model import Change, Event
from sla_sync.policy import Policy, parse_policy
from sla_sync.positions import PolicyError
from sla_sync.schema import GitLabSpec
from sla_sync.state import Store
from sla_sync.sync import PassResult, run_pass
from sla_sync.tracker import AdapterOptions, Cached
from tests.fakes.gitlab_fake import DEVELOPER, GUEST, MAINTAINER, GitLabFake

PROJECT = "platform/incidents"
TOKEN = "glpat-test-token-0042"
ISSUES = "/api/v4/projects/{pid}/issues"
ONE = "/api/v4/projects/{pid}/issues/{iid}"
NOTES = "/api/v4/projects/{pid}/issues/{iid}/notes"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Sleeps(list[float]):
    """An injected sleep that records the waits instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def fake() -> Iterator[GitLabFake]:
    gl = GitLabFake(now=at("2026-11-02T12:00:00"))
    for login in ("sla-sync", "alice", "bob", "carol", "erin", "dave", "incident-manager", "outsider"):
        gl.add_user(login)
    gl.add_group("support", ["bob"])
    gl.add_project(PROJECT, {"sla-sync": MAINTAINER, "alice": DEVELOPER, "bob": DEVELOPER, "carol": DEVELOPER,
                             "incident-manager": DEVELOPER, "erin": GUEST, "dave": GUEST})
    gl.token_for("sla-sync", TOKEN)
    gl.start()
    yield gl
    gl.close()


def make(fake: GitLabFake, *, sleeps: Sleeps | None = None, secret: str = TOKEN,
         users: tuple[str, ...] = ("alice", "carol"),
         groups: tuple[str, ...] = ("support",), **spec: Any) -> GitLabTracker:
    data = {"kind": "gitlab", "url": fake.url, "project": PROJECT, "api_key_env": "GL_TEST_TOKEN",
            "status_labels": "status::", "priority_labels": "priority::", "timeout": 2, **spec}
    options = AdapterOptions(agents_users=users, agents_groups=groups, sleep=sleeps if sleeps is not None else Sleeps())
    return create(GitLabSpec.model_validate(data), secret, options)


def count(fake: GitLabFake, method: str, template: str) -> int:
    return fake.counts[(method, template)]


def people_notes(fake: GitLabFake, iid: int) -> list[dict[str, Any]]:
    return [n for n in fake.issue(PROJECT, iid).notes if not n["system"]]


# -- reading: history → events ------------------------------------------------------------


def test_history_maps_to_comment_status_priority_and_label_events(fake: GitLabFake) -> None:
    iid = fake.create_issue(PROJECT, "Checkout down", author="erin", created_at=at("2026-11-02T08:00:00"),
                            labels=["priority::2", "checkout"])
    fake.add_note(PROJECT, iid, "Still down for us", by="erin", at=at("2026-11-02T08:10:00"))
    fake.add_note(PROJECT, iid, "Looking at the logs", by="bob", at=at("2026-11-02T08:15:00"), internal=True)
    fake.add_note(PROJECT, iid, "We are on it", by="alice", at=at("2026-11-02T08:20:00"))
    fake.add_note(PROJECT, iid, "changed due date to November 3, 2026", by="alice", at=at("2026-11-02T08:25:00"),
                  system=True)
    fake.change_labels(PROJECT, iid, add=["status::waiting"], by="alice", at=at("2026-11-02T08:30:00"))
    fake.add_note(PROJECT, iid, "SLA: escalated", by="sla-sync", at=at("2026-11-02T08:40:00"))
    fake.change_labels(PROJECT, iid, add=["status::in-progress"], by="alice", at=at("2026-11-02T09:00:00"))
    fake.change_labels(PROJECT, iid, add=["priority::1"], by="bob", at=at("2026-11-02T09:30:00"))
    fake.set_state(PROJECT, iid, "close", by="alice", at=at("2026-11-02T10:00:00"))
    fake.set_state(PROJECT, iid, "reopen", by="erin", at=at("2026-11-02T11:00:00"))

    (tracked,) = make(fake).fetch(None, {}).issues
    issue = tracked.issue
    events = issue.events

    assert (issue.key, issue.status, issue.priority, issue.type) == (str(iid), "in-progress", "1", "issue")
    assert issue.labels == ("checkout", "priority::1", "status::in-progress")
    assert issue.created_at == ts("2026-11-02T08:00:00Z")
    assert tracked.version == "2026-11-02T11:00:00.000Z"  # updated_at, as GitLab writes it
    assert [(e.at, e.public, e.by_agent, e.author) for e in events if e.kind == "comment"] == [
        (ts("2026-11-02T08:10:00Z"), True, False, "erin"),  # the customer
        (ts("2026-11-02T08:15:00Z"), False, True, "bob"),  # internal; bob is an agent through the group
        (ts("2026-11-02T08:20:00Z"), True, True, "alice"),
        (ts("2026-11-02T08:40:00Z"), True, False, "sla-sync"),  # sla-sync's own note never counts
    ]
    assert [(e.at, e.from_, e.to) for e in events if e.kind == "status"] == [
        (ts("2026-11-02T08:30:00Z"), "opened", "waiting"),
        (ts("2026-11-02T09:00:00Z"), "waiting", "in-progress"),  # the scoped label replaced waiting
        (ts("2026-11-02T10:00:00Z"), "in-progress", "closed"),
        (ts("2026-11-02T11:00:00Z"), "closed", "in-progress"),  # reopened, the label still on
    ]
    assert [(e.at, e.from_, e.to) for e in events if e.kind == "field" and e.field == "priority"] == [
        (ts("2026-11-02T08:00:00Z"), None, "2"),
        (ts("2026-11-02T09:30:00Z"), "2", "1"),
    ]
    assert [(e.at, e.field, e.from_, e.to, e.author) for e in events
            if e.kind == "field" and e.field != "priority"] == [
        (ts("2026-11-02T08:25:00Z"), "due_date", None, "2026-11-03", "alice"),  # from the system note
    ]
    assert [(e.at, e.added, e.removed, e.author) for e in events if e.kind == "label"] == [
        (ts("2026-11-02T08:00:00Z"), ("priority::2", "checkout"), (), "erin"),
        (ts("2026-11-02T08:30:00Z"), ("status::waiting",), (), "alice"),
        (ts("2026-11-02T09:00:00Z"), ("status::in-progress",), ("status::waiting",), "alice"),
        (ts("2026-11-02T09:30:00Z"), ("priority::1",), ("priority::2",), "bob"),
    ]


def test_labels_set_at_creation_without_events_give_the_first_status(fake: GitLabFake) -> None:
    iid = fake.create_issue(PROJECT, "Slow", author="erin", created_at=at("2026-11-02T08:00:00"),
                            labels=["status::waiting"], record_labels=False)
    fake.change_labels(PROJECT, iid, add=["status::in-progress"], by="alice", at=at("2026-11-02T09:00:00"))
    (tracked,) = make(fake).fetch(None, {}).issues
    assert [(e.at, e.from_, e.to) for e in tracked.issue.events if e.kind == "status"] == [
        (ts("2026-11-02T09:00:00Z"), "waiting", "in-progress"),
    ]


@pytest.mark.parametrize(
    ("labels", "added", "status"),
    [
        (["priority::1"], [], "opened"),  # no status label
        (["status::new", "status::waiting"], ["status::new", "status::waiting"], "waiting"),  # the last added wins
        (["status::new", "status::waiting"], ["status::waiting", "status::new"], "new"),
    ],
)
def test_status_is_the_scoped_label_added_last(labels: list[str], added: list[str], status: str) -> None:
    mapper = Mapper("status::", "priority::", PROJECT)
    events = tuple(Event(i, "label", added=(name,)) for i, name in enumerate(added))
    row = {"iid": 1, "title": "t", "created_at": "2026-11-02T08:00:00.000Z", "updated_at": "2026-11-02T09:00:00.000Z",
           "state": "opened", "labels": labels}
    assert mapper.tracked(row, events).issue.status == status
    assert mapper.tracked({**row, "state": "closed"}, events).issue.status == "closed"


def test_without_agents_anyone_but_the_author_is_an_agent(fake: GitLabFake) -> None:
    iid = fake.create_issue(PROJECT, "Bug", author="erin", created_at=at("2026-11-02T08:00:00"))
    fake.add_note(PROJECT, iid, "any news?", by="erin", at=at("2026-11-02T08:10:00"))
    fake.add_note(PROJECT, iid, "same here", by="dave", at=at("2026-11-02T08:20:00"))
    fake.add_note(PROJECT, iid, "SLA note", by="sla-sync", at=at("2026-11-02T08:30:00"))
    (tracked,) = make(fake, users=(), groups=()).fetch(None, {}).issues
    assert [(e.author, e.by_agent) for e in tracked.issue.events if e.kind == "comment"] == [
        ("erin", False), ("dave", True), ("sla-sync", False),
    ]


def test_the_fetch_reads_open_and_recently_updated_issues_once_and_history_only_when_changed(fake: GitLabFake) -> None:
    a = fake.create_issue(PROJECT, "open, old", author="erin", created_at=at("2026-11-02T06:00:00"))
    b = fake.create_issue(PROJECT, "closed inside the window", author="erin", created_at=at("2026-11-02T07:00:00"))
    c = fake.create_issue(PROJECT, "closed long ago", author="erin", created_at=at("2026-11-02T05:00:00"))
    fake.set_state(PROJECT, c, "close", by="alice", at=at("2026-11-02T05:30:00"))
    fake.set_state(PROJECT, b, "close", by="alice", at=at("2026-11-02T08:58:00"))
    tracker = make(fake)
    first = tracker.fetch(None, {})
    assert [t.issue.key for t in first.issues] == [str(a)]  # no cursor: the open issues only
    cached = {t.issue.key: Cached(t.version, t.issue) for t in first.issues}
    fake.reset_counts()

    since = ts("2026-11-02T08:57:00Z")  # a cursor of 09:02 minus the 5m overlap (the sync takes it off)
    second = make(fake).fetch(since, cached)

    assert sorted(t.issue.key for t in second.issues) == sorted([str(a), str(b)])
    closed = next(t for t in second.issues if t.issue.key == str(b))
    assert (closed.open, closed.issue.status) == (False, "closed")
    assert second.refetched == 1  # a's version is unchanged: its history comes from the cache
    assert count(fake, "GET", ONE + "/resource_label_events") == 1
    assert count(fake, "GET", ISSUES) == 2  # the open list and the updated list
    assert second.cursor == ts("2026-11-02T08:58:00Z")  # the latest update seen (the sync keeps a later cursor)


@pytest.mark.parametrize("change", ["comment", "label", "assignee"])
def test_a_change_gitlab_leaves_undated_is_read_by_the_next_fetch(fake: GitLabFake, change: str) -> None:
    """GitLab moves ``updated_at`` for a note, a label or an assignee change only
    through ``Issue#touch``, which it throttles to once a minute: such a change
    within a minute of the last update keeps the old version.  The row's note
    count, labels and assignees still show it, and the history is read again."""
    created = at("2026-11-02T11:59:30")
    iid = fake.create_issue(PROJECT, "Down", author="erin", created_at=created, labels=["priority::1"])
    tracker = make(fake)
    (first,) = tracker.fetch(None, {}).issues
    when = at("2026-11-02T12:00:00")  # 30 s after the last update
    if change == "comment":
        fake.add_note(PROJECT, iid, "Looking into it.", by="alice", at=when)
    elif change == "label":
        fake.change_labels(PROJECT, iid, add=["status::waiting"], by="alice", at=when)
    else:
        fake.set_assignees(PROJECT, iid, ["alice"], by="alice", at=when)
    assert fake.issue(PROJECT, iid).updated_at == created  # as on GitLab: no new version
    fake.reset_counts()
    (second,) = tracker.fetch(None, {first.issue.key: Cached(first.version, first.issue)}).issues
    assert count(fake, "GET", ONE + "/resource_label_events") == 1  # read again
    (whole,) = make(fake).fetch(None, {}).issues
    assert second.issue == whole.issue and second.issue != first.issue


def test_long_lists_are_read_page_by_page(fake: GitLabFake) -> None:
    for i in range(130):
        fake.create_issue(PROJECT, f"issue {i}", author="erin", created_at=at("2026-11-01T00:00:00"),
                          record_labels=False)
    fetched = make(fake).fetch(None, {})
    assert len({t.issue.key for t in fetched.issues}) == 130
    assert count(fake, "GET", ISSUES) == 2  # 100 + 30


# -- writing ---------------------------------------------------------------------------------


def test_each_kind_of_write_back_lands(fake: GitLabFake) -> None:
    iid = fake.create_issue(PROJECT, "Checkout down", author="erin", created_at=at("2026-11-02T08:00:00"),
                            labels=["priority::1", "sla:at-risk"])
    tracker = make(fake)
    fake.reset_counts()
    tracker.apply(str(iid), [
        Change("due_date", value="2026-11-02"),
        Change("add_labels", values=("sla:P1", "sla:breached", "sla:escalated-1")),
        Change("remove_labels", values=("sla:at-risk",)),
        Change("watchers", values=("carol",), step=1),
        Change("assign", value="incident-manager", step=1),
        Change("comment", value="Resolution breached: escalated.", private=True, step=1),
    ])
    issue = fake.issue(PROJECT, iid)
    assert issue.due_date == "2026-11-02"
    assert sorted(issue.labels) == ["priority::1", "sla:P1", "sla:breached", "sla:escalated-1"]
    assert [fake.users[i].username for i in issue.assignee_ids] == ["incident-manager"]
    assert [(n["body"], n["internal"], n["author"]["username"]) for n in people_notes(fake, iid)] == [
        ("Resolution breached: escalated.\n\n<!-- sla-sync: sla:escalated-1 -->", True, "sla-sync"),
        ("cc @carol\n\n<!-- sla-sync: sla:escalated-1 cc -->", True, "sla-sync"),
    ]
    assert issue.mentioned == {"carol"}
    assert count(fake, "PUT", ONE) == 1  # due date, labels and assignee in one request
    assert count(fake, "POST", NOTES) == 2
    assert [e["user"]["username"] for e in issue.label_events][-4:] == ["sla-sync"] * 4


def test_a_public_comment_is_not_internal(fake: GitLabFake) -> None:
    iid = fake.create_issue(PROJECT, "Bug", author="erin", created_at=at("2026-11-02T08:00:00"))
    make(fake).apply(str(iid), [Change("comment", value="We are on it.", private=False, step=2),
                                Change("add_labels", values=("sla:escalated-2",))])
    assert [(n["body"].split("\n")[0], n["internal"]) for n in people_notes(fake, iid)] == [("We are on it.", False)]


def test_labels_are_added_and_removed_without_dropping_a_persons_labels(fake: GitLabFake) -> None:
    iid = fake.create_issue(PROJECT, "Bug", author="erin", created_at=at("2026-11-02T08:00:00"),
                            labels=["customer::acme", "priority::1", "sla:P2", "sla:at-risk"])
    tracker = make(fake)
    (tracked,) = tracker.fetch(None, {}).issues
    # a person adds a label after sla-sync read the issue and before it writes
    fake.change_labels(PROJECT, iid, add=["vip"], by="alice", at=at("2026-11-02T11:00:00"))
    tracker.apply(str(iid), [Change("add_labels", values=("sla:P1",)), Change("remove_labels", values=("sla:P2",))])
    assert sorted(fake.issue(PROJECT, iid).labels) == ["customer::acme", "priority::1", "sla:P1", "sla:at-risk", "vip"]
    assert "vip" not in tracked.observed.labels


def test_refresh_returns_the_written_version(fake: GitLabFake) -> None:
    iid = fake.create_issue(PROJECT, "Bug", author="erin", created_at=at("2026-11-02T08:00:00"))
    tracker = make(fake)
    (before,) = tracker.fetch(None, {}).issues
    tracker.apply(str(iid), [Change("due_date", value="2026-11-05")])
    (after,) = tracker.refresh([str(iid)])
    assert after.version != before.version
    assert after.version == "2026-11-02T12:00:00.000Z"  # written at the fake's clock
    assert after.observed.due_date == "2026-11-05"


HISTORY = [ISSUES + "/{iid}/" + kind for kind in ("notes", "resource_label_events", "resource_state_events")]
WRITES = [
    Change("due_date", value="2026-11-03"),
    Change("add_labels", values=("sla:P1", "sla:escalated-1")),
    Change("remove_labels", values=("sla:P2",)),
    Change("assign", value="incident-manager", step=1),
    Change("comment", value="Escalated to the incident manager.", private=True, step=1),
    Change("watchers", values=("carol",), step=1),
]


def seeded(fake: GitLabFake) -> int:
    """An issue with some history: a person's labels, a due date, an assignee, comments."""
    iid = fake.create_issue(PROJECT, "Checkout down", author="erin", created_at=at("2026-11-02T08:00:00"),
                            labels=["priority::1", "sla:P2"])
    fake.add_note(PROJECT, iid, "It fails for every customer.", by="erin", at=at("2026-11-02T08:05:00"))
    fake.set_assignees(PROJECT, iid, ["alice"], by="alice", at=at("2026-11-02T08:10:00"))
    fake.set_due_date(PROJECT, iid, "2026-11-04", by="alice", at=at("2026-11-02T08:10:00"))
    fake.add_note(PROJECT, iid, "Looking.", by="alice", at=at("2026-11-02T08:15:00"), internal=True)
    return iid


def test_refresh_builds_a_written_issue_from_its_writes_as_a_whole_read_does(fake: GitLabFake) -> None:
    """A written issue whose row shows only sla-sync's writes: its history comes from
    the copy and the writes' answers (no history request), and is the whole read's."""
    iid = seeded(fake)
    tracker = make(fake)
    (before,) = tracker.fetch(None, {}).issues
    tracker.apply(str(iid), WRITES)
    fake.reset_counts()
    (built,) = tracker.refresh([str(iid)], {str(iid): before})
    assert [count(fake, "GET", path) for path in HISTORY] == [0, 0, 0]
    assert count(fake, "GET", ISSUES) == 1
    (whole,) = make(fake).refresh([str(iid)])
    assert (built.version, built.issue, built.observed) == (whole.version, whole.issue, whole.observed)
    ours = [(e.kind, e.field) for e in built.issue.events if e.by_self]
    assert sorted(ours, key=str) == sorted([("label", None), ("field", "due_date"), ("field", "assignee"),
                                            ("comment", None), ("comment", None)], key=str)


def test_refresh_reads_the_history_when_gitlab_did_not_date_the_write(fake: GitLabFake) -> None:
    """A label-only write within a minute of the issue's last update: GitLab's
    throttled touch leaves ``updated_at`` as it was, so the ``PUT``'s answer does
    not tell when the labels changed, and the history is read whole."""
    iid = fake.create_issue(PROJECT, "Down", author="erin", created_at=at("2026-11-02T08:00:00"),
                            labels=["priority::1"])
    fake.add_note(PROJECT, iid, "Still down.", by="erin", at=at("2026-11-02T11:59:30"))
    tracker = make(fake)
    (before,) = tracker.fetch(None, {}).issues
    tracker.apply(str(iid), [Change("add_labels", values=("sla:at-risk",))])  # at 12:00:00
    assert fake.issue(PROJECT, iid).updated_at == at("2026-11-02T11:59:30")
    fake.reset_counts()
    (built,) = tracker.refresh([str(iid)], {str(iid): before})
    assert [count(fake, "GET", path) for path in HISTORY] == [1, 1, 1]
    (whole,) = make(fake).refresh([str(iid)])
    assert built.issue == whole.issue
    assert [e.at for e in built.issue.events if e.kind == "label" and e.by_self] == [ts("2026-11-02T12:00:00Z")]


@pytest.mark.parametrize("case", ["a person's comment", "a lost answer", "an answer without its time",
                                  "no copy", "a status label"])
def test_refresh_reads_the_history_whole_when_the_row_or_an_answer_says_less(
        fake: GitLabFake, case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    iid = seeded(fake)
    tracker = make(fake)
    (before,) = tracker.fetch(None, {}).issues
    writes = WRITES
    if case == "a lost answer":
        fake.fail(502, method="POST", after=True)  # the note lands, its answer is lost: found by a read
    if case == "a status label":
        writes = [*WRITES, Change("add_labels", values=("status::waiting",))]
    if case == "an answer without its time":  # the PUT's answer (and only it) lacks updated_at
        original = fake._issue_json
        monkeypatch.setattr(fake, "_issue_json", lambda proj, issue: {
            k: v for k, v in original(proj, issue).items() if k != "updated_at"})
    tracker.apply(str(iid), writes)
    monkeypatch.undo()
    if case == "a person's comment":
        fake.add_note(PROJECT, iid, "Any news?", by="erin", at=at("2026-11-02T12:00:00"))
    fake.reset_counts()
    (built,) = tracker.refresh([str(iid)], {} if case == "no copy" else {str(iid): before})
    assert [count(fake, "GET", path) for path in HISTORY] == [1, 1, 1]
    (whole,) = make(fake).refresh([str(iid)])
    assert (built.version, built.issue) == (whole.version, whole.issue)


def test_an_unknown_assignee_fails_before_anything_is_written(fake: GitLabFake) -> None:
    iid = fake.create_issue(PROJECT, "Bug", author="erin", created_at=at("2026-11-02T08:00:00"))
    fake.reset_counts()
    with pytest.raises(TrackerError) as err:
        make(fake).apply(str(iid), [Change("assign", value="l2-team", step=1),
                                    Change("comment", value="escalated", step=1)])
    assert "no user with the username 'l2-team'" in str(err.value)
    assert fake.writes == 0


def test_an_assignee_gitlab_drops_is_reported(fake: GitLabFake) -> None:
    iid = fake.create_issue(PROJECT, "Bug", author="erin", created_at=at("2026-11-02T08:00:00"))
    with pytest.raises(TrackerError) as err:
        make(fake).apply(str(iid), [Change("assign", value="outsider")])  # not a member of the project
    assert "did not assign" in str(err.value)
    assert fake.issue(PROJECT, iid).assignee_ids == []


def test_labels_gitlab_cannot_create_are_reported(fake: GitLabFake) -> None:
    fake.add_user("weak-bot")
    fake.project(PROJECT).members[fake.user("weak-bot").id] = GUEST
    iid = fake.create_issue(PROJECT, "Bug", author="erin", created_at=at("2026-11-02T08:00:00"))
    with pytest.raises(TrackerError) as err:
        make(fake, secret=fake.token_for("weak-bot")).apply(str(iid), [Change("add_labels", values=("sla:P9",))])
    assert "did not add the labels sla:P9" in str(err.value) and "Reporter" in str(err.value)


def test_a_due_field_is_a_check_error_at_its_line() -> None:
    text = ("name: x\ntracker:\n  kind: gitlab\n  url: https://gitlab.example.com\n  project: a/b\n"
            "  api_key_env: X\n  due_field: SLA due\n"
            "calendars: {always: {timezone: UTC, hours: 24x7}}\n"
            "levels: {P1: {calendar: always, resolution: 8h}}\nclassify: [{level: P1}]\n")
    with pytest.raises(PolicyError) as err:
        parse_policy(text, "gl.yaml")
    assert [str(p) for p in err.value.problems] == [
        "gl.yaml:7:3: tracker.due_field: a gitlab tracker has no 'due_field' setting "
        "(only redmine and jira have it): remove it"
    ]


def test_settings_of_another_kind_are_refused_by_the_adapter() -> None:
    other = parse_policy("name: x\ntracker: {kind: redmine, url: 'https://r.example.com', project: p, api_key_env: X}\n"
                         "calendars: {always: {timezone: UTC, hours: 24x7}}\n"
                         "levels: {P1: {calendar: always, resolution: 8h}}\nclassify: [{level: P1}]\n").tracker
    assert other is not None
    with pytest.raises(UserError, match="not GitLabSpec settings"):
        create(other, "secret", AdapterOptions())


# -- whole passes -------------------------------------------------------------------------------

POLICY = """
name: gitlab-adapter-test
tracker:
  kind: gitlab
  url: {url}
  project: platform/incidents
  api_key_env: GL_TEST_TOKEN
  agents: {{users: [alice, bob, carol]}}
  status_labels: "status::"
  priority_labels: "priority::"
  timeout: 2
  max_attempts: 3
calendars:
  always: {{timezone: UTC, hours: 24x7}}
levels:
  P1: {{calendar: always, first_response: 30m, resolution: 8h}}
  P3: {{calendar: always, first_response: 8h, resolution: 80h}}
classify:
  - if: {{priority: "1"}}
    level: P1
  - level: P3
clock:
  pause_statuses: [waiting]
  resolved_statuses: [closed]
escalate:
  - when: resolution breached
    assign: incident-manager
    comment: "Resolution breached: escalated."
"""


def policy_for(fake: GitLabFake) -> Policy:
    return parse_policy(POLICY.format(url=fake.url), "<gitlab-test>")


def pass_tracker(policy: Policy) -> GitLabTracker:
    spec = policy.spec.tracker
    assert spec is not None and spec.agents is not None
    return create(spec, TOKEN, AdapterOptions(agents_users=spec.agents.users, sleep=Sleeps()))


def one_pass(fake: GitLabFake, store: Store, now: str, tracker: GitLabTracker | None = None) -> PassResult:
    policy = policy_for(fake)
    return run_pass(tracker or pass_tracker(policy), policy, store, ts(now), apply=True, run_id="t")


def test_a_second_pass_with_nothing_changed_reads_only_the_lists(fake: GitLabFake, tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.sqlite"))
    p1 = fake.create_issue(PROJECT, "Checkout down", author="erin", created_at=at("2026-11-02T08:00:00"),
                           labels=["priority::1"])
    p3 = fake.create_issue(PROJECT, "Typo", author="erin", created_at=at("2026-11-02T09:00:00"))
    fake.now = at("2026-11-02T17:00:00")
    first = one_pass(fake, store, "2026-11-02T17:00:00Z")
    assert first.errors == []
    # P1: 9h > 8h, breached at 16:00; P3: 80h after 09:00 is Thursday 17:00
    assert (fake.issue(PROJECT, p1).due_date, fake.issue(PROJECT, p3).due_date) == ("2026-11-02", "2026-11-05")
    assert sorted(fake.issue(PROJECT, p1).labels) == ["priority::1", "sla:P1", "sla:breached", "sla:escalated-1"]
    assert sorted(fake.issue(PROJECT, p3).labels) == ["sla:P3", "sla:at-risk"]  # first response: 8h of 8h
    assert fake.writes > 0

    fake.reset_counts()
    second = one_pass(fake, store, "2026-11-02T17:00:00Z")
    assert [o.plan.changes for o in second.outcomes if o.plan.changes] == []
    assert dict(fake.counts) == {("GET", ISSUES): 1}  # a delta pass: the updated list, nothing else
    assert fake.writes == 0


def test_a_due_date_a_person_changed_is_kept(fake: GitLabFake, tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.sqlite"))
    iid = fake.create_issue(PROJECT, "Typo", author="erin", created_at=at("2026-11-02T09:00:00"))
    one_pass(fake, store, "2026-11-02T10:00:00Z")
    assert fake.issue(PROJECT, iid).due_date == "2026-11-05"
    fake.set_due_date(PROJECT, iid, "2026-12-24", by="alice", at=at("2026-11-02T10:30:00"))
    fake.reset_counts()
    result = one_pass(fake, store, "2026-11-02T11:00:00Z")
    assert fake.issue(PROJECT, iid).due_date == "2026-12-24"
    assert result.kept == [(str(iid), "due date changed by hand to 2026-12-24 (sla-sync wrote 2026-11-05): kept")]
    assert fake.writes == 0


# -- errors and retries ------------------------------------------------------------------------


def test_a_wrong_token_is_an_auth_error_without_the_secret(fake: GitLabFake) -> None:
    fake.create_issue(PROJECT, "Bug", author="erin", created_at=at("2026-11-02T08:00:00"))
    with pytest.raises(AuthError) as err:
        make(fake, secret="glpat-not-the-right-one").fetch(None, {})
    assert str(err.value).startswith(f"authentication failed for {fake.url}")
    assert "GL_TEST_TOKEN" in str(err.value)
    assert "glpat-not-the-right-one" not in str(err.value)


def test_a_missing_project_names_the_tracker_and_what_to_check(fake: GitLabFake) -> None:
    with pytest.raises(TrackerError) as err:
        make(fake, project="platform/nope").fetch(None, {})
    assert str(err.value) == (
        f"GitLab {fake.url}, project platform/nope: listing open issues: not found (404); check tracker.url and "
        "tracker.project (the project's path, like group/project, or its numeric id) and that the token's user "
        "is a member of the project"
    )


def test_rate_limits_are_waited_out_as_told_and_python_gitlab_never_sleeps(fake: GitLabFake,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    fake.create_issue(PROJECT, "Bug", author="erin", created_at=at("2026-11-02T08:00:00"))

    def no_real_sleep(seconds: float) -> None:
        raise AssertionError(f"slept for real: {seconds}")

    monkeypatch.setattr(time, "sleep", no_real_sleep)
    fake.fail(429, times=2, retry_after=7, method="GET")
    sleeps = Sleeps()
    fetched = make(fake, sleeps=sleeps).fetch(None, {})
    assert sleeps == [7, 7]
    assert len(fetched.issues) == 1
    assert count(fake, "GET", ISSUES) == 3


def test_a_long_retry_after_is_capped_at_max_wait(fake: GitLabFake) -> None:
    fake.fail(429, retry_after=3600, method="GET")
    sleeps = Sleeps()
    make(fake, sleeps=sleeps).fetch(None, {})
    assert sleeps == [60.0]  # AdapterOptions.max_wait


def test_server_errors_are_retried_with_back_off(fake: GitLabFake) -> None:
    fake.create_issue(PROJECT, "Bug", author="erin", created_at=at("2026-11-02T08:00:00"))
    fake.fail(502, times=3, method="GET")
    sleeps = Sleeps()
    assert len(make(fake, sleeps=sleeps).fetch(None, {}).issues) == 1
    assert sleeps == [0.5, 1.0, 2.0]


def test_exhausted_retries_are_a_tracker_error(fake: GitLabFake) -> None:
    fake.fail(503, times=10, method="GET")
    sleeps = Sleeps()
    with pytest.raises(TrackerError) as err:
        make(fake, sleeps=sleeps, max_attempts=3).fetch(None, {})
    assert str(err.value).endswith("HTTP 503 from " + fake.url + "/api/v4/projects/platform%2Fincidents/issues"
                                   " (gave up after 3 attempts); try again later")
    assert sleeps == [0.5, 1.0]
    assert count(fake, "GET", ISSUES) == 3


def test_a_timeout_and_a_reset_connection_are_retried(fake: GitLabFake) -> None:
    fake.create_issue(PROJECT, "Bug", author="erin", created_at=at("2026-11-02T08:00:00"))
    fake.stall(1.0, method="GET")  # the client gives up after 0.2 s
    fake.reset_connection(method="GET")
    sleeps = Sleeps()
    assert len(make(fake, sleeps=sleeps, timeout=0.2).fetch(None, {}).issues) == 1
    assert sleeps == [0.5, 1.0]


def test_a_malformed_answer_is_a_tracker_error(fake: GitLabFake) -> None:
    fake.malformed(method="GET")
    with pytest.raises(TrackerError) as err:
        make(fake).fetch(None, {})
    assert "the answer was not JSON; is tracker.url a GitLab?" in str(err.value)


def test_a_bad_value_is_gitlabs_own_message(fake: GitLabFake) -> None:
    iid = fake.create_issue(PROJECT, "Bug", author="erin", created_at=at("2026-11-02T08:00:00"))
    with pytest.raises(TrackerError) as err:
        make(fake).apply(str(iid), [Change("due_date", value="2026-13-45")])
    assert str(err.value).endswith(f"issue {iid}: writing the issue: GitLab refused it (400): due_date is invalid")


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": "Mon, 02 Nov 2026 12:00:30 GMT", "Date": "Mon, 02 Nov 2026 12:00:00 GMT"}, 30.0),
        ({"RateLimit-Reset": str(ts("2026-11-02T12:01:00Z")), "Date": "Mon, 02 Nov 2026 12:00:00 GMT"}, 60.0),
        ({"Retry-After": "-5"}, 0.0),
        ({}, None),
    ],
)
def test_the_wait_a_response_asks_for(headers: dict[str, str], wait: float | None) -> None:
    response = requests.Response()
    response.headers.update(headers)
    assert retry_after(response) == wait


# -- exactly-once notes ------------------------------------------------------------------------

STEP = [
    Change("add_labels", values=("sla:P1", "sla:breached", "sla:escalated-1")),
    Change("assign", value="incident-manager", step=1),
    Change("comment", value="Resolution breached: escalated.", private=True, step=1),
]


def test_a_lost_answer_to_the_note_is_checked_not_reposted(fake: GitLabFake) -> None:
    iid = fake.create_issue(PROJECT, "Down", author="erin", created_at=at("2026-11-02T08:00:00"))
    fake.fail(502, method="POST", after=True)  # the note lands, its answer is lost
    sleeps = Sleeps()
    make(fake, sleeps=sleeps).apply(str(iid), STEP)
    assert len(people_notes(fake, iid)) == 1
    assert count(fake, "POST", NOTES) == 1
    assert "sla:escalated-1" in fake.issue(PROJECT, iid).labels
    assert sleeps == [0.5]


def test_a_note_that_did_not_land_is_posted_again(fake: GitLabFake) -> None:
    iid = fake.create_issue(PROJECT, "Down", author="erin", created_at=at("2026-11-02T08:00:00"))
    fake.reset_connection(method="POST")  # refused before GitLab wrote it
    make(fake).apply(str(iid), STEP)
    assert len(people_notes(fake, iid)) == 1
    assert count(fake, "POST", NOTES) == 2


def test_a_step_whose_note_is_already_there_is_left_out_of_a_combined_note(fake: GitLabFake) -> None:
    iid = fake.create_issue(PROJECT, "Down", author="erin", created_at=at("2026-11-02T08:00:00"))
    # an earlier pass wrote step 1's note and died before its marker label
    fake.add_note(PROJECT, iid, "Paging the lead.\n\n<!-- sla-sync: sla:escalated-1 -->", by="sla-sync",
                  at=at("2026-11-02T09:00:00"), internal=True)
    make(fake).apply(str(iid), [
        Change("add_labels", values=("sla:escalated-1", "sla:escalated-2")),
        Change("comment", value="Paging the lead.", step=1),
        Change("comment", value="Escalated to the manager.", step=2),
    ])
    assert [n["body"] for n in people_notes(fake, iid)] == [
        "Paging the lead.\n\n<!-- sla-sync: sla:escalated-1 -->",
        "Escalated to the manager.\n\n<!-- sla-sync: sla:escalated-2 -->",
    ]
    assert {"sla:escalated-1", "sla:escalated-2"} <= set(fake.issue(PROJECT, iid).labels)


def test_when_the_notes_cannot_be_read_back_the_note_is_not_risked_twice(fake: GitLabFake,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    iid = fake.create_issue(PROJECT, "Down", author="erin", created_at=at("2026-11-02T08:00:00"))
    tracker = make(fake)
    real, reads = tracker._posted, []

    def posted(number: int) -> set[str]:
        reads.append(number)
        if len(reads) == 2:  # the read-back after the lost answer: GitLab fails every attempt
            fake.fail(503, times=5, route=NOTES, method="GET")
        return real(number)

    monkeypatch.setattr(tracker, "_posted", posted)
    fake.fail(502, method="POST", after=True)
    with pytest.raises(TrackerError) as err:
        tracker.apply(str(iid), STEP)
    assert "could not be read back" in str(err.value)
    assert count(fake, "POST", NOTES) == 1
    assert "sla:escalated-1" not in fake.issue(PROJECT, iid).labels
    fake.fail(0, times=0)
    tracker.apply(str(iid), STEP)  # the next pass finds the note and writes only the labels
    assert len(people_notes(fake, iid)) == 1
    assert "sla:escalated-1" in fake.issue(PROJECT, iid).labels


def test_a_failure_between_note_and_labels_never_duplicates_the_note(fake: GitLabFake, tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.sqlite"))
    iid = fake.create_issue(PROJECT, "Down", author="erin", created_at=at("2026-11-02T08:00:00"),
                            labels=["priority::1"])
    fake.fail(500, times=10, method="PUT")  # every attempt at the labels fails (max_attempts: 3)
    first = one_pass(fake, store, "2026-11-02T17:00:00Z")
    assert len(first.errors) == 1 and "writing the issue" in first.errors[0]
    assert count(fake, "PUT", ONE) == 3
    assert len(people_notes(fake, iid)) == 1
    assert "sla:escalated-1" not in fake.issue(PROJECT, iid).labels
    fake.fail(0, times=0)

    fake.reset_counts()
    second = one_pass(fake, store, "2026-11-02T17:05:00Z")
    assert second.errors == []
    assert [n["body"].split("\n")[0] for n in people_notes(fake, iid)] == ["Resolution breached: escalated."]
    assert "sla:escalated-1" in fake.issue(PROJECT, iid).labels
    assert count(fake, "POST", NOTES) == 0


def test_a_step_note_on_an_issue_read_this_pass_reads_its_notes_once(fake: GitLabFake, tmp_path: Path) -> None:
    """The notes a pass read for an issue's history tell which step markers are on
    it: the check before a step's note reads them again only for an issue whose
    history the pass did not read (tests/test_delta.py: the issues due by time)."""
    store = Store(str(tmp_path / "s.sqlite"))
    iid = fake.create_issue(PROJECT, "Down", author="erin", created_at=at("2026-11-02T08:00:00"),
                            labels=["priority::1"])
    first = one_pass(fake, store, "2026-11-02T17:00:00Z")
    assert first.errors == []
    assert [n["body"].split("\n")[0] for n in people_notes(fake, iid)] == ["Resolution breached: escalated."]
    assert count(fake, "GET", NOTES) == 1


def test_a_pass_killed_between_note_and_labels_never_duplicates_the_note(fake: GitLabFake, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(str(tmp_path / "s.sqlite"))
    iid = fake.create_issue(PROJECT, "Down", author="erin", created_at=at("2026-11-02T08:00:00"),
                            labels=["priority::1"])
    doomed = pass_tracker(policy_for(fake))

    def killed(*args: Any) -> None:
        raise KeyboardInterrupt  # the process dies after the note, before the labels

    monkeypatch.setattr(doomed, "_put", killed)
    with pytest.raises(KeyboardInterrupt):
        one_pass(fake, store, "2026-11-02T17:00:00Z", tracker=doomed)
    assert len(people_notes(fake, iid)) == 1

    one_pass(fake, Store(str(tmp_path / "fresh.sqlite")), "2026-11-02T17:10:00Z")  # even with a lost store
    assert len(people_notes(fake, iid)) == 1
    assert {"sla:escalated-1", "sla:breached"} <= set(fake.issue(PROJECT, iid).labels)
    assert [fake.users[i].username for i in fake.issue(PROJECT, iid).assignee_ids] == ["incident-manager"]



def test_a_forged_step_marker_in_a_guests_note_does_not_stop_sla_syncs_own_note(fake: GitLabFake,
                                                                               tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.sqlite"))
    iid = fake.create_issue(PROJECT, "Down", author="erin", created_at=at("2026-11-02T08:00:00"),
                            labels=["priority::1"])
    # a Guest copies sla-sync's hidden marker into a public note: the note is hers, not sla-sync's
    fake.add_note(PROJECT, iid, "Still down!\n\n<!-- sla-sync: sla:escalated-1 -->", by="erin",
                  at=at("2026-11-02T09:00:00"))

    first = one_pass(fake, store, "2026-11-02T17:00:00Z")  # resolution breached at 16:00: the step is due
    second = one_pass(fake, store, "2026-11-02T17:05:00Z")

    assert first.errors == [] and second.errors == []
    ours = [n["body"].split("\n")[0] for n in people_notes(fake, iid) if n["author"]["username"] == "sla-sync"]
    assert ours == ["Resolution breached: escalated."]  # exactly once, over both passes
    assert "sla:escalated-1" in fake.issue(PROJECT, iid).labels


def test_an_issue_of_a_neighbouring_project_is_never_read_nor_written(fake: GitLabFake, tmp_path: Path) -> None:
    members = {"sla-sync": MAINTAINER, "alice": DEVELOPER, "incident-manager": DEVELOPER, "erin": GUEST}
    other = fake.add_project("platform/incidents-archive", members)  # same group, same people, same iids
    theirs = fake.create_issue(other.path, "Old outage", author="erin", created_at=at("2026-11-02T08:00:00"),
                               labels=["priority::1"])
    ours = fake.create_issue(PROJECT, "Down", author="erin", created_at=at("2026-11-02T08:00:00"),
                             labels=["priority::1"])
    paths: list[str] = []
    fake.on_request = lambda method, path: paths.append(path)

    result = one_pass(fake, Store(str(tmp_path / "s.sqlite")), "2026-11-02T17:00:00Z")

    assert result.errors == [] and [o.key for o in result.outcomes] == [str(ours)]
    assert "sla:escalated-1" in fake.issue(PROJECT, ours).labels
    issue = fake.issue(other.path, theirs)
    assert (issue.labels, issue.due_date, issue.assignee_ids, issue.notes) == (["priority::1"], None, [], [])
    projects = {p.split("/projects/", 1)[1].split("/", 1)[0].split("?", 1)[0] for p in paths if "/projects/" in p}
    assert projects == {PROJECT.replace("/", "%2F")}, projects  # every request is about the policy's project

# -- online check ------------------------------------------------------------------------------


def test_check_online_is_empty_when_all_is_in_place(fake: GitLabFake) -> None:
    tracker = make(fake, users=("alice", "carol"), groups=("support",))
    assert tracker.check(["sla:P1", "sla:escalated-1"], ["alice", "carol", "support", "incident-manager"]) == []


def test_check_online_says_what_an_admin_must_add(fake: GitLabFake) -> None:
    tracker = make(fake, users=("alice", "ghost"), groups=("support", "night-shift"))
    todo = tracker.check(["sla:P1"], ["alice", "ghost", "support", "night-shift", "outsider", "l2-team"])
    assert todo == [
        "create the user 'ghost' (a username; GitLab assigns and mentions users, not groups), "
        "or remove it from the policy",
        "create the group 'night-shift' or fix tracker.agents.groups",
        f"add the user 'outsider' to the project {PROJECT!r} (GitLab assigns members only)",
        "create the user 'l2-team' (a username; GitLab assigns and mentions users, not groups), "
        "or remove it from the policy",
    ]


def test_check_online_with_a_guest_token_asks_for_the_role_and_the_labels(fake: GitLabFake) -> None:
    fake.add_user("weak-bot")
    fake.project(PROJECT).members[fake.user("weak-bot").id] = GUEST
    fake.project(PROJECT).labels.clear()
    fake.create_issue(PROJECT, "Bug", author="erin", created_at=at("2026-11-02T08:00:00"), labels=["sla:P1"])
    todo = make(fake, secret=fake.token_for("weak-bot")).check(["sla:P1", "sla:breached"], [])
    assert todo == [
        "give the token's user at least the Reporter role in the project: "
        "sla-sync edits issues and writes internal notes",
        "create the project labels sla:breached (GitLab creates missing labels on first use only for a user with "
        "at least the Reporter role)",
    ]


def test_check_online_reports_a_missing_project(fake: GitLabFake) -> None:
    todo = make(fake, project="platform/nope").check([], [])
    assert len(todo) == 1 and todo[0].startswith("project 'platform/nope' not found at " + fake.url)


# -- the fake itself (what the adapter does not exercise) ---------------------------------------


def test_the_fake_pages_like_gitlab(fake: GitLabFake) -> None:
    for i in range(5):
        fake.create_issue(PROJECT, f"issue {i}", author="erin", created_at=at(f"2026-11-02T0{i}:00:00"))
    url = f"{fake.url}/api/v4/projects/platform%2Fincidents/issues"
    page = requests.get(url, params={"per_page": 2, "page": 2, "sort": "asc"}, headers={"PRIVATE-TOKEN": TOKEN},
                        timeout=5)
    assert [i["iid"] for i in page.json()] == [3, 4]
    assert {k: page.headers[k]
            for k in ("X-Page", "X-Per-Page", "X-Total", "X-Total-Pages", "X-Next-Page", "X-Prev-Page")} == {
        "X-Page": "2", "X-Per-Page": "2", "X-Total": "5", "X-Total-Pages": "3", "X-Next-Page": "3", "X-Prev-Page": "1"}
    assert page.links["next"]["url"] == f"{url}?per_page=2&sort=asc&page=3"


def test_the_fake_records_changes_made_through_put(fake: GitLabFake) -> None:
    iid = fake.create_issue(PROJECT, "Bug", author="erin", created_at=at("2026-11-02T08:00:00"), labels=["a", "b"])
    url = f"{fake.url}/api/v4/projects/{fake.project(PROJECT).id}/issues/{iid}"
    headers = {"PRIVATE-TOKEN": TOKEN}
    fake.now = at("2026-11-02T10:00:00")
    body = requests.put(url, json={"labels": "b,c", "state_event": "close"}, headers=headers, timeout=5).json()
    assert (body["labels"], body["state"], body["updated_at"]) == (["b", "c"], "closed", "2026-11-02T10:00:00.000Z")
    again = requests.put(url, json={"labels": ["c", "b"]}, headers=headers, timeout=5).json()
    assert again["updated_at"] == "2026-11-02T10:00:00.000Z"  # nothing changed: the same version
    issue = fake.issue(PROJECT, iid)
    assert [(e["action"], e["label"]["name"], e["user"]["username"]) for e in issue.label_events][2:] == [
        ("remove", "a", "sla-sync"), ("add", "c", "sla-sync")]
    assert [(e["state"], e["user"]["username"], e["created_at"]) for e in issue.state_events] == [
        ("closed", "sla-sync", "2026-11-02T10:00:00.000Z")]


@pytest.mark.parametrize(
    ("method", "path", "token", "payload", "status", "body"),
    [
        ("GET", "/api/v4/user", "wrong", None, 401, {"message": "401 Unauthorized"}),
        ("GET", "/api/v4/projects/nope%2Fnope", TOKEN, None, 404, {"message": "404 Project Not Found"}),
        ("GET", "/api/v4/projects/platform%2Fincidents/issues/99", TOKEN, None, 404,
         {"message": "404 Issue Not Found"}),
        ("GET", "/api/v4/projects/platform%2Fincidents/issues?state=open", TOKEN, None, 400,
         {"error": "state does not have a valid value"}),
        ("PUT", "/api/v4/projects/platform%2Fincidents/issues/1", TOKEN, {"title": "x" * 256}, 422,
         {"message": {"title": ["is too long (maximum is 255 characters)"]}}),
        ("POST", "/api/v4/projects/platform%2Fincidents/issues/1/notes", TOKEN, {"internal": True}, 400,
         {"error": "body is missing"}),
        ("GET", "/api/v4/nothing/here", TOKEN, None, 404, {"error": "404 Not Found"}),
    ],
)
def test_the_fake_answers_errors_like_gitlab(fake: GitLabFake, method: str, path: str, token: str, payload: Any,
                                             status: int, body: Any) -> None:
    fake.create_issue(PROJECT, "Bug", author="erin", created_at=at("2026-11-02T08:00:00"))
    answer = requests.request(method, fake.url + path, json=payload, headers={"PRIVATE-TOKEN": token}, timeout=5)
    assert (answer.status_code, answer.json()) == (status, body)
