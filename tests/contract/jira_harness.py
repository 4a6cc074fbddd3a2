"""The contract harness over the in-process Jira fake, Cloud or Data Center.

The suite's people are Jira users whose display name (Cloud) and username (Data
Center) are their login: ``alice``, ``bob``, ``carol`` (agents, in the group
``service-desk-team``), ``manager``, and the customers ``erin`` and ``dave``.  So
the suite's policy names (``assign: manager``) resolve exactly on both.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date, datetime

from sla_sync.adapters.jira import neutral_instant

from sla_sync.model import Observed
from sla_sync.policy import Policy, parse_policy
from sla_sync.tracker import Tracker, open_tracker
from tests.contract.harness import REMAINING_FIELD, fill
from tests.fakes.chaos import Chaos
from tests.fakes.http import Fault
from tests.fakes.jira_fake import JiraFake

STATUS = {"new": "Open", "working": "In Progress", "waiting": "Waiting for customer", "resolved": "Resolved"}
NAMES = {**STATUS, "P1": "Highest", "P2": "High", "P3": "Medium"}
USER_ENV = "SLA_SYNC_TEST_JIRA_USER"
TOKEN_ENV = "SLA_SYNC_TEST_JIRA_TOKEN"
TOKEN = "sla-sync-secret"
PROJECT = "SD"
DUE_FIELD = "customfield_10050"
REMAINING_ID = "customfield_10052"  # a Number Field called REMAINING_FIELD
AGENTS = ("alice", "bob", "carol")
CUSTOMERS = ("erin", "dave")


class JiraHarness:
    kind = "jira"
    comment_method = "POST"

    def __init__(self, *, cloud: bool = True, timezone: str = "America/New_York") -> None:
        self.cloud = cloud
        self.fake = JiraFake(cloud=cloud, timezone=timezone, token=TOKEN)
        for login in (*AGENTS, "manager", *CUSTOMERS):
            self.fake.add_user(login, login, groups=["service-desk-team"] if login in AGENTS else [])
        self.fake.add_project(PROJECT, "Service Desk")
        self.fake.add_field(DUE_FIELD, "SLA due", "datetime")
        self.fake.add_field(REMAINING_ID, REMAINING_FIELD, "number")
        self.fake.start()

    # -- set-up ---------------------------------------------------------------------

    def reset(self) -> None:
        self.fake.reset_issues()

    def close(self) -> None:
        self.fake.close()

    def policy(self, body: str) -> Policy:
        os.environ[TOKEN_ENV] = TOKEN
        os.environ[USER_ENV] = self.fake.users[self.fake.api_user].email or ""
        head = (
            f"name: contract-jira-{'cloud' if self.cloud else 'dc'}\n"
            "tracker:\n"
            "  kind: jira\n"
            f"  url: {self.fake.url}\n"
            f"  project: {PROJECT}\n"
            + (f"  user_env: {USER_ENV}\n" if self.cloud else "")
            + f"  api_key_env: {TOKEN_ENV}\n"
            "  agents: {groups: [service-desk-team]}\n"
            f"  due_field: {DUE_FIELD}\n"
            "  timeout: 2\n"
        )
        return parse_policy(head + fill(body, NAMES), "<contract-jira>")

    def tracker(self, policy: Policy, sleep: Callable[[float], None] | None = None) -> Tracker:
        return open_tracker(policy, os.environ, sleep=sleep if sleep is not None else (lambda _s: None))

    # -- seeding ----------------------------------------------------------------------

    def create_issue(self, title: str, *, priority: str, created_at: datetime, by: str = "erin") -> str:
        return self.fake.create_issue(PROJECT, title, created=created_at, by=by, priority=NAMES.get(priority, priority))

    def comment(self, key: str, text: str, *, by: str, public: bool, at: datetime) -> None:
        self.fake.comment(key, text, at=at, by=by, public=public)

    def set_status(self, key: str, role: str, *, at: datetime, by: str = "alice") -> None:
        self.fake.transition(key, STATUS[role], at=at, by=by)

    def delete_issue(self, key: str) -> None:
        del self.fake.issues[key]

    def set_due_date(self, key: str, due: date | None, *, by: str = "alice") -> None:
        self.fake.edit(key, by=by, duedate=due.isoformat() if due else None)

    def add_labels(self, key: str, labels: list[str], *, by: str) -> None:
        current = sorted(self.observe(key).labels | set(labels))
        self.fake.edit(key, by=by, labels=current)

    def set_assignee(self, key: str, login: str | None, *, by: str = "alice") -> None:
        self.fake.edit(key, by=by, assignee=login)

    # -- reading back ---------------------------------------------------------------------

    def observe(self, key: str) -> Observed:
        issue = self.fake.issue(key)
        instant = issue.custom.get(DUE_FIELD)
        left = issue.custom.get(REMAINING_ID)
        return Observed(issue.duedate, frozenset(issue.labels), issue.assignee,
                        neutral_instant(instant.isoformat()) if instant else None,
                        remaining=None if left is None else f"{left:g}")

    def notes(self, key: str) -> list[tuple[str, bool]]:
        return [(c.body, not c.public) for c in self.fake.issue(key).comments]

    def watchers(self, key: str) -> set[str]:
        return set(self.fake.issue(key).watchers)

    # -- requests and faults ----------------------------------------------------------------

    def writes_at(self, key: str, at: datetime) -> None:
        pass  # the fake's clock follows the seeded history: sla-sync's writes come after it

    def requests(self) -> dict[str, int]:
        return self.fake.by_method()

    def reset_requests(self) -> None:
        self.fake.reset_counts()

    def fail_next(self, status: int, times: int = 1, *, retry_after: float | None = None,
                  method: str | None = None, after: bool = False) -> None:
        self.fake.fail_next(Fault(status=status, retry_after=retry_after, method=method, after=after), times)

    # -- chaos (the fault-injection suite) ------------------------------------------------

    def chaos(self, share: float, seed: int) -> Chaos:
        self.fake.chaos = Chaos(share, seed) if share > 0 else None
        return self.fake.chaos or Chaos(0, seed)

    def hook(self, callback: Callable[[str, str], None] | None) -> None:
        self.fake.on_request = callback
