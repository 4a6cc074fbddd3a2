"""The contract harness over the in-memory tracker (``tests/fakes/memory.py``).

No server: the harness seeds the ``Memory`` as people would and reads it back
directly, never through the adapter.  The people: ``alice``, ``bob`` and ``carol``
are agents (``tracker.agents.users``), ``erin`` and ``dave`` customers, ``manager``
a user; sla-sync's token belongs to ``sla-sync``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date, datetime

from sla_sync.calendar import utc_seconds
from sla_sync.model import Observed
from sla_sync.policy import Policy, parse_policy
from sla_sync.tracker import AdapterOptions, Tracker
from tests.contract.harness import fill
from tests.fakes.memory import Memory, MemoryTracker

PROJECT = "helpdesk"
URL = "memory://helpdesk"
STATUS = {"new": "New", "working": "In Progress", "waiting": "Waiting on customer", "resolved": "Resolved"}
NAMES = {**STATUS, "P1": "Urgent", "P2": "High", "P3": "Normal"}
AGENTS, CUSTOMERS = ("alice", "bob", "carol"), ("erin", "dave")
TOKEN_ENV = "SLA_SYNC_TEST_MEMORY_TOKEN"
TOKEN = "memory-sla-sync-secret"


class MemoryHarness:
    kind = "memory"
    comment_method = "PUT"  # an issue's values and its note go in one PUT, as on Redmine

    def __init__(self) -> None:
        self.memory = self._fresh()

    @staticmethod
    def _fresh() -> Memory:
        return Memory(projects=(PROJECT,), users=(*AGENTS, *CUSTOMERS, "manager"), token=TOKEN,
                      closed=(STATUS["resolved"], "Closed"))

    def reset(self) -> None:
        self.memory = self._fresh()

    def close(self) -> None:
        """Nothing to stop: no server."""

    def policy(self, body: str) -> Policy:
        os.environ[TOKEN_ENV] = TOKEN
        head = (
            "name: contract-memory\n"
            "tracker:\n"
            "  kind: memory\n"
            f"  url: {URL}\n"
            f"  project: {PROJECT}\n"
            f"  api_key_env: {TOKEN_ENV}\n"
            f"  agents: {{users: [{', '.join(AGENTS)}]}}\n"
        )
        return parse_policy(head + fill(body, NAMES), "<contract-memory>")

    def tracker(self, policy: Policy, sleep: Callable[[float], None] | None = None) -> Tracker:
        spec = policy.tracker
        assert spec is not None and spec.agents is not None
        options = AdapterOptions(agents_users=tuple(spec.agents.users),
                                 sleep=sleep if sleep is not None else (lambda _s: None),
                                 max_wait=spec.max_wait)
        return MemoryTracker(self.memory, url=spec.url, project=spec.project, secret=os.environ[TOKEN_ENV],
                             options=options, attempts=spec.max_attempts)

    # -- seeding -------------------------------------------------------------------------

    def create_issue(self, title: str, *, priority: str, created_at: datetime, by: str = "erin") -> str:
        return self.memory.create(title, priority=NAMES.get(priority, priority), by=by, at=utc_seconds(created_at),
                                  status=STATUS["new"])

    def comment(self, key: str, text: str, *, by: str, public: bool, at: datetime) -> None:
        self.memory.comment(key, text, by=by, public=public, at=utc_seconds(at))

    def set_status(self, key: str, role: str, *, at: datetime, by: str = "alice") -> None:
        self.memory.set_status(key, STATUS[role], by=by, at=utc_seconds(at))

    def delete_issue(self, key: str) -> None:
        del self.memory.issues[key]

    def set_due_date(self, key: str, due: date | None, *, by: str = "alice") -> None:
        self.memory.set_field(key, "due_date", due.isoformat() if due else None, by=by)

    def add_labels(self, key: str, labels: list[str], *, by: str) -> None:
        self.memory.relabel(key, add=labels, by=by)

    def set_assignee(self, key: str, login: str | None, *, by: str = "alice") -> None:
        self.memory.set_field(key, "assignee", login, by=by)

    # -- reading back ------------------------------------------------------------------------

    def observe(self, key: str) -> Observed:
        issue = self.memory.issues[key]
        return Observed(issue.due_date, frozenset(issue.labels), issue.assignee, remaining=issue.remaining,
                        health_status=issue.health_status)

    def notes(self, key: str) -> list[tuple[str, bool]]:
        return [(n.text, n.private) for n in self.memory.issues[key].notes]

    def watchers(self, key: str) -> set[str]:
        return set(self.memory.issues[key].watchers)

    # -- requests and faults -------------------------------------------------------------------

    def writes_at(self, key: str, at: datetime) -> None:
        pass  # the fake's clock follows the seeded history: sla-sync's writes come after it

    def requests(self) -> dict[str, int]:
        return dict(self.memory.counts)

    def reset_requests(self) -> None:
        self.memory.counts.clear()

    def fail_next(self, status: int, times: int = 1, *, retry_after: float | None = None,
                  method: str | None = None, after: bool = False) -> None:
        self.memory.fail_next(status, times, retry_after=retry_after, method=method, after=after)
