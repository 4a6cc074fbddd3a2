"""Requests per pass: a first pass, a quiet pass, a pass after K changes.

    python bench/sync_requests.py [--tracker redmine|gitlab|jira|all] [--issues 1000] [--changed 10]

Against the real Redmine (started with ``scripts/redmine_local.py``, requests
counted by the proxy in front of it) and the GitLab and Jira fakes (which count
their own), through the contract harnesses.  The issues are created open, with
their creation stamped over the past day, and ``run_pass`` runs four times.
Goal: the quiet second pass makes only the list requests (one per 100 open issues,
plus the list of issues updated since the cursor), no per-issue request and no
write; a pass after K changes adds a constant number of requests per changed issue.
Prints figures; never fails on them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import redmine_local as rl  # noqa: E402

from sla_sync.calendar import utc_seconds  # noqa: E402
from sla_sync.state import Store  # noqa: E402
from sla_sync.sync import run_pass  # noqa: E402
from tests.contract.harness import BODY  # noqa: E402
from tests.contract.redmine_harness import RedmineHarness  # noqa: E402


def row(label: str, counts: dict[str, int], seconds: float) -> None:
    gets, writes = counts.get("GET", 0), sum(v for k, v in counts.items() if k != "GET")
    print(f"{label:<28} {gets:>6} {writes:>7} {seconds:>9.2f}")


def measure_tracker(harness: Any, issues: int, changed: int, tmp: Path,
                    between: Callable[[], None] = lambda: None) -> None:
    """``between()`` runs before each pass: the minutes between two passes."""
    base = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    t0 = time.perf_counter()
    keys = [
        harness.create_issue(f"Issue {i}", priority="P3", created_at=base + timedelta(minutes=i))
        for i in range(issues)
    ]
    print(f"\n{harness.kind}: created {len(keys)} issues in {time.perf_counter() - t0:.1f} s")
    policy = harness.policy(BODY)
    store = Store(str(tmp / f"{harness.kind}.sqlite"))
    now = utc_seconds(datetime(2026, 11, 3, 12, 0, tzinfo=UTC))
    print(f"{'pass':<28} {'GETs':>6} {'writes':>7} {'seconds':>9}")

    def measure(label: str) -> None:
        between()
        harness.reset_requests()
        start = time.perf_counter()
        result = run_pass(harness.tracker(policy), policy, store, now, apply=True, run_id=label)
        row(label, harness.requests(), time.perf_counter() - start)
        assert not result.errors, result.errors

    measure("first pass")
    measure("second pass, nothing changed")
    # The change is stamped a minute after the tracker's time of now, as passes minutes
    # apart see a person's change: the cursor is the update time of sla-sync's own
    # writes, which Redmine stamps with its clock, and a change stamped before the
    # cursor (less the overlap) is one no delta query would see, one in the second of
    # a write one that Redmine's whole-second ``updated_on`` cannot tell from it.
    changed_at = datetime.now(UTC) + timedelta(minutes=1)
    for key in keys[:changed]:
        harness.comment(key, "Any news?", by="erin", public=True, at=changed_at)
    measure(f"after {changed} issues changed")
    measure("quiet again")
    print(f"open issues: {issues}; list pages of 100: {-(-issues // 100)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracker", choices=["redmine", "gitlab", "jira", "all"], default="all")
    parser.add_argument("--issues", type=int, default=1000)
    parser.add_argument("--changed", type=int, default=10)
    args = parser.parse_args()
    kinds = ["redmine", "gitlab", "jira"] if args.tracker == "all" else [args.tracker]
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for kind in kinds:
            harness, stop = open_harness(kind, tmp)
            try:
                harness.reset()
                measure_tracker(harness, args.issues, args.changed, tmp, paced(harness))
            finally:
                harness.close()
                stop()


def paced(harness: Any) -> Callable[[], None]:
    """What passes run back to back need to look minutes apart: Redmine's
    ``updated_on`` has whole seconds, and a read within two seconds of a change is
    not trusted (``adapters/redmine.py``, ``read_version``), so the pass after would
    read it again.  The proxy answers a read in the second of a write to the issue
    in the same pass, any other ten seconds after the issue's update, as a pass
    minutes later would be."""
    if harness.kind != "redmine":
        return lambda: None
    from tests.contract.redmine_harness import ServedInTheSecondOfOurWrite

    harness.proxy.on_reply = served = ServedInTheSecondOfOurWrite()
    return served.written.clear


def open_harness(kind: str, tmp: Path) -> tuple[Any, Callable[[], None]]:
    if kind == "gitlab":
        from tests.contract.gitlab_harness import GitLabHarness

        return GitLabHarness(), lambda: None
    if kind == "jira":
        from tests.contract.jira_harness import JiraHarness

        return JiraHarness(cloud=True), lambda: None
    rl.ensure_installed()
    instance = rl.start(tmp / "redmine")
    return RedmineHarness(instance, rl.setup_fixture(instance)), instance.stop


if __name__ == "__main__":
    main()
