"""``sla-sync evaluate`` and ``sla-sync schema`` end to end, in a child process.

The policy's office calendar is UTC, Monday to Friday 09:00-13:00 and 14:00-18:00;
2026-11-02 is a Monday and every run evaluates at ``--now 2026-11-02T15:00:00Z``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import comment, issue_json, run_cli, status
from tests.support import expected_metric as metric

POLICY = """\
name: cli-test
calendars:
  office:
    timezone: UTC
    hours:
      mon: ["09:00-13:00", "14:00-18:00"]
      tue: ["09:00-13:00", "14:00-18:00"]
      wed: ["09:00-13:00", "14:00-18:00"]
      thu: ["09:00-13:00", "14:00-18:00"]
      fri: ["09:00-13:00", "14:00-18:00"]
levels:
  P2: {calendar: office, first_response: 2h, workaround: 8h, resolution: 40h}
  P3: {calendar: office, first_response: 8h, resolution: 80h}
classify:
  - if: {priority: High}
    level: P2
  - level: P3
clock:
  pause_statuses: [Feedback]
  resolved_statuses: [Resolved, Closed]
  workaround_labels: [workaround]
warn_at: 75%
"""

NOW = "2026-11-02T15:00:00Z"

ISSUES = [
    # P2, answered publicly by an agent at 10:30
    issue_json(
        "2026-11-02T09:00:00Z", "In Progress", key="SUP-1", priority="High", events=[comment("2026-11-02T10:30:00Z")]
    ),
    # P3, waiting on the customer since 10:00
    issue_json(
        "2026-11-02T09:00:00Z", "Feedback", key="SUP-2", events=[status("2026-11-02T10:00:00Z", "New", "Feedback")]
    ),
    # P2, no answer at all
    issue_json("2026-11-02T09:00:00Z", "New", key="SUP-3", priority="High"),
]




EXPECTED = [
    {
        "key": "SUP-1",
        "level": "P2",
        "metrics": {
            # 09:00-10:30 = 5400 s of 7200
            "first_response": metric("met", 7200, 5400, stopped="2026-11-02T10:30:00Z"),
            # 09-13 + 14-15 = 5 h of 8 h; 3 h left from 15:00: 18:00
            "workaround": metric("running", 28800, 18000, due="2026-11-02T18:00:00Z"),
            # 5 h of 40 h; 35 h left: Mon 15-18 (3 h), Tue-Fri 32 h, ending Fri 18:00
            "resolution": metric("running", 144000, 18000, due="2026-11-06T18:00:00Z"),
        },
    },
    {
        "key": "SUP-2",
        "level": "P3",
        "metrics": {
            # 09:00-10:00 then paused
            "first_response": metric("paused", 28800, 3600),
            "resolution": metric("paused", 288000, 3600),
        },
    },
    {
        "key": "SUP-3",
        "level": "P2",
        "metrics": {
            # 5 h > 2 h, reached at 11:00
            "first_response": metric(
                "breached", 7200, 18000, due="2026-11-02T11:00:00Z", breached="2026-11-02T11:00:00Z"
            ),
            "workaround": metric("running", 28800, 18000, due="2026-11-02T18:00:00Z"),
            "resolution": metric("running", 144000, 18000, due="2026-11-06T18:00:00Z"),
        },
    },
]

METRIC_KEYS = ["state", "at_risk", "target_s", "elapsed_s", "remaining_s", "due_at", "breached_at", "stopped_at"]
INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def jsonl(records: list[Any]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "policy.yaml").write_text(POLICY, encoding="utf-8")
    (tmp_path / "issues.jsonl").write_text(jsonl(ISSUES), encoding="utf-8")
    return tmp_path


def evaluate(workdir: Path, *args: str, stdin: str | None = None) -> Any:
    return run_cli(
        "evaluate",
        "--policy",
        str(workdir / "policy.yaml"),
        "--now",
        NOW,
        *args,
        stdin=stdin.encode() if stdin is not None else None,
    )


def records(text: str) -> list[Any]:
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def no_traceback(result: Any) -> None:
    assert "Traceback" not in result.stdout + result.stderr


# -- output --------------------------------------------------------------------------


def test_evaluate_writes_the_clocks_of_each_issue(workdir: Path) -> None:
    result = evaluate(workdir, "--input", str(workdir / "issues.jsonl"))
    assert result.returncode == 0, result.stderr
    assert records(result.stdout) == EXPECTED


def test_evaluate_output_has_exactly_the_specified_shape(workdir: Path) -> None:
    result = evaluate(workdir, "--input", str(workdir / "issues.jsonl"))
    assert result.returncode == 0, result.stderr
    for record in records(result.stdout):
        assert list(record) == ["key", "level", "metrics"]
        assert isinstance(record["key"], str) and isinstance(record["level"], str)
        for m in record["metrics"].values():
            assert list(m) == METRIC_KEYS
            assert m["state"] in {"running", "paused", "met", "breached"}
            assert type(m["at_risk"]) is bool
            for key in ("target_s", "elapsed_s", "remaining_s"):
                assert type(m[key]) is int
            for key in ("due_at", "breached_at", "stopped_at"):
                assert m[key] is None or INSTANT.match(m[key]), m[key]


def test_evaluate_reads_standard_input(workdir: Path) -> None:
    result = evaluate(workdir, stdin=jsonl(ISSUES))
    assert result.returncode == 0, result.stderr
    assert records(result.stdout) == EXPECTED


def test_evaluate_reads_dash_as_standard_input(workdir: Path) -> None:
    result = evaluate(workdir, "--input", "-", stdin=jsonl(ISSUES))
    assert result.returncode == 0, result.stderr
    assert records(result.stdout) == EXPECTED


def test_evaluate_skips_blank_lines(workdir: Path) -> None:
    text = "\n" + json.dumps(ISSUES[0]) + "\n\n   \n" + json.dumps(ISSUES[2]) + "\n"
    result = evaluate(workdir, stdin=text)
    assert result.returncode == 0, result.stderr
    assert records(result.stdout) == [EXPECTED[0], EXPECTED[2]]


def test_evaluate_writes_to_an_output_file(workdir: Path) -> None:
    out = workdir / "out.jsonl"
    result = evaluate(workdir, "--input", str(workdir / "issues.jsonl"), "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert records(out.read_text(encoding="utf-8")) == EXPECTED
    assert sorted(p.name for p in workdir.iterdir()) == ["issues.jsonl", "out.jsonl", "policy.yaml"]


def test_evaluate_replaces_an_existing_output_file_on_success(workdir: Path) -> None:
    out = workdir / "out.jsonl"
    out.write_text("previous run\n", encoding="utf-8")
    result = evaluate(workdir, "--input", str(workdir / "issues.jsonl"), "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert records(out.read_text(encoding="utf-8")) == EXPECTED


def test_evaluate_at_an_earlier_now_uses_that_instant(workdir: Path) -> None:
    # At 10:00 nobody has answered SUP-1 yet: 1 h of 2 h used, due 11:00
    result = run_cli(
        "evaluate",
        "--policy",
        str(workdir / "policy.yaml"),
        "--now",
        "2026-11-02T10:00:00Z",
        stdin=(json.dumps(ISSUES[0]) + "\n").encode(),
    )
    assert result.returncode == 0, result.stderr
    [record] = records(result.stdout)
    assert record["metrics"]["first_response"] == metric("running", 7200, 3600, due="2026-11-02T11:00:00Z")


# -- bad input lines -------------------------------------------------------------------

BAD_LINES = [
    # (id, lines of the input, the bad line's number, a piece of the message)
    ("malformed_json", [json.dumps(ISSUES[0]), '{"key": "SUP-9", "created_at": ', json.dumps(ISSUES[2])], 2, "JSON"),
    (
        "timestamp_without_timezone",
        [json.dumps(issue_json("2026-11-02T09:00:00", key="SUP-9")), json.dumps(ISSUES[2])],
        1,
        "created_at",
    ),
    (
        "event_timestamp_without_timezone",
        [
            json.dumps(ISSUES[0]),
            json.dumps(issue_json("2026-11-02T09:00:00Z", key="SUP-9", events=[comment("2026-11-02T10:00:00")])),
        ],
        2,
        "events[0].at",
    ),
    ("not_a_timestamp", [json.dumps(issue_json("yesterday", key="SUP-9"))], 1, "created_at"),
    (
        "missing_status",
        [json.dumps(ISSUES[0]), json.dumps({"key": "SUP-9", "created_at": "2026-11-02T09:00:00Z"})],
        2,
        "status",
    ),
    ("not_an_object", [json.dumps(ISSUES[0]), "[1, 2, 3]"], 2, "object"),
    # "false" is a string, and a non-empty string would count as true
    (
        "string_where_public_wants_a_boolean",
        [json.dumps(ISSUES[0]), json.dumps(issue_json(
            "2026-11-02T09:00:00Z", key="SUP-9", events=[{**comment("2026-11-02T10:00:00Z"), "public": "false"}]))],
        2,
        "events[0].public",
    ),
    (
        "number_where_by_agent_wants_a_boolean",
        [json.dumps(issue_json(
            "2026-11-02T09:00:00Z", key="SUP-9", events=[{**comment("2026-11-02T10:00:00Z"), "by_agent": 0}]))],
        1,
        "events[0].by_agent",
    ),
]


@pytest.mark.parametrize(("lines", "number", "message"), [b[1:] for b in BAD_LINES], ids=[b[0] for b in BAD_LINES])
def test_bad_line_stops_with_file_and_line(workdir: Path, lines: list[str], number: int, message: str) -> None:
    source = workdir / "bad.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = evaluate(workdir, "--input", str(source))
    assert result.returncode == 2
    no_traceback(result)
    assert [line for line in result.stderr.splitlines() if f"{source}:{number}: " in line and message in line]


@pytest.mark.parametrize(("lines", "number", "message"), [b[1:] for b in BAD_LINES], ids=[b[0] for b in BAD_LINES])
def test_bad_line_leaves_no_output_file_behind(workdir: Path, lines: list[str], number: int, message: str) -> None:
    source = workdir / "bad.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = evaluate(workdir, "--input", str(source), "--output", str(workdir / "out.jsonl"))
    assert result.returncode == 2
    no_traceback(result)
    # neither the output nor a temporary file beside it
    assert sorted(p.name for p in workdir.iterdir()) == ["bad.jsonl", "issues.jsonl", "policy.yaml"]


def test_bad_line_keeps_a_previous_output_file(workdir: Path) -> None:
    source = workdir / "bad.jsonl"
    source.write_text(json.dumps(ISSUES[0]) + "\n{oops\n", encoding="utf-8")
    out = workdir / "out.jsonl"
    out.write_text("previous run\n", encoding="utf-8")
    result = evaluate(workdir, "--input", str(source), "--output", str(out))
    assert result.returncode == 2
    assert out.read_text(encoding="utf-8") == "previous run\n"
    assert sorted(p.name for p in workdir.iterdir()) == ["bad.jsonl", "issues.jsonl", "out.jsonl", "policy.yaml"]


def test_bad_line_on_standard_input_names_stdin(workdir: Path) -> None:
    result = evaluate(workdir, stdin=json.dumps(ISSUES[0]) + "\n{oops\n")
    assert result.returncode == 2
    no_traceback(result)
    assert "<stdin>:2: " in result.stderr


def test_skip_invalid_skips_counts_and_exits_1(workdir: Path) -> None:
    source = workdir / "mixed.jsonl"
    source.write_text(
        "\n".join(
            [
                json.dumps(ISSUES[0]),
                "{oops",
                json.dumps(ISSUES[2]),
                json.dumps(issue_json("2026-11-02T09:00:00", key="SUP-9")),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    result = evaluate(workdir, "--input", str(source), "--skip-invalid")
    assert result.returncode == 1
    no_traceback(result)
    assert records(result.stdout) == [EXPECTED[0], EXPECTED[2]]
    assert any(line.startswith(f"{source}:2: ") for line in result.stderr.splitlines())
    assert any(line.startswith(f"{source}:4: ") for line in result.stderr.splitlines())
    assert "skipped 2 invalid lines" in result.stderr


def test_skip_invalid_still_writes_the_output_file(workdir: Path) -> None:
    source = workdir / "mixed.jsonl"
    source.write_text(json.dumps(ISSUES[1]) + "\n{oops\n", encoding="utf-8")
    out = workdir / "out.jsonl"
    result = evaluate(workdir, "--input", str(source), "--skip-invalid", "--output", str(out))
    assert result.returncode == 1
    assert "skipped 1 invalid line" in result.stderr
    assert records(out.read_text(encoding="utf-8")) == [EXPECTED[1]]


# -- bad options and files ------------------------------------------------------------------


@pytest.mark.parametrize(
    "now",
    ["yesterday", "2026-11-02T10:00:00", "2026-13-02T10:00:00Z", ""],
    ids=["a_word", "no_timezone", "bad_month", "empty"],
)
def test_bad_now_exits_2_with_a_clear_message(workdir: Path, now: str) -> None:
    result = run_cli(
        "evaluate", "--policy", str(workdir / "policy.yaml"), "--now", now, "--input", str(workdir / "issues.jsonl")
    )
    assert result.returncode == 2
    no_traceback(result)
    assert "--now" in result.stderr
    assert result.stdout == ""


def test_missing_input_file_exits_2(workdir: Path) -> None:
    result = evaluate(workdir, "--input", str(workdir / "nope.jsonl"))
    assert result.returncode == 2
    no_traceback(result)
    assert "nope.jsonl" in result.stderr


def test_output_into_a_missing_directory_exits_2(workdir: Path) -> None:
    result = evaluate(workdir, "--input", str(workdir / "issues.jsonl"), "--output", str(workdir / "no" / "out.jsonl"))
    assert result.returncode == 2
    no_traceback(result)
    assert "out.jsonl" in result.stderr
    assert sorted(p.name for p in workdir.iterdir()) == ["issues.jsonl", "policy.yaml"]


def test_a_target_out_of_the_calendars_reach_is_a_running_clock_with_no_due_instant(workdir: Path) -> None:
    # one working minute a week (Monday 09:00-09:01) and a 100000 h target: two million
    # years away, far past the ten years the calendars look ahead
    week = "".join(f'      {day}: ["09:00-13:00", "14:00-18:00"]\n' for day in ("mon", "tue", "wed", "thu", "fri"))
    (workdir / "policy.yaml").write_text(
        POLICY.replace(week, '      mon: ["09:00-09:01"]\n').replace("resolution: 80h", "resolution: 100000h"),
        encoding="utf-8",
    )
    result = evaluate(workdir, stdin=jsonl([issue_json("2026-11-02T09:00:00Z", "New", key="SUP-4")]))
    assert result.returncode == 0, result.stderr
    no_traceback(result)
    [record] = records(result.stdout)
    assert record["metrics"]["resolution"] == metric("running", 100_000 * 3600, 60, due=None)


def test_bad_policy_stops_evaluate_with_file_line_col(workdir: Path) -> None:
    policy = workdir / "policy.yaml"
    policy.write_text(POLICY.replace("warn_at: 75%", "warn_at: 175%"), encoding="utf-8")
    result = evaluate(workdir, "--input", str(workdir / "issues.jsonl"))
    assert result.returncode == 2
    no_traceback(result)
    # warn_at is line 22 of POLICY
    assert re.search(rf"^{re.escape(str(policy))}:22:\d+: ", result.stderr, re.MULTILINE), result.stderr
    assert result.stdout == ""


# -- schema ---------------------------------------------------------------------------------


def test_schema_is_json_with_the_policy_keys() -> None:
    result = run_cli("schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    # DESIGN.md's top-level keys
    design_keys = {"name", "tracker", "calendars", "levels", "classify", "clock", "warn_at", "escalate"}
    assert design_keys <= set(schema["properties"])
    # tracker is optional: offline files have none
    assert {"name", "calendars", "levels", "classify"} <= set(schema.get("required", []))
    assert "tracker" not in schema.get("required", [])


def test_schema_knows_every_top_level_key_of_the_ready_policies() -> None:
    result = run_cli("schema")
    properties = set(json.loads(result.stdout)["properties"])
    for path in sorted((Path(__file__).resolve().parent.parent / "policies").glob("*.yaml")):
        keys = set(yaml.safe_load(path.read_text(encoding="utf-8")))
        assert keys <= properties, (path.name, keys - properties)
