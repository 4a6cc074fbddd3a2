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
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from .calendar import Calendar, NoWorkingTimeError
from .model import Event, Issue, IssueSla, SlaState, State
from .policy import Policy

Segment = tuple[int, int, str]  # [start, end) with the status in force


@dataclass(frozen=True, slots=True)
class Timeline:
    """An issue's history reduced to what the clocks need, up to ``now``."""

    segments: tuple[Segment, ...]
    status_now: str
    first_resolution: int | None
    first_response: int | None
    first_workaround: int | None
    resolved_since: int | None  # start of the resolved stretch in force now


def status_segments(issue: Issue, events: Sequence[Event], now: int) -> tuple[Segment, ...]:
    """The statuses from ``created_at`` to ``now`` as contiguous segments.

    ``events`` is the whole history in time order; those after ``now`` only tell
    the status in force before the first status event."""
    every = [e for e in events if e.kind == "status"]
    status = (every[0].from_ or issue.status) if every else issue.status
    status_events = [e for e in every if e.at <= now]
    out: list[Segment] = []
    start = issue.created_at
    for e in status_events:
        at = min(max(e.at, issue.created_at), now)
        if at > start:
            out.append((start, at, status))
            start = at
        status = e.to or status
    if now > start or not out or out[-1][2] != status:  # a change at ``now`` itself counts
        out.append((start, max(now, start), status))
    return tuple(out)


def build_timeline(issue: Issue, policy: Policy, now: int) -> Timeline:
    """Reduce the events at or before ``now`` to segments and stop instants."""
    history = sorted(issue.events, key=lambda e: e.at)
    segments = status_segments(issue, history, now)
    events = [e for e in history if e.at <= now]
    resolved, wa_status = policy.resolved, policy.workaround_statuses
    first_resolution = next((a for a, _, s in segments if s in resolved), None)
    first_wa_status = next((a for a, _, s in segments if s in wa_status), None)
    first_response = next(
        (max(e.at, issue.created_at) for e in events if e.kind == "comment" and e.public and e.by_agent),
        None,
    )
    first_wa_label = next(
        (
            max(e.at, issue.created_at)
            for e in events
            if e.kind == "label" and not policy.workaround_labels.isdisjoint(e.added)
        ),
        None,
    )
    status_now = segments[-1][2]
    resolved_since = None
    if status_now in resolved:
        resolved_since = segments[-1][0]
        for a, _, s in reversed(segments):
            if s not in resolved:
                break
            resolved_since = a
    return Timeline(
        segments=segments,
        status_now=status_now,
        first_resolution=first_resolution,
        first_response=_earliest(first_response, first_resolution),
        first_workaround=_earliest(first_wa_status, first_wa_label, first_resolution),
        resolved_since=resolved_since,
    )


def _earliest(*instants: int | None) -> int | None:
    present = [i for i in instants if i is not None]
    return min(present) if present else None


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


def _due(calendar: Calendar, spans: Sequence[tuple[int, int]], target: int, elapsed: int, now: int) -> int | None:
    """When a running clock reaches its target: already reached (exactly) is the
    instant it was; ``None`` when the calendar has no working time to reach it
    within ten years."""
    if elapsed >= target:
        return _reach(calendar, spans, target)
    try:
        return calendar.add_working_seconds(now, target - elapsed)
    except NoWorkingTimeError:
        return None


def _reach(calendar: Calendar, spans: Sequence[tuple[int, int]], target: int) -> int | None:
    """The instant at which the working time over ``spans`` reaches ``target``."""
    done = 0
    for a, b in spans:
        worked = calendar.working_seconds(a, b)
        if done + worked >= target:
            return calendar.add_working_seconds(a, target - done, until=b)
        done += worked
    return None


def metric_state(
    metric: str, target: int, timeline: Timeline, policy: Policy, calendar: Calendar, now: int
) -> SlaState:
    """One metric's clock at ``now``."""
    spans = list(running_spans(metric, timeline, policy))
    elapsed = sum(calendar.working_seconds(a, b) for a, b in spans)
    stopped_at = timeline.resolved_since if metric == "resolution" else stop_of(metric, timeline)
    breached_at = due_at = None
    at_risk = False
    if elapsed > target:
        state = State.BREACHED
        breached_at = due_at = _reach(calendar, spans, target)
    elif stopped_at is not None:
        state = State.MET
    elif timeline.status_now in policy.pause:
        state = State.PAUSED
    else:
        state = State.RUNNING
        at_risk = elapsed * 100 >= policy.warn_share * target
        due_at = _due(calendar, spans, target, elapsed, now)
    return SlaState(
        metric=metric,
        state=state,
        at_risk=at_risk,
        target_s=target,
        elapsed_s=elapsed,
        remaining_s=target - elapsed,
        due_at=due_at,
        breached_at=breached_at,
        stopped_at=stopped_at,
    )


def evaluate(issue: Issue, policy: Policy, now: int) -> IssueSla:
    """Classify an issue and run each clock of its level up to ``now``; the level's
    targets and calendar are those of the policy revision in force when the issue
    was created (``revisions:``), or the levels as written."""
    rule = policy.classify(issue)
    level = policy.level_at(rule.level, issue.created_at)  # the revision in force at creation
    timeline = build_timeline(issue, policy, now)
    metrics = {
        metric: metric_state(metric, target, timeline, policy, level.calendar, now)
        for metric, target in level.targets.items()
    }
    return IssueSla(key=issue.key, level=level.name, metrics=metrics, rule=rule.number,
                    timezone=level.calendar.tz.key)
