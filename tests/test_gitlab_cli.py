"""The sync job end to end: the `sla-sync` command against the GitLab fake.

The ready policy `policies/gitlab-incidents.yaml` is used as it ships, with only
its tracker URL pointed at the fake (which serves the project platform/incidents
on a real loopback port, in this test process).  The command runs as a child
process; `--now` pins the clock.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.fakes.gitlab_fake import DEVELOPER, GUEST, MAINTAINER, GitLabFake

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).with_name("sla-sync")
CLI = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "sla_sync.cli"]
PROJECT = "platform/incidents"
TOKEN = "glpat-cli-test-secret-7"
NOW = "2026-11-03T12:00:00Z"  # Tuesday; 07:00 in New York (EST since 1 November)
STEP_2 = "SLA: resolution target breached; escalated to the incident manager.\n\n<!-- sla-sync: sla:escalated-2 -->"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[GitLabFake, Path, dict[str, str]]]:
    fake = GitLabFake(now=at("2026-11-03T12:00:00"))
    for login in ("sla-sync", "alice", "bob", "carol", "erin", "oncall-lead", "incident-manager"):
        fake.add_user(login)
    fake.add_project(PROJECT, {"sla-sync": MAINTAINER, "alice": DEVELOPER, "bob": DEVELOPER, "carol": DEVELOPER,
                               "oncall-lead": DEVELOPER, "incident-manager": DEVELOPER, "erin": GUEST})
    fake.token_for("sla-sync", TOKEN)
    fake.start()
    text = (ROOT / "policies" / "gitlab-incidents.yaml").read_text()
    assert text.count("url: https://gitlab.example.com") == 1 and f"project: {PROJECT}" in text
    policy = tmp_path / "gitlab-incidents.yaml"
    policy.write_text(text.replace("url: https://gitlab.example.com", f"url: {fake.url}"))
    env = {**os.environ, "GITLAB_TOKEN": TOKEN}
    try:
        yield fake, policy, env
    finally:
        fake.close()


def sla_sync(env: dict[str, str], *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == code, done.stdout + done.stderr
    return done


def seed(fake: GitLabFake) -> tuple[int, int, int, int]:
    """Four issues; what the policy makes of each is worked out in the test."""
    a = fake.create_issue(PROJECT, "Checkout down", author="erin", created_at=at("2026-11-03T02:00:00"),
                          labels=["priority::1"])
    b = fake.create_issue(PROJECT, "Typo on the status page", author="erin", created_at=at("2026-11-02T14:00:00"))
    fake.add_note(PROJECT, b, "Thanks, we will fix it", by="alice", at=at("2026-11-02T14:30:00"))
    c = fake.create_issue(PROJECT, "Slow search", author="erin", created_at=at("2026-11-03T09:00:00"),
                          labels=["priority::2"])
    fake.add_note(PROJECT, c, "Which account?", by="alice", at=at("2026-11-03T09:20:00"))
    fake.change_labels(PROJECT, c, add=["status::waiting"], by="alice", at=at("2026-11-03T10:00:00"))
    d = fake.create_issue(PROJECT, "Old outage", author="erin", created_at=at("2026-11-01T08:00:00"),
                          labels=["priority::1"])
    fake.set_state(PROJECT, d, "close", by="alice", at=at("2026-11-01T09:00:00"))
    return a, b, c, d


def people_notes(fake: GitLabFake, iid: int) -> list[tuple[str, bool]]:
    return [(n["body"], n["internal"]) for n in fake.issue(PROJECT, iid).notes if not n["system"]]


def test_plan_then_run_writes_what_the_policy_says_and_a_second_run_nothing(
        setup: tuple[GitLabFake, Path, dict[str, str]], tmp_path: Path) -> None:
    fake, policy, env = setup
    a, b, c, d = seed(fake)
    state = str(tmp_path / "state.sqlite")

    planned = sla_sync(env, "plan", str(policy), "--now", NOW, "--state", state, "--format", "json")
    plan = {i["key"]: i for i in json.loads(planned.stdout)["issues"]}
    assert set(plan) == {str(a), str(b), str(c)}  # d is closed: not even read without a cursor
    assert [(ch["kind"], ch.get("step")) for ch in plan[str(a)]["changes"] if ch.get("step")] == [
        ("assign", 2), ("comment", 2)]  # both due on the first pass: backlog_steps: last
    assert plan[str(a)]["marked"] == [1]
    assert fake.writes == 0

    sla_sync(env, "run", str(policy), "--now", NOW, "--state", state)
    # A: SEV1 (priority::1) on the 24x7 UTC calendar, 10h old with no answer: every target
    # breached; resolution (8h) at 10:00 UTC.  Both steps are due on this first pass:
    # backlog_steps' default (last) marks step 1 (first response 50 %: the on-call lead) and
    # runs step 2 (resolution breached: the incident manager).
    issue = fake.issue(PROJECT, a)
    assert issue.due_date == "2026-11-03"
    assert sorted(issue.labels) == ["escalated", "priority::1", "sla:SEV1", "sla:breached", "sla:escalated-1",
                                    "sla:escalated-2"]
    assert [fake.users[i].username for i in issue.assignee_ids] == ["incident-manager"]
    assert people_notes(fake, a) == [(STEP_2, True)]
    # B: SEV3 on the New York on-call calendar (Mon-Fri 08-20), answered in 30 minutes.
    # Resolution 120h: 11h ran on Monday 09-20; 109h remain from Tuesday 08:00: Tue 12, Wed 12,
    # Thu 12, Fri 12, Mon 12, Tue 12, (Wed 11 Nov is Veterans Day), Thu 12, Fri 12, Mon 12 = 108,
    # then 1h on Tuesday 17 November.
    issue = fake.issue(PROJECT, b)
    assert (issue.due_date, sorted(issue.labels), issue.assignee_ids) == ("2026-11-17", ["sla:SEV3"], [])
    # C: SEV2, answered in 20 minutes, waiting for the reporter since 10:00: paused, no due date.
    issue = fake.issue(PROJECT, c)
    assert (issue.due_date, sorted(issue.labels)) == (None, ["priority::2", "sla:SEV2", "status::waiting"])
    # D: closed before sla-sync ever ran: untouched.
    issue = fake.issue(PROJECT, d)
    assert (issue.due_date, issue.labels, people_notes(fake, d)) == (None, ["priority::1"], [])

    fake.reset_counts()
    second = sla_sync(env, "run", str(policy), "--now", NOW, "--state", state)
    assert fake.writes == 0
    assert set(fake.by_method()) == {"GET"}
    assert "0 updated" in second.stderr
    assert people_notes(fake, a) == [(STEP_2, True)]


def test_check_online_passes_and_names_a_missing_user(setup: tuple[GitLabFake, Path, dict[str, str]]) -> None:
    fake, policy, env = setup
    ok = sla_sync(env, "check", "--online", str(policy))
    assert f"{policy}: tracker: project, fields, users and groups are all in place" in ok.stdout

    policy.write_text(policy.read_text().replace("assign: incident-manager", "assign: incident-commander"))
    bad = sla_sync(env, "check", "--online", str(policy), code=2)
    assert bad.stdout.splitlines()[-1] == (
        f"{policy}: tracker: create the user 'incident-commander' (a username; GitLab assigns and mentions users, "
        "not groups), or remove it from the policy"
    )
    assert fake.writes == 0


def test_check_online_warns_of_history_gitlab_cannot_give(setup: tuple[GitLabFake, Path, dict[str, str]]) -> None:
    """A custom metric reading custom-field changes: GitLab has none over REST. A
    warning, not a failure: the rest of the policy works."""
    fake, policy, env = setup
    text = policy.read_text().replace("levels:\n", "metrics:\n  until_mitigated:\n    start: [created]\n"
                                      "    stop: [{field: {Impact: [none]}}]\n  next_reply:\n"
                                      "    start: [{comment: customer}]\n    stop: [{comment: agent}]\n"
                                      "    repeat: true\nlevels:\n", 1)
    policy.write_text(text.replace("resolution: 8h}", "resolution: 8h, until_mitigated: 4h, next_reply: 1h}", 1))
    ok = sla_sync(env, "check", "--online", str(policy))
    assert ok.stdout.splitlines()[-2:] == [
        f"{policy}: tracker: warning: until_mitigated reads custom fields changes, which gitlab cannot give: "
        "GitLab has no custom fields over REST (severity and weight changes are not mapped)",
        f"{policy}: tracker: project, fields, users and groups are all in place",
    ]
    assert fake.writes == 0


def test_a_wrong_token_is_a_clear_message_and_exit_2(setup: tuple[GitLabFake, Path, dict[str, str]],
                                                     tmp_path: Path) -> None:
    fake, policy, env = setup
    seed(fake)
    done = sla_sync({**env, "GITLAB_TOKEN": "glpat-not-the-token"}, "run", str(policy), "--now", NOW,
                    "--state", str(tmp_path / "s.sqlite"), code=2)
    assert done.stderr.strip().splitlines()[-1] == (
        f"sla-sync: authentication failed for {fake.url}: check the token in GITLAB_TOKEN "
        "(a personal, group or project access token with the api scope, not expired)"
    )
    assert "glpat-not-the-token" not in done.stdout + done.stderr
