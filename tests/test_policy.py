"""Policy files: ``parse_policy``/``load_policy`` and ``sla-sync check``.

Every problem is reported as ``FILE:LINE:COL: message`` at the line of the offending
key or value, all problems of a file in one pass; ``check`` exits 2 without a
traceback.  In the bad policies below the offending line carries the YAML comment
``#!``: the expected line number is the line that holds that marker.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from sla_sync.neutral import issue_from_json
from sla_sync.policy import PolicyError, classify, load_policy, parse_policy
from tests.support import DAY, HOUR, issue_json, run_cli, ts

POLICIES_DIR = Path(__file__).resolve().parent.parent / "policies"
READY = sorted(POLICIES_DIR.glob("*.yaml"))

BASE = """\
name: policy-test
calendars:
  office:
    timezone: Europe/Madrid
    hours:
      mon: ["09:00-13:00", "14:00-18:00"]
      fri: ["09:00-15:00"]
    holidays: [2026-12-25]
  always:
    timezone: UTC
    hours: 24x7
levels:
  P1: {calendar: always, first_response: 30m, workaround: 4h, resolution: 24h}
  P2: {calendar: office, first_response: 2h, resolution: 40h}
classify:
  - if: {priority: [Urgent]}
    level: P1
  - level: P2
clock:
  pause_statuses: [Feedback]
warn_at: 75%
escalate:
  - when: resolution 75%
    assign: l2-team
"""


def variant(old: str, new: str) -> str:
    """BASE with one exact piece of text replaced."""
    assert BASE.count(old) == 1, f"{old!r} must occur once in BASE"
    return BASE.replace(old, new)


def marked_line(text: str) -> int:
    """The 1-based line that carries the ``#!`` marker."""
    lines = [i for i, line in enumerate(text.splitlines(), start=1) if "#!" in line]
    assert len(lines) == 1, "exactly one marked line"
    return lines[0]


PROBLEM = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): (?P<message>.+)$")

BAD = [
    # (id, policy text, a piece of the message)
    ("unknown_top_level_key", BASE + "colour: blue  #!\n", "unknown key 'colour'"),
    (
        "unknown_nested_key",
        variant(
            "  P2: {calendar: office, first_response: 2h, resolution: 40h}",
            "  P2: {calendar: office, frist_response: 2h, resolution: 40h}  #!",
        ),
        "unknown key 'frist_response'",
    ),
    (
        "unknown_key_in_block_mapping",
        variant("    timezone: UTC\n", "    timezone: UTC\n    timezome: UTC  #!\n"),
        "unknown key 'timezome'",
    ),
    (
        "missing_key_in_a_level",
        variant(
            "  P2: {calendar: office, first_response: 2h, resolution: 40h}",
            "  P2: {first_response: 2h, resolution: 40h}  #!",
        ),
        "missing key 'calendar'",
    ),
    # a missing top-level key has no line of its own: the document's first line
    (
        "missing_top_level_key",
        BASE.replace("name: policy-test\ncalendars:\n", "calendars:  #!\n"),
        "missing key 'name'",
    ),
    (
        "bad_duration",
        variant(
            "  P2: {calendar: office, first_response: 2h, resolution: 40h}",
            "  P2: {calendar: office, first_response: 2 hours, resolution: 40h}  #!",
        ),
        "not a duration",
    ),
    (
        "zero_duration",
        variant(
            "  P2: {calendar: office, first_response: 2h, resolution: 40h}",
            "  P2: {calendar: office, first_response: 0m, resolution: 40h}  #!",
        ),
        "longer than zero",
    ),
    ("bad_interval", variant('      fri: ["09:00-15:00"]', '      fri: ["9am-3pm"]  #!'), "not an interval"),
    (
        "interval_past_midnight",
        variant('      fri: ["09:00-15:00"]', '      fri: ["09:00-25:00"]  #!'),
        "00:00 to 24:00",
    ),
    (
        "interval_end_before_start",
        variant('      fri: ["09:00-15:00"]', '      fri: ["15:00-09:00"]  #!'),
        "end must come after the start",
    ),
    (
        "overlapping_intervals",
        variant('      mon: ["09:00-13:00", "14:00-18:00"]', '      mon: ["09:00-13:00", "12:00-18:00"]  #!'),
        "overlap",
    ),
    # in a block list the offending value is the item on its own line
    (
        "bad_interval_in_a_block_list",
        variant(
            '      mon: ["09:00-13:00", "14:00-18:00"]',
            '      mon:\n        - "09:00-13:00"\n        - "14:00-1800"  #!',
        ),
        "not an interval",
    ),
    (
        "unknown_timezone",
        variant("    timezone: Europe/Madrid", "    timezone: Europe/Madird  #!"),
        "not an IANA timezone",
    ),
    ("bad_holiday_date", variant("    holidays: [2026-12-25]", "    holidays: [2026-02-30]  #!"), "holidays"),
    (
        "level_names_unknown_calendar",
        variant(
            "  P2: {calendar: office, first_response: 2h, resolution: 40h}",
            "  P2: {calendar: ofice, first_response: 2h, resolution: 40h}  #!",
        ),
        "'ofice'",
    ),
    ("rule_names_unknown_level", variant("  - level: P2\n", "  - level: P9  #!\n"), "'P9'"),
    (
        "unknown_rule_condition",
        variant("  - if: {priority: [Urgent]}", "  - if: {prioity: [Urgent]}  #!"),
        "unknown condition 'prioity'",
    ),
    (
        "no_rule_always_holds",
        variant(
            "classify:\n  - if: {priority: [Urgent]}\n    level: P1\n  - level: P2\n",
            "classify:  #!\n  - if: {priority: [Urgent]}\n    level: P1\n  - if: {type: Bug}\n    level: P2\n",
        ),
        "no rule always holds",
    ),
    (
        "unreachable_rule",
        variant("  - level: P2\n", "  - level: P2\n  - if: {priority: Low}  #!\n    level: P1\n"),
        "never reached",
    ),
    ("warn_at_above_100", variant("warn_at: 75%", "warn_at: 175%  #!"), "between 0% and 100%"),
    ("warn_at_not_a_share", variant("warn_at: 75%", "warn_at: lots  #!"), "not a share"),
    (
        "escalate_when_bad_condition",
        variant("  - when: resolution 75%", "  - when: resolution soon  #!"),
        "<metric> breached",
    ),
    (
        "escalate_when_bad_metric",
        variant("  - when: resolution 75%", "  - when: responce 75%  #!"),
        "<metric> breached",
    ),
    (
        "unknown_holidays_country",
        variant("    holidays: [2026-12-25]\n", "    holidays: [2026-12-25]\n    holidays_country: XX  #!\n"),
        "holidays package",
    ),
    (
        "unknown_holidays_subdivision",
        variant(
            "    holidays: [2026-12-25]\n",
            "    holidays: [2026-12-25]\n    holidays_country: ES\n    holidays_subdiv: ZZ  #!\n",
        ),
        "holidays package",
    ),
    (
        "duplicate_key",
        variant(
            "  P2: {calendar: office, first_response: 2h, resolution: 40h}\n",
            "  P2: {calendar: office, first_response: 2h, resolution: 40h}\n"
            "  P2: {calendar: office, resolution: 80h}  #!\n",
        ),
        "duplicate key 'P2'",
    ),
    # the second line is indented less than the mapping it continues
    (
        "invalid_yaml_indentation",
        variant("    timezone: UTC\n    hours: 24x7\n", "    timezone: UTC\n   hours: 24x7  #!\n"),
        "not valid YAML",
    ),
    ("not_a_mapping", "#!\n- name: a list, not a mapping\n", "mapping"),
    (
        "holidays_subdiv_without_country",
        variant("    holidays: [2026-12-25]\n", "    holidays: [2026-12-25]\n    holidays_subdiv: MD  #!\n"),
        "needs holidays_country",
    ),
    (
        "escalation_step_without_action",
        variant("  - when: resolution 75%\n    assign: l2-team\n", "  - when: resolution 75%  #!\n    private: true\n"),
        "at least one action",
    ),
    # -- limits: durations, calendars, nesting, aliases ----------------------------------------
    (
        "huge_duration",
        variant(
            "  P2: {calendar: office, first_response: 2h, resolution: 40h}",
            "  P2: {calendar: office, first_response: 2h, resolution: 99999999999999999999h}  #!",
        ),
        "longer than 100000h",
    ),
    (
        "duration_just_over_the_maximum",
        variant(
            "  P2: {calendar: office, first_response: 2h, resolution: 40h}",
            "  P2: {calendar: office, first_response: 2h, resolution: 100000h1s}  #!",
        ),
        "longer than 100000h",
    ),
    (
        "duration_of_five_thousand_digits",
        variant(
            "  P2: {calendar: office, first_response: 2h, resolution: 40h}",
            "  P2: {calendar: office, first_response: 1" + "0" * 5000 + "s, resolution: 40h}  #!",
        ),
        "longer than 100000h",
    ),
    (
        "calendar_whose_days_are_all_empty",
        variant(
            '    hours:\n      mon: ["09:00-13:00", "14:00-18:00"]\n      fri: ["09:00-15:00"]\n',
            "    hours: {mon: [], fri: []}  #!\n",
        ),
        "no working hours",
    ),
    (
        "calendar_with_only_holidays",
        variant(
            '    hours:\n      mon: ["09:00-13:00", "14:00-18:00"]\n      fri: ["09:00-15:00"]\n',
            "    hours: {}  #!\n",
        ),
        "no working hours",
    ),
    ("deep_flow_lists", BASE + "colour: " + "[" * 100_000 + "]" * 100_000 + "  #!\n", "nested more than"),
    ("deep_flow_mappings", BASE + "colour: " + "{a: " * 100_000 + "b" + "}" * 100_000 + "  #!\n", "nested more than"),
    ("deep_block_lists", BASE + "colour:\n  " + "- " * 5_000 + "x  #!\n", "nested more than"),
    ("alias_of_itself", BASE + "colour: &c [a, *c]  #!\n", "contains itself"),
    (
        "aliases_nested_past_the_depth_limit",
        # c2 holds c1 holds c0, 40 levels each: the alias on c2's line goes past 100
        BASE + "c0: &c0 " + "[" * 40 + "x" + "]" * 40 + "\n" + "c1: &c1 " + "[" * 40 + "*c0" + "]" * 40 + "\n"
        + "c2: " + "[" * 40 + "*c1" + "]" * 40 + "  #!\n",
        "nested more than",
    ),
    (
        "tracker_without_secret",
        variant(
            "calendars:\n",
            "tracker:  #!\n  kind: redmine\n  url: http://127.0.0.1:3000\n  project: support\ncalendars:\n",
        ),
        "api_key_env",
    ),
]


@pytest.mark.parametrize(("text", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_problem_is_reported_at_its_line(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "bad.yaml")
    problems = [(p.path, p.line, p.message) for p in caught.value.problems]
    assert [(path, line) for path, line, msg in problems if message in msg] == [("bad.yaml", marked_line(text))], (
        problems
    )


@pytest.mark.parametrize(("text", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_problem_text_is_file_line_col_message(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "some/dir/bad.yaml")
    lines = str(caught.value).splitlines()
    assert lines
    for line in lines:
        m = PROBLEM.match(line)
        assert m, line
        assert m["path"] == "some/dir/bad.yaml"
        assert int(m["line"]) >= 1 and int(m["col"]) >= 1


def test_unknown_key_points_at_the_key_column() -> None:
    text = variant("    timezone: UTC\n", "    timezone: UTC\n    timezome: UTC\n")
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "bad.yaml")
    # line 11 (after line 10 `    timezone: UTC`), the key starts in column 5
    assert [(p.line, p.col) for p in caught.value.problems] == [(11, 5)]


def test_several_problems_are_all_reported_in_one_pass() -> None:
    text = (
        BASE.replace("    timezone: Europe/Madrid", "    timezone: Mars/Olympus")  # line 4
        .replace("first_response: 2h, resolution: 40h", "first_response: 2 hours, resolution: 40h")  # line 14
        .replace("  - level: P2\n", "  - level: P9\n")  # line 18
        .replace("warn_at: 75%", "warn_at: 175%")  # line 21
        + "colour: blue\n"  # line 25
    )
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "bad.yaml")
    problems = caught.value.problems
    assert [p.line for p in problems] == [4, 14, 18, 21, 25]
    for p, piece in zip(problems, ["IANA timezone", "not a duration", "'P9'", "175%", "'colour'"], strict=True):
        assert piece in p.message, p


EMPTY = [
    ("empty_file", ""),
    ("only_comments", "# nothing here\n\n"),
]


@pytest.mark.parametrize("text", [e[1] for e in EMPTY], ids=[e[0] for e in EMPTY])
def test_empty_file_is_one_problem_at_line_one(text: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "empty.yaml")
    assert [(p.line, p.col) for p in caught.value.problems] == [(1, 1)]
    assert "empty" in caught.value.problems[0].message


def test_missing_file_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(caught.value) == f"{path}:1:1: no such file"


def test_directory_is_a_problem(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path)
    assert [(p.path, p.line, p.col) for p in caught.value.problems] == [(str(tmp_path), 1, 1)]
    assert "directory" in caught.value.problems[0].message


# -- what valid files mean ------------------------------------------------------------


@pytest.mark.parametrize("path", READY, ids=[p.name for p in READY])
def test_ready_policy_files_are_valid(path: Path) -> None:
    policy = load_policy(path, known_kinds=["redmine", "gitlab", "jira"])
    assert policy.levels and policy.rules and policy.calendars
    # the last rule always holds
    assert policy.rules[-1].conditions == ()


def test_dates_quoted_and_unquoted_mean_the_same() -> None:
    policy = parse_policy(variant("    holidays: [2026-12-25]", '    holidays: [2026-12-25, "2026-12-24"]'))
    office = policy.calendars["office"]
    assert sorted(str(d) for d in policy.spec.calendars["office"].holidays) == ["2026-12-24", "2026-12-25"]
    # Thursday 2026-12-24 and Friday 2026-12-25 (local days in CET) have no working time;
    # Monday 2026-12-28 keeps its 8 h
    assert office.working_seconds(ts("2026-12-23T23:00:00Z"), ts("2026-12-25T23:00:00Z")) == 0
    assert office.working_seconds(ts("2026-12-27T23:00:00Z"), ts("2026-12-28T23:00:00Z")) == 8 * HOUR


@pytest.mark.parametrize("code", ["NO", '"NO"', "no"], ids=["unquoted", "quoted", "lower_case"])
def test_country_code_NO_is_norway(code: str) -> None:
    text = variant(
        "  always:\n    timezone: UTC\n    hours: 24x7\n",
        f"  always:\n    timezone: Europe/Oslo\n    hours: 24x7\n    holidays_country: {code}\n",
    )
    policy = parse_policy(text)
    always = policy.calendars["always"]
    # Ascension Day, Thursday 2026-05-14, CEST day 2026-05-13T22:00Z .. 2026-05-14T22:00Z;
    # the day after is an ordinary day
    assert always.working_seconds(ts("2026-05-13T22:00:00Z"), ts("2026-05-14T22:00:00Z")) == 0
    assert always.working_seconds(ts("2026-05-14T22:00:00Z"), ts("2026-05-15T22:00:00Z")) == DAY


def test_yes_and_no_words_stay_strings_in_names() -> None:
    # Plain scalars are strings: statuses called `No` or `Off` are not booleans.
    policy = parse_policy(variant("  pause_statuses: [Feedback]", "  pause_statuses: [No, Off, Feedback]"))
    assert policy.pause == frozenset({"No", "Off", "Feedback"})


def test_levels_and_rules_compile_from_the_file() -> None:
    policy = parse_policy(BASE)
    assert {name: level.targets for name, level in policy.levels.items()} == {
        # 30m, 4h, 24h; 2h, 40h
        "P1": {"first_response": 1800, "workaround": 14400, "resolution": 86400},
        "P2": {"first_response": 7200, "resolution": 144000},
    }
    assert [r.level for r in policy.rules] == ["P1", "P2"]
    assert policy.warn_share == 75.0


DESIGN_EXAMPLE = """\
name: acme-support
tracker:                      # optional for offline use
  kind: redmine               # redmine | gitlab | jira (or a plugin's name)
  url: https://redmine.example.com
  project: support
  api_key_env: REDMINE_API_KEY   # secrets by reference only
calendars:
  office:
    timezone: Europe/Madrid
    hours:                    # local wall-clock intervals per weekday
      mon: ["09:00-13:00", "14:00-18:00"]
      tue: ["09:00-13:00", "14:00-18:00"]
      wed: ["09:00-13:00", "14:00-18:00"]
      thu: ["09:00-13:00", "14:00-18:00"]
      fri: ["09:00-15:00"]
    holidays: ["2026-12-25", "2027-01-01"]
    holidays_country: ES      # optional: public holidays from the `holidays` package
  always:
    timezone: UTC
    hours: 24x7
levels:                       # targets: 30m, 4h, 1h30m
  P1: {calendar: always, first_response: 30m, workaround: 4h, resolution: 24h}
  P2: {calendar: office, first_response: 2h, workaround: 8h, resolution: 40h}
  P3: {calendar: office, first_response: 8h, resolution: 80h}
classify:                     # first rule that holds wins; a rule without `if` always holds
  - if: {priority: [Immediate, Urgent]}
    level: P1
  - if: {labels: [outage]}
    level: P1
  - if: {priority: High}
    level: P2
  - level: P3
clock:
  pause_statuses: [Feedback, Waiting on customer]
  resolved_statuses: [Resolved, Closed, Rejected]
  workaround_statuses: [Workaround provided]
  workaround_labels: [workaround]
warn_at: 75%                  # a running metric past this share of its target is at risk
escalate:                     # each step fires once per issue
  - when: resolution 75%
    assign: l2-team
  - when: resolution breached
    assign: support-manager
    comment: "Resolution SLA breached: escalated to the support manager."
"""


def test_the_design_example_is_a_valid_policy() -> None:
    # DESIGN.md's example file, verbatim
    policy = parse_policy(DESIGN_EXAMPLE, "design.yaml", known_kinds=["redmine", "gitlab", "jira"])
    assert sorted(policy.levels) == ["P1", "P2", "P3"]
    # P2's office: Friday 2026-12-25 is off, Monday 2026-12-28 has 8 h (CET days)
    office = policy.levels["P2"].calendar
    assert office.working_seconds(ts("2026-12-24T23:00:00Z"), ts("2026-12-25T23:00:00Z")) == 0
    assert office.working_seconds(ts("2026-12-27T23:00:00Z"), ts("2026-12-28T23:00:00Z")) == 8 * HOUR


def test_check_rejects_an_unknown_tracker_kind(tmp_path: Path) -> None:
    path = tmp_path / "trac.yaml"
    path.write_text(DESIGN_EXAMPLE.replace("  kind: redmine ", "  kind: trac    "), encoding="utf-8")
    result = run_cli("check", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    # `kind` is line 3
    assert re.search(rf"^{re.escape(str(path))}:3:\d+: .*'trac'", result.stdout, re.MULTILINE), result.stdout


# -- classification -----------------------------------------------------------------

CLASSIFY = """\
name: classify-test
calendars:
  always: {timezone: UTC, hours: 24x7}
levels:
  P1: {calendar: always, resolution: 4h}
  P2: {calendar: always, resolution: 8h}
  P3: {calendar: always, resolution: 16h}
  P4: {calendar: always, resolution: 32h}
  P5: {calendar: always, resolution: 64h}
classify:
  - if: {priority: [Immediate, Urgent]}
    level: P1
  - if: {labels: [outage, security]}
    level: P1
  - if: {priority: High, type: Bug}
    level: P2
  - if: {fields.severity: [S1, S2, 1]}
    level: P2
  - if: {assignee: alice, status: [New, Open]}
    level: P3
  - if: {project: ops, milestone: "2.0"}
    level: P4
  - level: P5
"""

CLASSIFY_POLICY = parse_policy(CLASSIFY)


def classify_case(**values: object) -> dict[str, object]:
    issue = issue_json("2026-11-02T09:00:00Z", str(values.pop("status", "New")))
    issue.update(values)
    return issue


CLASSIFICATION = [
    # (id, issue, level)
    ("priority_in_a_list", classify_case(priority="Urgent"), "P1"),
    ("other_priority_in_the_list", classify_case(priority="Immediate"), "P1"),
    ("any_of_the_labels", classify_case(priority="Low", labels=["docs", "security"]), "P1"),
    ("no_matching_label", classify_case(priority="Low", labels=["docs"]), "P5"),
    ("all_keys_hold", classify_case(priority="High", type="Bug"), "P2"),
    ("one_key_fails", classify_case(priority="High", type="Feature"), "P5"),
    ("custom_field", classify_case(fields={"severity": "S2"}), "P2"),
    ("custom_field_other_value", classify_case(fields={"severity": "S3"}), "P5"),
    ("custom_field_missing", classify_case(fields={}), "P5"),
    # a JSON number and the YAML plain scalar 1 are the same value
    ("custom_field_number", classify_case(fields={"severity": 1}), "P2"),
    ("assignee_and_status", classify_case(assignee="alice", status="Open"), "P3"),
    ("assignee_but_other_status", classify_case(assignee="alice", status="Closed"), "P5"),
    ("project_and_milestone", classify_case(project="ops", milestone="2.0"), "P4"),
    # the first rule that holds wins: Urgent (rule 1) before the label (rule 2)
    ("first_rule_wins", classify_case(priority="Urgent", type="Bug", labels=["outage"]), "P1"),
    ("nothing_holds_but_the_last", classify_case(), "P5"),
]


@pytest.mark.parametrize(("issue", "level"), [c[1:] for c in CLASSIFICATION], ids=[c[0] for c in CLASSIFICATION])
def test_classify_takes_the_first_rule_that_holds(issue: dict[str, object], level: str) -> None:
    assert classify(issue_from_json(issue), CLASSIFY_POLICY) == level


# -- sla-sync check ---------------------------------------------------------------------


def test_check_accepts_the_ready_policy_files() -> None:
    result = run_cli("check", *map(str, READY))
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line.split(": ok")[0] for line in result.stdout.splitlines()] == [str(p) for p in READY]


@pytest.mark.parametrize(("text", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_check_reports_the_problem_and_exits_2(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    result = run_cli("check", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    found = [m for m in map(PROBLEM.match, result.stdout.splitlines()) if m and message in m["message"]]
    assert [(m["path"], int(m["line"])) for m in found] == [(str(path), marked_line(text))], result.stdout


def test_check_reports_every_problem_of_a_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    text = BASE.replace("    timezone: Europe/Madrid", "    timezone: Mars/Olympus")  # line 4
    text = text.replace("  - level: P2\n", "  - level: P9\n")  # line 18
    text += "colour: blue\n"  # line 25
    path.write_text(text, encoding="utf-8")
    result = run_cli("check", str(path))
    assert result.returncode == 2
    assert [int(m["line"]) for m in map(PROBLEM.match, result.stdout.splitlines()) if m] == [4, 18, 25]
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing", None, "no such file"),
        ("empty.yaml", "", "empty"),
        ("a-directory", "<dir>", "directory"),
    ],
    ids=["missing_file", "empty_file", "directory"],
)
def test_check_unreadable_input_exits_2(tmp_path: Path, name: str, content: str | None, message: str) -> None:
    path = tmp_path / name
    if content == "<dir>":
        path.mkdir()
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    result = run_cli("check", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    m = PROBLEM.match(result.stdout.splitlines()[0])
    assert m and (m["path"], m["line"], m["col"]) == (str(path), "1", "1") and message in m["message"]


ALIAS_BOMB = """\
a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def limit_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))  # 1 GiB: the bomb would want far more


def test_check_refuses_an_alias_bomb_at_once_and_in_little_memory(tmp_path: Path) -> None:
    # 9 ** 9 (387 million) strings from a file of a few hundred bytes
    path = tmp_path / "bomb.yaml"
    path.write_text(BASE + ALIAS_BOMB, encoding="utf-8")
    assert len(ALIAS_BOMB) < 500
    result = subprocess.run([sys.executable, "-m", "sla_sync.cli", "check", str(path)], capture_output=True,
                            text=True, timeout=60, preexec_fn=limit_memory)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stdout + result.stderr
    [problem] = [m for m in map(PROBLEM.match, result.stdout.splitlines()) if m]
    first = BASE.count("\n") + 1
    assert problem["path"] == str(path) and first < int(problem["line"]) < first + 9
    assert "aliases" in problem["message"] and "10000" in problem["message"]


def test_aliases_within_the_limits_are_read_as_written() -> None:
    text = variant(
        '    hours:\n      mon: ["09:00-13:00", "14:00-18:00"]\n      fri: ["09:00-15:00"]\n',
        '    hours: &week\n      mon: &day ["09:00-13:00", "14:00-18:00"]\n'
        '      tue: *day\n      fri: ["09:00-15:00"]\n',
    ).replace("    hours: 24x7\n", "    hours: *week\n")
    policy = parse_policy(text, "aliases.yaml")
    assert policy.spec.calendars["always"].hours == policy.spec.calendars["office"].hours
    assert policy.spec.calendars["office"].hours["tue"] == ("09:00-13:00", "14:00-18:00")  # type: ignore[index]


def test_the_longest_target_is_accepted(tmp_path: Path) -> None:
    text = variant(
        "  P2: {calendar: office, first_response: 2h, resolution: 40h}",
        "  P2: {calendar: office, first_response: 6000000m, resolution: 100000h}",
    )
    assert parse_policy(text).levels["P2"].targets == {"first_response": 360_000_000, "resolution": 360_000_000}


def test_check_goes_on_after_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE + "colour: blue\n", encoding="utf-8")
    good = tmp_path / "good.yaml"
    good.write_text(BASE, encoding="utf-8")
    result = run_cli("check", str(bad), str(good))
    assert result.returncode == 2
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{bad}:25:1: ")
    assert lines[1].startswith(f"{good}: ok")
    assert "1 of 2" in result.stderr
