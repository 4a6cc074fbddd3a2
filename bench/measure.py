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
# and prints: exit code, wall seconds, CPU seconds (user + system) and peak RSS
# (KiB); the child's last stderr line goes to stderr.
WRAPPER = (
    "import resource, subprocess, sys, time;"
    "t = time.perf_counter();"
    "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True);"
    "wall = time.perf_counter() - t;"
    "u = resource.getrusage(resource.RUSAGE_CHILDREN);"
    "print(p.returncode, wall, u.ru_utime + u.ru_stime, u.ru_maxrss);"
    "print(p.stderr.strip().splitlines()[-1] if p.stderr.strip() else '', file=sys.stderr)"
)


def run_measured(cmd: list[str], env: Mapping[str, str] | None = None,
                 cwd: str | os.PathLike[str] | None = None) -> tuple[int, float, float, int, str]:
    """Exit code, wall seconds, CPU seconds, peak RSS (KiB) and last stderr line of
    ``cmd`` (``env``: added to ``child_env()``)."""
    out = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], capture_output=True, text=True, check=True,
                         env=child_env(env), cwd=cwd)
    code, wall, cpu, peak = out.stdout.split()
    return int(code), float(wall), float(cpu), int(peak), out.stderr.strip()


def measure(cmd: list[str]) -> tuple[int, float, int, str]:
    """Exit code, wall seconds, peak RSS (KiB) and last stderr line of ``cmd``."""
    code, wall, _cpu, peak, last = run_measured(cmd)
    return code, wall, peak, last


def peak_of(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of ``cmd``, which must succeed."""
    code, wall, peak, last = measure(cmd)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {code}): {last}")
    return wall, peak
