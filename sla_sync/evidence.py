"""Is this evidence ours?  The one place that decides what sla-sync believes.

sla-sync believes only what its own API user produced: a step marker counts as a
fired step when the issue's history shows that sla-sync's user added it, or when
the state store recorded the step as fired; a due date or an assignee is
sla-sync's when the history shows sla-sync's user set it.  Anything else is a
person's: a value is respected, a marker is ignored (and reported).  A step on a
repeating metric fires once per cycle: it counts as fired when the store recorded
it in the metric's current cycle, or the history shows sla-sync's user adding its
marker since that cycle opened.

The adapters say who did what (``Event.by_self``: the event's author is the
tracker's API user, compared by user id, never by display name); this module
reads it.  Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .model import Issue
from .policy import Policy, marker


@dataclass(frozen=True)
class Evidence:
    """What one issue's history and the store say sla-sync did to it."""

    fired: frozenset[int] = frozenset()  # steps sla-sync fired (store, or its own marker in the history)
    due_date_by_person: bool = False  # the current due date was set by someone else
    assignee_by_person: bool = False  # the current assignee was set by someone else
    backlog: bool = False  # sla-sync meets the issue for the first time, created before its last pass
    stale: frozenset[int] = frozenset()  # steps on repeating metrics whose marker on the issue is sla-sync's
    # from an earlier cycle (taken off when a new cycle opens)


def _marker_adds(issue: Issue, policy: Policy) -> dict[int, list[tuple[int, bool]]]:
    """Step → (when, by sla-sync's user) of each event that added its marker."""
    wanted = {marker(policy.writeback.label_prefix, s.number): s.number for s in policy.steps}
    out: dict[int, list[tuple[int, bool]]] = {}
    for e in issue.events:
        if e.kind == "label":
            for label in e.added:
                if label in wanted:
                    out.setdefault(wanted[label], []).append((e.at, e.by_self))
    return out


def _fired(adds: Mapping[int, list[tuple[int, bool]]], recorded: Mapping[int, int],
           cycles: Mapping[int, tuple[int, int]], repeating: frozenset[int]) -> frozenset[int]:
    """The steps that count as fired: those whose marker sla-sync's own user added
    (``adds``, see ``_marker_adds``) and those the store recorded (step → the cycle
    it fired in, 0 for a step that fires once per issue); for a step on a repeating
    metric, only in its current cycle (``cycles``: step → (cycle, when it opened),
    see ``plan.step_cycles``): added since the cycle opened, or recorded in it."""
    by_us = set()
    for step, found in adds.items():
        if step not in repeating:
            if any(mine for _, mine in found):
                by_us.add(step)
        elif step in cycles and any(mine and at >= cycles[step][1] for at, mine in found):
            by_us.add(step)  # (a step whose metric has no cycle yet cannot have fired)
    stored = {n for n, cycle in recorded.items() if n not in repeating or (n in cycles and cycles[n][0] == cycle)}
    return frozenset(by_us | stored)


def set_by_person(issue: Issue, name: str, current: str | None) -> bool:
    """Whether a person set the current value of ``due_date`` or ``assignee``:
    the last change of it in the history was not sla-sync's, or, with no change
    recorded, the issue was created with it (by its author)."""
    if current is None:
        return False
    changes = [e for e in issue.events if e.kind == "field" and e.field == name]
    return not changes[-1].by_self if changes else True


def evidence_of(issue: Issue, policy: Policy, recorded: Mapping[int, int] | None = None,
                cycles: Mapping[int, tuple[int, int]] | None = None, *, backlog: bool = False) -> Evidence:
    """The evidence for one issue: its history, and the steps the store recorded
    (step → cycle, see ``_fired``); ``cycles``: the current cycle of each
    step on a repeating metric (``plan.step_cycles``).  ``backlog``: the store has
    never seen the issue, and it is older than the store's cursor (or the store is
    new): an existing issue being adopted."""
    cycles, recorded = cycles or {}, recorded or {}
    adds = _marker_adds(issue, policy)
    repeating = frozenset(s.number for s in policy.steps if s.repeats)
    fired = _fired(adds, recorded, cycles, repeating)
    stale = frozenset(n for n in repeating if n not in fired
                      and ((n in adds and adds[n][-1][1]) or n in recorded))
    return Evidence(
        fired=fired,
        stale=stale,
        due_date_by_person=set_by_person(issue, "due_date", issue.due_date),
        assignee_by_person=set_by_person(issue, "assignee", issue.assignee),
        backlog=backlog,
    )
