"""Measuring a child process: wall time and peak resident memory."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a measured child: this one's, with Python's bytecode cache
    on (``PYTHONDONTWRITEBYTECODE`` removed), as an installed sla-sync has its
    modules compiled: otherwise every run compiles each module from source again
    (0.15 s of CPU that no user pays)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, **(extra or {})}

# Runs the command as its own child, so each measurement has its own memory peak,
# and prints: exit code, wall seconds, peak RSS (KiB); the child's last stderr line
# goes to stderr.
WRAPPER = (
    "import resource, subprocess, sys, time;"
    "t = time.perf_counter();"
    "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True);"
    "print(p.returncode, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
    "print(p.stderr.strip().splitlines()[-1] if p.stderr.strip() else '', file=sys.stderr)"
)


def measure(cmd: list[str]) -> tuple[int, float, int, str]:
    """Exit code, wall seconds, peak RSS (KiB) and last stderr line of ``cmd``."""
    out = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], capture_output=True, text=True, check=True,
                         env=child_env())
    code, wall, peak = out.stdout.split()
    return int(code), float(wall), int(peak), out.stderr.strip()


def peak_of(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of ``cmd``, which must succeed."""
    code, wall, peak, last = measure(cmd)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {code}): {last}")
    return wall, peak
