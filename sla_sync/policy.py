"""The policy file: schema (pydantic v2), loading with file:line errors, classification.

A policy file is YAML.  ``load_policy`` reads it, validates it against the frozen
models below (unknown keys are errors), runs the semantic checks that a schema
cannot express (a level naming an unknown calendar, a rule naming an unknown level,
no rule that always holds...), and maps every problem back to the line and column
of the offending key or value.  All problems of a file are reported in one pass.

Plain YAML scalars are read as strings (``null``/``~``/empty stay null), so that
``2026-12-25`` and ``"2026-12-25"`` mean the same, and a country code ``NO`` is
Norway rather than ``False``; pydantic then converts strings where a field wants a
number, a date or a boolean.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
)

from .calendar import DAY, AlwaysCalendar, Calendar, Interval
from .errors import UserError
from .model import METRICS, Issue

# -- small value types -------------------------------------------------------

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_INTERVAL = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
_PERCENT = re.compile(r"^(\d{1,3}(?:\.\d+)?)\s*%$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_duration(text: str) -> int:
    """``30m``, ``4h``, ``1h30m``, ``90s`` → seconds (positive)."""
    m = _DURATION.match(str(text).strip())
    if not m or not any(m.groups()):
        raise ValueError(f"{text!r} is not a duration: write it like 30m, 4h or 1h30m")
    h, mi, s = (int(g) if g else 0 for g in m.groups())
    total = h * 3600 + mi * 60 + s
    if total <= 0:
        raise ValueError(f"{text!r}: a target must be longer than zero")
    return total


def format_duration(seconds: int) -> str:
    """Seconds → ``1h30m`` (the inverse of ``parse_duration`` for whole minutes)."""
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    parts = [f"{h}h" if h else "", f"{m}m" if m else "", f"{s}s" if s else ""]
    return sign + ("".join(parts) or "0m")


def parse_interval(text: str) -> Interval:
    """``09:00-13:00`` → local seconds since midnight; ``24:00`` ends a day."""
    m = _INTERVAL.match(str(text).strip())
    if not m:
        raise ValueError(f"{text!r} is not an interval: write it like \"09:00-13:00\"")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if m1 > 59 or m2 > 59 or h1 > 23 or h2 > 24 or (h2 == 24 and m2):
        raise ValueError(f"{text!r}: hours go from 00:00 to 24:00")
    start, end = h1 * 3600 + m1 * 60, h2 * 3600 + m2 * 60
    if end <= start:
        raise ValueError(f"{text!r}: the end must come after the start")
    return start, end


def parse_percent(text: str) -> float:
    """``75%`` → 75.0 (more than 0, at most 100)."""
    m = _PERCENT.match(str(text).strip())
    if not m:
        raise ValueError(f"{text!r} is not a share: write it like 75%")
    value = float(m.group(1))
    if not 0 < value <= 100:
        raise ValueError(f"{text!r}: a share lies between 0% and 100%")
    return value


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text


def _check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{name!r} is not an IANA timezone: write it like Europe/Madrid or UTC"
        ) from None
    return name


def _check_percent(text: str) -> str:
    parse_percent(text)
    return text


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Duration = Annotated[str, AfterValidator(_check_duration)]
Timezone = Annotated[str, AfterValidator(_check_timezone)]
Percent = Annotated[str, AfterValidator(_check_percent)]
Names = Annotated[tuple[str, ...], BeforeValidator(_listify)]


def _check_interval(text: str) -> str:
    parse_interval(text)
    return text


def _check_day(texts: tuple[str, ...]) -> tuple[str, ...]:
    spans = sorted(parse_interval(t) for t in texts)
    for (_, end), (start, _) in itertools.pairwise(spans):
        if start < end:
            raise ValueError(f"intervals {', '.join(texts)} overlap")
    return texts


IntervalText = Annotated[str, AfterValidator(_check_interval)]
DayHours = Annotated[tuple[IntervalText, ...], BeforeValidator(_listify), AfterValidator(_check_day)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# -- the schema ----------------------------------------------------------------


class Agents(_Frozen):
    """Who counts as an agent (support staff): tracker logins and group names."""

    users: Names = ()
    groups: Names = ()


class TrackerSpec(_Frozen):
    """Where the issues live and how to reach them.  Secrets by reference only."""

    kind: str = Field(description="redmine | gitlab | jira, or a plugin's name")
    url: str
    project: str
    api_key_env: str | None = Field(None, description="environment variable holding the API key or token")
    api_key_file: str | None = Field(None, description="file holding the API key or token")
    user_env: str | None = Field(None, description="Jira Cloud: variable holding the account e-mail")
    agents: Agents | None = Field(None, description="default: anyone but the issue's author")
    labels_field: str = Field("SLA", description="Redmine: the multi-value list custom field holding the SLA labels")
    due_field: str | None = Field(None, description="a datetime custom field for the exact due instant")
    status_labels: str | None = Field(None, description="GitLab: scoped-label prefix holding the status, e.g. 'status::'")
    priority_labels: str | None = Field(None, description="GitLab: scoped-label prefix holding the priority")
    timeout: Annotated[float, Field(gt=0)] = 30.0
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 5
    max_wait: Annotated[float, Field(gt=0, le=3600, description="longest wait between two attempts, seconds")] = 60.0
    overlap: Duration = Field("5m", description="how far each incremental fetch reaches back")


class CalendarSpec(_Frozen):
    """A business calendar: working hours per weekday in one timezone, and holidays."""

    timezone: Timezone
    hours: Annotated[
        Annotated[Literal["24x7"], Tag("always")]
        | Annotated[dict[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], DayHours], Tag("weekly")],
        Discriminator(lambda v: "always" if isinstance(v, str) else "weekly"),
        Field(description='"24x7", or local intervals per weekday: mon: ["09:00-13:00", "14:00-18:00"]'),
    ]
    holidays: tuple[date, ...] = ()
    holidays_country: str | None = Field(None, description="ISO 3166 code, for the `holidays` package")
    holidays_subdiv: str | None = Field(None, description="a subdivision of that country, e.g. MD")


class LevelSpec(_Frozen):
    """A priority level: the calendar its clocks run on, and the targets."""

    calendar: str
    first_response: Duration | None = None
    workaround: Duration | None = None
    resolution: Duration | None = None
    description: str | None = None


def parse_effective(text: str) -> int:
    """``effective_from``: a date (00:00 UTC that day) or an instant with a timezone → epoch seconds."""
    value = str(text).strip()
    try:
        if len(value) == 10:
            return int(datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC).timestamp())
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date or an instant: write it like 2027-01-01 or 2027-01-01T00:00:00+01:00"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no timezone: add Z or an offset like +01:00, or write a date")
    return int(moment.timestamp() // 1)


def _check_effective(text: str) -> str:
    parse_effective(text)
    return text


class LevelChange(_Frozen):
    """A level as a revision changes it: only the keys written change; ``null``
    removes a target."""

    calendar: str | None = None
    first_response: Duration | None = None
    workaround: Duration | None = None
    resolution: Duration | None = None
    description: str | None = None


class RevisionSpec(_Frozen):
    """A dated change of the agreement: from ``effective_from`` on, the levels it
    names take these values (on top of the revisions before it)."""

    effective_from: Annotated[str, AfterValidator(_check_effective)] = Field(
        description="a date (00:00 UTC that day) or an ISO instant with a timezone"
    )
    levels: dict[str, LevelChange]
    description: str | None = None


RULE_KEYS = ("priority", "type", "status", "labels", "assignee", "project", "milestone")


class RuleSpec(_Frozen):
    """``if`` (all keys must hold; a list means any of) → ``level``."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    when: dict[str, Names] | None = Field(None, alias="if")
    level: str

    @field_validator("when")
    @classmethod
    def _keys(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        for key in value or {}:
            if key not in RULE_KEYS and not (key.startswith("fields.") and len(key) > 7):
                raise ValueError(
                    f"unknown condition {key!r}: use one of {', '.join(RULE_KEYS)} or fields.NAME"
                )
        return value


class ClockSpec(_Frozen):
    """Which statuses and labels pause, resolve, or provide a workaround."""

    pause_statuses: Names = ()
    resolved_statuses: Names = ("Resolved", "Closed")
    workaround_statuses: Names = ()
    workaround_labels: Names = ()


_WHEN = re.compile(r"^(first_response|workaround|resolution)\s+(breached|\d{1,3}(?:\.\d+)?\s*%)$")


class StepSpec(_Frozen):
    """An escalation step: fires once per issue when its condition first holds."""

    when: str = Field(description='"<metric> <N>%" or "<metric> breached"')
    assign: str | None = None
    watchers: Names = ()
    add_labels: Names = ()
    comment: str | None = None
    private: bool = True

    @field_validator("when")
    @classmethod
    def _when(cls, value: str) -> str:
        m = _WHEN.match(value.strip())
        if not m:
            raise ValueError(
                f"{value!r}: write it as '<metric> <N>%' or '<metric> breached', "
                f"metric one of {', '.join(METRICS)}"
            )
        if m.group(2) != "breached":
            parse_percent(m.group(2))
        return value


class WritebackSpec(_Frozen):
    """What sla-sync writes into the tracker."""

    due_date: Literal["first_response", "workaround", "resolution", "none"] = "resolution"
    labels: bool = True
    label_prefix: str = "sla:"
    on_manual_change: Literal["keep", "override"] = "keep"


class ReportSpec(_Frozen):
    """Settings of ``sla-sync report``."""

    csat_field: str | None = None
    csat_values: dict[str, float] = Field(default_factory=dict)


class PolicyFile(_Frozen):
    """A policy file, as written."""

    name: str
    tracker: TrackerSpec | None = None
    calendars: dict[str, CalendarSpec]
    levels: dict[str, LevelSpec]
    revisions: tuple[RevisionSpec, ...] = Field((), description="dated changes of the levels, oldest first")
    classify: tuple[RuleSpec, ...]
    clock: ClockSpec = ClockSpec()
    warn_at: Percent = "75%"
    escalate: tuple[StepSpec, ...] = ()
    writeback: WritebackSpec = WritebackSpec()
    report: ReportSpec = ReportSpec()


def json_schema() -> dict[str, Any]:
    """The policy file's JSON Schema (for editors)."""
    schema = PolicyFile.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "sla-sync policy file"
    return schema


# -- loading with positions ----------------------------------------------------

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One problem in a policy file, at a line and column (1-based)."""

    path: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.message}"


class PolicyError(UserError):
    """A policy file has problems; ``problems`` lists them all."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def _build(
    node: yaml.Node, loc: Loc, marks: dict[Loc, tuple[int, int]], keymarks: dict[Loc, tuple[int, int]]
) -> Any:
    """Plain data from a YAML node, recording where every path starts."""
    marks[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for knode, vnode in node.value:
            key = _build(knode, (*loc, "<key>"), {}, {})
            if isinstance(key, (dict, list)) or key is None:
                raise _BadYaml(knode, "a key must be a plain word")
            skey = str(key)
            if skey in out:
                raise _BadYaml(knode, f"duplicate key {skey!r}")
            keymarks[(*loc, skey)] = (knode.start_mark.line + 1, knode.start_mark.column + 1)
            out[skey] = _build(vnode, (*loc, skey), marks, keymarks)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(v, (*loc, i), marks, keymarks) for i, v in enumerate(node.value)]
    assert isinstance(node, yaml.ScalarNode)
    if node.style is None and node.tag == "tag:yaml.org,2002:null":
        return None
    return node.value


class _BadYaml(Exception):
    def __init__(self, node: yaml.Node, message: str) -> None:
        super().__init__(message)
        self.node = node


@dataclass(frozen=True)
class _Located:
    data: Any
    marks: dict[Loc, tuple[int, int]]
    keymarks: dict[Loc, tuple[int, int]]

    def where(self, loc: Loc, *, key: bool = False) -> tuple[int, int]:
        """Line and column of a path: the key itself when asked, else the value."""
        loc = tuple(loc)
        while loc:
            if key and loc in self.keymarks:
                return self.keymarks[loc]
            if loc in self.marks:
                return self.marks[loc]
            loc = loc[:-1]
        return self.marks.get((), (1, 1))


def _read_yaml(path: str, text: str) -> _Located:
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise PolicyError([Problem(path, line, col, f"not valid YAML: {exc.problem or exc}")]) from None
    except yaml.YAMLError as exc:
        raise PolicyError([Problem(path, 1, 1, f"not valid YAML: {exc}")]) from None
    if node is None:
        raise PolicyError([Problem(path, 1, 1, "the file is empty: a policy needs name, calendars, levels and classify")])
    marks: dict[Loc, tuple[int, int]] = {}
    keymarks: dict[Loc, tuple[int, int]] = {}
    try:
        data = _build(node, (), marks, keymarks)
    except _BadYaml as exc:
        m = exc.node.start_mark
        raise PolicyError([Problem(path, m.line + 1, m.column + 1, str(exc))]) from None
    if not isinstance(data, dict):
        raise PolicyError([Problem(path, 1, 1, "a policy file is a mapping of keys (name, calendars, levels, classify...)")])
    return _Located(data, marks, keymarks)


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _data_loc(data: Any, loc: Loc, keep_last: bool) -> Loc:
    """Drop the parts of a pydantic location that are not keys of the document
    (pydantic names union members and validators in it)."""
    out: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if part == "[key]":
            continue
        if isinstance(node, dict) and str(part) in node:
            out.append(str(part))
            node = node[str(part)]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            out.append(part)
            node = node[part]
        elif last and keep_last:
            out.append(part)
        elif isinstance(node, dict) and part == "when" and "if" in node:
            out.append("if")
            node = node["if"]
    return tuple(out)


def _pydantic_problems(path: str, doc: _Located, exc: ValidationError) -> list[Problem]:
    problems = []
    seen = set()
    for err in exc.errors(include_url=False):
        kind = err["type"]
        loc = _data_loc(doc.data, tuple(err["loc"]), keep_last=kind == "missing")
        msg = err["msg"].removeprefix("Value error, ")
        if kind == "extra_forbidden":
            msg = f"unknown key {loc[-1]!r}: remove it or check its spelling"
        elif kind == "missing":
            msg = f"missing key {loc[-1]!r}"
        elif kind == "literal_error":
            msg = msg.replace("Input should be", "should be")
        if kind == "missing":
            line, col = doc.where(loc[:-1], key=True)
        else:
            on_key = kind == "extra_forbidden" or "[key]" in err["loc"]
            line, col = doc.where(loc, key=on_key)
        text = f"{_dotted(loc)}: {msg}" if loc else msg
        if (line, text) in seen:
            continue
        seen.add((line, text))
        problems.append(Problem(path, line, col, text))
    return problems


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _seq(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _semantic_problems(data: dict[str, Any], known_kinds: Sequence[str] | None) -> list[tuple[Loc, str, bool]]:
    """Problems a schema cannot see: (path, message, point at the key).

    They read the raw document, defensively, so that they are reported in the same
    pass as the schema's own problems.
    """
    out: list[tuple[Loc, str, bool]] = []
    calendars = _mapping(data.get("calendars"))
    levels = _mapping(data.get("levels"))
    defined: set[str] = set()
    for name, level in levels.items():
        level = _mapping(level)
        cal = level.get("calendar")
        if isinstance(cal, str) and cal not in calendars:
            known = ", ".join(calendars) or "none"
            out.append((("levels", name, "calendar"), f"level {name!r} names calendar {cal!r}, which is not defined (calendars: {known})", False))
        targets = {m for m in METRICS if level.get(m)}
        defined |= targets
        if not targets:
            out.append((("levels", name), f"level {name!r} sets no target: give it first_response, workaround and/or resolution", True))
    out += _revision_problems(data, levels, calendars, defined)
    rules = _seq(data.get("classify"))
    catch_all: int | None = None
    for i, rule in enumerate(rules):
        rule = _mapping(rule)
        level_name = rule.get("level")
        if isinstance(level_name, str) and levels and level_name not in levels:
            out.append((("classify", i, "level"), f"rule {i + 1} names level {level_name!r}, which is not defined (levels: {', '.join(levels)})", False))
        if catch_all is not None:
            out.append((("classify", i), f"rule {i + 1} is never reached: rule {catch_all + 1} before it always holds", False))
        elif not rule.get("if"):
            catch_all = i
    if "classify" in data and catch_all is None:
        out.append((("classify",), "no rule always holds: end classify with a rule without `if`, e.g. `- level: P3`", True))
    for i, step in enumerate(_seq(data.get("escalate"))):
        step = _mapping(step)
        metric = str(step.get("when") or "").split(" ")[0]
        if metric in METRICS and levels and metric not in defined:
            out.append((("escalate", i, "when"), f"no level sets a {metric} target, so this step can never fire", False))
        if not any(step.get(k) for k in ("assign", "watchers", "add_labels", "comment")):
            out.append((("escalate", i), "a step needs at least one action: assign, watchers, add_labels or comment", False))
    due = _mapping(data.get("writeback")).get("due_date")  # the default may go unused
    if due in METRICS and levels and due not in defined:
        out.append((("writeback", "due_date"), f"no level sets a {due} target", False))
    for name, cal in calendars.items():
        cal = _mapping(cal)
        country, subdiv = cal.get("holidays_country"), cal.get("holidays_subdiv")
        if isinstance(country, str):
            try:
                _country_holidays(country, subdiv if isinstance(subdiv, str) else None)
            except NotImplementedError as exc:
                key = "holidays_subdiv" if subdiv and "subdivision" in str(exc) else "holidays_country"
                out.append((("calendars", name, key), f"the holidays package does not know it: {exc}", False))
        elif subdiv:
            out.append((("calendars", name, "holidays_subdiv"), "holidays_subdiv needs holidays_country", True))
    tracker = data.get("tracker")
    if isinstance(tracker, dict):
        kind = tracker.get("kind")
        if known_kinds is not None and isinstance(kind, str) and kind not in known_kinds:
            out.append((("tracker", "kind"), f"unknown tracker kind {kind!r}: installed adapters are {', '.join(sorted(known_kinds))}", False))
        if not (tracker.get("api_key_env") or tracker.get("api_key_file")):
            out.append((("tracker",), "set api_key_env (an environment variable) or api_key_file: secrets never go in the policy file", True))
    return out


def _revision_problems(
    data: dict[str, Any], levels: dict[str, Any], calendars: dict[str, Any], defined: set[str]
) -> list[tuple[Loc, str, bool]]:
    """Revisions in increasing order, naming known levels and calendars, and
    leaving every level at least one target.  Adds the metrics that revisions
    set to ``defined``."""
    out: list[tuple[Loc, str, bool]] = []
    current = {name: dict(_mapping(level)) for name, level in levels.items()}
    previous: tuple[int, str] | None = None
    for i, rev in enumerate(_seq(data.get("revisions"))):
        rev = _mapping(rev)
        here: Loc = ("revisions", i)
        try:
            instant = parse_effective(str(rev.get("effective_from")))
        except ValueError:
            instant = None  # the schema reports it
        if instant is not None and previous is not None and instant <= previous[0]:
            out.append((
                (*here, "effective_from"),
                f"revision {i + 1} takes effect at {rev.get('effective_from')}, not after revision {previous[1]}: "
                "list revisions oldest first, each later than the one before",
                False,
            ))
        if instant is not None:
            previous = (instant, f"{i + 1} ({rev.get('effective_from')})")
        changes = _mapping(rev.get("levels"))
        if isinstance(rev.get("levels"), dict) and not changes:
            out.append(((*here, "levels"), f"revision {i + 1} changes no level: name at least one", True))
        for name, change in changes.items():
            change = _mapping(change)
            if name not in current:
                known = ", ".join(levels) or "none"
                out.append(((*here, "levels", name), f"revision {i + 1} changes level {name!r}, which is not defined (levels: {known}); a revision can only change a level of `levels`", True))
                continue
            cal = change.get("calendar")
            if "calendar" in change and not isinstance(cal, str):
                out.append(((*here, "levels", name, "calendar"), f"revision {i + 1}: a level always has a calendar: name one or leave the key out", False))
            elif isinstance(cal, str) and cal not in calendars:
                out.append(((*here, "levels", name, "calendar"), f"revision {i + 1} gives level {name!r} calendar {cal!r}, which is not defined (calendars: {', '.join(calendars) or 'none'})", False))
            current[name] = {**current[name], **change}
            targets = {m for m in METRICS if current[name].get(m)}
            defined |= targets
            if not targets:
                out.append(((*here, "levels", name), f"revision {i + 1} leaves level {name!r} with no target", True))
    return out


def parse_policy(text: str, path: str = "<policy>", known_kinds: Sequence[str] | None = None) -> Policy:
    """Validate a policy file's text; raise ``PolicyError`` listing every problem."""
    doc = _read_yaml(path, text)
    problems: list[Problem] = []
    spec: PolicyFile | None = None
    try:
        spec = PolicyFile.model_validate(doc.data)
    except ValidationError as exc:
        problems = _pydantic_problems(path, doc, exc)
    for loc, msg, key in _semantic_problems(doc.data, known_kinds):
        line, col = doc.where(loc, key=key)
        problems.append(Problem(path, line, col, f"{_dotted(loc)}: {msg}"))
    if problems or spec is None:
        problems.sort(key=lambda p: (p.line, p.col))
        raise PolicyError(problems)
    return compile_policy(spec, source=path)


def load_policy(path: str | Path, known_kinds: Sequence[str] | None = None) -> Policy:
    """Read and validate a policy file; ``PolicyError`` names file, line and key."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError([Problem(name, 1, 1, "no such file")]) from None
    except IsADirectoryError:
        raise PolicyError([Problem(name, 1, 1, "is a directory, not a policy file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError([Problem(name, 1, 1, f"cannot read it: {getattr(exc, 'strerror', None) or exc}")]) from None
    return parse_policy(text, name, known_kinds)


# -- the compiled policy that the clocks use -----------------------------------


def _country_holidays(country: str, subdiv: str | None) -> Any:
    import holidays  # imported on demand: it is slow to import and often unused

    return holidays.country_holidays(country.upper(), subdiv=subdiv)


def build_calendar(spec: CalendarSpec) -> Calendar:
    """A ``Calendar`` from its policy spec."""
    tz = ZoneInfo(spec.timezone)
    explicit = frozenset(spec.holidays)
    public = _country_holidays(spec.holidays_country, spec.holidays_subdiv) if spec.holidays_country else None
    if spec.hours == "24x7" and not explicit and public is None:
        return AlwaysCalendar(tz)
    if isinstance(spec.hours, str):  # 24x7 with holidays
        week: list[list[Interval]] = [[(0, DAY)] for _ in WEEKDAYS]
    else:
        hours: Mapping[str, Sequence[str]] = {str(k): v for k, v in spec.hours.items()}
        week = [sorted(parse_interval(t) for t in hours.get(day, ())) for day in WEEKDAYS]

    def is_holiday(day: date) -> bool:
        return day in explicit or (public is not None and day in public)

    return Calendar(tz, week, is_holiday)


@dataclass(frozen=True)
class Level:
    """A compiled level: its calendar and the targets in seconds."""

    name: str
    calendar_name: str
    calendar: Calendar
    targets: dict[str, int]


@dataclass(frozen=True)
class Step:
    """A compiled escalation step."""

    number: int
    metric: str
    share: float | None  # None: when breached
    spec: StepSpec


@dataclass(frozen=True)
class Revision:
    """A compiled revision: every level as in force from ``effective_from`` on."""

    number: int  # 1-based, in the order of the file
    effective_from: int
    levels: dict[str, Level]
    description: str | None = None


Predicate = Callable[[Issue], bool]


@dataclass(frozen=True)
class Rule:
    """A compiled classification rule."""

    number: int
    level: str
    conditions: tuple[tuple[str, frozenset[str]], ...]
    test: Predicate


def _issue_values(issue: Issue, key: str) -> tuple[str, ...]:
    if key == "labels":
        return issue.labels
    if key.startswith("fields."):
        value = issue.fields.get(key[7:])
        if value is None:
            return ()
        if isinstance(value, list):
            return tuple(str(v) for v in value)
        return (str(value),)
    value = getattr(issue, key)
    return () if value is None else (str(value),)


def _compile_rule(number: int, spec: RuleSpec) -> Rule:
    conditions = tuple((key, frozenset(values)) for key, values in (spec.when or {}).items())

    def test(issue: Issue) -> bool:
        return all(not allowed.isdisjoint(_issue_values(issue, key)) for key, allowed in conditions)

    return Rule(number, spec.level, conditions, test)


@dataclass(frozen=True)
class Policy:
    """A validated policy, ready for the clocks: calendars built, rules compiled."""

    spec: PolicyFile
    source: str
    levels: dict[str, Level]
    rules: tuple[Rule, ...]
    steps: tuple[Step, ...]
    pause: frozenset[str]
    resolved: frozenset[str]
    workaround_statuses: frozenset[str]
    workaround_labels: frozenset[str]
    warn_share: float
    calendars: dict[str, Calendar] = field(repr=False)
    revisions: tuple[Revision, ...] = ()

    @property
    def name(self) -> str:
        return self.spec.name

    def revision_at(self, instant: int) -> Revision | None:
        """The revision in force at ``instant``; ``None`` before the first one
        (the levels as written under ``levels``)."""
        for revision in reversed(self.revisions):  # a handful at most, in increasing order
            if revision.effective_from <= instant:
                return revision
        return None

    def level_at(self, name: str, created_at: int) -> Level:
        """Level ``name`` as in force at ``created_at``: an issue is held to the
        revision in force when it was created."""
        if not self.revisions:
            return self.levels[name]
        revision = self.revision_at(created_at)
        return revision.levels[name] if revision is not None else self.levels[name]

    def classify(self, issue: Issue) -> Rule:
        """The first rule that holds for the issue's current values."""
        for rule in self.rules:
            if rule.test(issue):
                return rule
        raise AssertionError("a validated policy always has a rule that holds")  # pragma: no cover


def compile_policy(spec: PolicyFile, source: str = "<policy>") -> Policy:
    """Build calendars and compile rules and steps of a validated spec."""
    calendars = {name: build_calendar(c) for name, c in spec.calendars.items()}
    levels = {
        name: Level(
            name,
            lv.calendar,
            calendars[lv.calendar],
            {m: parse_duration(getattr(lv, m)) for m in METRICS if getattr(lv, m)},
        )
        for name, lv in spec.levels.items()
    }
    revisions = _compile_revisions(spec, calendars, levels)
    steps = []
    for i, step in enumerate(spec.escalate):
        metric, cond = step.when.split(None, 1)
        share = None if cond.strip() == "breached" else parse_percent(cond)
        steps.append(Step(i + 1, metric, share, step))
    return Policy(
        spec=spec,
        source=source,
        levels=levels,
        rules=tuple(_compile_rule(i + 1, r) for i, r in enumerate(spec.classify)),
        steps=tuple(steps),
        pause=frozenset(spec.clock.pause_statuses),
        resolved=frozenset(spec.clock.resolved_statuses),
        workaround_statuses=frozenset(spec.clock.workaround_statuses),
        workaround_labels=frozenset(spec.clock.workaround_labels),
        warn_share=parse_percent(spec.warn_at),
        calendars=calendars,
        revisions=revisions,
    )


def _compile_level(name: str, values: Mapping[str, Any], calendars: Mapping[str, Calendar]) -> Level:
    return Level(
        name,
        values["calendar"],
        calendars[values["calendar"]],
        {m: parse_duration(values[m]) for m in METRICS if values.get(m)},
    )


def _compile_revisions(
    spec: PolicyFile, calendars: Mapping[str, Calendar], base: Mapping[str, Level]
) -> tuple[Revision, ...]:
    """Each revision's full levels: the ones before it, with its changes on top.
    Unchanged levels are shared (the same ``Level`` object) across revisions."""
    current: dict[str, dict[str, Any]] = {name: lv.model_dump() for name, lv in spec.levels.items()}
    levels: dict[str, Level] = dict(base)
    out = []
    for i, rev in enumerate(spec.revisions):
        for name, change in rev.levels.items():
            current[name] = {**current[name], **{k: getattr(change, k) for k in change.model_fields_set}}
            levels[name] = _compile_level(name, current[name], calendars)
        out.append(Revision(i + 1, parse_effective(rev.effective_from), dict(levels), rev.description))
    return tuple(out)


def classify(issue: Issue, policy: Policy) -> str:
    """The level of an issue: the first rule of ``classify`` that holds."""
    return policy.classify(issue).level
