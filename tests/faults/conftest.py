"""Collects the fault suite's survival figures and prints them at the end of the session."""

from __future__ import annotations

from typing import Any

SURVIVED: list[tuple[str, int, int, int]] = []  # (tracker, faults injected, kills, passes)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not SURVIVED:
        return
    terminalreporter.section("fault injection: what each tracker survived")
    for kind, faults, kills, passes in SURVIVED:
        terminalreporter.write_line(
            f"{kind:<8} {faults:>4} faults injected, {kills:>2} kills, converged after {passes} passes"
        )
