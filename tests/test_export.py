"""``sla-sync export`` against the real Redmine, and the reading commands on a live tracker.

The ready policy `policies/redmine-support.yaml` is used as it ships, with only its
tracker URL pointed at the test Redmine (through the counting proxy).  Agents are
the group support-agents (alice, bob, carol); erin is a customer.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "sla_sync.cli"]
NOW = "2026-11-06T12:00:00Z"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def setup(redmine: Any, tmp_path: Path) -> tuple[Any, Path, dict[str, str]]:
    text = (ROOT / "policies" / "redmine-support.yaml").read_text(encoding="utf-8")
    text = text.replace("url: http://127.0.0.1:3000", f"url: {redmine.proxy.url}")
    policy = tmp_path / "redmine-support.yaml"
    policy.write_text(text.replace("  labels_field: SLA", "  labels_field: SLA\n  max_attempts: 1"), encoding="utf-8")
    env = {**os.environ, "REDMINE_API_KEY": redmine.instance.admin_api_key}
    return redmine, policy, env


def sla_sync(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def seed(redmine: Any) -> tuple[str, str, str]:
    a = redmine.create_issue("Checkout down", priority="Urgent", created_at=at("2026-11-02T08:00:00"))
    b = redmine.create_issue("Typo on the invoice", priority="Normal", created_at=at("2026-11-03T09:00:00"))
    redmine.comment(b, "Fixed in the next release", by="alice", public=True, at=at("2026-11-03T09:30:00"))
    redmine.comment(b, "Thanks!", by="erin", public=True, at=at("2026-11-03T09:40:00"))
    redmine.set_status(b, "resolved", at=at("2026-11-03T10:00:00"))
    c = redmine.create_issue("Slow search", priority="High", created_at=at("2026-11-05T08:00:00"))
    return a, b, c


def lines(text: str) -> list[dict[str, Any]]:
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_export_writes_every_issue_with_its_history(setup: Any, tmp_path: Path) -> None:
    redmine, policy, env = setup
    a, b, c = seed(redmine)
    out = tmp_path / "export.jsonl"
    done = sla_sync(env, "export", str(policy), "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == ["acme-support: exported 3 issues"]  # no progress off a terminal
    issues = {i["key"]: i for i in lines(out.read_text(encoding="utf-8"))}
    assert set(issues) == {a, b, c}
    assert [issues[k]["created_at"] for k in (a, b, c)] == [
        "2026-11-02T08:00:00Z", "2026-11-03T09:00:00Z", "2026-11-05T08:00:00Z"]
    assert [issues[k]["priority"] for k in (a, b, c)] == ["Urgent", "Normal", "High"]
    assert (issues[a]["status"], issues[a]["events"]) == ("New", [])
    assert issues[b]["status"] == "Resolved"
    assert [(e["at"], e["kind"], e.get("by_agent"), e.get("to")) for e in issues[b]["events"]] == [
        ("2026-11-03T09:30:00Z", "comment", True, None),  # alice is an agent
        ("2026-11-03T09:40:00Z", "comment", False, None),  # erin is the customer
        ("2026-11-03T10:00:00Z", "status", None, "Resolved"),
    ]
    assert set(redmine.requests()) == {"GET"}  # an export only reads


def test_export_since_keeps_the_issues_created_from_that_day(setup: Any, tmp_path: Path) -> None:
    redmine, policy, env = setup
    _, b, c = seed(redmine)
    done = sla_sync(env, "export", str(policy), "--since", "2026-11-03", "--output", "-")
    assert done.returncode == 0, done.stderr
    assert [i["key"] for i in lines(done.stdout)] == [b, c]
    later = sla_sync(env, "export", str(policy), "--since", "2026-11-05T09:00:00+01:00")  # 08:00 UTC
    assert [i["key"] for i in lines(later.stdout)] == [c]


def test_reading_commands_give_the_same_answer_live_and_from_an_export(setup: Any, tmp_path: Path) -> None:
    redmine, policy, env = setup
    _, b, _ = seed(redmine)
    export = tmp_path / "export.jsonl"
    assert sla_sync(env, "export", str(policy), "--output", str(export)).returncode == 0
    live = sla_sync(env, "report", "--policy", str(policy), "--now", NOW, "--format", "json")
    offline = sla_sync(env, "report", "--policy", str(policy), "--input", str(export), "--now", NOW, "--format", "json")
    assert live.returncode == 0, live.stderr
    assert json.loads(live.stdout) == json.loads(offline.stdout)
    doc = json.loads(live.stdout)
    # a: P1 (24x7), never answered; b: P3, answered after 30 min and resolved; c: P2, waiting
    assert {name: g["opened"] for name, g in doc["groups"].items()} == {"P1": 1, "P2": 1, "P3": 1}
    assert doc["total"]["solved"] == 1
    assert doc["groups"]["P3"]["metrics"]["first_response"]["met"] == 1
    # b's first reply came 30 working minutes after creation (Tuesday 10:00-10:30 in Madrid)
    assert doc["groups"]["P3"]["metrics"]["first_response"]["median_elapsed_s"] == 1800
    assert doc["groups"]["P1"]["metrics"]["first_response"]["breached"] == 1

    explained = sla_sync(env, "explain", b, "--policy", str(policy), "--now", NOW)
    assert explained.returncode == 0, explained.stderr
    assert "level P3, by rule 4 of classify:" in explained.stdout
    assert ("first_response: met, target 8h, elapsed 30m, stopped at 2026-11-03 10:30:00 CET (09:30:00Z)"
            in explained.stdout)


def test_a_failing_tracker_leaves_no_export_behind(setup: Any, tmp_path: Path) -> None:
    redmine, policy, env = setup
    seed(redmine)
    out = tmp_path / "export.jsonl"
    out.write_text("the previous export\n", encoding="utf-8")
    redmine.fail_next(500, times=5, method="GET")
    done = sla_sync(env, "export", str(policy), "--output", str(out))
    assert done.returncode == 1
    assert done.stderr.startswith("sla-sync: ")
    assert out.read_text(encoding="utf-8") == "the previous export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.jsonl", "redmine-support.yaml"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "last monday"], "--since 'last monday'"),
        (["--since", "2026-11-02T00:00:00"], "has no timezone"),
    ],
    ids=["a_word", "no_timezone"],
)
def test_export_bad_since_exits_2_before_any_request(setup: Any, args: list[str], message: str) -> None:
    redmine, policy, env = setup
    redmine.reset_requests()
    done = sla_sync(env, "export", str(policy), *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert redmine.requests() == {}


def test_export_needs_a_tracker_section(tmp_path: Path) -> None:
    policy = tmp_path / "offline.yaml"
    text = (ROOT / "policies" / "redmine-support.yaml").read_text(encoding="utf-8")
    policy.write_text(text.split("\ntracker:")[0] + "\ncalendars:" + text.split("\ncalendars:")[1], encoding="utf-8")
    done = sla_sync(dict(os.environ), "export", str(policy))
    assert done.returncode == 2
    assert "has no `tracker` section" in done.stderr


@pytest.mark.parametrize(
    ("key", "code", "message"),
    [
        ("SUP-1", 2, "'SUP-1': not a key of this tracker"),  # Redmine keys are numbers
        ("999999", 2, "issue 999999 is not on the tracker"),  # deleted, or never there: bad input, not a failure
    ],
    ids=["not_a_number", "no_such_issue"],
)
def test_explain_live_names_a_key_the_tracker_does_not_have(setup: Any, key: str, code: int, message: str) -> None:
    redmine, policy, env = setup
    seed(redmine)
    done = sla_sync(env, "explain", key, "--policy", str(policy), "--now", NOW)
    assert done.returncode == code
    assert message in done.stderr
    assert done.stdout == ""


def test_export_shows_progress_on_a_terminal(setup: Any, tmp_path: Path) -> None:
    redmine, policy, env = setup
    seed(redmine)
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.Popen([*CLI, "export", str(policy), "--output", str(tmp_path / "out.jsonl")], env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=secondary)
        os.close(secondary)
        seen = b""
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # the terminal closes when the child exits
                break
            if not chunk:
                break
            seen += chunk
        assert proc.wait(120) == 0
    finally:
        os.close(primary)
    text = seen.decode(errors="replace")
    assert "acme-support: exporting" in text  # the live count, drawn on the terminal
    assert "acme-support: exported 3 issues" in text
    assert len(lines((tmp_path / "out.jsonl").read_text(encoding="utf-8"))) == 3
