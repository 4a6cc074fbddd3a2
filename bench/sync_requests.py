"""Requests per pass against a real Redmine: a first pass, a quiet pass, a pass after K changes.

    python bench/sync_requests.py [--issues 1000] [--changed 10]

Starts a local Redmine (``scripts/redmine_local.py``), creates the issues through the
API (open, with history stamped over the past days), and runs ``run_pass`` through a
counting proxy.  Goal: the quiet second pass makes only the list requests (one per
100 open issues, plus one for the issues updated since the cursor), no per-issue
request and no write; a pass after K changes adds a constant number per changed issue.
Prints figures; never fails on them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--issues", type=int, default=1000)
    parser.add_argument("--changed", type=int, default=10)
    args = parser.parse_args()
    rl.ensure_installed()
    with tempfile.TemporaryDirectory() as tmp:
        instance = rl.start(Path(tmp) / "redmine")
        harness = RedmineHarness(instance, rl.setup_fixture(instance))
        try:
            base = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
            t0 = time.perf_counter()
            keys = [
                harness.create_issue(f"Issue {i}", priority="P3", created_at=base + timedelta(minutes=i))
                for i in range(args.issues)
            ]
            print(f"created {len(keys)} issues in {time.perf_counter() - t0:.1f} s\n")
            policy = harness.policy(BODY)
            store = Store(str(Path(tmp) / "state.sqlite"))
            now = utc_seconds(datetime(2026, 11, 3, 12, 0, tzinfo=UTC))
            print(f"{'pass':<28} {'GETs':>6} {'writes':>7} {'seconds':>9}")

            def measure(label: str) -> None:
                harness.reset_requests()
                start = time.perf_counter()
                result = run_pass(harness.tracker(policy), policy, store, now, apply=True, run_id=label)
                row(label, harness.requests(), time.perf_counter() - start)
                assert not result.errors, result.errors

            measure("first pass")
            measure("second pass, nothing changed")
            for key in keys[: args.changed]:
                harness.comment(key, "Any news?", by="erin", public=True, at=base + timedelta(hours=20))
            measure(f"after {args.changed} issues changed")
            measure("quiet again")
            print(f"\nopen issues: {args.issues}; list pages of 100: {-(-args.issues // 100)}")
        finally:
            harness.close()
            instance.stop()
    os.environ.pop("SLA_SYNC_TEST_REDMINE_KEY", None)


if __name__ == "__main__":
    main()
