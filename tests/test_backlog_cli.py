"""A year-old backlog and a step's message, end to end through the `sla-sync` command
against the real Redmine.

The ready policy `policies/redmine-support.yaml` (pointed at the test Redmine by the
`redmine_cli` fixture) with one setting added per test:

- `writeback.backlog_steps: last | all | mark` on a backlog of ten issues opened
  between November 2025 and January 2026 and still open, plus one opened an hour
  before `--now`;
- `notify: [oncall]` on step 2 and a channel whose Apprise URL points at a local
  webhook receiver.

The ready policy's steps: 1 = first_response 75 % (watcher manager), 2 = resolution
75 % (assign l2-team, private note C2), 3 = resolution breached (assign manager,
private note C3).  Office hours are Madrid's: Mon-Thu 09-13 and 14-18 (8h), Fri
09-15 (6h), 38h a week; CET (UTC+1) on every day used here.  None of the office days
used below is a holiday of ES/MD (2025: 1 Nov, 6 and 8 Dec, 25 Dec; 2026: 1 and
6 Jan, 2 Nov).  Every expected value below is worked out by hand in its comment.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.receiver import Receiver

CLI = [sys.executable, "-m", "sla_sync.cli"]
ONCALL_ENV = "SLA_TEST_ONCALL_URL"

C2 = "SLA: 75 % of the resolution time is used up; escalated to second level."
C3 = "SLA: resolution target breached; escalated to the support manager."

NOW = "2026-11-03T12:00:00Z"  # Tuesday, 13:00 in Madrid
LATER = "2026-11-05T12:00:00Z"  # Thursday, 13:00 in Madrid


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def sla_sync(env: dict[str, str], *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == code, done.stdout + done.stderr
    return done


def policy_copy(ready: Path, tmp_path: Path, name: str, *edits: tuple[str, str], tail: str = "") -> Path:
    """The ready policy with each (old, new) replaced once (each must be there) and ``tail`` appended."""
    text = ready.read_text()
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text + tail)
    return path


# -- 1. writeback.backlog_steps on a year-old backlog ---------------------------------------

# The backlog: (title, priority, created at (UTC), kind).  Every issue is still open.
#   full:     nobody answered, so first_response is long breached (step 1 due) and so is
#             resolution (steps 2 and 3 due): three steps due at once.
#   answered: alice (an agent) answered publicly 10 minutes after creation: first_response
#             met, so step 1 never comes due; steps 2 and 3 are due.
#   paused:   answered, then waiting for the customer (Feedback) since 70h of its 80h had
#             run: only step 2 (60h) is due, on an issue sla-sync adopts.
BACKLOG = {
    "o1": ("Checkout down", "Urgent", "2025-11-05T10:00:00", "full"),
    "o2": ("Login loop", "Immediate", "2025-11-20T23:30:00", "full"),
    "o3": ("Reports slow", "High", "2025-11-17T08:00:00", "full"),
    "o4": ("Typo on the invoice", "Normal", "2026-01-12T08:00:00", "full"),
    "o5": ("Payments fail", "Urgent", "2025-12-01T09:00:00", "answered"),
    "o6": ("Export misses a column", "Normal", "2025-11-17T08:00:00", "paused"),
    "o7": ("Search times out", "High", "2025-12-15T08:00:00", "full"),
    "o8": ("API returns 500", "Urgent", "2025-12-31T12:00:00", "full"),
    "o9": ("Mail not delivered", "Urgent", "2026-01-20T06:00:00", "full"),
    "o10": ("Wrong date format", "Normal", "2025-11-19T14:30:00", "full"),
}
FRESH = ("New: cannot upload", "Normal", "2026-11-03T11:00:00")  # an hour before NOW

# The level and the due date (resolution's due instant, as a date in the level's calendar).
#   P1 (Urgent, Immediate): 24h round the clock, UTC: the creation instant plus 24h.
#   P2 (High): 40h of office time.  P3 (Normal): 80h.
#   o3, P2, Mon 17 Nov 2025 09:00 Madrid: Mon-Fri 38h, +2h Mon 24 Nov: 11:00 -> 2025-11-24.
#   o4, P3, Mon 12 Jan 2026 09:00: two weeks 76h, +4h Mon 26 Jan: 13:00 -> 2026-01-26.
#   o7, P2, Mon 15 Dec 2025 09:00: 38h to Fri 19 Dec 15:00, +2h Mon 22 Dec -> 2025-12-22.
#   o10, P3, Wed 19 Nov 2025 15:30: Wed 2.5 + Thu 8 + Fri 6 = 16.5; week of 24 Nov 38 -> 54.5;
#        Mon 1 Dec 62.5, Tue 70.5, Wed 78.5, Thu 4 Dec +1.5h: 10:30 -> 2025-12-04.
#   o6 is paused (no due date is written while the clock is paused).
#   fresh, P3, Tue 3 Nov 2026 12:00 Madrid: Tue 12-13 + 14-18 = 5; Wed 13, Thu 21, Fri 27;
#        Mon 9 Nov 35 ... Fri 13 Nov 65; Mon 16 Nov 73; Tue 17 Nov 09-13, 14-17 -> 80: 2026-11-17.
LEVEL_AND_DUE = {
    "o1": ("P1", "2025-11-06"), "o2": ("P1", "2025-11-21"), "o3": ("P2", "2025-11-24"),
    "o4": ("P3", "2026-01-26"), "o5": ("P1", "2025-12-02"), "o6": ("P3", None),
    "o7": ("P2", "2025-12-22"), "o8": ("P1", "2026-01-01"), "o9": ("P1", "2026-01-21"),
    "o10": ("P3", "2025-12-04"), "fresh": ("P3", "2026-11-17"),
}

# What each mode does with each kind, written out by hand from the README's table:
# the steps marked, the actions' (kind, step) in the plan, the assignee, the one note
# (Redmine's adapter writes an issue's changes in one PUT: two steps' comments become one
# private note, the later assignment wins), and whether step 1's watcher "manager" lands.
EXPECT: dict[str, dict[str, dict[str, Any]]] = {
    "last": {
        "full": {"marked": [1, 2], "actions": [("assign", 3), ("comment", 3)], "assignee": "manager",
                 "notes": [(C3, True)], "watcher": False},
        "answered": {"marked": [2], "actions": [("assign", 3), ("comment", 3)], "assignee": "manager",
                     "notes": [(C3, True)], "watcher": False},
        "paused": {"marked": [], "actions": [("assign", 2), ("comment", 2)], "assignee": "l2-team",
                   "notes": [(C2, True)], "watcher": False},
    },
    "all": {
        "full": {"marked": [], "actions": [("watchers", 1), ("assign", 2), ("comment", 2), ("assign", 3),
                                           ("comment", 3)],
                 "assignee": "manager", "notes": [(f"{C2}\n\n{C3}", True)], "watcher": True},
        "answered": {"marked": [], "actions": [("assign", 2), ("comment", 2), ("assign", 3), ("comment", 3)],
                     "assignee": "manager", "notes": [(f"{C2}\n\n{C3}", True)], "watcher": False},
        "paused": {"marked": [], "actions": [("assign", 2), ("comment", 2)], "assignee": "l2-team",
                   "notes": [(C2, True)], "watcher": False},
    },
    "mark": {
        "full": {"marked": [1, 2, 3], "actions": [], "assignee": None, "notes": [], "watcher": False},
        "answered": {"marked": [2, 3], "actions": [], "assignee": None, "notes": [], "watcher": False},
        "paused": {"marked": [2], "actions": [], "assignee": None, "notes": [], "watcher": False},
    },
}
# The labels after the first pass, whatever the mode: the level, sla:breached (every old
# issue but the paused one has a breached metric; none has a running metric at risk) and
# a marker per due step, acted on or marked.
LABELS = {
    "full": {"sla:breached", "sla:escalated-1", "sla:escalated-2", "sla:escalated-3"},
    "answered": {"sla:breached", "sla:escalated-2", "sla:escalated-3"},
    "paused": {"sla:escalated-2"},
}


def seed_backlog(redmine: Any) -> dict[str, str]:
    keys = {}
    for name, (title, priority, created, kind) in BACKLOG.items():
        key = redmine.create_issue(title, priority=priority, created_at=at(created))
        keys[name] = key
        if kind in ("answered", "paused"):
            answered = {"answered": "2025-12-01T09:10:00", "paused": "2025-11-17T08:30:00"}[kind]
            redmine.comment(key, "Which account is it?", by="alice", public=True, at=at(answered))
        if kind == "paused":
            # Mon 17 Nov 09:00 Madrid to Thu 27 Nov 18:00: 38h + 4 x 8h = 70h of 80h.
            redmine.set_status(key, "waiting", at=at("2025-11-27T17:00:00"))
    title, priority, created = FRESH
    keys["fresh"] = redmine.create_issue(title, priority=priority, created_at=at(created))
    return keys


def plan_json(env: dict[str, str], policy: Path, now: str, state: str) -> dict[str, dict[str, Any]]:
    done = sla_sync(env, "plan", str(policy), "--now", now, "--state", state, "--format", "json")
    return {i["key"]: i for i in json.loads(done.stdout)["issues"]}


def actions(entry: dict[str, Any]) -> list[tuple[str, int]]:
    return [(c["kind"], c["step"]) for c in entry["changes"] if "step" in c]


@pytest.mark.parametrize("mode", ["last", "all", "mark"])
def test_backlog_steps_on_a_year_old_backlog(redmine_cli: tuple[Any, Path, dict[str, str]], tmp_path: Path,
                                             mode: str) -> None:
    redmine, ready, env = redmine_cli
    policy = policy_copy(ready, tmp_path, f"backlog-{mode}.yaml",
                         ("  on_manual_change: keep", f"  backlog_steps: {mode}\n  on_manual_change: keep"))
    keys = seed_backlog(redmine)
    names = {key: name for name, key in keys.items()}
    state = str(tmp_path / "state.sqlite")
    kind_of = {name: spec[3] for name, spec in BACKLOG.items()}
    watchers = {k: redmine.watchers(k) for k in keys.values()}  # alice's answers may make her a watcher
    notes = {k: redmine.notes(k) for k in keys.values()}

    # -- plan: which steps a first pass (a new store: every issue is adopted) marks
    redmine.reset_requests()
    plan = plan_json(env, policy, NOW, state)
    assert set(redmine.requests()) == {"GET"}
    assert set(plan) == set(keys.values())  # every issue needs a due date or labels
    for key, entry in plan.items():
        name = names[key]
        assert entry["messages"] == [] and entry["error"] is None, name
        if name == "fresh":  # 1h of 8h of first_response: no step due, no catch-up
            assert entry["marked"] == [] and "backlog_steps" not in entry and actions(entry) == []
            continue
        want = EXPECT[mode][kind_of[name]]
        assert entry["marked"] == want["marked"], name
        assert entry["backlog_steps"] == mode, name
        assert actions(entry) == want["actions"], name

    # -- run: what lands on the tracker
    done = sla_sync(env, "run", str(policy), "--now", NOW, "--state", state)
    # 11 issues, all written; steps fired (acted on or marked): 8 full x 3 + 2 + 1 = 27.
    assert "11 issues fetched" in done.stderr
    # marked without acting: last, 8 x 2 (steps 1 and 2) + 1 (step 2 of the answered one) = 17;
    # all, none; mark, every one of the 27.
    marked = {"last": 17, "all": 0, "mark": 27}[mode]
    tail = f" ({marked} of them only marked: backlog_steps)" if marked else ","
    assert f"11 updated, 27 escalation steps fired{tail}" in done.stderr
    # The next change: fresh's first_response reaches 75 % (6h): Tue 12-13, 14-18 = 5h, then
    # Wed 09-10 Madrid (at risk at the same instant; the summary names the step).
    assert f"; next change due 2026-11-04T09:00:00Z ({keys['fresh']}: escalation step 1)" in done.stderr
    for name, key in keys.items():
        seen = redmine.observe(key)
        level, due = LEVEL_AND_DUE[name]
        assert seen.due_date == due, name
        if name == "fresh":
            assert (seen.labels, seen.assignee) == ({"sla:P3"}, None)
            assert redmine.notes(key) == [] and redmine.watchers(key) == watchers[key]
            continue
        want = EXPECT[mode][kind_of[name]]
        assert seen.labels == {f"sla:{level}"} | LABELS[kind_of[name]], name
        assert seen.assignee == want["assignee"], name
        assert redmine.notes(key) == notes[key] + want["notes"], name
        assert redmine.watchers(key) == watchers[key] | ({"manager"} if want["watcher"] else set()), name
    settled = {k: redmine.observe(k) for k in keys.values()}

    # -- a second run at the same instant writes nothing
    redmine.reset_requests()
    again = sla_sync(env, "run", str(policy), "--now", NOW, "--state", state)
    assert set(redmine.requests()) == {"GET"}
    assert "0 updated, 0 escalation steps fired" in again.stderr

    # -- later: one more step comes due in the ordinary course on issues the store knows
    o6, fresh = keys["o6"], keys["fresh"]
    # The customer answered: alice puts o6 back to work on Wed 4 Nov 2026 09:00 Madrid. Its
    # resolution clock runs on from 70h: Wed 8h -> 78h, Thu 09-11 -> 80h: breached after
    # Thu 5 Nov 11:00 Madrid (10:00Z), so at LATER (Thu 13:00) step 3 is due, alone.
    redmine.set_status(o6, "working", at=at("2026-11-04T08:00:00"))
    # fresh: first_response 8h from Tue 12:00: Tue 5h, Wed 09-12 -> 8h (75 % at Wed 10:00):
    # breached by LATER, step 1 due, alone; resolution has 5 + 8 + 4 = 17h of 80h: no step 2.
    watchers = {k: redmine.watchers(k) for k in keys.values()}
    notes = {k: redmine.notes(k) for k in keys.values()}
    later = plan_json(env, policy, LATER, state)
    assert set(later) == {o6, fresh}  # the others' due dates and labels stay as they are
    for key in (o6, fresh):
        assert later[key]["marked"] == [] and "backlog_steps" not in later[key], names[key]
    assert actions(later[o6]) == [("assign", 3), ("comment", 3)]
    assert actions(later[fresh]) == [("watchers", 1)]

    done = sla_sync(env, "run", str(policy), "--now", LATER, "--state", state)
    assert "2 updated, 2 escalation steps fired" in done.stderr
    # Next: fresh's resolution at 75 % (60h) from its 17h at Thu 13:00 Madrid: Thu 14-18 21h,
    # Fri 27h, Mon 9 Nov 35h, Tue 43h, Wed 51h, Thu 59h, Fri 13 Nov 09-10 -> 60h (09:00Z).
    assert f"; next change due 2026-11-13T09:00:00Z ({fresh}: escalation step 2)" in done.stderr
    seen = redmine.observe(o6)
    # due instant Thu 5 Nov 2026 11:00 Madrid; breached, and its step 3 marker.
    assert seen.due_date == "2026-11-05"
    assert seen.labels == {"sla:P3", "sla:escalated-2", "sla:breached", "sla:escalated-3"}
    assert seen.assignee == "manager"
    assert redmine.notes(o6) == notes[o6] + [(C3, True)]
    assert redmine.watchers(o6) == watchers[o6]
    seen = redmine.observe(fresh)
    assert (seen.due_date, seen.assignee) == ("2026-11-17", None)
    assert seen.labels == {"sla:P3", "sla:breached", "sla:escalated-1"}
    assert redmine.watchers(fresh) == watchers[fresh] | {"manager"}
    assert redmine.notes(fresh) == []
    for key in set(keys.values()) - {o6, fresh}:
        assert redmine.observe(key) == settled[key], names[key]
        assert redmine.notes(key) == notes[key] and redmine.watchers(key) == watchers[key], names[key]


# -- 2. a step's message through the command line ----------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.close()


def test_a_step_message_through_the_command_line(redmine_cli: tuple[Any, Path, dict[str, str]], tmp_path: Path,
                                                 receiver: Receiver) -> None:
    redmine, ready, env = redmine_cli
    policy = policy_copy(
        ready, tmp_path, "notify.yaml",
        (f'    comment: "{C2}"\n', f'    comment: "{C2}"\n    notify: [oncall]\n'),
        tail=f"\nnotify:\n  channels:\n    oncall: {{url_env: {ONCALL_ENV}}}\n",
    )
    url = receiver.url("json", "/oncall")
    base = {k: v for k, v in env.items() if k != ONCALL_ENV}
    with_url = {**base, ONCALL_ENV: url, "COLUMNS": "200"}  # wide enough for the plan table's lines
    state = str(tmp_path / "state.sqlite")
    # P1 (Urgent): 24h round the clock in UTC.  Created Tue 3 Nov 2026 00:00Z, answered by alice at
    # 00:10Z (first_response met: step 1 never comes due).  At 19:00Z resolution has 19h of 24h
    # (79 %, past 75 %: step 2 due, and at risk; not breached: no step 3), 5h left, due
    # 2026-11-04T00:00:00Z.
    key = redmine.create_issue("Checkout down", priority="Urgent", created_at=at("2026-11-03T00:00:00"))
    redmine.comment(key, "Looking into it.", by="alice", public=True, at=at("2026-11-03T00:10:00"))
    now = "2026-11-03T19:00:00Z"
    outputs: list[subprocess.CompletedProcess[str]] = []

    planned = sla_sync(with_url, "plan", str(policy), "--now", now, "--state", state)
    outputs.append(planned)
    assert "message to oncall (step 2)" in planned.stdout
    assert receiver.messages == []

    first = sla_sync(with_url, "run", str(policy), "--now", now, "--state", state)
    outputs.append(first)
    assert receiver.messages == [(
        "/oncall",
        f"[acme-support] {key} resolution 5h left: step 2",
        f"{key}: Checkout down\n{redmine.proxy.url.rstrip('/')}/issues/{key}\n"
        "level P1: resolution running, 5h left of 24h, at risk, due 2026-11-04T00:00:00Z\n"
        "escalation step 2: when resolution 75% (assigned to l2-team)",
    )]
    assert "1 messages sent, 0 waiting" in first.stderr
    # Next: resolution breaches (and step 3 comes due) once 24h are over, one second past
    # its due instant.
    assert "; next change due " in first.stderr
    assert f"; next change due 2026-11-04T00:00:01Z ({key}: escalation step 3)" in first.stderr
    seen = redmine.observe(key)
    assert seen.assignee == "l2-team"
    assert redmine.notes(key)[1:] == [(C2, True)]

    second = sla_sync(with_url, "run", str(policy), "--now", now, "--state", state)
    outputs.append(second)
    assert len(receiver.messages) == 1
    assert "messages sent" not in second.stderr

    ok = sla_sync(with_url, "check", "--online", str(policy))
    outputs.append(ok)
    assert "all in place" in ok.stdout

    unset = sla_sync(base, "check", "--online", str(policy), code=2)
    outputs.append(unset)
    assert (f"{policy}: tracker: channel oncall: the environment variable {ONCALL_ENV} is empty or unset: "
            "set it to the Apprise URL") in unset.stdout
    assert len(receiver.messages) == 1

    for done in outputs:
        text = done.stdout + done.stderr
        for piece in (url, "json://", f"127.0.0.1:{receiver.port}", "/oncall"):
            assert piece not in text, (piece, done.args)


def test_explain_of_an_issue_the_tracker_does_not_have_is_bad_input(
        redmine_cli: tuple[Any, Path, dict[str, str]]) -> None:
    """`explain KEY` without --input for a key with no issue behind it: what to fix,
    exit 2 (it was exit 1, as if the tracker had failed)."""
    _, policy, env = redmine_cli
    done = sla_sync(env, "explain", "999999", "--policy", str(policy), "--now", "2026-11-02T09:00:00Z", code=2)
    assert "issue 999999 is not on the tracker" in done.stderr
