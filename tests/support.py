"""Small helpers shared by the test modules (instants, calendars, issues, the CLI).

Nothing here computes an expected value: the tests write those by hand.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sla_sync.calendar import Calendar
from sla_sync.policy import build_calendar
from sla_sync.schema import CalendarSpec

DAY = 86_400
HOUR = 3_600
MINUTE = 60


def ts(text: str) -> int:
    """``2026-11-02T09:00:00Z`` (or with an offset) → epoch seconds."""
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None, f"{text!r}: tests write instants with a timezone"
    return int(moment.timestamp())


def iso(instant: int | None) -> str | None:
    """Epoch seconds → ``YYYY-MM-DDTHH:MM:SSZ`` (for readable assertion diffs)."""
    if instant is None:
        return None
    return datetime.fromtimestamp(instant, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def calendar(
    timezone: str,
    hours: Any,
    holidays: Sequence[str] = (),
    country: str | None = None,
    subdiv: str | None = None,
) -> Calendar:
    """A calendar built the way a policy file builds it."""
    spec: dict[str, Any] = {"timezone": timezone, "hours": hours, "holidays": list(holidays)}
    if country is not None:
        spec["holidays_country"] = country
    if subdiv is not None:
        spec["holidays_subdiv"] = subdiv
    return build_calendar(CalendarSpec.model_validate(spec))


def weekdays(*intervals: str) -> dict[str, list[str]]:
    """The same intervals Monday to Friday."""
    return {day: list(intervals) for day in ("mon", "tue", "wed", "thu", "fri")}


def every_day(*intervals: str) -> dict[str, list[str]]:
    """The same intervals on all seven days."""
    return {day: list(intervals) for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


# -- neutral issues ------------------------------------------------------------


def comment(at: str, *, public: bool = True, by_agent: bool = True) -> dict[str, Any]:
    return {"at": at, "kind": "comment", "public": public, "by_agent": by_agent}


def status(at: str, from_: str, to: str) -> dict[str, Any]:
    return {"at": at, "kind": "status", "from": from_, "to": to}


def label(at: str, added: Sequence[str] = (), removed: Sequence[str] = ()) -> dict[str, Any]:
    return {"at": at, "kind": "label", "added": list(added), "removed": list(removed)}


def field_change(at: str, name: str, from_: str | None, to: str | None) -> dict[str, Any]:
    return {"at": at, "kind": "field", "field": name, "from": from_, "to": to}


def issue_json(
    created_at: str,
    status: str = "New",
    *,
    key: str = "T-1",
    priority: str | None = None,
    type: str | None = None,
    labels: Sequence[str] = (),
    events: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """One neutral issue as the JSON object of a JSON Lines record."""
    return {
        "key": key,
        "title": "test issue",
        "created_at": created_at,
        "status": status,
        "priority": priority,
        "type": type,
        "labels": list(labels),
        "fields": {},
        "events": list(events),
    }


# -- the command line ------------------------------------------------------------


def run_cli(*args: str, stdin: bytes | None = None, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    """``sla-sync ARGS`` in a child process: ``python -m sla_sync.cli`` runs ``main``."""
    return subprocess.run(
        [sys.executable, "-m", "sla_sync.cli", *args],
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


def expected_metric(
    state: str,
    target: int,
    elapsed: int,
    due: str | None = None,
    breached: str | None = None,
    stopped: str | None = None,
    at_risk: bool = False,
) -> dict[str, Any]:
    """One metric as ``sla-sync evaluate`` writes it (``remaining_s`` follows)."""
    return {
        "state": state,
        "at_risk": at_risk,
        "target_s": target,
        "elapsed_s": elapsed,
        "remaining_s": target - elapsed,
        "due_at": due,
        "breached_at": breached,
        "stopped_at": stopped,
    }


def block_on_put(redmine: Any, nth: int) -> tuple[threading.Event, threading.Event]:
    """The ``nth`` PUT to the test Redmine is held at its proxy until ``release`` is
    set; ``reached`` tells when it got there.  ``redmine.hook(None)`` ends it."""
    reached, release = threading.Event(), threading.Event()
    seen = {"puts": 0}

    def hook(method: str, path: str) -> None:
        if method == "PUT":
            seen["puts"] += 1
            if seen["puts"] == nth:
                reached.set()
                release.wait(120)

    redmine.hook(hook)
    return reached, release
