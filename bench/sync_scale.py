"""Load benchmark: the sync job on a fake Jira Cloud (or GitLab) with many open issues.

    python bench/sync_scale.py [--issues 50000 [200000 ...]] [--kind jira|gitlab] [--only delta|full]

The fake (tests/fakes/) runs in this process on loopback; each pass is a real
`sla-sync run` child process, so its wall time, CPU time and peak memory are the
job's own (the fake's CPU is not counted).  Five passes, twice:

- **delta**: the policy as shipped (`reconcile_every: 6h`): delta passes;
- **full**: `reconcile_every: 0`: every pass lists every open issue (what every pass
  did before delta passes), for comparison.

The passes: the first (at T), a quiet pass 5 minutes later, a pass after people
commented on 100 issues, a pass in which 1,000 issues cross an escalation step's
threshold by time alone (T + 1h30m), and `run --full` (a full reconciliation).
Per pass: requests by method, wall seconds, sla-sync's CPU seconds, peak MB.
Then the goals of issue 10 for each size: the goal, the figure before delta passes
(the issue's own measurement, 50,000 issues on the Jira fake, and, when the `full`
configuration ran, today's every-pass-full figure) and the delta figure.
Prints figures; never fails on them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "bench")]

from measure import run_measured  # noqa: E402

from tests.contract.gitlab_harness import GitLabHarness  # noqa: E402
from tests.contract.jira_harness import JiraHarness  # noqa: E402

BODY = """
calendars:
  office:
    timezone: Europe/Madrid
    hours: {mon: ["09:00-18:00"], tue: ["09:00-18:00"], wed: ["09:00-18:00"], \
thu: ["09:00-18:00"], fri: ["09:00-15:00"]}
    holidays_country: ES
  always: {timezone: UTC, hours: 24x7}
levels:
  P1: {calendar: always, resolution: 16h}
  P3: {calendar: office, first_response: 8h, resolution: 400h}
classify:
  - if: {priority: "{P1}"}
    level: P1
  - level: P3
clock:
  pause_statuses: ["{waiting}"]
  resolved_statuses: ["{resolved}"]
escalate:
  - when: resolution 50%
    add_labels: [sla-escalated]
writeback: {due_date: none, labels: false}
"""
T = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # a Friday
CROSSERS = 1_000
CHANGED = 100

def seed(h: Any, issues: int) -> list[str]:
    """``issues`` open issues: 1,000 P1 ones 7h to 7h17m old at T (their 50 % step, at
    8h, comes due between T and T + 1h30m), the rest P3 ones created over the 20 days
    before, none of which crosses a line in that time, and the last an hour before T
    (so that the overlap window behind the cursor holds one issue, not hundreds of the
    crossers, as on a tracker whose updates are spread out).  Returns the P3 keys."""
    others = []
    for i in range(CROSSERS):
        h.create_issue(f"Outage {i}", priority="P1", created_at=T - timedelta(hours=7) + timedelta(seconds=i))
    span = 20 * 86_400
    for i in range(issues - CROSSERS - 1):
        created = T - timedelta(days=21) + timedelta(seconds=span * i // max(1, issues - CROSSERS))
        others.append(h.create_issue(f"Issue {i}", priority="P3", created_at=created))
    others.append(h.create_issue("Latest", priority="P3", created_at=T - timedelta(hours=1)))
    return others


def run_scenario(h: Any, issues: int, reconcile: str) -> list[Row]:
    h.reset()
    others = seed(h, issues)
    policy = h.policy(BODY)
    data = policy.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["tracker"]["reconcile_every"] = reconcile
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "policy.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        state = str(Path(tmp) / "state.sqlite")

        def one(label: str, when: datetime, *extra: str) -> None:
            h.fake.now = max(h.fake.now, when)  # the tracker stamps writes at the pass's time
            h.reset_requests()
            cmd = [sys.executable, "-m", "sla_sync.cli", "run", str(path), "--state", state,
                   "--now", when.strftime("%Y-%m-%dT%H:%M:%SZ"), "--format", "json", *extra]
            code, wall, cpu, peak, last = run_measured(cmd)
            rows.append((label, h.requests(), wall, cpu, peak / 1024, "" if code == 0 else f"exit {code}: {last}"))
            print(f"  {label:<34} {fmt(h.requests()):<30} {wall:>7.1f} {cpu:>7.1f} {peak / 1024:>7.0f}"
                  + (f"  ({rows[-1][5]})" if code else ""), flush=True)

        one("first pass", T)
        one("quiet pass", T + timedelta(minutes=5))
        for key in others[:CHANGED]:
            h.comment(key, "Any news?", by="erin", public=True, at=T + timedelta(minutes=6))
        one(f"after {CHANGED} changed", T + timedelta(minutes=10))
        one(f"{CROSSERS} crossing a step by time", T + timedelta(hours=1, minutes=30))
        one("full reconciliation (--full)", T + timedelta(hours=1, minutes=35), "--full")
    return rows


Row = tuple[str, dict[str, int], float, float, float, str]
# (what, goal, before delta passes: issue 10's figure at 50,000 open issues on the Jira fake)
GOALS = [
    ("quiet delta pass: requests", "<= 4", "503"),
    ("quiet delta pass: sla-sync CPU s", "<= 1", "most of 71 s wall"),
    ("quiet delta pass: peak MB", "<= 120, flat", "236"),
    (f"{CHANGED} changed: requests", f"<= 4 + reads of the {CHANGED} + writes", "503 + per-issue"),
    (f"{CROSSERS} crossing by time: requests", f"<= 4 + the {CROSSERS} writes", "503 + writes"),
]


def goal_figures(rows: list[Row]) -> list[str]:
    """The figures the goals name, from one configuration's five passes."""
    quiet, changed, crossing = rows[1], rows[2], rows[3]
    return [str(sum(quiet[1].values())), f"{quiet[3]:.2f}", f"{quiet[4]:.0f}", fmt(changed[1]), fmt(crossing[1])]


def print_goals(issues: int, kind: str, delta: list[Row], full: list[Row] | None) -> None:
    print(f"goals, {kind}, {issues} open issues (issue 10; step latency in watch: tests/test_watch_wake.py)")
    head = f"  {'pass':<34} {'goal':<36} {'before (issue 10)':<20}"
    print(head + (f" {'every pass full':<24}" if full else "") + " delta passes")
    now = goal_figures(delta)
    then = goal_figures(full) if full else None
    for i, (what, goal, before) in enumerate(GOALS):
        line = f"  {what:<34} {goal:<36} {before:<20}"
        print(line + (f" {then[i]:<24}" if then else "") + f" {now[i]}")


def fmt(counts: dict[str, int]) -> str:
    return " ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--issues", type=int, nargs="+", default=[50_000], help="one or more sizes")
    parser.add_argument("--kind", choices=("jira", "gitlab"), default="jira")
    parser.add_argument("--only", choices=("delta", "full"), default=None, help="run one configuration only")
    args = parser.parse_args()
    h: Any = JiraHarness(cloud=True) if args.kind == "jira" else GitLabHarness()
    results: list[tuple[int, dict[str, list[Row]]]] = []
    try:
        for issues in args.issues:
            runs: dict[str, list[Row]] = {}
            for name, reconcile in (("delta", "6h"), ("full", "0")):
                if args.only not in (None, name):
                    continue
                start = time.perf_counter()
                print(f"{args.kind}, {issues} open issues, reconcile_every: {reconcile} ({name} passes)")
                print(f"  {'pass':<34} {'requests':<30} {'wall s':>7} {'CPU s':>7} {'peak MB':>7}")
                runs[name] = run_scenario(h, issues, reconcile)
                print(f"  ({time.perf_counter() - start:.0f} s with seeding)", flush=True)
            results.append((issues, runs))
    finally:
        h.close()
    for issues, runs in results:
        if "delta" in runs:
            print_goals(issues, args.kind, runs["delta"], runs.get("full"))


if __name__ == "__main__":
    main()
