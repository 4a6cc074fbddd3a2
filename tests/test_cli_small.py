"""The small things a command line is expected to have: ``--version`` and shell completion.

Each run is a child process (``python -m sla_sync.cli``, which runs ``main``) without
``SHELL`` in its environment: nothing may depend on guessing the user's shell.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

from sla_sync.cli.app import version_line


def sla_sync(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``sla-sync ARGS`` in a child process, without ``SHELL`` and with ``env`` added."""
    base = {name: value for name, value in os.environ.items() if name != "SHELL"}
    return subprocess.run(
        [sys.executable, "-m", "sla_sync.cli", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_version_prints_the_installed_distributions_version() -> None:
    done = sla_sync("--version")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"sla-sync {version('sla-sync')}\n", "")


def test_version_wins_over_a_command_after_it() -> None:
    done = sla_sync("--version", "plan")
    assert (done.returncode, done.stdout) == (0, f"sla-sync {version('sla-sync')}\n")


def _not_installed(name: str) -> str:
    raise PackageNotFoundError(name)


@pytest.mark.parametrize(
    ("lookup", "line"),
    [
        (lambda name: "1.2.3", "sla-sync 1.2.3"),
        (_not_installed, "sla-sync 0+unknown"),  # a source tree that was never installed
    ],
)
def test_version_line_falls_back_when_not_installed(lookup: Callable[[str], str], line: str) -> None:
    assert version_line(lookup) == line


def test_no_arguments_still_show_the_help() -> None:
    done = sla_sync()
    assert "Usage: " in done.stdout and "plan" in done.stdout
    assert "Traceback" not in done.stderr


def test_help_lists_version_and_the_completion_options() -> None:
    done = sla_sync("--help", COLUMNS="120")
    assert done.returncode == 0
    for option in ("--version", "--install-completion", "--show-completion"):
        assert option in done.stdout


@pytest.mark.parametrize(
    ("shell", "expected"),
    [
        ("bash", ["_SLA_SYNC_COMPLETE=complete_bash", "complete -o default -F _sla_sync_completion sla-sync"]),
        ("zsh", ["_SLA_SYNC_COMPLETE=complete_zsh", "compdef _sla_sync_completion sla-sync"]),
        ("fish", ["_SLA_SYNC_COMPLETE=complete_fish", "complete --command sla-sync"]),
    ],
)
def test_show_completion_prints_the_named_shells_script(shell: str, expected: list[str]) -> None:
    done = sla_sync("--show-completion", shell)
    assert (done.returncode, done.stderr) == (0, "")
    for text in expected:
        assert text in done.stdout


def test_the_bash_script_gets_answers_from_sla_sync() -> None:
    """What the script's function runs when Tab is pressed after ``sla-sync pl``."""
    done = sla_sync(_SLA_SYNC_COMPLETE="complete_bash", COMP_WORDS="sla-sync pl", COMP_CWORD="1")
    assert (done.returncode, done.stdout.split()) == (0, ["plan"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--show-completion", "tcsh"], "--show-completion 'tcsh': name your shell, one of bash, zsh, fish"),
        (["--install-completion", "cmd"], "--install-completion 'cmd': name your shell, one of bash, zsh, fish"),
        (["--show-completion"], "requires an argument"),
    ],
)
def test_a_missing_or_unknown_shell_is_a_message_not_a_traceback(args: list[str], message: str) -> None:
    done = sla_sync(*args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_install_completion_writes_the_script_and_sources_it(tmp_path: Path) -> None:
    done = sla_sync("--install-completion", "bash", HOME=str(tmp_path))
    script = tmp_path / ".bash_completions" / "sla-sync.sh"
    assert done.returncode == 0, done.stderr
    assert "complete -o default -F _sla_sync_completion sla-sync" in script.read_text()
    assert f"source '{script}'" in (tmp_path / ".bashrc").read_text()
