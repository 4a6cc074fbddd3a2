"""Load benchmark: the sync job on a fake Jira Cloud holding 50 000 open issues.

    python bench/sync_scale.py [--issues 50000] [--passes 3] [--write-back]

The Jira fake (tests/fakes/jira_fake.py) runs in this process on loopback; each pass
is a real `sla-sync run` child process, so its wall time and peak memory are the
job's own.  A first pass reads every issue (search pages of 100 with the changelog
and comments embedded) and, with --write-back, writes labels and due dates; the
steady passes that follow should cost only the search requests, spend their time on
them, and stay under 300 MB.  Prints figures; never fails on them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "bench")]

from measure import measure  # noqa: E402

from tests.contract.jira_harness import JiraHarness  # noqa: E402

BODY = """
calendars:
  office:
    timezone: Europe/Madrid
    hours: {mon: ["09:00-18:00"], tue: ["09:00-18:00"], wed: ["09:00-18:00"], \
thu: ["09:00-18:00"], fri: ["09:00-15:00"]}
    holidays_country: ES
levels:
  P1: {calendar: office, first_response: 1h, resolution: 16h}
  P2: {calendar: office, first_response: 4h, resolution: 40h}
  P3: {calendar: office, first_response: 8h, resolution: 400h}
classify:
  - if: {priority: "{P1}"}
    level: P1
  - if: {priority: "{P2}"}
    level: P2
  - level: P3
clock:
  pause_statuses: ["{waiting}"]
  resolved_statuses: ["{resolved}"]
"""

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--issues", type=int, default=50_000)
    parser.add_argument("--passes", type=int, default=3, help="steady passes after the first")
    parser.add_argument("--write-back", action="store_true", help="let the first pass write labels and due dates")
    args = parser.parse_args()
    harness = JiraHarness(cloud=True)
    try:
        start = time.perf_counter()
        base = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
        roles = ("P1", "P2", "P3", "P3", "P3")
        for i in range(args.issues):
            harness.create_issue(f"Issue {i}", priority=roles[i % 5], created_at=base + timedelta(seconds=17 * i))
        print(f"seeded {args.issues} issues in {time.perf_counter() - start:.1f} s")
        policy = harness.policy(BODY)
        data = policy.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
        if not args.write_back:
            data["writeback"] = {"due_date": "none", "labels": False}
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "policy.yaml"
            path.write_text(yaml.safe_dump(data, sort_keys=False))
            state = str(Path(tmp) / "state.sqlite")
            cmd = [sys.executable, "-m", "sla_sync.cli", "run", str(path), "--state", state,
                   "--now", "2026-11-20T12:00:00Z", "--format", "json"]
            print(f"{'pass':<10} {'GET':>7} {'writes':>7} {'seconds':>8} {'peak MB':>8}")
            for n in range(1 + args.passes):
                harness.reset_requests()
                code, wall, peak_kib, last = measure(cmd)
                counts = harness.requests()
                writes = sum(v for k, v in counts.items() if k != "GET")
                label = "first" if n == 0 else f"steady {n}"
                print(f"{label:<10} {counts.get('GET', 0):>7} {writes:>7} {wall:>8.1f} {peak_kib / 1024:>8.0f}"
                      + ("" if code == 0 else f"  (exit {code}: {last})"), flush=True)
            print(f"search pages of 100 for {args.issues} open issues: {-(-args.issues // 100)}")
    finally:
        harness.close()


if __name__ == "__main__":
    main()
