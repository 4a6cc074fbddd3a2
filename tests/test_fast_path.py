"""The fast path of ``sla-sync evaluate`` changes nothing but the time it takes.

- The typed decode (``neutral.typed_issue``) and the checked one
  (``neutral.checked_issue``) agree on every line: random lines of every shape the
  format allows, odd JSON (duplicate keys, huge numbers, escapes) and mutated
  bytes; where the typed path takes a line, the checked path gives the same
  ``Issue`` (types and key order included), and ``read_issues`` gives what the
  checked path alone would, error messages included.
- Ordinary lines do take the typed path.
- The one-pass clocks (``Clocks``, ``evaluate``) agree with the span-by-span
  reference they replaced, and the running totals with the working time.
- ``SlaWriter`` writes the bytes ``dump_line(sla_to_json(...))`` writes.
- ``evaluate`` loads neither the state store, HTTP clients, rich nor Prometheus.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sla_sync import neutral
from sla_sync.calendar import Calendar, NoWorkingTimeError
from sla_sync.model import Event, Issue, IssueSla, SlaState, State
from sla_sync.neutral import (
    LineError,
    SlaWriter,
    checked_issue,
    dump_line,
    issue_to_json,
    parse_timestamp,
    read_issues,
    sla_to_json,
    typed_issue,
)
from sla_sync.policy import Policy
from sla_sync.timers import Clocks, evaluate
from tests.support import calendar, iso, weekdays
from tests.test_timers import POLICY

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from synthetic import generate  # noqa: E402

PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def shown(item: Issue | LineError) -> str:
    """An issue with the type of every value (1, 1.0 and true differ) and the order of
    every key; an error as its message."""
    return repr(item) if isinstance(item, Issue) else f"LineError({item})"


# -- lines: every shape the format allows, and some it does not ------------------------------------------------

INSTANT = st.integers(0, 7_258_118_399)
ODD_TIMES = st.sampled_from([
    "2026-11-02T10:00:00+01:00", "2026-11-02T10:00:00.999999Z", "2026-11-02 10:00Z", "2026-11-02",
    "2026-11-02T10:00:00", "1969-12-31T23:59:59.5Z", "2200-01-01T00:00:00Z", "2026-02-29T10:00:00Z",
    "2026-11-02T24:00:00Z", "2026-W45-1T10:00:00Z", "20261102T100000Z", "2026-11-02T10:00:00z", "",
])
TEXT = st.text(max_size=8)
NAME = st.text(min_size=1, max_size=8)
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), TEXT)
# JSON text no encoder writes: huge or infinite numbers, escapes, odd spacing, bad UTF-8, nesting
ODD = st.sampled_from([b"1e400", b"-1e400", b"1" + b"0" * 30, b"18446744073709551616", b"-9223372036854775809",
                       b"1.0", b"1E2", b"-0", b'"\\u00e9"', b'"\\ud83d\\ude00"', b'"\\ud800"', b'"a\\nb"',
                       b'"\xc3\xa9"', b'"\xff"', b" [ ] ", b"{ }", b"[[[[1]]]]", b'{"a":{"b":[]}}', b"null"])


def dumps(value: Any) -> bytes:
    """JSON text of any value (big integers too; infinity as ``Infinity``, not JSON)."""
    return json.dumps(value, ensure_ascii=False).encode()


def obj(pairs: Sequence[tuple[str, bytes]]) -> bytes:
    return b"{" + b",".join(orjson.dumps(k) + b":" + v for k, v in pairs) + b"}"


# What each key holds, usually (an ordinary line) and unusually (for the format, or for JSON).
OPT_TEXT = (st.one_of(TEXT, st.none()), SCALAR)
FLAG = (st.booleans(), st.one_of(st.none(), st.just("false"), st.integers(0, 1)))
NAMES = (st.lists(TEXT, max_size=3), st.one_of(st.none(), st.lists(SCALAR, min_size=1, max_size=2), TEXT))
STAMP = (INSTANT.map(iso), ODD_TIMES)
EVENT_KEYS = {"comment": ("public", "by_agent"), "status": ("from", "to"), "field": ("field", "from", "to"),
              "label": ("added", "removed")}
EVENT_VALUES = {"at": STAMP, "public": FLAG, "by_agent": FLAG, "by_self": FLAG, "by": OPT_TEXT, "from": OPT_TEXT,
                "to": OPT_TEXT, "field": OPT_TEXT, "added": NAMES, "removed": NAMES, "kind": (st.nothing(), SCALAR),
                "extra": (st.nothing(), SCALAR)}
FIELD_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63),
                        st.floats(allow_nan=False, allow_infinity=False), TEXT, st.lists(TEXT, max_size=2))
LINE_VALUES = {
    "key": (NAME, st.one_of(st.integers(), st.booleans(), st.just(""))), "created_at": STAMP,
    "status": (st.sampled_from(["New", "In Progress", "Resolved"]), SCALAR),
    "title": OPT_TEXT, "priority": OPT_TEXT, "type": OPT_TEXT, "project": OPT_TEXT, "assignee": OPT_TEXT,
    "milestone": OPT_TEXT, "due_date": OPT_TEXT, "labels": NAMES, "updated_at": STAMP, "author": OPT_TEXT,
    "fields": (st.dictionaries(TEXT, FIELD_VALUE, max_size=3),
               st.one_of(st.dictionaries(TEXT, st.dictionaries(TEXT, SCALAR), min_size=1, max_size=2),
                         st.lists(SCALAR, max_size=1), SCALAR)),
    "events": (st.nothing(), st.one_of(SCALAR, st.lists(SCALAR, min_size=1, max_size=2))),
    "extra": (st.nothing(), SCALAR),
}
REQUIRED = ("key", "created_at", "status")


@st.composite
def event(draw: st.DrawFn, twist: str | None) -> bytes:
    """An event of one kind with (mostly) its own keys; ``twist`` names a key that gets
    an unusual value, or odd JSON text."""
    kind = draw(st.sampled_from(["comment", "status", "label", "field", "note"]))
    keys = ["at", "kind", *EVENT_KEYS.get(kind, ())]
    keys += [k for k in ("by", "by_self") if draw(st.booleans())]
    if twist is not None and twist not in keys:
        keys.append(twist)
    pairs = []
    for k in keys:
        usual, unusual = EVENT_VALUES[k]
        if k == twist:
            pairs.append((k, draw(st.one_of(unusual.map(dumps), ODD))))
        else:
            pairs.append((k, dumps(kind) if k == "kind" else dumps(draw(usual))))
    return obj(draw(st.permutations(pairs)))


@st.composite
def line(draw: st.DrawFn) -> bytes:
    """A line of the format; half of them have one twist: a key with an unusual value
    or odd JSON text, one missing, one twice, an event's key so twisted, an unknown key."""
    twist = draw(st.sampled_from([None, None, "event", "event", "missing", "twice", *LINE_VALUES]))
    keys = [*REQUIRED, *(k for k in LINE_VALUES if k not in REQUIRED and k not in ("extra", "events")
                         and draw(st.booleans()))]
    pairs = []
    for k in keys:
        usual, unusual = LINE_VALUES[k]
        pairs.append((k, draw(st.one_of(unusual.map(dumps), ODD)) if k == twist else dumps(draw(usual))))
    if twist in ("events", "extra"):
        pairs.append((twist, draw(st.one_of(LINE_VALUES[twist][1].map(dumps), ODD))))
    elif draw(st.booleans()) or twist == "event":
        twisted = draw(st.integers(0, 3)) if twist == "event" else None
        events = [draw(event(draw(st.sampled_from(list(EVENT_VALUES))) if i == twisted else None))
                  for i in range(draw(st.integers(0 if twisted is None else twisted + 1, 4)))]
        pairs.append(("events", b"[" + b",".join(events) + b"]"))
    if twist == "missing":
        pairs.remove(draw(st.sampled_from([p for p in pairs if p[0] in REQUIRED])))
    if twist == "twice":  # the last one counts, for orjson
        pairs.append((draw(st.sampled_from(pairs))[0], draw(st.one_of(SCALAR.map(dumps), ODD))))
    return obj(draw(st.permutations(pairs)))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(line()))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(raw)))
        span = draw(st.integers(0, 4))
        insert = draw(st.binary(max_size=3) | st.sampled_from([b'"', b"{", b"]", b",", b":", b"1e9", b"null", b"\\"]))
        raw[at:at + span] = insert
    return bytes(raw)


def assert_paths_agree(raw: bytes) -> None:
    typed = typed_issue(raw)
    checked = checked_issue(raw, "in.jsonl", 1)
    if typed is not None:
        assert isinstance(checked, Issue), f"typed took a line the checked path rejects: {checked}"
        assert shown(typed) == shown(checked)
    expected = [(n, shown(checked_issue(r, "in.jsonl", n)))
                for n, r in enumerate(io.BytesIO(raw).readlines(), start=1) if r.strip()]
    assert [(n, shown(item)) for n, item in read_issues(io.BytesIO(raw), "in.jsonl")] == expected


@PROPS
@given(line())
def test_the_typed_and_the_checked_path_agree_on_random_lines(raw: bytes) -> None:
    assert_paths_agree(raw)


@PROPS
@given(mutated())
def test_the_typed_and_the_checked_path_agree_on_mutated_lines(raw: bytes) -> None:
    assert_paths_agree(raw)


@pytest.mark.parametrize("raw", [
    b"", b"\n", b"   \r\n", b"null", b"[]", b'{"key": "A-1"}', b"\xef\xbb\xbf{}",
    b'{"key":"A-1","created_at":"2026-11-02T10:00:00Z","status":"New","x":1e400}',
    b'{"key":"A-1","created_at":"2026-11-02T10:00:00Z","status":"New","author":"\xff"}',
    b'{"key":"A-1","created_at":"2026-11-02T10:00:00Z","status":"New","fields":{"n":1e400}}',
    b'{"key":"A-1","created_at":"2026-11-02T10:00:00Z","status":"New","fields":{"n":18446744073709551616}}',
    b'{"key":"A-1","created_at":"2026-11-02T10:00:00Z","status":"New","fields":{"n":1},"fields":{"m":2}}',
    b'{"key":"A-1","created_at":"2026-11-02T10:00:00Z","status":"New","events":[{"at":"2026-11-02T11:00:00Z",'
    b'"kind":"comment","public":null,"by_self":null}]}',
    b'{"key":"","created_at":"2026-11-02T10:00:00Z","status":"New"}',
    b'{"key":"A-1","created_at":"2026-11-02T10:00:00Z","status":"New","events":[{"at":"2026-11-02T11:00:00Z",'
    b'"kind":"comment","note":1e400}]}',
    b'{"key":"A-1","created_at":"2026-11-02T10:00:00Z","status":"New","events":[{"at":"2026-11-02T11:00:00Z",'
    b'"kind":"status","note":"\xff"}]}',
])
def test_the_paths_agree_on_odd_lines(raw: bytes) -> None:
    assert_paths_agree(raw)


def test_an_unknown_key_takes_the_checked_path() -> None:
    ordinary = b'{"key":"A-1","created_at":"2026-11-02T10:00:00Z","status":"New"}'
    assert typed_issue(ordinary) == Issue("A-1", 1_793_613_600, "New")
    assert typed_issue(ordinary[:-1] + b',"extra":1}') is None
    assert checked_issue(ordinary[:-1] + b',"extra":1}', "in.jsonl", 1) == Issue("A-1", 1_793_613_600, "New")


@PROPS
@given(st.one_of(INSTANT.map(iso), ODD_TIMES))
def test_a_timestamp_read_twice_reads_as_parse_timestamp_has_it(text: str) -> None:
    try:
        expected: int | None = parse_timestamp(text, "at")
    except ValueError:
        expected = None
    assert neutral._instant(text) == expected
    assert neutral._instant(text) == expected  # the second time from the dates and times already read


# -- ordinary lines take the typed path ------------------------------------------------------------------------


def ordinary_lines() -> Iterator[bytes]:
    yield from (ROOT / "examples" / "issues.jsonl").read_bytes().splitlines(keepends=True)
    yield from (orjson.dumps(o) + b"\n" for o in generate(300, seed=11, span_days=90))
    for raw in (ROOT / "examples" / "project-phases.jsonl").read_bytes().splitlines():  # as `export` writes them
        issue = checked_issue(raw, "x", 1)
        assert isinstance(issue, Issue)
        yield dump_line(issue_to_json(issue))


def test_ordinary_lines_take_the_typed_path(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = list(ordinary_lines())

    def refuse(raw: bytes, source: str, number: int) -> Issue | LineError:
        raise AssertionError(f"line {number} took the checked path: {raw[:80]!r}")

    monkeypatch.setattr(neutral, "checked_issue", refuse)
    monkeypatch.setattr(neutral, "issue_from_json", refuse)
    items = [item for _, item in read_issues(io.BytesIO(b"".join(lines)), "ordinary.jsonl")]
    assert len(items) == len(lines) > 300
    assert all(isinstance(item, Issue) for item in items)


# -- the clocks: one pass agrees with the span-by-span reference -----------------------------------------------


def reference(issue: Issue, policy: Policy, now: int) -> IssueSla:
    """The clocks as they were written before the one-pass rewrite: the status
    segments, then per metric the running spans and the working time of each."""
    history = sorted(issue.events, key=lambda e: e.at)
    every = [e for e in history if e.kind == "status"]
    status = (every[0].from_ or issue.status) if every else issue.status
    segments: list[tuple[int, int, str]] = []
    start = issue.created_at
    for e in (e for e in every if e.at <= now):
        at = min(max(e.at, issue.created_at), now)
        if at > start:
            segments.append((start, at, status))
            start = at
        status = e.to or status
    if now > start or not segments or segments[-1][2] != status:
        segments.append((start, max(now, start), status))
    events = [e for e in history if e.at <= now]
    created = issue.created_at

    def first(instants: Iterator[int]) -> int | None:
        return next(instants, None)

    def earliest(*instants: int | None) -> int | None:
        return min((i for i in instants if i is not None), default=None)

    resolution = first(a for a, _, s in segments if s in policy.resolved)
    response = earliest(first(max(e.at, created) for e in events if e.kind == "comment" and e.public and e.by_agent),
                        resolution)
    workaround = earliest(first(a for a, _, s in segments if s in policy.workaround_statuses),
                          first(max(e.at, created) for e in events
                                if e.kind == "label" and not policy.workaround_labels.isdisjoint(e.added)),
                          resolution)
    resolved_since = None
    if segments[-1][2] in policy.resolved:
        for a, _, s in reversed(segments):
            if s not in policy.resolved:
                break
            resolved_since = a
    rule = policy.classify(issue)
    level = policy.level_at(rule.level, issue.created_at)
    cal = level.calendar

    def reach(spans: list[tuple[int, int]], target: int) -> int | None:
        done = 0
        for a, b in spans:
            worked = cal.working_seconds(a, b)
            if done + worked >= target:
                return cal.add_working_seconds(a, target - done, until=b)
            done += worked
        return None

    metrics = {}
    for metric, target in level.targets.items():
        stop = {"first_response": response, "workaround": workaround}.get(metric)
        skip = policy.pause | policy.resolved if metric == "resolution" else policy.pause
        spans = []
        for a, b, s in segments:
            if stop is not None:
                if a >= stop:
                    break
                b = min(b, stop)
            if s not in skip and b > a:
                spans.append((a, b))
        elapsed = sum(cal.working_seconds(a, b) for a, b in spans)
        stopped = resolved_since if metric == "resolution" else stop
        due = breached = None
        risk = False
        if elapsed > target:
            state, due = State.BREACHED, reach(spans, target)
            breached = due
        elif stopped is not None:
            state = State.MET
        elif segments[-1][2] in policy.pause:
            state = State.PAUSED
        else:
            state, risk = State.RUNNING, elapsed * 100 >= policy.warn_share * target
            try:
                due = reach(spans, target) if elapsed >= target else cal.add_working_seconds(now, target - elapsed)
            except NoWorkingTimeError:
                due = None
        metrics[metric] = SlaState(metric, state, risk, target, elapsed, target - elapsed, due, breached, stopped)
    return IssueSla(issue.key, level.name, metrics, rule.number, cal.tz.key)


STATUSES = ["New", "In Progress", "Feedback", "Waiting on customer", "Workaround provided", "Resolved", "Closed"]
KINDS = ["High", "Urgent", "Low", "HOL", "MAD", "NYC", "KOL"]


@st.composite
def issues(draw: st.DrawFn) -> Issue:
    created = 1_790_000_000 + draw(st.integers(0, 200 * 86_400))  # 2026-09-21 on: DST changes, a holiday
    events = []
    for _ in range(draw(st.integers(0, 7))):
        at = created + draw(st.integers(-86_400, 30 * 86_400))
        kind = draw(st.sampled_from(["status", "status", "comment", "label", "field"]))
        if kind == "status":
            events.append(Event(at, kind, from_=draw(st.sampled_from([*STATUSES, None])),
                                to=draw(st.sampled_from([*STATUSES, None])), field="status"))
        elif kind == "comment":
            events.append(Event(at, kind, public=draw(st.booleans()), by_agent=draw(st.booleans())))
        elif kind == "label":
            added = draw(st.lists(st.sampled_from(["workaround", "x"]), max_size=2))
            events.append(Event(at, kind, added=tuple(added)))
        else:
            events.append(Event(at, kind, field="priority", from_="Low", to="High"))
    if draw(st.booleans()):
        events.sort(key=lambda e: e.at)
    kind = draw(st.sampled_from(KINDS))
    return Issue("T-1", created, draw(st.sampled_from(STATUSES)), priority=kind if kind in ("High", "Urgent") else None,
                 type=kind, events=tuple(events))


@PROPS
@given(issues(), st.integers(-86_400, 60 * 86_400))
def test_the_one_pass_clocks_agree_with_the_span_by_span_reference(issue: Issue, later: int) -> None:
    now = issue.created_at + later
    expected = reference(issue, POLICY, now)
    assert evaluate(issue, POLICY, now) == expected
    assert Clocks(POLICY, now)(issue) == expected


def test_clocks_classify_each_combination_once_and_as_the_policy_does() -> None:
    now = 1_763_000_000
    clocks = Clocks(POLICY, now)
    for kind in KINDS * 2:
        issue = Issue("T-1", 1_762_000_000, "New", priority=kind, type=kind)
        assert clocks(issue) == evaluate(issue, POLICY, now)
    assert len(clocks._rules) == len(KINDS)


@PROPS
@given(st.lists(st.integers(1_700_000_000, 1_900_000_000), min_size=2, max_size=6),
       st.sampled_from(["madrid", "newyork", "office_hol", "always"]))
def test_running_totals_differ_by_the_working_time(instants: list[int], name: str) -> None:
    calendar: Calendar = POLICY.calendars[name]
    totals = dict(zip(instants, calendar.running_totals(instants), strict=True))
    for a, b in itertools.pairwise(instants):
        lo, hi = min(a, b), max(a, b)
        assert totals[hi] - totals[lo] == sum(y - x for x, y in calendar.working_intervals(lo, hi))


def test_running_totals_read_before_the_calendar_grows_stay_true() -> None:
    office = calendar("Europe/Madrid", weekdays("09:00-13:00", "14:00-18:00"), country="ES", subdiv="MD")
    instants = [1_800_000_000, 1_800_050_000, 1_800_500_000]
    first = office.running_totals(instants)
    office.running_totals([1_780_000_000, 1_830_000_000])  # the cache grows backwards and forwards
    assert office.running_totals(instants) == first
    assert office.instant_at(first[0] + 3_600) == office.add_working_seconds(instants[0], 3_600)
    assert first[2] - first[0] == office.working_seconds(instants[0], instants[2])


# -- the output ------------------------------------------------------------------------------------------------

MAYBE_INSTANT = st.one_of(st.none(), st.integers(0, 2**33))


@st.composite
def slas(draw: st.DrawFn) -> IssueSla:
    metrics = {}
    for metric in draw(st.lists(st.sampled_from(["first_response", "workaround", "resolution"]), unique=True)):
        target, elapsed = draw(st.integers(0, 2**40)), draw(st.integers(0, 2**40))
        metrics[metric] = SlaState(metric, draw(st.sampled_from(list(State))), draw(st.booleans()), target, elapsed,
                                   target - elapsed, draw(MAYBE_INSTANT), draw(MAYBE_INSTANT), draw(MAYBE_INSTANT))
    return IssueSla(draw(st.text()), draw(st.text()), metrics)


@PROPS
@given(st.lists(slas(), max_size=5))
def test_the_writer_writes_what_dump_line_writes(items: list[IssueSla]) -> None:
    out = io.BytesIO()

    class Small(SlaWriter):
        BLOCK = 200  # several blocks

    with Small(out) as writer:
        for sla in items:
            writer.write(sla)
    assert out.getvalue() == b"".join(dump_line(sla_to_json(sla)) for sla in items)


# -- the model: Structs that still work as the dataclasses they were -------------------------------------------


def test_the_structs_keep_what_the_dataclasses_gave() -> None:
    event = Event(5, "comment", True, True, "alice")
    assert dataclasses.replace(event, by_self=True) == Event(5, "comment", True, True, "alice", True)
    issue = Issue("A-1", 5, "New", fields={"x": [1]}, events=(event,))
    assert dataclasses.replace(issue, key="A-2").key == "A-2"
    assert [f.name for f in dataclasses.fields(issue)][-2:] == ["fields", "events"]
    assert hash(issue) == hash(dataclasses.replace(issue, fields={}))  # fields count for equality, not the hash
    assert issue != dataclasses.replace(issue, fields={})
    assert Issue("A-1", 5, "New").fields is not Issue("A-2", 5, "New").fields
    with pytest.raises(AttributeError):
        event.at = 6  # type: ignore[misc]


# -- evaluate loads no more than it needs ----------------------------------------------------------------------

HEAVY = ("sqlalchemy", "requests", "rich", "prometheus_client", "apprise", "tenacity", "redminelib", "gitlab",
         "jira", "croniter")


def test_evaluate_loads_no_store_http_client_rich_nor_prometheus(tmp_path: Path) -> None:
    probe = (
        "import atexit, sys\n"
        f"atexit.register(lambda: print('loaded:', *sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}),"
        " file=sys.stderr))\n"
        "from sla_sync.cli.main import main\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, "evaluate", "--policy", str(ROOT / "policies" / "redmine-support.yaml"),
         "--input", str(ROOT / "examples" / "issues.jsonl"), "--now", "2026-12-01T00:00:00Z",
         "--output", str(tmp_path / "out.jsonl")],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "loaded:"
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 36
