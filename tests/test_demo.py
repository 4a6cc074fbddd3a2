"""``scripts/demo.py`` without Redmine: its seeded desk reads like a working day.

Each scenario is turned into the neutral issue the Redmine adapter maps it to (a
note is an agent's when its author is one of the fixture's agents) and planned as
the demo's first pass plans it (no store yet: every issue is adopted), with the
demo's copy of the ready policy at the demo's ``NOW``.
"""

from __future__ import annotations

import urllib.request
from collections import Counter
from itertools import pairwise
from pathlib import Path

import demo
import pytest
import redmine_local as rl

from sla_sync.model import Event, Issue, IssueSla, Observed, State
from sla_sync.notify import AppriseSender, Message
from sla_sync.policy import Policy, parse_policy
from sla_sync.sync import Outcome, plan_all
from sla_sync.tracker import Tracked
from tests.support import ts

ROOT = Path(__file__).resolve().parent.parent
READY = (ROOT / "policies" / "redmine-support.yaml").read_text()
OPEN = [(n, s) for n, s in enumerate(demo.SCENARIOS, start=1) if s.expect != "closed"]


def neutral(number: int, scenario: demo.Scenario) -> Issue:
    events, status = [], "New"
    for act in scenario.acts:
        when = int(demo.at(act.when).timestamp())
        if act.status is not None:
            events.append(Event(when, "status", from_=status, to=act.status, author=act.by))
            status = act.status
        if act.note is not None:
            events.append(Event(when, "comment", public=not act.private, by_agent=act.by in rl.AGENTS,
                                author=act.by))
    return Issue(key=str(number), created_at=int(demo.at(scenario.created).timestamp()), status=status,
                 title=scenario.subject, priority=scenario.priority, type=scenario.tracker, events=tuple(events))


def demo_copy() -> Policy:
    return parse_policy(demo.demo_policy(READY, "http://127.0.0.1:3999"), "demo.yaml", ["redmine"])


def first_pass() -> dict[str, Outcome]:
    tracked = [Tracked(neutral(n, s), Observed(), "1") for n, s in OPEN]
    outcomes = plan_all(tracked, {}, demo_copy(), ts(demo.NOW), known=(), cursor=None)
    return {o.key: o for o in outcomes}


def story(sla: IssueSla) -> str:
    metrics = sla.metrics.values()
    if any(m.state is State.BREACHED for m in metrics):
        return "breached"
    if any(m.at_risk for m in metrics):
        return "at risk"
    return {State.MET: "met", State.PAUSED: "paused", State.RUNNING: "running"}[sla.metrics["resolution"].state]


PASS = first_pass()


@pytest.mark.parametrize(("number", "scenario"), OPEN, ids=[s.subject for _, s in OPEN])
def test_each_issue_is_what_its_scenario_says(number: int, scenario: demo.Scenario) -> None:
    outcome = PASS[str(number)]
    acting = sorted(set(outcome.plan.fired) - set(outcome.plan.marked))
    assert (story(outcome.sla), acting) == (scenario.expect, list(scenario.steps))


def test_the_demo_reads_like_a_working_day() -> None:
    stories = Counter(story(o.sla) for o in PASS.values())
    assert stories == {"met": 7, "running": 4, "paused": 1, "at risk": 3, "breached": 2}
    assert [s.subject for _, s in OPEN if reopened(s)] == ["Duplicate charges on recurring payments"]


def reopened(scenario: demo.Scenario) -> bool:
    statuses = [a.status for a in scenario.acts if a.status is not None]
    return any(a == "Resolved" and b not in ("Resolved", "Closed") for a, b in pairwise(statuses))


def test_only_the_breach_messages_the_oncall_channel() -> None:
    notices = [(key, n.step, n.channel) for key, o in PASS.items() for n in o.plan.notices]
    breached = next(n for n, s in OPEN if s.steps == (3,))
    assert notices == [(str(breached), 3, "oncall")]


def test_the_demo_copy_of_the_policy_has_the_channel_and_the_local_url() -> None:
    text = demo.demo_policy(READY, "http://127.0.0.1:3999")
    policy = demo_copy()
    assert "url: http://127.0.0.1:3999" in text and "127.0.0.1:3000" not in text
    assert list(policy.notify.channels) == ["oncall"]
    assert [s.spec.notify for s in policy.steps] == [(), (), ("oncall",)]


def test_the_receiver_prints_what_apprise_sends_to_its_url(capsys: pytest.CaptureFixture[str]) -> None:
    with demo.Receiver().running() as receiver:
        sender = AppriseSender(demo_copy().notify, {"SLA_SYNC_ONCALL_URL": receiver.url})
        sender.send(Message("oncall", "[acme-support] 3 resolution breached: step 3", "3: Dashboard\nlevel P3"))
        demo.print_received(receiver)
        demo.print_received(receiver)
    assert capsys.readouterr().out == (
        "oncall received: [acme-support] 3 resolution breached: step 3\n"
        "    3: Dashboard\n"
        "    level P3\n"
        "oncall received nothing\n"
    )


def test_the_receiver_keeps_a_body_that_is_not_json() -> None:
    with demo.Receiver().running() as receiver:
        url = receiver.url.replace("json://", "http://")
        urllib.request.urlopen(urllib.request.Request(url, data=b"plain text", method="POST"), timeout=10).close()
        assert receiver.take() == [{"title": "(not JSON)", "message": "plain text"}]
        assert receiver.take() == []
