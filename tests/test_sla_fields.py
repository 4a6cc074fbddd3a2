"""The SLA fields to filter and sort on, end to end: the `sla-sync` command writes the
time left into a number field (the real Redmine's integer field, the Jira fake's
number field) and GitLab's health status (the GitLab fake, Premium), once per
change, and `check --online` says what an admin must add.

Each tracker is used with its ready policy, its tracker URL pointed at the test
tracker and the writeback keys added; `--now` pins the clock.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sla_sync.adapters.gitlab import graphql_health, same_health
from sla_sync.adapters.jira import jira_number, neutral_number
from sla_sync.adapters.redmine import PART_WORDS, field_number, same_number, split_parts

from tests.fakes.gitlab_fake import DEVELOPER, GUEST, MAINTAINER, GitLabFake
from tests.fakes.jira_fake import JiraFake

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).with_name("sla-sync")
CLI = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "sla_sync.cli"]
LEFT = "SLA hours left"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def sla_sync(env: dict[str, str], *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == code, done.stdout + done.stderr
    return done


def with_writeback(policy: Path, *lines: str) -> None:
    """Add keys to the policy's `writeback` section (the ready policies all have one)."""
    text = policy.read_text()
    assert text.count("\nwriteback:\n") == 1
    policy.write_text(text.replace("\nwriteback:\n", "\nwriteback:\n" + "".join(f"  {line}\n" for line in lines)))


def tracker_lines(policy: Path, out: str) -> list[str]:
    return [line.removeprefix(f"{policy}: tracker: ") for line in out.splitlines() if ": tracker: " in line]


# -- the values as each tracker holds them -------------------------------------------------


@pytest.mark.parametrize(("value", "written"), [("3", "3"), ("0.5", "0"), ("2.5", "2"), ("-0.5", "-1"),
                                                ("-1", "-1"), ("-1.25", "-2")])
def test_an_integer_field_gets_the_hours_rounded_down(value: str, written: str) -> None:
    assert field_number(value) == written


@pytest.mark.parametrize(("a", "b", "same"), [("6.0", "6", True), ("6", 6, True), ("-2", "-2.00", True),
                                              ("6", "5", False), ("", "0", False), (None, "0", False)])
def test_redmine_compares_field_values_as_numbers(a: Any, b: Any, same: bool) -> None:
    assert same_number(a, b) is same


def test_a_refused_time_left_is_a_part_of_its_own() -> None:
    fields = {"due_date": "2026-11-05", "notes": "n", "private_notes": True,
              "custom_fields": [{"id": 1, "value": ["sla:P1"]}, {"id": 3, "value": "2"}, {"id": 7, "value": "t"}]}
    parts = split_parts(fields, labels_id=1, remaining_id=3)
    assert parts == {
        "due_date": {"due_date": "2026-11-05"},
        "remaining_field": {"custom_fields": [{"id": 3, "value": "2"}]},
        "due_field": {"custom_fields": [{"id": 7, "value": "t"}]},
        "notes": {"notes": "n", "private_notes": True, "custom_fields": [{"id": 1, "value": ["sla:P1"]}]},
    }
    assert PART_WORDS["remaining_field"] == "the time left"


@pytest.mark.parametrize(("value", "number"), [("3", 3), ("-1", -1), ("0.5", 0.5), ("-1.25", -1.25)])
def test_jira_gets_a_json_number(value: str, number: float) -> None:
    assert jira_number(value) == number and type(jira_number(value)) is type(number)


@pytest.mark.parametrize(("raw", "text"), [(3.0, "3.0"), (-1.5, "-1.5"), (7, "7"), (None, None), ("", None),
                                           (True, None), ({"value": 3}, None)])
def test_a_jira_number_field_is_read_as_text(raw: Any, text: str | None) -> None:
    assert neutral_number(raw) == text


@pytest.mark.parametrize(("rest", "graphql"), [("on_track", "onTrack"), ("needs_attention", "needsAttention"),
                                               ("at_risk", "atRisk")])
def test_gitlab_health_status_in_rest_and_graphql(rest: str, graphql: str) -> None:
    assert graphql_health(rest) == graphql
    assert same_health(graphql, rest) and same_health(graphql.upper(), rest) and same_health(rest, rest)
    assert not same_health(None, rest) and not same_health("onTrack", "at_risk")


# -- Redmine: an integer custom field ---------------------------------------------------------


def redmine_left(redmine: Any, key: str) -> str | None:
    left: str | None = redmine.observe(key).remaining
    return left


def test_redmine_gets_the_hours_left_once_per_working_hour(redmine_cli: tuple[Any, Path, dict[str, str]],
                                                          tmp_path: Path) -> None:
    redmine, policy, env = redmine_cli
    with_writeback(policy, f"remaining_field: {LEFT}")
    state = str(tmp_path / "state.sqlite")
    # P3 on the Madrid office calendar; 2 Nov is a Madrid holiday: at 13:00 Madrid on
    # Tuesday 4h of the 80h resolution ran (09-13), 76h are left.
    key = redmine.create_issue("Typo on the invoice", priority="Normal", created_at=at("2026-11-02T09:00:00"))

    sla_sync(env, "run", str(policy), "--now", "2026-11-03T12:00:00Z", "--state", state)
    assert redmine_left(redmine, key) == "76"

    redmine.reset_requests()
    again = sla_sync(env, "run", str(policy), "--now", "2026-11-03T12:00:00Z", "--state", state)
    assert set(redmine.requests()) == {"GET"}
    assert "0 updated" in again.stderr
    sla_sync(env, "run", str(policy), "--now", "2026-11-03T12:45:00Z", "--state", state)  # lunch: no work time
    assert set(redmine.requests()) == {"GET"}

    sla_sync(env, "run", str(policy), "--now", "2026-11-03T14:00:00Z", "--state", state)  # 15:00 Madrid: 5h ran
    assert redmine_left(redmine, key) == "75"
    assert redmine.requests().get("PUT") == 1
    code, body = redmine.admin.request("GET", f"/issues/{int(key)}.json?include=journals")
    assert code == 200
    field_id = str(redmine.fx["custom_fields"][LEFT])
    changes = [(j["user"]["name"], d.get("old_value"), d.get("new_value")) for j in body["issue"]["journals"]
               for d in j.get("details") or [] if d.get("property") == "cf" and d.get("name") == field_id]
    assert [(old, new) for _, old, new in changes] == [(None, "76"), ("76", "75")]
    assert {who for who, _, _ in changes} == {"Redmine Admin"}  # the API key's user wrote both


def test_redmine_rounds_half_hours_down_on_an_integer_field_and_writes_them_once(
        redmine_cli: tuple[Any, Path, dict[str, str]], tmp_path: Path) -> None:
    redmine, policy, env = redmine_cli
    with_writeback(policy, f"remaining_field: {LEFT}", "remaining_step: 30m")
    state = str(tmp_path / "state.sqlite")
    key = redmine.create_issue("Typo on the invoice", priority="Normal", created_at=at("2026-11-02T09:00:00"))
    # 14:30 Madrid on Tuesday: 4.5h ran, 75.5h are left; the integer field gets 75.
    sla_sync(env, "run", str(policy), "--now", "2026-11-03T13:30:00Z", "--state", state)
    assert redmine_left(redmine, key) == "75"
    redmine.reset_requests()
    sla_sync(env, "run", str(policy), "--now", "2026-11-03T13:30:00Z", "--state", state)
    assert set(redmine.requests()) == {"GET"}  # 75 is what an integer field can hold of 75.5: no write


def test_redmine_check_online_names_a_missing_or_wrong_field(redmine_cli: tuple[Any, Path, dict[str, str]],
                                                            tmp_path: Path) -> None:
    _redmine, policy, env = redmine_cli
    good = tmp_path / "good.yaml"
    good.write_text(policy.read_text())
    with_writeback(good, f"remaining_field: {LEFT}")
    assert "all in place" in sla_sync(env, "check", "--online", str(good)).stdout

    missing = tmp_path / "missing.yaml"
    missing.write_text(policy.read_text())
    with_writeback(missing, "remaining_field: SLA time left")
    done = sla_sync(env, "check", "--online", str(missing), code=2)
    assert tracker_lines(missing, done.stdout) == [
        "create an issue custom field 'SLA time left' (writeback.remaining_field): format Integer (Float for a "
        "remaining_step under an hour), 'Used as a filter' on, for all projects or the project 'support', and its "
        "trackers"]

    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(policy.read_text())
    with_writeback(wrong, "remaining_field: SLA", "remaining_step: 30m")
    done = sla_sync(env, "check", "--online", str(wrong), code=2)
    assert tracker_lines(wrong, done.stdout) == [
        "custom field 'SLA' (writeback.remaining_field) is of format list: it must be an Integer or Float field; "
        "create one or point remaining_field at one"]

    halves = tmp_path / "halves.yaml"
    halves.write_text(policy.read_text())
    with_writeback(halves, f"remaining_field: {LEFT}", "remaining_step: 30m")
    done = sla_sync(env, "check", "--online", str(halves), code=2)
    assert tracker_lines(halves, done.stdout) == [
        f"custom field '{LEFT}' is an Integer field, but writeback.remaining_step is not a whole number of hours: "
        "make the step whole hours (the default, 1h) or use a Float field"]


# -- Jira: a number custom field ----------------------------------------------------------------

JIRA_TOKEN = "jira-sla-fields-token"
LEFT_ID = "customfield_10042"


def jira_fake(left_type: str | None = "number") -> JiraFake:
    fake = JiraFake(cloud=True, token=JIRA_TOKEN)
    fake.add_user("alice", "Alice Agent", groups=["service-desk-team"])
    fake.add_user("erin", "Erin Customer")
    fake.add_user("l2", "l2-engineer")
    fake.add_user("lead", "service-desk-lead")
    fake.add_project("SD", "Service Desk")
    fake.add_field("customfield_10050", "SLA due", "datetime")
    if left_type is not None:
        fake.add_field(LEFT_ID, LEFT, left_type)
    fake.start()
    return fake


@pytest.fixture
def jira() -> Iterator[JiraFake]:
    fake = jira_fake()
    yield fake
    fake.close()


def jira_policy(fake: JiraFake, tmp_path: Path, field: str = LEFT) -> Path:
    text = (ROOT / "policies" / "jira-service-desk.yaml").read_text()
    policy = tmp_path / "jira-service-desk.yaml"
    policy.write_text(text.replace("url: https://acme.atlassian.net", f"url: {fake.url}"))
    with_writeback(policy, f'remaining_field: "{field}"')
    return policy


JIRA_ENV = {**os.environ, "JIRA_USER": "sla-bot@example.com", "JIRA_API_TOKEN": JIRA_TOKEN}


def field_history(fake: JiraFake, key: str) -> list[tuple[str, Any, Any]]:
    return [(h.author, item["fromString"], item["toString"]) for h in fake.issue(key).histories
            for item in h.items if item["fieldId"] == LEFT_ID]


def test_jira_gets_the_hours_left_once_per_working_hour(jira: JiraFake, tmp_path: Path) -> None:
    policy, state = jira_policy(jira, tmp_path), str(tmp_path / "state.sqlite")
    # High on the London office calendar (08:30-17:30): Monday 09:30-17:30 and Tuesday
    # 08:30-12:00 ran, 11.5h of the 40h resolution: 28.5h left, written as 28.
    high = jira.create_issue("SD", "Slow reports", created=at("2026-11-02T09:30:00"), by="erin", priority="High")
    jira.comment(high, "Looking into it", at=at("2026-11-02T10:00:00"), by="alice")
    # Highest on the 24x7 calendar, 26h old: the 24h resolution was breached 2h ago.
    outage = jira.create_issue("SD", "Checkout down", created=at("2026-11-02T10:00:00"), by="erin",
                               priority="Highest")

    sla_sync(JIRA_ENV, "run", str(policy), "--now", "2026-11-03T12:00:00Z", "--state", state)
    assert (jira.issue(high).custom[LEFT_ID], jira.issue(outage).custom[LEFT_ID]) == (28.0, -2.0)

    jira.reset_counts()
    again = sla_sync(JIRA_ENV, "run", str(policy), "--now", "2026-11-03T12:00:00Z", "--state", state)
    assert jira.writes == 0  # Jira answers 28.0: the same number as the plan's 28
    assert "0 updated" in again.stderr

    sla_sync(JIRA_ENV, "run", str(policy), "--now", "2026-11-03T13:00:00Z", "--state", state)
    assert (jira.issue(high).custom[LEFT_ID], jira.issue(outage).custom[LEFT_ID]) == (27.0, -3.0)
    assert jira.count("PUT", "/issue/{key}") == 2 and jira.writes == 2  # one write for each issue
    assert field_history(jira, high) == [(jira.api_user, None, "28"), (jira.api_user, "28", "27")]
    assert field_history(jira, outage) == [(jira.api_user, None, "-2"), (jira.api_user, "-2", "-3")]


def test_jira_check_online_names_a_missing_or_wrong_field(tmp_path: Path) -> None:
    for left_type, expected in (
        (None, f"create a custom field of type Number Field named '{LEFT}' for the time left "
               "(writeback.remaining_field) and add it to the edit screen of project 'SD'"),
        ("string", f"the field '{LEFT}' ({LEFT_ID}) is of type string, not a number: point "
                   "writeback.remaining_field at a Number Field custom field"),
    ):
        fake = jira_fake(left_type)
        try:
            policy = jira_policy(fake, tmp_path)
            done = sla_sync(JIRA_ENV, "check", "--online", str(policy), code=2)
            assert tracker_lines(policy, done.stdout) == [expected]
            assert fake.writes == 0
        finally:
            fake.close()
    fake = jira_fake()
    try:
        policy = jira_policy(fake, tmp_path, field=LEFT_ID)  # by id works as well as by name
        assert "all in place" in sla_sync(JIRA_ENV, "check", "--online", str(policy)).stdout
        assert fake.count("GET", "/field") == 1  # the due-instant and the time-left fields: one listing
    finally:
        fake.close()


# -- GitLab: the health status (Premium) --------------------------------------------------------

GITLAB_TOKEN = "glpat-sla-fields-secret-7"
PROJECT = "platform/incidents"


def gitlab_fake(premium: bool) -> GitLabFake:
    fake = GitLabFake(now=at("2026-11-03T10:00:00"), premium=premium)
    for login in ("sla-sync", "alice", "bob", "carol", "erin", "oncall-lead", "incident-manager"):
        fake.add_user(login)
    fake.add_project(PROJECT, {"sla-sync": MAINTAINER, "alice": DEVELOPER, "oncall-lead": DEVELOPER,
                               "incident-manager": DEVELOPER, "erin": GUEST})
    fake.token_for("sla-sync", GITLAB_TOKEN)
    fake.start()
    return fake


def gitlab_policy(fake: GitLabFake, tmp_path: Path) -> Path:
    text = (ROOT / "policies" / "gitlab-incidents.yaml").read_text()
    policy = tmp_path / "gitlab-incidents.yaml"
    policy.write_text(text.replace("url: https://gitlab.example.com", f"url: {fake.url}"))
    with_writeback(policy, "health_status: true")
    return policy


GITLAB_ENV = {**os.environ, "GITLAB_TOKEN": GITLAB_TOKEN}


def test_gitlab_health_status_goes_on_track_needs_attention_at_risk(tmp_path: Path) -> None:
    fake = gitlab_fake(premium=True)
    try:
        policy, state = gitlab_policy(fake, tmp_path), str(tmp_path / "state.sqlite")
        # SEV2 on the 24x7 calendar: first response 1h (at risk from 45m, the 75 % warning).
        iid = fake.create_issue(PROJECT, "Slow search", author="erin", created_at=at("2026-11-03T10:00:00"),
                                labels=["priority::2"])
        seen = []
        for now in ("2026-11-03T10:20:00", "2026-11-03T10:50:00", "2026-11-03T11:10:00"):
            fake.now = at(now)  # the fake's writes happen at the pass's instant
            sla_sync(GITLAB_ENV, "run", str(policy), "--now", now + "Z", "--state", state)
            seen.append(fake.issue(PROJECT, iid).health_status)
        assert seen == ["on_track", "needs_attention", "at_risk"]

        fake.reset_counts()
        again = sla_sync(GITLAB_ENV, "run", str(policy), "--now", "2026-11-03T11:10:00Z", "--state", state)
        assert fake.writes == 0
        assert "0 updated" in again.stderr
        notes = [(n["author"]["username"], n["body"]) for n in fake.issue(PROJECT, iid).notes
                 if n["system"] and "health status" in n["body"]]
        assert notes == [("sla-sync", "changed health status to **on track**"),
                         ("sla-sync", "changed health status to **needs attention**"),
                         ("sla-sync", "changed health status to **at risk**")]
    finally:
        fake.close()


def test_gitlab_without_premium_is_an_error_and_check_online_says_why(tmp_path: Path) -> None:
    fake = gitlab_fake(premium=False)
    try:
        policy, state = gitlab_policy(fake, tmp_path), str(tmp_path / "state.sqlite")
        assert "all in place" in sla_sync(GITLAB_ENV, "check", "--online", str(policy)).stdout  # no issue yet
        iid = fake.create_issue(PROJECT, "Slow search", author="erin", created_at=at("2026-11-03T10:00:00"),
                                labels=["priority::2"])
        done = sla_sync(GITLAB_ENV, "check", "--online", str(policy), code=2)
        assert tracker_lines(policy, done.stdout) == [
            f"GitLab shows no health status on the issues of '{PROJECT}': it is a GitLab Premium (or Ultimate) "
            "feature; upgrade, or remove writeback.health_status (the sla: labels work on every tier)"]

        fake.now = at("2026-11-03T10:20:00")
        ran = sla_sync(GITLAB_ENV, "run", str(policy), "--now", "2026-11-03T10:20:00Z", "--state", state, code=1)
        assert "GitLab did not set the health status to on_track" in ran.stderr
        assert "sla:SEV2" in fake.issue(PROJECT, iid).labels  # the rest of the issue's changes landed
    finally:
        fake.close()
