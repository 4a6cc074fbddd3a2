"""The package as it installs: a built wheel holds the adapters as sla_sync.adapters."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_built_wheel_contains_the_adapters_and_registers_them(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    [wheel] = tmp_path.glob("sla_sync-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("base", "redmine", "gitlab", "jira"):
        assert f"sla_sync/adapters/{module}.py" in names
    for module in ("__init__", "__main__", "app", "main", "sync_commands", "reading", "render"):
        assert f"sla_sync/cli/{module}.py" in names
    assert "sla_sync/py.typed" in names
    assert not any(n.startswith("adapters/") for n in names)  # no top-level `adapters` package
    [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[sla_sync.adapters]" in text
    assert "redmine = sla_sync.adapters.redmine:create" in text
    assert "sla-sync = sla_sync.cli:main" in text
