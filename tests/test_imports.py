"""Every module imports on its own, in a fresh interpreter, and no two modules import
each other (as pip-tools' ``test_circular_imports.py`` checks).  The core and the
tracker boundary import no tracker library, HTTP client or retry library."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = {"sla_sync": ROOT / "sla_sync", "sla_sync.adapters": ROOT / "adapters"}


def module_names() -> list[str]:
    names = []
    for package, folder in SOURCES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = [*path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if parts and parts[-1] == "__main__":
                continue  # runs the command line when imported
            names.append(".".join([package, *parts]))
    return names


MODULES = module_names()


def test_the_modules_are_found() -> None:
    assert {"sla_sync.tracker", "sla_sync.cli.app", "sla_sync.adapters.redmine", "sla_sync.policy"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_a_module_imports_on_its_own(module: str) -> None:
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def source_of(module: str) -> Path:
    for package, folder in sorted(SOURCES.items(), key=lambda kv: -len(kv[0])):
        if module == package or module.startswith(package + "."):
            rest = module[len(package):].lstrip(".").split(".") if module != package else []
            base = folder.joinpath(*rest) if rest else folder
            return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    raise KeyError(module)


def imports_of(module: str) -> set[str]:
    """The project modules that ``module`` imports at its top level (any depth of
    the file, but not inside functions: those are imported on demand)."""
    path = source_of(module)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base]) if base else ".".join(parent)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {m for m in found if m in MODULES and m != module}


def test_the_import_graph_sees_relative_imports() -> None:
    assert {"sla_sync.cli.app", "sla_sync.policy", "sla_sync.timers"} <= imports_of("sla_sync.cli.reading")
    assert "sla_sync.tracker" in imports_of("sla_sync.cli.app")
    assert "sla_sync.tracker" in imports_of("sla_sync.adapters.base")


def test_no_two_modules_import_each_other() -> None:
    graph = {m: imports_of(m) for m in MODULES}
    pairs = sorted({tuple(sorted((a, b))) for a, deps in graph.items() for b in deps if a in graph.get(b, set())})
    assert pairs == []


CORE = ("model", "calendar", "values", "schema", "positions", "checks", "policy", "timers", "plan",
        "report", "explain", "compare", "html_report", "neutral", "tracker")
FORBIDDEN = ("requests", "tenacity", "redminelib", "gitlab", "jira", "typer", "sqlalchemy", "rich")


@pytest.mark.parametrize("name", CORE)
def test_the_core_and_the_boundary_load_no_tracker_library(name: str) -> None:
    probe = (
        f"import sys, sla_sync.{name}; "
        f"print(' '.join(m for m in {FORBIDDEN!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []


def test_the_sync_loads_no_http_client_nor_retry_library() -> None:
    probe = "import sys, sla_sync.sync; print(' '.join(m for m in ('requests', 'tenacity') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []


def test_the_architecture_map_names_every_module() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    files = [p.relative_to(ROOT).as_posix() for folder in SOURCES.values() for p in sorted(folder.rglob("*.py"))]
    unnamed = [f for f in files if not f.endswith(("__init__.py", "__main__.py"))
               and f not in text and Path(f).name not in text]
    assert unnamed == []
