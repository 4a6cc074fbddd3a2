"""``sla-sync compare OLD NEW``: compliance and breaches per level and metric under each
policy, and the issues whose outcome flips, worked out by hand.

Both policies run on a 24x7 UTC calendar, so elapsed time is wall time.  The clocks
are read at 2026-11-10T00:00Z.  OLD: P1 first response 1h, resolution 8h; P2 first
response 4h, resolution 40h.  NEW tightens P1's first response to 30m and P2's
resolution to 16h; NEW_REV makes the same change as a revision from 2026-11-03.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sla_sync.compare import CompareBuilder
from sla_sync.neutral import issue_from_json
from sla_sync.policy import parse_policy
from sla_sync.report import Period
from sla_sync.timers import evaluate
from tests.support import comment, issue_json, run_cli, status, ts

OLD = """\
name: old
calendars:
  always: {timezone: UTC, hours: 24x7}
levels:
  P1: {calendar: always, first_response: 1h, resolution: 8h}
  P2: {calendar: always, first_response: 4h, resolution: 40h}
classify:
  - if: {priority: Urgent}
    level: P1
  - level: P2
"""
NEW = OLD.replace("name: old", "name: new").replace("first_response: 1h", "first_response: 30m").replace(
    "resolution: 40h", "resolution: 16h")
NEW_REV = OLD.replace("name: old", "name: new-rev") + """\
revisions:
  - effective_from: 2026-11-03
    levels:
      P1: {first_response: 30m}
      P2: {resolution: 16h}
"""
NOW = "2026-11-10T00:00:00Z"
H = 3600

ISSUES = [
    # P1, answered after 45 min: met under 1h, breached under 30m.  Created before the revision.
    issue_json("2026-11-02T10:00:00Z", "In Progress", key="A", priority="Urgent",
               events=[comment("2026-11-02T10:45:00Z")]),
    # P1, answered after 20 min: met under both.
    issue_json("2026-11-04T10:00:00Z", "In Progress", key="B", priority="Urgent",
               events=[comment("2026-11-04T10:20:00Z")]),
    # P1, answered after 40 min: met under 1h, breached under 30m (after the revision too).
    issue_json("2026-11-05T10:00:00Z", "In Progress", key="C", priority="Urgent",
               events=[comment("2026-11-05T10:40:00Z")]),
    # P2, answered after 1 h, resolved after 24 h: resolution met under 40h, breached under 16h.  Before the revision.
    issue_json("2026-11-02T00:00:00Z", "Resolved", key="D",
               events=[comment("2026-11-02T01:00:00Z"), status("2026-11-03T00:00:00Z", "New", "Resolved")]),
    # P2, never answered, 144 h old: everything breached under both.
    issue_json("2026-11-04T00:00:00Z", "New", key="E"),
    # P2, 12 h old: first response breached under both; resolution running under both.
    issue_json("2026-11-09T12:00:00Z", "New", key="F"),
    # P2, 24 h old: resolution running under 40h, breached under 16h.
    issue_json("2026-11-09T00:00:00Z", "New", key="G"),
]


def side(met: int, breached: int, compliance: float | None) -> dict[str, Any]:
    return {"met": met, "breached": breached, "compliance": compliance}


def row(level: str, metric: str, old: dict[str, Any], new: dict[str, Any], change: float | None,
        breached: int) -> dict[str, Any]:
    return {"level": level, "metric": metric, "old": old, "new": new, "compliance_change": change,
            "breached_change": breached}


def flip(key: str, metric: str, level: str, old: tuple[str, int, int], new: tuple[str, int, int]) -> dict[str, Any]:
    return {
        "key": key, "metric": metric,
        "old": {"level": level, "state": old[0], "elapsed_s": old[1], "target_s": old[2]},
        "new": {"level": level, "state": new[0], "elapsed_s": new[1], "target_s": new[2]},
    }


EXPECTED_LEVELS = [
    # A B C: met 3 → A and C breach under 30m
    row("P1", "first_response", side(3, 0, 1.0), side(1, 2, 0.3333), -0.6667, 2),
    # nobody resolved A, B, C: days old, breached under 8h either way
    row("P1", "resolution", side(0, 3, 0.0), side(0, 3, 0.0), 0.0, 0),
    # D met; E, F, G breached; the P2 first response target does not change
    row("P2", "first_response", side(1, 3, 0.25), side(1, 3, 0.25), 0.0, 0),
    # D met → breached, E breached, F running, G running → breached
    row("P2", "resolution", side(1, 1, 0.5), side(0, 3, 0.0), -0.5, 2),
]
EXPECTED_FLIPS = [
    flip("A", "first_response", "P1", ("met", 45 * 60, H), ("breached", 45 * 60, 30 * 60)),
    flip("C", "first_response", "P1", ("met", 40 * 60, H), ("breached", 40 * 60, 30 * 60)),
    flip("D", "resolution", "P2", ("met", 24 * H, 40 * H), ("breached", 24 * H, 16 * H)),
    flip("G", "resolution", "P2", ("running", 24 * H, 40 * H), ("breached", 24 * H, 16 * H)),
]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    for name, text in (("old.yaml", OLD), ("new.yaml", NEW), ("new-rev.yaml", NEW_REV)):
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "issues.jsonl").write_text("".join(json.dumps(i) + "\n" for i in ISSUES), encoding="utf-8")
    return tmp_path


def compare(workdir: Path, new: str, *args: str) -> Any:
    return run_cli("compare", str(workdir / "old.yaml"), str(workdir / new), "--input", str(workdir / "issues.jsonl"),
                   "--now", NOW, *args)


def test_compare_counts_each_level_and_metric_and_lists_the_flips(workdir: Path) -> None:
    result = compare(workdir, "new.yaml", "--format", "json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["issues"] == 7
    assert doc["levels"] == EXPECTED_LEVELS
    assert doc["flips"] == EXPECTED_FLIPS


def test_a_revision_leaves_the_issues_created_before_it_alone(workdir: Path) -> None:
    result = compare(workdir, "new-rev.yaml", "--format", "json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    # A and D were created before 2026-11-03: held to the old targets, they no longer flip
    assert [(f["key"], f["metric"]) for f in doc["flips"]] == [("C", "first_response"), ("G", "resolution")]
    by = {(r["level"], r["metric"]): r for r in doc["levels"]}
    assert by["P1", "first_response"]["new"] == side(2, 1, 0.6667)  # A met (1h), B met, C breached
    assert by["P2", "resolution"]["new"] == side(1, 2, 0.3333)  # D met (40h), E breached, G breached


def test_compare_with_itself_changes_nothing(workdir: Path) -> None:
    result = run_cli("compare", str(workdir / "old.yaml"), str(workdir / "old.yaml"),
                     "--input", str(workdir / "issues.jsonl"), "--now", NOW, "--format", "json")
    doc = json.loads(result.stdout)
    assert doc["flips"] == []
    assert all(r["old"] == r["new"] and r["breached_change"] == 0 for r in doc["levels"])


def test_compare_only_counts_the_period(workdir: Path) -> None:
    result = compare(workdir, "new.yaml", "--format", "json", "--since", "2026-11-04",
                     "--until", "2026-11-09T06:00:00Z")
    doc = json.loads(result.stdout)
    assert doc["issues"] == 4  # B, C, E, G
    assert [f["key"] for f in doc["flips"]] == ["C", "G"]


def test_compare_table_shows_changes_and_flips(workdir: Path) -> None:
    result = compare(workdir, "new.yaml")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    p1_fr = [line for line in out.splitlines() if "P1" in line and "first_response" in line and "%" in line]
    assert p1_fr and "100.0%" in p1_fr[0] and "33.3%" in p1_fr[0] and "-66.7 pp" in p1_fr[0] and "+2" in p1_fr[0]
    assert "4 outcomes flip" in out
    assert any("G" in line and "running (24h of 40h)" in line and "breached (24h of 16h)" in line
               for line in out.splitlines())


def test_compare_table_lists_at_most_limit_flips(workdir: Path) -> None:
    result = compare(workdir, "new.yaml", "--limit", "1")
    assert "and 3 more" in result.stdout


def test_builder_counts_an_issue_under_the_level_each_policy_gives_it() -> None:
    # NEW classifies High as P1; OLD as P2: the issue counts under P2 in OLD and P1 in NEW
    old = parse_policy(OLD, "old.yaml")
    new = parse_policy(OLD.replace("{priority: Urgent}", "{priority: [Urgent, High]}"), "new.yaml")
    item = issue_from_json(issue_json("2026-11-09T23:00:00Z", "New", key="K", priority="High"))
    builder = CompareBuilder("old", "new", ["P1", "P2"], Period(None, None), ts(NOW))
    builder.add(item, evaluate(item, old, ts(NOW)), evaluate(item, new, ts(NOW)))
    result = builder.result()
    counts = {(r.level, r.metric): (r.old.met + r.old.breached, r.new.met + r.new.breached) for r in result.rows}
    # 1 h old: P2 first response (4h) running under OLD; P1 first response (1h) reached exactly: running too,
    # P1 resolution 8h running: nothing decided, so both sides count zero but the rows exist
    assert counts == {("P1", "first_response"): (0, 0), ("P1", "resolution"): (0, 0),
                      ("P2", "first_response"): (0, 0), ("P2", "resolution"): (0, 0)}
    assert result.flips == ()


def test_bad_policy_file_stops_compare_with_file_line(workdir: Path) -> None:
    bad = workdir / "bad.yaml"
    bad.write_text(NEW.replace("resolution: 16h", "resolution: soon"), encoding="utf-8")
    result = run_cli("compare", str(workdir / "old.yaml"), str(bad), "--input", str(workdir / "issues.jsonl"),
                     "--now", NOW)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{bad}:6:" in result.stderr  # P2's line
