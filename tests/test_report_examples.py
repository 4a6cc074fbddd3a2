"""The README's walk-through on the shipped examples, and the ready project-phases policy.

Expected figures are worked out by hand from the example issues (shown in comments).
The office calendar of the ready policies is Europe/Madrid (UTC+1 in November),
09:00-13:00 and 14:00-18:00, Fridays 09:00-15:00, with Madrid's public holidays.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sla_sync.neutral import issue_from_json
from sla_sync.policy import load_policy
from sla_sync.timers import evaluate
from tests.support import comment, issue_json, run_cli, ts

ROOT = Path(__file__).resolve().parent.parent
SUPPORT = ROOT / "policies" / "redmine-support.yaml"
PROPOSAL = ROOT / "examples" / "policy-proposal.yaml"
PHASES = ROOT / "policies" / "project-phases.yaml"
ISSUES = ROOT / "examples" / "issues.jsonl"
NOW = "2026-11-27T12:00:00Z"


def test_the_example_proposal_is_a_valid_policy_with_a_revision() -> None:
    done = run_cli("check", str(PROPOSAL), str(PHASES))
    assert done.returncode == 0, done.stdout + done.stderr
    proposal = load_policy(PROPOSAL)
    assert [r.effective_from for r in proposal.revisions] == [ts("2026-11-02T00:00:00Z")]


def test_readme_walkthrough_report_html_and_explain_run(tmp_path: Path) -> None:
    common = ["--policy", str(SUPPORT), "--input", str(ISSUES), "--now", NOW]
    table = run_cli("report", *common)
    assert table.returncode == 0, table.stderr
    assert "first_response" in table.stdout and "(total)" in table.stdout
    html = run_cli("report", *common, "--format", "html", "--output", str(tmp_path / "report.html"))
    assert html.returncode == 0, html.stderr
    assert (tmp_path / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    explained = run_cli("explain", "SUP-1007", *common, "--compact")
    assert explained.returncode == 0, explained.stderr
    # SUP-1007 (P3, Normal bug) was created Monday 2 Nov 13:44 Madrid, a public holiday, and never
    # answered: the 8 h ran out on Tuesday 3 Nov 09-13 + 14-18, i.e. at 18:00 CET = 17:00Z.
    assert "first_response: breached, target 8h" in explained.stdout
    assert "breached at 2026-11-03 18:00:00 CET (17:00:00Z)" in explained.stdout


def test_readme_walkthrough_compare_finds_the_issue_the_proposal_flips() -> None:
    done = run_cli("compare", str(SUPPORT), str(PROPOSAL), "--input", str(ISSUES), "--now", NOW, "--format", "json")
    assert done.returncode == 0, done.stderr
    flips = json.loads(done.stdout)["flips"]
    # SUP-1022 (P3) was created Thu 12 Nov 13:25 Madrid (lunch) and answered Fri 13 Nov 09:25:
    # 14:00-18:00 + 09:00-09:25 = 4h25m: within the old 8h, over the proposal's 4h (in force from 2 Nov).
    assert {"key": "SUP-1022", "metric": "first_response",
            "old": {"level": "P3", "state": "met", "elapsed_s": 4 * 3600 + 25 * 60, "target_s": 8 * 3600},
            "new": {"level": "P3", "state": "breached", "elapsed_s": 4 * 3600 + 25 * 60, "target_s": 4 * 3600},
            } in flips


# -- project phases --------------------------------------------------------------------------------

LEVELS = [
    # (milestone, priority, level)
    ("1 Discovery", "Normal", "DISCOVERY"),
    ("2 Build", "Normal", "BUILD"),
    ("3 Acceptance", "High", "ACCEPTANCE"),
    ("2 Build", "Urgent", "BLOCKER"),
    ("4 Go-live", "Normal", "GOLIVE"),
    ("5 Hypercare", "Urgent", "GOLIVE"),
    (None, "Urgent", "BACKLOG"),
    ("6 Unknown phase", "Normal", "BACKLOG"),
]


@pytest.mark.parametrize(("milestone", "priority", "level"), LEVELS)
def test_each_phase_has_its_own_level(milestone: str | None, priority: str, level: str) -> None:
    policy = load_policy(PHASES)
    item = issue_from_json({**issue_json("2026-11-03T09:00:00Z", priority=priority), "milestone": milestone})
    assert evaluate(item, policy, item.created_at).level == level


def phase_issue(key: str, milestone: str | None, reply: str | None) -> dict[str, Any]:
    events = [comment(reply)] if reply else []
    return {**issue_json("2026-11-03T09:00:00Z", "In Progress", key=key, events=events), "milestone": milestone}


def test_report_by_milestone_shows_whether_each_phase_is_on_time(tmp_path: Path) -> None:
    # Created Tuesday 3 Nov 09:00Z (10:00 Madrid), inside office and extended hours.
    issues = [
        phase_issue("G1", "4 Go-live", "2026-11-03T09:20:00Z"),  # 20 min of 30m: met
        phase_issue("G2", "4 Go-live", "2026-11-03T09:45:00Z"),  # 45 min of 30m: breached
        phase_issue("B1", "2 Build", "2026-11-03T10:00:00Z"),  # 1 h of 4h: met
        phase_issue("N1", None, None),  # backlog, 3 h of 16h, running
    ]
    source = tmp_path / "phases.jsonl"
    source.write_text("".join(json.dumps(i) + "\n" for i in issues), encoding="utf-8")
    done = run_cli("report", "--policy", str(PHASES), "--input", str(source), "--now", "2026-11-03T12:00:00Z",
                   "--group-by", "milestone", "--format", "json")
    assert done.returncode == 0, done.stderr
    groups = json.loads(done.stdout)["groups"]
    assert list(groups) == ["2 Build", "4 Go-live", "(none)"]
    fr = {name: (g["metrics"]["first_response"]["met"], g["metrics"]["first_response"]["breached"],
                 g["metrics"]["first_response"]["compliance"]) for name, g in groups.items()}
    assert fr == {"2 Build": (1, 0, 1.0), "4 Go-live": (1, 1, 0.5), "(none)": (0, 0, None)}
    assert groups["(none)"]["metrics"]["first_response"]["running"] == 1
