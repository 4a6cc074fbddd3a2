"""The state store, on SQLite and on a real PostgreSQL: the same tests for both."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

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


def test_a_step_on_a_repeating_metric_is_recorded_with_its_cycle(state_url: str) -> None:
    store = Store(state_url)
    store.record_fired("acme", "SUP-7", [1, 2], at=100, cycles={1: 3})
    assert store.fired_of("acme", ["SUP-7", "SUP-8"]) == {"SUP-7": {1: 3, 2: 0}}
    store.record_fired("acme", "SUP-7", [1], at=200, cycles={1: 4})  # the next cycle replaces it
    assert store.fired_of("acme", ["SUP-7"]) == {"SUP-7": {1: 4, 2: 0}}


def test_a_message_of_a_new_cycle_replaces_the_earlier_cycles(state_url: str) -> None:
    store = Store(state_url)
    store.queue_notices("acme", "SUP-7", [(1, "oncall", 1)], at=100)
    store.notices_ready("acme", "SUP-7", [1])
    store.mark_sent("acme", "SUP-7", 1, "oncall", 110)
    store.queue_notices("acme", "SUP-7", [(1, "oncall", 1)], at=120)  # the same cycle again: already sent
    assert store.pending_notices("acme") == [] and store.notice_intents("acme") == []
    store.queue_notices("acme", "SUP-7", [(1, "oncall", 2)], at=300)  # cycle 2: a new message
    store.notices_ready("acme", "SUP-7", [1])
    assert [(n.key, n.step, n.channel, n.queued_at) for n in store.pending_notices("acme")] == \
        [("SUP-7", 1, "oncall", 300)]


def test_a_store_from_before_cycles_gets_the_columns_and_keeps_its_rows(state_url: str) -> None:
    store = Store(state_url)
    store.record_fired("acme", "SUP-7", [2], at=100)
    store.queue_notices("acme", "SUP-7", [(2, "oncall", 0)], at=100)
    with store.engine.begin() as conn:
        for table in ("fired_steps", "notices"):
            conn.execute(text(f"ALTER TABLE {table} DROP COLUMN cycle"))
    store.close()
    reopened = Store(state_url)
    assert reopened.fired_of("acme", ["SUP-7"]) == {"SUP-7": {2: 0}}
    assert [(n.step, n.channel) for n in reopened.notice_intents("acme")] == [(2, "oncall")]
    reopened.record_fired("acme", "SUP-8", [1], at=200, cycles={1: 2})
    assert reopened.fired_of("acme", ["SUP-8"]) == {"SUP-8": {1: 2}}


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


# -- the SQLite file: its mode, and files that are not a store ------------------------------

SECRET_URLS = [
    # (id, location, what must never show)
    ("password_with_at", "postgresql://sla:p@ss-w0rd@127.0.0.1:1/nowhere", "ss-w0rd"),
    ("password_with_colon", "postgresql://sla:hun:ter-2@127.0.0.1:1/nowhere", "ter-2"),
    ("password_parameter", "postgresql://sla@127.0.0.1:1/nowhere?password=hunter2", "hunter2"),
    ("ssl_password_parameter", "postgresql://sla@127.0.0.1:1/nowhere?sslmode=require&sslpassword=hunter2", "hunter2"),
    ("password_parameter_with_at", "postgresql://127.0.0.1:1/nowhere?password=hun@ter2&user=sla", "ter2"),
    ("unparsable_url", "postgresql://sla:hunter2@[::1/nowhere", "hunter2"),
]


@pytest.mark.parametrize(("location", "secret"), [u[1:] for u in SECRET_URLS], ids=[u[0] for u in SECRET_URLS])
def test_a_bad_location_never_shows_any_part_of_the_password(location: str, secret: str) -> None:
    from sla_sync.errors import UserError

    with pytest.raises(UserError) as err:
        Store(location)
    assert secret not in str(err.value)
    assert str(err.value).startswith("state store postgresql://")


def file_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most permissive umask, as a careless service manager may leave it."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_a_new_store_and_its_lock_file_are_private_to_their_owner(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "state.sqlite"
    store = Store(str(path))
    store.set_cursor("acme", 1)
    assert file_mode(path) == 0o600
    with store.lock("acme"):
        [lock] = tmp_path.glob("state.sqlite.*.lock")
        assert file_mode(lock) == 0o600
    # the rollback journal SQLite writes beside it while a transaction runs
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE cursors SET cursor = 2"))
        assert file_mode(tmp_path / "state.sqlite-journal") == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.sqlite", lock.name]


def test_a_store_in_wal_mode_keeps_its_side_files_private(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "state.sqlite"
    Store(str(path)).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
    store = Store(str(path))
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO cursors (policy, cursor) VALUES ('acme', 1)"))
        assert {p.name: file_mode(p) for p in tmp_path.glob("state.sqlite-*")} == {
            "state.sqlite-wal": 0o600, "state.sqlite-shm": 0o600,
        }


def test_an_existing_store_keeps_the_mode_its_owner_gave_it(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    Store(str(path)).close()
    path.chmod(0o640)  # e.g. readable by a backup group
    Store(str(path)).set_cursor("acme", 1)
    assert file_mode(path) == 0o640


def corrupt_pages(path: Path) -> None:
    """Overwrite every page but the first (the schema) with garbage."""
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    assert len(data) > 3 * page
    data[page:] = bytes((i * 37 + 11) % 256 for i in range(len(data) - page))
    path.write_bytes(bytes(data))


def make_store_with_issues(path: Path) -> None:
    store = Store(str(path))
    store.remember("hostile", [(f"v{i}", replace(ISSUE, key=f"SUP-{i}", title="x" * 200), Written())
                               for i in range(200)])
    store.set_cursor("hostile", 1)
    store.close()


def foreign_tables(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, login TEXT)")
        db.execute("INSERT INTO users (login) VALUES ('alice')")


def foreign_columns(path: Path) -> None:
    with sqlite3.connect(path) as db:  # the same table names, another application's columns
        db.execute("CREATE TABLE issues (id INTEGER PRIMARY KEY, subject TEXT)")
        db.execute("CREATE TABLE cursors (name TEXT, position INTEGER)")


BAD_STORES = [
    # (id, how the file is made, a piece of the message)
    ("empty_file", lambda p: p.write_bytes(b""), "empty"),
    ("not_a_database", lambda p: p.write_bytes(b"hello, this is a text file\n" * 100), "not an sla-sync state store"),
    ("another_applications_tables", foreign_tables, "not an sla-sync state store"),
    ("same_table_names_other_columns", foreign_columns, "not an sla-sync state store"),
]


@pytest.mark.parametrize(("make", "message"), [b[1:] for b in BAD_STORES], ids=[b[0] for b in BAD_STORES])
def test_a_file_that_is_not_a_store_is_refused_and_left_alone(tmp_path: Path, make: Any, message: str) -> None:
    from sla_sync.errors import UserError

    path = tmp_path / "state.sqlite"
    make(path)
    before = path.read_bytes()
    with pytest.raises(UserError) as err:
        Store(str(path))
    assert str(path) in str(err.value) and message in str(err.value)
    assert "delete" in str(err.value) or "move" in str(err.value)  # it says what to do
    assert path.read_bytes() == before


def test_a_corrupt_store_is_a_user_error_naming_the_file(tmp_path: Path) -> None:
    from sla_sync.errors import UserError

    path = tmp_path / "state.sqlite"
    make_store_with_issues(path)
    corrupt_pages(path)
    with pytest.raises(UserError) as err:
        store = Store(str(path))
        store.cursor("hostile")
        store.cached("hostile")
    assert str(path) in str(err.value) and "damaged" in str(err.value)


POLICY = """\
name: hostile
tracker:
  kind: redmine
  url: http://127.0.0.1:9
  project: support
  api_key_env: SLA_TEST_KEY
calendars:
  always: {timezone: UTC, hours: 24x7}
levels:
  P1: {calendar: always, first_response: 30m}
classify:
  - level: P1
"""


@pytest.mark.parametrize("command", ["plan", "run"])
@pytest.mark.parametrize("make", [*(b[1] for b in BAD_STORES), lambda p: (make_store_with_issues(p), corrupt_pages(p))],
                         ids=[*(b[0] for b in BAD_STORES), "corrupt_pages"])
def test_a_bad_store_stops_plan_and_run_with_one_line_and_exit_2(tmp_path: Path, make: Any, command: str) -> None:
    path = tmp_path / "state.sqlite"
    make(path)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    done = subprocess.run([sys.executable, "-m", "sla_sync.cli", command, str(policy), "--state", str(path),
                           "--now", "2026-11-02T10:00:00Z"],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "SLA_TEST_KEY": "k-123"})
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"sla-sync: state store {path}")
    assert done.stdout == ""
