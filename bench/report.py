"""Benchmark of ``sla-sync report`` against ``sla-sync evaluate`` on the same export.

    python bench/report.py [--sizes 100000,1000000] [--policy FILE] [--formats json,html]

For each size it writes that many synthetic issues (bench/synthetic.py, several
events each, a year of creation dates) to a temporary file, then runs, each in a
fresh process and over the same file:

- ``sla-sync evaluate`` (the reference: parse, classify, run the clocks, write a line);
- ``sla-sync report --group-by level`` in each format asked for (``html`` also
  collects the weekly series and the issues at risk);
- ``sla-sync report --group-by month --format json`` (more groups).

It prints the wall time, issues per second, the ratio report/evaluate (goal: at
most 2) and the peak resident memory of each process (goal: flat from 100 000 to
1 000 000 issues).  A benchmark, not a test: it prints figures and never fails on
them.
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

NOW = "2027-12-01T00:00:00Z"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated issue counts")
    parser.add_argument("--policy", default=str(ROOT / "policies" / "redmine-support.yaml"))
    parser.add_argument("--formats", default="json,html", help="report formats to time (table, csv, json, html)")
    args = parser.parse_args()
    import orjson
    from synthetic import generate

    sla_sync = [sys.executable, "-m", "sla_sync.cli"]
    print(f"{'issues':>9} {'command':<38} {'seconds':>8} {'issues/s':>9} {'vs evaluate':>11} {'peak MiB':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            path = Path(tmp) / f"issues-{size}.jsonl"
            with open(path, "wb") as f:
                for obj in generate(size, seed=3, span_days=365):
                    f.write(orjson.dumps(obj) + b"\n")
            common = ["--policy", args.policy, "--input", str(path), "--now", NOW]
            runs = [("evaluate", [*sla_sync, "evaluate", *common])]
            for fmt in args.formats.split(","):
                runs.append((f"report --format {fmt}", [*sla_sync, "report", *common, "--format", fmt]))
            runs.append(("report --group-by month --format json",
                         [*sla_sync, "report", *common, "--group-by", "month", "--format", "json"]))
            reference = None
            for label, cmd in runs:
                seconds, kib = peak_of(cmd)
                reference = reference or seconds
                print(f"{size:>9} {label:<38} {seconds:>8.1f} {size / seconds:>9.0f} {seconds / reference:>10.2f}x "
                      f"{kib / 1024:>9.1f}", flush=True)
            os.unlink(path)


if __name__ == "__main__":
    main()
