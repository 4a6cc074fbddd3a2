"""Custom metrics (``metrics:``): clocks with start, stop and pause conditions, and
cycles.  Pure: no I/O, no clock reads.

A metric's clock runs in **cycles**.  The issue's history, up to ``now``, is taken
as a sequence of events in time order: ``created`` first, then each value the issue
had at creation as its own event at ``created_at`` (its status, each label, its
assignee, its priority, each custom field, in that order), then the history's events
(ties keep the history's order).  Per event:

1. an open cycle closes if the event is one of ``stop``'s;
2. then a cycle opens if none is open, the event is one of ``start``'s, and the
   metric repeats or has had no cycle yet.

A start while a cycle is open does nothing (``next_reply`` runs from the oldest
unanswered customer comment); a stop while none is open does nothing.  Events:

- ``created``; ``resolved`` (a move from a status not in ``clock.resolved_statuses``
  into one), ``reopened`` (the reverse; Resolved → Closed is neither);
- ``{status: [..]}`` (enters one of them), ``{label: [..]}`` (one is added),
  ``{assignee: [..]}``, ``{priority: [..]}`` (changes to one of them),
  ``{field: {NAME: [..]}}`` (the custom field ``NAME`` changes to one of them);
- ``{comment: agent}`` / ``{comment: customer}``: a public comment by an agent / by
  anyone else; sla-sync's own notes are neither.

Within a cycle the clock runs in the working time of the calendar, except while it
is **paused**: while ``pause_when`` holds of the issue's values (the language of
``classify``'s ``if``), or, unless ``pause_statuses: false``, while the status is one
of ``clock.pause_statuses``.  A resolved status by itself neither stops nor pauses a
custom metric.  Each cycle has its own elapsed time against the full target; the
metric's state is that of its current cycle (the open one, else the last).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from .calendar import Calendar
from .model import Event, Issue, SlaState, State
from .verdict import Span, verdict

Condition = tuple[tuple[str, frozenset[str]], ...]


@dataclass(frozen=True)
class Trigger:
    """One event of a metric's ``start`` or ``stop``, compiled."""

    kind: str  # created, resolved, reopened, status, label, assignee, priority, field, comment
    values: frozenset[str] = frozenset()
    field: str | None = None  # kind field: the custom field's name
    who: str | None = None  # kind comment: agent or customer

    @property
    def facets(self) -> frozenset[str]:
        """The facets (``Happening.facets``) any of which is this event."""
        if self.kind in ("created", "resolved", "reopened"):
            return frozenset({self.kind})
        if self.kind == "comment":
            return frozenset({f"comment:{self.who}"})
        prefix = f"field:{self.field}" if self.kind == "field" else self.kind
        return frozenset(f"{prefix}:{v}" for v in self.values)


@dataclass(frozen=True)
class CustomMetric:
    """A metric of ``metrics:``, compiled; ``starts`` and ``stops`` are the facets of
    its events (an event is a start when its facets meet ``starts``)."""

    name: str
    start: tuple[Trigger, ...]
    stop: tuple[Trigger, ...]
    pause_when: Condition | None = None
    pause_statuses: bool = True
    repeat: bool = False
    starts: frozenset[str] = frozenset()
    stops: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "starts", frozenset().union(*(t.facets for t in self.start)))
        object.__setattr__(self, "stops", frozenset().union(*(t.facets for t in self.stop)))


def compile_trigger(raw: str | Mapping[str, Any]) -> Trigger:
    """A validated event of ``start``/``stop`` (``sla_sync.checks`` vouches for it)."""
    if isinstance(raw, str):
        return Trigger(raw)
    key, value = next(iter(raw.items()))
    if key == "comment":
        return Trigger("comment", who=str(value))
    if key == "field":
        name, value = next(iter(value.items()))
        return Trigger("field", _names(value), field=str(name))
    return Trigger(key, _names(value))


def _names(value: Any) -> frozenset[str]:
    return frozenset(str(v) for v in (value if isinstance(value, (list, tuple)) else [value]))


# One event of the sequence the cycles are read from (see the module docstring): its
# instant and its facets, "created", "resolved", "reopened", "status:S" (entered),
# "label:L" (added), "assignee:A", "priority:P", "field:NAME:V" (changed to),
# "comment:agent" or "comment:customer".
Happening = tuple[int, frozenset[str]]
_CREATED = frozenset({"created"})


@dataclass
class _Values:
    """The issue's values at one instant, as conditions read them."""

    status: str
    priority: str | None
    type: str | None
    assignee: str | None
    milestone: str | None
    project: str | None
    labels: set[str]
    fields: dict[str, str | None]

    def get(self, key: str) -> tuple[str, ...]:
        if key == "labels":
            return tuple(self.labels)
        value = self.fields.get(key[7:]) if key.startswith("fields.") else getattr(self, key)
        return () if value is None else (value,)

    def copy(self) -> _Values:
        return _Values(self.status, self.priority, self.type, self.assignee, self.milestone, self.project,
                       set(self.labels), dict(self.fields))


def holds(condition: Condition, values: _Values) -> bool:
    """``classify``'s ``if``: every key holds, a key holds when any value matches."""
    return all(not allowed.isdisjoint(values.get(key)) for key, allowed in condition)


_ATTRIBUTES = ("priority", "type", "assignee", "milestone")
_NOT_FIELDS = ("due_date", "status")  # field events that are neither an attribute nor a custom field


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def initial_values(issue: Issue) -> _Values:
    """The issue's values at creation: each one's first recorded change's ``from``,
    else its value now; the labels now with the history's label changes undone."""
    firsts: dict[str, Event] = {}
    first_status: Event | None = None
    for e in issue.events:
        if e.kind == "status" and first_status is None:
            first_status = e
        elif e.kind == "field" and e.field is not None and e.field not in firsts:
            firsts[e.field] = e
    status = (first_status.from_ if first_status is not None else None) or issue.status
    labels = set(issue.labels)
    for e in reversed(issue.events):
        if e.kind == "label":
            labels = (labels - set(e.added)) | set(e.removed)

    def at_creation(name: str, now: str | None) -> str | None:
        first = firsts.get(name)
        return first.from_ if first is not None else now

    fields = {name: at_creation(name, _text(value)) for name, value in issue.fields.items()}
    for name in firsts:
        if name not in _ATTRIBUTES and name not in _NOT_FIELDS and name not in fields:
            fields[name] = firsts[name].from_
    return _Values(status, at_creation("priority", issue.priority), at_creation("type", issue.type),
                   at_creation("assignee", issue.assignee), at_creation("milestone", issue.milestone),
                   issue.project, labels, fields)


def happenings(issue: Issue, now: int, resolved: frozenset[str]) -> Iterator[tuple[Happening, _Values]]:
    """The events the cycles are read from, each with the issue's values after it."""
    created = issue.created_at
    values = initial_values(issue)
    yield (created, _CREATED), values
    yield (created, frozenset({f"status:{values.status}"})), values
    for label in sorted(values.labels):
        yield (created, frozenset({f"label:{label}"})), values
    for name in ("assignee", "priority"):
        value = getattr(values, name)
        if value is not None:
            yield (created, frozenset({f"{name}:{value}"})), values
    for name, value in values.fields.items():
        if value is not None:
            yield (created, frozenset({f"field:{name}:{value}"})), values
    events: Sequence[Event] = issue.events
    if any(b.at < a.at for a, b in pairwise(events)):
        events = sorted(events, key=lambda e: e.at)
    for e in events:
        if e.at > now:
            break
        at = e.at if e.at > created else created
        kind = e.kind
        if kind == "status":
            before = values.status
            after = e.to or before
            values = values.copy()
            values.status = after
            facets = {f"status:{after}"}
            if before not in resolved and after in resolved:
                facets.add("resolved")
            elif before in resolved and after not in resolved:
                facets.add("reopened")
            yield (at, frozenset(facets)), values
        elif kind == "label":
            values = values.copy()
            values.labels = (values.labels - set(e.removed)) | set(e.added)
            yield (at, frozenset(f"label:{x}" for x in e.added)), values
        elif kind == "field" and e.field is not None:
            values = values.copy()
            if e.field in _ATTRIBUTES:
                setattr(values, e.field, e.to)
                facet = f"{e.field}:{e.to}"
            else:
                if e.field not in _NOT_FIELDS:
                    values.fields[e.field] = e.to
                facet = f"field:{e.field}:{e.to}"
            yield (at, frozenset({facet} if e.to is not None else ())), values
        elif kind == "comment" and e.public and not e.by_self:
            yield (at, frozenset({"comment:agent" if e.by_agent else "comment:customer"})), values


@dataclass(frozen=True)
class Cycle:
    """One cycle of a custom metric: when it opened and closed (``None``: open)."""

    opened: int
    closed: int | None


Mark = tuple[int, bool, str]  # from this instant on: paused or not, and the status


Replay = Sequence[tuple[Happening, _Values]]  # ``happenings``, listed: one serves every custom metric of an issue


def cycles_and_pauses(metric: CustomMetric, replay: Replay,
                      pause: frozenset[str]) -> tuple[list[Cycle], list[Mark], bool]:
    """The metric's cycles in an issue's ``replay``; the instants at which it becomes
    paused or not, or the status changes (``(at, paused, status)``, the first at
    creation); whether it is paused now."""
    cycles: list[Cycle] = []
    opened: int | None = None
    marks: list[Mark] = []
    paused = False
    starts, stops, repeat = metric.starts, metric.stops, metric.repeat
    seen: _Values | None = None
    for (at, facets), values in replay:
        if opened is not None and not stops.isdisjoint(facets):
            cycles.append(Cycle(opened, at))
            opened = None
        if opened is None and (repeat or not cycles) and not starts.isdisjoint(facets):
            opened = at
        if values is seen:  # the values did not change: neither did the pause
            continue
        seen = values
        paused = (metric.pause_statuses and values.status in pause) or (
            metric.pause_when is not None and holds(metric.pause_when, values))
        mark = (at, paused, values.status)
        if not marks or marks[-1][1:] != mark[1:]:
            if marks and marks[-1][0] == at:
                marks[-1] = mark
            else:
                marks.append(mark)
    if opened is not None:
        cycles.append(Cycle(opened, None))
    return cycles, marks, paused


def stretches(cycle: Cycle, end: int, marks: Sequence[Mark]) -> Iterator[tuple[int, int, bool, str]]:
    """``[cycle.opened, end)`` cut where the clock pauses or resumes, or the status
    changes: ``(start, end, paused, status)``."""
    for i, (at, paused, status) in enumerate(marks):
        until = marks[i + 1][0] if i + 1 < len(marks) else end
        a, b = max(at, cycle.opened), min(until, end)
        if b > a:
            yield a, b, paused, status


def _running(cycle: Cycle, end: int, marks: Sequence[Mark]) -> list[tuple[int, int]]:
    """The stretches of ``[cycle.opened, end)`` in which the clock is not paused."""
    out: list[tuple[int, int]] = []
    for a, b, paused, _ in stretches(cycle, end, marks):
        if not paused:
            if out and out[-1][1] == a:
                out[-1] = (out[-1][0], b)
            else:
                out.append((a, b))
    return out


def custom_state(metric: CustomMetric, target: int, replay: Replay, calendar: Calendar, now: int,
                 pause: frozenset[str], warn_share: float) -> SlaState:
    """The metric's state at ``now`` (the issue's ``replay`` up to it): that of its
    current cycle, with ``cycles`` and ``breached_cycles``; ``not_started`` before
    its first start event."""
    cycles, marks, paused_now = cycles_and_pauses(metric, replay, pause)
    if not cycles:
        return SlaState(metric.name, State.NOT_STARTED, False, target, 0, target, None, None, None, 0, 0)
    breached_cycles = 0
    figures: list[tuple[int, list[Span]]] = []
    for cycle in cycles:
        spans = _running(cycle, cycle.closed if cycle.closed is not None else now, marks)
        totals = calendar.running_totals([x for span in spans for x in span]) if spans else []
        worked = [(a, totals[2 * i], totals[2 * i + 1] - totals[2 * i]) for i, (a, _) in enumerate(spans)]
        elapsed = sum(w for _, _, w in worked)
        breached_cycles += elapsed > target
        figures.append((elapsed, worked))
    elapsed, worked = figures[-1]
    return verdict(metric.name, target, elapsed, worked, cycles[-1].closed, paused_now, calendar, now, warn_share,
                   len(cycles), breached_cycles, cycles[-1].opened)


def history_needed(metrics: Mapping[str, CustomMetric]) -> dict[str, list[str]]:
    """What the custom metrics read of an issue's history, by kind: ``custom_fields``,
    ``assignee``, ``priority``, ``type``, ``milestone``, ``labels``, ``comments`` →
    the metrics that do (for ``check --online``: a tracker says which it cannot supply)."""
    out: dict[str, list[str]] = {}

    def need(kind: str, name: str) -> None:
        if name not in out.setdefault(kind, []):
            out[kind].append(name)

    for m in metrics.values():
        for t in (*m.start, *m.stop):
            if t.kind == "field":
                need("custom_fields", m.name)
            elif t.kind in ("assignee", "priority"):
                need(t.kind, m.name)
            elif t.kind == "label":
                need("labels", m.name)
            elif t.kind == "comment":
                need("comments", m.name)
        for key, _ in m.pause_when or ():
            if key.startswith("fields."):
                need("custom_fields", m.name)
            elif key in ("assignee", "priority", "type", "milestone", "labels"):
                need(key, m.name)
    return out
