"""Policy revisions: dated changes of the levels; an issue is held to the revision in
force when it was created.  Problems are reported at FILE:LINE:COL like any other.

The calendars are 24x7 (UTC) unless a case says otherwise, so elapsed time is wall time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from sla_sync.neutral import issue_from_json
from sla_sync.policy import PolicyError, parse_policy
from sla_sync.schema import json_schema
from sla_sync.timers import evaluate
from sla_sync.values import parse_instant
from tests.support import iso, issue_json, run_cli, ts

HEAD = """\
name: revisions-test
calendars:
  always: {timezone: UTC, hours: 24x7}
  office:
    timezone: UTC
    hours:
      mon: ["09:00-17:00"]
      tue: ["09:00-17:00"]
      wed: ["09:00-17:00"]
      thu: ["09:00-17:00"]
      fri: ["09:00-17:00"]
levels:
  P1: {calendar: always, first_response: 1h, workaround: 4h, resolution: 8h}
  P2: {calendar: always, first_response: 4h, resolution: 40h}
classify:
  - if: {priority: Urgent}
    level: P1
  - level: P2
"""

REVISED = HEAD + """\
revisions:
  - effective_from: 2027-01-01              # 00:00 UTC
    levels:
      P1: {first_response: 30m}             # only this target changes
  - effective_from: 2027-03-01T09:00:00+01:00   # 08:00 UTC
    levels:
      P1: {workaround: null}                # the workaround target is dropped
      P2: {calendar: office, resolution: 16h}
"""

POLICY = parse_policy(REVISED, "revised.yaml")


def targets(created: str, priority: str = "Urgent") -> dict[str, int]:
    item = issue_from_json(issue_json(created, priority=priority))
    sla = evaluate(item, POLICY, item.created_at)
    return {name: m.target_s for name, m in sla.metrics.items()}


CASES = [
    # (id, created_at, priority, targets in force)
    ("before_the_first_revision", "2026-12-31T23:59:59Z", "Urgent",
     {"first_response": 3600, "workaround": 14400, "resolution": 28800}),
    ("exactly_at_a_date_is_midnight_utc", "2027-01-01T00:00:00Z", "Urgent",
     {"first_response": 1800, "workaround": 14400, "resolution": 28800}),
    ("an_hour_before_midnight_utc_is_still_before", "2027-01-01T00:30:00+01:00", "Urgent",
     {"first_response": 3600, "workaround": 14400, "resolution": 28800}),
    # revision 2 builds on revision 1: first response stays 30m, workaround goes
    ("second_revision_on_top_of_the_first", "2027-03-01T08:00:00Z", "Urgent",
     {"first_response": 1800, "resolution": 28800}),
    ("a_second_before_the_instant", "2027-03-01T07:59:59Z", "Urgent",
     {"first_response": 1800, "workaround": 14400, "resolution": 28800}),
    ("unchanged_level_keeps_its_targets", "2027-02-01T00:00:00Z", "Low",
     {"first_response": 14400, "resolution": 144000}),
    ("changed_level", "2027-06-01T00:00:00Z", "Low", {"first_response": 14400, "resolution": 57600}),
]


@pytest.mark.parametrize(("created", "priority", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_an_issue_is_held_to_the_revision_in_force_when_created(created: str, priority: str,
                                                                expected: dict[str, int]) -> None:
    assert targets(created, priority) == expected


def test_a_revision_can_change_the_calendar() -> None:
    # P2 from 2027-03-01 runs on office hours (09-17 weekdays).  2027-03-01 is a Monday:
    # created 16:00, explained Tuesday 10:00 → 16-17 + 09-10 = 2 h, not the 18 h of 24x7.
    item = issue_from_json(issue_json("2027-03-01T16:00:00Z", priority="Low"))
    sla = evaluate(item, POLICY, ts("2027-03-02T10:00:00Z"))
    assert sla.metrics["first_response"].elapsed_s == 2 * 3600
    # the same issue created a week earlier, before the revision, is on 24x7
    earlier = issue_from_json(issue_json("2027-02-22T16:00:00Z", priority="Low"))
    assert evaluate(earlier, POLICY, ts("2027-02-23T10:00:00Z")).metrics["first_response"].elapsed_s == 18 * 3600


def test_the_level_is_still_chosen_by_the_current_values() -> None:
    item = issue_from_json(issue_json("2027-06-01T00:00:00Z", priority="Urgent"))
    assert evaluate(item, POLICY, item.created_at).level == "P1"


def test_policy_knows_the_revision_in_force() -> None:
    assert POLICY.revision_at(ts("2026-12-31T23:59:59Z")) is None
    first = POLICY.revision_at(ts("2027-01-01T00:00:00Z"))
    second = POLICY.revision_at(ts("2030-01-01T00:00:00Z"))
    assert first is not None and second is not None
    assert (first.number, iso(first.effective_from)) == (1, "2027-01-01T00:00:00Z")
    assert (second.number, iso(second.effective_from)) == (2, "2027-03-01T08:00:00Z")
    assert second.levels["P2"].calendar_name == "office"


def test_a_policy_without_revisions_uses_its_levels() -> None:
    plain = parse_policy(HEAD, "plain.yaml")
    assert plain.revisions == ()
    assert plain.level_at("P1", ts("2030-01-01T00:00:00Z")) is plain.levels["P1"]


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2027-01-01", "2027-01-01T00:00:00Z"),
        ("2027-01-01T00:00:00+01:00", "2026-12-31T23:00:00Z"),
        ("2027-01-01T12:00:00Z", "2027-01-01T12:00:00Z"),
    ],
)
def test_effective_from_is_a_date_at_midnight_utc_or_an_instant(text: str, instant: str) -> None:
    assert parse_instant(text) == ts(instant)


def test_the_schema_documents_revisions() -> None:
    schema = json_schema()
    assert "revisions" in schema["properties"]
    assert "revisions" not in schema.get("required", [])


# -- problems at their line ------------------------------------------------------------------------

BAD = [
    # (id, the revisions block with the offending line marked #!, a piece of the message)
    ("not_in_order", """\
revisions:
  - effective_from: 2027-03-01
    levels: {P1: {first_response: 30m}}
  - effective_from: 2027-01-01   #!
    levels: {P1: {first_response: 20m}}
""", "revision 2 takes effect at 2027-01-01, not after revision 1 (2027-03-01)"),
    ("same_instant_twice", """\
revisions:
  - effective_from: 2027-01-01
    levels: {P1: {first_response: 30m}}
  - effective_from: 2027-01-01T00:00:00Z   #!
    levels: {P1: {first_response: 20m}}
""", "not after revision 1"),
    ("unknown_level", """\
revisions:
  - effective_from: 2027-01-01
    levels:
      P9: {first_response: 30m}   #!
""", "revision 1 changes level 'P9', which is not defined (levels: P1, P2)"),
    ("unknown_calendar", """\
revisions:
  - effective_from: 2027-01-01
    levels:
      P1: {calendar: night}   #!
""", "revision 1 gives level 'P1' calendar 'night', which is not defined (calendars: always, office)"),
    ("not_a_date", """\
revisions:
  - effective_from: next year   #!
    levels: {P1: {first_response: 30m}}
""", "'next year' is not a date or an instant"),
    ("instant_without_timezone", """\
revisions:
  - effective_from: 2027-01-01T00:00:00   #!
    levels: {P1: {first_response: 30m}}
""", "has no timezone"),
    ("bad_duration", """\
revisions:
  - effective_from: 2027-01-01
    levels: {P1: {first_response: 30 minutes}}   #!
""", "is not a duration"),
    ("unknown_key_in_a_level", """\
revisions:
  - effective_from: 2027-01-01
    levels: {P1: {frist_response: 30m}}   #!
""", "unknown key 'frist_response'"),
    ("no_target_left", """\
revisions:
  - effective_from: 2027-01-01
    levels:
      P2: {first_response: null, resolution: null}   #!
""", "revision 1 leaves level 'P2' with no target"),
    ("no_level_changed", """\
revisions:
  - effective_from: 2027-01-01
    levels: {}   #!
""", "revision 1 changes no level"),
    ("missing_effective_from", """\
revisions:
  - levels: {P1: {first_response: 30m}}   #!
""", "missing key 'effective_from'"),
]


@pytest.mark.parametrize(("block", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_revision_problem_is_reported_at_its_line(block: str, message: str) -> None:
    text = HEAD + block
    line = next(i for i, row in enumerate(text.splitlines(), start=1) if "#!" in row)
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "bad.yaml")
    found = [p for p in caught.value.problems if message in p.message]
    assert found, [str(p) for p in caught.value.problems]
    assert found[0].line == line, str(found[0])


def test_check_accepts_revisions_and_rejects_bad_ones_with_file_line_col(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(REVISED, encoding="utf-8")
    done = run_cli("check", str(good))
    assert done.returncode == 0, done.stdout + done.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(HEAD + BAD[0][1], encoding="utf-8")
    done = run_cli("check", str(bad))
    assert done.returncode == 2
    # HEAD has 18 lines; the second effective_from is the 4th line of the block
    assert re.search(rf"^{re.escape(str(bad))}:22:\d+: revisions\[1\]\.effective_from: ", done.stdout,
                     re.MULTILINE), done.stdout


def test_an_escalation_on_a_metric_only_a_revision_sets_is_valid() -> None:
    text = HEAD.replace("  P1: {calendar: always, first_response: 1h, workaround: 4h, resolution: 8h}\n",
                        "  P1: {calendar: always, first_response: 1h, resolution: 8h}\n") + """\
revisions:
  - effective_from: 2027-01-01
    levels: {P1: {workaround: 2h}}
escalate:
  - when: workaround breached
    assign: manager
"""
    policy = parse_policy(text, "ok.yaml")
    item: Any = issue_from_json(issue_json("2027-01-02T00:00:00Z", priority="Urgent"))
    assert evaluate(item, policy, item.created_at).metrics["workaround"].target_s == 7200
