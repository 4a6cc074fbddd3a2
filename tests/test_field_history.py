"""Who set the due date and the assignee: every adapter maps the tracker's history
of both into neutral ``field`` events with their author, and ``by_self`` for the
changes the tracker's API user made (compared by user id).

This is what lets a pass that lost its state store tell sla-sync's own values
from a person's.  The history is read by a fresh adapter with an empty cache, as
after the store was deleted: Redmine's journals, Jira's changelog, GitLab's
system notes ("changed due date to November 20, 2026", "assigned to @bob").
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from sla_sync.adapters.gitlab import field_events
from sla_sync.adapters.jira import MAPPER

from sla_sync.model import Change, ChangeKind, Event
from tests.contract.harness import BODY

KINDS = ["redmine", "gitlab", "jira", "jira_dc"]
BOT = "<the API user>"


@pytest.fixture(params=KINDS)
def harness(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(request.param)


def author(harness: Any, login: str) -> str:
    """How the tracker's events name a person: Redmine by display name, GitLab by
    username, Jira by user id (accountId on Cloud, username on Data Center)."""
    if harness.kind == "redmine":
        return {"alice": "Alice Agent", BOT: "Redmine Admin"}[login]
    if harness.kind == "gitlab":
        return "sla-sync" if login == BOT else login
    fake = harness.fake
    return str(fake.user_id(fake.api_user if login == BOT else login))


def assignee(harness: Any, login: str) -> str:
    """How ``tracked`` names an assignee the policy does not: Jira by user id."""
    return str(harness.fake.user_id(login)) if harness.kind == "jira" else login


def history(events: tuple[Event, ...], name: str) -> list[tuple[str | None, str | None, str | None, bool]]:
    return [(e.from_, e.to, e.author, e.by_self) for e in events if e.kind == "field" and e.field == name]


def test_due_date_and_assignee_changes_say_who_made_them(harness: Any) -> None:
    key = harness.create_issue("Checkout down", priority="P1", created_at=datetime(2026, 11, 2, 8, tzinfo=UTC))
    harness.set_due_date(key, date(2026, 11, 20), by="alice")
    harness.set_assignee(key, "bob", by="alice")
    policy = harness.policy(BODY)
    harness.tracker(policy).apply(key, [Change(ChangeKind.DUE_DATE, value="2026-11-02"),
                                        Change(ChangeKind.ASSIGN, value="manager")])

    fresh = harness.tracker(policy)  # the store was lost: no cache, no directory
    (tracked,) = [t for t in fresh.fetch(None, {}).issues if t.issue.key == key]
    alice, bot, bob, manager = author(harness, "alice"), author(harness, BOT), assignee(harness, "bob"), "manager"
    if harness.kind == "jira":
        manager = assignee(harness, "manager")
    assert history(tracked.issue.events, "due_date") == [
        (None, "2026-11-20", alice, False),
        ("2026-11-20", "2026-11-02", bot, True),
    ]
    assert history(tracked.issue.events, "assignee") == [
        (None, bob, alice, False),
        (bob, manager, bot, True),
    ]
    # the last change of each is the value the tracker holds now, named the same way
    assert history(tracked.issue.events, "due_date")[-1][1] == tracked.observed.due_date
    assert history(tracked.issue.events, "assignee")[-1][1] == tracked.observed.assignee


def note(body: str, user: int, at: str = "2026-11-02T10:00:00.000Z") -> dict[str, Any]:
    return {"id": 1, "body": body, "system": True, "created_at": at,
            "author": {"id": user, "username": {1: "sla-sync", 2: "alice"}[user]}}


def test_gitlab_system_notes_in_every_wording_map_to_field_events() -> None:
    notes = [
        note("assigned to @alice, @bob, and @carol", 2),
        note("changed due date to November  5, 2026", 2),  # older Rails: a padded day
        note("changed start date to November 1, 2026 and changed due date to November 20, 2026", 2),
        note("unassigned @alice", 2),
        note("assigned to @manager and unassigned @bob and @carol", 1),
        note("removed due date November 20, 2026", 1),
        note("changed the description", 2),
        {**note("assigned to @dave", 2), "system": False},  # a comment that reads like one
    ]
    events = field_events({"assignees": [{"id": 9, "username": "manager"}]}, notes, me=1)
    assert [(e.field, e.from_, e.to, e.author, e.by_self) for e in events] == [
        ("due_date", None, "2026-11-05", "alice", False),
        ("due_date", "2026-11-05", "2026-11-20", "alice", False),
        ("due_date", "2026-11-20", None, "sla-sync", True),
        ("assignee", None, "alice", "alice", False),
        ("assignee", "alice", "bob", "alice", False),
        ("assignee", "bob", "manager", "sla-sync", True),
    ]


def test_old_gitlab_assignee_notes_map_too() -> None:
    notes = [note("assigned to @alice", 2), note("removed assignee", 1), note("reassigned to @bob", 2)]
    events = field_events({"assignees": [{"id": 7, "username": "bob"}]}, notes, me=1)
    assert [(e.from_, e.to, e.by_self) for e in events] == [(None, "alice", False), ("alice", None, True),
                                                            (None, "bob", False)]


def test_jira_by_self_is_the_api_users_id_not_a_display_name() -> None:
    row = {"fields": {"reporter": {"accountId": "erin-id"}}}
    impostor = {"accountId": "someone-else", "displayName": "SLA Sync Bot"}
    item = {"field": "duedate", "fieldId": "duedate", "from": None, "fromString": None,
            "to": "2026-11-20", "toString": "2026-11-20 00:00:00.0"}
    histories = [{"created": "2026-11-02T10:00:00.000+0000", "author": impostor, "items": [item]},
                 {"created": "2026-11-02T11:00:00.000+0000", "author": {"accountId": "bot-id", "displayName": "x"},
                  "items": [{**item, "from": "2026-11-20", "to": "2026-11-21", "toString": "2026-11-21 00:00:00.0"}]}]
    events = MAPPER.events(row, histories, [], me="bot-id", agents=None)
    assert [(e.to, e.by_self) for e in events] == [("2026-11-20", False), ("2026-11-21", True)]
