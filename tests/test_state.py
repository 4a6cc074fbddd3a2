"""The state store, on SQLite and on a real PostgreSQL: the same tests for both."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from sla_sync.errors import LockedError
from sla_sync.model import Event, Issue, Written
from sla_sync.state import Store

ISSUE = Issue(
    key="SUP-7",
    created_at=1_793_610_000,
    status="In Progress",
    title="Checkout down",
    priority="Urgent",
    labels=("sla:P1",),
    fields={"CSAT": 4},
    events=(
        Event(1_793_611_200, "comment", public=True, by_agent=True, author="alice"),
        Event(1_793_611_800, "status", from_="New", to="In Progress", field="status"),
    ),
)


def test_a_new_store_has_no_cursor_and_remembers_one(state_url: str) -> None:
    store = Store(state_url)
    assert store.cursor("acme") is None
    store.set_cursor("acme", 1_793_610_000)
    store.set_cursor("acme", 1_793_620_000)
    assert Store(state_url).cursor("acme") == 1_793_620_000
    assert store.cursor("other") is None


def test_issues_come_back_as_they_were_remembered(state_url: str) -> None:
    store = Store(state_url)
    store.remember("acme", [("2026-11-02T10:30:00Z", ISSUE, Written("2026-11-03", "manager", None))])
    cached = Store(state_url).cached("acme")
    assert set(cached) == {"SUP-7"}
    assert cached["SUP-7"].version == "2026-11-02T10:30:00Z"
    assert cached["SUP-7"].issue.events == ISSUE.events
    assert (cached["SUP-7"].issue.fields, cached["SUP-7"].issue.labels) == ({"CSAT": 4}, ("sla:P1",))
    assert cached["SUP-7"].written == Written("2026-11-03", "manager", None)


def test_remembering_again_replaces_and_written_values_update(state_url: str) -> None:
    store = Store(state_url)
    store.remember("acme", [("v1", ISSUE, Written())])
    store.remember("acme", [("v2", ISSUE, Written())])
    store.set_written("acme", "SUP-7", Written("2026-12-01", None, "2026-12-01T10:00:00Z"))
    cached = store.cached("acme")
    assert cached["SUP-7"].version == "v2"
    assert cached["SUP-7"].written == Written("2026-12-01", None, "2026-12-01T10:00:00Z")


def test_fired_steps_and_the_run_journal(state_url: str) -> None:
    store = Store(state_url)
    store.record_fired("acme", "SUP-7", [2, 1], at=100)
    store.record_fired("acme", "SUP-7", [1], at=200)
    assert store.fired_steps("acme", "SUP-7") == [1, 2]
    store.start_run("r1", "acme", "run", 100)
    store.finish_run("r1", 160, "partial", {"errors": 1}, ["issue 3: HTTP 500"])
    [run] = store.runs("acme")
    assert (run.run_id, run.status, run.started_at, run.finished_at) == ("r1", "partial", 100, 160)
    assert (run.counts, run.errors) == ({"errors": 1}, ["issue 3: HTTP 500"])


def test_resolved_names_are_kept_per_policy(state_url: str) -> None:
    store = Store(state_url)
    store.save_directory("acme", {"user:alice": "5", "group:l2-team": "11"})
    assert store.directory("acme") == {"user:alice": "5", "group:l2-team": "11"}
    assert store.directory("other") == {}


def test_the_lock_admits_one_pass_per_policy(state_url: str) -> None:
    first, second = Store(state_url), Store(state_url)
    with first.lock("acme"):
        with pytest.raises(LockedError, match="another sla-sync pass is running"), second.lock("acme"):
            pass
        with second.lock("other policy"):
            pass
    with second.lock("acme"):
        pass


def test_a_worker_that_dies_releases_the_lock(state_url: str) -> None:
    holder = textwrap.dedent(
        f"""
        import sys
        from sla_sync.state import Store
        with Store({state_url!r}).lock("acme"):
            print("held", flush=True)
            sys.stdin.readline()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(LockedError), Store(state_url).lock("acme"):
            pass
        proc.kill()
        proc.wait(30)
        with Store(state_url).lock("acme"):
            pass
    finally:
        proc.kill()


def test_a_bad_location_is_a_clear_error_without_the_password(tmp_path: object) -> None:
    from sla_sync.errors import UserError

    with pytest.raises(UserError) as err:
        Store("postgresql://sla:hunter2@127.0.0.1:1/nowhere")
    assert "hunter2" not in str(err.value)
    assert "state store" in str(err.value)
