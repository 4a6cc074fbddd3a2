"""Benchmark of ``sla-sync evaluate`` against the floor of any JSON Lines evaluator.

    python bench/evaluate.py [--sizes 100000,1000000] [--policy FILE]

For each size it writes that many synthetic issues (several events each) to a
temporary file, then runs, each in a fresh process:

- the floor: a loop that only parses each line (orjson, the parser sla-sync uses)
  and writes one small object back;
- ``sla-sync evaluate`` with a policy whose calendars have office hours and public
  holidays.

It prints lines per second, the ratio evaluate/floor (goal: at most 3) and the peak
resident memory of each process (goal: flat from 100 000 to 1 000 000 issues).
A benchmark, not a test: it prints figures and never fails on them.
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

from measure import peak_of  # noqa: E402

FLOOR = """
import sys, orjson
out = sys.stdout.buffer
for line in open(sys.argv[1], "rb"):
    obj = orjson.loads(line)
    out.write(orjson.dumps({"key": obj["key"], "level": "P3"}) + b"\\n")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000", help="comma-separated issue counts")
    parser.add_argument("--policy", default=str(ROOT / "policies" / "redmine-support.yaml"))
    args = parser.parse_args()
    import orjson
    from synthetic import generate

    sla_sync = [sys.executable, "-m", "sla_sync.cli"]
    print(f"{'issues':>9} {'floor/s':>10} {'evaluate/s':>11} {'ratio':>6} {'floor MiB':>10} {'evaluate MiB':>13}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            path = Path(tmp) / f"issues-{size}.jsonl"
            with open(path, "wb") as f:
                for obj in generate(size, seed=3, span_days=365):
                    f.write(orjson.dumps(obj) + b"\n")
            floor_s, floor_kib = peak_of([sys.executable, "-c", FLOOR, str(path)])
            eval_s, eval_kib = peak_of(
                [*sla_sync, "evaluate", "--policy", args.policy, "--input", str(path), "--now", "2027-12-01T00:00:00Z"]
            )
            print(
                f"{size:>9} {size / floor_s:>10.0f} {size / eval_s:>11.0f} {eval_s / floor_s:>6.2f} "
                f"{floor_kib / 1024:>10.1f} {eval_kib / 1024:>13.1f}",
                flush=True,
            )
            os.unlink(path)


if __name__ == "__main__":
    main()
