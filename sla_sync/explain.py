"""Why an issue's clocks say what they say: what ``sla-sync explain`` shows.

``explain(issue, policy, now)`` is pure.  It reuses the clocks' own pieces rather
than restating their rules: ``timers.build_timeline`` for the statuses and the stop
instants, ``timers.running_spans`` for where a metric's clock may run,
``timers.metric_state`` for the state, due and breach instants, and the calendar's
``working_intervals`` to split a running stretch into working time and the time
outside working hours.  The elapsed time at the end of each segment therefore adds
up to the ``elapsed_s`` that ``evaluate`` reports.

``explanation_lines`` and ``explanation_to_json`` turn the result into text or
JSON; the CLI prints them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from .calendar import Calendar, iso_utc
from .custom import CustomMetric, Replay, custom_state, cycles_and_pauses, happenings, stretches
from .model import Issue, SlaState, State
from .policy import Level, Policy, Revision, issue_values
from .timers import Timeline, build_timeline, metric_state, running_spans, stop_of
from .values import format_duration

RUNNING = "running"
OFF_HOURS = "outside working hours"
PAUSED = "paused"
STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class Condition:
    """One key of a rule's ``if``, and what the issue has for it."""

    key: str
    allowed: tuple[str, ...]
    values: tuple[str, ...]
    holds: bool


@dataclass(frozen=True, slots=True)
class RuleCheck:
    """A classification rule tried on the issue (all keys must hold)."""

    number: int
    level: str
    conditions: tuple[Condition, ...]
    holds: bool


@dataclass(frozen=True, slots=True)
class Segment:
    """``[start, end)`` of one metric's timeline.

    ``kind`` is ``running``, ``outside working hours``, ``paused`` (by ``status``)
    or ``stopped`` (``reason`` says why).  ``elapsed_s`` is the metric's elapsed
    working time at ``end``; ``over_target`` marks time after the breach.
    """

    start: int
    end: int
    kind: str
    status: str
    elapsed_s: int
    over_target: bool = False
    reason: str | None = None
    cycle: int | None = None  # a custom metric's cycle (1-based); elapsed_s counts within it


@dataclass(frozen=True, slots=True)
class MetricStory:
    """One metric: its state at ``now`` (as ``evaluate`` has it) and its segments."""

    metric: str
    state: SlaState
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class Explanation:
    """The whole story of one issue at ``now``."""

    key: str
    title: str
    created_at: int
    now: int
    status_now: str
    level: str
    rule: int
    rules: tuple[RuleCheck, ...]  # every rule tried, up to the one that held
    revision: Revision | None  # None: the levels as written under `levels`
    calendar_name: str
    calendar: Calendar
    metrics: tuple[MetricStory, ...]


def check_rules(issue: Issue, policy: Policy) -> tuple[RuleCheck, ...]:
    """Each rule in order, with each condition, up to the first that holds."""
    out = []
    for rule in policy.rules:
        conditions = tuple(
            Condition(key, tuple(sorted(allowed)), values, not allowed.isdisjoint(values))
            for key, allowed in rule.conditions
            for values in (issue_values(issue, key),)
        )
        if rule.window is not None:  # the contract's period: the issue's creation in [from, until)
            start, end = rule.window
            period = (f"from {iso_utc(start) if start is not None else '-'} "
                      f"until {iso_utc(end) if end is not None else '-'}")
            conditions += (Condition("created", (period,), (iso_utc(issue.created_at) or "",),
                                     rule.in_period(issue.created_at)),)
        holds = all(c.holds for c in conditions)
        assert holds == rule.test(issue), "the explanation agrees with the classifier"
        out.append(RuleCheck(rule.number, rule.level, conditions, holds))
        if holds:
            break
    return tuple(out)


def _stop(metric: str, timeline: Timeline) -> tuple[int | None, str | None]:
    """Where a metric's clock stops for good, and why."""
    stop = stop_of(metric, timeline)  # the clocks' own rule
    why = {"first_response": "first public reply by an agent", "workaround": "workaround provided"}.get(metric)
    if stop is not None and stop == timeline.first_resolution:
        why = "resolved"
    return stop, why


def _working(calendar: Calendar, a: int, b: int) -> Iterator[tuple[int, int, bool]]:
    """``[a, b)`` cut into working (True) and non-working (False) pieces."""
    at = a
    for lo, hi in calendar.working_intervals(a, b):
        if lo > at:
            yield at, lo, False
        yield lo, hi, True
        at = hi
    if at < b:
        yield at, b, False


def _cut(a: int, b: int, at: int | None) -> list[tuple[int, int]]:
    """``[a, b)``, split at ``at`` when it falls inside."""
    return [(a, at), (at, b)] if at is not None and a < at < b else [(a, b)]


def metric_segments(
    metric: str, timeline: Timeline, policy: Policy, calendar: Calendar, state: SlaState
) -> tuple[Segment, ...]:
    """The timeline of one metric as segments, with the elapsed time at each end.

    A status segment is cut where the metric stops for good; the stretches where
    ``running_spans`` lets the clock run are cut into working time and the time
    outside working hours (and at the breach instant); the others are paused or,
    for resolution in a resolved status, stopped.
    """
    runs = set(running_spans(metric, timeline, policy))
    stop, why = _stop(metric, timeline)
    breach = state.breached_at
    out: list[Segment] = []
    elapsed = 0

    def over(start: int) -> bool:
        return breach is not None and start >= breach

    for a, b, status in timeline.segments:
        for lo, hi in _cut(a, b, stop):
            if hi <= lo:
                continue
            if stop is not None and lo >= stop:
                out.append(Segment(lo, hi, STOPPED, status, elapsed, over(lo), why))
            elif (lo, hi) in runs:
                for x, y, working in _working(calendar, lo, hi):
                    for p, q in _cut(x, y, breach if working else None):
                        elapsed += q - p if working else 0
                        out.append(Segment(p, q, RUNNING if working else OFF_HOURS, status, elapsed, over(p)))
            elif status in policy.pause:
                out.append(Segment(lo, hi, PAUSED, status, elapsed, over(lo)))
            else:  # resolution while the status is a resolved one
                out.append(Segment(lo, hi, STOPPED, status, elapsed, over(lo), "resolved"))
    return _merge_stopped(out)


def custom_segments(metric: CustomMetric, replay: Replay, issue: Issue, policy: Policy, calendar: Calendar,
                    state: SlaState, now: int) -> tuple[Segment, ...]:
    """A custom metric's timeline: each cycle from its start to its stop (or
    ``now``), cut where it pauses, where working time begins or ends and at its
    breach; ``cycle`` numbers them, and ``elapsed_s`` starts again with each.  A
    stopped cycle lasts until the next one opens, or ``now``."""
    cycles, marks, _ = cycles_and_pauses(metric, replay, policy.pause)
    out: list[Segment] = []
    for number, cycle in enumerate(cycles, start=1):
        end = cycle.closed if cycle.closed is not None else now
        breach = state.breached_at if number == len(cycles) else None
        elapsed = 0
        for a, b, paused, status in stretches(cycle, end, marks):
            if paused:
                out.append(Segment(a, b, PAUSED, status, elapsed, breach is not None and a >= breach,
                                   cycle=number))
                continue
            for x, y, working in _working(calendar, a, b):
                for p, q in _cut(x, y, breach if working else None):
                    elapsed += q - p if working else 0
                    out.append(Segment(p, q, RUNNING if working else OFF_HOURS, status, elapsed,
                                       breach is not None and p >= breach, cycle=number))
        if cycle.closed is not None:  # stopped until the next cycle opens, or now
            until = cycles[number].opened if number < len(cycles) else now
            out.append(Segment(cycle.closed, max(until, cycle.closed), STOPPED,
                               out[-1].status if out else issue.status, elapsed, False, "a stop event",
                               cycle=number))
    return tuple(out)


def _merge_stopped(segments: list[Segment]) -> tuple[Segment, ...]:
    """Adjacent stopped segments of the same reason are one: once a clock has
    stopped, later status changes tell nothing about it."""
    out: list[Segment] = []
    for seg in segments:
        last = out[-1] if out else None
        if (last is not None and seg.kind == last.kind == STOPPED and seg.reason == last.reason
                and last.end == seg.start):
            out[-1] = replace(last, end=seg.end)
        else:
            out.append(seg)
    return tuple(out)


def compact(segments: tuple[Segment, ...]) -> tuple[Segment, ...]:
    """Runs of working and non-working time in one status (and on the same side of
    the breach) as one segment each: a long-running issue reads in a few lines.  A
    merged segment that mixes both is ``running`` with the reason
    ``working hours only``."""
    out: list[Segment] = []
    clock = (RUNNING, OFF_HOURS)
    for seg in segments:
        last = out[-1] if out else None
        if (last is not None and last.kind in clock and seg.kind in clock and last.status == seg.status
                and last.over_target == seg.over_target and last.end == seg.start):
            mixed = last.kind != seg.kind or last.reason is not None
            kind = RUNNING if RUNNING in (last.kind, seg.kind) else OFF_HOURS
            out[-1] = replace(last, end=seg.end, kind=kind, elapsed_s=seg.elapsed_s,
                              reason="working hours only" if mixed else None)
        else:
            out.append(seg)
    return tuple(out)


def explain(issue: Issue, policy: Policy, now: int) -> Explanation:
    """Which rule matched and why, and each metric's timeline, at ``now``."""
    rules = check_rules(issue, policy)
    matched = rules[-1]
    level: Level = policy.level_at(matched.level, issue.created_at)
    own = policy.rules[matched.number - 1]
    calendar = own.calendar_for(level)
    timeline = build_timeline(issue, policy, now)
    replay = list(happenings(issue, now, policy.resolved)) if policy.custom else []
    stories = []
    for metric, target in level.targets.items():
        if metric in policy.custom:
            custom = policy.custom[metric]
            state = custom_state(custom, target, replay, calendar, now, policy.pause, policy.warn_share)
            stories.append(MetricStory(metric, state, custom_segments(custom, replay, issue, policy, calendar,
                                                                      state, now)))
            continue
        state = metric_state(metric, target, timeline, policy, calendar, now)
        stories.append(MetricStory(metric, state, metric_segments(metric, timeline, policy, calendar, state)))
    return Explanation(
        key=issue.key,
        title=issue.title,
        created_at=issue.created_at,
        now=now,
        status_now=timeline.status_now,
        level=level.name,
        rule=matched.number,
        rules=rules,
        revision=policy.revision_at(issue.created_at),
        calendar_name=own.calendar_name or level.calendar_name,
        calendar=calendar,
        metrics=tuple(stories),
    )


# -- rendering (no printing) ------------------------------------------------------------------


def local_text(instant: int | None, calendar: Calendar) -> str:
    """``2026-11-02 10:00:00 CET (09:00:00Z)``: the calendar's local time, then UTC."""
    if instant is None:
        return "-"
    local = datetime.fromtimestamp(instant, calendar.tz)
    utc = iso_utc(instant) or ""
    same_day = local.date().isoformat() == utc[:10]
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()} ({utc[11:] if same_day else utc})"


def _rule_lines(expl: Explanation) -> list[str]:
    lines = []
    for r in expl.rules:
        verdict = "holds" if r.holds else "does not hold"
        if not r.conditions:
            lines.append(f"  rule {r.number} -> {r.level}: no `if`, always holds")
            continue
        lines.append(f"  rule {r.number} -> {r.level}: {verdict}")
        for c in r.conditions:
            has = ", ".join(c.values) if c.values else "nothing"
            mark = "yes" if c.holds else "no"
            lines.append(f"    {c.key} in [{', '.join(c.allowed)}]: the issue has {has}: {mark}")
    return lines


def _state_line(story: MetricStory, calendar: Calendar) -> str:
    s = story.state
    parts = [f"{story.metric}: {s.state.value}{' (at risk)' if s.at_risk else ''}",
             f"target {format_duration(s.target_s)}", f"elapsed {format_duration(s.elapsed_s)}"]
    if s.state is State.BREACHED:
        parts.append(f"breached at {local_text(s.breached_at, calendar)}")
    elif s.due_at is not None:
        parts.append(f"due {local_text(s.due_at, calendar)}")
    if s.stopped_at is not None:
        parts.append(f"stopped at {local_text(s.stopped_at, calendar)}")
    if s.cycles is not None:
        parts.append(f"{s.cycles} cycle{'' if s.cycles == 1 else 's'}, {s.breached_cycles} breached")
    return ", ".join(parts)


def segment_text(seg: Segment) -> str:
    """What a segment is, in words."""
    if seg.kind == PAUSED:
        text = f"paused ({seg.status})"
    elif seg.kind == STOPPED:
        text = f"stopped: {seg.reason} ({seg.status})"
    elif seg.reason is not None:
        text = f"{seg.kind}, {seg.reason} ({seg.status})"
    else:
        text = f"{seg.kind} ({seg.status})"
    return text + (", over target" if seg.over_target and seg.kind == RUNNING else "")


def explanation_lines(expl: Explanation) -> list[str]:
    """The explanation as text lines (``sla-sync explain``)."""
    cal = expl.calendar
    revision = (
        f"revision {expl.revision.number} (in force from {iso_utc(expl.revision.effective_from)})"
        if expl.revision is not None else "the levels as written (no revision in force at creation)"
    )
    lines = [
        f"{expl.key}: {expl.title}",
        f"  created {local_text(expl.created_at, cal)}; status at {local_text(expl.now, cal)}: {expl.status_now}",
        f"level {expl.level}, by rule {expl.rule} of classify:",
        *_rule_lines(expl),
        f"targets of {revision}; calendar {expl.calendar_name} ({cal.tz.key})",
    ]
    for story in expl.metrics:
        lines.append("")
        lines.append(_state_line(story, cal))
        for seg in story.segments:
            cycle = f"cycle {seg.cycle}: " if seg.cycle is not None else ""
            lines.append(
                f"  {local_text(seg.start, cal)} -> {local_text(seg.end, cal)}  "
                f"{cycle}{segment_text(seg)}; elapsed {format_duration(seg.elapsed_s)}"
            )
    return lines


def explanation_to_json(expl: Explanation) -> dict[str, Any]:
    """The explanation as one JSON object (``explain --format json``); instants UTC."""

    def local(instant: int | None) -> str | None:
        return None if instant is None else datetime.fromtimestamp(instant, expl.calendar.tz).isoformat()

    return {
        "key": expl.key,
        "level": expl.level,
        "rule": expl.rule,
        "rules": [
            {"rule": r.number, "level": r.level, "holds": r.holds,
             "conditions": [{"key": c.key, "allowed": list(c.allowed), "values": list(c.values), "holds": c.holds}
                            for c in r.conditions]}
            for r in expl.rules
        ],
        "revision": None if expl.revision is None else {
            "number": expl.revision.number, "effective_from": iso_utc(expl.revision.effective_from)},
        "calendar": expl.calendar_name,
        "timezone": expl.calendar.tz.key,
        "now": iso_utc(expl.now),
        "status_now": expl.status_now,
        "metrics": {
            story.metric: {
                "state": story.state.state.value,
                "at_risk": story.state.at_risk,
                "target_s": story.state.target_s,
                "elapsed_s": story.state.elapsed_s,
                "due_at": iso_utc(story.state.due_at),
                "due_at_local": local(story.state.due_at),
                "breached_at": iso_utc(story.state.breached_at),
                "breached_at_local": local(story.state.breached_at),
                "stopped_at": iso_utc(story.state.stopped_at),
                **({} if story.state.cycles is None else {
                    "cycles": story.state.cycles, "breached_cycles": story.state.breached_cycles}),
                "segments": [
                    {"start": iso_utc(s.start), "end": iso_utc(s.end),
                     "start_local": local(s.start), "end_local": local(s.end),
                     "kind": s.kind, "status": s.status, "elapsed_s": s.elapsed_s,
                     "over_target": s.over_target, "reason": s.reason,
                     **({} if s.cycle is None else {"cycle": s.cycle})}
                    for s in story.segments
                ],
            }
            for story in expl.metrics
        },
    }
