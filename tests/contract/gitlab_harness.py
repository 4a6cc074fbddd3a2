"""The contract harness over the in-process GitLab fake (``tests/fakes/gitlab_fake.py``).

GitLab has no status or priority field: the policy reads them from scoped labels
(``status::waiting``, ``priority::1``); an open issue without a status label is in
status ``opened`` and a closed one in ``closed``.  The read-back methods look at
the fake's state directly, never through the adapter, and translate GitLab's
encodings back into the suite's neutral view:

- ``observe`` leaves out the ``status::`` and ``priority::`` labels (they are the
  tracker's status and priority, not SLA labels);
- ``notes`` shows each person-readable note without sla-sync's hidden step marker
  (``<!-- sla-sync: ... -->``, invisible on GitLab) and leaves out sla-sync's
  ``cc @user`` notes and GitLab's system notes;
- ``watchers`` are the people mentioned in notes: GitLab's REST API cannot
  subscribe somebody else, so the adapter adds a watcher by mentioning them in an
  internal ``cc`` note, which makes them a participant who gets notified.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import date, datetime

from sla_sync.model import Observed
from sla_sync.policy import Policy, parse_policy
from sla_sync.tracker import Tracker, open_tracker
from tests.contract.harness import fill
from tests.fakes.chaos import Chaos
from tests.fakes.gitlab_fake import DEVELOPER, GUEST, MAINTAINER, GitLabFake

PROJECT = "support/helpdesk"
STATUS_LABEL = {"working": "status::in-progress", "waiting": "status::waiting"}
NAMES = {"new": "opened", "working": "in-progress", "waiting": "waiting", "resolved": "closed",
         "P1": "1", "P2": "2", "P3": "3"}
TOKEN_ENV = "SLA_SYNC_TEST_GITLAB_TOKEN"
TOKEN = "glpat-sla-sync-secret-0123456789"
BOT = "sla-sync"
AGENTS, CUSTOMERS = ("alice", "bob", "carol"), ("erin", "dave")
MARKER = re.compile(r"\s*<!-- sla-sync: [^<>]*? -->")
CC = re.compile(r"^cc( @[\w.-]+)+$")


class GitLabHarness:
    kind = "gitlab"
    comment_method = "POST"

    def __init__(self, timeout: float = 2.0) -> None:
        self.timeout = timeout
        self.fake = GitLabFake(premium=True)  # health status, for the suite's health test
        for login in (BOT, *AGENTS, *CUSTOMERS, "manager"):
            self.fake.add_user(login)
        self.fake.add_group("support-agents", AGENTS)
        self.fake.add_project(PROJECT, {BOT: MAINTAINER, **dict.fromkeys(AGENTS, DEVELOPER), "manager": DEVELOPER,
                                        **dict.fromkeys(CUSTOMERS, GUEST)})
        self.fake.token_for(BOT, TOKEN)
        self.url = self.fake.start()

    # -- set-up ----------------------------------------------------------------

    def reset(self) -> None:
        self.fake.reset_issues()

    def close(self) -> None:
        self.fake.close()

    def policy(self, body: str) -> Policy:
        os.environ[TOKEN_ENV] = TOKEN
        head = (
            "name: contract-gitlab\n"
            "tracker:\n"
            "  kind: gitlab\n"
            f"  url: {self.url}\n"
            f"  project: {PROJECT}\n"
            f"  api_key_env: {TOKEN_ENV}\n"
            "  agents: {groups: [support-agents]}\n"
            '  status_labels: "status::"\n'
            '  priority_labels: "priority::"\n'
            f"  timeout: {self.timeout}\n"
        )
        return parse_policy(head + fill(body, NAMES), "<contract-gitlab>")

    def tracker(self, policy: Policy, sleep: Callable[[float], None] | None = None) -> Tracker:
        return open_tracker(policy, os.environ, sleep=sleep if sleep is not None else (lambda _s: None))

    def _seen(self, at: datetime) -> None:
        """The fake's clock (for the adapter's writes) follows the seeded history."""
        self.fake.now = max(self.fake.now, at)

    # -- seeding -----------------------------------------------------------------

    def create_issue(self, title: str, *, priority: str, created_at: datetime, by: str = "erin") -> str:
        label = f"priority::{NAMES.get(priority, priority)}"
        self._seen(created_at)
        return str(self.fake.create_issue(PROJECT, title, author=by, created_at=created_at, labels=[label]))

    def comment(self, key: str, text: str, *, by: str, public: bool, at: datetime) -> None:
        self._seen(at)
        self.fake.add_note(PROJECT, int(key), text, by=by, at=at, internal=not public)

    def delete_issue(self, key: str) -> None:
        with self.fake.lock:
            del self.fake.project(PROJECT).issues[int(key)]

    def set_status(self, key: str, role: str, *, at: datetime, by: str = "alice") -> None:
        self._seen(at)
        issue = self.fake.issue(PROJECT, int(key))
        if role == "resolved":
            self.fake.set_state(PROJECT, issue.iid, "close", by=by, at=at)
            return
        if issue.state == "closed":
            self.fake.set_state(PROJECT, issue.iid, "reopen", by=by, at=at)
        if role in STATUS_LABEL:
            self.fake.change_labels(PROJECT, issue.iid, add=[STATUS_LABEL[role]], by=by, at=at)
        else:  # new: no status label
            old = [lbl for lbl in issue.labels if lbl.startswith("status::")]
            self.fake.change_labels(PROJECT, issue.iid, remove=old, by=by, at=at)

    def set_due_date(self, key: str, due: date | None, *, by: str = "alice") -> None:
        self.fake.set_due_date(PROJECT, int(key), due.isoformat() if due else None, by=by)

    def add_labels(self, key: str, labels: list[str], *, by: str) -> None:
        self.fake.change_labels(PROJECT, int(key), add=labels, by=by, at=self.fake.now)

    def set_assignee(self, key: str, login: str | None, *, by: str = "alice") -> None:
        self.fake.set_assignees(PROJECT, int(key), [login] if login else [], by=by)

    # -- reading back ------------------------------------------------------------

    def observe(self, key: str) -> Observed:
        issue = self.fake.issue(PROJECT, int(key))
        labels = frozenset(lbl for lbl in issue.labels if not lbl.startswith(("status::", "priority::")))
        assignee = self.fake.users[issue.assignee_ids[0]].username if issue.assignee_ids else None
        return Observed(issue.due_date, labels, assignee, health_status=issue.health_status)

    def notes(self, key: str) -> list[tuple[str, bool]]:
        out = []
        for note in sorted(self.fake.issue(PROJECT, int(key)).notes, key=lambda n: (n["created_at"], n["id"])):
            text = MARKER.sub("", note["body"]).strip()
            if note["system"] or (note["author"]["username"] == BOT and CC.match(text)):
                continue
            out.append((text, bool(note["internal"])))
        return out

    def watchers(self, key: str) -> set[str]:
        return set(self.fake.issue(PROJECT, int(key)).mentioned)

    # -- requests and faults -----------------------------------------------------------

    def writes_at(self, key: str, at: datetime) -> None:
        self.fake.backdate_writes(PROJECT, int(key), BOT, at)  # the fake's clock may be ahead (an earlier test's)

    def requests(self) -> dict[str, int]:
        return self.fake.by_method()

    def reset_requests(self) -> None:
        self.fake.reset_counts()

    def fail_next(self, status: int, times: int = 1, *, retry_after: float | None = None,
                  method: str | None = None, after: bool = False) -> None:
        self.fake.fail(status, times, retry_after=retry_after, method=method, after=after)

    # -- chaos (the fault-injection suite) ------------------------------------------------

    def chaos(self, share: float, seed: int) -> Chaos:
        self.fake.chaos = Chaos(share, seed) if share > 0 else None
        return self.fake.chaos or Chaos(0, seed)

    def hook(self, callback: Callable[[str, str], None] | None) -> None:
        self.fake.on_request = callback
