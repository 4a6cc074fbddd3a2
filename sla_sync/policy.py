"""The compiled policy: calendars built, levels, rules, steps and revisions
compiled, and everything the rest of sla-sync reads of a policy file.

``load_policy``/``parse_policy`` read a file (``sla_sync.positions``), validate it
against the schema (``sla_sync.schema``) and the semantic checks
(``sla_sync.checks``), reporting every problem of a file in one pass as
``FILE:LINE:COL: message``, then compile it.  No module outside this one reads the
file as written (``Policy.spec``): what they need is compiled onto ``Policy``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from .calendar import DAY, AlwaysCalendar, Calendar, Interval, country_holidays
from .checks import semantic_problems
from .custom import CustomMetric, compile_trigger
from .model import METRICS, Issue
from .positions import PolicyError, Problem, dotted, pydantic_problems, read_yaml
from .schema import (
    CalendarSpec,
    ChannelSpec,
    MetricSpec,
    PolicyFile,
    RuleSpec,
    StepSpec,
    TrackerSpec,
    apply_revision,
    duration_or_zero,
)
from .values import WEEKDAYS, parse_duration, parse_instant, parse_interval, parse_percent


def parse_policy(text: str, path: str = "<policy>", known_kinds: Sequence[str] | None = None) -> Policy:
    """Validate a policy file's text; raise ``PolicyError`` listing every problem."""
    doc = read_yaml(path, text)
    problems: list[Problem] = []
    spec: PolicyFile | None = None
    try:
        spec = PolicyFile.model_validate(doc.data)
    except ValidationError as exc:
        problems = pydantic_problems(path, doc, exc)
    for loc, msg, key in semantic_problems(doc.data, known_kinds):
        line, col = doc.where(loc, key=key)
        problems.append(Problem(path, line, col, f"{dotted(loc)}: {msg}"))
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


def build_calendar(spec: CalendarSpec) -> Calendar:
    """A ``Calendar`` from its policy spec."""
    tz = ZoneInfo(spec.timezone)
    explicit = frozenset(spec.holidays)
    public = country_holidays(spec.holidays_country, spec.holidays_subdiv) if spec.holidays_country else None
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
    repeats: bool = False  # its metric repeats (``repeat: true``): the step fires once per cycle


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
    """A compiled classification rule; ``calendar`` (a rule's own) runs the clocks
    of the issues it classifies instead of the level's; ``window``: the rule holds
    only for issues created in ``[from, until)`` (a contract's period)."""

    number: int
    level: str
    conditions: tuple[tuple[str, frozenset[str]], ...]
    test: Predicate
    calendar_name: str | None = None
    calendar: Calendar | None = None
    window: tuple[int | None, int | None] | None = None

    def in_period(self, created_at: int) -> bool:
        """Whether an issue created then lies in the rule's period (always, without one)."""
        return in_window(self.window, created_at)

    def calendar_for(self, level: Level) -> Calendar:
        """The calendar the clocks of the issues it classifies run on: its own, else the level's."""
        return self.calendar if self.calendar is not None else level.calendar


def in_window(window: tuple[int | None, int | None] | None, at: int) -> bool:
    """Whether ``at`` lies in ``[from, until)`` (an open side, or no window, holds)."""
    if window is None:
        return True
    start, end = window
    return (start is None or at >= start) and (end is None or at < end)


def issue_values(issue: Issue, key: str) -> tuple[str, ...]:
    """The values an ``if`` key reads on an issue (none, one, or a list's)."""
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


def _compile_rule(number: int, spec: RuleSpec, calendars: Mapping[str, Calendar]) -> Rule:
    conditions = tuple((key, frozenset(values)) for key, values in (spec.when or {}).items())
    start = parse_instant(spec.from_) if spec.from_ is not None else None
    end = parse_instant(spec.until) if spec.until is not None else None

    def test(issue: Issue) -> bool:
        return all(not allowed.isdisjoint(issue_values(issue, key)) for key, allowed in conditions)

    window = (start, end) if start is not None or end is not None else None
    if window is not None:
        values_hold = test

        def test(issue: Issue) -> bool:
            return in_window(window, issue.created_at) and values_hold(issue)

    calendar = calendars[spec.calendar] if spec.calendar is not None else None
    return Rule(number, spec.level, conditions, test, spec.calendar, calendar, window)


def _compile_metric(name: str, spec: MetricSpec) -> CustomMetric:
    pause = tuple((key, frozenset(values)) for key, values in spec.pause_when.items()) if spec.pause_when else None
    start, stop = tuple(compile_trigger(e) for e in spec.start), tuple(compile_trigger(e) for e in spec.stop)
    return CustomMetric(name, start, stop, pause, spec.pause_statuses, spec.repeat)


def managed_labels(prefix: str, levels: Iterable[str]) -> frozenset[str]:
    """The labels sla-sync owns outright: one per level, at-risk and breached."""
    return frozenset({f"{prefix}{lv}" for lv in levels} | {f"{prefix}at-risk", f"{prefix}breached"})


def marker(prefix: str, step: int) -> str:
    """The label that records on the issue that escalation step ``step`` fired (for
    a step on a repeating metric: fired in the metric's current cycle)."""
    return f"{prefix}escalated-{step}"


@dataclass(frozen=True)
class Writeback:
    """What a pass writes into the tracker (``writeback``, compiled)."""

    due_metric: str = "resolution"  # or "none"
    labels: bool = True
    label_prefix: str = "sla:"
    override: bool = False  # on_manual_change: override (a person's value is not kept)
    due_field: bool = False  # the tracker has a datetime field for the exact due instant
    remaining_field: str | None = None  # a number field for the time left, in working hours
    remaining_step_s: int = 3600  # ...written only when it moves by a step of this size
    health_status: bool = False  # GitLab: the issue's health status follows the SLA state
    backlog: str = "last"  # backlog_steps: last | all | mark


@dataclass(frozen=True)
class Digest:
    """A compiled digest schedule: a cron expression read in a calendar's timezone."""

    number: int  # 1-based, in the order of the file
    channel: str
    cron: str
    calendar_name: str | None
    calendar: Calendar | None  # None: UTC, no holidays


@dataclass(frozen=True)
class Notify:
    """Where messages go (``notify``, compiled); each channel's URL is a secret,
    read when a pass sends."""

    channels: Mapping[str, ChannelSpec] = field(default_factory=dict)
    quiet_name: str | None = None
    quiet: Calendar | None = None  # messages wait for this calendar's working time


@dataclass(frozen=True)
class Csat:
    """Where the customers' satisfaction answers live (``report``, compiled)."""

    field_name: str | None = None
    values: Mapping[str, float] = field(default_factory=dict)


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
    writeback: Writeback = field(default_factory=lambda: Writeback())
    csat: Csat = field(default_factory=lambda: Csat())
    tracker: TrackerSpec | None = None
    overlap_s: int = 0  # how far each incremental fetch reaches back before the cursor
    reconcile_s: int = 0  # a full pass once the last one is this old (0: every pass is a full one)
    notify: Notify = field(default_factory=lambda: Notify())
    digests: tuple[Digest, ...] = ()
    custom: Mapping[str, CustomMetric] = field(default_factory=dict)  # ``metrics:``, by name

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def state_key(self) -> str:
        """What the state store keys this policy's state by (cursor, remembered
        issues, written values, fired steps, resolved names, the lock and the run
        journal): the name and the tracker's identity, ``NAME#<16 hex digits>``
        over the kind, the URL (scheme and host in lower case, no trailing slash)
        and the project.  Two files that share a name but not a tracker never
        share a state; without a tracker it is the bare name."""
        return state_key(self.name, self.tracker)

    @property
    def tracker_labels(self) -> list[str]:
        """Every label a pass may write: the managed ones, the step markers, and
        the steps' own labels (what ``check --online`` asks the tracker for)."""
        prefix = self.writeback.label_prefix
        labels = sorted(managed_labels(prefix, self.levels)) + [marker(prefix, s.number) for s in self.steps]
        return labels + [lbl for s in self.steps for lbl in s.spec.add_labels if lbl not in labels]

    @property
    def tracker_names(self) -> list[str]:
        """Every user or group name the policy names: agents, assignees, watchers."""
        agents = self.tracker.agents if self.tracker is not None else None
        names = [*agents.users, *agents.groups] if agents else []
        for step in self.steps:
            names += [n for n in (step.spec.assign, *step.spec.watchers) if n and n not in names]
        return names

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

    @property
    def uses_milestones(self) -> bool:
        """Whether the policy reads an issue's milestone: a ``classify`` rule's ``if``
        names it, or a custom metric's ``pause_when`` does (read over the history).
        GitLab keeps milestone changes in a list of their own, a request per changed
        issue: its adapter reads it only then."""
        conditions = [c for rule in self.rules for c in rule.conditions]
        conditions += [c for m in self.custom.values() for c in (m.pause_when or ())]
        return any(key == "milestone" for key, _ in conditions)

    def calendar_of(self, rule: int | None, level: Level) -> Calendar:
        """The calendar an issue's clocks run on: its rule's own (``classify``'s
        ``calendar:``), else its level's."""
        if rule is None or not 0 < rule <= len(self.rules):
            return level.calendar
        return self.rules[rule - 1].calendar_for(level)

    def classify(self, issue: Issue) -> Rule:
        """The first rule that holds for the issue's current values."""
        for rule in self.rules:
            if rule.test(issue):
                return rule
        raise AssertionError("a validated policy always has a rule that holds")  # pragma: no cover


def state_key(name: str, tracker: TrackerSpec | None) -> str:
    """``Policy.state_key`` for a name and a tracker section."""
    if tracker is None:
        return name
    url = urlsplit(tracker.url.strip())
    where = f"{url.scheme.lower()}://{url.netloc.lower()}{url.path.rstrip('/')}"
    digest = hashlib.sha256("\n".join((tracker.kind, where, tracker.project)).encode()).hexdigest()[:16]
    return f"{name}#{digest}"


def compile_policy(spec: PolicyFile, source: str = "<policy>") -> Policy:
    """Build calendars and compile levels, rules, steps and revisions of a validated spec."""
    calendars = {name: build_calendar(c) for name, c in spec.calendars.items()}
    metrics = (*METRICS, *spec.metrics)
    levels = {name: _compile_level(name, lv.model_dump(), calendars, metrics) for name, lv in spec.levels.items()}
    revisions = _compile_revisions(spec, calendars, levels, metrics)
    steps = []
    for i, step in enumerate(spec.escalate):
        metric, cond = step.when.split(None, 1)
        share = None if cond.strip() == "breached" else parse_percent(cond)
        repeats = metric in spec.metrics and spec.metrics[metric].repeat
        steps.append(Step(i + 1, metric, share, step, repeats))
    wb = spec.writeback
    return Policy(
        spec=spec,
        source=source,
        levels=levels,
        rules=tuple(_compile_rule(i + 1, r, calendars) for i, r in enumerate(spec.classify)),
        steps=tuple(steps),
        pause=frozenset(spec.clock.pause_statuses),
        resolved=frozenset(spec.clock.resolved_statuses),
        workaround_statuses=frozenset(spec.clock.workaround_statuses),
        workaround_labels=frozenset(spec.clock.workaround_labels),
        warn_share=parse_percent(spec.warn_at),
        calendars=calendars,
        revisions=revisions,
        writeback=Writeback(
            due_metric=wb.due_date,
            labels=wb.labels,
            label_prefix=wb.label_prefix,
            override=wb.on_manual_change == "override",
            due_field=spec.tracker is not None and spec.tracker.due_instant_field is not None,
            remaining_field=wb.remaining_field,
            remaining_step_s=parse_duration(wb.remaining_step),
            health_status=wb.health_status,
            backlog=wb.backlog_steps,
        ),
        csat=Csat(spec.report.csat_field, dict(spec.report.csat_values)),
        tracker=spec.tracker,
        overlap_s=parse_duration(spec.tracker.overlap) if spec.tracker is not None else 0,
        reconcile_s=duration_or_zero(spec.tracker.reconcile_every) if spec.tracker is not None else 0,
        notify=Notify(dict(spec.notify.channels), spec.notify.quiet_outside,
                      calendars[spec.notify.quiet_outside] if spec.notify.quiet_outside else None),
        digests=tuple(Digest(i + 1, d.channel, d.at, d.calendar, calendars[d.calendar] if d.calendar else None)
                      for i, d in enumerate(spec.digest)),
        custom={name: _compile_metric(name, m) for name, m in spec.metrics.items()},
    )


def _compile_level(name: str, values: Mapping[str, Any], calendars: Mapping[str, Calendar],
                   metrics: Sequence[str] = METRICS) -> Level:
    return Level(
        name,
        values["calendar"],
        calendars[values["calendar"]],
        {m: parse_duration(values[m]) for m in metrics if values.get(m)},
    )


def _compile_revisions(
    spec: PolicyFile, calendars: Mapping[str, Calendar], base: Mapping[str, Level], metrics: Sequence[str] = METRICS
) -> tuple[Revision, ...]:
    """Each revision's full levels: the ones before it, with its changes on top.
    Unchanged levels are shared (the same ``Level`` object) across revisions."""
    current: dict[str, dict[str, Any]] = {name: lv.model_dump() for name, lv in spec.levels.items()}
    levels: dict[str, Level] = dict(base)
    out = []
    for i, rev in enumerate(spec.revisions):
        changes = {name: change.model_dump(exclude_unset=True) for name, change in rev.levels.items()}
        current = apply_revision(current, changes)
        for name in changes:
            levels[name] = _compile_level(name, current[name], calendars, metrics)
        out.append(Revision(i + 1, parse_instant(rev.effective_from), dict(levels), rev.description))
    return tuple(out)


def classify(issue: Issue, policy: Policy) -> str:
    """The level of an issue: the first rule of ``classify`` that holds."""
    return policy.classify(issue).level
