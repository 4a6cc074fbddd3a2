"""The contract harness over a real Redmine (Debian's package), behind a fault proxy."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from email.utils import format_datetime
from typing import Any

from redmine_local import Client, Instance, stamp

from sla_sync.model import Observed
from sla_sync.policy import Policy, parse_policy
from sla_sync.tracker import Tracker, open_tracker
from tests.contract.harness import REMAINING_FIELD, fill
from tests.fakes.chaos import Chaos
from tests.fakes.http import Reply, Request
from tests.fakes.proxy import Fault, FaultProxy

STATUS = {"new": "New", "working": "In Progress", "waiting": "Feedback", "resolved": "Resolved"}
NAMES = {**STATUS, "P1": "Urgent", "P2": "High", "P3": "Normal"}
KEY_ENV = "SLA_SYNC_TEST_REDMINE_KEY"


ISSUE_PATH = re.compile(r"/issues/(\d+)\.json")


def answered_after(reply: Reply, seconds: int) -> Reply:
    """An issue's answer with its ``Date`` ``seconds`` after the issue's
    ``updated_on``, as if the server's clock said so."""
    updated = datetime.fromisoformat(json.loads(reply.body)["issue"]["updated_on"])
    reply.headers["Date"] = format_datetime(updated + timedelta(seconds=seconds), usegmt=True)
    return reply


class ServedInTheSecondOfOurWrite:
    """A proxy rewrite: an issue read in the same pass as sla-sync's write to it is
    answered in the second of that write (its ``Date`` is its ``updated_on``), as a
    real Redmine answers a read right after a write; any other read of it comes ten
    seconds after its ``updated_on``, as a later pass's read does.  ``written.clear()``
    is the minutes between two passes."""

    def __init__(self) -> None:
        self.written: set[str] = set()

    def __call__(self, request: Request, reply: Reply) -> Reply:
        issue = ISSUE_PATH.fullmatch(request.path)
        if issue and request.method == "PUT":
            self.written.add(issue[1])
        if issue and request.method == "GET" and reply.status == 200:
            return answered_after(reply, 0 if issue[1] in self.written else 10)
        return reply


class RedmineHarness:
    kind = "redmine"
    comment_method = "PUT"

    def __init__(self, instance: Instance, fixture: dict[str, Any]) -> None:
        self.instance = instance
        self.fx = fixture
        self.proxy = FaultProxy(instance.url)
        self.admin = Client(instance.url, instance.admin_api_key)
        self._clients: dict[str, Client] = {}
        self.logins = {u["id"]: login for login, u in fixture["users"].items()}
        self.logins.update({g["id"]: name for name, g in fixture["groups"].items()})

    # -- set-up ----------------------------------------------------------------

    def reset(self) -> None:
        from redmine_local import reset_issues

        reset_issues(self.instance)
        self.proxy.clear()

    def close(self) -> None:
        self.proxy.close()

    def policy(self, body: str) -> Policy:
        os.environ[KEY_ENV] = self.instance.admin_api_key
        head = (
            "name: contract-redmine\n"
            "tracker:\n"
            "  kind: redmine\n"
            f"  url: {self.proxy.url}\n"
            "  project: support\n"
            f"  api_key_env: {KEY_ENV}\n"
            "  agents: {groups: [support-agents]}\n"
            "  timeout: 2\n"
        )
        return parse_policy(head + fill(body, NAMES), "<contract-redmine>")

    def tracker(self, policy: Policy, sleep: Callable[[float], None] | None = None) -> Tracker:
        return open_tracker(policy, os.environ, sleep=sleep if sleep is not None else (lambda _s: None))

    def _as(self, login: str) -> Client:
        if login not in self._clients:
            self._clients[login] = Client(self.instance.url, self.fx["users"][login]["api_key"])
        return self._clients[login]

    def _put(self, key: str, by: str, fields: dict[str, Any]) -> None:
        code, body = self._as(by).request("PUT", f"/issues/{int(key)}.json", {"issue": fields})
        assert code in (200, 204), (code, body)

    def _stamp(self, key: str, at: datetime, *, created: bool = False) -> None:
        stamp(self.instance, int(key), at, created=created)

    # -- seeding -----------------------------------------------------------------

    def create_issue(self, title: str, *, priority: str, created_at: datetime, by: str = "erin") -> str:
        fields = {
            "project_id": self.fx["project"]["id"],
            "subject": title,
            "priority_id": self.fx["priorities"][NAMES.get(priority, priority)],
            "tracker_id": self.fx["trackers"]["Support"],
        }
        code, body = self._as(by).request("POST", "/issues.json", {"issue": fields})
        assert code == 201, (code, body)
        key = str(body["issue"]["id"])
        self._stamp(key, created_at, created=True)
        return key

    def comment(self, key: str, text: str, *, by: str, public: bool, at: datetime) -> None:
        self._put(key, by, {"notes": text, "private_notes": not public})
        self._stamp(key, at)

    def set_status(self, key: str, role: str, *, at: datetime, by: str = "alice") -> None:
        self._put(key, by, {"status_id": self.fx["statuses"][STATUS[role]]})
        self._stamp(key, at)

    def set_due_date(self, key: str, due: date | None, *, by: str = "alice") -> None:
        self._put(key, by, {"due_date": due.isoformat() if due else ""})

    def add_labels(self, key: str, labels: list[str], *, by: str) -> None:
        current = sorted(self.observe(key).labels | set(labels))
        self._put(key, by, {"custom_fields": [{"id": self.fx["custom_fields"]["SLA"], "value": current}]})
        assert self.observe(key).labels >= set(labels), "the customer could not set the SLA field"

    def set_assignee(self, key: str, login: str | None, *, by: str = "alice") -> None:
        ids = {**{k: v["id"] for k, v in self.fx["users"].items()},
               **{k: v["id"] for k, v in self.fx["groups"].items()}}
        self._put(key, by, {"assigned_to_id": ids[login] if login else ""})

    # -- reading back ------------------------------------------------------------

    def _issue(self, key: str, include: str = "") -> dict[str, Any]:
        code, body = self.admin.request("GET", f"/issues/{int(key)}.json" + (f"?include={include}" if include else ""))
        assert code == 200, (code, body)
        issue: dict[str, Any] = body["issue"]
        return issue

    def observe(self, key: str) -> Observed:
        row = self._issue(key)
        labels: list[str] = []
        remaining: str | None = None
        for cf in row.get("custom_fields") or []:
            if cf["name"] == "SLA":
                labels = [v for v in (cf.get("value") or []) if v]
            if cf["name"] == REMAINING_FIELD:
                remaining = cf.get("value") or None
        assigned = row.get("assigned_to")
        return Observed(row.get("due_date"), frozenset(labels), self.logins.get(assigned["id"]) if assigned else None,
                        remaining=remaining)

    def notes(self, key: str) -> list[tuple[str, bool]]:
        return [
            (j["notes"], bool(j.get("private_notes")))
            for j in self._issue(key, "journals").get("journals") or []
            if (j.get("notes") or "").strip()
        ]

    def watchers(self, key: str) -> set[str]:
        # Redmine makes whoever updates an issue a watcher (the user preference
        # "auto watch"), so the API key's own user (admin here) is left out.
        found = {self.logins.get(w["id"], "admin") for w in self._issue(key, "watchers").get("watchers") or []}
        return found - {"admin"}

    # -- requests and faults -----------------------------------------------------------

    def writes_at(self, key: str, at: datetime) -> None:
        from redmine_local import stamp_user_journals

        code, me = self.admin.request("GET", "/users/current.json")  # sla-sync's API user
        assert code == 200, (code, me)
        stamp_user_journals(self.instance, int(key), me["user"]["id"], at)  # on the pass's clock, not Redmine's

    def requests(self) -> dict[str, int]:
        return self.proxy.by_method()

    def reset_requests(self) -> None:
        self.proxy.counts.clear()

    def fail_next(self, status: int, times: int = 1, *, retry_after: float | None = None,
                  method: str | None = None, after: bool = False) -> None:
        self.proxy.fail_next(Fault(status=status, retry_after=retry_after, method=method, after=after), times)

    # -- chaos (the fault-injection suite) ------------------------------------------------

    def chaos(self, share: float, seed: int) -> Chaos:
        self.proxy.chaos = Chaos(share, seed) if share > 0 else None
        return self.proxy.chaos or Chaos(0, seed)

    def hook(self, callback: Callable[[str, str], None] | None) -> None:
        self.proxy.on_request = callback
