"""A Redmine policy acts on its own project only: never on an issue of a subproject
(unless ``tracker.include_subprojects: true``), against the real Redmine.

Redmine lists a project's issues together with its subprojects' by default (the
setting "Display subprojects issues on main projects by default"), so a policy for
``support`` would otherwise evaluate and write into the issues of ``support-eu``,
a team with an agreement of its own.  Each test creates (once per Redmine) the
child project ``support-eu`` under ``support``, with the same members.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import pytest

from sla_sync.errors import TrackerError
from sla_sync.model import Change
from sla_sync.policy import Policy, parse_policy
from sla_sync.state import Store
from sla_sync.sync import run_pass
from tests.contract.harness import BODY, BREACH_NOTE, fill
from tests.contract.redmine_harness import KEY_ENV, NAMES

pytestmark = pytest.mark.redmine

CHILD = "support-eu"
CREATED = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
NOW = int(datetime(2026, 11, 2, 18, 0, tzinfo=UTC).timestamp())  # P1 (8h) breached at 16:00


def child_project(redmine: Any) -> int:
    """The id of ``support-eu``, a subproject of ``support`` (created on first use)."""
    code, body = redmine.admin.request("GET", f"/projects/{CHILD}.json")
    if code == 200:
        return int(body["project"]["id"])
    fx = redmine.fx
    code, body = redmine.admin.request("POST", "/projects.json", {"project": {
        "name": "Support EU", "identifier": CHILD, "parent_id": fx["project"]["id"], "is_public": False,
        "inherit_members": True, "enabled_module_names": ["issue_tracking"],
        "tracker_ids": list(fx["trackers"].values()),
    }})
    assert code == 201, (code, body)
    return int(body["project"]["id"])


def child_issue(redmine: Any, title: str) -> str:
    """An urgent issue of the subproject, reported by a customer at ``CREATED``."""
    from redmine_local import stamp

    fields = {"project_id": child_project(redmine), "subject": title, "priority_id": redmine.fx["priorities"]["Urgent"],
              "tracker_id": redmine.fx["trackers"]["Support"]}
    code, body = redmine._as("erin").request("POST", "/issues.json", {"issue": fields})
    assert code == 201, (code, body)
    key = str(body["issue"]["id"])
    stamp(redmine.instance, int(key), CREATED, created=True)
    return key


def policy(redmine: Any, *, include_subprojects: bool = False) -> Policy:
    os.environ[KEY_ENV] = redmine.instance.admin_api_key
    head = (
        "name: scope-redmine\ntracker:\n  kind: redmine\n"
        f"  url: {redmine.proxy.url}\n  project: support\n  api_key_env: {KEY_ENV}\n"
        "  agents: {groups: [support-agents]}\n  timeout: 5\n"
        + ("  include_subprojects: true\n" if include_subprojects else "")
    )
    return parse_policy(head + fill(BODY, NAMES), "<scope-redmine>")


def untouched(redmine: Any, key: str) -> None:
    observed = redmine.observe(key)
    assert (observed.due_date, observed.labels, observed.assignee) == (None, frozenset(), None)
    assert redmine.notes(key) == [] and redmine.watchers(key) == set()


def test_a_pass_never_reads_nor_writes_an_issue_of_a_subproject(redmine: Any, tmp_path: Any) -> None:
    theirs = child_issue(redmine, "Printer down in Madrid")
    ours = redmine.create_issue("Checkout down", priority="P1", created_at=CREATED)
    paths: list[str] = []
    redmine.hook(lambda method, path: paths.append(path))
    pol = policy(redmine)

    result = run_pass(redmine.tracker(pol), pol, Store(str(tmp_path / "s.sqlite")), NOW, apply=True, run_id="scope")

    assert result.errors == []
    assert [o.key for o in result.outcomes] == [ours]
    assert redmine.observe(ours).labels >= {"sla:P1", "sla:breached", "sla:escalated-2"}
    assert [text for text, _ in redmine.notes(ours)] == [BREACH_NOTE]
    untouched(redmine, theirs)
    assert not [p for p in paths if f"/issues/{theirs}." in p or f"/issues/{theirs}/" in p], paths
    lists = [p for p in paths if p.startswith("/issues.json")]
    assert lists and all("subproject_id=%21%2A" in p or "subproject_id=!*" in p for p in lists), lists


def test_a_write_to_an_issue_of_a_subproject_is_refused(redmine: Any) -> None:
    theirs = child_issue(redmine, "Printer down in Madrid")
    pol = policy(redmine)
    with pytest.raises(TrackerError) as caught:
        redmine.tracker(pol).apply(theirs, [Change("add_labels", values=("sla:P1",)),
                                            Change("comment", value="Escalated.", step=2)])
    message = str(caught.value)
    assert f"issue {theirs}" in message and "Support EU" in message and "include_subprojects" in message
    untouched(redmine, theirs)


def test_include_subprojects_takes_the_subprojects_issues_in(redmine: Any, tmp_path: Any) -> None:
    theirs = child_issue(redmine, "Printer down in Madrid")
    ours = redmine.create_issue("Checkout down", priority="P1", created_at=CREATED)
    pol = policy(redmine, include_subprojects=True)

    result = run_pass(redmine.tracker(pol), pol, Store(str(tmp_path / "s.sqlite")), NOW, apply=True, run_id="scope")

    assert result.errors == []
    assert sorted(o.key for o in result.outcomes) == sorted([ours, theirs])
    for key in (ours, theirs):
        assert redmine.observe(key).labels >= {"sla:P1", "sla:breached", "sla:escalated-2"}
        assert [text for text, _ in redmine.notes(key)] == [BREACH_NOTE]


def test_include_subprojects_is_a_redmine_setting() -> None:
    from sla_sync.positions import PolicyError

    text = ("name: x\ntracker: {kind: gitlab, url: 'https://g.example.com', project: a/b, api_key_env: K,\n"
            "  include_subprojects: true}\ncalendars: {always: {timezone: UTC, hours: 24x7}}\n"
            "levels: {P1: {calendar: always, resolution: 8h}}\nclassify: [{level: P1}]\n")
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "g.yaml")
    assert [p.line for p in caught.value.problems if "include_subprojects" in p.message] == [3]
