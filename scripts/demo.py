"""The README's first command: sla-sync against a real, local Redmine.

1. brings up Redmine 5 from Debian's packages on loopback (``redmine_local.py``),
   with a support project, agents, customers, a manager and the ``SLA`` field;
2. seeds a realistic support desk: three weeks of issues with replies, waiting
   for the customer, resolutions and a reopen, each stamped with its real time;
3. runs ``sla-sync plan`` and ``sla-sync run`` with ``policies/redmine-support.yaml``
   (only its URL changed), then ``run`` again to show that a quiet pass writes
   nothing, and prints what is now on the tracker.

Everything lives under ``.demo/`` (``--keep`` leaves Redmine running to look at it
in a browser: log in as admin / sla-sync-secret-1).  ``--now`` is fixed so the
result is the same on every machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "bench"))

import redmine_local as rl  # noqa: E402
from synthetic import generate  # noqa: E402

NOW = "2026-11-20T11:00:00Z"
CUSTOMERS = {"dave": "dave", "erin": "erin", "frank": "dave", "grace": "erin"}


def seed(instance: rl.Instance, fx: dict[str, Any], count: int) -> int:
    """Issues from the synthetic generator, replayed through the REST API."""
    clients: dict[str, rl.Client] = {}

    def as_user(login: str) -> rl.Client:
        if login not in clients:
            clients[login] = rl.Client(instance.url, fx["users"][login]["api_key"])
        return clients[login]

    now = datetime.fromisoformat(NOW)
    made = 0
    for raw in generate(count, seed=5, start=now - timedelta(days=21), span_days=20):
        author = CUSTOMERS.get(raw["author"], "erin")
        fields = {
            "project_id": fx["project"]["id"],
            "subject": raw["title"],
            "priority_id": fx["priorities"][raw["priority"]],
            "tracker_id": fx["trackers"][raw["type"]],
        }
        code, body = as_user(author).request("POST", "/issues.json", {"issue": fields})
        if code != 201:
            raise SystemExit(f"seeding failed: HTTP {code}: {body}")
        issue_id = body["issue"]["id"]
        rl.stamp(instance, issue_id, datetime.fromisoformat(raw["created_at"]), created=True)
        for event in raw["events"]:
            at = datetime.fromisoformat(event["at"])
            if at >= now:
                break
            if event["kind"] == "comment":
                who = event["by"] if event["by_agent"] else author
                change = {"notes": _note(event), "private_notes": not event["public"]}
            else:
                who = "alice" if event["to"] != "In Progress" or event["from"] != "Feedback" else author
                change = {"status_id": fx["statuses"][event["to"]]}
            code, body = as_user(who).request("PUT", f"/issues/{issue_id}.json", {"issue": change})
            if code not in (200, 204):
                raise SystemExit(f"seeding failed: HTTP {code}: {body}")
            rl.stamp(instance, issue_id, at)
        made += 1
    return made


def _note(event: dict[str, Any]) -> str:
    if not event["by_agent"]:
        return "Any news? This is blocking our team."
    return "Thanks for the report, we are looking into it." if event["public"] else "Internal: checked the logs."


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--issues", type=int, default=30, help="how many issues to seed (default 30)")
    parser.add_argument("--keep", action="store_true", help="leave Redmine running afterwards")
    args = parser.parse_args()
    demo = ROOT / ".demo"
    state_dir = demo / "redmine"
    if (state_dir / "instance.json").exists():
        subprocess.run([sys.executable, str(HERE / "redmine_local.py"), "down", "--state-dir", str(state_dir)],
                       capture_output=True)
    if demo.exists():
        import shutil

        shutil.rmtree(demo)
    demo.mkdir()
    print("Starting a local Redmine (installs Debian's redmine the first time)...", flush=True)
    rl.ensure_installed()
    instance = rl.start(state_dir)
    try:
        fx = rl.setup_fixture(instance)
        print(f"Redmine is up at {instance.url}; seeding {args.issues} issues...", flush=True)
        seed(instance, fx, args.issues)
        policy = demo / "redmine-support.yaml"
        text = (ROOT / "policies" / "redmine-support.yaml").read_text()
        policy.write_text(text.replace("url: http://127.0.0.1:3000", f"url: {instance.url}"))
        env = {**os.environ, "REDMINE_API_KEY": instance.admin_api_key, "SLA_SYNC_STATE": str(demo / "state.sqlite")}
        sla_sync(env, "check", "--online", str(policy))
        sla_sync(env, "plan", str(policy), "--now", NOW)
        sla_sync(env, "run", str(policy), "--now", NOW)
        sla_sync(env, "run", str(policy), "--now", NOW)
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
