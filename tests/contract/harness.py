"""What the contract suite needs from each tracker under test.

A harness owns one tracker (the real Redmine, or an in-process HTTP fake of GitLab
or Jira), seeds it, reads it back *without* going through the adapter under test,
injects faults, and counts requests.  Every adapter passes the same suite
(``tests/contract/test_contract.py``) through its harness.

Statuses are named by role so one suite fits every tracker: ``new``, ``working``,
``waiting`` (a pause status), ``resolved``.  The harness's ``policy()`` maps them to
the tracker's own names in the policy it builds.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Protocol

from sla_sync.model import Observed
from sla_sync.policy import Policy
from sla_sync.tracker import Tracker
from tests.fakes.chaos import Chaos

ROLES = ("new", "working", "waiting", "resolved")

# The policy body the contract suite, the fault suite and the request benchmark use:
# a 24x7 UTC calendar so the arithmetic is plain, and two escalation steps.
BODY = """
calendars:
  always:
    timezone: UTC
    hours: 24x7
levels:
  P1: {calendar: always, first_response: 30m, resolution: 8h}
  P2: {calendar: always, first_response: 2h, resolution: 24h}
  P3: {calendar: always, first_response: 8h, resolution: 80h}
classify:
  - if: {priority: "{P1}"}
    level: P1
  - if: {priority: "{P2}"}
    level: P2
  - level: P3
clock:
  pause_statuses: ["{waiting}"]
  resolved_statuses: ["{resolved}"]
escalate:
  - when: resolution 50%
    watchers: [manager]
  - when: resolution breached
    assign: manager
    comment: "SLA breached: escalated to the manager."
"""
BREACH_NOTE = "SLA breached: escalated to the manager."
REMAINING_FIELD = "SLA hours left"  # the number field each harness's tracker has for the time left

# The suite's custom metrics: reply cycles (repeating) and the first answer; the due
# date follows next_reply.  REPLY_STEP adds a step on next_reply (once per cycle).
CUSTOM = BODY.replace("levels:", """metrics:
  next_reply:                    # each customer message wants an answer
    start: [{comment: customer}]
    stop: [{comment: agent}]
    repeat: true
  first_answer:                  # the first customer message's answer
    start: [{comment: customer}]
    stop: [{comment: agent}]
levels:""").replace("P3: {calendar: always, first_response: 8h, resolution: 80h}",
                    "P3: {calendar: always, first_response: 8h, next_reply: 4h, first_answer: 2h, "
                    "resolution: 80h}").replace("""escalate:
  - when: resolution 50%
    watchers: [manager]""", """escalate:
  - when: first_answer breached
    watchers: [manager]""") + "writeback: {due_date: next_reply}\n"

REPLY_NOTE = "A customer waits for an answer."
REPLY_STEP = CUSTOM.replace("""  - when: first_answer breached
    watchers: [manager]""", """  - when: next_reply 75%
    comment: A customer waits for an answer.
    private: true""")


class Harness(Protocol):
    kind: str

    def reset(self) -> None:
        """Forget every issue (and injected fault, and request count)."""

    def policy(self, body: str) -> Policy:
        """A policy for this tracker: its ``tracker`` section, then ``body`` (YAML
        with calendars, levels, classify, escalate...).  In ``body`` the strings
        ``{waiting}``, ``{resolved}`` ... stand for this tracker's status names, and
        ``{P1}``/``{P2}``/``{P3}`` for priority names that classify as the
        suite's levels."""

    def tracker(self, policy: Policy, sleep: Callable[[float], None] | None = None) -> Tracker:
        """A fresh adapter for the policy (retry waits go to ``sleep``)."""

    def create_issue(self, title: str, *, priority: str, created_at: datetime, by: str = "erin") -> str:
        """A new issue created at ``created_at`` by a customer; returns its key.
        ``priority`` is a role: ``P1``, ``P2`` or ``P3`` (mapped like in ``policy``)."""

    def comment(self, key: str, text: str, *, by: str, public: bool, at: datetime) -> None:
        """A note by ``by`` (an agent: alice, bob, carol; a customer: erin, dave)."""

    def set_status(self, key: str, role: str, *, at: datetime, by: str = "alice") -> None:
        """Move the issue to the status playing ``role``."""

    def delete_issue(self, key: str) -> None:
        """The issue is deleted (the delta tests; the real Redmine's harness has none)."""

    def set_due_date(self, key: str, due: date | None, *, by: str = "alice") -> None:
        """A person changes the due date."""

    def set_assignee(self, key: str, login: str | None, *, by: str = "alice") -> None:
        """A person changes the assignee."""

    def add_labels(self, key: str, labels: list[str], *, by: str) -> None:
        """A person adds labels (Redmine: values of the SLA field), as a customer with
        edit rights could."""

    def observe(self, key: str) -> Observed:
        """The issue's due date, SLA labels and assignee, read directly; and where
        the tracker has them, the time-left field (``REMAINING_FIELD``) and the
        health status."""

    def notes(self, key: str) -> list[tuple[str, bool]]:
        """(text, private) of every note, oldest first, read directly."""

    def watchers(self, key: str) -> set[str]:
        """Logins watching the issue."""

    def writes_at(self, key: str, at: datetime) -> None:
        """sla-sync's last write to the issue happened at ``at`` on the tracker's
        clock (the pass's ``now``).  The fakes' clocks already follow the seeded
        history; the real Redmine stamps its own clock, which the test moves."""

    def requests(self) -> dict[str, int]:
        """Requests since the last reset of the counter, by method ("GET", "PUT"...)."""

    def reset_requests(self) -> None: ...

    def fail_next(self, status: int, times: int = 1, *, retry_after: float | None = None,
                  method: str | None = None, after: bool = False) -> None:
        """The next ``times`` requests (of ``method``, or any) get ``status``.

        With ``after`` the request is carried out first and only its answer is
        replaced: the write landed but the client cannot know it."""


class Chaotic(Protocol):
    """What the fault-injection suite needs on top of ``Harness``."""

    def chaos(self, share: float, seed: int) -> Chaos:
        """From now on, random faults on ``share`` of the requests (0 stops them)."""

    def hook(self, callback: Callable[[str, str], None] | None) -> None:
        """Call ``callback(method, path)`` as each request arrives (``None``: no hook)."""


def fill(body: str, names: dict[str, str]) -> str:
    """Replace the ``{role}`` placeholders of a policy body (YAML's own braces stay)."""
    for key, value in names.items():
        body = body.replace("{" + key + "}", value)
    return body
