"""The SLA clocks: ``evaluate(issue, policy, now) -> IssueSla``.

The semantics are DESIGN.md's, rule by rule:

- every metric's clock starts at ``created_at`` and runs only during working time of
  the level's calendar and while the status is not a pause status;
- ``first_response`` stops at the first public comment by an agent, or at the first
  resolution if that comes first;
- ``workaround`` stops the first time a workaround status is entered or a workaround
  label is added, or at the first resolution if that comes first;
- ``resolution`` does not run while the status is a resolved status; reopening
  resumes it and elapsed time accumulates across the cycles;
- ``state``: ``breached`` when elapsed > target (stopped or not); else ``met`` when
  stopped; else ``paused`` when the status now is a pause status; else ``running``;
- ``due_at``: for running, when elapsed will equal the target if the status stays
  (when it already equals it, the instant it did; null when the calendar's next ten
  years hold too little working time); for breached, when elapsed reached it
  (``breached_at``); null for met and paused.

Only events at or before ``now`` count, so evaluating at an earlier ``now`` replays
the past.  The status in force before the first status event is that event's
``from`` (or the issue's status when it has no status event); after each status
event it is the event's ``to``.

How: one walk over the history gives the status segments and the stop instants
(``build_timeline``); the calendar's running totals at the segments' boundaries and
at the stops (``Calendar.running_totals``, one call per issue) give every metric's
working time as differences, in one walk over the segments per metric, which keeps
the spans it ran in for the breach or due instant (``Calendar.instant_at``).
``Clocks`` evaluates a stream of issues under one policy with the classification of
each combination of values worked out once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from operator import attrgetter, itemgetter

import msgspec

from .calendar import Calendar
from .custom import custom_state, happenings
from .model import Event, Issue, IssueSla, SlaState
from .policy import Level, Policy, Rule, issue_values
from .verdict import Span, verdict

Segment = tuple[int, int, str]  # [start, end) with the status in force

_AT = attrgetter("at")
_START = itemgetter(0)


class Timeline(msgspec.Struct, frozen=True, gc=False):
    """An issue's history reduced to what the clocks need, up to ``now``."""

    segments: tuple[Segment, ...]
    status_now: str
    first_resolution: int | None
    first_response: int | None
    first_workaround: int | None
    resolved_since: int | None  # start of the resolved stretch in force now


def build_timeline(issue: Issue, policy: Policy, now: int) -> Timeline:
    """Reduce the events at or before ``now`` to contiguous status segments from
    ``created_at`` to ``now`` and the stop instants, in one walk over the history
    (two when it is not in time order: histories mostly are)."""
    timeline = _walk(issue, issue.events, policy, now)
    if timeline is None:
        timeline = _walk(issue, sorted(issue.events, key=_AT), policy, now)
        assert timeline is not None, "a sorted history is in time order"
    return timeline


def _walk(issue: Issue, events: Sequence[Event], policy: Policy, now: int) -> Timeline | None:
    """``build_timeline`` over ``events`` as they come; ``None`` if they are not in
    time order (ties keep their order, as a stable sort keeps them)."""
    created = issue.created_at
    labels = policy.workaround_labels
    status, start = issue.status, created
    segments: list[Segment] = []
    first_response = first_label = None
    seen_status = False  # the status in force before the first status event is its ``from``
    previous = events[0].at if events else 0
    for e in events:
        at = e.at
        if at < previous:
            return None
        previous = at
        kind = e.kind
        if at > now:  # only tells the status before the first status event
            if kind == "status" and not seen_status:
                seen_status = True
                status = e.from_ or status
            continue
        if kind == "status":
            if not seen_status:
                seen_status = True
                status = e.from_ or status
            if at > start:  # an event before ``created_at`` only tells the status at creation
                segments.append((start, at, status))
                start = at
            status = e.to or status
        elif kind == "comment":
            if first_response is None and e.public and e.by_agent:
                first_response = at if at > created else created
        elif kind == "label" and first_label is None and labels and not labels.isdisjoint(e.added):
            first_label = at if at > created else created
    if now > start or not segments or segments[-1][2] != status:  # a change at ``now`` itself counts
        segments.append((start, now if now > start else start, status))
    resolved, wa_statuses = policy.resolved, policy.workaround_statuses
    first_resolution = first_wa_status = None
    for a, _, s in segments:
        if s in resolved:
            first_resolution = a
            break
    if wa_statuses:
        for a, _, s in segments:
            if s in wa_statuses:
                first_wa_status = a
                break
    status_now = segments[-1][2]
    resolved_since = None
    if status_now in resolved:
        for a, _, s in reversed(segments):
            if s not in resolved:
                break
            resolved_since = a
    return Timeline(
        tuple(segments),
        status_now,
        first_resolution,
        _earliest(first_response, first_resolution),
        _earliest(_earliest(first_wa_status, first_label), first_resolution),
        resolved_since,
    )


def _earliest(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None or a <= b else b


def running_spans(metric: str, timeline: Timeline, policy: Policy) -> Iterator[tuple[int, int]]:
    """The stretches in which a metric's clock may run (before the calendar)."""
    stop = stop_of(metric, timeline)
    skip = policy.pause | policy.resolved if metric == "resolution" else policy.pause
    for a, b, status in timeline.segments:
        if stop is not None:
            if a >= stop:
                return
            b = min(b, stop)
        if status not in skip and b > a:
            yield a, b


def stop_of(metric: str, timeline: Timeline) -> int | None:
    if metric == "first_response":
        return timeline.first_response
    if metric == "workaround":
        return timeline.first_workaround
    return None


def _totals(timeline: Timeline, calendar: Calendar) -> list[int]:
    """The calendar's running totals at each segment boundary, then at the first
    response and at the workaround (those there are): every metric's working time
    is a difference of two of them."""
    segments = timeline.segments
    points = list(map(_START, segments))
    points.append(segments[-1][1])
    if timeline.first_response is not None:
        points.append(timeline.first_response)
    if timeline.first_workaround is not None:
        points.append(timeline.first_workaround)
    return calendar.running_totals(points)


def _state(metric: str, target: int, timeline: Timeline, policy: Policy, calendar: Calendar, now: int,
           totals: Sequence[int], not_resolving: frozenset[str]) -> SlaState:
    """``metric_state`` with the running totals of ``_totals`` and the statuses in
    which resolution does not run (``policy.pause | policy.resolved``): one walk over
    the segments, the spans in which the clock runs kept with their working time for
    the breach or due instant."""
    segments = timeline.segments
    stop, stop_total, skip = None, 0, policy.pause  # as ``stop_of`` and ``running_spans`` have them
    if metric == "first_response":
        stop = timeline.first_response
        stop_total = 0 if stop is None else totals[len(segments) + 1]
    elif metric == "workaround":
        stop = timeline.first_workaround
        stop_total = 0 if stop is None else totals[-1]
    elif metric == "resolution":
        skip = not_resolving
    spans: list[Span] = []
    elapsed = 0
    for i, (a, b, status) in enumerate(segments):
        end_total = totals[i + 1]
        if stop is not None:
            if a >= stop:
                break
            if b > stop:
                b, end_total = stop, stop_total
        if b > a and status not in skip:
            worked = end_total - totals[i]
            elapsed += worked
            spans.append((a, totals[i], worked))
    stopped_at = timeline.resolved_since if metric == "resolution" else stop
    return verdict(metric, target, elapsed, spans, stopped_at, timeline.status_now in policy.pause, calendar, now,
                   policy.warn_share)


def metric_state(
    metric: str, target: int, timeline: Timeline, policy: Policy, calendar: Calendar, now: int
) -> SlaState:
    """One metric's clock at ``now``."""
    return _state(metric, target, timeline, policy, calendar, now, _totals(timeline, calendar),
                  policy.pause | policy.resolved)


def evaluate(issue: Issue, policy: Policy, now: int) -> IssueSla:
    """Classify an issue and run each clock of its level up to ``now``; the level's
    targets and calendar are those of the policy revision in force when the issue
    was created (``revisions:``), or the levels as written."""
    rule = policy.classify(issue)
    level = policy.level_at(rule.level, issue.created_at)  # the revision in force at creation
    return _evaluate(issue, policy, now, rule, level, policy.pause | policy.resolved)


def _evaluate(issue: Issue, policy: Policy, now: int, rule: Rule, level: Level,
              not_resolving: frozenset[str]) -> IssueSla:
    calendar = rule.calendar_for(level)
    timeline = build_timeline(issue, policy, now)
    totals = _totals(timeline, calendar)  # shared by the metrics, which share the calendar
    metrics = {}
    custom = policy.custom
    replay = None  # the history replayed once for every custom metric of the issue
    for metric, target in level.targets.items():
        if custom and metric in custom:
            if replay is None:
                replay = list(happenings(issue, now, policy.resolved))
            metrics[metric] = custom_state(custom[metric], target, replay, calendar, now, policy.pause,
                                           policy.warn_share)
        else:
            metrics[metric] = _state(metric, target, timeline, policy, calendar, now, totals, not_resolving)
    return IssueSla(issue.key, level.name, metrics, rule.number, calendar.tz.key)


class Clocks:
    """``evaluate`` for a stream of issues under one policy at one ``now``, the same
    answers for less work: what depends on the policy alone is worked out once, and
    each combination of the values the classification rules read is classified once
    (a rule is a function of those values: ``Rule.conditions``, ``issue_values``)."""

    MEMO = 4096  # combinations remembered; the rest are classified each time

    def __init__(self, policy: Policy, now: int) -> None:
        self.policy, self.now = policy, now
        key = _classification_key(tuple(dict.fromkeys(k for rule in policy.rules for k, _ in rule.conditions)))
        windowed = [rule for rule in policy.rules if rule.window is not None]
        if windowed:  # a contract's period: which periods the creation lies in is part of the key
            def key_and_periods(issue: Issue) -> object:
                return key(issue), tuple(rule.in_period(issue.created_at) for rule in windowed)

            key = key_and_periods
        self._key = key
        self._not_resolving = policy.pause | policy.resolved
        self._rules: dict[object, Rule] = {}

    def __call__(self, issue: Issue) -> IssueSla:
        """The issue's SLA at ``now``, as ``evaluate(issue, policy, now)``."""
        policy = self.policy
        values = self._key(issue)
        rule = self._rules.get(values)
        if rule is None:
            rule = policy.classify(issue)
            if len(self._rules) < self.MEMO:
                self._rules[values] = rule
        level = policy.level_at(rule.level, issue.created_at)  # the revision in force at creation
        return _evaluate(issue, policy, self.now, rule, level, self._not_resolving)


def _classification_key(keys: tuple[str, ...]) -> Callable[[Issue], object]:
    """What the classification of an issue depends on: the values of ``keys``.
    ``issue_values`` reads the attribute itself for every key but ``fields.*``; the
    attributes (strings, None, the labels' strings, as the model types them) are
    then as good a key, and a cheaper one."""
    if not keys:
        return lambda issue: ()
    if any(key.startswith("fields.") for key in keys):
        return lambda issue: tuple([issue_values(issue, key) for key in keys])
    return attrgetter(*keys)
