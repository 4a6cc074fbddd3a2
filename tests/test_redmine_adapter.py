"""The Redmine adapter against the real Redmine: refused fields, and the one-second versions.

Redmine validates an issue as a whole: one field it refuses (422) would refuse the
whole PUT that carries a step's due date, labels, assignee and note.  And its
``updated_on``, the cache version, has whole seconds, so a change in the same
second as the read the cache was made from leaves the version as it was.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sla_sync.adapters.redmine import blame, read_version

from sla_sync.calendar import utc_seconds
from sla_sync.state import Store
from sla_sync.sync import PassResult, run_pass
from tests.contract.harness import BODY, BREACH_NOTE
from tests.contract.redmine_harness import ISSUE_PATH, ServedInTheSecondOfOurWrite, answered_after
from tests.fakes.http import Reply, Request


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def one_pass(redmine: Any, store: Store, now: str) -> PassResult:
    policy = redmine.policy(BODY)
    return run_pass(redmine.tracker(policy), policy, store, utc_seconds(at(now)), apply=True, run_id="t")


def journals(redmine: Any, key: str) -> int:
    return len(redmine._issue(key, "journals").get("journals") or [])


def starts_later(redmine: Any, key: str) -> None:
    """A person plans the work to start on 10 November: a due date before it is invalid."""
    redmine._put(key, "alice", {"start_date": "2026-11-10"})


# -- a refused field does not block the others -------------------------------------------


def test_a_refused_due_date_does_not_block_the_escalation(redmine: Any, tmp_path: Path) -> None:
    store = Store(str(tmp_path / "state.sqlite"))
    key = redmine.create_issue("Checkout down", priority="P1", created_at=at("2026-11-02T08:00:00"))
    starts_later(redmine, key)

    first = one_pass(redmine, store, "2026-11-02T17:00:00")  # breached: due 2026-11-02, before the start
    seen = redmine.observe(key)
    assert seen.due_date is None
    assert seen.labels == {"sla:P1", "sla:breached", "sla:escalated-1", "sla:escalated-2"}
    assert seen.assignee == "manager"
    assert [o.plan.marked for o in first.outcomes] == [(1,)]  # both due at once: step 2 acts, step 1 is marked
    assert redmine.notes(key) == [(BREACH_NOTE, True)]
    (error,) = first.errors
    assert f"issue {key}" in error and "the due date (due_date)" in error
    assert "Due date must be greater than start date" in error
    assert "the other changes were written" in error

    redmine.reset_requests()
    before = journals(redmine, key)
    second = one_pass(redmine, store, "2026-11-02T17:30:00")
    assert redmine.notes(key) == [(BREACH_NOTE, True)]  # the step is not fired again
    assert redmine.observe(key) == seen
    assert journals(redmine, key) == before  # nothing new was written
    writes = {m: n for m, n in redmine.requests().items() if m != "GET"}
    assert writes == {"PUT": 1}  # the due date alone, refused again
    (error,) = second.errors
    assert "Due date must be greater than start date" in error and "nothing was written" in error


@pytest.fixture
def spanish_admin(redmine: Any) -> Any:
    """The API key's user reads Redmine in Spanish: its error messages name no field sla-sync knows."""
    db = sqlite3.connect(redmine.instance.db_path)
    try:
        (old,) = db.execute("SELECT language FROM users WHERE login = 'admin'").fetchone()
        with db:
            db.execute("UPDATE users SET language = 'es' WHERE login = 'admin'")
        yield redmine
    finally:
        with db:
            db.execute("UPDATE users SET language = ? WHERE login = 'admin'", (old,))
        db.close()


def test_refusals_that_name_no_known_field_are_found_by_trying_each_part(spanish_admin: Any, tmp_path: Path) -> None:
    redmine = spanish_admin
    key = redmine.create_issue("Checkout down", priority="P1", created_at=at("2026-11-02T08:00:00"))
    starts_later(redmine, key)
    result = one_pass(redmine, Store(str(tmp_path / "state.sqlite")), "2026-11-02T17:00:00")
    seen = redmine.observe(key)
    assert (seen.due_date, seen.assignee) == (None, "manager")
    assert seen.labels >= {"sla:escalated-1", "sla:escalated-2"}
    assert redmine.notes(key) == [(BREACH_NOTE, True)]
    (error,) = result.errors
    assert "the due date (due_date): Fecha fin debe ser posterior a la fecha de comienzo" in error
    assert "the assignee" not in error and "the note" not in error


@pytest.mark.parametrize(("messages", "blamed"), [
    (["Due date must be greater than start date"], {"due_date": ["Due date must be greater than start date"]}),
    (["Assignee is invalid"], {"assigned_to_id": ["Assignee is invalid"]}),
    (["Sla is not included in the list"], {"notes": ["Sla is not included in the list"]}),  # Redmine's humanized name
    (["Due date must be greater than start date", "Assignee is invalid"],
     {"due_date": ["Due date must be greater than start date"], "assigned_to_id": ["Assignee is invalid"]}),
    (["SLA due is not a valid date"], {"due_field": ["SLA due is not a valid date"]}),  # the longest label wins
    (["Start date cannot be earlier than 2026-11-12 because of preceding issues"], None),  # not a field we sent
    (["Fecha fin debe ser posterior a la fecha de comienzo"], None),  # another language
    (["Assignee is invalid", "Parent task is invalid"], None),  # one unknown: cannot tell
])
def test_redmine_messages_name_the_refused_field(messages: list[str], blamed: dict[str, list[str]] | None) -> None:
    labels = {"due date": "due_date", "assignee": "assigned_to_id", "sla": "notes", "sla due": "due_field"}
    assert blame(messages, labels) == blamed


# -- a change in the same second as sla-sync's write -------------------------------------


def served_after(seconds: int) -> Any:
    """A proxy rewrite: every issue read is answered ``seconds`` after the issue's
    ``updated_on`` (its ``Date`` header), as if the server's clock said so."""

    def rewrite(request: Request, reply: Reply) -> Reply:
        if request.method == "GET" and reply.status == 200 and ISSUE_PATH.fullmatch(request.path):
            return answered_after(reply, seconds)
        return reply

    return rewrite


def test_a_change_in_the_same_second_as_our_read_is_not_hidden_by_the_cache(redmine: Any, tmp_path: Path) -> None:
    store = Store(str(tmp_path / "state.sqlite"))
    policy = redmine.policy(BODY)
    key = redmine.create_issue("Checkout down", priority="P1", created_at=at("2026-11-02T08:00:00"))
    redmine.proxy.on_reply = served_after(10)
    first = one_pass(redmine, store, "2026-11-02T13:00:00")  # step 1: labels and a watcher
    assert first.errors == [] and redmine.observe(key).labels >= {"sla:escalated-1"}
    written_at = datetime.fromisoformat(redmine._issue(key)["updated_on"])
    redmine.comment(key, "Looking into it", by="alice", public=True, at=written_at)  # alice, right after it

    redmine.proxy.on_reply = served_after(0)  # the next pass reads the issue in the second of its update...
    second = one_pass(redmine, store, "2026-11-02T13:05:00")
    assert second.refetched == 1
    # ...and bob answers in that very second: updated_on stays what the copy was read at
    redmine.comment(key, "Any news?", by="bob", public=True, at=written_at)
    assert datetime.fromisoformat(redmine._issue(key)["updated_on"]) == written_at

    redmine.proxy.on_reply = served_after(10)
    third = one_pass(redmine, store, "2026-11-02T13:10:00")
    assert third.refetched == 1  # the copy was unsure: read again
    comments = [(e.at, e.author) for e in store.cached(policy.state_key)[key].issue.events if e.kind == "comment"]
    assert comments == [(utc_seconds(written_at), "Alice Agent"), (utc_seconds(written_at), "Bob Agent")]

    fourth = one_pass(redmine, store, "2026-11-02T13:15:00")  # read 10 s after the change: trusted now
    assert fourth.refetched == 0


def test_a_written_issue_is_read_back_once_by_the_next_pass(redmine: Any, tmp_path: Path) -> None:
    """A pass does not read back what it wrote: a read then would come in the second
    of the write, not be trusted, and be read again by the next pass, two requests
    where the next pass's one read does."""
    store = Store(str(tmp_path / "state.sqlite"))
    key = redmine.create_issue("Checkout down", priority="P1", created_at=at("2026-11-02T08:00:00"))
    redmine.proxy.on_reply = served = ServedInTheSecondOfOurWrite()
    redmine.reset_requests()
    first = one_pass(redmine, store, "2026-11-02T13:00:00")  # step 1: labels and a watcher
    assert first.errors == [] and redmine.observe(key).labels >= {"sla:escalated-1"}
    assert redmine.proxy.counts[("GET", "/issues/N.json")] == 1  # the journals before the write, and no more
    writes = {m: n for m, n in redmine.proxy.by_method().items() if m != "GET"}
    assert writes
    served.written.clear()

    second = one_pass(redmine, store, "2026-11-02T13:05:00")
    third = one_pass(redmine, store, "2026-11-02T13:10:00")
    assert (second.refetched, third.refetched) == (1, 0)  # read back once, then trusted
    assert redmine.proxy.counts[("GET", "/issues/N.json")] == 2
    assert {m: n for m, n in redmine.proxy.by_method().items() if m != "GET"} == writes  # nothing written again
    assert [o.plan.changes for o in second.outcomes + third.outcomes] == [(), ()]


@pytest.mark.parametrize(("date", "version"), [
    ("Mon, 02 Nov 2026 13:00:00 GMT", "2026-11-02T13:00:00Z?"),  # the same second
    ("Mon, 02 Nov 2026 13:00:01 GMT", "2026-11-02T13:00:00Z?"),  # the next: the read may still be in it
    ("Mon, 02 Nov 2026 13:00:02 GMT", "2026-11-02T13:00:00Z"),
    ("Mon, 02 Nov 2026 12:59:00 GMT", "2026-11-02T13:00:00Z?"),  # a clock behind: unsure
    ("Mon, 02 Nov 2026 13:05:00 GMT", "2026-11-02T13:00:00Z"),
    (None, "2026-11-02T13:00:00Z"),  # no Date (thin): trusted, as a fetch's read always was
    ("yesterday", "2026-11-02T13:00:00Z"),  # likewise an unreadable one
])
def test_a_copy_read_in_the_second_of_its_version_is_unsure(date: str | None, version: str) -> None:
    assert read_version("2026-11-02T13:00:00Z", date) == version
