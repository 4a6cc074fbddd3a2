"""Where ``sla-sync evaluate``'s time per issue goes: decode, clocks, write.

    python bench/evaluate_stages.py [--issues 200000] [--policy FILE] [--repeat 2]

In one process, on synthetic lines held in memory (no file reading, no start-up),
it times streaming loops, each line made and dropped at once as ``evaluate``
does: the floor (orjson's parse and one small object written back, as
``bench/evaluate.py``'s floor), the typed decode alone, decode and clocks, and
decode, clocks and the writer.  The differences are each stage's share; the
clocks are then split again on issues decoded beforehand: the timeline, the
calendar's running totals and the per-metric walks.  CPU time per issue, best of
``--repeat``.  A benchmark, not a test: it prints figures and never fails on them.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--issues", type=int, default=200_000)
    parser.add_argument("--policy", default=str(ROOT / "policies" / "redmine-support.yaml"))
    parser.add_argument("--repeat", type=int, default=2, help="runs of each loop; the best counts")
    args = parser.parse_args()
    import orjson
    from synthetic import generate

    from sla_sync import timers
    from sla_sync.neutral import SlaWriter, typed_issue
    from sla_sync.policy import load_policy
    from sla_sync.values import parse_instant

    policy = load_policy(args.policy)
    now = parse_instant("2027-12-01T00:00:00Z")
    lines = [orjson.dumps(obj) + b"\n" for obj in generate(args.issues, seed=3, span_days=365)]
    n = len(lines)
    clocks = timers.Clocks(policy, now)

    def best(loop: Callable[[], object]) -> float:
        times = []
        for _ in range(args.repeat):
            started = time.process_time()
            loop()
            times.append(time.process_time() - started)
        return min(times) / n * 1e6

    def floor() -> None:
        out = io.BytesIO()
        for raw in lines:
            obj = orjson.loads(raw)
            out.write(orjson.dumps({"key": obj["key"], "level": "P3"}) + b"\n")

    def decode() -> None:
        for raw in lines:
            typed_issue(raw)

    def decode_clocks() -> None:
        for raw in lines:
            clocks(typed_issue(raw))

    def everything() -> None:
        with SlaWriter(io.BytesIO()) as writer:
            for raw in lines:
                writer.write(clocks(typed_issue(raw)))

    f, d, dc, all_ = best(floor), best(decode), best(decode_clocks), best(everything)
    print(f"{n} issues, {args.policy}: CPU us per issue (in process, no start-up, no file)")
    print(f"  floor {f:6.2f}   decode {d:6.2f}   clocks {dc - d:6.2f}   write {all_ - dc:6.2f}   "
          f"total {all_:6.2f} ({all_ / f:.2f}x the floor)")

    issues = [typed_issue(raw) for raw in lines]
    chosen = []
    for issue in issues:
        assert issue is not None
        rule = policy.classify(issue)
        level = policy.level_at(rule.level, issue.created_at)
        chosen.append((issue, level, rule.calendar_for(level)))
    built = [timers.build_timeline(issue, policy, now) for issue, _, _ in chosen]
    totals = [timers._totals(t, cal) for t, (_, _, cal) in zip(built, chosen, strict=True)]
    not_resolving = policy.pause | policy.resolved

    def walks() -> None:
        for t, (_, level, cal), tot in zip(built, chosen, totals, strict=True):
            for metric, target in level.targets.items():
                timers._state(metric, target, t, policy, cal, now, tot, not_resolving)

    timeline = best(lambda: [timers.build_timeline(issue, policy, now) for issue, _, _ in chosen])
    running = best(lambda: [timers._totals(t, cal) for t, (_, _, cal) in zip(built, chosen, strict=True)])
    per_metric = best(walks)
    metrics = sum(len(level.targets) for _, level, _ in chosen) / n
    print(f"  clocks: timeline {timeline:.2f}   running totals {running:.2f}   "
          f"per-metric walks {per_metric:.2f} ({metrics:.1f} metrics an issue)")


if __name__ == "__main__":
    main()
