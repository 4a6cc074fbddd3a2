"""When will an issue's plan (or its metrics' states) change by the passing of time
alone?  Pure: no I/O.

An issue's managed values change without any tracker change only when a running
clock crosses a line: a metric reaching ``warn_at`` (the at-risk label, the
health status), its target (breached), an unfired escalation step's threshold,
the remaining-time field's next step; and held messages go out when
``notify.quiet_outside``'s working time begins.  ``next_change`` gives the
earliest of those instants for one issue; ``run`` reports the earliest over all
issues, and ``watch`` can wake for it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from .calendar import Calendar, NoWorkingTimeError
from .model import IssueSla, SlaState, State
from .plan import step_due
from .policy import Policy


@dataclass(frozen=True, order=True)
class Upcoming:
    """The next instant at which an issue's plan changes, and why."""

    at: int
    key: str
    why: str


def _ceil_share(share: float, target: int) -> int:
    """The least elapsed time ``e`` with ``e * 100 >= share * target`` (how plan and
    timers compare, in exact integers where ``share`` is whole)."""
    e = int(share * target / 100)
    while e > 0 and (e - 1) * 100 >= share * target:
        e -= 1
    while e * 100 < share * target:
        e += 1
    return e


def _when(calendar: Calendar, metric: SlaState, elapsed: int, now: int) -> int | None:
    """The instant the running metric's elapsed working time reaches ``elapsed``."""
    if elapsed <= metric.elapsed_s:
        return None
    try:
        return calendar.add_working_seconds(now, elapsed - metric.elapsed_s)
    except NoWorkingTimeError:
        return None


def next_change(
    sla: IssueSla, created_at: int, fired: Iterable[int], policy: Policy, now: int,
    *, waiting: Collection[int] = (),
) -> Upcoming | None:
    """The earliest instant after ``now`` at which time alone changes the plan of
    this issue (``fired``: the steps already fired), or ``None`` (nothing runs).
    ``waiting``: steps on repeating metrics whose earlier cycle's marker this pass
    takes off; one that is due fires on the next pass, a second later."""
    calendar = policy.calendar_of(sla.rule, policy.level_at(sla.level, created_at))  # a rule's own, else the level's
    wb = policy.writeback
    found: list[Upcoming] = []

    def add(at: int | None, why: str) -> None:
        if at is not None and at > now:
            found.append(Upcoming(at, sla.key, why))

    for metric in sla.metrics.values():
        if metric.state is not State.RUNNING:
            continue
        # at risk and breached change the labels and the health status, and always the
        # metrics' gauges: a delta pass re-evaluates the issue then
        if not metric.at_risk:
            add(_when(calendar, metric, _ceil_share(policy.warn_share, metric.target_s), now),
                f"{metric.metric} at risk")
        add(_when(calendar, metric, metric.target_s + 1, now), f"{metric.metric} breached")
        if wb.remaining_field and metric.metric == wb.due_metric:
            size = wb.remaining_step_s
            left_in_step = metric.remaining_s - metric.remaining_s // size * size
            add(_when(calendar, metric, metric.elapsed_s + left_in_step + 1, now), "remaining time")
    done = set(fired)
    for step in policy.steps:
        watched = sla.metrics.get(step.metric)
        if step.number in waiting and step.number not in done and step_due(step, watched):
            add(now + 1, f"escalation step {step.number}")
            continue
        if step.number in done or watched is None or watched.state is not State.RUNNING:
            continue
        threshold = watched.target_s + 1 if step.share is None else _ceil_share(step.share, watched.target_s)
        add(_when(calendar, watched, threshold, now), f"escalation step {step.number}")
    return min(found) if found else None
