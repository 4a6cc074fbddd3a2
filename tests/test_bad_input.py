"""Bad input at scale: generated policy files, issue lines and tracker payloads.

Whatever comes in, sla-sync answers with a clear error (a ``UserError`` or a
``ValueError`` naming the key) or skips the item and counts it: never a crash.
"""

from __future__ import annotations

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
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
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
    fetched = assemble(rows, None, {}, identify=lambda r: (str(r["iid"]), str(r["updated_at"]), instant(r["updated_at"])),
                       history=lambda _r: (), track=mapper.tracked, where="GitLab test")
    assert len(fetched.issues) + len(fetched.problems) >= 1
    assert all("skipped" in p for p in fetched.problems)
