"""The sync job end to end: the ``sla-sync`` command against the Jira Cloud fake.

The ready policy ``policies/jira-service-desk.yaml`` is used as it ships, with only
its tracker URL pointed at the fake, which runs in the test process on a real port
while the command runs in a child process.  Cloud names users by e-mail, accountId
or display name: the policy's ``l2-engineer`` and ``service-desk-lead`` are the
display names of two team accounts here.

The policy's office calendar is Europe/London, Monday to Friday 08:30-17:30 (9 h a
day); London is on UTC in November 2026, which has no English bank holiday.
2026-11-02 is a Monday; every run is at Tuesday 2026-11-03 12:00 UTC.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.jira_fake import JiraFake

ROOT = Path(__file__).resolve().parent.parent
CLI = str(ROOT / ".venv" / "bin" / "sla-sync")
TOKEN = "jira-cli-test-token"
NOW = "2026-11-03T12:00:00Z"
DUE = "customfield_10050"
SEVERITY = "customfield_10070"
BREACH_NOTE = "SLA: resolution target breached; escalated to the service desk lead."


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def build(*, with_lead: bool = True, with_due_field: bool = True) -> JiraFake:
    fake = JiraFake(cloud=True, token=TOKEN)
    fake.add_user("alice", "Alice Agent", groups=["service-desk-team"])
    fake.add_user("erin", "Erin Customer")
    fake.add_user("l2", "l2-engineer")
    if with_lead:
        fake.add_user("lead", "service-desk-lead")
    fake.add_project("SD", "Service Desk")
    if with_due_field:
        fake.add_field(DUE, "SLA due", "datetime")
    fake.add_field("customfield_10060", "Satisfaction", "sd-feedback")
    fake.add_field(SEVERITY, "Severity", "option")
    fake.start()
    return fake


@pytest.fixture
def fake() -> Iterator[JiraFake]:
    jira = build()
    yield jira
    jira.close()


def policy_file(fake: JiraFake, tmp_path: Path) -> Path:
    text = (ROOT / "policies" / "jira-service-desk.yaml").read_text()
    assert "url: https://acme.atlassian.net" in text
    path = tmp_path / "jira-service-desk.yaml"
    path.write_text(text.replace("url: https://acme.atlassian.net", f"url: {fake.url}"))
    return path


def sla_sync(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JIRA_USER": "sla-bot@example.com", "JIRA_API_TOKEN": TOKEN}
    done = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert "Traceback" not in done.stderr, done.stderr
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def seed(fake: JiraFake) -> dict[str, str]:
    """Six issues; each expectation is worked out where it is asserted."""
    keys = {
        "outage": fake.create_issue("SD", "Checkout down", created=at("2026-11-02T10:00:00"), by="erin",
                                    priority="Highest"),
        "high": fake.create_issue("SD", "Slow reports", created=at("2026-11-02T09:30:00"), by="erin", priority="High"),
        "waiting": fake.create_issue("SD", "Export fails", created=at("2026-11-02T14:00:00"), by="erin",
                                     priority="High"),
        "done": fake.create_issue("SD", "Typo", created=at("2026-11-02T09:00:00"), by="erin"),
        "request": fake.create_issue("SD", "New laptop", created=at("2026-11-03T09:00:00"), by="erin",
                                     issuetype="Service Request"),
        "severe": fake.create_issue("SD", "Data loss", created=at("2026-11-03T11:00:00"), by="erin", priority="Low",
                                    custom={SEVERITY: "Sev-2"}),
    }
    fake.comment(keys["high"], "Looking into it", at=at("2026-11-02T10:00:00"), by="alice")
    fake.transition(keys["high"], "In Progress", at=at("2026-11-02T10:00:00"), by="alice")
    fake.comment(keys["waiting"], "Which file?", at=at("2026-11-02T14:30:00"), by="alice")
    fake.transition(keys["waiting"], "Waiting for customer", at=at("2026-11-02T15:00:00"), by="alice")
    fake.transition(keys["done"], "Resolved", at=at("2026-11-02T11:00:00"), by="alice")
    return keys


def compact(changes: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(c["kind"], c.get("value") or tuple(c.get("values") or ()), c.get("step")) for c in changes]


def test_run_writes_what_the_policy_says_and_a_second_run_nothing(fake: JiraFake, tmp_path: Path) -> None:
    keys = seed(fake)
    policy, state = policy_file(fake, tmp_path), str(tmp_path / "state.sqlite")
    k = keys

    planned = sla_sync("plan", str(policy), "--now", NOW, "--state", state, "--format", "json")
    plan = {i["key"]: compact(i["changes"]) for i in json.loads(planned.stdout)["issues"]}
    assert fake.writes == 0  # plan writes nothing
    # outage: Critical (Highest) on the 24x7 UTC calendar, 26h old: the 24h resolution was
    # breached at 2026-11-03 10:00 UTC, so both steps are due on this first pass: with
    # backlog_steps' default (last) step 2 acts and step 1 is only marked.
    assert plan[k["outage"]] == [
        ("due_date", "2026-11-03", None),
        ("due_instant", "2026-11-03T10:00:00Z", None),
        ("add_labels", ("sla:Critical", "sla:breached", "sla:escalated-1", "sla:escalated-2"), None),
        ("assign", "service-desk-lead", 2),
        ("comment", BREACH_NOTE, 2),
    ]
    # high: High on the office calendar. Resolution: Mon 09:30-17:30 (8h) + Tue 08:30-12:00
    # (3.5h) = 11.5h of 40h; the 28.5h left end Fri 13:30 (Tue 5.5h, Wed 9h, Thu 9h, Fri 5h).
    # The 9h workaround target passed on Tue at 09:30: breached.
    assert plan[k["high"]] == [
        ("due_date", "2026-11-06", None),
        ("due_instant", "2026-11-06T13:30:00Z", None),
        ("add_labels", ("sla:High", "sla:breached"), None),
    ]
    # waiting: answered at 14:30 by an agent, waiting for the customer since 15:00: the
    # clocks are paused, the due date is left alone.
    assert plan[k["waiting"]] == [("add_labels", ("sla:High",), None)]
    # request: a Service Request is Low (160h). Tue 09:00-12:00 = 3h; the 157h left: Tue
    # 5.5h, then 16 whole days (144h) to Wed Nov 25, and 7.5h on Thu Nov 26: 16:00.
    assert plan[k["request"]] == [
        ("due_date", "2026-11-26", None),
        ("due_instant", "2026-11-26T16:00:00Z", None),
        ("add_labels", ("sla:Low",), None),
    ]
    # severe: fields.severity Sev-2 makes it Critical; 1h old: resolution due at 11:00 the
    # next day, the 30m first response already breached.
    assert plan[k["severe"]] == [
        ("due_date", "2026-11-04", None),
        ("due_instant", "2026-11-04T11:00:00Z", None),
        ("add_labels", ("sla:Critical", "sla:breached"), None),
    ]
    assert k["done"] not in plan  # resolved, not even fetched on a first run

    ran = sla_sync("run", str(policy), "--now", NOW, "--state", state)
    assert "5 issues fetched (5 with new history), 5 updated, 2 escalation steps fired" in ran.stderr
    assert "0 errors" in ran.stderr

    outage = fake.issue(k["outage"])
    assert (outage.duedate, outage.custom[DUE]) == ("2026-11-03", at("2026-11-03T10:00:00"))
    assert outage.labels == ["sla:Critical", "sla:breached", "sla:escalated-1", "sla:escalated-2"]
    assert outage.assignee == "lead" and outage.watchers == set()  # step 1 (watchers) was only marked
    assert [(c.body, c.public, c.author) for c in outage.comments] == [(BREACH_NOTE, False, fake.api_user)]
    high = fake.issue(k["high"])
    assert (high.duedate, high.custom[DUE], high.labels) == ("2026-11-06", at("2026-11-06T13:30:00"),
                                                              ["sla:High", "sla:breached"])
    waiting = fake.issue(k["waiting"])
    assert (waiting.duedate, waiting.custom.get(DUE), waiting.labels) == (None, None, ["sla:High"])
    request = fake.issue(k["request"])
    assert (request.duedate, request.custom[DUE], request.labels) == ("2026-11-26", at("2026-11-26T16:00:00"),
                                                                       ["sla:Low"])
    severe = fake.issue(k["severe"])
    assert (severe.duedate, severe.labels) == ("2026-11-04", ["sla:Critical", "sla:breached"])
    assert fake.issue(k["done"]).labels == [] and fake.issue(k["done"]).histories[-1].author == "alice"
    assert fake.count("PUT", "/issue/{key}") == 5 and fake.count("POST", "/comment") == 1

    fake.reset_counts()
    again = sla_sync("run", str(policy), "--now", NOW, "--state", state)
    assert fake.writes == 0
    assert "acme-service-desk: nothing to change in 5 issues" in again.stdout
    # Jira's search carries the changelog: the first run did not re-read what it wrote,
    # this run reads it back from its search page; the third lists the five again (the
    # writes are seconds old on the fake's clock, inside the cursor's overlap) and finds
    # nothing new in them
    assert "5 issues fetched (5 with new history), 0 updated, 0 escalation steps fired, writes: none" in again.stderr
    assert fake.count("GET", "/issue/{key}") == 0

    fake.reset_counts()
    third = sla_sync("run", str(policy), "--now", NOW, "--state", state)
    assert fake.writes == 0
    assert "5 issues fetched (0 with new history), 0 updated, 0 escalation steps fired, writes: none" in third.stderr


def test_check_online_finds_everything_in_place(fake: JiraFake, tmp_path: Path) -> None:
    policy = policy_file(fake, tmp_path)

    done = sla_sync("check", "--online", str(policy))

    assert f"{policy}: tracker: project, fields, users and groups are all in place" in done.stdout


def test_check_online_says_what_an_admin_must_add(tmp_path: Path) -> None:
    fake = build(with_lead=False, with_due_field=False)
    try:
        policy = policy_file(fake, tmp_path)

        done = sla_sync("check", "--online", str(policy), check=False)

        assert done.returncode == 2
        lines = [line.removeprefix(f"{policy}: tracker: ") for line in done.stdout.splitlines()
                 if ": tracker: " in line]
        assert lines == [
            "create a custom field of type Date Time Picker for the exact due instant and add it to the edit screen "
            "of project 'SD', then set tracker.due_field to its id "
            "(it is 'customfield_10050' now, which does not exist)",
            "create the user 'service-desk-lead' or fix its name in the policy (Jira by e-mail address, accountId or "
            "display name), or remove it from the policy",
        ]
    finally:
        fake.close()
