"""The sync job end to end: the `sla-sync` command against a real Redmine.

The ready policy `policies/redmine-support.yaml` is used as it ships, with only its
tracker URL pointed at the test Redmine (through the counting proxy).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support import block_on_put

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "sla_sync.cli"]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def setup(redmine_cli: tuple[Any, Path, dict[str, str]]) -> tuple[Any, Path, dict[str, str]]:
    return redmine_cli


def sla_sync(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in done.stderr, done.stderr
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def seed(redmine: Any) -> tuple[str, str, str]:
    """Three issues of the ready policy's levels (see each expectation below)."""
    a = redmine.create_issue("Checkout down", priority="Urgent", created_at=at("2026-11-02T08:00:00"))
    b = redmine.create_issue("Typo on the invoice", priority="Normal", created_at=at("2026-11-02T09:00:00"))
    c = redmine.create_issue("Slow search", priority="High", created_at=at("2026-11-03T08:00:00"))
    redmine.comment(c, "Which account is it?", by="alice", public=True, at=at("2026-11-03T08:30:00"))
    redmine.set_status(c, "waiting", at=at("2026-11-03T09:00:00"))
    return a, b, c


NOW = "2026-11-03T12:00:00Z"  # Tuesday, 13:00 in Madrid


def test_run_writes_what_the_policy_says_and_a_second_run_nothing(setup: Any, tmp_path: Path) -> None:
    redmine, policy, env = setup
    a, b, c = seed(redmine)
    state = str(tmp_path / "state.sqlite")

    planned = sla_sync(env, "plan", str(policy), "--now", NOW, "--state", state, "--format", "json")
    import json

    plan = {i["key"]: i for i in json.loads(planned.stdout)["issues"]}
    assert set(plan) == {a, b, c}
    assert set(redmine.requests()) == {"GET"}  # plan writes nothing

    sla_sync(env, "run", str(policy), "--now", NOW, "--state", state)
    # A: P1 on the 24x7 UTC calendar, 28h old: every target breached, all three steps due at
    # once on the first pass: backlog_steps' default (last) runs step 3 and marks 1 and 2.
    # resolution (24h) was breached at 2026-11-03 08:00 UTC.
    assert plan[a]["marked"] == [1, 2] and plan[a]["backlog_steps"] == "last"
    seen = redmine.observe(a)
    assert seen.due_date == "2026-11-03"
    assert seen.labels == {"sla:P1", "sla:breached", "sla:escalated-1", "sla:escalated-2", "sla:escalated-3"}
    assert seen.assignee == "manager"  # step 3's
    assert redmine.watchers(a) == set()  # step 1 was marked, not acted on
    notes = redmine.notes(a)
    assert len(notes) == 1 and notes[0][1] is True  # step 3's private note only
    assert "second level" not in notes[0][0] and "support manager" in notes[0][0]
    # B: P3 on office hours; 2 Nov is a Madrid holiday, so 4h ran on Tuesday 09-13; 76h of the
    # 80h remain: Tue 4 + Wed 8 + Thu 8 + Fri 6 + Mon 8 + Tue 8 + Wed 8 + Thu 8 + Fri 6 + Mon 8 = 72,
    # then 4h on Tuesday 17 Nov.
    seen = redmine.observe(b)
    assert (seen.due_date, seen.labels, seen.assignee) == ("2026-11-17", {"sla:P3"}, None)
    # C: P2, answered in 30 min, waiting for the customer since 10:00 Madrid: paused, no due date.
    seen = redmine.observe(c)
    assert (seen.due_date, seen.labels) == (None, {"sla:P2"})

    redmine.reset_requests()
    second = sla_sync(env, "run", str(policy), "--now", NOW, "--state", state)
    assert set(redmine.requests()) == {"GET"}
    assert "0 updated" in second.stderr


def test_a_person_changing_the_due_date_wins(setup: Any, tmp_path: Path) -> None:
    redmine, policy, env = setup
    _, b, _ = seed(redmine)
    state = str(tmp_path / "state.sqlite")
    sla_sync(env, "run", str(policy), "--now", NOW, "--state", state)
    redmine.set_due_date(b, date(2026, 11, 20))
    later = sla_sync(env, "run", str(policy), "--now", "2026-11-03T15:00:00Z", "--state", state)
    assert redmine.observe(b).due_date == "2026-11-20"
    assert f"issue={b} due date changed by hand to 2026-11-20" in later.stderr


def many_overdue(redmine: Any, n: int) -> list[str]:
    return [
        redmine.create_issue(f"Outage {i}", priority="Urgent", created_at=at("2026-11-01T08:00:00"))
        for i in range(n)
    ]


def test_a_pass_killed_mid_write_and_run_again_duplicates_nothing(setup: Any, tmp_path: Path) -> None:
    redmine, policy, env = setup
    keys = many_overdue(redmine, 8)
    state = str(tmp_path / "state.sqlite")
    reached, release = block_on_put(redmine, 4)
    proc = subprocess.Popen([*CLI, "run", str(policy), "--now", NOW, "--state", state], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert reached.wait(120)
    proc.send_signal(signal.SIGKILL)
    proc.wait(60)
    release.set()  # the held write reaches Redmine after its client died: the answer is lost
    redmine.hook(None)

    sla_sync(env, "run", str(policy), "--now", NOW, "--state", state)
    sla_sync(env, "run", str(policy), "--now", NOW, "--state", state)
    for key in keys:
        assert len(redmine.notes(key)) == 1, key
        assert redmine.observe(key).labels >= {"sla:escalated-1", "sla:escalated-2", "sla:escalated-3"}


def test_two_concurrent_passes_never_both_write(setup: Any, state_url: str) -> None:
    """Two workers (processes) on one policy and one state store, SQLite or PostgreSQL."""
    redmine, policy, env = setup
    many_overdue(redmine, 3)
    state = state_url
    reached, release = block_on_put(redmine, 1)
    first = subprocess.Popen([*CLI, "run", str(policy), "--now", NOW, "--state", state], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert reached.wait(120)
        before = dict(redmine.proxy.counts)
        second = sla_sync(env, "run", str(policy), "--now", NOW, "--state", state, check=False)
        assert second.returncode == 2
        assert "another sla-sync pass is running" in second.stderr
        assert dict(redmine.proxy.counts) == before  # not even a read: it stopped at the lock
    finally:
        release.set()
        first.wait(120)
    assert first.returncode == 0


def test_watch_stops_on_sigterm_after_the_write_in_flight(setup: Any, tmp_path: Path) -> None:
    redmine, policy, env = setup
    keys = many_overdue(redmine, 3)
    state = str(tmp_path / "state.sqlite")
    reached, release = block_on_put(redmine, 1)
    proc = subprocess.Popen([*CLI, "watch", str(policy), "--every", "1h", "--now", NOW, "--state", state],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert reached.wait(120)
    proc.send_signal(signal.SIGTERM)
    release.set()
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "stopping after the write in flight" in stderr
    written = [k for k in keys if redmine.notes(k)]
    assert len(written) == 1  # the write in flight finished; no other issue was touched


def test_a_wrong_api_key_is_one_line_and_exit_2(setup: Any, tmp_path: Path) -> None:
    redmine, policy, env = setup
    seed(redmine)
    done = sla_sync({**env, "REDMINE_API_KEY": "not-the-key"}, "run", str(policy), "--now", NOW,
                    "--state", str(tmp_path / "s.sqlite"), check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"sla-sync: authentication failed for {redmine.proxy.url}: "
                                   "check the API key and that the REST API is enabled")
    assert "not-the-key" not in done.stderr + done.stdout


def test_check_online_says_what_an_admin_must_add(setup: Any, tmp_path: Path) -> None:
    _redmine, policy, env = setup
    ok = sla_sync(env, "check", "--online", str(policy))
    assert "all in place" in ok.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text(policy.read_text().replace("labels_field: SLA", "labels_field: SLA labels")
                      .replace("assign: manager", "assign: nobody-here"))
    done = sla_sync(env, "check", "--online", str(broken), check=False)
    assert done.returncode == 2
    assert "create an issue custom field 'SLA labels'" in done.stdout
    assert "'nobody-here'" in done.stdout
