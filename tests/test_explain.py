"""``sla-sync explain``: the rule that matched and each metric's timeline, by hand.

The office calendar is UTC, Monday to Friday 09:00-13:00 and 14:00-18:00 (P2: first
response 2h, resolution 16h); the madrid calendar is Europe/Madrid 09:00-18:00 on
weekdays (MAD: first response 2h).  2026-11-02 is a Monday.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sla_sync.explain import OFF_HOURS, PAUSED, RUNNING, STOPPED, compact, explain, explanation_lines, local_text
from sla_sync.neutral import issue_from_json
from sla_sync.policy import parse_policy
from sla_sync.timers import evaluate
from tests.support import comment, iso, issue_json, label, run_cli, status, ts

POLICY = """\
name: explain-test
calendars:
  office:
    timezone: UTC
    hours:
      mon: ["09:00-13:00", "14:00-18:00"]
      tue: ["09:00-13:00", "14:00-18:00"]
      wed: ["09:00-13:00", "14:00-18:00"]
      thu: ["09:00-13:00", "14:00-18:00"]
      fri: ["09:00-13:00", "14:00-18:00"]
  madrid:
    timezone: Europe/Madrid
    hours:
      mon: ["09:00-18:00"]
      tue: ["09:00-18:00"]
      wed: ["09:00-18:00"]
      thu: ["09:00-18:00"]
      fri: ["09:00-18:00"]
levels:
  P1: {calendar: office, first_response: 30m, resolution: 4h}
  P2: {calendar: office, first_response: 2h, workaround: 8h, resolution: 16h}
  MAD: {calendar: madrid, first_response: 2h}
classify:
  - if: {priority: [Urgent, Immediate]}
    level: P1
  - if: {type: MAD}
    level: MAD
  - if: {priority: High, labels: [vip, key-account]}
    level: P1
  - if: {priority: High}
    level: P2
  - level: P2
clock:
  pause_statuses: [Feedback]
  resolved_statuses: [Resolved, Closed]
  workaround_labels: [workaround]
"""

PLAIN = parse_policy(POLICY, "explain-test.yaml")
H = 3600


def segs(expl: Any, metric: str) -> list[tuple[str, str, str, str, int, bool]]:
    [story] = [m for m in expl.metrics if m.metric == metric]
    return [(iso(s.start), iso(s.end), s.kind, s.status, s.elapsed_s, s.over_target) for s in story.segments]


def story(expl: Any, metric: str) -> Any:
    [found] = [m for m in expl.metrics if m.metric == metric]
    return found


# Created Mon 12:00 (P2), waiting for the customer from 15:00 until Tue 10:00, answered
# Tue 11:00, resolved Tue 16:00; explained at Wed 12:00.
STORY = issue_json(
    "2026-11-02T12:00:00Z", "Resolved", key="SUP-7", priority="High",
    events=[
        status("2026-11-02T15:00:00Z", "New", "Feedback"),
        status("2026-11-03T10:00:00Z", "Feedback", "In Progress"),
        comment("2026-11-03T11:00:00Z"),
        status("2026-11-03T16:00:00Z", "In Progress", "Resolved"),
    ],
)
STORY_NOW = "2026-11-04T12:00:00Z"


def test_first_response_timeline_runs_pauses_breaches_and_stops() -> None:
    expl = explain(issue_from_json(STORY), PLAIN, ts(STORY_NOW))
    assert segs(expl, "first_response") == [
        ("2026-11-02T12:00:00Z", "2026-11-02T13:00:00Z", RUNNING, "New", 1 * H, False),
        ("2026-11-02T13:00:00Z", "2026-11-02T14:00:00Z", OFF_HOURS, "New", 1 * H, False),  # lunch
        ("2026-11-02T14:00:00Z", "2026-11-02T15:00:00Z", RUNNING, "New", 2 * H, False),  # the target, 2 h, reached
        ("2026-11-02T15:00:00Z", "2026-11-03T10:00:00Z", PAUSED, "Feedback", 2 * H, True),
        ("2026-11-03T10:00:00Z", "2026-11-03T11:00:00Z", RUNNING, "In Progress", 3 * H, True),
        # stopped for good at the reply: the later status changes are one segment
        ("2026-11-03T11:00:00Z", STORY_NOW, STOPPED, "In Progress", 3 * H, True),
    ]
    fr = story(expl, "first_response").state
    assert (fr.state.value, fr.elapsed_s, iso(fr.breached_at), iso(fr.due_at), iso(fr.stopped_at)) == (
        "breached", 3 * H, "2026-11-02T15:00:00Z", "2026-11-02T15:00:00Z", "2026-11-03T11:00:00Z")
    assert story(expl, "first_response").segments[-1].reason == "first public reply by an agent"


def test_resolution_timeline_counts_working_time_until_resolved() -> None:
    expl = explain(issue_from_json(STORY), PLAIN, ts(STORY_NOW))
    assert segs(expl, "resolution") == [
        ("2026-11-02T12:00:00Z", "2026-11-02T13:00:00Z", RUNNING, "New", 1 * H, False),
        ("2026-11-02T13:00:00Z", "2026-11-02T14:00:00Z", OFF_HOURS, "New", 1 * H, False),
        ("2026-11-02T14:00:00Z", "2026-11-02T15:00:00Z", RUNNING, "New", 2 * H, False),
        ("2026-11-02T15:00:00Z", "2026-11-03T10:00:00Z", PAUSED, "Feedback", 2 * H, False),
        ("2026-11-03T10:00:00Z", "2026-11-03T13:00:00Z", RUNNING, "In Progress", 5 * H, False),
        ("2026-11-03T13:00:00Z", "2026-11-03T14:00:00Z", OFF_HOURS, "In Progress", 5 * H, False),
        ("2026-11-03T14:00:00Z", "2026-11-03T16:00:00Z", RUNNING, "In Progress", 7 * H, False),
        ("2026-11-03T16:00:00Z", STORY_NOW, STOPPED, "Resolved", 7 * H, False),
    ]
    res = story(expl, "resolution").state
    assert (res.state.value, res.elapsed_s, res.due_at, iso(res.stopped_at)) == (
        "met", 7 * H, None, "2026-11-03T16:00:00Z")


def test_compact_gives_one_segment_per_status_and_side_of_the_breach() -> None:
    expl = explain(issue_from_json(STORY), PLAIN, ts(STORY_NOW))
    merged = compact(story(expl, "resolution").segments)
    assert [(iso(s.start), iso(s.end), s.kind, s.status, s.elapsed_s, s.reason) for s in merged] == [
        ("2026-11-02T12:00:00Z", "2026-11-02T15:00:00Z", RUNNING, "New", 2 * H, "working hours only"),
        ("2026-11-02T15:00:00Z", "2026-11-03T10:00:00Z", PAUSED, "Feedback", 2 * H, None),
        ("2026-11-03T10:00:00Z", "2026-11-03T16:00:00Z", RUNNING, "In Progress", 7 * H, "working hours only"),
        ("2026-11-03T16:00:00Z", STORY_NOW, STOPPED, "Resolved", 7 * H, "resolved"),
    ]
    # the breach still splits: 2 h of first response were used up by Monday 15:00
    item = issue_from_json(issue_json("2026-11-02T09:00:00Z", "New", priority="High"))
    fr = story(explain(item, PLAIN, ts("2026-11-03T12:00:00Z")), "first_response").segments
    assert [(iso(s.start), iso(s.end), s.over_target, s.elapsed_s) for s in compact(fr)] == [
        ("2026-11-02T09:00:00Z", "2026-11-02T11:00:00Z", False, 2 * H),
        ("2026-11-02T11:00:00Z", "2026-11-03T12:00:00Z", True, 11 * H),  # 2 h + Mon 11-13, 14-18, Tue 09-12
    ]


def test_workaround_stops_at_the_resolution_when_that_comes_first() -> None:
    expl = explain(issue_from_json(STORY), PLAIN, ts(STORY_NOW))
    last = story(expl, "workaround").segments[-1]
    assert (iso(last.start), last.kind, last.reason) == ("2026-11-03T16:00:00Z", STOPPED, "resolved")


def test_a_breach_inside_working_time_splits_the_segment() -> None:
    # P2 first response: 2 h from Mon 09:00 is 11:00; explained at 12:00 with no reply
    item = issue_from_json(issue_json("2026-11-02T09:00:00Z", "New", priority="High"))
    expl = explain(item, PLAIN, ts("2026-11-02T12:00:00Z"))
    assert segs(expl, "first_response") == [
        ("2026-11-02T09:00:00Z", "2026-11-02T11:00:00Z", RUNNING, "New", 2 * H, False),
        ("2026-11-02T11:00:00Z", "2026-11-02T12:00:00Z", RUNNING, "New", 3 * H, True),
    ]


def test_a_reopened_issue_runs_again_after_the_resolved_stretch() -> None:
    item = issue_from_json(issue_json(
        "2026-11-02T09:00:00Z", "In Progress", priority="High",
        events=[status("2026-11-02T10:00:00Z", "New", "Resolved"),
                status("2026-11-02T11:00:00Z", "Resolved", "In Progress")],
    ))
    expl = explain(item, PLAIN, ts("2026-11-02T12:30:00Z"))
    assert segs(expl, "resolution") == [
        ("2026-11-02T09:00:00Z", "2026-11-02T10:00:00Z", RUNNING, "New", 1 * H, False),
        ("2026-11-02T10:00:00Z", "2026-11-02T11:00:00Z", STOPPED, "Resolved", 1 * H, False),
        ("2026-11-02T11:00:00Z", "2026-11-02T12:30:00Z", RUNNING, "In Progress", 2 * H + 1800, False),
    ]
    res = story(expl, "resolution").state
    # 16 h - 2.5 h = 13.5 h from Mon 12:30: Mon 12:30-13 + 14-18 (4.5 h), Tue 8 h, Wed 09:00-10:00
    assert (res.state.value, iso(res.due_at)) == ("running", "2026-11-04T10:00:00Z")


RULES = [
    # (id, issue keys, expected (rule number, level), per rule tried: (holds, [(key, holds)]))
    ("first_rule", {"priority": "Urgent"}, (1, "P1"), [(True, [("priority", True)])]),
    (
        "all_keys_must_hold",
        {"priority": "High", "labels": ["billing"]},
        (4, "P2"),
        [(False, [("priority", False)]), (False, [("type", False)]),
         (False, [("priority", True), ("labels", False)]), (True, [("priority", True)])],
    ),
    (
        "any_label_of_the_list",
        {"priority": "High", "labels": ["billing", "vip"]},
        (3, "P1"),
        [(False, [("priority", False)]), (False, [("type", False)]), (True, [("priority", True), ("labels", True)])],
    ),
    (
        "the_rule_without_if",
        {"priority": "Low"},
        (5, "P2"),
        [(False, [("priority", False)]), (False, [("type", False)]), (False, [("priority", False), ("labels", False)]),
         (False, [("priority", False)]), (True, [])],
    ),
]


@pytest.mark.parametrize(("keys", "matched", "tried"), [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_explain_says_which_rule_matched_and_why(keys: dict[str, Any], matched: tuple[int, str],
                                                 tried: list[Any]) -> None:
    item = issue_from_json({**issue_json("2026-11-02T09:00:00Z"), **keys})
    expl = explain(item, PLAIN, ts("2026-11-02T10:00:00Z"))
    assert (expl.rule, expl.level) == matched
    assert [(r.holds, [(c.key, c.holds) for c in r.conditions]) for r in expl.rules] == tried


def test_conditions_show_the_issues_values() -> None:
    item = issue_from_json({**issue_json("2026-11-02T09:00:00Z"), "priority": "High", "labels": ["billing", "eu"]})
    rule3 = explain(item, PLAIN, ts("2026-11-02T10:00:00Z")).rules[2]
    labels = next(c for c in rule3.conditions if c.key == "labels")
    assert (labels.allowed, labels.values, labels.holds) == (("key-account", "vip"), ("billing", "eu"), False)


# -- local time and UTC -------------------------------------------------------------------------

LOCAL = [
    # (instant, text in Madrid time, then UTC)
    ("2026-11-02T09:00:00Z", "2026-11-02 10:00:00 CET (09:00:00Z)"),
    ("2026-07-01T09:00:00Z", "2026-07-01 11:00:00 CEST (09:00:00Z)"),
    ("2026-11-02T23:30:00Z", "2026-11-03 00:30:00 CET (2026-11-02T23:30:00Z)"),  # another date in UTC
]


@pytest.mark.parametrize(("instant", "text"), LOCAL)
def test_instants_read_in_the_calendars_local_time_and_in_utc(instant: str, text: str) -> None:
    assert local_text(ts(instant), PLAIN.calendars["madrid"]) == text


def test_madrid_issue_explained_in_local_time() -> None:
    # MAD: 09:00-18:00 Madrid = 08:00-17:00 UTC in November; created Mon 08:00Z = 09:00 local;
    # 2 h target reached at 10:00Z = 11:00 local; explained at 12:00Z.
    item = issue_from_json(issue_json("2026-11-02T08:00:00Z", type="MAD"))
    lines = explanation_lines(explain(item, PLAIN, ts("2026-11-02T12:00:00Z")))
    text = "\n".join(lines)
    assert "calendar madrid (Europe/Madrid)" in text
    assert "first_response: breached, target 2h, elapsed 4h, breached at 2026-11-02 11:00:00 CET (10:00:00Z)" in text
    assert ("  2026-11-02 11:00:00 CET (10:00:00Z) -> 2026-11-02 13:00:00 CET (12:00:00Z)  running (New), over target; "
            "elapsed 4h") in lines


# -- the segments agree with the clocks ------------------------------------------------------------

STATUSES = ["New", "In Progress", "Feedback", "Resolved", "Closed"]


@st.composite
def histories(draw: Any) -> dict[str, Any]:
    created = ts("2026-11-02T00:00:00Z") + draw(st.integers(0, 6 * 86_400))
    t, current, events = created, "New", []
    for _ in range(draw(st.integers(0, 8))):
        t += draw(st.integers(0, 2 * 86_400))
        kind = draw(st.sampled_from(["status", "comment", "label"]))
        at = iso(t)
        assert at is not None
        if kind == "status":
            new = draw(st.sampled_from([s for s in STATUSES if s != current]))
            events.append(status(at, current, new))
            current = new
        elif kind == "comment":
            events.append(comment(at, public=draw(st.booleans()), by_agent=draw(st.booleans())))
        else:
            events.append(label(at, added=["workaround"]))
    priority = draw(st.sampled_from(["Urgent", "High", "Low"]))
    start = iso(created)
    assert start is not None
    return issue_json(start, current, priority=priority, events=events)


@settings(max_examples=150, deadline=None)
@given(histories(), st.integers(0, 20 * 86_400))
def test_segments_cover_created_to_now_and_add_up_to_the_elapsed_time(raw: dict[str, Any], later: int) -> None:
    item = issue_from_json(raw)
    now = item.created_at + later
    expl = explain(item, PLAIN, now)
    sla = evaluate(item, PLAIN, now)
    assert [m.metric for m in expl.metrics] == list(sla.metrics)
    for m in expl.metrics:
        assert m.state == sla.metrics[m.metric]
        segments = m.segments
        if now > item.created_at:
            assert segments[0].start == item.created_at and segments[-1].end == now
        for a, b in itertools.pairwise(segments):
            assert a.end == b.start  # contiguous
        running = sum(s.end - s.start for s in segments if s.kind == RUNNING)
        assert running == sla.metrics[m.metric].elapsed_s
        assert (segments[-1].elapsed_s if segments else 0) == sla.metrics[m.metric].elapsed_s


# -- the command ----------------------------------------------------------------------------------------


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "policy.yaml").write_text(POLICY, encoding="utf-8")
    other = issue_json("2026-11-02T09:00:00Z", key="SUP-8")
    (tmp_path / "issues.jsonl").write_text(json.dumps(other) + "\n" + json.dumps(STORY) + "\n", encoding="utf-8")
    return tmp_path


def test_explain_command_prints_rule_and_timelines(workdir: Path) -> None:
    result = run_cli("explain", "SUP-7", "--policy", str(workdir / "policy.yaml"),
                     "--input", str(workdir / "issues.jsonl"), "--now", STORY_NOW)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "level P2, by rule 4 of classify:" in lines
    assert "    priority in [High]: the issue has High: yes" in lines
    assert ("first_response: breached, target 2h, elapsed 3h, breached at 2026-11-02 15:00:00 UTC (15:00:00Z), "
            "stopped at 2026-11-03 11:00:00 UTC (11:00:00Z)") in lines
    # the same pause in each of the three metrics, 2 h elapsed before it
    assert lines.count("  2026-11-02 15:00:00 UTC (15:00:00Z) -> 2026-11-03 10:00:00 UTC (10:00:00Z)  "
                       "paused (Feedback); elapsed 2h") == 3
    assert "resolution: met, target 16h, elapsed 7h, stopped at 2026-11-03 16:00:00 UTC (16:00:00Z)" in lines


def test_explain_compact_prints_fewer_lines(workdir: Path) -> None:
    result = run_cli("explain", "SUP-7", "--policy", str(workdir / "policy.yaml"),
                     "--input", str(workdir / "issues.jsonl"), "--now", STORY_NOW, "--compact")
    assert result.returncode == 0, result.stderr
    assert ("  2026-11-03 10:00:00 UTC (10:00:00Z) -> 2026-11-03 16:00:00 UTC (16:00:00Z)  running, working hours only "
            "(In Progress); elapsed 7h") in result.stdout.splitlines()


def test_explain_json_has_local_and_utc_instants(workdir: Path) -> None:
    result = run_cli("explain", "SUP-7", "--policy", str(workdir / "policy.yaml"),
                     "--input", str(workdir / "issues.jsonl"), "--now", STORY_NOW, "--format", "json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["key"], doc["level"], doc["rule"], doc["timezone"]) == ("SUP-7", "P2", 4, "UTC")
    fr = doc["metrics"]["first_response"]
    assert (fr["breached_at"], fr["breached_at_local"]) == ("2026-11-02T15:00:00Z", "2026-11-02T15:00:00+00:00")
    assert [s["kind"] for s in fr["segments"]] == [RUNNING, OFF_HOURS, RUNNING, PAUSED, RUNNING, STOPPED]
    assert [s["elapsed_s"] for s in doc["metrics"]["resolution"]["segments"]][-1] == 7 * H


BAD = [
    # (id, arguments, a piece of the message)
    ("unknown_key", ["SUP-99"], "no issue with the key 'SUP-99'"),
    ("empty_key", [""], "give the issue's key"),
    ("missing_key", [], "Missing argument 'KEY'"),
    ("bad_format", ["SUP-7", "--format", "yaml"], "--format 'yaml': use one of text, json"),
]


@pytest.mark.parametrize(("args", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_explain_bad_input_exits_2(workdir: Path, args: list[str], message: str) -> None:
    result = run_cli("explain", *args, "--policy", str(workdir / "policy.yaml"),
                     "--input", str(workdir / "issues.jsonl"), "--now", STORY_NOW)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    assert result.stdout == ""
