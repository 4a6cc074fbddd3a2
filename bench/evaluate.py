"""Benchmark of ``sla-sync evaluate`` against the floor of any JSON Lines evaluator.

    python bench/evaluate.py [--sizes 100000,1000000] [--policy FILE] [--repeat N] [--before DIR]

For each size it writes that many synthetic issues (several events each) to a
temporary file, then runs, each in a fresh process:

- the floor: a loop that only parses each line (orjson, the parser sla-sync used to
  use) and writes one small object back;
- ``sla-sync evaluate`` with a policy whose calendars have office hours and public
  holidays, start-up (imports, the policy, the holidays) included;
- ``sla-sync evaluate`` with ``policies/custom-metrics.yaml``, the same levels' calendars
  with four custom metrics (two of them repeating) beside the built-in ones: what the
  metrics of ``metrics:`` cost per issue (``--no-custom`` leaves it out);
- with ``--before DIR``, also ``sla-sync evaluate`` from the source tree DIR (say a
  ``git worktree`` of the previous commit), on the same file: today's figures
  beside those of before;
- with ``--stdlib-floor``, also the same floor loop with the standard library's
  ``json`` instead of orjson, and each process's ratio to that floor in a column of
  its own: the floor of an evaluator written with the standard library alone.

It prints, per process, the CPU time per issue (user + system: on a busy machine
the steadier measure), its ratio to the floor's (goal: at most 3), the same ratio
in wall time, and the peak resident memory (goal: flat from 100 000 to 1 000 000
issues).  Each figure is the best of ``--repeat`` runs.  A benchmark, not a test:
it prints figures and never fails on them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from measure import run_measured  # noqa: E402

FLOOR = """
import sys, orjson
out = sys.stdout.buffer
for line in open(sys.argv[1], "rb"):
    obj = orjson.loads(line)
    out.write(orjson.dumps({"key": obj["key"], "level": "P3"}) + b"\\n")
"""
STDLIB_FLOOR = """
import sys, json
out = sys.stdout
for line in open(sys.argv[1], "rb"):
    obj = json.loads(line)
    out.write(json.dumps({"key": obj["key"], "level": "P3"}) + "\\n")
"""

def measure(cmd: list[str], tree: Path | None = None) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and peak RSS (KiB) of ``cmd``, which must succeed;
    with ``tree``, ``python -m sla_sync.cli`` runs the sla_sync of that source tree."""
    # ``-m`` looks in the working directory first
    code, wall, cpu, peak, last = run_measured(cmd, None if tree is None else {"PYTHONPATH": str(tree)}, tree)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {code}): {last}")
    return wall, cpu, peak


def best(runs: list[tuple[float, float, int]]) -> tuple[float, float, int]:
    """The best wall time, CPU time and peak memory of several runs."""
    return min(r[0] for r in runs), min(r[1] for r in runs), min(r[2] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000", help="comma-separated issue counts")
    parser.add_argument("--policy", default=str(ROOT / "policies" / "redmine-support.yaml"))
    parser.add_argument("--repeat", type=int, default=3, help="runs of each process; the best counts")
    parser.add_argument("--no-custom", action="store_true", help="leave out the run with custom metrics")
    parser.add_argument("--before", type=Path, metavar="DIR",
                        help="also run sla-sync evaluate from this source tree (the code before a change)")
    parser.add_argument("--stdlib-floor", action="store_true",
                        help="also the floor with the standard library's json, and each ratio to it")
    args = parser.parse_args()
    import orjson
    from synthetic import generate

    def evaluate_with(policy: Path) -> list[str]:
        return [sys.executable, "-m", "sla_sync.cli", "evaluate", "--policy", str(policy.resolve()),
                "--now", "2027-12-01T00:00:00Z", "--input"]

    evaluate = evaluate_with(Path(args.policy))
    runs = [("evaluate", ROOT, evaluate)]
    if not args.no_custom:
        runs.append(("evaluate, custom metrics", ROOT, evaluate_with(ROOT / "policies" / "custom-metrics.yaml")))
    if args.before is not None:
        runs.insert(0, (f"before ({args.before})", args.before.resolve(), evaluate))
    extra = f" {'ratio (json)':>12}" if args.stdlib_floor else ""
    print(f"{'issues':>9} {'process':<24} {'CPU us/issue':>12} {'ratio':>6} {'wall ratio':>10} {'peak MiB':>9}{extra}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            path = Path(tmp) / f"issues-{size}.jsonl"
            with open(path, "wb") as f:
                for obj in generate(size, seed=3, span_days=365):
                    f.write(orjson.dumps(obj) + b"\n")
            commands = [("floor", [sys.executable, "-c", FLOOR, str(path)], None)]
            if args.stdlib_floor:
                commands.append(("floor, stdlib json", [sys.executable, "-c", STDLIB_FLOOR, str(path)], None))
            commands += [(name, [*command, str(path)], tree) for name, tree, command in runs]
            figures: dict[str, list[tuple[float, float, int]]] = {name: [] for name, _, _ in commands}
            for _ in range(args.repeat):  # in turns, so that each meets the machine's load alike
                for name, cmd, tree in commands:
                    figures[name].append(measure(cmd, tree))
            floor_wall, floor_cpu, _ = best(figures["floor"])
            json_cpu = best(figures["floor, stdlib json"])[1] if args.stdlib_floor else None
            for name, _, _ in commands:
                wall, cpu, kib = best(figures[name])
                to_json = f" {cpu / json_cpu:>12.2f}" if json_cpu else ""
                print(f"{size:>9} {name:<24} {cpu / size * 1e6:>12.2f} {cpu / floor_cpu:>6.2f} "
                      f"{wall / floor_wall:>10.2f} {kib / 1024:>9.1f}{to_json}", flush=True)
            os.unlink(path)


if __name__ == "__main__":
    main()
