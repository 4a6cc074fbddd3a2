#!/usr/bin/env python3
"""Debian's promtool, for checking the alert rules and the metrics (stdlib only).

``ensure_promtool()`` returns a promtool: the one on PATH if there is one, else the
binary of Debian's ``prometheus`` package, unpacked once into
``$SLA_SYNC_PROMTOOL_CACHE`` (default ``/var/tmp/sla-sync-promtool/VERSION``) with
``apt-get download`` and ``dpkg-deb``.  The package itself is not installed, so no
Prometheus server is set up or started on the machine.

Command line::

    python scripts/promtool_local.py            # prints the path of promtool
    python scripts/promtool_local.py test rules deploy/prometheus/alerts-test.yaml   # runs it
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

CACHE = Path(os.environ.get("SLA_SYNC_PROMTOOL_CACHE", "/var/tmp/sla-sync-promtool"))
PACKAGE = "prometheus"


class PromtoolError(RuntimeError):
    """promtool is not on PATH and cannot be unpacked from Debian's package."""


def _run(argv: Sequence[str], cwd: str | None = None) -> str:
    done = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise PromtoolError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def candidate_version() -> str:
    """The version apt would download (after an ``apt-get update`` when it knows none)."""
    def candidate() -> str:
        out = _run(["apt-cache", "policy", PACKAGE])
        for line in out.splitlines():
            if line.strip().startswith("Candidate:"):
                value = line.split(":", 1)[1].strip()
                return "" if value == "(none)" else value
        return ""

    version = candidate()
    if not version:
        if os.geteuid() != 0:
            raise PromtoolError("apt knows no prometheus package and updating its lists needs root")
        _run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "update", "-qq"])
        version = candidate()
    if not version:
        raise PromtoolError("apt has no prometheus package (Debian's ships promtool)")
    return version


def ensure_promtool() -> Path:
    found = shutil.which("promtool")
    if found:
        return Path(found)
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise PromtoolError("promtool is not installed and there is no apt-get/dpkg-deb to get Debian's")
    version = candidate_version()
    target = CACHE / version.replace(":", "_") / "promtool"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sla-sync-promtool-") as tmp:
        os.chmod(tmp, 0o755)  # apt's sandbox user may then write the download there
        _run(["apt-get", "download", "-q", f"{PACKAGE}={version}"], cwd=tmp)
        (deb,) = Path(tmp).glob("*.deb")
        tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
        _extract = subprocess.run(["tar", "-x", "-C", tmp, "./usr/bin/promtool"], stdin=tar.stdout,
                                  capture_output=True, text=True, timeout=300, check=False)
        assert tar.stdout is not None
        tar.stdout.close()
        if tar.wait(timeout=60) != 0 or _extract.returncode != 0:
            raise PromtoolError(f"unpacking promtool from {deb.name} failed: {_extract.stderr}")
        partial = target.with_suffix(f".tmp{os.getpid()}")
        shutil.move(str(Path(tmp) / "usr" / "bin" / "promtool"), partial)
        os.replace(partial, target)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        promtool = ensure_promtool()
    except PromtoolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not args:
        print(promtool)
        return 0
    return subprocess.run([str(promtool), *args], check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
