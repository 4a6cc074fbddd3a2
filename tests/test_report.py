"""``sla-sync report``: every count against hand-built issues, worked out by hand.

The policy's office calendar is UTC, Monday to Friday 09:00-13:00 and 14:00-18:00;
P1 runs on the 24x7 calendar (first response 1h, resolution 8h), P2 on the office
calendar (first response 2h, resolution 16h).  2026-11-02 is a Monday.  The period
is [2026-11-02T00:00Z, 2026-11-06T00:00Z) and the clocks are read at Friday
2026-11-06T12:00Z.  Each issue's comment shows its clocks; the expected figures
below add them up.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sla_sync.neutral import issue_from_json
from sla_sync.policy import parse_policy
from sla_sync.report import (
    GroupStats,
    Period,
    ReportBuilder,
    csat_score,
    month_of,
    nearest_rank,
    report_to_json,
    share_bin,
    week_of,
)
from sla_sync.timers import evaluate
from tests.support import comment, issue_json, run_cli, status, ts

POLICY = """\
name: report-test
calendars:
  office:
    timezone: UTC
    hours:
      mon: ["09:00-13:00", "14:00-18:00"]
      tue: ["09:00-13:00", "14:00-18:00"]
      wed: ["09:00-13:00", "14:00-18:00"]
      thu: ["09:00-13:00", "14:00-18:00"]
      fri: ["09:00-13:00", "14:00-18:00"]
  always: {timezone: UTC, hours: 24x7}
levels:
  P1: {calendar: always, first_response: 1h, resolution: 8h}
  P2: {calendar: office, first_response: 2h, resolution: 16h}
classify:
  - if: {priority: Urgent}
    level: P1
  - level: P2
clock:
  pause_statuses: [Feedback]
  resolved_statuses: [Resolved, Closed]
warn_at: 75%
report:
  csat_field: CSAT
  csat_values: {"Very happy": 5, "Happy": 4, "Unhappy": 1}
"""

SINCE, UNTIL, NOW = "2026-11-02T00:00:00Z", "2026-11-06T00:00:00Z", "2026-11-06T12:00:00Z"
H = 3600


def issue(key: str, created: str, state: str, *, urgent: bool = False, events: list[dict[str, Any]] | None = None,
          csat: Any = None, **extra: Any) -> dict[str, Any]:
    obj = issue_json(created, state, key=key, priority="Urgent" if urgent else "Normal", events=events or [])
    if csat is not None:
        obj["fields"] = {"CSAT": csat}
    obj.update(extra)
    return obj


ISSUES = [
    # P1. FR: 10:00-10:30 = 1800 met. Res: 10:00-14:00 = 14400 met, stopped. Solved, CSAT 5.
    issue("A", "2026-11-02T10:00:00Z", "Resolved", urgent=True, csat=5,
          events=[comment("2026-11-02T10:30:00Z"), status("2026-11-02T14:00:00Z", "New", "Resolved")]),
    # P1. FR: 11:00-13:00 = 7200 > 3600 breached, stopped. Res: Mon 11:00 - Tue 01:00 = 14 h = 50400
    # breached, stopped. Solved, CSAT ["Happy"] (a list value) = 4.
    issue("B", "2026-11-02T11:00:00Z", "Resolved", urgent=True, csat=["Happy"],
          events=[comment("2026-11-02T13:00:00Z"), status("2026-11-03T01:00:00Z", "New", "Resolved")]),
    # P1, reopened and open now. FR: 1200 met. Res: 08-10 (2 h) + Tue 12:00 - Fri 12:00 (72 h) = 74 h
    # breached, running (not stopped). Not solved, so its CSAT 1 does not count.
    issue("C", "2026-11-03T08:00:00Z", "In Progress", urgent=True, csat=1,
          events=[comment("2026-11-03T08:20:00Z"), status("2026-11-03T10:00:00Z", "New", "Resolved"),
                  status("2026-11-03T12:00:00Z", "Resolved", "In Progress")]),
    # P2, reopened and resolved again. FR: 09-10 = 3600 met. Res: 09-11 (2 h) + 14-15 (1 h) = 10800 met,
    # stopped. Solved, CSAT "Unhappy" = 1.
    issue("D", "2026-11-02T09:00:00Z", "Resolved", csat="Unhappy",
          events=[comment("2026-11-02T10:00:00Z"), status("2026-11-02T11:00:00Z", "New", "Resolved"),
                  status("2026-11-02T14:00:00Z", "Resolved", "In Progress"),
                  status("2026-11-02T15:00:00Z", "In Progress", "Resolved")]),
    # P2, waiting for the customer since Wed 10:00: FR and Res paused at 3600.
    issue("E", "2026-11-04T09:00:00Z", "Feedback", events=[status("2026-11-04T10:00:00Z", "New", "Feedback")]),
    # P2, nobody answered. Wed 14-18 (4 h) + Thu (8 h) + Fri 09-12 (3 h) = 15 h = 54000.
    # FR breached, running. Res 54000 of 57600 = 93.75 % >= 75 %: running, at risk.
    issue("F", "2026-11-04T14:00:00Z", "New"),
    # P1, created exactly at `since` (inside). FR: 2700 met. Res: Mon 00:00 - Fri 12:00 = 108 h, breached, running.
    issue("H", "2026-11-02T00:00:00Z", "In Progress", urgent=True,
          events=[comment("2026-11-02T00:45:00Z"), status("2026-11-02T00:45:00Z", "New", "In Progress")]),
    # P2, solved without a CSAT answer. FR: 1800 met. Res: 09-11 = 7200 met, stopped.
    issue("I", "2026-11-05T09:00:00Z", "Closed",
          events=[comment("2026-11-05T09:30:00Z"), status("2026-11-05T11:00:00Z", "New", "Closed")]),
    # P2, solved, with a CSAT value that maps to no number: no answer, reported as unmapped.
    # FR: 600 met. Res: 14-16 = 7200 met, stopped.
    issue("J", "2026-11-05T14:00:00Z", "Resolved", csat="Meh",
          events=[comment("2026-11-05T14:10:00Z"), status("2026-11-05T16:00:00Z", "New", "Resolved")]),
    # Outside the period: created exactly at `until`, and a second before `since`.
    issue("X1", UNTIL, "Resolved", urgent=True, csat=5, events=[status("2026-11-06T01:00:00Z", "New", "Resolved")]),
    issue("X2", "2026-11-01T23:59:59Z", "Resolved", urgent=True, csat=5,
          events=[status("2026-11-02T01:00:00Z", "New", "Resolved")]),
]


def metric(met: int, breached: int, running: int, paused: int, compliance: float | None,
           median: int | None, p90: int | None) -> dict[str, Any]:
    return {"met": met, "breached": breached, "running": running, "paused": paused, "compliance": compliance,
            "median_elapsed_s": median, "p90_elapsed_s": p90}


EXPECTED = {
    "period": {"since": SINCE, "until": UNTIL},
    "now": NOW,
    "groups": {
        "P1": {  # A, B, C, H
            "opened": 4, "solved": 2, "at_risk_open": 0,
            "csat": {"answers": 2, "average": 4.5},  # (5 + 4) / 2
            "metrics": {
                # FR stopped: 1200 1800 2700 7200; median rank ceil(2) = 1800, p90 rank ceil(3.6) = 7200
                "first_response": metric(3, 1, 0, 0, 0.75, 1800, 7200),
                # Res stopped: 14400 50400 (C and H run on); median rank 1, p90 rank ceil(1.8) = 2
                "resolution": metric(1, 3, 0, 0, 0.25, 14400, 50400),
            },
        },
        "P2": {  # D, E, F, I, J
            "opened": 5, "solved": 3, "at_risk_open": 1,
            "csat": {"answers": 1, "average": 1.0},  # only D answered with a number
            "metrics": {
                # FR stopped: 600 1800 3600; median rank 2, p90 rank ceil(2.7) = 3
                "first_response": metric(3, 1, 0, 1, 0.75, 1800, 3600),
                # Res stopped: 7200 7200 10800
                "resolution": metric(3, 0, 1, 1, 1.0, 7200, 10800),
            },
        },
    },
    "total": {
        "opened": 9, "solved": 5, "at_risk_open": 1,
        "csat": {"answers": 3, "average": 3.33},  # (5 + 4 + 1) / 3
        "metrics": {
            # FR stopped: 600 1200 1800 1800 2700 3600 7200; median rank ceil(3.5) = 4th, p90 rank ceil(6.3) = 7th
            "first_response": metric(6, 2, 0, 1, 0.75, 1800, 7200),
            # Res stopped: 7200 7200 10800 14400 50400; median rank 3, p90 rank ceil(4.5) = 5; 4 / 7 = 0.5714
            "resolution": metric(4, 3, 1, 1, 0.5714, 10800, 50400),
        },
    },
}


def jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "policy.yaml").write_text(POLICY, encoding="utf-8")
    (tmp_path / "issues.jsonl").write_text(jsonl(ISSUES), encoding="utf-8")
    return tmp_path


def report(workdir: Path, *args: str) -> Any:
    return run_cli("report", "--policy", str(workdir / "policy.yaml"), "--input", str(workdir / "issues.jsonl"),
                   "--now", NOW, *args)


def build(records: list[dict[str, Any]], group_by: str = "level", period: Period | None = None) -> ReportBuilder:
    policy = parse_policy(POLICY, "report-test.yaml")
    builder = ReportBuilder(policy, group_by, period or Period(ts(SINCE), ts(UNTIL)), ts(NOW))
    for record in records:
        item = issue_from_json(record)
        builder.add(item, evaluate(item, policy, ts(NOW)))
    return builder


# -- the JSON contract, end to end ------------------------------------------------------------


def test_json_report_counts_every_figure_as_worked_out_by_hand(workdir: Path) -> None:
    result = report(workdir, "--since", "2026-11-02", "--until", UNTIL, "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == EXPECTED


def test_json_report_has_exactly_the_documented_keys(workdir: Path) -> None:
    result = report(workdir, "--since", SINCE, "--until", UNTIL, "--format", "json")
    doc = json.loads(result.stdout)
    assert list(doc) == ["period", "now", "groups", "total"]
    for group in [*doc["groups"].values(), doc["total"]]:
        assert list(group) == ["opened", "solved", "at_risk_open", "csat", "metrics"]
        assert list(group["csat"]) == ["answers", "average"]
        for m in group["metrics"].values():
            assert list(m) == ["met", "breached", "running", "paused", "compliance",
                               "median_elapsed_s", "p90_elapsed_s"]


def test_unmapped_csat_value_is_reported_on_stderr(workdir: Path) -> None:
    result = report(workdir, "--since", SINCE, "--until", UNTIL, "--format", "json")
    assert "report.csat_values has no number for the CSAT value 'Meh' (1 issues)" in result.stderr


def test_until_defaults_to_now_and_since_to_the_beginning(workdir: Path) -> None:
    # Every issue was created before NOW: all eleven, X1 and X2 included.
    result = report(workdir, "--format", "json")
    doc = json.loads(result.stdout)
    assert doc["period"] == {"since": None, "until": NOW}
    assert doc["total"]["opened"] == 11
    # X1 (resolved at 01:00, 1 h of 8 h) and X2 (resolved after 1 h 1 s) add two met resolutions and CSAT 5, 5
    assert doc["groups"]["P1"]["metrics"]["resolution"]["met"] == 3
    assert doc["total"]["csat"] == {"answers": 5, "average": 4.0}  # (5 + 4 + 1 + 5 + 5) / 5


# -- the period boundary, reopened issues, CSAT -------------------------------------------------

BOUNDARY = [
    # (id, created_at, counted in [SINCE, UNTIL))
    ("exactly_since", "2026-11-02T00:00:00Z", True),
    ("a_second_before_since", "2026-11-01T23:59:59Z", False),
    ("a_second_before_until", "2026-11-05T23:59:59Z", True),
    ("exactly_until", "2026-11-06T00:00:00Z", False),
    ("offset_inside", "2026-11-02T00:30:00+01:00", False),  # 2026-11-01T23:30Z
]


@pytest.mark.parametrize(("created", "counted"), [b[1:] for b in BOUNDARY], ids=[b[0] for b in BOUNDARY])
def test_an_issue_belongs_to_the_period_when_created_in_since_until(created: str, counted: bool) -> None:
    builder = build([issue("K", created, "New")])
    assert builder.result().total.opened == (1 if counted else 0)


def test_a_reopened_issue_is_not_solved_and_its_csat_does_not_count() -> None:
    [c] = [i for i in ISSUES if i["key"] == "C"]
    total = build([c]).result().total
    assert (total.opened, total.solved, total.csat.answers) == (1, 0, 0)
    assert total.metrics["resolution"].breached == 1
    assert total.metrics["resolution"].median_elapsed_s is None  # still running: no stopped value


def test_a_reopened_and_resolved_again_issue_counts_both_cycles() -> None:
    [d] = [i for i in ISSUES if i["key"] == "D"]
    total = build([d]).result().total
    assert total.solved == 1
    assert total.metrics["resolution"].median_elapsed_s == 3 * H  # 2 h + 1 h


def test_an_issue_without_a_csat_answer_is_solved_but_not_an_answer() -> None:
    [i] = [x for x in ISSUES if x["key"] == "I"]
    total = build([i]).result().total
    assert (total.solved, total.csat.answers, total.csat.average) == (1, 0, None)


def test_no_issue_at_all_gives_zeros_and_nulls() -> None:
    total = build([]).result().total
    assert total == GroupStats(0, 0, 0, total.csat, total.metrics)
    assert (total.csat.answers, total.csat.average) == (0, None)
    for m in total.metrics.values():
        assert (m.met, m.breached, m.compliance, m.median_elapsed_s, m.p90_elapsed_s) == (0, 0, None, None, None)


CSAT = [
    # (id, value, mapping, score, unmapped)
    ("int", 4, {}, 4.0, None),
    ("float", 3.5, {}, 3.5, None),
    ("numeric_text", "4", {}, 4.0, None),  # Redmine's int custom fields come as text
    ("mapped_text", "Happy", {"Happy": 4.0}, 4.0, None),
    ("mapping_wins_over_number", "1", {"1": 0.0}, 0.0, None),
    ("list_first_element", ["", "Happy"], {"Happy": 4.0}, 4.0, None),
    ("none", None, {}, None, None),
    ("empty_text", "", {}, None, None),
    ("empty_list", [], {}, None, None),
    ("unmapped_text", "Great", {"Happy": 4.0}, None, "Great"),
    ("boolean_is_no_score", True, {}, None, "True"),
]


@pytest.mark.parametrize(("value", "mapping", "score", "unmapped"), [c[1:] for c in CSAT], ids=[c[0] for c in CSAT])
def test_csat_value_to_score(value: Any, mapping: dict[str, float], score: float | None, unmapped: str | None) -> None:
    assert csat_score(value, mapping) == (score, unmapped)


# -- grouping -----------------------------------------------------------------------------------

GROUPINGS = [
    # (group_by, the issues' extra keys, expected opened per group)
    ("assignee", [{"assignee": "bob"}, {"assignee": "alice"}, {"assignee": "bob"}, {}],
     {"alice": 1, "bob": 2, "(none)": 1}),
    ("milestone", [{"milestone": "Phase 2"}, {"milestone": "Phase 1"}, {}, {"milestone": "Phase 2"}],
     {"Phase 1": 1, "Phase 2": 2, "(none)": 1}),
    ("type", [{"type": "Bug"}, {"type": "Bug"}, {"type": "Support"}, {"type": None}],
     {"Bug": 2, "Support": 1, "(none)": 1}),
]


@pytest.mark.parametrize(("group_by", "extras", "expected"), GROUPINGS, ids=[g[0] for g in GROUPINGS])
def test_group_by_puts_each_issue_in_its_group(group_by: str, extras: list[dict[str, Any]],
                                               expected: dict[str, int]) -> None:
    records = [issue(f"G{i}", "2026-11-03T09:00:00Z", "New", **extra) for i, extra in enumerate(extras)]
    result = build(records, group_by).result()
    assert {name: g.opened for name, g in result.groups.items()} == expected
    assert list(result.groups)[-1] == "(none)"  # the group without a value comes last
    assert result.total.opened == 4


def test_group_by_month_uses_the_utc_month_of_creation() -> None:
    records = [
        issue("M1", "2026-10-31T23:30:00Z", "New"),
        issue("M2", "2026-11-01T00:30:00+01:00", "New"),  # 2026-10-31T23:30Z: still October in UTC
        issue("M3", "2026-11-01T00:00:00Z", "New"),
    ]
    result = build(records, "month", Period(None, None)).result()
    assert {name: g.opened for name, g in result.groups.items()} == {"2026-10": 2, "2026-11": 1}


def test_group_by_level_follows_the_policy_order() -> None:
    records = [issue("L1", "2026-11-03T09:00:00Z", "New"), issue("L2", "2026-11-03T09:00:00Z", "New", urgent=True)]
    assert list(build(records).result().groups) == ["P1", "P2"]


# -- percentiles and helpers --------------------------------------------------------------------

RANKS = [
    # (histogram, percent, nearest-rank value)
    ({}, 50, None),
    ({7: 1}, 50, 7),
    ({7: 1}, 90, 7),
    ({1: 1, 2: 1}, 50, 1),  # rank ceil(1.0) = 1
    ({1: 1, 2: 1, 3: 1}, 50, 2),  # rank ceil(1.5) = 2
    ({1: 9, 100: 1}, 90, 1),  # rank 9 of 10
    ({1: 8, 100: 2}, 90, 100),  # rank 9 of 10
    ({5: 3, 1: 2}, 50, 5),  # 1 1 5 5 5: rank 3
]


@pytest.mark.parametrize(("histogram", "percent", "value"), RANKS)
def test_nearest_rank_percentile(histogram: dict[int, int], percent: int, value: int | None) -> None:
    assert nearest_rank(histogram, percent) == value


@given(st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=200), st.sampled_from([50, 90]))
def test_nearest_rank_matches_sorting_the_values(values: list[int], percent: int) -> None:
    from collections import Counter

    ordered = sorted(values)
    got = nearest_rank(Counter(values), percent)
    assert got is not None
    # at least `percent` % of the values are <= got, and fewer are < got
    assert sum(v <= got for v in values) * 100 >= percent * len(values)
    assert sum(v < got for v in values) * 100 < percent * len(values)
    assert got in ordered


@pytest.mark.parametrize(
    ("instant", "week"),
    [
        ("2026-11-02T00:00:00Z", "2026-11-02T00:00:00Z"),  # a Monday
        ("2026-11-08T23:59:59Z", "2026-11-02T00:00:00Z"),  # the Sunday after
        ("2026-11-09T00:00:00Z", "2026-11-09T00:00:00Z"),
        ("1970-01-01T12:00:00Z", "1969-12-29T00:00:00Z"),  # a Thursday
    ],
)
def test_week_of_is_the_monday_before_in_utc(instant: str, week: str) -> None:
    assert week_of(ts(instant)) == ts(week)


def test_month_of_is_the_utc_month() -> None:
    assert month_of(ts("2026-12-31T23:59:59Z")) == "2026-12"
    assert month_of(ts("2027-01-01T00:30:00+01:00")) == "2026-12"


@pytest.mark.parametrize(
    ("elapsed", "target", "index"),
    [(0, 100, 0), (25, 100, 0), (26, 100, 1), (100, 100, 3), (101, 100, 4), (300, 100, 7), (301, 100, 8)],
)
def test_share_bins_put_meeting_the_target_exactly_among_the_met(elapsed: int, target: int, index: int) -> None:
    assert share_bin(elapsed, target) == index


def test_builder_is_the_same_as_the_cli_json() -> None:
    assert report_to_json(build(ISSUES).result()) == EXPECTED


# -- other formats ---------------------------------------------------------------------------


def test_csv_has_a_row_per_group_and_metric_and_the_total(workdir: Path) -> None:
    result = report(workdir, "--since", SINCE, "--until", UNTIL, "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["group"], r["metric"]) for r in rows] == [
        ("P1", "first_response"), ("P1", "resolution"), ("P2", "first_response"), ("P2", "resolution"),
        ("(total)", "first_response"), ("(total)", "resolution"),
    ]
    total_res = rows[-1]
    assert (total_res["opened"], total_res["met"], total_res["breached"], total_res["compliance"]) == (
        "9", "4", "3", "0.5714")
    assert rows[2]["csat_average"] == "1.0" and rows[0]["csat_average"] == "4.5"
    assert rows[0]["median_elapsed_s"] == "1800" and rows[0]["p90_elapsed_s"] == "7200"


def test_table_shows_the_figures(workdir: Path) -> None:
    result = report(workdir, "--since", SINCE, "--until", UNTIL)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    total_rows = [line for line in lines if "(total)" in line]
    # the issues table, then one per metric: resolution has 4 met, 3 breached, 57.1 %, median 3h, p90 14h
    assert any("9" in r and "5" in r and "3.33" in r for r in total_rows[:1]), total_rows
    assert any(" 57.1% " in r and " 3h " in r and " 14h " in r for r in total_rows), total_rows


def test_output_file_is_written_and_stdout_stays_empty(workdir: Path) -> None:
    out = workdir / "report.json"
    result = report(workdir, "--since", SINCE, "--until", UNTIL, "--format", "json", "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert json.loads(out.read_text(encoding="utf-8")) == EXPECTED


# -- bad input --------------------------------------------------------------------------------------

BAD = [
    # (id, extra arguments, a piece of the message)
    ("unknown_group_by", ["--group-by", "colour"],
     "--group-by 'colour': use one of level, assignee, month, milestone, type"),
    ("unknown_format", ["--format", "pdf"], "--format 'pdf': use one of table, csv, json, html"),
    ("since_a_word", ["--since", "last week"], "--since 'last week'"),
    ("since_without_timezone", ["--since", "2026-11-02T00:00:00"], "has no timezone"),
    ("until_bad_month", ["--until", "2026-13-01"], "--until '2026-13-01'"),
    ("bad_now", ["--now", "tomorrow"], "--now"),
    ("since_after_until", ["--since", "2026-11-06", "--until", "2026-11-02"],
     "--since 2026-11-06 is not before --until 2026-11-02"),
    ("since_after_now", ["--since", "2030-01-01"], "is not before --now (2026-11-06T12:00:00Z, the default --until)"),
]


@pytest.mark.parametrize(("args", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_option_exits_2_with_a_clear_message(workdir: Path, args: list[str], message: str) -> None:
    result = run_cli("report", "--policy", str(workdir / "policy.yaml"), "--input", str(workdir / "issues.jsonl"),
                     *(["--now", NOW] if "--now" not in args else []), *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    assert result.stdout == ""


def test_bad_input_line_exits_2_with_file_and_line(workdir: Path) -> None:
    source = workdir / "bad.jsonl"
    source.write_text(json.dumps(ISSUES[0]) + "\n{oops\n", encoding="utf-8")
    result = run_cli("report", "--policy", str(workdir / "policy.yaml"), "--input", str(source), "--now", NOW)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{source}:2: " in result.stderr


def test_without_input_a_policy_without_tracker_says_what_to_add(workdir: Path) -> None:
    result = run_cli("report", "--policy", str(workdir / "policy.yaml"), "--now", NOW)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "has no `tracker` section" in result.stderr
