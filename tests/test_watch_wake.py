"""``watch`` wakes for the next change instead of waiting a whole ``--every``.

The command runs in this process (typer's CliRunner) against the Jira fake over real
HTTP; the clock and the wait between passes are injected, so nothing sleeps: each
wait is recorded and moves the injected clock on by the time it asked for.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sla_sync.cli import sync_commands
from sla_sync.cli.main import app
from sla_sync.runner import wake_after
from tests.fakes.jira_fake import JiraFake
from tests.test_jira_cli import TOKEN, build

POLICY = """
name: wake
tracker: {kind: jira, url: URL, project: SD, api_key_env: JIRA_API_TOKEN, user_env: JIRA_USER}
calendars: {utc: {timezone: UTC, hours: 24x7}}
levels: {P1: {calendar: utc, resolution: 2h}}
classify: [{level: P1}]
escalate:
  - when: resolution 50%
    assign: l2-engineer
writeback: {labels: false, due_date: none}
"""


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.fixture
def fake() -> Iterator[JiraFake]:
    jira = build()
    yield jira
    jira.close()


class Clock:
    """The injected time: ``time.time()``, the pass's ``now``, and a wait that only advances it."""

    def __init__(self, start: float) -> None:
        self.now = start
        self.waits: list[float] = []


def test_watch_sleeps_until_the_step_is_due_not_a_whole_every(fake: JiraFake, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    key = fake.create_issue("SD", "Checkout down", created=datetime.fromisoformat("2026-11-02T10:00:00+00:00"),
                            by="erin", priority="Highest")
    policy = tmp_path / "wake.yaml"
    policy.write_text(POLICY.replace("URL", fake.url))
    clock = Clock(ts("2026-11-02T10:58:30"))  # 58m30s of 2h: step 1 (50 %) is due at 11:00:00

    class Event:
        def is_set(self) -> bool:
            return False

        def set(self) -> None: ...

        def wait(self, seconds: float) -> bool:
            clock.waits.append(seconds)
            clock.now += seconds
            return False

    monkeypatch.setattr(sync_commands, "Event", Event)
    monkeypatch.setattr(sync_commands, "wall_clock", lambda: clock.now)
    monkeypatch.setattr(sync_commands, "parse_now", lambda value: int(clock.now))
    monkeypatch.setenv("JIRA_USER", "sla-bot@example.com")
    monkeypatch.setenv("JIRA_API_TOKEN", TOKEN)

    done = CliRunner().invoke(app, ["watch", str(policy), "--every", "5m", "--passes", "3",
                                    "--state", str(tmp_path / "state.sqlite")])
    assert done.exit_code == 0, done.output
    # after the 10:58:30 pass: 90 s to 11:00:00, plus the one-second margin; after the
    # 11:00:01 pass, which fired the step, nothing else is due: a whole --every
    assert clock.waits == [91.0, 300.0]
    assert fake.issue(key).assignee == "l2"  # the display name l2-engineer: fired by the second pass


@pytest.mark.parametrize(
    ("every", "upcoming", "now", "expected"),
    [
        (300, None, 1000.0, 300),  # nothing ahead: --every
        (300, 1090, 1000.0, 91),  # sooner than --every: just after it
        (300, 5000, 1000.0, 300),  # later than --every: --every
        (300, 990, 1000.0, 0),  # already past (the pass took long): at once
    ],
)
def test_wake_after(every: float, upcoming: int | None, now: float, expected: float) -> None:
    assert wake_after(every, upcoming, now) == expected
