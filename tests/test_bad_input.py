"""Bad input at scale: generated policy files, issue lines and tracker payloads.

Whatever comes in, sla-sync answers with a clear error (a ``UserError`` or a
``ValueError`` naming the key) or skips the item and counts it: never a crash.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sla_sync.adapters.base import assemble
from sla_sync.adapters.gitlab import Mapper
from sla_sync.adapters.redmine import RedmineTracker

from sla_sync.neutral import issue_from_json
from sla_sync.policy import PolicyError, parse_policy
from sla_sync.schema import RedmineSpec
from sla_sync.timers import evaluate
from sla_sync.tracker import AdapterOptions

ROOT = Path(__file__).resolve().parent.parent
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALID = yaml.safe_load((ROOT / "policies" / "redmine-support.yaml").read_text())
POLICY = parse_policy((ROOT / "policies" / "redmine-support.yaml").read_text())
ISSUE = {
    "key": "SUP-1", "title": "Down", "created_at": "2026-11-02T10:00:00Z", "status": "In Progress",
    "priority": "Urgent", "type": "Bug", "labels": ["outage"], "assignee": "alice", "fields": {"CSAT": 4},
    "events": [
        {"at": "2026-11-02T10:20:00Z", "kind": "comment", "public": True, "by_agent": True},
        {"at": "2026-11-02T10:30:00Z", "kind": "status", "from": "New", "to": "In Progress"},
        {"at": "2026-11-02T12:00:00Z", "kind": "label", "added": ["workaround"], "removed": []},
    ],
}

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=False), st.text(max_size=12),
    st.sampled_from(["", "24x7", "30m", "0m", "25:00-26:00", "2026-02-30", "Mars/Olympus", "-1h", "101%",
                     "1970-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59+14:00", "P1"]),
)
values = st.recursive(scalars, lambda inner: (st.lists(inner, max_size=3)
                                              | st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=8)


def mutate(doc: Any, draw: st.DrawFn, depth: int = 0) -> Any:
    """The document with one part replaced, dropped or added."""
    if isinstance(doc, dict) and doc and depth < 4:
        key = draw(st.sampled_from(sorted(doc, key=str)))
        choice = draw(st.integers(0, 3))
        out = dict(doc)
        if choice == 0:
            del out[key]
        elif choice == 1:
            out[key] = draw(values)
        elif choice == 2:
            out[draw(st.text(min_size=1, max_size=8))] = draw(values)
        else:
            out[key] = mutate(doc[key], draw, depth + 1)
        return out
    if isinstance(doc, list) and doc and depth < 4:
        i = draw(st.integers(0, len(doc) - 1))
        out_list = list(doc)
        out_list[i] = mutate(doc[i], draw, depth + 1) if draw(st.booleans()) else draw(values)
        return out_list
    return draw(values)


@st.composite
def mutated(draw: st.DrawFn, doc: Any) -> Any:
    for _ in range(draw(st.integers(1, 3))):
        doc = mutate(doc, draw)
    return doc


@PROPS
@given(mutated(VALID))
def test_generated_policy_files_validate_or_say_where_they_are_wrong(doc: Any) -> None:
    text = yaml.safe_dump(doc, allow_unicode=True)
    lines = len(text.splitlines()) + 1  # as YAML counts them: NEL and U+2028 break lines too
    try:
        parse_policy(text, "gen.yaml")
    except PolicyError as exc:
        assert exc.problems
        for p in exc.problems:
            assert p.path == "gen.yaml" and 1 <= p.line <= lines and p.message


@PROPS
@given(st.text(max_size=200))
def test_any_text_as_a_policy_is_valid_or_a_policy_error(text: str) -> None:
    try:
        parse_policy(text, "any.yaml")
    except PolicyError as exc:
        assert all(p.line >= 1 for p in exc.problems)


# -- hostile policy files: alias bombs, deep nesting, extreme durations --------------------

VALID_TEXT = yaml.safe_dump(VALID, allow_unicode=True, sort_keys=False)
MAX_ALIAS_NODES, MAX_DEPTH, MAX_HOURS = 10_000, 100, 100_000  # the README's limits


def problems_of(text: str) -> list[Any] | None:
    """The problems of a policy text (``None`` when it is valid); anything else
    than a ``PolicyError`` fails the test."""
    try:
        parse_policy(text, "hostile.yaml")
    except PolicyError as exc:
        lines = len(text.splitlines()) + 1
        assert exc.problems and all(p.path == "hostile.yaml" and 1 <= p.line <= lines and p.message
                                    for p in exc.problems)
        return exc.problems
    return None


@st.composite
def alias_bombs(draw: st.DrawFn) -> tuple[str, int]:
    """Lines of anchors, each a list of aliases of the one before (the first a list
    of words), ahead of a valid policy: the text, and how many values the aliases
    repeat (each list counts as one value, and so does each word in it)."""
    width, depth = draw(st.integers(1, 12)), draw(st.integers(1, 10))
    lines = [f"x0: &x0 [{', '.join(['lol'] * width)}]"]
    lines += [f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * width)}]" for i in range(1, depth)]
    size = [1 + width]  # values in x0, x1, ...
    for _ in range(1, depth):
        size.append(1 + width * size[-1])
    repeated = sum(width * size[i - 1] for i in range(1, depth))
    body = VALID_TEXT
    if draw(st.booleans()):  # the last one also used where the schema expects names
        body = body.replace("  workaround_statuses: []\n", f"  workaround_statuses: *x{depth - 1}\n", 1)
        repeated += size[-1]
    return "\n".join(lines) + "\n" + body, repeated


@PROPS
@given(alias_bombs())
def test_alias_bombs_are_refused_at_an_alias_line(bomb: tuple[str, int]) -> None:
    text, repeated = bomb
    found = problems_of(text)
    assert found is not None  # the x0... keys are unknown: never a valid policy
    about_aliases = [p for p in found if "aliases repeat more than" in p.message]
    if repeated > 2 * MAX_ALIAS_NODES:
        assert about_aliases
        alias_lines = {i for i, row in enumerate(text.splitlines(), start=1) if "*x" in row}
        assert {p.line for p in about_aliases} <= alias_lines
    elif repeated < MAX_ALIAS_NODES // 2:
        assert not about_aliases


def nested(style: str, depth: int, indent: str) -> str:
    """A value nested ``depth`` levels deep, after a key and its colon."""
    if style == "flow_list":
        return " " + "[" * depth + "x" + "]" * depth
    if style == "flow_map":
        return " " + "{k: " * depth + "x" + "}" * depth
    return f"\n{indent}  " + "- " * depth + "x"  # block lists, on one line


@PROPS
@given(st.sampled_from(["flow_list", "flow_map", "block_list"]), st.integers(1, 3000), st.booleans())
def test_deep_nesting_is_a_problem_at_its_line_never_a_recursion_error(style: str, depth: int, in_clock: bool) -> None:
    if in_clock:  # where the schema expects a list of names, two levels down
        text = VALID_TEXT.replace("  pause_statuses:\n  - Feedback\n",
                                  "  pause_statuses:" + nested(style, depth, "  ") + "\n", 1)
        levels = depth + 2
    else:
        text = VALID_TEXT + "colour:" + nested(style, depth, "") + "\n"
        levels = depth + 1
    found = problems_of(text)
    if in_clock and depth == 1 and style != "flow_map":
        assert found is None  # a plain list of names
        return
    assert found is not None  # an unknown key, or lists where names are expected
    too_deep = [p for p in found if f"nested more than {MAX_DEPTH} levels" in p.message]
    if levels > MAX_DEPTH + 2:
        assert too_deep and all(p.line >= len(VALID_TEXT.splitlines()) - 60 for p in too_deep)
    elif levels < MAX_DEPTH - 2:
        assert not too_deep


digits = st.one_of(st.integers(0, 10**6).map(str), st.integers(0, 10**30).map(str),
                   st.integers(1, 6000).map(lambda n: "9" * n), st.integers(0, 10**6).map(lambda n: f"000{n}"))


@st.composite
def durations(draw: st.DrawFn) -> tuple[str, int | None]:
    """A duration as written and its seconds (``None`` when it is not within
    the limits)."""
    units = draw(st.lists(st.sampled_from(["h", "m", "s"]), min_size=1, max_size=3, unique=True))
    units.sort(key="hms".index)
    parts = [(draw(digits), unit) for unit in units]
    seconds = sum(int(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts if len(n) < 40)
    too_long = any(len(n) >= 40 for n, _ in parts)
    ok = not too_long and 0 < seconds <= MAX_HOURS * 3600
    return "".join(n + u for n, u in parts), seconds if ok else None


@settings(PROPS, max_examples=60)  # each example builds calendars afresh, with years of days
@given(durations(), st.sampled_from(["P1", "P3"]), st.sampled_from(["first_response", "resolution"]))
def test_extreme_durations_are_refused_at_their_line_or_evaluate_without_error(
    duration: tuple[str, int | None], level: str, metric: str
) -> None:
    text, seconds = duration
    doc = copy.deepcopy(VALID)
    doc["levels"][level][metric] = text
    policy_text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    found = problems_of(policy_text)
    if seconds is None:
        assert found is not None
        rows = policy_text.splitlines()
        level_row = rows.index(f"  {level}:")
        line = next(i for i, row in enumerate(rows[level_row:], start=level_row + 1)
                    if row.strip() in (f"{metric}: {text}", f"{metric}: '{text}'"))
        assert any(p.line == line for p in found), found
        return
    assert found is None
    policy = parse_policy(policy_text)
    assert policy.levels[level].targets[metric] == seconds
    issue = issue_from_json({**ISSUE, "priority": "Urgent" if level == "P1" else "Normal", "labels": []})
    for now in (1_793_700_000, 2_208_988_800):  # shortly after creation, and 2040: over 11 years later
        sla = evaluate(issue, policy, now)
        m = sla.metrics[metric]
        assert m.due_at is None or m.due_at >= issue.created_at


@PROPS
@given(mutated(ISSUE))
def test_generated_issue_lines_are_read_or_rejected_with_a_reason(doc: Any) -> None:
    try:
        issue = issue_from_json(doc)
    except ValueError as exc:
        assert str(exc)
        return
    sla = evaluate(issue, POLICY, 1_793_700_000)  # a readable issue always evaluates
    assert sla.level in POLICY.levels


def test_evaluate_skips_garbage_lines_with_a_count(tmp_path: Path) -> None:
    lines = [json.dumps(ISSUE), "{not json", json.dumps({**ISSUE, "created_at": "0001-01-01T00:00:00Z"}),
             json.dumps([1, 2]), json.dumps({**ISSUE, "events": [{"kind": "status", "at": 5}]}), json.dumps(ISSUE)]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n")
    done = subprocess.run([sys.executable, "-m", "sla_sync.cli", "evaluate", "--policy",
                           str(ROOT / "policies" / "redmine-support.yaml"), "--input", str(path), "--skip-invalid",
                           "--now", "2026-11-03T00:00:00Z"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "skipped 4 invalid lines" in done.stderr
    assert len(done.stdout.splitlines()) == 2
    for number in (2, 3, 4, 5):
        assert f"{path}:{number}:" in done.stderr


REDMINE_ROW = json.loads((Path("/work/shared/tracker-payloads/redmine/issues_list_page.json")
                          if Path("/work/shared/tracker-payloads/redmine/issues_list_page.json").exists()
                          else ROOT / "tests" / "fakes" / "redmine_issues_list_page.json").read_text())["issues"][0]
GITLAB_ROW = {
    "iid": 6, "title": "Checkout down", "state": "opened", "created_at": "2026-11-02T10:00:00.000Z",
    "updated_at": "2026-11-02T11:00:00.000Z", "labels": ["status::waiting", "priority::1"],
    "assignees": [{"username": "alice"}], "author": {"username": "erin"}, "milestone": None,
    "due_date": None, "issue_type": "incident",
}


def redmine_mapping() -> RedmineTracker:
    spec = RedmineSpec(kind="redmine", url="http://127.0.0.1:9", project="support", api_key_env="X")
    return RedmineTracker(spec, "key", AdapterOptions())


@PROPS
@given(st.lists(mutated(REDMINE_ROW), min_size=1, max_size=4))
def test_odd_redmine_rows_are_skipped_and_counted(rows: list[Any]) -> None:
    tracker = redmine_mapping()
    fetched = assemble(rows, None, {}, identify=lambda r: (str(r["id"]), str(r["updated_on"]),
                                                            int(__import__("datetime").datetime.fromisoformat(r["updated_on"]).timestamp())),
                       history=lambda _r: (), track=tracker._tracked, where="Redmine test")
    assert len(fetched.issues) + len(fetched.problems) >= 1
    assert all("skipped" in p for p in fetched.problems)


@PROPS
@given(st.lists(mutated(GITLAB_ROW), min_size=1, max_size=4))
def test_odd_gitlab_rows_are_skipped_and_counted(rows: list[Any]) -> None:
    from sla_sync.adapters.gitlab import instant

    mapper = Mapper("status::", "priority::", "platform/incidents")
    fetched = assemble(rows, None, {},
                       identify=lambda r: (str(r["iid"]), str(r["updated_at"]), instant(r["updated_at"])),
                       history=lambda _r: (), track=mapper.tracked, where="GitLab test")
    assert len(fetched.issues) + len(fetched.problems) >= 1
    assert all("skipped" in p for p in fetched.problems)
