"""The README's first command: sla-sync against a real, local Redmine.

1. brings up Redmine 5 from Debian's packages on loopback (``redmine_local.py``),
   with a support project, agents, customers, a manager and the ``SLA`` field;
2. seeds a support desk's ordinary Friday (``SCENARIOS``): most issues answered and
   solved in time, some in progress, a few close to their target, one long overdue,
   one waiting for the customer, one reopened; each change is made through the REST
   API by its own author and then stamped with the time it should have happened
   (Redmine stamps the time of the request: ``redmine_local.stamp``);
3. starts a local webhook receiver standing in for the on-call channel (Slack, Teams
   or e-mail in real life) and runs ``sla-sync plan`` and ``sla-sync run`` with a
   copy of ``policies/redmine-support.yaml`` (its URL changed, and the breach step
   sending a message to that channel), then ``run`` again to show that a quiet pass
   writes and sends nothing, and prints what is now on the tracker.

Everything lives under ``.demo/`` (``--keep`` leaves Redmine running to look at it
in a browser: log in as admin / sla-sync-secret-1).  ``--now`` is fixed so the
result is the same on every machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import redmine_local as rl  # noqa: E402

NOW = "2026-11-20T11:00:00Z"  # a Friday, 12:00 in Madrid, where the desk works 09:00-15:00 on Fridays


def at(text: str) -> datetime:
    """``"11-16 10:00"``: that day of November 2026, UTC (Madrid is UTC+1 then)."""
    return datetime.strptime(f"2026-{text}", "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


@dataclass(frozen=True)
class Act:
    """One change of an issue, made by ``by`` at ``when``: a note, a status, or both."""

    when: str
    by: str
    note: str | None = None
    private: bool = False
    status: str | None = None


@dataclass(frozen=True)
class Scenario:
    """One issue and its history.  ``expect`` is what the first plan makes of it
    (met, running, paused, at risk, breached; closed: not read) and ``steps`` the
    escalation steps that act on the first run; ``tests/test_demo.py`` holds the
    demo to both."""

    subject: str
    author: str
    priority: str
    tracker: str
    created: str
    acts: tuple[Act, ...]
    expect: str
    steps: tuple[int, ...] = ()


# The office calendar in UTC: Monday to Thursday 08-12 and 13-17, Friday 08-14;
# Monday 2 November is a holiday in Madrid.  P1 runs round the clock (see the policy).
SCENARIOS = (
    Scenario("Cannot change the language of the invoices", "erin", "Normal", "Support", "11-04 10:00", (
        Act("11-04 11:00", "alice", "Settings, Billing, Language: the next invoice uses it.", status="Resolved"),
        Act("11-04 12:30", "erin", "Found it, thanks.", status="Closed"),
    ), expect="closed"),  # closed ones: a first pass reads only the open issues
    Scenario("Invoice PDF shows the wrong VAT rate", "dave", "Normal", "Bug", "11-05 09:10", (
        Act("11-05 10:05", "alice", "Thanks, we can reproduce it with the Irish rate.", status="In Progress"),
        Act("11-09 15:30", "alice", "Fixed in today's release; your PDFs are regenerated.", status="Resolved"),
        Act("11-10 09:00", "dave", "Confirmed, thank you!", status="Closed"),
    ), expect="closed"),
    # Answered at once, then it dragged on: 85 of its 80 working hours are gone.
    Scenario("Dashboard loads slowly after the upgrade", "dave", "Normal", "Bug", "11-05 10:00", (
        Act("11-05 11:00", "carol", "Thanks; which dashboard widgets do you use?", status="In Progress"),
        Act("11-05 14:00", "dave", "Mostly the sales funnel and the map."),
        Act("11-09 10:00", "carol", "Internal: the map widget's queries use no index.", private=True),
        Act("11-16 09:30", "dave", "Still slow, and it is hurting our morning meetings."),
        Act("11-17 10:00", "carol", "We are building an index for the map widget."),
    ), expect="breached", steps=(3,)),
    Scenario("Request: bulk-assign tickets to a team", "dave", "Normal", "Feature", "11-09 13:20", (
        Act("11-10 09:00", "alice", "Good idea; it is planned for the next release.", status="In Progress"),
        Act("11-17 16:00", "alice", "Released in 4.12: select the tickets, then Assign to team.", status="Resolved"),
    ), expect="met"),
    Scenario("Cannot log in with SSO since this morning", "erin", "High", "Bug", "11-10 08:20", (
        Act("11-10 09:05", "bob", "Our identity provider rejects an expired certificate; renewing it.",
            status="In Progress"),
        Act("11-10 14:40", "bob", "The certificate is renewed and logins work again.", status="Resolved"),
    ), expect="met"),
    # 64 of 80 working hours used: past the 75 % that hands it to the second level.
    Scenario("Webhook deliveries delayed by several hours", "erin", "Normal", "Bug", "11-10 09:00", (
        Act("11-10 10:00", "alice", "We are looking into the queue's backlog.", status="In Progress"),
        Act("11-12 11:00", "alice", "Internal: the webhook workers run out of memory on big payloads.",
            private=True),
        Act("11-19 16:00", "erin", "Any news? Our integrations still lag behind."),
    ), expect="at risk", steps=(2,)),
    # Resolved, reopened by the customer five days later: the clock resumes where it stopped.
    Scenario("Duplicate charges on recurring payments", "erin", "Normal", "Bug", "11-12 09:00", (
        Act("11-12 09:40", "bob", "We are checking the payment provider's logs.", status="In Progress"),
        Act("11-13 12:00", "bob", "The duplicates are refunded and the retry bug is fixed.", status="Resolved"),
        Act("11-18 09:15", "erin", "It happened again this morning, to two customers.", status="In Progress"),
        Act("11-18 10:00", "carol", "Sorry about that: we are on it again, and refunding them."),
    ), expect="running"),
    Scenario("Password reset e-mail never arrives", "erin", "Normal", "Support", "11-13 08:30", (
        Act("11-13 11:00", "alice", "Could you check your spam folder and tell us the address?", status="Feedback"),
        Act("11-16 09:10", "erin", "Not in spam; it is erin@example.test.", status="In Progress"),
        Act("11-16 15:00", "alice", "Your mail server rejected ours; we added a fallback, please try again.",
            status="Resolved"),
    ), expect="met"),
    Scenario("Typo in the German welcome e-mail", "erin", "Low", "Bug", "11-13 12:00", (
        Act("11-13 13:10", "bob", "Thanks, corrected for every new account.", status="Resolved"),
    ), expect="met"),
    # Fixed the same day, but the first answer came after 3h20 of the 2h promised.
    Scenario("Mobile app crashes when opening notifications", "dave", "High", "Bug", "11-16 08:10", (
        Act("11-16 11:30", "bob", "We can reproduce it on Android 14 and are on it.", status="In Progress"),
        Act("11-16 15:00", "bob", "Fixed in version 3.8.1 of the app, in the stores now.", status="Resolved"),
    ), expect="breached"),
    Scenario("Export to CSV times out for large accounts", "dave", "Normal", "Bug", "11-16 10:00", (
        Act("11-16 11:30", "bob", "Confirmed for accounts with over 50,000 orders; we are working on it.",
            status="In Progress"),
    ), expect="running"),
    # Waiting for the customer's answer: the clocks stand still.
    Scenario("User cannot upload attachments over 5 MB", "dave", "Normal", "Bug", "11-17 08:40", (
        Act("11-17 09:30", "alice", "Which browser do you use, and does it happen with every file type?",
            status="Feedback"),
    ), expect="paused"),
    Scenario("Add a field for the purchase order number", "dave", "Normal", "Feature", "11-17 09:00", (
        Act("11-17 14:00", "alice", "Noted for the roadmap; we will tell you when it is scheduled.",
            status="In Progress"),
    ), expect="running"),
    Scenario("How do I export the audit log?", "erin", "Normal", "Support", "11-18 08:45", (
        Act("11-18 09:30", "alice", "Administration, Audit, Export: it downloads a CSV file.", status="Resolved"),
    ), expect="met"),
    Scenario("Wrong timezone in the weekly report", "erin", "Low", "Bug", "11-18 13:30", (
        Act("11-18 15:00", "carol", "We see it: the report uses UTC, not your account's timezone.",
            status="In Progress"),
    ), expect="running"),
    Scenario("Question about the data retention policy", "dave", "Normal", "Support", "11-19 08:15", (
        Act("11-19 09:00", "bob", "We keep invoices for ten years and logs for ninety days.", status="Resolved"),
    ), expect="met"),
    Scenario("Checkout page returns 502 for all customers", "dave", "Urgent", "Bug", "11-19 14:02", (
        Act("11-19 14:15", "carol", "We are on it: the payment gateway's certificate expired.", status="In Progress"),
        Act("11-19 15:40", "carol", "A new certificate is in place; checkouts work again.", status="Resolved"),
    ), expect="met"),
    # No answer yet, 6h30 of the 8h gone: the manager is asked to watch it.
    Scenario("Search ignores accents in customer names", "dave", "Low", "Bug", "11-19 13:30", (
        Act("11-20 09:00", "bob", "Internal: the search index does no accent folding.", private=True),
    ), expect="at risk", steps=(1,)),
    # This morning's: 1h35 of the 2h to a first answer gone; an internal note is no answer.
    Scenario("API returns 500 on /orders with a date filter", "erin", "High", "Bug", "11-20 09:25", (
        Act("11-20 10:00", "bob", "Internal: reproduced on staging, the date parser fails on ISO weeks.",
            private=True),
    ), expect="at risk", steps=(1,)),
)


def seed(instance: rl.Instance, fx: dict[str, Any]) -> None:
    """Replay ``SCENARIOS`` through the REST API, each change by its author, then
    stamp each with its time (creation, journal) straight in Redmine's database."""
    clients: dict[str, rl.Client] = {}

    def as_user(login: str) -> rl.Client:
        if login not in clients:
            clients[login] = rl.Client(instance.url, fx["users"][login]["api_key"])
        return clients[login]

    for scenario in SCENARIOS:
        fields = {
            "project_id": fx["project"]["id"],
            "subject": scenario.subject,
            "priority_id": fx["priorities"][scenario.priority],
            "tracker_id": fx["trackers"][scenario.tracker],
        }
        code, body = as_user(scenario.author).request("POST", "/issues.json", {"issue": fields})
        if code != 201:
            raise SystemExit(f"seeding failed: HTTP {code}: {body}")
        issue_id = body["issue"]["id"]
        created = at(scenario.created)
        rl.stamp(instance, issue_id, created, created=True)
        for act in scenario.acts:
            # Redmine splits a private note sent with a status into two journals: stamp
            # (which moves the newest journal) needs one journal per change.
            assert not (act.private and act.status), f"{scenario.subject}: a private note and a status at once"
            change: dict[str, Any] = {}
            if act.note is not None:
                change |= {"notes": act.note, "private_notes": act.private}
            if act.status is not None:
                change["status_id"] = fx["statuses"][act.status]
            code, body = as_user(act.by).request("PUT", f"/issues/{issue_id}.json", {"issue": change})
            if code not in (200, 204):
                raise SystemExit(f"seeding failed: HTTP {code}: {body}")
            rl.stamp(instance, issue_id, at(act.when))
        if scenario.acts and scenario.acts[-1].status in fx["closed_statuses"]:
            # closed_on too, from the journal that closed it
            rl.backdate(instance, issue_id, created, updated_on=at(scenario.acts[-1].when))


def demo_policy(text: str, url: str) -> str:
    """The ready policy with the local Redmine's URL, an ``oncall`` channel, and its
    breach step sending a message there."""
    breach = '    comment: "SLA: resolution target breached; escalated to the support manager."\n'
    edits = (
        ("url: http://127.0.0.1:3000", f"url: {url}"),
        (breach, breach + "    notify: [oncall]                  # the demo's: a message to the on-call channel\n"),
    )
    for old, new in edits:
        if text.count(old) != 1:
            raise SystemExit(f"policies/redmine-support.yaml has changed: the demo cannot find {old.strip()!r} in it")
        text = text.replace(old, new)
    return text + (
        "\nnotify:                               # the demo's: a local receiver stands in for Slack or e-mail\n"
        "  channels:\n"
        "    oncall: {url_env: SLA_SYNC_ONCALL_URL}   # an Apprise URL\n"
    )


class Receiver:
    """A local webhook on a free port of 127.0.0.1: Apprise's ``json://`` URLs post
    each message to it as a JSON object with a ``title`` and a ``message``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    message = json.loads(raw)
                except ValueError:
                    message = {"title": "(not JSON)", "message": raw.decode(errors="replace")}
                with receiver._lock:
                    receiver._messages.append(message)
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the demo prints the messages itself

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        """The Apprise URL that posts JSON here."""
        return f"json://127.0.0.1:{self.server.server_address[1]}/"

    def take(self) -> list[dict[str, Any]]:
        """The messages received since the last call."""
        with self._lock:
            taken, self._messages = self._messages, []
        return taken

    @contextmanager
    def running(self) -> Iterator[Receiver]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
            thread.join()


def print_received(receiver: Receiver) -> None:
    messages = receiver.take()
    if not messages:
        print("oncall received nothing")
    for message in messages:
        print(f"oncall received: {message.get('title')}")
        for line in str(message.get("message", "")).splitlines():
            print(f"    {line}")


def sla_sync(env: dict[str, str], *args: str) -> None:
    print(f"\n$ sla-sync {' '.join(args)}", flush=True)
    done = subprocess.run([sys.executable, "-m", "sla_sync.cli", *args], env=env)
    if done.returncode not in (0, 1):
        raise SystemExit(done.returncode)


def show(instance: rl.Instance) -> None:
    """What the tracker holds now, read straight from Redmine's API."""
    client = rl.Client(instance.url, instance.admin_api_key)
    _code, body = client.request("GET", "/issues.json?project_id=support&status_id=*&sort=id&limit=100")
    print("\nOn the tracker now (read back from Redmine):")
    print(f"{'#':>4}  {'priority':<9} {'status':<12} {'due':<11} {'assignee':<16} SLA labels")
    for issue in body["issues"]:
        labels = next((cf.get("value") or [] for cf in issue.get("custom_fields", []) if cf["name"] == "SLA"), [])
        print(f"{issue['id']:>4}  {issue['priority']['name']:<9} {issue['status']['name']:<12} "
              f"{issue.get('due_date') or '-':<11} {(issue.get('assigned_to') or {}).get('name', '-'):<16} "
              f"{' '.join(labels)}")
    closed = [str(issue["id"]) for issue in body["issues"] if issue["status"]["name"] in ("Closed", "Rejected")]
    if closed:
        print(f"(issues {', '.join(closed)} were closed before the first pass: sla-sync reads a closed issue "
              "only once it changes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="leave Redmine running afterwards")
    args = parser.parse_args()
    demo = ROOT / ".demo"
    state_dir = demo / "redmine"
    if (state_dir / "instance.json").exists():
        subprocess.run([sys.executable, str(HERE / "redmine_local.py"), "down", "--state-dir", str(state_dir)],
                       capture_output=True)
    if demo.exists():
        shutil.rmtree(demo)
    demo.mkdir()
    print("Starting a local Redmine (installs Debian's redmine the first time)...", flush=True)
    rl.ensure_installed()
    instance = rl.start(state_dir)
    try:
        fx = rl.setup_fixture(instance)
        print(f"Redmine is up at {instance.url}; seeding {len(SCENARIOS)} issues of a support desk...", flush=True)
        seed(instance, fx)
        policy = demo / "redmine-support.yaml"
        policy.write_text(demo_policy((ROOT / "policies" / "redmine-support.yaml").read_text(), instance.url))
        with Receiver().running() as receiver:
            print(f"A local receiver stands in for the on-call channel: SLA_SYNC_ONCALL_URL={receiver.url}")
            env = {**os.environ, "REDMINE_API_KEY": instance.admin_api_key,
                   "SLA_SYNC_STATE": str(demo / "state.sqlite"), "SLA_SYNC_ONCALL_URL": receiver.url}
            sla_sync(env, "check", "--online", str(policy))
            sla_sync(env, "plan", str(policy), "--now", NOW)
            sla_sync(env, "run", str(policy), "--now", NOW)
            print_received(receiver)
            sla_sync(env, "run", str(policy), "--now", NOW)
            print_received(receiver)
        show(instance)
        if args.keep:
            (state_dir / "instance.json").write_text(json.dumps({**instance.to_json(), "fixture": fx}, indent=2))
            print(f"\nRedmine keeps running at {instance.url} (admin / sla-sync-secret-1); "
                  f"stop it with: python scripts/redmine_local.py down --state-dir {state_dir}")
    finally:
        if not args.keep:
            instance.stop()


if __name__ == "__main__":
    main()
