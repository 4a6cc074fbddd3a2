"""A clock's state from its elapsed working time: the one decision every metric's
clock ends in, built-in (``timers``) and custom (``custom``) alike.  Pure.

- ``breached`` when elapsed > target (stopped or not), breached (and due) when the
  elapsed time reached the target;
- else ``met`` when stopped;
- else ``paused`` when paused now;
- else ``running``: at risk past ``warn_share`` of the target, due when the
  elapsed time reaches the target if nothing changes (the instant it did when it
  already equals it; ``None`` when the calendar's next ten years hold too little
  working time).
"""

from __future__ import annotations

from collections.abc import Sequence

from .calendar import Calendar, NoWorkingTimeError
from .model import SlaState, State

Span = tuple[int, int, int]  # where a clock ran: its start, the running total there, the working seconds in it

_BREACHED, _MET, _PAUSED, _RUNNING = State.BREACHED, State.MET, State.PAUSED, State.RUNNING


def verdict(metric: str, target: int, elapsed: int, spans: Sequence[Span], stopped_at: int | None, paused: bool,
            calendar: Calendar, now: int, warn_share: float, cycles: int | None = None,
            breached_cycles: int | None = None, started_at: int | None = None) -> SlaState:
    """The metric's ``SlaState`` (see the module docstring); ``cycles``,
    ``breached_cycles`` and the current cycle's ``started_at`` for a custom metric."""
    breached_at = due_at = None
    at_risk = False
    if elapsed > target:
        state = _BREACHED
        breached_at = due_at = reach(calendar, spans, target)
    elif stopped_at is not None:
        state = _MET
    elif paused:
        state = _PAUSED
    else:
        state = _RUNNING
        at_risk = elapsed * 100 >= warn_share * target
        if elapsed >= target:  # reached exactly: the instant it was
            due_at = reach(calendar, spans, target)
        else:
            try:
                due_at = calendar.add_working_seconds(now, target - elapsed)
            except NoWorkingTimeError:
                due_at = None
    return SlaState(metric, state, at_risk, target, elapsed, target - elapsed, due_at, breached_at, stopped_at,
                    cycles, breached_cycles, started_at)


def reach(calendar: Calendar, spans: Sequence[Span], target: int) -> int | None:
    """The instant at which the working time over ``spans`` reaches ``target``:
    each span is (its start, the running total there, the working seconds in it),
    as the clocks read them with ``running_totals`` (``add_working_seconds`` from
    the span's start, on the totals already read); ``None`` if it never does."""
    done = 0
    for a, total, worked in spans:
        if done + worked >= target:
            return a if target <= done else calendar.instant_at(total + target - done)
        done += worked
    return None
